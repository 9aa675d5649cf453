//! Value encoding for everything this crate persists.
//!
//! Every stored value starts with a one-byte format version followed by its
//! postcard encoding:
//!
//! - a state-machine record (`encode_record`): the version of its kind
//!   (`booking::RecordKey::version`), then the record's own shape (a hold
//!   record, a seat record, …; the key says which), so one kind's format can
//!   change without touching the others;
//! - everything else (log entries, votes, log ids, snapshot metadata):
//!   [`FORMAT`], then the value.
//!
//! Values of the flat format 4 are still read ([`crate::migrate`]) and
//! converted; nothing is written in it. A reader that meets any other version
//! refuses to guess: it reports corruption, which stops the node rather than
//! letting it diverge.

use std::io;

use booking::{AccountValue, CatalogValue, EventKey, EventValue, MapValue, Record, RecordKey};
use serde::{Serialize, de::DeserializeOwned};

use crate::migrate::RecordV4;
use crate::types::Entry;

/// The format of every value but records: 5 since the vocabulary is nested
/// by domain (log entries changed shape; the others did not).
pub const FORMAT: u8 = 5;
/// The flat format of every value before per-kind versions.
pub const LEGACY_FORMAT: u8 = 4;

fn body<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    // Serialising our own plain types into a Vec cannot fail.
    out.extend_from_slice(&postcard::to_stdvec(value).expect("postcard serialisation into memory"));
    out
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    postcard::from_bytes(body).map_err(|e| corrupt(format!("bad value: {e}")))
}

fn unknown_version(version: u8, expected: u8) -> io::Error {
    corrupt(format!(
        "value format version {version}, but this build reads only versions {LEGACY_FORMAT} and {expected}: \
         the data directory was written by a newer release"
    ))
}

/// Encodes a value that is not a record (see the module doc).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    body(FORMAT, value)
}

/// Decodes a value that is not a record and not a log entry: its shape is the
/// same in formats 4 and 5, so either is read.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    match bytes.split_first() {
        Some((&(FORMAT | LEGACY_FORMAT), rest)) => parse(rest),
        Some((&v, _)) => Err(unknown_version(v, FORMAT)),
        None => Err(corrupt("empty value".to_owned())),
    }
}

/// Decodes a log entry, converting one of format 4.
pub fn decode_entry(bytes: &[u8]) -> io::Result<Entry> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => parse(rest),
        Some((&LEGACY_FORMAT, rest)) => {
            let old: crate::migrate::EntryV4 = parse(rest)?;
            crate::migrate::entry_from_v4(old)
        }
        Some((&v, _)) => Err(unknown_version(v, FORMAT)),
        None => Err(corrupt("empty log entry".to_owned())),
    }
}

/// Encodes a record: its kind's version, then its own shape.
pub fn encode_record(key: &RecordKey, record: &Record) -> Vec<u8> {
    let version = key.version();
    match record {
        Record::Clock(ms) => body(version, ms),
        Record::Request(r) => body(version, r),
        Record::Event(value) => match value {
            EventValue::Event(r) => body(version, r),
            EventValue::Seat(r) => body(version, r),
            EventValue::Ga(r) => body(version, r),
            EventValue::Hold(r) => body(version, r),
            EventValue::Order(r) => body(version, r),
            EventValue::Ticket(r) => body(version, r),
            EventValue::Customer(r) => body(version, r),
            EventValue::Payment(r) => body(version, r),
            EventValue::Waitlist(r) => body(version, r),
            EventValue::Notice(r) => body(version, r),
        },
        Record::Map(value) => match value {
            MapValue::Meta(r) => body(version, r),
            MapValue::Node(r) => body(version, r),
            MapValue::Group(r) => body(version, r),
            MapValue::Placement(r) => body(version, r),
            MapValue::Region(r) => body(version, r),
            MapValue::ReadReplicas(r) => body(version, r),
            MapValue::Policy(r) => body(version, r),
            MapValue::SurvivesRegion => body(version, &()),
        },
        Record::Catalog(value) => match value {
            CatalogValue::Venue(r) => body(version, r),
            CatalogValue::Listing(r) => body(version, r),
            CatalogValue::FxRate(r) => body(version, r),
        },
        Record::Account(value) => match value {
            AccountValue::Account(r) => body(version, r),
            AccountValue::Session(r) => body(version, r),
            AccountValue::EmailClaim(r) => body(version, r),
            AccountValue::GuestChallenge(r) => body(version, r),
        },
    }
}

/// Decodes the record stored under `key`, converting one of format 4.
pub fn decode_record(key: &RecordKey, bytes: &[u8]) -> io::Result<Record> {
    let (&version, rest) = bytes
        .split_first()
        .ok_or_else(|| corrupt("empty record".to_owned()))?;
    if version == LEGACY_FORMAT {
        let old: RecordV4 = parse(rest)?;
        return old
            .into_record(key)
            .ok_or_else(|| corrupt(format!("the format-4 record under {key:?} is of another kind")));
    }
    if version != key.version() {
        return Err(unknown_version(version, key.version()));
    }
    Ok(match key {
        RecordKey::Clock => Record::Clock(parse(rest)?),
        RecordKey::Request(_) => Record::Request(parse(rest)?),
        RecordKey::Event(_, kind) => Record::Event(match kind {
            EventKey::Event => EventValue::Event(parse(rest)?),
            EventKey::Seat(_) => EventValue::Seat(parse(rest)?),
            EventKey::Ga(_) => EventValue::Ga(parse(rest)?),
            EventKey::Hold(_) => EventValue::Hold(parse(rest)?),
            EventKey::Order(_) => EventValue::Order(parse(rest)?),
            EventKey::Ticket(_) => EventValue::Ticket(parse(rest)?),
            EventKey::Customer(_) => EventValue::Customer(parse(rest)?),
            EventKey::Payment(_) => EventValue::Payment(parse(rest)?),
            EventKey::Waitlist(_) => EventValue::Waitlist(parse(rest)?),
            EventKey::Notice(..) => EventValue::Notice(parse(rest)?),
        }),
        RecordKey::Map(kind) => Record::Map(match kind {
            booking::MapKey::Meta => MapValue::Meta(parse(rest)?),
            booking::MapKey::Node(_) => MapValue::Node(parse(rest)?),
            booking::MapKey::Group(_) => MapValue::Group(parse(rest)?),
            booking::MapKey::Placement(_) => MapValue::Placement(parse(rest)?),
            booking::MapKey::Region(_) => MapValue::Region(parse(rest)?),
            booking::MapKey::ReadReplicas(_) => MapValue::ReadReplicas(parse(rest)?),
            booking::MapKey::Policy => MapValue::Policy(parse(rest)?),
            booking::MapKey::SurvivesRegion(_) => {
                parse::<()>(rest)?;
                MapValue::SurvivesRegion
            }
        }),
        RecordKey::Catalog(kind) => Record::Catalog(match kind {
            booking::CatalogKey::Venue(_) => CatalogValue::Venue(parse(rest)?),
            booking::CatalogKey::Listing(_) => CatalogValue::Listing(parse(rest)?),
            booking::CatalogKey::FxRate(..) => CatalogValue::FxRate(parse(rest)?),
        }),
        RecordKey::Account(kind) => Record::Account(match kind {
            booking::AccountKey::Account(_) => AccountValue::Account(parse(rest)?),
            booking::AccountKey::Session(_) => AccountValue::Session(parse(rest)?),
            booking::AccountKey::EmailClaim(_) => AccountValue::EmailClaim(parse(rest)?),
            booking::AccountKey::GuestChallenge(_) => AccountValue::GuestChallenge(parse(rest)?),
        }),
    })
}

pub fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Turns a RocksDB error into the `io::Error` openraft's storage traits expect.
pub fn db_err(e: rocksdb::Error) -> io::Error {
    io::Error::other(e)
}

/// Re-encodes `value` as `T`: for the parts of a format-4 value whose
/// encoding is the same today (log ids, memberships).
pub(crate) fn bridge<S: Serialize, T: DeserializeOwned>(value: &S) -> io::Result<T> {
    let bytes = postcard::to_stdvec(value).map_err(|e| corrupt(format!("re-encoding: {e}")))?;
    parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use booking::{EventId, HoldId, SeatRecord};

    #[test]
    fn values_of_another_format_are_refused_not_misread() {
        let encoded = encode(&42u64);
        assert_eq!(encoded[0], FORMAT);
        assert_eq!(decode::<u64>(&encoded).unwrap(), 42);
        let mut older = encoded.clone();
        older[0] = LEGACY_FORMAT;
        assert_eq!(
            decode::<u64>(&older).unwrap(),
            42,
            "format 4 meta values read as they are"
        );
        older[0] = 1;
        let err = decode::<u64>(&older).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("version 1"), "{err}");
        assert!(decode::<u64>(&[]).is_err());
    }

    #[test]
    fn records_carry_their_kind_version_and_read_back() {
        let key = RecordKey::Event(EventId(3), EventKey::Seat(7));
        let record = Record::Event(EventValue::Seat(SeatRecord::Held(HoldId(9))));
        let bytes = encode_record(&key, &record);
        assert_eq!(bytes[0], key.version());
        assert_eq!(decode_record(&key, &bytes).unwrap(), record);
        // The same bytes under a key of another kind are not a seat.
        let other = RecordKey::Clock;
        assert!(decode_record(&other, &bytes).is_err() || decode_record(&other, &bytes).unwrap() != record);
        // A format-4 value: the flat enum, converted.
        let mut legacy = vec![LEGACY_FORMAT];
        legacy.extend(postcard::to_stdvec(&RecordV4::Seat(SeatRecord::Held(HoldId(9)))).unwrap());
        assert_eq!(decode_record(&key, &legacy).unwrap(), record);
        assert!(
            decode_record(&RecordKey::Clock, &legacy).is_err(),
            "a format-4 seat is not a clock"
        );
    }
}
