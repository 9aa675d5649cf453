//! Order-preserving key encoding for every column family, in one place.
//!
//! One RocksDB database holds every Raft replica a node hosts. Every key in
//! every column family starts with the owning replica's id (8 bytes,
//! big-endian), so one replica's data is one contiguous key range that can be
//! scanned, snapshotted or dropped without touching another's. Replica ids are
//! never reused (see `booking::cluster_map`), so a replica that leaves a group
//! and comes back starts from an empty range.
//!
//! After the prefix, integers are big-endian so that RocksDB's bytewise order
//! equals numeric order; a record key starts with a one-byte tag naming its
//! kind. Strings are the last field of any key that has one, so they need no
//! terminator. Record keys are also written *without* the prefix, in snapshot
//! files, so that a snapshot moves between replicas with different ids.
//! Changing a tag or a layout here changes the on-disk format: bump
//! [`crate::codec::FORMAT`]'s successor and write a migration instead.

use std::io;

use booking::{
    AccountKey, CatalogKey, Currency, CustomerId, EventId, EventKey, HoldId, MapKey, OrderId, RecordKey,
    RegionId, RequestId, TicketCode,
};

use crate::codec::corrupt;

/// Largest replica id a store accepts: the end of its range must be representable.
pub const MAX_REPLICA_ID: u64 = u64::MAX - 1;

/// The first key of `replica`'s range in any column family.
pub fn replica_start(replica: u64) -> [u8; 8] {
    replica.to_be_bytes()
}

/// The first key after `replica`'s range in any column family.
pub fn replica_end(replica: u64) -> [u8; 8] {
    (replica + 1).to_be_bytes()
}

/// `log` column family: `replica`'s entry at `index`.
pub fn log_key(replica: u64, index: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&replica.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The index of a `log` key of any replica.
pub fn log_index(key: &[u8]) -> io::Result<u64> {
    let bytes: [u8; 8] = key
        .get(8..)
        .filter(|_| key.len() == 16)
        .and_then(|tail| tail.try_into().ok())
        .ok_or_else(|| corrupt(format!("log key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// `meta` column family names, each stored under [`prefixed`] by replica.
pub const META_VOTE: &[u8] = b"vote";
pub const META_COMMITTED: &[u8] = b"committed";
pub const META_PURGED: &[u8] = b"purged";
pub const META_SNAPSHOT: &[u8] = b"snapshot";

/// `sm` column family: the state machine's own bookkeeping (applied log id and
/// membership), after the replica prefix. Tag 0x00 sorts before every record
/// and is never a record.
pub const SM_APPLIED: &[u8] = &[0x00, b'a'];

/// `replica`'s key for an unprefixed key (a meta name or a record key).
pub fn prefixed(replica: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&replica.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The unprefixed part of a key of `replica`'s range.
pub fn unprefixed(replica: u64, key: &[u8]) -> io::Result<&[u8]> {
    match key.split_at_checked(8) {
        Some((head, tail)) if head == replica.to_be_bytes() => Ok(tail),
        _ => Err(corrupt(format!(
            "key {key:02x?} is outside replica {replica}'s range"
        ))),
    }
}

const TAG_CLOCK: u8 = 0x01;
const TAG_EVENT: u8 = 0x10;
const TAG_SEAT: u8 = 0x11;
const TAG_GA: u8 = 0x12;
const TAG_HOLD: u8 = 0x13;
const TAG_ORDER: u8 = 0x14;
const TAG_TICKET: u8 = 0x15;
const TAG_CUSTOMER: u8 = 0x16;
const TAG_PAYMENT: u8 = 0x17;
const TAG_WAITLIST: u8 = 0x18;
const TAG_NOTICE: u8 = 0x19;
const TAG_REQUEST: u8 = 0x20;
const TAG_MAP_META: u8 = 0x30;
const TAG_MAP_NODE: u8 = 0x31;
const TAG_MAP_GROUP: u8 = 0x32;
const TAG_PLACEMENT: u8 = 0x33;
const TAG_VENUE: u8 = 0x34;
const TAG_LISTING: u8 = 0x35;
const TAG_FX_RATE: u8 = 0x36;
// Map records came first and catalog ones after; the region table came later.
const TAG_MAP_REGION: u8 = 0x37;
const TAG_READ_REPLICAS: u8 = 0x38;
const TAG_MAP_POLICY: u8 = 0x39;
const TAG_SURVIVES_REGION: u8 = 0x3a;
const TAG_ACCOUNT: u8 = 0x40;
const TAG_SESSION: u8 = 0x41;
const TAG_EMAIL_CLAIM: u8 = 0x42;
const TAG_GUEST_CHALLENGE: u8 = 0x43;

/// The first unprefixed key of any record: everything at or after it in a
/// replica's `sm` range is a record.
pub const SM_RECORDS_START: &[u8] = &[TAG_CLOCK];

pub fn record_key(key: &RecordKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    match key {
        RecordKey::Clock => out.push(TAG_CLOCK),
        RecordKey::Event(e, EventKey::Event) => {
            out.push(TAG_EVENT);
            out.extend_from_slice(&e.0.to_be_bytes());
        }
        RecordKey::Event(e, EventKey::Seat(i)) => {
            out.push(TAG_SEAT);
            out.extend_from_slice(&e.0.to_be_bytes());
            out.extend_from_slice(&i.to_be_bytes());
        }
        RecordKey::Event(e, EventKey::Ga(i)) => {
            out.push(TAG_GA);
            out.extend_from_slice(&e.0.to_be_bytes());
            out.extend_from_slice(&i.to_be_bytes());
        }
        RecordKey::Event(e, EventKey::Hold(h)) => {
            out.push(TAG_HOLD);
            out.extend_from_slice(&e.0.to_be_bytes());
            out.extend_from_slice(&h.0.to_be_bytes());
        }
        RecordKey::Event(e, EventKey::Order(o)) => {
            out.push(TAG_ORDER);
            out.extend_from_slice(&e.0.to_be_bytes());
            out.extend_from_slice(&o.0.to_be_bytes());
        }
        RecordKey::Event(e, EventKey::Ticket(code)) => {
            out.push(TAG_TICKET);
            out.extend_from_slice(&e.0.to_be_bytes());
            out.extend_from_slice(code.as_str().as_bytes());
        }
        RecordKey::Event(e, EventKey::Customer(c)) => {
            out.push(TAG_CUSTOMER);
            out.extend_from_slice(&e.0.to_be_bytes());
            out.extend_from_slice(c.as_str().as_bytes());
        }
        RecordKey::Event(e, EventKey::Payment(p)) => {
            out.push(TAG_PAYMENT);
            out.extend_from_slice(&e.0.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        RecordKey::Event(e, EventKey::Waitlist(position)) => {
            out.push(TAG_WAITLIST);
            out.extend_from_slice(&e.0.to_be_bytes());
            out.extend_from_slice(&position.to_be_bytes());
        }
        RecordKey::Event(e, EventKey::Notice(index, ordinal)) => {
            out.push(TAG_NOTICE);
            out.extend_from_slice(&e.0.to_be_bytes());
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&ordinal.to_be_bytes());
        }
        RecordKey::Request(r) => {
            out.push(TAG_REQUEST);
            out.extend_from_slice(r.as_str().as_bytes());
        }
        RecordKey::Map(MapKey::Meta) => out.push(TAG_MAP_META),
        RecordKey::Map(MapKey::Node(id)) => {
            out.push(TAG_MAP_NODE);
            out.extend_from_slice(&id.to_be_bytes());
        }
        RecordKey::Map(MapKey::Group(id)) => {
            out.push(TAG_MAP_GROUP);
            out.extend_from_slice(&id.to_be_bytes());
        }
        RecordKey::Map(MapKey::Placement(e)) => {
            out.push(TAG_PLACEMENT);
            out.extend_from_slice(&e.0.to_be_bytes());
        }
        RecordKey::Map(MapKey::Region(region)) => {
            out.push(TAG_MAP_REGION);
            out.extend_from_slice(region.as_str().as_bytes());
        }
        RecordKey::Map(MapKey::ReadReplicas(group)) => {
            out.push(TAG_READ_REPLICAS);
            out.extend_from_slice(&group.to_be_bytes());
        }
        RecordKey::Map(MapKey::Policy) => out.push(TAG_MAP_POLICY),
        RecordKey::Map(MapKey::SurvivesRegion(group)) => {
            out.push(TAG_SURVIVES_REGION);
            out.extend_from_slice(&group.to_be_bytes());
        }
        RecordKey::Catalog(CatalogKey::Venue(id)) => {
            out.push(TAG_VENUE);
            out.extend_from_slice(&id.to_be_bytes());
        }
        RecordKey::Catalog(CatalogKey::Listing(e)) => {
            out.push(TAG_LISTING);
            out.extend_from_slice(&e.0.to_be_bytes());
        }
        RecordKey::Catalog(CatalogKey::FxRate(base, quote)) => {
            out.push(TAG_FX_RATE);
            out.extend_from_slice(base.as_str().as_bytes());
            out.extend_from_slice(quote.as_str().as_bytes());
        }
        RecordKey::Account(AccountKey::Account(c)) => {
            out.push(TAG_ACCOUNT);
            out.extend_from_slice(c.as_str().as_bytes());
        }
        RecordKey::Account(AccountKey::Session(id)) => {
            out.push(TAG_SESSION);
            out.extend_from_slice(&id.to_be_bytes());
        }
        RecordKey::Account(AccountKey::EmailClaim(hash)) => {
            out.push(TAG_EMAIL_CLAIM);
            out.extend_from_slice(hash);
        }
        RecordKey::Account(AccountKey::GuestChallenge(id)) => {
            out.push(TAG_GUEST_CHALLENGE);
            out.extend_from_slice(&id.to_be_bytes());
        }
    }
    out
}

pub fn decode_record_key(key: &[u8]) -> io::Result<RecordKey> {
    let bad = || corrupt(format!("undecodable record key {key:02x?}"));
    let (&tag, rest) = key.split_first().ok_or_else(bad)?;
    let u64_at = |b: &[u8], at: usize| -> io::Result<u64> {
        b.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(bad)
    };
    let u32_at = |b: &[u8], at: usize| -> io::Result<u32> {
        b.get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(bad)
    };
    let text_from = |b: &[u8], at: usize| -> io::Result<String> {
        b.get(at..)
            .and_then(|s| std::str::from_utf8(s).ok())
            .map(str::to_owned)
            .ok_or_else(bad)
    };
    let exact = |len: usize| if rest.len() == len { Ok(()) } else { Err(bad()) };
    let key = match tag {
        TAG_CLOCK => {
            exact(0)?;
            RecordKey::Clock
        }
        TAG_EVENT => {
            exact(8)?;
            RecordKey::Event(EventId(u64_at(rest, 0)?), EventKey::Event)
        }
        TAG_SEAT => {
            exact(12)?;
            RecordKey::Event(EventId(u64_at(rest, 0)?), EventKey::Seat(u32_at(rest, 8)?))
        }
        TAG_GA => {
            exact(12)?;
            RecordKey::Event(EventId(u64_at(rest, 0)?), EventKey::Ga(u32_at(rest, 8)?))
        }
        TAG_HOLD => {
            exact(16)?;
            RecordKey::Event(
                EventId(u64_at(rest, 0)?),
                EventKey::Hold(HoldId(u64_at(rest, 8)?)),
            )
        }
        TAG_ORDER => {
            exact(16)?;
            RecordKey::Event(
                EventId(u64_at(rest, 0)?),
                EventKey::Order(OrderId(u64_at(rest, 8)?)),
            )
        }
        TAG_TICKET => RecordKey::Event(
            EventId(u64_at(rest, 0)?),
            EventKey::Ticket(TicketCode::new(&text_from(rest, 8)?).map_err(|_| bad())?),
        ),
        TAG_CUSTOMER => RecordKey::Event(
            EventId(u64_at(rest, 0)?),
            EventKey::Customer(CustomerId::new(&text_from(rest, 8)?).map_err(|_| bad())?),
        ),
        TAG_PAYMENT => {
            exact(16)?;
            RecordKey::Event(EventId(u64_at(rest, 0)?), EventKey::Payment(u64_at(rest, 8)?))
        }
        TAG_WAITLIST => {
            exact(16)?;
            RecordKey::Event(EventId(u64_at(rest, 0)?), EventKey::Waitlist(u64_at(rest, 8)?))
        }
        TAG_NOTICE => {
            exact(20)?;
            RecordKey::Event(
                EventId(u64_at(rest, 0)?),
                EventKey::Notice(u64_at(rest, 8)?, u32_at(rest, 16)?),
            )
        }
        TAG_REQUEST => RecordKey::Request(RequestId::new(&text_from(rest, 0)?).map_err(|_| bad())?),
        TAG_MAP_META => {
            exact(0)?;
            RecordKey::Map(MapKey::Meta)
        }
        TAG_MAP_NODE => {
            exact(8)?;
            RecordKey::Map(MapKey::Node(u64_at(rest, 0)?))
        }
        TAG_MAP_GROUP => {
            exact(8)?;
            RecordKey::Map(MapKey::Group(u64_at(rest, 0)?))
        }
        TAG_PLACEMENT => {
            exact(8)?;
            RecordKey::Map(MapKey::Placement(EventId(u64_at(rest, 0)?)))
        }
        TAG_MAP_REGION => RecordKey::Map(MapKey::Region(
            RegionId::new(&text_from(rest, 0)?).map_err(|_| bad())?,
        )),
        TAG_READ_REPLICAS => {
            exact(8)?;
            RecordKey::Map(MapKey::ReadReplicas(u64_at(rest, 0)?))
        }
        TAG_MAP_POLICY => {
            exact(0)?;
            RecordKey::Map(MapKey::Policy)
        }
        TAG_SURVIVES_REGION => {
            exact(8)?;
            RecordKey::Map(MapKey::SurvivesRegion(u64_at(rest, 0)?))
        }
        TAG_VENUE => {
            exact(8)?;
            RecordKey::Catalog(CatalogKey::Venue(u64_at(rest, 0)?))
        }
        TAG_LISTING => {
            exact(8)?;
            RecordKey::Catalog(CatalogKey::Listing(EventId(u64_at(rest, 0)?)))
        }
        TAG_FX_RATE => {
            exact(6)?;
            let code = |at: usize| {
                std::str::from_utf8(&rest[at..at + 3])
                    .ok()
                    .and_then(|text| Currency::new(text).ok())
                    .ok_or_else(bad)
            };
            RecordKey::Catalog(CatalogKey::FxRate(code(0)?, code(3)?))
        }
        TAG_ACCOUNT => RecordKey::Account(AccountKey::Account(
            CustomerId::new(&text_from(rest, 0)?).map_err(|_| bad())?,
        )),
        TAG_SESSION => {
            exact(8)?;
            RecordKey::Account(AccountKey::Session(u64_at(rest, 0)?))
        }
        TAG_EMAIL_CLAIM => {
            exact(32)?;
            RecordKey::Account(AccountKey::EmailClaim(rest.try_into().map_err(|_| bad())?))
        }
        TAG_GUEST_CHALLENGE => {
            exact(8)?;
            RecordKey::Account(AccountKey::GuestChallenge(u64_at(rest, 0)?))
        }
        _ => return Err(bad()),
    };
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_round_trip_and_sort_numerically() {
        let keys = vec![
            RecordKey::Clock,
            RecordKey::Event(EventId(2), EventKey::Event),
            RecordKey::Event(EventId(256), EventKey::Event),
            RecordKey::Event(EventId(2), EventKey::Seat(9)),
            RecordKey::Event(EventId(2), EventKey::Seat(10)),
            RecordKey::Event(EventId(7), EventKey::Ga(0)),
            RecordKey::Event(EventId(7), EventKey::Hold(HoldId(1 << 40))),
            RecordKey::Event(EventId(7), EventKey::Order(OrderId(3))),
            RecordKey::Event(
                EventId(7),
                EventKey::Ticket(TicketCode::new("7-ABCDEFGH").unwrap()),
            ),
            RecordKey::Event(
                EventId(7),
                EventKey::Customer(CustomerId::new("alice@example.com").unwrap()),
            ),
            RecordKey::Event(EventId(7), EventKey::Payment(3)),
            RecordKey::Event(EventId(7), EventKey::Payment(1 << 20)),
            RecordKey::Event(EventId(7), EventKey::Waitlist(9)),
            RecordKey::Event(EventId(7), EventKey::Notice(9, 2)),
            RecordKey::Event(EventId(7), EventKey::Notice(1 << 40, u32::MAX)),
            RecordKey::Request(RequestId::new("req-1").unwrap()),
            RecordKey::Map(MapKey::Meta),
            RecordKey::Map(MapKey::Node(3)),
            RecordKey::Map(MapKey::Group(1)),
            RecordKey::Map(MapKey::Group(300)),
            RecordKey::Map(MapKey::Placement(EventId(7))),
            RecordKey::Catalog(CatalogKey::Venue(2)),
            RecordKey::Catalog(CatalogKey::Listing(EventId(7))),
            RecordKey::Catalog(CatalogKey::FxRate(
                booking::Currency::new("EUR").unwrap(),
                booking::Currency::new("JPY").unwrap(),
            )),
            RecordKey::Map(MapKey::Region(booking::RegionId::new("eu-west").unwrap())),
            RecordKey::Map(MapKey::ReadReplicas(4)),
            RecordKey::Map(MapKey::Policy),
            RecordKey::Map(MapKey::SurvivesRegion(9)),
            RecordKey::Account(AccountKey::Account(CustomerId::new("u.1.abc").unwrap())),
            RecordKey::Account(AccountKey::Session(5)),
            RecordKey::Account(AccountKey::Session(1 << 33)),
            RecordKey::Account(AccountKey::EmailClaim([0; 32])),
            RecordKey::Account(AccountKey::EmailClaim([7; 32])),
            RecordKey::Account(AccountKey::GuestChallenge(3)),
        ];
        let encoded: Vec<Vec<u8>> = keys.iter().map(record_key).collect();
        for (key, bytes) in keys.iter().zip(&encoded) {
            assert_eq!(&decode_record_key(bytes).unwrap(), key);
            assert!(bytes.as_slice() >= SM_RECORDS_START);
            assert!(bytes.as_slice() > SM_APPLIED);
        }
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(sorted, encoded, "byte order must follow the numeric order of ids");
    }

    #[test]
    fn garbage_keys_are_corruption_not_panics() {
        for key in [&[][..], &[TAG_SEAT, 1, 2], &[0x7f], &[TAG_CLOCK, 0]] {
            let err = decode_record_key(key).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
        assert!(log_index(&[1, 2, 3]).is_err());
        assert_eq!(log_index(&log_key(7, 42)).unwrap(), 42);
    }

    #[test]
    fn replica_ranges_are_disjoint_and_ordered() {
        let a = log_key(5, u64::MAX);
        let b = log_key(6, 0);
        assert!(a < b);
        assert!(a.as_slice() < replica_end(5).as_slice());
        assert!(b.as_slice() >= replica_end(5).as_slice());
        let key = prefixed(6, META_VOTE);
        assert_eq!(unprefixed(6, &key).unwrap(), META_VOTE);
        assert!(unprefixed(5, &key).is_err());
    }
}
