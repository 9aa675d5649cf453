//! The persisted form of the state: one [`Record`] per [`RecordKey`], nested
//! by domain like the commands (each domain owns its keys and values:
//! `events::keys`/`events::records`, `cluster_map`, `accounts`, `catalog`).
//!
//! `raft-store` writes these record by record (the changes of each applied entry
//! come from `BookingState::take_dirty`) and rebuilds the state from them with
//! `BookingState::from_records`. Everything else `BookingState` keeps (tier
//! counters, the expiry queue, the seat-id lookup, the de-duplication age index)
//! is derived and rebuilt on load, so it never needs to be stored.
//!
//! Invariants of the record set:
//! - A key's kind matches its record's kind.
//! - Records are sparse: a value equal to its default has no record (see
//!   `events::records`), and a clock at zero has no `Clock` record.
//! - Records of an event exist only for an event that has an `Event` record.
//!
//! The derived `Ord` of `RecordKey` sorts by domain first and, inside an
//! event, puts the `Event` record first, so in key order the clock and every
//! event come before anything that refers to them.
//!
//! Every kind of record has its own format version ([`RecordKey::version`]),
//! written before the value on disk by `raft-store`: changing one kind's shape
//! bumps that kind's version and adds a conversion from the previous one.

use serde::{Deserialize, Serialize};

use crate::accounts::{AccountKey, AccountValue};
use crate::catalog::{CatalogKey, CatalogValue};
use crate::cluster_map::{MapKey, MapValue};
use crate::events::keys::EventKey;
use crate::events::records::EventValue;
use crate::ids::{EventId, Millis, RequestId};
use crate::remembered::Outcome;

/// The first format version of the per-kind encoding; every kind starts at
/// it. (Versions below it were one flat record enum for every kind.)
pub const FIRST_KIND_VERSION: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordKey {
    /// The state machine's clock.
    Clock,
    /// A record of an event's group.
    Event(EventId, EventKey),
    /// A remembered request (de-duplication).
    Request(RequestId),
    /// The cluster map (metadata group).
    Map(MapKey),
    /// The catalog (metadata group).
    Catalog(CatalogKey),
    /// Accounts and sessions (accounts groups), e-mail claims (metadata group).
    Account(AccountKey),
}

impl RecordKey {
    /// The event a record belongs to, if any.
    pub fn event_id(&self) -> Option<EventId> {
        match self {
            RecordKey::Event(event_id, _) => Some(*event_id),
            _ => None,
        }
    }

    /// The format version of this kind of record: what `raft-store` writes
    /// before the value, and what a reader expects there.
    pub fn version(&self) -> u8 {
        // Every kind is at its first version; bump one arm when its shape changes.
        match self {
            RecordKey::Clock
            | RecordKey::Event(..)
            | RecordKey::Request(_)
            | RecordKey::Map(_)
            | RecordKey::Catalog(_)
            | RecordKey::Account(_) => FIRST_KIND_VERSION,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The state machine's clock: the largest `now_ms` applied so far.
    Clock(Millis),
    Event(EventValue),
    Request(RequestRecord),
    Map(MapValue),
    Catalog(CatalogValue),
    Account(AccountValue),
}

impl Record {
    /// Whether this record may be stored under `key` (the same domain and kind).
    pub fn fits(&self, key: &RecordKey) -> bool {
        use crate::events::records::EventValue as V;
        match (key, self) {
            (RecordKey::Clock, Record::Clock(_)) | (RecordKey::Request(_), Record::Request(_)) => true,
            (RecordKey::Event(_, key), Record::Event(value)) => matches!(
                (key, value),
                (EventKey::Event, V::Event(_))
                    | (EventKey::Seat(_), V::Seat(_))
                    | (EventKey::Ga(_), V::Ga(_))
                    | (EventKey::Hold(_), V::Hold(_))
                    | (EventKey::Order(_), V::Order(_))
                    | (EventKey::Ticket(_), V::Ticket(_))
                    | (EventKey::Customer(_), V::Customer(_))
                    | (EventKey::Payment(_), V::Payment(_))
                    | (EventKey::Waitlist(_), V::Waitlist(_))
                    | (EventKey::Notice(..), V::Notice(_))
            ),
            (RecordKey::Map(key), Record::Map(value)) => matches!(
                (key, value),
                (MapKey::Meta, MapValue::Meta(_))
                    | (MapKey::Node(_), MapValue::Node(_))
                    | (MapKey::Group(_), MapValue::Group(_))
                    | (MapKey::Placement(_), MapValue::Placement(_))
                    | (MapKey::Region(_), MapValue::Region(_))
                    | (MapKey::ReadReplicas(_), MapValue::ReadReplicas(_))
                    | (MapKey::Policy, MapValue::Policy(_))
                    | (MapKey::SurvivesRegion(_), MapValue::SurvivesRegion)
            ),
            (RecordKey::Catalog(key), Record::Catalog(value)) => matches!(
                (key, value),
                (CatalogKey::Venue(_), CatalogValue::Venue(_))
                    | (CatalogKey::Listing(_), CatalogValue::Listing(_))
                    | (CatalogKey::FxRate(..), CatalogValue::FxRate(_))
            ),
            (RecordKey::Account(key), Record::Account(value)) => matches!(
                (key, value),
                (AccountKey::Account(_), AccountValue::Account(_))
                    | (AccountKey::Session(_), AccountValue::Session(_))
                    | (AccountKey::EmailClaim(_), AccountValue::EmailClaim(_))
                    | (AccountKey::GuestChallenge(_), AccountValue::GuestChallenge(_))
            ),
            _ => false,
        }
    }
}

/// The outcome of a request, kept for de-duplication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The log index of the entry that carried the request; orders records of
    /// the same millisecond so that the oldest goes first when the table is full.
    pub log_index: u64,
    /// The state machine's clock when the request was applied.
    pub at_ms: Millis,
    /// The request's `fingerprint` (see `Request`).
    pub fingerprint: u64,
    /// What the answer was about (see `remembered`), not the answer itself.
    pub outcome: Outcome,
}
