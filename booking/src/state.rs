//! `BookingState`: the replicated state machine that the Raft log drives.
//!
//! Contract: `apply` is a deterministic function of the state, the log index and
//! the request. Every replica applies the same entries in the same order and
//! ends up with byte-identical records. So `apply` never reads a clock, an RNG,
//! the environment or a hash map's iteration order, and never fails: business
//! outcomes are `Rejection`s, and a broken internal invariant panics instead of
//! letting a replica silently diverge.
//!
//! Every entry is applied in four steps:
//! 1. Time: clock = max(clock, now_ms). A leader with a slower clock than its
//!    predecessor therefore never moves time backwards.
//! 2. Expiry: every active hold with `expires_at_ms <= clock` expires, in
//!    `(expires_at_ms, event, hold)` order, and its places go back on sale.
//! 3. De-duplication housekeeping: responses older than 24 hours of log time
//!    (`clock - at_ms > DEDUP_WINDOW_MS`) are forgotten.
//! 4. The command: if its request id has a stored response, that response is
//!    returned and nothing else happens, provided the request's fingerprint
//!    (a digest of the command, taken by the leader) matches the stored one;
//!    a different command under a used id is refused with
//!    `idempotency_key_reused` and not stored. Otherwise
//!    the command runs and its response (success or rejection) is stored. If the
//!    table then holds more than `DEDUP_CAPACITY` responses, the oldest go
//!    (by `(at_ms, log_index)`). `Tick` skips this step: it only exists to drive
//!    steps 1 and 2, always answers `Ticked`, and is never stored.
//!
//! Persistence: the state is a set of records (`records` module). Every write
//! marks its key dirty; `take_dirty` hands out the changed records once, and
//! `from_records` rebuilds the state, including everything derived (tier
//! counters, expiry queue, seat lookups, the de-duplication age index), and
//! refuses record sets that break an invariant.
//!
//! This module does not decide booking rules (`event` does) and does no I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::accounts::{AccountRecord, AccountView, Accounts};
use crate::catalog::{Catalog, ListingView, Search, SearchPage, VenueView};
use crate::cluster_map::ClusterMap;
use crate::command::{Command, Rejection, Request, Response, Success, WAITLIST_OFFER_TTL_MS};
use crate::event::{Context, EventState, ExpiryQueue};
use crate::feed::{AvailabilityChange, ChangeCause};
use crate::ids::{CustomerId, EventId, HoldId, Millis, OrderId, RequestId, TicketCode};
use crate::notices::{self, Channel, Delivery, NewNotice, NoticeId, NoticeKind, NoticeView, Notices};
use crate::payments::{
    MAX_PAYMENT_TEXT, PaymentOutcome, PaymentRecord, PaymentStatus, PaymentStep, PaymentView, Payments,
};
use crate::records::{EventRecord, Record, RecordKey, RequestRecord, TicketPlace};
use crate::views::{EventView, HoldView, OrderView, TicketView, WaitlistView};

/// How long a request id is remembered, in log time.
pub const DEDUP_WINDOW_MS: Millis = 24 * 60 * 60 * 1000;
/// Most remembered request ids; beyond this the oldest are forgotten early.
pub const DEDUP_CAPACITY: usize = 1_000_000;

/// Why a set of records cannot be turned back into a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("record {key:?} appears twice")]
    DuplicateKey { key: RecordKey },
    #[error("record under {key:?} is of the wrong kind")]
    WrongKind { key: RecordKey },
    #[error("record {key:?} belongs to an event that does not exist")]
    MissingEvent { key: RecordKey },
    #[error("record {key:?} is invalid: {reason}")]
    InvalidRecord { key: RecordKey, reason: String },
    #[error("records are inconsistent: {0}")]
    Inconsistent(String),
}

#[derive(Debug, Clone)]
pub struct BookingState {
    /// The largest `now_ms` applied so far.
    clock: Millis,
    events: BTreeMap<EventId, EventState>,
    requests: BTreeMap<RequestId, RequestRecord>,
    /// Derived: the request ids of `requests`, oldest first.
    request_age: BTreeMap<(Millis, u64), RequestId>,
    /// Derived: active holds by expiry.
    expiry: ExpiryQueue,
    /// Keys written since the last `take_dirty`. Not part of the state proper.
    dirty: BTreeSet<RecordKey>,
    /// The cluster map; empty except in the metadata group.
    map: ClusterMap,
    /// Accounts and sessions; empty except in a region's accounts group.
    accounts: Accounts,
    /// Payments of this group's events.
    payments: Payments,
    /// Venues and listings; empty except in the metadata group.
    catalog: Catalog,
    /// The notification outbox of this group's events.
    notices: Notices,
    /// `DEDUP_CAPACITY`, except in tests that exercise eviction.
    dedup_capacity: usize,
    /// Places the current rule changed (scratch, drained after every rule).
    touched: Vec<TicketPlace>,
    /// Availability changes not yet taken, if recording is on (`feed`).
    changes: Option<Vec<AvailabilityChange>>,
    /// The entry being applied and how many changes it made so far.
    change_ordinal: (u64, u32),
}

impl Default for BookingState {
    fn default() -> Self {
        BookingState::new()
    }
}

impl BookingState {
    pub fn new() -> Self {
        BookingState {
            clock: 0,
            events: BTreeMap::new(),
            requests: BTreeMap::new(),
            request_age: BTreeMap::new(),
            expiry: ExpiryQueue::new(),
            dirty: BTreeSet::new(),
            map: ClusterMap::default(),
            accounts: Accounts::default(),
            payments: Payments::default(),
            catalog: Catalog::default(),
            notices: Notices::default(),
            dedup_capacity: DEDUP_CAPACITY,
            touched: Vec::new(),
            changes: None,
            change_ordinal: (0, 0),
        }
    }

    /// Turns on recording of availability changes for the live feed; they are
    /// collected until `take_changes`.
    pub fn record_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// Turns recording off (changes not yet taken are dropped), for a replica
    /// nobody is watching.
    pub fn stop_recording_changes(&mut self) {
        self.changes = None;
    }

    /// The availability changes recorded since the last call, in log order.
    pub fn take_changes(&mut self) -> Vec<AvailabilityChange> {
        self.changes.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Turns the places the last rule touched into a feed change (if
    /// recording) and clears them.
    fn note_change(&mut self, log_index: u64, event_id: EventId, cause: ChangeCause) {
        if self.touched.is_empty() {
            return;
        }
        let touched = std::mem::take(&mut self.touched);
        if let Some(changes) = &mut self.changes
            && let Some(event) = self.events.get(&event_id)
        {
            if self.change_ordinal.0 != log_index {
                self.change_ordinal = (log_index, 0);
            }
            let ordinal = self.change_ordinal.1;
            self.change_ordinal.1 += 1;
            changes.push(event.availability_change(&touched, log_index, ordinal, self.clock, cause));
        }
        // Reuse the allocation.
        self.touched = touched;
        self.touched.clear();
    }

    /// Writes a notice to a customer with an address on file; others get none.
    fn notify(
        &mut self,
        log_index: u64,
        event_id: EventId,
        recipient: &CustomerId,
        kind: NoticeKind,
        channel: Option<Channel>,
        due_ms: Millis,
    ) {
        if recipient.account_group().is_some() {
            let notice = NewNotice {
                recipient: recipient.clone(),
                kind,
                channel,
                due_ms,
            };
            self.notices
                .add(&mut self.dirty, event_id, log_index, self.clock, notice);
        }
    }

    /// Schedules "about to expire" for a new or extended hold.
    fn warn_before_expiry(&mut self, log_index: u64, event_id: EventId, hold: &HoldView) {
        self.withdraw_hold_warning(event_id, hold.hold_id);
        let ttl_ms = hold.expires_at_ms.saturating_sub(hold.created_at_ms);
        let kind = NoticeKind::HoldExpiring {
            hold_id: hold.hold_id,
            expires_at_ms: hold.expires_at_ms,
        };
        let due = notices::hold_warning_due(hold.expires_at_ms, ttl_ms);
        self.notify(log_index, event_id, &hold.holder, kind, None, due);
    }

    fn withdraw_hold_warning(&mut self, event_id: EventId, hold_id: HoldId) {
        if let Some(notice) = self.notices.hold_warning(event_id, hold_id) {
            self.notices.withdraw(&mut self.dirty, event_id, notice);
        }
    }

    /// Tells the holder their order is confirmed; the hold's warning goes.
    fn notify_confirmed(&mut self, log_index: u64, event_id: EventId, order: &OrderView) {
        self.withdraw_hold_warning(event_id, order.hold_id);
        let kind = NoticeKind::OrderConfirmed {
            order_id: order.order_id,
            total: order.total,
            tickets: order.tickets.len() as u32,
        };
        self.notify(log_index, event_id, &order.holder, kind, None, self.clock);
    }

    /// Applies one committed entry. `log_index` is the entry's Raft log index:
    /// holds and orders created by it are `HoldId(log_index)` and
    /// `OrderId(log_index)`, unique and identical on every replica.
    pub fn apply(&mut self, log_index: u64, request: &Request) -> Response {
        self.advance_clock(request.now_ms);
        self.expire_holds(log_index);
        self.accounts.expire_sessions(self.clock, &mut self.dirty);
        self.notices.forget_settled(&mut self.dirty, self.clock);
        self.forget_old_requests();
        if request.command.is_housekeeping() {
            return self.execute(log_index, &request.command);
        }
        if let Some(seen) = self.requests.get(&request.request_id) {
            if seen.fingerprint != request.fingerprint {
                return Err(Rejection::IdempotencyKeyReused);
            }
            return seen.response.clone();
        }
        let response = self.execute(log_index, &request.command);
        self.remember(log_index, &request.request_id, request.fingerprint, &response);
        // A rejected command touches nothing; this only clears the scratch list.
        self.touched.clear();
        response
    }

    fn advance_clock(&mut self, now_ms: Millis) {
        if now_ms > self.clock {
            self.clock = now_ms;
            self.dirty.insert(RecordKey::Clock);
        }
    }

    fn expire_holds(&mut self, log_index: u64) {
        while let Some(&(expires_at_ms, event_id, hold_id)) = self.expiry.first() {
            if expires_at_ms > self.clock {
                break;
            }
            self.expiry.pop_first();
            let event = self
                .events
                .get_mut(&event_id)
                .expect("the expiry queue only names existing events");
            let mut ctx = Context {
                now: self.clock,
                log_index,
                dirty: &mut self.dirty,
                expiry: &mut self.expiry,
                touched: &mut self.touched,
            };
            event.expire(&mut ctx, hold_id);
            self.note_change(log_index, event_id, ChangeCause::Expired);
            self.withdraw_hold_warning(event_id, hold_id);
        }
    }

    fn forget_old_requests(&mut self) {
        while let Some((&(at_ms, log_index), _)) = self.request_age.first_key_value() {
            if self.clock.saturating_sub(at_ms) <= DEDUP_WINDOW_MS {
                break;
            }
            self.forget_request(at_ms, log_index);
        }
    }

    fn remember(&mut self, log_index: u64, request_id: &RequestId, fingerprint: u64, response: &Response) {
        let record = RequestRecord {
            log_index,
            at_ms: self.clock,
            fingerprint,
            response: response.clone(),
        };
        self.request_age
            .insert((record.at_ms, log_index), request_id.clone());
        self.requests.insert(request_id.clone(), record);
        self.dirty.insert(RecordKey::Request(request_id.clone()));
        while self.requests.len() > self.dedup_capacity {
            let Some((&(at_ms, oldest), _)) = self.request_age.first_key_value() else {
                break;
            };
            self.forget_request(at_ms, oldest);
        }
    }

    fn forget_request(&mut self, at_ms: Millis, log_index: u64) {
        if let Some(request_id) = self.request_age.remove(&(at_ms, log_index)) {
            self.requests.remove(&request_id);
            self.dirty.insert(RecordKey::Request(request_id));
        }
    }

    fn execute(&mut self, log_index: u64, command: &Command) -> Response {
        match command {
            Command::CreateEvent {
                event_id,
                spec,
                ticket_salt,
                draft,
            } => {
                if self.events.contains_key(event_id) {
                    return Err(Rejection::EventExists);
                }
                let record = EventRecord {
                    spec: spec.clone(),
                    ticket_salt: *ticket_salt,
                    created_at_ms: self.clock,
                    published_at_ms: (!*draft).then_some(self.clock),
                    cancelled_at_ms: None,
                };
                let event = EventState::new(*event_id, record)?;
                let capacity = event.capacity();
                self.events.insert(*event_id, event);
                self.dirty.insert(RecordKey::Event(*event_id));
                Ok(Success::EventCreated {
                    event_id: *event_id,
                    capacity,
                })
            }
            Command::Hold {
                event_id,
                holder,
                selection,
                ttl_ms,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                let hold = event.hold(&mut ctx, holder, selection, *ttl_ms)?;
                self.note_change(log_index, *event_id, ChangeCause::Held);
                self.warn_before_expiry(log_index, *event_id, &hold);
                Ok(Success::Held(hold))
            }
            Command::ExtendHold {
                event_id,
                hold_id,
                holder,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                let hold = event.extend(&mut ctx, *hold_id, holder)?;
                self.warn_before_expiry(log_index, *event_id, &hold);
                Ok(Success::Extended(hold))
            }
            Command::ReleaseHold {
                event_id,
                hold_id,
                holder,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                event.release(&mut ctx, *hold_id, holder)?;
                self.note_change(log_index, *event_id, ChangeCause::Released);
                self.withdraw_hold_warning(*event_id, *hold_id);
                Ok(Success::Released { hold_id: *hold_id })
            }
            Command::ConfirmHold {
                event_id,
                hold_id,
                holder,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                let order = event.confirm(&mut ctx, *hold_id, holder)?;
                self.note_change(log_index, *event_id, ChangeCause::Sold);
                self.notify_confirmed(log_index, *event_id, &order);
                Ok(Success::Confirmed(order))
            }
            Command::CancelOrder {
                event_id,
                order_id,
                holder,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                let view = event.cancel(&mut ctx, *order_id, holder)?;
                self.note_change(log_index, *event_id, ChangeCause::Returned);
                self.refund_order(*event_id, *order_id, "the order was cancelled");
                Ok(Success::Cancelled(view))
            }
            Command::PublishEvent { event_id } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                let at_ms = event.publish(&mut ctx)?;
                Ok(Success::EventPublished {
                    event_id: *event_id,
                    at_ms,
                })
            }
            Command::CancelEvent { event_id } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                let cancelled = event.cancel_event(&mut ctx)?;
                let waiting = event.clear_waitlist(&mut ctx);
                self.note_change(log_index, *event_id, ChangeCause::Returned);
                let mut refunds = 0;
                let mut told = BTreeSet::new();
                for &order_id in &cancelled {
                    let refunded = self.refund_order(*event_id, order_id, "the event was cancelled");
                    refunds += u32::from(refunded);
                    let holder = self.events[event_id]
                        .order_holder(order_id)
                        .expect("cancelled orders exist")
                        .clone();
                    let kind = NoticeKind::EventCancelled {
                        order_id: Some(order_id),
                        refunded,
                    };
                    self.notify(log_index, *event_id, &holder, kind, None, self.clock);
                    told.insert(holder);
                }
                let (warnings, reminders) = self.notices.scheduled_of(*event_id);
                for notice in warnings {
                    self.notices.withdraw(&mut self.dirty, *event_id, notice);
                }
                let mut uninformed: Vec<(CustomerId, Option<Channel>)> = Vec::new();
                for (customer, notice) in reminders {
                    let channel = self.notices.get(*event_id, notice).and_then(|n| n.channel);
                    self.notices.withdraw(&mut self.dirty, *event_id, notice);
                    uninformed.push((customer, channel));
                }
                uninformed.extend(waiting.into_iter().map(|customer| (customer, None)));
                for (customer, channel) in uninformed {
                    if told.insert(customer.clone()) {
                        let kind = NoticeKind::EventCancelled {
                            order_id: None,
                            refunded: false,
                        };
                        self.notify(log_index, *event_id, &customer, kind, channel, self.clock);
                    }
                }
                Ok(Success::EventCancelled {
                    event_id: *event_id,
                    orders_cancelled: cancelled.len() as u32,
                    refunds,
                })
            }
            Command::StartPayment {
                event_id,
                hold_id,
                holder,
                method,
            } => self.start_payment(log_index, *event_id, *hold_id, holder, method),
            Command::SettlePayment {
                event_id,
                payment_id,
                outcome,
            } => self.settle_payment(log_index, *event_id, *payment_id, outcome),
            Command::RefundSettled { event_id, payment_id } => {
                let payment = self
                    .payments
                    .get(*event_id, *payment_id)
                    .ok_or(Rejection::UnknownPayment)?;
                match payment.status {
                    PaymentStatus::Refunded => {}
                    PaymentStatus::RefundPending => {
                        let step = self.step(PaymentStatus::Refunded, None);
                        self.payments
                            .set_status(&mut self.dirty, *event_id, *payment_id, step, None);
                    }
                    _ => return Err(Rejection::PaymentNotRefundable),
                }
                Ok(Success::PaymentUpdated(self.payment_view(*event_id, *payment_id)))
            }
            Command::CheckIn { event_id, code } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                event.check_in(&mut ctx, code).map(|at_ms| Success::CheckedIn {
                    code: code.clone(),
                    at_ms,
                })
            }
            Command::Map(map_command) => self.map.apply(map_command, &mut self.dirty),
            Command::CreateVenue { venue } => {
                self.catalog
                    .create_venue(self.clock, log_index, &mut self.dirty, venue)
            }
            Command::PutListing {
                event_id,
                listing,
                status,
            } => self
                .catalog
                .put_listing(self.clock, &mut self.dirty, *event_id, listing, *status),
            Command::SetListingStatus { event_id, status } => {
                self.catalog
                    .set_status(self.clock, &mut self.dirty, *event_id, *status)
            }
            Command::ClaimEmail { email_key, claim } => {
                self.accounts.claim_email(&mut self.dirty, *email_key, claim)
            }
            Command::Register { customer_id, account } => {
                self.accounts
                    .register(self.clock, &mut self.dirty, customer_id, account)
            }
            Command::SetRole { customer_id, role } => {
                self.accounts.set_role(&mut self.dirty, customer_id, *role)
            }
            Command::StartSession {
                customer_id,
                token_hash,
                ttl_ms,
            } => self.accounts.start_session(
                self.clock,
                log_index,
                &mut self.dirty,
                customer_id,
                *token_hash,
                *ttl_ms,
            ),
            Command::RotateSession {
                session_id,
                presented,
                next,
                ttl_ms,
            } => self.accounts.rotate_session(
                self.clock,
                &mut self.dirty,
                *session_id,
                presented,
                *next,
                *ttl_ms,
            ),
            Command::EndSession {
                session_id,
                presented,
            } => self.accounts.end_session(&mut self.dirty, *session_id, presented),
            Command::Tick => Ok(Success::Ticked),
            Command::StartGuestCheck { check } => {
                self.accounts
                    .start_guest_check(self.clock, log_index, &mut self.dirty, check)
            }
            Command::VerifyGuest {
                challenge_id,
                code_hash,
            } => self
                .accounts
                .verify_guest(self.clock, &mut self.dirty, *challenge_id, code_hash),
            Command::SetNotifications {
                customer_id,
                preference,
            } => self.accounts.set_notify(&mut self.dirty, customer_id, preference),
            Command::SubscribeReminder {
                event_id,
                customer,
                channel,
                remind_at_ms,
            } => {
                let event = self.events.get(event_id).ok_or(Rejection::UnknownEvent)?;
                if event.is_cancelled() {
                    return Err(Rejection::EventCancelled);
                }
                if customer.account_group().is_none() {
                    return Err(Rejection::NoAddress);
                }
                if let Some(old) = self.notices.reminder(*event_id, customer) {
                    self.notices.withdraw(&mut self.dirty, *event_id, old);
                }
                let due = (*remind_at_ms).max(self.clock);
                let reminder = NewNotice {
                    recipient: customer.clone(),
                    kind: NoticeKind::EventReminder,
                    channel: *channel,
                    due_ms: due,
                };
                let notice_id = self
                    .notices
                    .add(&mut self.dirty, *event_id, log_index, self.clock, reminder);
                Ok(Success::ReminderSet(
                    self.notices.view(*event_id, notice_id).expect("just added"),
                ))
            }
            Command::UnsubscribeReminder { event_id, customer } => {
                let notice = self
                    .notices
                    .reminder(*event_id, customer)
                    .ok_or(Rejection::NotSubscribed)?;
                self.notices.withdraw(&mut self.dirty, *event_id, notice);
                Ok(Success::ReminderCancelled { event_id: *event_id })
            }
            Command::JoinWaitlist {
                event_id,
                customer,
                tier,
                quantity,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                event
                    .join_waitlist(&mut ctx, customer, tier.as_deref(), *quantity)
                    .map(Success::Waitlisted)
            }
            Command::LeaveWaitlist { event_id, customer } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                event.leave_waitlist(&mut ctx, customer)?;
                Ok(Success::LeftWaitlist { event_id: *event_id })
            }
            Command::OfferWaitlist { event_id } => self.offer_waitlist(log_index, *event_id),
            Command::NoticeDelivered {
                event_id,
                notice_id,
                channel,
            } => {
                self.notices
                    .get(*event_id, *notice_id)
                    .ok_or(Rejection::UnknownNotice)?;
                self.notices
                    .delivered(&mut self.dirty, *event_id, *notice_id, self.clock, *channel);
                Ok(Success::NoticeUpdated(
                    self.notices.view(*event_id, *notice_id).expect("exists"),
                ))
            }
            Command::NoticeFailed {
                event_id,
                notice_id,
                error,
                permanent,
            } => {
                self.notices
                    .get(*event_id, *notice_id)
                    .ok_or(Rejection::UnknownNotice)?;
                self.notices.failed(
                    &mut self.dirty,
                    *event_id,
                    *notice_id,
                    self.clock,
                    error,
                    *permanent,
                );
                Ok(Success::NoticeUpdated(
                    self.notices.view(*event_id, *notice_id).expect("exists"),
                ))
            }
        }
    }

    /// Serves the waitlist once: the first suitable customer gets a hold and
    /// a notice. Safe to apply any number of times.
    fn offer_waitlist(&mut self, log_index: u64, event_id: EventId) -> Response {
        let (event, mut ctx) = self.event_mut(event_id, log_index)?;
        let Some(offer) = event.offer_waitlist(&mut ctx, WAITLIST_OFFER_TTL_MS) else {
            return Ok(Success::WaitlistOffered { hold: None });
        };
        match offer.result {
            Ok(hold) => {
                self.note_change(log_index, event_id, ChangeCause::Offered);
                let kind = NoticeKind::WaitlistOffer {
                    hold_id: hold.hold_id,
                    expires_at_ms: hold.expires_at_ms,
                    places: hold.seats.len() as u32 + hold.ga.as_ref().map_or(0, |ga| ga.quantity),
                };
                self.notify(log_index, event_id, &offer.customer, kind, None, self.clock);
                Ok(Success::WaitlistOffered { hold: Some(hold) })
            }
            Err(_) => {
                // The customer cannot take the places (they reached a limit
                // meanwhile): their entry went, and the places wait for the
                // next offer.
                self.touched.clear();
                Ok(Success::WaitlistOffered { hold: None })
            }
        }
    }

    /// A payment history step at the current clock.
    fn step(&self, status: PaymentStatus, detail: Option<String>) -> PaymentStep {
        PaymentStep {
            at_ms: self.clock,
            status,
            detail,
        }
    }

    fn payment_view(&self, event_id: EventId, payment_id: u64) -> PaymentView {
        self.payments
            .view(event_id, payment_id)
            .expect("the payment exists")
    }

    fn start_payment(
        &mut self,
        log_index: u64,
        event_id: EventId,
        hold_id: HoldId,
        holder: &CustomerId,
        method: &str,
    ) -> Response {
        crate::shape::check_payment_method(method)?;
        let event = self.events.get(&event_id).ok_or(Rejection::UnknownEvent)?;
        let amount = event.payable_total(hold_id, holder)?;
        if let Some(payment_id) = self.payments.live_for_hold(event_id, hold_id) {
            return Err(Rejection::PaymentInProgress { payment_id });
        }
        let record = PaymentRecord {
            hold_id,
            holder: holder.clone(),
            amount,
            method: method.to_owned(),
            status: PaymentStatus::Pending,
            order_id: None,
            created_at_ms: self.clock,
            history: vec![PaymentStep {
                at_ms: self.clock,
                status: PaymentStatus::Pending,
                detail: None,
            }],
        };
        self.payments.insert(&mut self.dirty, event_id, log_index, record);
        Ok(Success::PaymentStarted(self.payment_view(event_id, log_index)))
    }

    fn settle_payment(
        &mut self,
        log_index: u64,
        event_id: EventId,
        payment_id: u64,
        outcome: &PaymentOutcome,
    ) -> Response {
        let payment = self
            .payments
            .get(event_id, payment_id)
            .ok_or(Rejection::UnknownPayment)?;
        let late_authorisation =
            payment.status == PaymentStatus::Failed && *outcome == PaymentOutcome::Authorised;
        if payment.status != PaymentStatus::Pending && !late_authorisation {
            // A repeated answer, or a decline after the charge was decided:
            // the first decision stands.
            return Ok(Success::PaymentUpdated(self.payment_view(event_id, payment_id)));
        }
        // An authorisation after a decline (the provider changed its answer,
        // or the decline came from a message the provider did not send)
        // takes the money: it buys the hold if the hold is still there, and
        // is refunded otherwise, like any authorisation that comes too late.
        let (hold_id, holder) = (payment.hold_id, payment.holder.clone());
        let (status, order_id, detail) = match outcome {
            PaymentOutcome::Declined { reason } => {
                let mut reason = reason.clone();
                reason.truncate(MAX_PAYMENT_TEXT);
                let kind = NoticeKind::PaymentFailed {
                    hold_id,
                    reason: reason.clone(),
                };
                self.notify(log_index, event_id, &holder, kind, None, self.clock);
                (PaymentStatus::Failed, None, Some(reason))
            }
            PaymentOutcome::Authorised
                if late_authorisation && self.payments.live_for_hold(event_id, hold_id).is_some() =>
            {
                (
                    // Another payment for the hold is under way (or bought it):
                    // this one must not buy it twice.
                    PaymentStatus::RefundPending,
                    None,
                    Some("authorised after another payment for the hold; refunding".to_owned()),
                )
            }
            PaymentOutcome::Authorised => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                match event.confirm(&mut ctx, hold_id, &holder) {
                    Ok(order) => {
                        self.note_change(log_index, event_id, ChangeCause::Sold);
                        self.notify_confirmed(log_index, event_id, &order);
                        (PaymentStatus::Succeeded, Some(order.order_id), None)
                    }
                    Err(why) => (
                        PaymentStatus::RefundPending,
                        None,
                        Some(format!("authorised after the hold ended ({why}); refunding")),
                    ),
                }
            }
        };
        let step = self.step(status, detail);
        self.payments
            .set_status(&mut self.dirty, event_id, payment_id, step, order_id);
        Ok(Success::PaymentUpdated(self.payment_view(event_id, payment_id)))
    }

    /// Marks the payment that bought `order_id` for a refund; whether it had one.
    fn refund_order(&mut self, event_id: EventId, order_id: OrderId, why: &str) -> bool {
        let Some(payment_id) = self.payments.for_order(event_id, order_id) else {
            return false;
        };
        let succeeded = self
            .payments
            .get(event_id, payment_id)
            .is_some_and(|p| p.status == PaymentStatus::Succeeded);
        if succeeded {
            let step = self.step(PaymentStatus::RefundPending, Some(why.to_owned()));
            self.payments
                .set_status(&mut self.dirty, event_id, payment_id, step, None);
        }
        succeeded
    }

    /// The event and the context its rules may change.
    fn event_mut(
        &mut self,
        event_id: EventId,
        log_index: u64,
    ) -> Result<(&mut EventState, Context<'_>), Rejection> {
        let event = self.events.get_mut(&event_id).ok_or(Rejection::UnknownEvent)?;
        let ctx = Context {
            now: self.clock,
            log_index,
            dirty: &mut self.dirty,
            expiry: &mut self.expiry,
            touched: &mut self.touched,
        };
        Ok((event, ctx))
    }

    // ----- Persistence --------------------------------------------------------

    /// Every record written since the last call, each key once and sorted by key;
    /// `None` means the record was deleted (or is back at its default, which is
    /// stored as no record). Writing these in order to a store that held the
    /// previous records yields exactly `records()`.
    pub fn take_dirty(&mut self) -> Vec<(RecordKey, Option<Record>)> {
        let keys = std::mem::take(&mut self.dirty);
        keys.into_iter()
            .map(|key| {
                let record = self.record(&key);
                (key, record)
            })
            .collect()
    }

    /// The record currently stored under `key`, if any.
    pub fn record(&self, key: &RecordKey) -> Option<Record> {
        match key {
            RecordKey::Clock => (self.clock > 0).then_some(Record::Clock(self.clock)),
            RecordKey::Request(request_id) => self.requests.get(request_id).cloned().map(Record::Request),
            key if key.is_cluster_map() => self.map.record(key),
            key if key.is_account() => self.accounts.record(key),
            key if key.is_payment() => self.payments.record(key),
            key if key.is_notice() => self.notices.record(key),
            key if key.is_catalog() => self.catalog.record(key),
            other => {
                let event_id = other.event_id().expect("every other key belongs to an event");
                self.events.get(&event_id)?.record(key)
            }
        }
    }

    /// The whole state as records, sorted by key.
    pub fn records(&self) -> Vec<(RecordKey, Record)> {
        let mut out = Vec::new();
        if self.clock > 0 {
            out.push((RecordKey::Clock, Record::Clock(self.clock)));
        }
        for event in self.events.values() {
            event.append_records(&mut out);
        }
        for (request_id, record) in &self.requests {
            out.push((
                RecordKey::Request(request_id.clone()),
                Record::Request(record.clone()),
            ));
        }
        self.map.append_records(&mut out);
        self.accounts.append_records(&mut out);
        self.payments.append_records(&mut out);
        self.notices.append_records(&mut out);
        self.catalog.append_records(&mut out);
        // Per-variant groups come out in key order already except that all
        // events' records are interleaved by event; one sort settles it.
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Rebuilds a state from records in any order, with all derived indexes, and
    /// checks every invariant. Nothing is dirty afterwards.
    pub fn from_records(records: impl IntoIterator<Item = (RecordKey, Record)>) -> Result<Self, LoadError> {
        let mut sorted = BTreeMap::new();
        for (key, record) in records {
            if !record.fits(&key) {
                return Err(LoadError::WrongKind { key });
            }
            if sorted.contains_key(&key) {
                return Err(LoadError::DuplicateKey { key });
            }
            sorted.insert(key, record);
        }
        let mut state = BookingState::new();
        // Key order puts the clock and every event before the records that refer to them.
        for (key, record) in sorted {
            let invalid = |reason: String| LoadError::InvalidRecord {
                key: key.clone(),
                reason,
            };
            match (&key, record) {
                (RecordKey::Clock, Record::Clock(clock)) => {
                    if clock == 0 {
                        return Err(invalid("a clock at zero must have no record".to_owned()));
                    }
                    state.clock = clock;
                }
                (&RecordKey::Event(event_id), Record::Event(record)) => {
                    let event = EventState::new(event_id, record).map_err(|e| invalid(e.to_string()))?;
                    state.events.insert(event_id, event);
                }
                (RecordKey::Request(request_id), Record::Request(record)) => {
                    if state
                        .request_age
                        .insert((record.at_ms, record.log_index), request_id.clone())
                        .is_some()
                    {
                        return Err(invalid(
                            "two requests share an (at_ms, log_index) position".to_owned(),
                        ));
                    }
                    state.requests.insert(request_id.clone(), record);
                }
                (map_key, record) if map_key.is_cluster_map() => {
                    if !state.map.load(&key, record).map_err(invalid)? {
                        return Err(LoadError::WrongKind { key });
                    }
                }
                (payment_key, record) if payment_key.is_payment() => {
                    let event_id = payment_key.event_id().expect("a payment belongs to an event");
                    if !state.events.contains_key(&event_id) {
                        return Err(LoadError::MissingEvent { key: key.clone() });
                    }
                    if !state.payments.load(&key, record).map_err(invalid)? {
                        return Err(LoadError::WrongKind { key });
                    }
                }
                (notice_key, record) if notice_key.is_notice() => {
                    let event_id = notice_key.event_id().expect("a notice belongs to an event");
                    if !state.events.contains_key(&event_id) {
                        return Err(LoadError::MissingEvent { key: key.clone() });
                    }
                    if !state.notices.load(&key, record).map_err(invalid)? {
                        return Err(LoadError::WrongKind { key });
                    }
                }
                (catalog_key, record) if catalog_key.is_catalog() => {
                    if !state.catalog.load(&key, record).map_err(invalid)? {
                        return Err(LoadError::WrongKind { key });
                    }
                }
                (account_key, record) if account_key.is_account() => {
                    if !state.accounts.load(&key, record).map_err(invalid)? {
                        return Err(LoadError::WrongKind { key });
                    }
                }
                (key, record) => {
                    let event_id = key.event_id().expect("every other key belongs to an event");
                    let event = state
                        .events
                        .get_mut(&event_id)
                        .ok_or_else(|| LoadError::MissingEvent { key: key.clone() })?;
                    event.load(key, record).map_err(invalid)?;
                }
            }
        }
        for (&event_id, event) in &mut state.events {
            event
                .rebuild_counters()
                .map_err(|reason| LoadError::InvalidRecord {
                    key: RecordKey::Event(event_id),
                    reason,
                })?;
            state.expiry.extend(event.active_expiries());
        }
        state.check_invariants().map_err(LoadError::Inconsistent)?;
        state.map.check_invariants().map_err(LoadError::Inconsistent)?;
        state
            .accounts
            .check_invariants(state.clock)
            .map_err(LoadError::Inconsistent)?;
        Ok(state)
    }

    // ----- Reads ----------------------------------------------------------------

    pub fn event_view(&self, event_id: EventId) -> Option<EventView> {
        Some(self.events.get(&event_id)?.event_view())
    }

    /// An event's name (cheaper than its view, which lists every seat).
    pub fn event_name(&self, event_id: EventId) -> Option<String> {
        Some(self.events.get(&event_id)?.name().to_owned())
    }

    pub fn hold_view(&self, event_id: EventId, hold_id: HoldId) -> Option<HoldView> {
        self.events.get(&event_id)?.hold_view(hold_id)
    }

    pub fn order_view(&self, event_id: EventId, order_id: OrderId) -> Option<OrderView> {
        self.events.get(&event_id)?.order_view(order_id)
    }

    pub fn ticket_view(&self, event_id: EventId, code: &TicketCode) -> Option<TicketView> {
        self.events.get(&event_id)?.ticket_view(code)
    }

    /// The earliest `expires_at_ms` among active holds. Once the leader's clock
    /// passes it, the leader proposes a `Tick` so the places go back on sale even
    /// if no other write arrives.
    pub fn next_hold_expiry(&self) -> Option<Millis> {
        self.expiry.first().map(|&(expires_at_ms, _, _)| expires_at_ms)
    }

    pub fn account_view(&self, customer_id: &CustomerId) -> Option<AccountView> {
        self.accounts.view(customer_id)
    }

    /// Who holds an e-mail address (metadata group).
    pub fn email_claim(&self, email_key: &crate::accounts::TokenHash) -> Option<crate::accounts::EmailClaim> {
        self.accounts.claim(email_key)
    }

    /// An account with its password hash, by e-mail address (for login).
    pub fn account_by_email(&self, email: &str) -> Option<(CustomerId, AccountRecord)> {
        self.accounts.by_email(email)
    }

    /// The cluster map (meaningful in the metadata group only).
    pub fn cluster_map(&self) -> &ClusterMap {
        &self.map
    }

    /// The state machine's clock: the largest `now_ms` applied so far.
    pub fn clock_ms(&self) -> Millis {
        self.clock
    }

    /// Checks every invariant of every event plus the cross-event indexes.
    /// Linear in the size of the state: for tests and after loading.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut expected_expiry = ExpiryQueue::new();
        for event in self.events.values() {
            event.check_invariants(self.clock)?;
            expected_expiry.extend(event.active_expiries());
        }
        if expected_expiry != self.expiry {
            return Err(format!(
                "expiry queue {:?} does not match the active holds {expected_expiry:?}",
                self.expiry
            ));
        }
        self.accounts.check_invariants(self.clock)?;
        self.check_payments()?;
        self.check_notices()?;
        self.catalog.check_invariants()?;
        if self.requests.len() != self.request_age.len() {
            return Err("request age index and request table differ in size".to_owned());
        }
        for (&(at_ms, log_index), request_id) in &self.request_age {
            let record = self
                .requests
                .get(request_id)
                .ok_or("request age index names a missing request")?;
            if (record.at_ms, record.log_index) != (at_ms, log_index) {
                return Err(format!("request {request_id} is indexed at the wrong age"));
            }
            if at_ms > self.clock || self.clock - at_ms > DEDUP_WINDOW_MS {
                return Err(format!(
                    "request {request_id} at {at_ms} is outside the window at {}",
                    self.clock
                ));
            }
        }
        if self.requests.len() > self.dedup_capacity {
            return Err(format!(
                "{} requests remembered, more than {}",
                self.requests.len(),
                self.dedup_capacity
            ));
        }
        Ok(())
    }
}

impl BookingState {
    /// No money without a ticket: a succeeded payment has a live order, and a
    /// live order bought with a payment has a succeeded one.
    fn check_payments(&self) -> Result<(), String> {
        self.payments.check_indexes()?;
        for (&(event_id, payment_id), payment) in self.payments.payments() {
            let event = self
                .events
                .get(&event_id)
                .ok_or_else(|| format!("payment {payment_id} of a missing event {event_id}"))?;
            if !event.has_hold(payment.hold_id) {
                return Err(format!(
                    "payment {payment_id} pays for a missing hold {}",
                    payment.hold_id
                ));
            }
            let live_order = payment.order_id.is_some_and(|o| event.order_is_live(o));
            match payment.status {
                PaymentStatus::Succeeded if !live_order => {
                    return Err(format!("payment {payment_id} succeeded without a live order"));
                }
                PaymentStatus::Failed | PaymentStatus::Pending if payment.order_id.is_some() => {
                    return Err(format!(
                        "payment {payment_id} is {:?} with an order",
                        payment.status
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every notice belongs to an existing event; a pending hold warning
    /// belongs to an active hold of that event.
    fn check_notices(&self) -> Result<(), String> {
        self.notices.check_indexes()?;
        for &(event_id, notice_id) in self.notices.keys() {
            let event = self
                .events
                .get(&event_id)
                .ok_or_else(|| format!("notice {notice_id} of a missing event {event_id}"))?;
            let notice = self.notices.get(event_id, notice_id).expect("listed");
            if let (NoticeKind::HoldExpiring { hold_id, .. }, Delivery::Pending { .. }) =
                (&notice.kind, &notice.delivery)
                && event.active_hold_expiry(*hold_id).is_none()
            {
                return Err(format!(
                    "notice {notice_id} warns about hold {hold_id}, which is not active"
                ));
            }
        }
        Ok(())
    }

    /// Notices due for delivery at `now_ms`, soonest first (for the leader's
    /// dispatcher).
    pub fn due_notices(&self, now_ms: Millis, limit: usize) -> Vec<NoticeView> {
        self.notices.due(now_ms, limit)
    }

    pub fn notice_view(&self, event_id: EventId, notice_id: NoticeId) -> Option<NoticeView> {
        self.notices.view(event_id, notice_id)
    }

    /// A customer's notices about an event.
    pub fn notices_of(&self, event_id: EventId, customer: &CustomerId) -> Vec<NoticeView> {
        self.notices.of(event_id, customer)
    }

    pub fn waitlist_view(&self, event_id: EventId, customer: &CustomerId) -> Option<WaitlistView> {
        self.events.get(&event_id)?.waitlist_view(customer)
    }

    /// Events where a waitlisted customer could be offered places now (the
    /// leader proposes `OfferWaitlist` for each).
    pub fn waitlist_offers_due(&self) -> Vec<EventId> {
        self.events
            .iter()
            .filter(|(_, event)| event.offer_due())
            .map(|(&event_id, _)| event_id)
            .collect()
    }

    pub fn venue(&self, venue_id: u64) -> Option<VenueView> {
        self.catalog.venue_view(venue_id)
    }

    pub fn venues(&self, after: u64, limit: u32) -> Vec<VenueView> {
        self.catalog.venues(after, limit)
    }

    pub fn listing(&self, event_id: EventId, now_ms: Millis) -> Option<ListingView> {
        self.catalog.listing_view(event_id, now_ms)
    }

    pub fn search(&self, search: &Search) -> SearchPage {
        self.catalog.search(search)
    }

    /// A customer's orders in this group's events.
    pub fn orders_of(&self, customer: &CustomerId) -> Vec<OrderView> {
        self.events
            .values()
            .flat_map(|event| event.orders_of(customer))
            .collect()
    }

    pub fn payment_view_of(&self, event_id: EventId, payment_id: u64) -> Option<PaymentView> {
        self.payments.view(event_id, payment_id)
    }

    /// Payments waiting for the provider or for a refund (for the leader's worker).
    pub fn open_payments(&self) -> Vec<PaymentView> {
        self.payments.open().collect()
    }
}

#[cfg(test)]
impl BookingState {
    /// A state whose de-duplication table holds at most `capacity` responses, so
    /// that eviction can be tested without a million requests.
    fn with_dedup_capacity(capacity: usize) -> Self {
        BookingState {
            dedup_capacity: capacity,
            ..BookingState::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{DEFAULT_HOLD_TTL_MS, Selection};
    use crate::ids::CustomerId;
    use crate::layout::EventSpec;

    fn request(id: &str, now_ms: Millis, command: Command) -> Request {
        Request {
            request_id: RequestId::new(id).unwrap(),
            now_ms,
            fingerprint: 0,
            command,
        }
    }

    fn create(event: u64) -> Command {
        create_with(event, EventSpec::demo_venue(), false)
    }

    fn create_with(event: u64, spec: EventSpec, draft: bool) -> Command {
        Command::CreateEvent {
            event_id: EventId(event),
            spec,
            ticket_salt: [0; 16],
            draft,
        }
    }

    fn hold(event: u64, seat: &str) -> Command {
        Command::Hold {
            event_id: EventId(event),
            holder: CustomerId::new("alice").unwrap(),
            selection: Selection::Seats(vec![seat.to_owned()]),
            ttl_ms: None,
        }
    }

    #[test]
    fn a_full_dedup_table_forgets_the_oldest_request_first() {
        let mut state = BookingState::with_dedup_capacity(2);
        state.apply(1, &request("a", 10, create(1))).unwrap();
        state.apply(2, &request("b", 10, hold(1, "A-1-1"))).unwrap();
        state.take_dirty();
        state.apply(3, &request("c", 20, hold(1, "A-1-2"))).unwrap();
        assert_eq!(
            state.requests.keys().map(RequestId::as_str).collect::<Vec<_>>(),
            ["b", "c"]
        );
        let dirty: Vec<_> = state
            .take_dirty()
            .into_iter()
            .filter(|(k, _)| matches!(k, RecordKey::Request(_)))
            .collect();
        assert_eq!(dirty[0], (RecordKey::Request(RequestId::new("a").unwrap()), None));
        // "a" is forgotten, so re-sending it is a new request: the event exists now.
        assert_eq!(
            state.apply(4, &request("a", 30, create(1))),
            Err(Rejection::EventExists)
        );
        assert_eq!(state.check_invariants(), Ok(()));
        // Eviction order among equal timestamps follows the log index.
        assert_eq!(
            state.requests.keys().map(RequestId::as_str).collect::<Vec<_>>(),
            ["a", "c"]
        );
    }

    #[test]
    fn from_records_refuses_broken_record_sets() {
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        state.apply(2, &request("b", 10, hold(1, "A-1-1"))).unwrap();
        let records = state.records();
        assert!(BookingState::from_records(records.clone()).is_ok());

        // A seat record without the hold that would justify it.
        let without_hold: Vec<_> = records
            .iter()
            .filter(|(k, _)| !matches!(k, RecordKey::Hold(..)))
            .cloned()
            .collect();
        assert!(matches!(
            BookingState::from_records(without_hold),
            Err(LoadError::Inconsistent(_))
        ));

        // A record of the wrong kind.
        let mut wrong = records.clone();
        wrong.push((RecordKey::Seat(EventId(1), 5), Record::Clock(3)));
        assert!(matches!(
            BookingState::from_records(wrong),
            Err(LoadError::WrongKind { .. })
        ));

        // The same key twice.
        let mut twice = records.clone();
        twice.push(records[0].clone());
        assert!(matches!(
            BookingState::from_records(twice),
            Err(LoadError::DuplicateKey { .. })
        ));

        // A record of an event that does not exist.
        let orphan = vec![(
            RecordKey::Seat(EventId(9), 0),
            Record::Seat(crate::records::SeatRecord::Held(HoldId(1))),
        )];
        assert!(matches!(
            BookingState::from_records(orphan),
            Err(LoadError::MissingEvent { .. })
        ));

        // A seat index beyond the event's seat map.
        let mut beyond = records.clone();
        beyond.push((
            RecordKey::Seat(EventId(1), 100),
            Record::Seat(crate::records::SeatRecord::Held(HoldId(2))),
        ));
        assert!(matches!(
            BookingState::from_records(beyond),
            Err(LoadError::InvalidRecord { .. })
        ));

        // A default value stored as a record.
        let mut zero_clock = records;
        zero_clock[0] = (RecordKey::Clock, Record::Clock(0));
        assert!(matches!(
            BookingState::from_records(zero_clock),
            Err(LoadError::InvalidRecord { .. })
        ));
    }

    #[test]
    fn from_records_reports_corrupt_holds_instead_of_panicking() {
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        state.apply(2, &request("b", 10, hold(1, "A-1-1"))).unwrap();
        let records = state.records();
        let corrupt = |change: &dyn Fn(&mut crate::records::HoldRecord)| {
            let mut records = records.clone();
            for (_, record) in &mut records {
                if let Record::Hold(hold) = record {
                    change(hold);
                }
            }
            BookingState::from_records(records)
        };
        let beyond_map = corrupt(&|hold| hold.places = crate::records::HeldPlaces::Seats(vec![0, 1_000]));
        assert!(
            matches!(beyond_map, Err(LoadError::Inconsistent(_))),
            "{beyond_map:?}"
        );
        let huge_ga = corrupt(&|hold| {
            hold.places = crate::records::HeldPlaces::Ga {
                area: 0,
                quantity: u32::MAX,
            };
        });
        assert!(matches!(huge_ga, Err(LoadError::Inconsistent(_))), "{huge_ga:?}");
        let unknown_area =
            corrupt(&|hold| hold.places = crate::records::HeldPlaces::Ga { area: 7, quantity: 1 });
        assert!(
            matches!(unknown_area, Err(LoadError::Inconsistent(_))),
            "{unknown_area:?}"
        );
    }

    #[test]
    fn a_used_key_with_another_body_is_refused_and_changes_nothing() {
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        let first = state.apply(2, &request("k", 10, hold(1, "A-1-1")));
        assert!(first.is_ok());
        // The same key, the same body: the first answer again.
        assert_eq!(state.apply(3, &request("k", 11, hold(1, "A-1-1"))), first);
        // The same key for another seat: refused, and the seat stays available.
        let mut other = request("k", 12, hold(1, "A-1-2"));
        other.fingerprint = 1;
        assert_eq!(state.apply(4, &other), Err(Rejection::IdempotencyKeyReused));
        assert_eq!(state.event_view(EventId(1)).unwrap().held, 1);
        assert_eq!(state.check_invariants(), Ok(()));
    }

    #[test]
    fn accounts_and_sessions_survive_a_reload() {
        use crate::accounts::{NewAccount, Role};
        let mut state = BookingState::new();
        let alice = CustomerId::new("u.1.abc").unwrap();
        let register = Command::Register {
            customer_id: alice.clone(),
            account: NewAccount {
                email: "alice@example.org".to_owned(),
                name: "Alice".to_owned(),
                region: "eu-west".to_owned(),
                role: Role::Customer,
                password_hash: "$argon2id$x".to_owned(),
            },
        };
        state.apply(1, &request("r", 10, register)).unwrap();
        let start = Command::StartSession {
            customer_id: alice.clone(),
            token_hash: [4; 32],
            ttl_ms: 1_000,
        };
        state.apply(2, &request("s", 10, start)).unwrap();
        let loaded = BookingState::from_records(state.records()).unwrap();
        assert_eq!(loaded.records(), state.records());
        assert_eq!(loaded.account_by_email("alice@example.org").unwrap().0, alice);
        // The session expires with log time and its record goes.
        state.apply(3, &request("t", 2_000, Command::Tick)).unwrap();
        assert!(
            !state
                .take_dirty()
                .iter()
                .any(|(k, v)| matches!(k, RecordKey::Session(_)) && v.is_some())
        );
        assert!(
            !state
                .records()
                .iter()
                .any(|(k, _)| matches!(k, RecordKey::Session(_)))
        );
    }

    fn pay(event: u64, hold: u64) -> Command {
        Command::StartPayment {
            event_id: EventId(event),
            hold_id: HoldId(hold),
            holder: CustomerId::new("alice").unwrap(),
            method: "tok_visa".to_owned(),
        }
    }

    fn settle(event: u64, payment: u64, outcome: PaymentOutcome) -> Command {
        Command::SettlePayment {
            event_id: EventId(event),
            payment_id: payment,
            outcome,
        }
    }

    fn payment_status(state: &BookingState, event: u64, payment: u64) -> PaymentStatus {
        state.payment_view_of(EventId(event), payment).unwrap().status
    }

    #[test]
    fn an_authorised_payment_confirms_the_hold_in_the_same_entry() {
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        state.apply(2, &request("h", 10, hold(1, "A-1-1"))).unwrap();
        let started = state.apply(3, &request("p", 11, pay(1, 2))).unwrap();
        assert!(
            matches!(started, Success::PaymentStarted(ref v) if v.status == PaymentStatus::Pending && v.amount.amount_minor > 0)
        );
        // A second checkout of the same hold is refused while the first is pending.
        assert_eq!(
            state.apply(4, &request("p2", 11, pay(1, 2))),
            Err(Rejection::PaymentInProgress { payment_id: 3 })
        );
        let settled = state
            .apply(5, &request("s", 12, settle(1, 3, PaymentOutcome::Authorised)))
            .unwrap();
        let Success::PaymentUpdated(view) = settled else {
            panic!("{settled:?}")
        };
        assert_eq!(view.status, PaymentStatus::Succeeded);
        assert_eq!(state.event_view(EventId(1)).unwrap().sold, 1);
        assert!(state.order_view(EventId(1), view.order_id.unwrap()).is_some());
        // A repeated webhook changes nothing.
        let again = state.apply(
            6,
            &request(
                "s2",
                13,
                settle(1, 3, PaymentOutcome::Declined { reason: "x".into() }),
            ),
        );
        assert!(matches!(again, Ok(Success::PaymentUpdated(ref v)) if v.status == PaymentStatus::Succeeded));
        assert_eq!(state.check_invariants(), Ok(()));
        let loaded = BookingState::from_records(state.records()).unwrap();
        assert_eq!(loaded.records(), state.records());
    }

    #[test]
    fn a_declined_payment_leaves_the_hold_usable_and_a_late_one_is_refunded() {
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        state.apply(2, &request("h", 10, hold(1, "A-1-1"))).unwrap();
        state.apply(3, &request("p", 11, pay(1, 2))).unwrap();
        let declined = PaymentOutcome::Declined {
            reason: "card_declined".into(),
        };
        state.apply(4, &request("s", 12, settle(1, 3, declined))).unwrap();
        assert_eq!(payment_status(&state, 1, 3), PaymentStatus::Failed);
        assert_eq!(state.event_view(EventId(1)).unwrap().held, 1);
        // Another attempt for the same hold; the hold expires before the answer.
        state.apply(5, &request("p2", 13, pay(1, 2))).unwrap();
        state
            .apply(6, &request("t", 10 + DEFAULT_HOLD_TTL_MS, Command::Tick))
            .unwrap();
        state
            .apply(
                7,
                &request(
                    "s2",
                    10 + DEFAULT_HOLD_TTL_MS + 1,
                    settle(1, 5, PaymentOutcome::Authorised),
                ),
            )
            .unwrap();
        assert_eq!(payment_status(&state, 1, 5), PaymentStatus::RefundPending);
        assert_eq!(state.event_view(EventId(1)).unwrap().sold, 0);
        assert_eq!(state.open_payments().len(), 1);
        let refunded = Command::RefundSettled {
            event_id: EventId(1),
            payment_id: 5,
        };
        state
            .apply(8, &request("r", 10 + DEFAULT_HOLD_TTL_MS + 2, refunded))
            .unwrap();
        assert_eq!(payment_status(&state, 1, 5), PaymentStatus::Refunded);
        assert!(state.open_payments().is_empty());
        assert_eq!(state.check_invariants(), Ok(()));
    }

    #[test]
    fn an_authorisation_after_a_decline_buys_the_hold_or_is_refunded() {
        let declined = || PaymentOutcome::Declined {
            reason: "card_declined".into(),
        };
        // The decline came first (forged, or the provider changed its mind);
        // the hold is still there, so the authorisation buys it.
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        state.apply(2, &request("h", 10, hold(1, "A-1-1"))).unwrap();
        state.apply(3, &request("p", 11, pay(1, 2))).unwrap();
        state
            .apply(4, &request("d", 12, settle(1, 3, declined())))
            .unwrap();
        assert_eq!(payment_status(&state, 1, 3), PaymentStatus::Failed);
        state
            .apply(5, &request("ok", 13, settle(1, 3, PaymentOutcome::Authorised)))
            .unwrap();
        assert_eq!(payment_status(&state, 1, 3), PaymentStatus::Succeeded);
        assert_eq!(state.event_view(EventId(1)).unwrap().sold, 1);
        assert_eq!(state.check_invariants(), Ok(()));

        // Meanwhile a second payment for the hold was started: the late
        // authorisation must not buy it twice, so it is refunded, and the
        // second payment still decides the hold.
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        state.apply(2, &request("h", 10, hold(1, "A-1-1"))).unwrap();
        state.apply(3, &request("p", 11, pay(1, 2))).unwrap();
        state
            .apply(4, &request("d", 12, settle(1, 3, declined())))
            .unwrap();
        state.apply(5, &request("p2", 13, pay(1, 2))).unwrap();
        state
            .apply(6, &request("ok", 14, settle(1, 3, PaymentOutcome::Authorised)))
            .unwrap();
        assert_eq!(payment_status(&state, 1, 3), PaymentStatus::RefundPending);
        assert_eq!(state.event_view(EventId(1)).unwrap().sold, 0);
        state
            .apply(7, &request("ok2", 15, settle(1, 5, PaymentOutcome::Authorised)))
            .unwrap();
        assert_eq!(payment_status(&state, 1, 5), PaymentStatus::Succeeded);
        assert_eq!(state.event_view(EventId(1)).unwrap().sold, 1);
        assert_eq!(state.check_invariants(), Ok(()));
        let loaded = BookingState::from_records(state.records()).unwrap();
        assert_eq!(loaded.records(), state.records());
    }

    #[test]
    fn cancelling_the_event_cancels_every_order_and_refunds_the_paid_ones() {
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        state.apply(2, &request("h", 10, hold(1, "A-1-1"))).unwrap();
        state.apply(3, &request("p", 11, pay(1, 2))).unwrap();
        state
            .apply(4, &request("s", 12, settle(1, 3, PaymentOutcome::Authorised)))
            .unwrap();
        // A box-office sale without a payment, and a hold still open.
        state.apply(5, &request("h2", 12, hold(1, "A-1-2"))).unwrap();
        let confirm = Command::ConfirmHold {
            event_id: EventId(1),
            hold_id: HoldId(5),
            holder: CustomerId::new("alice").unwrap(),
        };
        state.apply(6, &request("c2", 12, confirm)).unwrap();
        state.apply(7, &request("h3", 12, hold(1, "A-1-3"))).unwrap();
        let cancelled = state.apply(
            8,
            &request("x", 13, Command::CancelEvent { event_id: EventId(1) }),
        );
        assert_eq!(
            cancelled,
            Ok(Success::EventCancelled {
                event_id: EventId(1),
                orders_cancelled: 2,
                refunds: 1
            })
        );
        let view = state.event_view(EventId(1)).unwrap();
        assert_eq!((view.held, view.sold, view.cancelled_at_ms), (0, 0, Some(13)));
        assert_eq!(payment_status(&state, 1, 3), PaymentStatus::RefundPending);
        assert_eq!(
            state.apply(9, &request("h4", 14, hold(1, "A-1-4"))),
            Err(Rejection::EventCancelled)
        );
        assert_eq!(
            state.apply(10, &request("p4", 14, pay(1, 7))),
            Err(Rejection::EventCancelled)
        );
        assert_eq!(state.check_invariants(), Ok(()));
        let loaded = BookingState::from_records(state.records()).unwrap();
        assert_eq!(loaded.records(), state.records());
    }

    #[test]
    fn a_draft_takes_no_holds_until_published() {
        let mut state = BookingState::new();
        let create = create_with(1, EventSpec::demo_venue(), true);
        state.apply(1, &request("a", 10, create)).unwrap();
        assert_eq!(state.event_view(EventId(1)).unwrap().status, "draft");
        assert_eq!(
            state.apply(2, &request("h", 11, hold(1, "A-1-1"))),
            Err(Rejection::EventNotOnSale)
        );
        let publish = || Command::PublishEvent { event_id: EventId(1) };
        let first = state.apply(3, &request("p", 12, publish()));
        assert_eq!(
            first,
            Ok(Success::EventPublished {
                event_id: EventId(1),
                at_ms: 12
            })
        );
        // Publishing again answers with the first time.
        assert_eq!(state.apply(4, &request("p2", 13, publish())), first);
        assert!(state.apply(5, &request("h2", 14, hold(1, "A-1-1"))).is_ok());
        assert_eq!(state.event_view(EventId(1)).unwrap().status, "on_sale");
        let loaded = BookingState::from_records(state.records()).unwrap();
        assert_eq!(loaded.records(), state.records());
    }

    #[test]
    fn active_holds_per_customer_are_capped() {
        let mut state = BookingState::new();
        let mut spec = EventSpec::demo_venue();
        spec.max_active_holds_per_customer = Some(2);
        let create = create_with(1, spec, false);
        state.apply(1, &request("a", 10, create)).unwrap();
        state.apply(2, &request("h1", 10, hold(1, "A-1-1"))).unwrap();
        state.apply(3, &request("h2", 10, hold(1, "A-1-2"))).unwrap();
        assert_eq!(
            state.apply(4, &request("h3", 10, hold(1, "A-1-3"))),
            Err(Rejection::TooManyHolds { limit: 2 })
        );
        // A released hold frees a slot.
        let release = Command::ReleaseHold {
            event_id: EventId(1),
            hold_id: HoldId(2),
            holder: CustomerId::new("alice").unwrap(),
        };
        state.apply(5, &request("r", 11, release)).unwrap();
        assert!(state.apply(6, &request("h4", 12, hold(1, "A-1-3"))).is_ok());
        assert_eq!(state.check_invariants(), Ok(()));
        let loaded = BookingState::from_records(state.records()).unwrap();
        assert_eq!(loaded.check_invariants(), Ok(()));
    }

    #[test]
    fn holds_are_taken_only_inside_the_sales_window() {
        let mut state = BookingState::new();
        let mut spec = EventSpec::demo_venue();
        spec.sales_start_ms = Some(100);
        spec.sales_end_ms = Some(200);
        let create = create_with(1, spec, false);
        state.apply(1, &request("a", 10, create)).unwrap();
        assert_eq!(
            state.apply(2, &request("early", 99, hold(1, "A-1-1"))),
            Err(Rejection::SalesNotOpen { opens_at_ms: 100 })
        );
        assert!(state.apply(3, &request("open", 100, hold(1, "A-1-1"))).is_ok());
        assert_eq!(
            state.apply(4, &request("late", 200, hold(1, "A-1-2"))),
            Err(Rejection::SalesClosed { closed_at_ms: 200 })
        );
        assert_eq!(state.check_invariants(), Ok(()));
    }

    #[test]
    fn from_records_accepts_any_order() {
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        state.apply(2, &request("b", 10, hold(1, "A-1-1"))).unwrap();
        let mut records = state.records();
        records.reverse();
        let loaded = BookingState::from_records(records).unwrap();
        assert_eq!(loaded.records(), state.records());
        assert_eq!(loaded.next_hold_expiry(), Some(600_010));
    }
}

/// The live feed, the outbox and the waitlist, as the rules drive them.
#[cfg(test)]
mod outbox_tests {
    use super::*;
    use crate::command::Selection;
    use crate::ids::{Currency, Money};
    use crate::layout::{EventSpec, PriceTier};
    use crate::views::SeatStatusView;

    const EVENT: EventId = EventId(1);

    fn alice() -> CustomerId {
        CustomerId::new("u.1.alice").unwrap()
    }

    fn bob() -> CustomerId {
        CustomerId::new("u.1.bob").unwrap()
    }

    /// One row of two seats in one tier.
    fn tiny() -> EventSpec {
        let tier = PriceTier {
            name: "std".to_owned(),
            price: Money::new(1000, Currency::EUR),
        };
        EventSpec::grid("Tiny", Currency::EUR, 1, 1, 2, vec![tier])
    }

    struct Log {
        state: BookingState,
        index: u64,
    }

    impl Log {
        fn new() -> Log {
            let mut state = BookingState::new();
            state.record_changes();
            let mut log = Log { state, index: 0 };
            log.run(
                0,
                Command::CreateEvent {
                    event_id: EVENT,
                    spec: tiny(),
                    ticket_salt: [0; 16],
                    draft: false,
                },
            )
            .unwrap();
            log
        }

        fn run(&mut self, now_ms: Millis, command: Command) -> Response {
            self.index += 1;
            let request = Request {
                request_id: RequestId::new(&format!("r{}", self.index)).unwrap(),
                now_ms,
                fingerprint: 0,
                command,
            };
            let response = self.state.apply(self.index, &request);
            self.state.check_invariants().unwrap();
            response
        }

        fn hold(&mut self, now_ms: Millis, who: &CustomerId, seats: &[&str], ttl_ms: u64) -> HoldView {
            let command = Command::Hold {
                event_id: EVENT,
                holder: who.clone(),
                selection: Selection::Seats(seats.iter().map(|s| (*s).to_owned()).collect()),
                ttl_ms: Some(ttl_ms),
            };
            match self.run(now_ms, command) {
                Ok(Success::Held(hold)) => hold,
                other => panic!("hold failed: {other:?}"),
            }
        }

        fn kinds_of(&self, who: &CustomerId) -> Vec<(&'static str, bool)> {
            self.state
                .notices_of(EVENT, who)
                .iter()
                .map(|n| (n.kind.name(), matches!(n.delivery, Delivery::Pending { .. })))
                .collect()
        }
    }

    #[test]
    fn every_change_of_places_is_in_the_feed_in_log_order() {
        let mut log = Log::new();
        let first = log.hold(10, &alice(), &["A-1-1"], 60_000);
        log.run(
            20,
            Command::ConfirmHold {
                event_id: EVENT,
                hold_id: first.hold_id,
                holder: alice(),
            },
        )
        .unwrap();
        log.hold(30, &bob(), &["A-1-2"], 1_000);
        // Bob's hold expires in the entry that carries the next command.
        log.run(5_000, Command::Tick).unwrap();
        let changes = log.state.take_changes();
        let summary: Vec<(u64, ChangeCause, &str, SeatStatusView, u32)> = changes
            .iter()
            .map(|c| {
                (
                    c.log_index,
                    c.cause,
                    c.seats[0].seat.as_str(),
                    c.seats[0].status,
                    c.available,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (2, ChangeCause::Held, "A-1-1", SeatStatusView::Held, 1),
                (3, ChangeCause::Sold, "A-1-1", SeatStatusView::Sold, 1),
                (4, ChangeCause::Held, "A-1-2", SeatStatusView::Held, 0),
                (5, ChangeCause::Expired, "A-1-2", SeatStatusView::Available, 1),
            ]
        );
        assert_eq!(changes[3].tiers[0].available, 1);
        assert!(log.state.take_changes().is_empty(), "taken once");
        // A rejected command changes nothing and records nothing.
        assert!(
            log.run(
                6_000,
                Command::ConfirmHold {
                    event_id: EVENT,
                    hold_id: first.hold_id,
                    holder: alice(),
                }
            )
            .is_err()
        );
        assert!(log.state.take_changes().is_empty());
    }

    #[test]
    fn confirmation_replaces_the_expiry_warning_and_survives_a_reload() {
        let mut log = Log::new();
        let hold = log.hold(0, &alice(), &["A-1-1"], 600_000);
        let warning = log.state.due_notices(u64::MAX, 10);
        assert_eq!(warning.len(), 1);
        assert_eq!(warning[0].kind.name(), "hold_expiring");
        assert!(
            log.state.due_notices(479_999, 10).is_empty(),
            "due two minutes before expiry"
        );
        log.run(
            1_000,
            Command::ConfirmHold {
                event_id: EVENT,
                hold_id: hold.hold_id,
                holder: alice(),
            },
        )
        .unwrap();
        assert_eq!(log.kinds_of(&alice()), [("order_confirmed", true)]);
        let due = log.state.due_notices(1_000, 10);
        assert_eq!(due.len(), 1);
        log.run(
            2_000,
            Command::NoticeDelivered {
                event_id: EVENT,
                notice_id: due[0].notice_id,
                channel: Channel::Email,
            },
        )
        .unwrap();
        assert_eq!(log.kinds_of(&alice()), [("order_confirmed", false)]);
        assert!(log.state.due_notices(u64::MAX, 10).is_empty());

        let reloaded = BookingState::from_records(log.state.records()).unwrap();
        assert_eq!(
            reloaded.notices_of(EVENT, &alice()),
            log.state.notices_of(EVENT, &alice())
        );

        // Holders without an account (staff sales) get no notices at all.
        let walk_in = CustomerId::new("walk-in").unwrap();
        log.hold(3_000, &walk_in, &["A-1-2"], 600_000);
        assert!(log.state.notices_of(EVENT, &walk_in).is_empty());
    }

    #[test]
    fn freed_places_go_to_the_waitlist_in_order() {
        let mut log = Log::new();
        let carol = CustomerId::new("u.1.carol").unwrap();
        let both = log.hold(0, &alice(), &["A-1-1", "A-1-2"], 60_000);
        let join = |who: &CustomerId, quantity| Command::JoinWaitlist {
            event_id: EVENT,
            customer: who.clone(),
            tier: None,
            quantity,
        };
        assert!(matches!(log.run(1, join(&bob(), 2)), Ok(Success::Waitlisted(w)) if w.position == 1));
        assert!(matches!(log.run(2, join(&carol, 1)), Ok(Success::Waitlisted(w)) if w.position == 2));
        assert_eq!(
            log.run(3, join(&carol, 1)),
            Err(Rejection::AlreadyWaitlisted { position: 2 })
        );
        assert!(log.state.waitlist_offers_due().is_empty(), "sold out");
        log.run(
            4,
            Command::ReleaseHold {
                event_id: EVENT,
                hold_id: both.hold_id,
                holder: alice(),
            },
        )
        .unwrap();
        assert_eq!(log.state.waitlist_offers_due(), [EVENT]);
        // Bob asked first and wants both places: he gets them.
        let Ok(Success::WaitlistOffered { hold: Some(offer) }) =
            log.run(5, Command::OfferWaitlist { event_id: EVENT })
        else {
            panic!("no offer");
        };
        assert_eq!(offer.holder, bob());
        assert_eq!(offer.seats, ["A-1-1", "A-1-2"]);
        assert_eq!(offer.expires_at_ms, 5 + WAITLIST_OFFER_TTL_MS);
        assert!(log.kinds_of(&bob()).contains(&("waitlist_offer", true)));
        assert_eq!(log.state.waitlist_view(EVENT, &carol).unwrap().position, 1);
        assert!(log.state.waitlist_offers_due().is_empty());
        assert_eq!(
            log.run(6, Command::OfferWaitlist { event_id: EVENT }),
            Ok(Success::WaitlistOffered { hold: None })
        );
        // Joining while places are free is refused: hold them instead.
        log.run(
            7,
            Command::ReleaseHold {
                event_id: EVENT,
                hold_id: offer.hold_id,
                holder: bob(),
            },
        )
        .unwrap();
        assert_eq!(log.run(8, join(&alice(), 1)), Err(Rejection::PlacesAvailable));
        let changes = log.state.take_changes();
        assert!(changes.iter().any(|c| c.cause == ChangeCause::Offered));
    }

    #[test]
    fn cancelling_the_event_tells_buyers_subscribers_and_the_waitlist_once() {
        let mut log = Log::new();
        let hold = log.hold(0, &alice(), &["A-1-1", "A-1-2"], 60_000);
        log.run(
            1,
            Command::ConfirmHold {
                event_id: EVENT,
                hold_id: hold.hold_id,
                holder: alice(),
            },
        )
        .unwrap();
        for who in [alice(), bob()] {
            log.run(
                2,
                Command::SubscribeReminder {
                    event_id: EVENT,
                    customer: who,
                    channel: Some(Channel::Webhook),
                    remind_at_ms: 1_000_000,
                },
            )
            .unwrap();
        }
        let carol = CustomerId::new("u.1.carol").unwrap();
        log.run(
            3,
            Command::JoinWaitlist {
                event_id: EVENT,
                customer: carol.clone(),
                tier: Some("std".to_owned()),
                quantity: 1,
            },
        )
        .unwrap();
        log.run(4, Command::CancelEvent { event_id: EVENT }).unwrap();
        assert_eq!(
            log.kinds_of(&alice()),
            [("order_confirmed", true), ("event_cancelled", true)]
        );
        assert_eq!(log.kinds_of(&bob()), [("event_cancelled", true)]);
        let bobs = log.state.notices_of(EVENT, &bob());
        assert_eq!(
            bobs[0].channel,
            Some(Channel::Webhook),
            "the subscription's channel"
        );
        assert_eq!(log.kinds_of(&carol), [("event_cancelled", true)]);
        assert!(log.state.waitlist_view(EVENT, &carol).is_none());
        assert_eq!(
            log.run(
                5,
                Command::SubscribeReminder {
                    event_id: EVENT,
                    customer: bob(),
                    channel: None,
                    remind_at_ms: 0,
                }
            ),
            Err(Rejection::EventCancelled)
        );
    }
}
