//! The stored records of an event's group: an event, its seats and areas,
//! holds, orders, tickets, customers' counts and waitlist entries (here), its
//! payments (`payments`) and notices (`notices`), gathered in [`EventValue`].
//!
//! Records are sparse: a value equal to its default has no record. An
//! available seat has no `Seat` record, an area with nothing held or sold has
//! no `Ga` record, a customer with no places has no `Customer` record. This
//! keeps event creation to a single write and lets a seat going back on sale
//! be a delete. Records that are touched often are small: a seat change
//! writes a 9-byte enum, not the event. Seat and area indexes are positions
//! in the event's spec (see `layout`), which never changes after creation.
//!
//! This module defines shapes only; the key encoding and the per-kind version
//! marker on disk belong to `raft-store`.

use serde::{Deserialize, Serialize};

use super::notices::NoticeRecord;
use super::payments::PaymentRecord;
use crate::ids::{CustomerId, HoldId, Millis, Money, OrderId, TicketCode};
use crate::layout::EventSpec;

/// One stored record of an event's group (see `EventKey` for where).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventValue {
    Event(EventRecord),
    Seat(SeatRecord),
    Ga(GaRecord),
    Hold(HoldRecord),
    Order(OrderRecord),
    Ticket(TicketRecord),
    Customer(CustomerRecord),
    Payment(PaymentRecord),
    Waitlist(WaitlistRecord),
    Notice(NoticeRecord),
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
