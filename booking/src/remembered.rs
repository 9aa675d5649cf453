//! What the de-duplication table keeps of an answer: the outcome, compact,
//! not the rendered answer.
//!
//! A request id that comes back gets the answer of its first run, exactly
//! (`BookingState::apply`). Storing that answer whole would put every view
//! shape of the booking path (holds with their seats, orders with their
//! tickets, payments with their history) into every replica's
//! de-duplication records, so that every booking stores its answer twice and
//! a change to a view is a change of the disk format. Instead a
//! [`Remembered`] keeps, for those answers, which hold, order or payment it
//! was and at which moment of its life (created, extended, confirmed,
//! cancelled, after its n-th payment step); a retry renders the view as of
//! that moment from the records, which keep everything such a view shows
//! (`events::render`). A venue never changes, so its id is enough. Small
//! answers with nothing to look up (counts, times, session grants, the
//! map's answers) are kept as they are, and so are the few whose subject can
//! change in ways the records do not keep (an account's role, a listing's
//! text, a notice's delivery, a waitlist position). Rejections are kept as
//! they are.

use serde::{Deserialize, Serialize};

use crate::accounts::{AccountSuccess, AccountView, EmailClaim, SessionGrant};
use crate::catalog::{CatalogSuccess, ListingView};
use crate::cluster_map::MapSuccess;
use crate::command::Success;
use crate::events::notices::NoticeView;
use crate::events::views::WaitlistView;
use crate::events::vocab::EventSuccess;
use crate::ids::{Currency, EventId, HoldId, Millis, OrderId, TicketCode};
use crate::rejection::Rejection;

/// The stored outcome of a request.
pub type Outcome = Result<Remembered, Rejection>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remembered {
    Event(EventOutcome),
    /// The map's answers are small already.
    Map(MapSuccess),
    Account(AccountOutcome),
    Catalog(CatalogOutcome),
    Ticked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventOutcome {
    Created {
        event_id: EventId,
        capacity: u32,
    },
    Published {
        event_id: EventId,
        at_ms: Millis,
    },
    /// The hold as it was created.
    Held(EventId, HoldId),
    /// The hold right after its extension.
    Extended(EventId, HoldId),
    Released {
        hold_id: HoldId,
    },
    /// The order as it was confirmed.
    Confirmed(EventId, OrderId),
    /// The order as it was cancelled.
    OrderCancelled(EventId, OrderId),
    CheckedIn {
        code: TicketCode,
        at_ms: Millis,
    },
    /// The payment after its first step (pending).
    PaymentStarted(EventId, u64),
    /// The payment after its first `steps` steps.
    PaymentUpdated {
        event_id: EventId,
        payment_id: u64,
        steps: u32,
    },
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
    /// Never stored (a waitlist offer is housekeeping); kept for completeness.
    WaitlistOffered(Option<(EventId, HoldId)>),
    NoticeUpdated(NoticeView),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountOutcome {
    EmailClaimed {
        claim: EmailClaim,
        fresh: bool,
    },
    Registered(AccountView),
    Updated(AccountView),
    SessionStarted(SessionGrant),
    SessionRotated(SessionGrant),
    SessionRevoked {
        session_id: u64,
    },
    SessionEnded {
        session_id: u64,
    },
    GuestChallenge {
        challenge_id: u64,
        expires_at_ms: Millis,
    },
    GuestCodeWrong {
        attempts_left: u8,
    },
    GuestVerified(AccountView),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogOutcome {
    /// Venues never change: the id is enough.
    VenueCreated(u64),
    Listed(ListingView),
    /// Small: kept whole.
    FxRatesSet {
        base: Currency,
        count: u32,
    },
}

impl Remembered {
    /// What to keep of `success`.
    pub fn of(success: &Success) -> Remembered {
        match success {
            Success::Event(success) => Remembered::Event(EventOutcome::of(success)),
            Success::Map(success) => Remembered::Map(success.clone()),
            Success::Account(success) => Remembered::Account(AccountOutcome::of(success)),
            Success::Catalog(CatalogSuccess::VenueCreated(venue)) => {
                Remembered::Catalog(CatalogOutcome::VenueCreated(venue.venue_id))
            }
            Success::Catalog(CatalogSuccess::Listed(listing)) => {
                Remembered::Catalog(CatalogOutcome::Listed(listing.clone()))
            }
            Success::Catalog(CatalogSuccess::FxRatesSet { base, count }) => {
                Remembered::Catalog(CatalogOutcome::FxRatesSet {
                    base: *base,
                    count: *count,
                })
            }
            Success::Ticked => Remembered::Ticked,
        }
    }
}

impl EventOutcome {
    fn of(success: &EventSuccess) -> EventOutcome {
        use EventSuccess as S;
        match success {
            S::Created { event_id, capacity } => EventOutcome::Created {
                event_id: *event_id,
                capacity: *capacity,
            },
            S::Published { event_id, at_ms } => EventOutcome::Published {
                event_id: *event_id,
                at_ms: *at_ms,
            },
            S::Held(hold) => EventOutcome::Held(hold.event_id, hold.hold_id),
            S::Extended(hold) => EventOutcome::Extended(hold.event_id, hold.hold_id),
            S::Released { hold_id } => EventOutcome::Released { hold_id: *hold_id },
            S::Confirmed(order) => EventOutcome::Confirmed(order.event_id, order.order_id),
            S::OrderCancelled(order) => EventOutcome::OrderCancelled(order.event_id, order.order_id),
            S::CheckedIn { code, at_ms } => EventOutcome::CheckedIn {
                code: code.clone(),
                at_ms: *at_ms,
            },
            S::PaymentStarted(payment) => EventOutcome::PaymentStarted(payment.event_id, payment.payment_id),
            S::PaymentUpdated(payment) => EventOutcome::PaymentUpdated {
                event_id: payment.event_id,
                payment_id: payment.payment_id,
                steps: payment.history.len() as u32,
            },
            S::Cancelled {
                event_id,
                orders_cancelled,
                refunds,
            } => EventOutcome::Cancelled {
                event_id: *event_id,
                orders_cancelled: *orders_cancelled,
                refunds: *refunds,
            },
            S::ReminderSet(notice) => EventOutcome::ReminderSet(notice.clone()),
            S::ReminderCancelled { event_id } => EventOutcome::ReminderCancelled { event_id: *event_id },
            S::Waitlisted(view) => EventOutcome::Waitlisted(view.clone()),
            S::LeftWaitlist { event_id } => EventOutcome::LeftWaitlist { event_id: *event_id },
            S::WaitlistOffered { hold } => {
                EventOutcome::WaitlistOffered(hold.as_ref().map(|h| (h.event_id, h.hold_id)))
            }
            S::NoticeUpdated(notice) => EventOutcome::NoticeUpdated(notice.clone()),
        }
    }
}

impl AccountOutcome {
    fn of(success: &AccountSuccess) -> AccountOutcome {
        use AccountSuccess as S;
        match success {
            S::EmailClaimed { claim, fresh } => AccountOutcome::EmailClaimed {
                claim: claim.clone(),
                fresh: *fresh,
            },
            S::Registered(view) => AccountOutcome::Registered(view.clone()),
            S::Updated(view) => AccountOutcome::Updated(view.clone()),
            S::SessionStarted(grant) => AccountOutcome::SessionStarted(grant.clone()),
            S::SessionRotated(grant) => AccountOutcome::SessionRotated(grant.clone()),
            S::SessionRevoked { session_id } => AccountOutcome::SessionRevoked {
                session_id: *session_id,
            },
            S::SessionEnded { session_id } => AccountOutcome::SessionEnded {
                session_id: *session_id,
            },
            S::GuestChallenge {
                challenge_id,
                expires_at_ms,
            } => AccountOutcome::GuestChallenge {
                challenge_id: *challenge_id,
                expires_at_ms: *expires_at_ms,
            },
            S::GuestCodeWrong { attempts_left } => AccountOutcome::GuestCodeWrong {
                attempts_left: *attempts_left,
            },
            S::GuestVerified(view) => AccountOutcome::GuestVerified(view.clone()),
        }
    }
}
