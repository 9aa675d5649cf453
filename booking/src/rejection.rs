//! Why a command was refused: the one vocabulary of business outcomes that
//! every domain shares, with the stable codes of the HTTP contract.
//!
//! A [`Rejection`] is a deterministic outcome ("that seat is taken"), not a
//! failure: it is replicated, stored for de-duplication and returned to the
//! client like a success. [`Rejection::code`] is the machine-readable code
//! `docs/http-api.md` lists; mapping codes to HTTP statuses happens only at
//! the edge.
//!
//! This module is a leaf: it imports nothing of the booking domains, so every
//! domain (and `ids`, `layout`) may use it without an import loop. Ids in its
//! variants are plain integers for that reason.

use serde::{Deserialize, Serialize};

/// Why a command was refused. Rejected commands change nothing (apart from the
/// clock, hold expiry and the de-duplication table, which advance before any
/// command runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid event spec: {0}")]
    InvalidSpec(String),
    #[error("no such event")]
    UnknownEvent,
    #[error("an event with that id already exists")]
    EventExists,
    #[error("no seat {seat} in this event")]
    UnknownSeat { seat: String },
    #[error("no section {section} in this event")]
    UnknownSection { section: String },
    #[error("no tier {tier} in this event")]
    UnknownTier { tier: String },
    #[error("no general-admission area {area} in this event")]
    UnknownArea { area: String },
    #[error("seats {} are not available", seats.join(", "))]
    SeatUnavailable { seats: Vec<String> },
    #[error("not enough available places for a hold of {requested}")]
    NotEnoughSeats { requested: u32 },
    #[error("the limit is {limit} tickets per customer and {current} are already held or bought")]
    CustomerLimit { limit: u32, current: u32 },
    #[error("no such hold")]
    UnknownHold,
    #[error("the hold has expired and its places are back on sale")]
    HoldExpired,
    #[error("the hold was released or already confirmed")]
    HoldNotActive,
    #[error("the hold or order belongs to another customer")]
    WrongHolder,
    #[error("a hold can be extended only once")]
    ExtensionUsed,
    #[error("no such order")]
    UnknownOrder,
    #[error("the order is already cancelled")]
    OrderNotActive,
    #[error("an order with a checked-in ticket cannot be cancelled")]
    OrderCheckedIn,
    #[error("no such ticket")]
    UnknownTicket,
    #[error("ticket already checked in at {first_checked_in_at_ms}")]
    AlreadyCheckedIn { first_checked_in_at_ms: u64 },
    #[error("the ticket belongs to a cancelled order")]
    TicketVoid,
    #[error("the cluster map is not initialised yet")]
    MapNotInitialised,
    #[error("the cluster map is already initialised")]
    MapInitialised,
    #[error("no node is in region {region}")]
    UnknownRegion { region: String },
    #[error("no group can take a new event")]
    NoGroupAvailable,
    #[error("{needed} nodes are needed but only {available} can take a replica")]
    NotEnoughNodes { needed: u32, available: u32 },
    #[error("no node {node_id} in the cluster")]
    UnknownNode { node_id: u64 },
    #[error("no group {group_id} in the cluster")]
    UnknownGroup { group_id: u64 },
    #[error("no replica {replica_id} in that group")]
    UnknownReplica { replica_id: u64 },
    #[error("node {node_id} exists with other addresses")]
    NodeExists { node_id: u64 },
    #[error("node {node_id} is being removed")]
    NodeDraining { node_id: u64 },
    #[error("node {node_id} still carries {replicas} replicas")]
    NodeHasReplicas { node_id: u64, replicas: u32 },
    #[error(
        "this Idempotency-Key was already used for a different request; send a new request with a new key"
    )]
    IdempotencyKeyReused,
    #[error("an account with that e-mail address exists")]
    EmailTaken,
    #[error("an account with that id exists")]
    AccountExists,
    #[error("no such account")]
    UnknownAccount,
    #[error("the refresh token is invalid, expired or revoked; log in again")]
    SessionInvalid,
    #[error("the event is cancelled")]
    EventCancelled,
    #[error("at most {limit} holds may be active at once per customer in this event")]
    TooManyHolds { limit: u32 },
    #[error("the event is a draft and not on sale yet")]
    EventNotOnSale,
    #[error("sales open at {opens_at_ms}")]
    SalesNotOpen { opens_at_ms: u64 },
    #[error("sales closed at {closed_at_ms}")]
    SalesClosed { closed_at_ms: u64 },
    #[error("no such payment")]
    UnknownPayment,
    #[error("no such venue")]
    UnknownVenue,
    #[error("payment {payment_id} for this hold is already pending or succeeded")]
    PaymentInProgress { payment_id: u64 },
    #[error("the payment is not waiting for a refund")]
    PaymentNotRefundable,
    #[error("already on this event's waitlist, at position {position}")]
    AlreadyWaitlisted { position: u32 },
    #[error("not on this event's waitlist")]
    NotWaitlisted,
    #[error("places are available: hold them instead of joining the waitlist")]
    PlacesAvailable,
    #[error("no such notice")]
    UnknownNotice,
    #[error("not subscribed to this event's reminder")]
    NotSubscribed,
    #[error(
        "notifications need an account with an address on file: register, log in, or verify your address as a guest (holders named by staff have none)"
    )]
    NoAddress,
    #[error("the code is wrong, expired or used up; ask for a new one")]
    CodeInvalid,
    #[error("no exchange rate from {from} to {to} is set")]
    FxRateMissing { from: String, to: String },
}

impl Rejection {
    /// The stable machine-readable code of `docs/http-api.md`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::InvalidRequest(_) | Rejection::InvalidSpec(_) => "invalid_request",
            Rejection::UnknownEvent => "unknown_event",
            Rejection::EventExists => "event_exists",
            Rejection::UnknownSeat { .. } => "unknown_seat",
            Rejection::UnknownSection { .. } => "unknown_section",
            Rejection::UnknownTier { .. } => "unknown_tier",
            Rejection::UnknownArea { .. } => "unknown_area",
            Rejection::SeatUnavailable { .. } => "seat_unavailable",
            Rejection::NotEnoughSeats { .. } => "not_enough_seats",
            Rejection::CustomerLimit { .. } => "customer_limit",
            Rejection::UnknownHold => "unknown_hold",
            Rejection::HoldExpired => "hold_expired",
            Rejection::HoldNotActive => "hold_not_active",
            Rejection::WrongHolder => "wrong_holder",
            Rejection::ExtensionUsed => "extension_used",
            Rejection::UnknownOrder => "unknown_order",
            Rejection::OrderNotActive => "order_not_active",
            Rejection::OrderCheckedIn => "order_checked_in",
            Rejection::UnknownTicket => "unknown_ticket",
            Rejection::AlreadyCheckedIn { .. } => "already_checked_in",
            Rejection::TicketVoid => "ticket_void",
            Rejection::MapNotInitialised => "map_not_initialised",
            Rejection::MapInitialised => "map_initialised",
            Rejection::UnknownRegion { .. } => "unknown_region",
            Rejection::NoGroupAvailable => "no_group_available",
            Rejection::NotEnoughNodes { .. } => "not_enough_nodes",
            Rejection::UnknownNode { .. } => "unknown_node",
            Rejection::UnknownGroup { .. } => "unknown_group",
            Rejection::UnknownReplica { .. } => "unknown_replica",
            Rejection::NodeExists { .. } => "node_exists",
            Rejection::NodeDraining { .. } => "node_draining",
            Rejection::NodeHasReplicas { .. } => "node_has_replicas",
            Rejection::IdempotencyKeyReused => "idempotency_key_reused",
            Rejection::EmailTaken => "email_taken",
            Rejection::AccountExists => "account_exists",
            Rejection::UnknownAccount => "unknown_account",
            Rejection::SessionInvalid => "session_invalid",
            Rejection::EventCancelled => "event_cancelled",
            Rejection::TooManyHolds { .. } => "too_many_holds",
            Rejection::EventNotOnSale => "event_not_on_sale",
            Rejection::SalesNotOpen { .. } => "sales_not_open",
            Rejection::SalesClosed { .. } => "sales_closed",
            Rejection::UnknownPayment => "unknown_payment",
            Rejection::UnknownVenue => "unknown_venue",
            Rejection::PaymentInProgress { .. } => "payment_in_progress",
            Rejection::PaymentNotRefundable => "payment_not_refundable",
            Rejection::AlreadyWaitlisted { .. } => "already_waitlisted",
            Rejection::NotWaitlisted => "not_waitlisted",
            Rejection::PlacesAvailable => "places_available",
            Rejection::UnknownNotice => "unknown_notice",
            Rejection::NotSubscribed => "not_subscribed",
            Rejection::NoAddress => "no_address",
            Rejection::CodeInvalid => "code_invalid",
            Rejection::FxRateMissing { .. } => "fx_rate_missing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_codes_match_the_http_contract() {
        let contract = include_str!("../../docs/http-api.md");
        let samples = [
            Rejection::InvalidRequest(String::new()),
            Rejection::InvalidSpec(String::new()),
            Rejection::UnknownEvent,
            Rejection::EventExists,
            Rejection::UnknownSeat { seat: String::new() },
            Rejection::UnknownSection {
                section: String::new(),
            },
            Rejection::UnknownTier { tier: String::new() },
            Rejection::UnknownArea { area: String::new() },
            Rejection::SeatUnavailable { seats: Vec::new() },
            Rejection::NotEnoughSeats { requested: 1 },
            Rejection::CustomerLimit { limit: 1, current: 1 },
            Rejection::UnknownHold,
            Rejection::HoldExpired,
            Rejection::HoldNotActive,
            Rejection::WrongHolder,
            Rejection::ExtensionUsed,
            Rejection::UnknownOrder,
            Rejection::OrderNotActive,
            Rejection::OrderCheckedIn,
            Rejection::UnknownTicket,
            Rejection::AlreadyCheckedIn {
                first_checked_in_at_ms: 1,
            },
            Rejection::TicketVoid,
            Rejection::MapNotInitialised,
            Rejection::MapInitialised,
            Rejection::UnknownRegion {
                region: String::new(),
            },
            Rejection::NoGroupAvailable,
            Rejection::NotEnoughNodes {
                needed: 3,
                available: 1,
            },
            Rejection::UnknownNode { node_id: 1 },
            Rejection::UnknownGroup { group_id: 1 },
            Rejection::UnknownReplica { replica_id: 1 },
            Rejection::NodeExists { node_id: 1 },
            Rejection::NodeDraining { node_id: 1 },
            Rejection::NodeHasReplicas {
                node_id: 1,
                replicas: 1,
            },
            Rejection::IdempotencyKeyReused,
            Rejection::EmailTaken,
            Rejection::AccountExists,
            Rejection::UnknownAccount,
            Rejection::SessionInvalid,
            Rejection::EventCancelled,
            Rejection::TooManyHolds { limit: 1 },
            Rejection::EventNotOnSale,
            Rejection::SalesNotOpen { opens_at_ms: 1 },
            Rejection::SalesClosed { closed_at_ms: 1 },
            Rejection::UnknownPayment,
            Rejection::UnknownVenue,
            Rejection::PaymentInProgress { payment_id: 1 },
            Rejection::PaymentNotRefundable,
            Rejection::AlreadyWaitlisted { position: 1 },
            Rejection::NotWaitlisted,
            Rejection::PlacesAvailable,
            Rejection::UnknownNotice,
            Rejection::NotSubscribed,
            Rejection::NoAddress,
            Rejection::CodeInvalid,
            Rejection::FxRateMissing {
                from: String::new(),
                to: String::new(),
            },
        ];
        for rejection in samples {
            let quoted = format!("`{}`", rejection.code());
            assert!(contract.contains(&quoted), "{quoted} is not in docs/http-api.md");
        }
    }

    #[test]
    fn rejections_explain_themselves() {
        let taken = Rejection::SeatUnavailable {
            seats: vec!["A-1-2".to_owned(), "A-1-3".to_owned()],
        };
        assert_eq!(taken.to_string(), "seats A-1-2, A-1-3 are not available");
    }
}
