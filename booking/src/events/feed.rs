//! The live availability feed: what each applied entry changed on a seat map.
//!
//! A replica that serves live seat maps turns recording on
//! (`BookingState::record_changes`). Then every rule that moves a
//! place between available, held and sold leaves an [`AvailabilityChange`]:
//! which seats changed to what, how many GA places each touched area has
//! left, and what every tier has left afterwards. Changes are produced while
//! the entry is applied, so a feed built from them is in log order, and the
//! counts in each change are exactly those after it (not after the batch the
//! entry happened to be applied in).
//!
//! A change is identified by its position: the log index of the entry that
//! made it and its ordinal among that entry's changes (expiries come first,
//! then the command). Positions are the same on every replica of a group.
//!
//! Recording is off by default, so booking tests and benchmarks pay nothing;
//! this module does not buffer, fan out or serialise changes for clients
//! (that is `raft-store::feed` and the HTTP edge).

use serde::{Deserialize, Serialize};

use super::views::SeatStatusView;
use crate::ids::{EventId, Millis};

/// Why places changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeCause {
    /// A customer held them.
    Held,
    /// The holder gave them back.
    Released,
    /// Their hold ran out.
    Expired,
    /// A hold was confirmed into an order.
    Sold,
    /// An order (or the whole event) was cancelled and they are back on sale.
    Returned,
    /// They were held for the first customer on the waitlist.
    Offered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatChange {
    pub seat: String,
    pub status: SeatStatusView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaAvailability {
    pub area: String,
    pub available: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierAvailability {
    pub tier: String,
    pub available: u32,
}

/// One rule's effect on one event's availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityChange {
    pub event_id: EventId,
    /// The entry that made the change.
    pub log_index: u64,
    /// The change's ordinal among the entry's changes (of all events).
    pub ordinal: u32,
    /// The entry's time.
    pub at_ms: Millis,
    pub cause: ChangeCause,
    /// Seats whose status changed, with their new status, in seat-map order.
    pub seats: Vec<SeatChange>,
    /// GA areas whose counts changed, with what each has left.
    pub areas: Vec<AreaAvailability>,
    /// What every tier has left after the change.
    pub tiers: Vec<TierAvailability>,
    /// What the whole event has left after the change.
    pub available: u32,
}
