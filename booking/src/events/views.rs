//! The read model: what queries return and what successful commands answer
//! with. The HTTP API does not serialize these: `api::dto` converts them to
//! its own shapes, so a field here can change without changing the API.
//!
//! Views are snapshots computed from the state on demand. They travel between
//! nodes (query answers over gRPC, in postcard). A de-duplicated outcome keeps
//! a hold's or an order's id and moment and re-renders the view as it was;
//! only small views (a waitlist entry) are kept whole (see `remembered.rs`).
//!
//! Optional fields are never skipped, because the binary format cannot skip
//! fields.

use serde::{Deserialize, Serialize};

use crate::ids::{Currency, CustomerId, EventId, HoldId, Millis, Money, OrderId, TicketCode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub event_id: EventId,
    pub name: String,
    pub currency: Currency,
    /// Seats plus GA places; `capacity == available + held + sold`.
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
    pub max_tickets_per_customer: Option<u32>,
    pub sales_start_ms: Option<Millis>,
    pub sales_end_ms: Option<Millis>,
    /// `draft`, `on_sale` or `cancelled`.
    pub status: String,
    pub published_at_ms: Option<Millis>,
    /// Set when the organiser cancelled the event; it sells nothing more.
    pub cancelled_at_ms: Option<Millis>,
    pub tiers: Vec<TierView>,
    pub sections: Vec<SectionView>,
    pub ga_areas: Vec<GaAreaView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierView {
    pub name: String,
    pub price: Money,
    pub capacity: u32,
    pub available: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionView {
    pub name: String,
    pub rows: Vec<RowView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowView {
    pub name: String,
    pub seats: Vec<SeatView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatView {
    pub id: String,
    pub number: u32,
    pub tier: String,
    pub status: SeatStatusView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatStatusView {
    Available,
    Held,
    Sold,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaAreaView {
    pub name: String,
    pub tier: String,
    pub capacity: u32,
    pub available: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldView {
    pub hold_id: HoldId,
    pub event_id: EventId,
    pub holder: CustomerId,
    /// Seat ids in seat-map order; empty for a GA hold.
    pub seats: Vec<String>,
    pub ga: Option<GaSelectionView>,
    pub created_at_ms: Millis,
    pub expires_at_ms: Millis,
    pub extended: bool,
    pub status: HoldStatus,
    pub order_id: Option<OrderId>,
    pub total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaSelectionView {
    pub area: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Released,
    Expired,
    Confirmed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: OrderId,
    pub event_id: EventId,
    pub holder: CustomerId,
    pub hold_id: HoldId,
    pub status: OrderStatus,
    pub created_at_ms: Millis,
    pub cancelled_at_ms: Option<Millis>,
    pub total: Money,
    pub tickets: Vec<TicketView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Confirmed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketView {
    pub code: TicketCode,
    pub event_id: EventId,
    pub order_id: OrderId,
    pub seat: Option<String>,
    pub ga_area: Option<String>,
    pub tier: String,
    pub price: Money,
    pub status: TicketStatus,
    pub checked_in_at_ms: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Valid,
    CheckedIn,
    Void,
}

/// A customer's place on an event's waitlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistView {
    pub event_id: EventId,
    pub customer_id: CustomerId,
    /// 1 is next in line (among entries that want the same places).
    pub position: u32,
    /// Everyone waiting for this event.
    pub waiting: u32,
    /// The tier wanted; `null`: any.
    pub tier: Option<String>,
    pub quantity: u32,
    pub joined_at_ms: Millis,
}
