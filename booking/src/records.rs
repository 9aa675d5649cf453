//! The persisted form of the state: one [`Record`] per [`RecordKey`].
//!
//! `raft-store` writes these record by record (the changes of each applied entry
//! come from `BookingState::take_dirty`) and rebuilds the state from them with
//! `BookingState::from_records`. Everything else `BookingState` keeps (tier
//! counters, the expiry queue, the seat-id lookup, the de-duplication age index)
//! is derived and rebuilt on load, so it never needs to be stored.
//!
//! Invariants of the record set:
//! - A key's variant matches its record's variant (`Record::fits`).
//! - Records are sparse: a value equal to its default has no record. An available
//!   seat has no `Seat` record, an area with nothing held or sold has no `Ga`
//!   record, a customer with no places has no `Customer` record, and a clock at
//!   zero has no `Clock` record. This keeps event creation to a single write and
//!   lets a seat going back on sale be a delete.
//! - Records that are touched often are small: a seat change writes a 9-byte
//!   enum, not the event.
//! - `Seat`, `Ga`, `Hold`, `Order`, `Ticket` and `Customer` records only exist for
//!   an event that has an `Event` record; seat and area indexes are positions in
//!   that event's spec (see `layout`), which never changes after creation.
//!
//! The derived `Ord` of `RecordKey` sorts by variant first, so in key order the
//! clock and all events come before anything that refers to them.
//!
//! This module defines shapes only; the key encoding, column families and the
//! version marker on disk belong to `raft-store`. [`RECORD_FORMAT_VERSION`] must
//! be bumped whenever any type reachable from `Record` changes shape.

use serde::{Deserialize, Serialize};

use crate::accounts::{AccountRecord, EmailClaim, GuestChallenge, SessionRecord, TokenHash};
use crate::catalog::{ListingRecord, VenueRecord};
use crate::cluster_map::{GroupId, GroupInfo, MapMeta, NodeId, NodeInfo};
use crate::command::Response;
use crate::ids::{CustomerId, EventId, HoldId, Millis, Money, OrderId, RequestId, TicketCode};
use crate::layout::EventSpec;
use crate::notices::NoticeRecord;
use crate::payments::PaymentRecord;

/// The version of the record shapes in this module (and of everything they
/// contain, including `EventSpec`, `Response` and the views inside it).
pub const RECORD_FORMAT_VERSION: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordKey {
    Clock,
    Event(EventId),
    /// A seat, by its index in spec order.
    Seat(EventId, u32),
    /// A general-admission area, by its index in `EventSpec::ga_areas`.
    Ga(EventId, u32),
    Hold(EventId, HoldId),
    Order(EventId, OrderId),
    Ticket(EventId, TicketCode),
    Customer(EventId, CustomerId),
    /// A payment for a hold of the event, by the log index that started it.
    Payment(EventId, u64),
    /// A customer waiting for places, by the log index of their joining.
    Waitlist(EventId, u64),
    /// A notification to deliver (`notices`), by the log index of the entry
    /// that wrote it and its ordinal in that entry.
    Notice(EventId, u64, u32),
    Request(RequestId),
    /// The cluster map's counters (metadata group only, like the three below).
    MapMeta,
    MapNode(NodeId),
    MapGroup(GroupId),
    /// The group that owns an event.
    Placement(EventId),
    /// A venue of the catalog (metadata group).
    Venue(u64),
    /// An event's listing (metadata group).
    Listing(EventId),
    /// An account (in its region's accounts group).
    Account(CustomerId),
    /// A refresh-token session, by the log index that started it.
    Session(u64),
    /// Who holds an e-mail address, by its keyed hash (metadata group).
    EmailClaim(TokenHash),
    /// A guest's one-time code waiting to be entered, by the log index that
    /// sent it (in the address's accounts group).
    GuestChallenge(u64),
}

impl RecordKey {
    /// Whether this key belongs to the cluster map (`cluster_map`), which
    /// only the metadata group writes.
    pub fn is_cluster_map(&self) -> bool {
        matches!(
            self,
            RecordKey::MapMeta | RecordKey::MapNode(_) | RecordKey::MapGroup(_) | RecordKey::Placement(_)
        )
    }

    /// Whether this key belongs to the catalog (`catalog`).
    pub fn is_catalog(&self) -> bool {
        matches!(self, RecordKey::Venue(_) | RecordKey::Listing(_))
    }

    /// Whether this key belongs to the payments (`payments`).
    pub fn is_payment(&self) -> bool {
        matches!(self, RecordKey::Payment(..))
    }

    /// Whether this key belongs to the notification outbox (`notices`).
    pub fn is_notice(&self) -> bool {
        matches!(self, RecordKey::Notice(..))
    }

    /// Whether this key belongs to the accounts (`accounts`).
    pub fn is_account(&self) -> bool {
        matches!(
            self,
            RecordKey::Account(_)
                | RecordKey::Session(_)
                | RecordKey::EmailClaim(_)
                | RecordKey::GuestChallenge(_)
        )
    }

    /// The event a record belongs to, if any.
    pub fn event_id(&self) -> Option<EventId> {
        match self {
            RecordKey::Clock
            | RecordKey::Request(_)
            | RecordKey::MapMeta
            | RecordKey::MapNode(_)
            | RecordKey::MapGroup(_)
            | RecordKey::Placement(_)
            | RecordKey::Venue(_)
            | RecordKey::Listing(_)
            | RecordKey::Account(_)
            | RecordKey::Session(_)
            | RecordKey::EmailClaim(_)
            | RecordKey::GuestChallenge(_) => None,
            RecordKey::Event(event)
            | RecordKey::Seat(event, _)
            | RecordKey::Ga(event, _)
            | RecordKey::Hold(event, _)
            | RecordKey::Order(event, _)
            | RecordKey::Ticket(event, _)
            | RecordKey::Customer(event, _)
            | RecordKey::Payment(event, _)
            | RecordKey::Waitlist(event, _)
            | RecordKey::Notice(event, ..) => Some(*event),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The state machine's clock: the largest `now_ms` applied so far.
    Clock(Millis),
    Event(EventRecord),
    Seat(SeatRecord),
    Ga(GaRecord),
    Hold(HoldRecord),
    Order(OrderRecord),
    Ticket(TicketRecord),
    Customer(CustomerRecord),
    Request(RequestRecord),
    MapMeta(MapMeta),
    MapNode(NodeInfo),
    MapGroup(GroupInfo),
    Placement(GroupId),
    Venue(VenueRecord),
    Listing(ListingRecord),
    Account(AccountRecord),
    Session(SessionRecord),
    EmailClaim(EmailClaim),
    Payment(PaymentRecord),
    Waitlist(WaitlistRecord),
    Notice(NoticeRecord),
    GuestChallenge(GuestChallenge),
}

impl Record {
    /// Whether this record may be stored under `key`.
    pub fn fits(&self, key: &RecordKey) -> bool {
        matches!(
            (key, self),
            (RecordKey::Clock, Record::Clock(_))
                | (RecordKey::Event(_), Record::Event(_))
                | (RecordKey::Seat(..), Record::Seat(_))
                | (RecordKey::Ga(..), Record::Ga(_))
                | (RecordKey::Hold(..), Record::Hold(_))
                | (RecordKey::Order(..), Record::Order(_))
                | (RecordKey::Ticket(..), Record::Ticket(_))
                | (RecordKey::Customer(..), Record::Customer(_))
                | (RecordKey::Request(_), Record::Request(_))
                | (RecordKey::MapMeta, Record::MapMeta(_))
                | (RecordKey::MapNode(_), Record::MapNode(_))
                | (RecordKey::MapGroup(_), Record::MapGroup(_))
                | (RecordKey::Placement(_), Record::Placement(_))
                | (RecordKey::Venue(_), Record::Venue(_))
                | (RecordKey::Listing(_), Record::Listing(_))
                | (RecordKey::Account(_), Record::Account(_))
                | (RecordKey::Session(_), Record::Session(_))
                | (RecordKey::EmailClaim(_), Record::EmailClaim(_))
                | (RecordKey::Payment(..), Record::Payment(_))
                | (RecordKey::Waitlist(..), Record::Waitlist(_))
                | (RecordKey::Notice(..), Record::Notice(_))
                | (RecordKey::GuestChallenge(_), Record::GuestChallenge(_))
        )
    }
}

/// An event as created. The spec is immutable; the record is rewritten only
/// when a draft is published and when the event is cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub spec: EventSpec,
    pub ticket_salt: [u8; 16],
    pub created_at_ms: Millis,
    /// When the event went on sale; `None` while it is a draft.
    pub published_at_ms: Option<Millis>,
    /// Set once, when the organiser cancels the event.
    pub cancelled_at_ms: Option<Millis>,
}

/// A seat that is not available. (An available seat has no record.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeatRecord {
    /// In this active hold.
    Held(HoldId),
    /// Ticketed in this confirmed order.
    Sold(OrderId),
}

/// Places of a general-admission area that are not available. At least one of
/// the counts is non-zero (otherwise there is no record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaRecord {
    /// Places in active holds.
    pub held: u32,
    /// Places ticketed in confirmed (not cancelled) orders.
    pub sold: u32,
}

/// A hold, kept after it ends so that its outcome can still be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub holder: CustomerId,
    pub places: HeldPlaces,
    pub created_at_ms: Millis,
    /// The TTL the hold was created with; an extension adds it once more.
    pub ttl_ms: u64,
    pub expires_at_ms: Millis,
    pub extended: bool,
    pub state: HoldState,
    /// Sum of the tier prices of `places`.
    pub total: Money,
}

/// What a hold holds: seats (indexes in spec order, ascending) or a quantity of
/// one GA area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeldPlaces {
    Seats(Vec<u32>),
    Ga { area: u32, quantity: u32 },
}

impl HeldPlaces {
    /// Seats or GA places: what the customer limit counts.
    pub fn count(&self) -> u32 {
        match self {
            HeldPlaces::Seats(seats) => seats.len() as u32,
            HeldPlaces::Ga { quantity, .. } => *quantity,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldState {
    /// Its places are held; `expires_at_ms` is in the future.
    Active,
    Released,
    Expired,
    /// Its places were ticketed in this order.
    Confirmed(OrderId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub holder: CustomerId,
    pub hold_id: HoldId,
    pub created_at_ms: Millis,
    pub cancelled_at_ms: Option<Millis>,
    pub total: Money,
    /// The order's tickets, by ordinal (seats in spec order, then GA places).
    pub tickets: Vec<TicketCode>,
}

/// A ticket. Whether it is void is not stored here but read from its order, so
/// that cancelling an order is a single write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRecord {
    pub order_id: OrderId,
    pub place: TicketPlace,
    pub checked_in_at_ms: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketPlace {
    /// A seat, by index in spec order.
    Seat(u32),
    /// A place in a GA area, by area index.
    Ga(u32),
}

/// Places a customer has in an event: seats and GA places in their active holds
/// plus tickets in their non-cancelled orders. What the per-customer limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub places: u32,
}

/// A customer waiting for places of a sold-out event or tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistRecord {
    pub customer: CustomerId,
    /// The tier wanted, by index in the spec; `None`: any tier.
    pub tier: Option<u32>,
    pub quantity: u32,
    pub joined_at_ms: Millis,
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
    pub response: Response,
}
