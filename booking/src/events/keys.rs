//! Where an event's records are kept: one [`EventKey`] per record, inside the
//! event it belongs to (`RecordKey::Event(event_id, key)`).
//!
//! Every rule of the event's group marks the keys it writes in an
//! [`EventKeys`] set, which the state machine drains for persistence. The
//! derived order puts the `Event` record first, so an event is loaded before
//! anything that refers to it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, EventId, HoldId, OrderId, TicketCode};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKey {
    /// The event as created (spec, salt, lifecycle).
    Event,
    /// A seat, by its index in spec order.
    Seat(u32),
    /// A general-admission area, by its index in `EventSpec::ga_areas`.
    Ga(u32),
    Hold(HoldId),
    Order(OrderId),
    Ticket(TicketCode),
    Customer(CustomerId),
    /// A payment for a hold of the event, by the log index that started it.
    Payment(u64),
    /// A customer waiting for places, by the log index of their joining.
    Waitlist(u64),
    /// A notification to deliver (`notices`), by the log index of the entry
    /// that wrote it and its ordinal in that entry.
    Notice(u64, u32),
}

/// The keys an entry wrote, with the event each belongs to.
pub type EventKeys = BTreeSet<(EventId, EventKey)>;
