//! The state machine's input and output: [`Request`]s in, [`Response`]s out.
//!
//! A `Request` is exactly what the Raft leader proposes: the client's idempotency
//! key, the leader's wall-clock time and the command. Everything the rules need
//! must be in here, because replicas may not consult anything else.
//!
//! A [`Rejection`] is a deterministic business outcome ("that seat is taken"),
//! not a failure: it is replicated, stored for de-duplication and returned to
//! the client like a success. Each rejection has a stable machine-readable
//! [`Rejection::code`] that the HTTP edge copies into its problem documents
//! (`docs/http-api.md`); mapping codes to HTTP statuses happens only there.
//!
//! Every type here is serialized both as JSON (HTTP bodies) and in a compact
//! binary form (log entries, stored responses), so none uses serde attributes
//! that need a self-describing format (no `flatten`, `untagged`, internal tags
//! or skipped fields).

use serde::{Deserialize, Serialize};

use crate::accounts::{
    AccountView, EmailClaim, NewAccount, NewGuestCheck, NotifyPreference, Role, SessionGrant, TokenHash,
};
use crate::catalog::{ListingStatus, ListingView, NewListing, NewVenue, VenueView};
use crate::cluster_map::{GroupId, MapCommand, NodeId, ReplicaId};
use crate::ids::{CustomerId, EventId, HoldId, Millis, OrderId, RequestId, TicketCode};
use crate::layout::EventSpec;
use crate::notices::{Channel, NoticeId, NoticeView};
use crate::payments::{PaymentOutcome, PaymentView};
use crate::views::{HoldView, OrderView, WaitlistView};

/// Default lifetime of a hold when the client does not ask for one.
pub const DEFAULT_HOLD_TTL_MS: u64 = 600_000;
/// Shortest hold lifetime a client may ask for.
pub const MIN_HOLD_TTL_MS: u64 = 1_000;
/// Longest hold lifetime a client may ask for (the extension may add as much again).
pub const MAX_HOLD_TTL_MS: u64 = 1_800_000;
/// Most seats or GA places in one hold.
pub const MAX_PLACES_PER_HOLD: u32 = 50;
/// How long a waitlisted customer has to buy the places offered to them.
pub const WAITLIST_OFFER_TTL_MS: u64 = 900_000;

/// One committed log entry's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The idempotency key: a second request with the same id gets the first
    /// one's response and has no effect (for 24 hours of log time).
    pub request_id: RequestId,
    /// The leader's clock when it proposed the entry. The state machine's clock
    /// is the maximum of these, so a new leader with a slow clock cannot move
    /// time backwards.
    pub now_ms: Millis,
    /// A digest of `command`, computed by the leader that proposed it. A
    /// request id that comes back with a different fingerprint is a client
    /// reusing an `Idempotency-Key` for another request, and is refused.
    pub fingerprint: u64,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Creates an event. `ticket_salt` is drawn randomly by the leader before
    /// proposing, so ticket codes are unguessable yet identical on all replicas.
    CreateEvent {
        event_id: EventId,
        spec: EventSpec,
        ticket_salt: [u8; 16],
        /// A draft takes no holds until it is published.
        #[serde(default)]
        draft: bool,
    },
    /// Puts a draft event on sale.
    PublishEvent {
        event_id: EventId,
    },
    /// Holds seats or GA places for `ttl_ms` (default 10 minutes, allowed
    /// `1_000..=1_800_000`).
    Hold {
        event_id: EventId,
        holder: CustomerId,
        selection: Selection,
        ttl_ms: Option<u64>,
    },
    /// Extends an active hold once, by its original TTL.
    ExtendHold {
        event_id: EventId,
        hold_id: HoldId,
        holder: CustomerId,
    },
    /// Gives an active hold's places back.
    ReleaseHold {
        event_id: EventId,
        hold_id: HoldId,
        holder: CustomerId,
    },
    /// Turns an active hold into an order with one ticket per seat or GA place.
    ConfirmHold {
        event_id: EventId,
        hold_id: HoldId,
        holder: CustomerId,
    },
    /// Cancels an order: its places go back on sale and its tickets become void.
    /// Refused once any of its tickets was checked in.
    CancelOrder {
        event_id: EventId,
        order_id: OrderId,
        holder: CustomerId,
    },
    /// Admits a ticket, exactly once.
    CheckIn {
        event_id: EventId,
        code: TicketCode,
    },
    /// Starts paying for an active hold (see `payments`).
    StartPayment {
        event_id: EventId,
        hold_id: HoldId,
        holder: CustomerId,
        /// The payment method token for the provider.
        method: String,
    },
    /// Records the provider's answer to a payment's authorisation.
    SettlePayment {
        event_id: EventId,
        payment_id: u64,
        outcome: PaymentOutcome,
    },
    /// Records that the provider refunded a payment.
    RefundSettled {
        event_id: EventId,
        payment_id: u64,
    },
    /// The organiser cancels the event: every order is cancelled and refunded.
    CancelEvent {
        event_id: EventId,
    },
    /// Changes the cluster map (metadata group only).
    Map(MapCommand),
    /// Adds a venue to the catalog (metadata group).
    CreateVenue {
        venue: NewVenue,
    },
    /// Writes an event's listing (metadata group).
    PutListing {
        event_id: EventId,
        listing: NewListing,
        status: ListingStatus,
    },
    /// Follows an event's lifecycle in its listing (metadata group).
    SetListingStatus {
        event_id: EventId,
        status: ListingStatus,
    },
    /// Claims an e-mail address for an account (metadata group).
    ClaimEmail {
        email_key: TokenHash,
        claim: EmailClaim,
    },
    /// Creates an account (in its region's accounts group).
    Register {
        customer_id: CustomerId,
        account: NewAccount,
    },
    /// Changes an account's role (operators only, checked at the edge).
    SetRole {
        customer_id: CustomerId,
        role: Role,
    },
    /// Starts a refresh-token session after the edge verified a password.
    StartSession {
        customer_id: CustomerId,
        token_hash: TokenHash,
        ttl_ms: u64,
    },
    /// Swaps a session's current refresh token for a new one.
    RotateSession {
        session_id: u64,
        presented: TokenHash,
        next: TokenHash,
        ttl_ms: u64,
    },
    /// Logs out: the session's tokens stop working.
    EndSession {
        session_id: u64,
        presented: TokenHash,
    },
    /// Only advances the clock (and so expires holds). The leader proposes it
    /// when `next_hold_expiry` has passed. Never de-duplicated or recorded.
    Tick,
    /// Sets how an account wants to be notified (its accounts group).
    SetNotifications {
        customer_id: CustomerId,
        preference: NotifyPreference,
    },
    /// Subscribes a customer with an account to the event's reminder, due at
    /// `remind_at_ms` (the edge computes it from the listing's start time).
    /// Subscribing again replaces the earlier subscription.
    SubscribeReminder {
        event_id: EventId,
        customer: CustomerId,
        channel: Option<Channel>,
        remind_at_ms: Millis,
    },
    UnsubscribeReminder {
        event_id: EventId,
        customer: CustomerId,
    },
    /// Queues a customer for `quantity` places of a sold-out tier (or of
    /// any tier).
    JoinWaitlist {
        event_id: EventId,
        customer: CustomerId,
        tier: Option<String>,
        quantity: u32,
    },
    LeaveWaitlist {
        event_id: EventId,
        customer: CustomerId,
    },
    /// Offers available places to the first waitlisted customer they suit,
    /// as a hold. The leader proposes it when `waitlist_offers_due` names the
    /// event. Like `Tick`, never de-duplicated or recorded.
    OfferWaitlist {
        event_id: EventId,
    },
    /// Records that a notice reached its recipient.
    NoticeDelivered {
        event_id: EventId,
        notice_id: NoticeId,
        channel: Channel,
    },
    /// Records a failed delivery attempt; `permanent` gives the notice up.
    NoticeFailed {
        event_id: EventId,
        notice_id: NoticeId,
        error: String,
        permanent: bool,
    },
    /// Stores a guest's one-time code (its keyed hash) for `ttl_ms`, in the
    /// address's accounts group. `customer_id` is the address's guest
    /// identity, drawn by the edge the first time (see `accounts`).
    StartGuestCheck {
        check: NewGuestCheck,
    },
    /// A guest enters the code of a challenge.
    VerifyGuest {
        challenge_id: u64,
        code_hash: TokenHash,
    },
}

impl Command {
    /// The event the command is about; `None` for map commands and ticks.
    pub fn event_id(&self) -> Option<EventId> {
        match self {
            Command::CreateEvent { event_id, .. }
            | Command::Hold { event_id, .. }
            | Command::ExtendHold { event_id, .. }
            | Command::ReleaseHold { event_id, .. }
            | Command::ConfirmHold { event_id, .. }
            | Command::CancelOrder { event_id, .. }
            | Command::CheckIn { event_id, .. }
            | Command::StartPayment { event_id, .. }
            | Command::SettlePayment { event_id, .. }
            | Command::RefundSettled { event_id, .. }
            | Command::PublishEvent { event_id }
            | Command::CancelEvent { event_id }
            | Command::SubscribeReminder { event_id, .. }
            | Command::UnsubscribeReminder { event_id, .. }
            | Command::JoinWaitlist { event_id, .. }
            | Command::LeaveWaitlist { event_id, .. }
            | Command::OfferWaitlist { event_id }
            | Command::NoticeDelivered { event_id, .. }
            | Command::NoticeFailed { event_id, .. } => Some(*event_id),
            Command::Map(_)
            | Command::CreateVenue { .. }
            | Command::PutListing { .. }
            | Command::SetListingStatus { .. }
            | Command::ClaimEmail { .. }
            | Command::Register { .. }
            | Command::SetRole { .. }
            | Command::StartSession { .. }
            | Command::RotateSession { .. }
            | Command::EndSession { .. }
            | Command::SetNotifications { .. }
            | Command::StartGuestCheck { .. }
            | Command::VerifyGuest { .. }
            | Command::Tick => None,
        }
    }

    /// Housekeeping the leader proposes on its own (`Tick`,
    /// `OfferWaitlist`): not de-duplicated and not recorded, since each is
    /// safe to apply any number of times.
    pub fn is_housekeeping(&self) -> bool {
        matches!(self, Command::Tick | Command::OfferWaitlist { .. })
    }
}

/// What a hold asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// These seat ids (1..=50, no duplicates); all must be available.
    Seats(Vec<String>),
    /// `quantity` (1..=50) adjacent seats in one row of `section`, optionally
    /// only seats of `tier`; see `best_available` for the preference order.
    BestAvailable {
        section: String,
        tier: Option<String>,
        quantity: u32,
    },
    /// `quantity` (1..=50) places in a general-admission area.
    GeneralAdmission { area: String, quantity: u32 },
}

pub type Response = Result<Success, Rejection>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Success {
    EventCreated {
        event_id: EventId,
        capacity: u32,
    },
    Held(HoldView),
    Extended(HoldView),
    Released {
        hold_id: HoldId,
    },
    Confirmed(OrderView),
    Cancelled(OrderView),
    CheckedIn {
        code: TicketCode,
        at_ms: Millis,
    },
    Ticked,
    MapInitialised {
        epoch: u64,
        groups: Vec<GroupId>,
    },
    Placed {
        event_id: EventId,
        group_id: GroupId,
        epoch: u64,
    },
    GroupCreated {
        group_id: GroupId,
        epoch: u64,
    },
    LearnerAdded {
        group_id: GroupId,
        replica_id: ReplicaId,
        epoch: u64,
    },
    MapChanged {
        epoch: u64,
    },
    VenueCreated(VenueView),
    Listed(ListingView),
    EmailClaimed {
        claim: EmailClaim,
        fresh: bool,
    },
    Registered(AccountView),
    AccountUpdated(AccountView),
    SessionStarted(SessionGrant),
    SessionRotated(SessionGrant),
    /// A replaced refresh token was presented again: the session is dead.
    SessionRevoked {
        session_id: u64,
    },
    SessionEnded {
        session_id: u64,
    },
    PaymentStarted(PaymentView),
    PaymentUpdated(PaymentView),
    EventPublished {
        event_id: EventId,
        at_ms: Millis,
    },
    EventCancelled {
        event_id: EventId,
        orders_cancelled: u32,
        refunds: u32,
    },
    ReminderSet(NoticeView),
    ReminderCancelled {
        event_id: EventId,
    },
    Waitlisted(WaitlistView),
    LeftWaitlist {
        event_id: EventId,
    },
    /// The hold made for the first suitable waitlisted customer, if any.
    WaitlistOffered {
        hold: Option<HoldView>,
    },
    NoticeUpdated(NoticeView),
    /// A guest's code was stored and may be sent.
    GuestChallenge {
        challenge_id: u64,
        expires_at_ms: Millis,
    },
    /// The code was wrong; the challenge has this many tries left (0: void).
    GuestCodeWrong {
        attempts_left: u8,
    },
    /// The code was right: the address's guest identity.
    GuestVerified(AccountView),
}

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
    AlreadyCheckedIn { first_checked_in_at_ms: Millis },
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
    UnknownNode { node_id: NodeId },
    #[error("no group {group_id} in the cluster")]
    UnknownGroup { group_id: GroupId },
    #[error("no replica {replica_id} in that group")]
    UnknownReplica { replica_id: ReplicaId },
    #[error("node {node_id} exists with other addresses")]
    NodeExists { node_id: NodeId },
    #[error("node {node_id} is being removed")]
    NodeDraining { node_id: NodeId },
    #[error("node {node_id} still carries {replicas} replicas")]
    NodeHasReplicas { node_id: NodeId, replicas: u32 },
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
    SalesNotOpen { opens_at_ms: Millis },
    #[error("sales closed at {closed_at_ms}")]
    SalesClosed { closed_at_ms: Millis },
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

    #[test]
    fn requests_round_trip_through_json() {
        let request = Request {
            request_id: RequestId::new("r-1").unwrap(),
            now_ms: 5,
            fingerprint: 9,
            command: Command::Hold {
                event_id: EventId(1),
                holder: CustomerId::new("alice").unwrap(),
                selection: Selection::BestAvailable {
                    section: "A".to_owned(),
                    tier: None,
                    quantity: 2,
                },
                ttl_ms: Some(60_000),
            },
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
    }
}
