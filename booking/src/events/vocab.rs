//! The vocabulary of an event's group: what it is asked to do
//! ([`EventCommand`]), what it answers ([`EventSuccess`]), and what it is
//! asked to read ([`EventQuery`], [`EventAnswer`]).
//!
//! Every command here is about one event, named once by the enclosing
//! `Command::Event(event_id, …)`. The types only describe; the rules are in
//! `event` (one event) and `mod` (the group: payments, notices, waitlist
//! offers around the event's rules).

use serde::{Deserialize, Serialize};

use super::notices::{Channel, NoticeId, NoticeView};
use super::payments::{PaymentOutcome, PaymentView};
use super::views::{
    EventView, HoldStatus, HoldView, OrderStatus, OrderView, SeatStatusView, TicketView, WaitlistView,
};
use crate::ids::{CustomerId, EventId, HoldId, Millis, OrderId, TicketCode};
use crate::layout::EventSpec;

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

/// What an event's group is asked to do about the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventCommand {
    /// Creates the event. `ticket_salt` is drawn randomly by the edge before
    /// proposing, so ticket codes are unguessable yet identical on all replicas.
    Create {
        spec: EventSpec,
        ticket_salt: [u8; 16],
        /// A draft takes no holds until it is published.
        draft: bool,
    },
    /// Puts a draft event on sale.
    Publish,
    /// Holds seats or GA places for `ttl_ms` (default 10 minutes, allowed
    /// `1_000..=1_800_000`).
    Hold {
        holder: CustomerId,
        selection: Selection,
        ttl_ms: Option<u64>,
    },
    /// Extends an active hold once, by its original TTL.
    ExtendHold {
        hold_id: HoldId,
        holder: CustomerId,
    },
    /// Gives an active hold's places back.
    ReleaseHold {
        hold_id: HoldId,
        holder: CustomerId,
    },
    /// Turns an active hold into an order with one ticket per seat or GA place.
    ConfirmHold {
        hold_id: HoldId,
        holder: CustomerId,
    },
    /// Cancels an order: its places go back on sale and its tickets become void.
    /// Refused once any of its tickets was checked in.
    CancelOrder {
        order_id: OrderId,
        holder: CustomerId,
    },
    /// Admits a ticket, exactly once.
    CheckIn {
        code: TicketCode,
    },
    /// Starts paying for an active hold (see `payments`).
    StartPayment {
        hold_id: HoldId,
        holder: CustomerId,
        /// The payment method token for the provider.
        method: String,
    },
    /// Records the provider's (confirmed) answer to a payment's authorisation.
    SettlePayment {
        payment_id: u64,
        outcome: PaymentOutcome,
    },
    /// Records that the provider refunded a payment.
    RefundSettled {
        payment_id: u64,
    },
    /// The organiser cancels the event: every order is cancelled and refunded.
    Cancel,
    /// Subscribes a customer with an address on file to the event's reminder,
    /// due at `remind_at_ms` (the edge computes it from the listing's start
    /// time). Subscribing again replaces the earlier subscription.
    SubscribeReminder {
        customer: CustomerId,
        channel: Option<Channel>,
        remind_at_ms: Millis,
    },
    UnsubscribeReminder {
        customer: CustomerId,
    },
    /// Queues a customer for `quantity` places of a sold-out tier (or of
    /// any tier).
    JoinWaitlist {
        customer: CustomerId,
        tier: Option<String>,
        quantity: u32,
    },
    LeaveWaitlist {
        customer: CustomerId,
    },
    /// Offers available places to the first waitlisted customer they suit,
    /// as a hold. The leader proposes it when `waitlist_offers_due` names the
    /// event. Like `Tick`, never de-duplicated or recorded.
    OfferWaitlist,
    /// Records that a notice reached its recipient.
    NoticeDelivered {
        notice_id: NoticeId,
        channel: Channel,
    },
    /// Records a failed delivery attempt; `permanent` gives the notice up.
    NoticeFailed {
        notice_id: NoticeId,
        error: String,
        permanent: bool,
    },
}

impl EventCommand {
    /// Housekeeping the leader proposes on its own: not de-duplicated and
    /// not recorded, since it is safe to apply any number of times.
    pub fn is_housekeeping(&self) -> bool {
        matches!(self, EventCommand::OfferWaitlist)
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

/// What an event's group answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSuccess {
    Created {
        event_id: EventId,
        capacity: u32,
    },
    Published {
        event_id: EventId,
        at_ms: Millis,
    },
    Held(HoldView),
    Extended(HoldView),
    Released {
        hold_id: HoldId,
    },
    Confirmed(OrderView),
    OrderCancelled(OrderView),
    CheckedIn {
        code: TicketCode,
        at_ms: Millis,
    },
    PaymentStarted(PaymentView),
    PaymentUpdated(PaymentView),
    Cancelled {
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
}

/// Reads of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventQuery {
    /// The seat map with its counts.
    View,
    Hold(HoldId),
    Order(OrderId),
    Ticket(TicketCode),
    Payment(u64),
    /// A customer's place on the waitlist.
    Waitlist(CustomerId),
    /// A customer's notices about the event.
    Notices(CustomerId),
    // Staff reads. Appended: queries travel between nodes in postcard.
    /// A page of the event's holds, in id order.
    Holds(ListFilter<HoldStatus>),
    /// A page of the event's orders, in id order.
    Orders(ListFilter<OrderStatus>),
    /// What holds or bought each of these seats (at most
    /// `MAX_SEATS_PER_READ`).
    Seats(Vec<String>),
}

/// Most holds or orders one page lists.
pub const MAX_PAGE: u32 = 500;
/// Most seats one `Seats` read asks about.
pub const MAX_SEATS_PER_READ: usize = 500;

/// Which of an event's holds or orders a page lists: those after `after`
/// (an id), of `status` and `holder` when given, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter<S> {
    pub after: Option<u64>,
    pub limit: u32,
    pub status: Option<S>,
    pub holder: Option<CustomerId>,
}

/// One seat as staff see it: its status and the hold or order that has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatDetail {
    pub seat: String,
    pub status: SeatStatusView,
    pub hold_id: Option<HoldId>,
    pub order_id: Option<OrderId>,
    pub holder: Option<CustomerId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventAnswer {
    View(Option<EventView>),
    Hold(Option<HoldView>),
    Order(Option<OrderView>),
    Ticket(Option<TicketView>),
    Payment(Option<PaymentView>),
    Waitlist(Option<WaitlistView>),
    Notices(Vec<NoticeView>),
    Holds(Vec<HoldView>),
    Orders(Vec<OrderView>),
    /// Per asked seat, in the order asked; `None` for an id the event lacks.
    Seats(Vec<Option<SeatDetail>>),
}

impl EventAnswer {
    /// The answer of a read about an event that does not exist.
    pub fn nothing(query: &EventQuery) -> EventAnswer {
        match query {
            EventQuery::View => EventAnswer::View(None),
            EventQuery::Hold(_) => EventAnswer::Hold(None),
            EventQuery::Order(_) => EventAnswer::Order(None),
            EventQuery::Ticket(_) => EventAnswer::Ticket(None),
            EventQuery::Payment(_) => EventAnswer::Payment(None),
            EventQuery::Waitlist(_) => EventAnswer::Waitlist(None),
            EventQuery::Notices(_) => EventAnswer::Notices(Vec::new()),
            EventQuery::Holds(_) => EventAnswer::Holds(Vec::new()),
            EventQuery::Orders(_) => EventAnswer::Orders(Vec::new()),
            EventQuery::Seats(ids) => EventAnswer::Seats(vec![None; ids.len()]),
        }
    }
}
