//! The events of one data group and everything that rides on them: the
//! booking rules of each event (`event`), its payments (`payments`), its
//! notification outbox (`notices`), its live availability feed (`feed`) and
//! its waitlist.
//!
//! [`Events`] is the group's part of the state machine. It runs an
//! [`EventCommand`] for one event: the event's own rule first, then what the
//! rule's outcome means for payments, notices and the feed, all in the same
//! entry, so a notice exists exactly when the change it reports does and no
//! path keeps money without a ticket. Every write marks its key in
//! [`EventKeys`] for persistence.
//!
//! Layout of the module, leaves first: `keys` (where records live),
//! `records`, `views` and `vocab` (shapes), `checks` (shape checks shared
//! with the edge), `payments`, `notices`, `feed`, `best_available`,
//! `ticket_codes` (their own concerns), `event` (one event's rules),
//! `render` (its views), `loading` (its records), `invariants`; this file
//! ties them together. No file of the module imports this one.

pub mod best_available;
pub mod checks;
pub mod event;
pub mod feed;
pub mod invariants;
pub mod keys;
pub mod loading;
pub mod notices;
pub mod payments;
pub mod records;
pub mod render;
pub mod tally;
pub mod ticket_codes;
pub mod views;
pub mod vocab;

use std::collections::{BTreeMap, BTreeSet};

use self::event::{Context, EventState, ExpiryQueue};
use self::feed::{AvailabilityChange, ChangeCause};
use self::keys::{EventKey, EventKeys};
use self::notices::{Channel, Delivery, NewNotice, NoticeId, NoticeKind, NoticeView, Notices};
use self::payments::{
    MAX_PAYMENT_TEXT, PaymentOutcome, PaymentRecord, PaymentStatus, PaymentStep, PaymentView, Payments,
};
use self::records::{EventRecord, EventValue, TicketPlace};
use self::tally::Tally;
use self::views::{HoldView, OrderView};
use self::vocab::{EventAnswer, EventCommand, EventQuery, EventSuccess, WAITLIST_OFFER_TTL_MS};
use crate::ids::{CustomerId, EventId, HoldId, Millis, Money, OrderId};
use crate::rejection::Rejection;

pub type EventResponse = Result<EventSuccess, Rejection>;

/// The events of a group, with their payments, notices and feed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Events {
    /// The state machine's clock, set before every entry.
    clock: Millis,
    events: BTreeMap<EventId, EventState>,
    /// Derived: active holds by expiry.
    expiry: ExpiryQueue,
    payments: Payments,
    notices: Notices,
    /// Keys written since the last `take_dirty`. Not part of the state proper.
    pub(crate) dirty: EventKeys,
    /// Places the current rule changed (scratch, drained after every rule).
    touched: Vec<TicketPlace>,
    /// Availability changes not yet taken, if recording is on (`feed`).
    changes: Option<Vec<AvailabilityChange>>,
    /// The entry being applied and how many changes it made so far.
    change_ordinal: (u64, u32),
    /// What the rules did since the state machine last asked. Not state.
    pub(crate) tally: Tally,
}

impl Events {
    /// Sets the clock the next entry's rules see.
    pub fn set_clock(&mut self, clock: Millis) {
        self.clock = clock;
    }

    /// Turns on recording of availability changes for the live feed.
    pub fn record_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// Turns recording off (changes not yet taken are dropped).
    pub fn stop_recording_changes(&mut self) {
        self.changes = None;
    }

    /// The availability changes recorded since the last call, in log order.
    pub fn take_changes(&mut self) -> Vec<AvailabilityChange> {
        self.changes.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// What every entry does before its command: holds due by the clock
    /// expire (in `(expires_at_ms, event, hold)` order) and settled notices
    /// past their retention are forgotten.
    pub fn housekeep(&mut self, log_index: u64) {
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
                tally: &mut self.tally,
            };
            event.expire(&mut ctx, hold_id);
            self.note_change(log_index, event_id, ChangeCause::Expired);
            self.withdraw_hold_warning(event_id, hold_id);
        }
        self.notices.forget_settled(&mut self.dirty, self.clock);
    }

    /// Runs one command for `event_id`. A rejected command touches nothing;
    /// the scratch list of touched places is cleared either way.
    pub fn execute(&mut self, log_index: u64, event_id: EventId, command: &EventCommand) -> EventResponse {
        let response = self.run(log_index, event_id, command);
        self.touched.clear();
        if let Err(Rejection::SeatUnavailable { .. } | Rejection::NotEnoughSeats { .. }) = response {
            self.tally.conflict += 1;
        }
        response
    }

    fn run(&mut self, log_index: u64, event_id: EventId, command: &EventCommand) -> EventResponse {
        match command {
            EventCommand::Create {
                spec,
                ticket_salt,
                draft,
            } => {
                if self.events.contains_key(&event_id) {
                    return Err(Rejection::EventExists);
                }
                let record = EventRecord {
                    spec: spec.clone(),
                    ticket_salt: *ticket_salt,
                    created_at_ms: self.clock,
                    published_at_ms: (!*draft).then_some(self.clock),
                    cancelled_at_ms: None,
                };
                let event = EventState::new(event_id, record)?;
                let capacity = event.capacity();
                self.events.insert(event_id, event);
                self.dirty.insert((event_id, EventKey::Event));
                Ok(EventSuccess::Created { event_id, capacity })
            }
            EventCommand::Hold {
                holder,
                selection,
                ttl_ms,
            } => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                let hold = event.hold(&mut ctx, holder, selection, *ttl_ms)?;
                self.note_change(log_index, event_id, ChangeCause::Held);
                self.warn_before_expiry(log_index, event_id, &hold);
                Ok(EventSuccess::Held(hold))
            }
            EventCommand::ExtendHold { hold_id, holder } => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                let hold = event.extend(&mut ctx, *hold_id, holder)?;
                self.warn_before_expiry(log_index, event_id, &hold);
                Ok(EventSuccess::Extended(hold))
            }
            EventCommand::ReleaseHold { hold_id, holder } => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                event.release(&mut ctx, *hold_id, holder)?;
                self.note_change(log_index, event_id, ChangeCause::Released);
                self.withdraw_hold_warning(event_id, *hold_id);
                Ok(EventSuccess::Released { hold_id: *hold_id })
            }
            EventCommand::ConfirmHold { hold_id, holder } => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                let order = event.confirm(&mut ctx, *hold_id, holder)?;
                self.note_change(log_index, event_id, ChangeCause::Sold);
                self.notify_confirmed(log_index, event_id, &order);
                Ok(EventSuccess::Confirmed(order))
            }
            EventCommand::CancelOrder { order_id, holder } => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                let view = event.cancel(&mut ctx, *order_id, holder)?;
                self.note_change(log_index, event_id, ChangeCause::Returned);
                self.refund_order(event_id, *order_id, "the order was cancelled");
                Ok(EventSuccess::OrderCancelled(view))
            }
            EventCommand::Publish => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                let at_ms = event.publish(&mut ctx)?;
                Ok(EventSuccess::Published { event_id, at_ms })
            }
            EventCommand::Cancel => self.cancel_event(log_index, event_id),
            EventCommand::StartPayment {
                hold_id,
                holder,
                method,
            } => self.start_payment(log_index, event_id, *hold_id, holder, method),
            EventCommand::SettlePayment { payment_id, outcome } => {
                self.settle_payment(log_index, event_id, *payment_id, outcome)
            }
            EventCommand::RefundSettled { payment_id } => {
                let payment = self
                    .payments
                    .get(event_id, *payment_id)
                    .ok_or(Rejection::UnknownPayment)?;
                match payment.status {
                    PaymentStatus::Refunded => {}
                    PaymentStatus::RefundPending => {
                        let step = self.step(PaymentStatus::Refunded, None);
                        self.tally.count_payment(step.status);
                        self.payments
                            .set_status(&mut self.dirty, event_id, *payment_id, step, None);
                    }
                    _ => return Err(Rejection::PaymentNotRefundable),
                }
                Ok(EventSuccess::PaymentUpdated(
                    self.payment_view(event_id, *payment_id),
                ))
            }
            EventCommand::CheckIn { code } => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                event
                    .check_in(&mut ctx, code)
                    .map(|at_ms| EventSuccess::CheckedIn {
                        code: code.clone(),
                        at_ms,
                    })
            }
            EventCommand::SubscribeReminder {
                customer,
                channel,
                remind_at_ms,
            } => {
                let event = self.events.get(&event_id).ok_or(Rejection::UnknownEvent)?;
                if event.is_cancelled() {
                    return Err(Rejection::EventCancelled);
                }
                if customer.account_group().is_none() {
                    return Err(Rejection::NoAddress);
                }
                if let Some(old) = self.notices.reminder(event_id, customer) {
                    self.notices.withdraw(&mut self.dirty, event_id, old);
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
                    .add(&mut self.dirty, event_id, log_index, self.clock, reminder);
                Ok(EventSuccess::ReminderSet(
                    self.notices.view(event_id, notice_id).expect("just added"),
                ))
            }
            EventCommand::UnsubscribeReminder { customer } => {
                let notice = self
                    .notices
                    .reminder(event_id, customer)
                    .ok_or(Rejection::NotSubscribed)?;
                self.notices.withdraw(&mut self.dirty, event_id, notice);
                Ok(EventSuccess::ReminderCancelled { event_id })
            }
            EventCommand::JoinWaitlist {
                customer,
                tier,
                quantity,
            } => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                event
                    .join_waitlist(&mut ctx, customer, tier.as_deref(), *quantity)
                    .map(EventSuccess::Waitlisted)
            }
            EventCommand::LeaveWaitlist { customer } => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                event.leave_waitlist(&mut ctx, customer)?;
                Ok(EventSuccess::LeftWaitlist { event_id })
            }
            EventCommand::OfferWaitlist => self.offer_waitlist(log_index, event_id),
            EventCommand::NoticeDelivered { notice_id, channel } => {
                self.notices
                    .get(event_id, *notice_id)
                    .ok_or(Rejection::UnknownNotice)?;
                if self
                    .notices
                    .delivered(&mut self.dirty, event_id, *notice_id, self.clock, *channel)
                {
                    self.tally.notices_delivered += 1;
                }
                Ok(EventSuccess::NoticeUpdated(
                    self.notices.view(event_id, *notice_id).expect("exists"),
                ))
            }
            EventCommand::NoticeFailed {
                notice_id,
                error,
                permanent,
            } => {
                self.notices
                    .get(event_id, *notice_id)
                    .ok_or(Rejection::UnknownNotice)?;
                match self.notices.failed(
                    &mut self.dirty,
                    event_id,
                    *notice_id,
                    self.clock,
                    error,
                    *permanent,
                ) {
                    Some(true) => self.tally.notices_failed += 1,
                    Some(false) => self.tally.notices_retried += 1,
                    None => {}
                }
                Ok(EventSuccess::NoticeUpdated(
                    self.notices.view(event_id, *notice_id).expect("exists"),
                ))
            }
        }
    }

    /// The organiser cancels the event: holds released, every order cancelled
    /// and (if paid) refunded, and everyone with a stake in it told once.
    fn cancel_event(&mut self, log_index: u64, event_id: EventId) -> EventResponse {
        let (event, mut ctx) = self.event_mut(event_id, log_index)?;
        let cancelled = event.cancel_event(&mut ctx)?;
        let waiting = event.clear_waitlist(&mut ctx);
        self.note_change(log_index, event_id, ChangeCause::Returned);
        let mut refunds = 0;
        let mut told = BTreeSet::new();
        for &order_id in &cancelled {
            let refunded = self.refund_order(event_id, order_id, "the event was cancelled");
            refunds += u32::from(refunded);
            let holder = self.events[&event_id]
                .order_holder(order_id)
                .expect("cancelled orders exist")
                .clone();
            let kind = NoticeKind::EventCancelled {
                order_id: Some(order_id),
                refunded,
            };
            self.notify(log_index, event_id, &holder, kind, None, self.clock);
            told.insert(holder);
        }
        let (warnings, reminders) = self.notices.scheduled_of(event_id);
        for notice in warnings {
            self.notices.withdraw(&mut self.dirty, event_id, notice);
        }
        let mut uninformed: Vec<(CustomerId, Option<Channel>)> = Vec::new();
        for (customer, notice) in reminders {
            let channel = self.notices.get(event_id, notice).and_then(|n| n.channel);
            self.notices.withdraw(&mut self.dirty, event_id, notice);
            uninformed.push((customer, channel));
        }
        uninformed.extend(waiting.into_iter().map(|customer| (customer, None)));
        for (customer, channel) in uninformed {
            if told.insert(customer.clone()) {
                let kind = NoticeKind::EventCancelled {
                    order_id: None,
                    refunded: false,
                };
                self.notify(log_index, event_id, &customer, kind, channel, self.clock);
            }
        }
        Ok(EventSuccess::Cancelled {
            event_id,
            orders_cancelled: cancelled.len() as u32,
            refunds,
        })
    }

    /// Serves the waitlist once: the first suitable customer gets a hold and
    /// a notice. Safe to apply any number of times.
    fn offer_waitlist(&mut self, log_index: u64, event_id: EventId) -> EventResponse {
        let (event, mut ctx) = self.event_mut(event_id, log_index)?;
        let Some(offer) = event.offer_waitlist(&mut ctx, WAITLIST_OFFER_TTL_MS) else {
            return Ok(EventSuccess::WaitlistOffered { hold: None });
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
                Ok(EventSuccess::WaitlistOffered { hold: Some(hold) })
            }
            Err(_) => {
                // The customer cannot take the places (they reached a limit
                // meanwhile): their entry went, and the places wait for the
                // next offer.
                self.touched.clear();
                Ok(EventSuccess::WaitlistOffered { hold: None })
            }
        }
    }

    // ----- Payments -------------------------------------------------------------

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
    ) -> EventResponse {
        checks::check_payment_method(method)?;
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
        self.tally.count_payment(PaymentStatus::Pending);
        Ok(EventSuccess::PaymentStarted(
            self.payment_view(event_id, log_index),
        ))
    }

    fn settle_payment(
        &mut self,
        log_index: u64,
        event_id: EventId,
        payment_id: u64,
        outcome: &PaymentOutcome,
    ) -> EventResponse {
        let payment = self
            .payments
            .get(event_id, payment_id)
            .ok_or(Rejection::UnknownPayment)?;
        let late_authorisation =
            payment.status == PaymentStatus::Failed && *outcome == PaymentOutcome::Authorised;
        if payment.status != PaymentStatus::Pending && !late_authorisation {
            // A repeated answer, or a decline after the charge was decided:
            // the first decision stands.
            return Ok(EventSuccess::PaymentUpdated(
                self.payment_view(event_id, payment_id),
            ));
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
                // Another payment for the hold is under way (or bought it):
                // this one must not buy it twice.
                (
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
        self.tally.count_payment(step.status);
        self.payments
            .set_status(&mut self.dirty, event_id, payment_id, step, order_id);
        Ok(EventSuccess::PaymentUpdated(
            self.payment_view(event_id, payment_id),
        ))
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
            self.tally.count_payment(step.status);
            self.payments
                .set_status(&mut self.dirty, event_id, payment_id, step, None);
        }
        succeeded
    }

    // ----- Notices and the feed -------------------------------------------------

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
            tally: &mut self.tally,
        };
        Ok((event, ctx))
    }

    // ----- Reads ----------------------------------------------------------------

    pub fn query(&self, event_id: EventId, query: &EventQuery) -> EventAnswer {
        let Some(event) = self.events.get(&event_id) else {
            return EventAnswer::nothing(query);
        };
        match query {
            EventQuery::View => EventAnswer::View(Some(event.event_view())),
            EventQuery::Hold(hold_id) => EventAnswer::Hold(event.hold_view(*hold_id)),
            EventQuery::Order(order_id) => EventAnswer::Order(event.order_view(*order_id)),
            EventQuery::Ticket(code) => EventAnswer::Ticket(event.ticket_view(code)),
            EventQuery::Payment(payment_id) => {
                EventAnswer::Payment(self.payments.view(event_id, *payment_id))
            }
            EventQuery::Waitlist(customer) => EventAnswer::Waitlist(event.waitlist_view(customer)),
            EventQuery::Notices(customer) => EventAnswer::Notices(self.notices.of(event_id, customer)),
            EventQuery::Holds(filter) => EventAnswer::Holds(event.holds_page(filter)),
            EventQuery::Orders(filter) => EventAnswer::Orders(event.orders_page(filter)),
            EventQuery::Seats(ids) => EventAnswer::Seats(
                ids.iter()
                    .take(vocab::MAX_SEATS_PER_READ)
                    .map(|id| event.seat_detail(id))
                    .collect(),
            ),
        }
    }

    /// A hold's view as of its creation or extension (see `remembered`).
    pub fn hold_view_as_of(&self, event_id: EventId, hold_id: HoldId, extended: bool) -> Option<HoldView> {
        self.events.get(&event_id)?.hold_view_as_of(hold_id, extended)
    }

    /// An order's view as of its confirmation or cancellation.
    pub fn order_view_as_of(
        &self,
        event_id: EventId,
        order_id: OrderId,
        cancelled: bool,
    ) -> Option<OrderView> {
        self.events.get(&event_id)?.order_view_as_of(order_id, cancelled)
    }

    /// A payment's view after its first `steps` steps.
    pub fn payment_view_after(
        &self,
        event_id: EventId,
        payment_id: u64,
        steps: usize,
    ) -> Option<PaymentView> {
        self.payments.view_after(event_id, payment_id, steps)
    }

    /// An event's name (cheaper than its view, which lists every seat).
    pub fn event_name(&self, event_id: EventId) -> Option<String> {
        Some(self.events.get(&event_id)?.name().to_owned())
    }

    /// The cheapest tier price of an event.
    pub fn lowest_price(&self, event_id: EventId) -> Option<Money> {
        self.events.get(&event_id)?.lowest_price()
    }

    /// The earliest `expires_at_ms` among active holds. Once the leader's clock
    /// passes it, the leader proposes a `Tick` so the places go back on sale even
    /// if no other write arrives.
    pub fn next_hold_expiry(&self) -> Option<Millis> {
        self.expiry.first().map(|&(expires_at_ms, _, _)| expires_at_ms)
    }

    /// A customer's orders in this group's events.
    pub fn orders_of(&self, customer: &CustomerId) -> Vec<OrderView> {
        self.events
            .values()
            .flat_map(|event| event.orders_of(customer))
            .collect()
    }

    /// Notices due for delivery at `now_ms`, soonest first.
    pub fn due_notices(&self, now_ms: Millis, limit: usize) -> Vec<NoticeView> {
        self.notices.due(now_ms, limit)
    }

    pub fn notice_view(&self, event_id: EventId, notice_id: NoticeId) -> Option<NoticeView> {
        self.notices.view(event_id, notice_id)
    }

    /// Events where a waitlisted customer could be offered places now.
    pub fn waitlist_offers_due(&self) -> Vec<EventId> {
        self.events
            .iter()
            .filter(|(_, event)| event.offer_due())
            .map(|(&event_id, _)| event_id)
            .collect()
    }

    /// Payments waiting for the provider or for a refund.
    pub fn open_payments(&self) -> Vec<PaymentView> {
        self.payments.open().collect()
    }

    // ----- Persistence ----------------------------------------------------------

    /// The record under `key` of `event_id`, if any.
    pub fn record(&self, event_id: EventId, key: &EventKey) -> Option<EventValue> {
        match key {
            EventKey::Payment(payment_id) => self
                .payments
                .record(event_id, *payment_id)
                .map(EventValue::Payment),
            &EventKey::Notice(log_index, ordinal) => self
                .notices
                .record(event_id, NoticeId { log_index, ordinal })
                .map(EventValue::Notice),
            other => self.events.get(&event_id)?.record(other),
        }
    }

    /// Every record of the group's events.
    pub fn append_records(&self, out: &mut Vec<(EventId, EventKey, EventValue)>) {
        for event in self.events.values() {
            event.append_records(out);
        }
        for (&(event_id, payment_id), record) in self.payments.payments() {
            out.push((
                event_id,
                EventKey::Payment(payment_id),
                EventValue::Payment(record.clone()),
            ));
        }
        for (&(event_id, notice_id), record) in self.notices.all() {
            out.push((
                event_id,
                EventKey::Notice(notice_id.log_index, notice_id.ordinal),
                EventValue::Notice(record.clone()),
            ));
        }
    }

    /// Loads one record. Records must come in key order per event, so the
    /// `Event` record comes before anything that refers to it.
    pub fn load(&mut self, event_id: EventId, key: &EventKey, value: EventValue) -> Result<(), LoadIssue> {
        match (key, value) {
            (EventKey::Event, EventValue::Event(record)) => {
                let event =
                    EventState::new(event_id, record).map_err(|e| LoadIssue::Invalid(e.to_string()))?;
                self.events.insert(event_id, event);
                Ok(())
            }
            (_, value) if !self.events.contains_key(&event_id) => {
                drop(value);
                Err(LoadIssue::MissingEvent)
            }
            (EventKey::Payment(payment_id), EventValue::Payment(payment)) => self
                .payments
                .load(event_id, *payment_id, payment)
                .map_err(LoadIssue::Invalid),
            (&EventKey::Notice(log_index, ordinal), EventValue::Notice(notice)) => {
                self.notices
                    .load(event_id, NoticeId { log_index, ordinal }, notice);
                Ok(())
            }
            (EventKey::Payment(_) | EventKey::Notice(..) | EventKey::Event, _) => Err(LoadIssue::WrongKind),
            (key, value) => {
                let event = self.events.get_mut(&event_id).expect("checked above");
                event.load(key, value).map_err(LoadIssue::Invalid)
            }
        }
    }

    /// After the last record: rebuilds everything derived.
    pub fn finish_loading(&mut self) -> Result<(), (EventId, String)> {
        for (&event_id, event) in &mut self.events {
            event.rebuild_counters().map_err(|reason| (event_id, reason))?;
            self.expiry.extend(event.active_expiries());
        }
        Ok(())
    }

    // ----- Invariants -----------------------------------------------------------

    /// Every invariant of every event plus the group's indexes.
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
        self.check_payments()?;
        self.check_notices()
    }

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
}

/// Why a record of an event's group could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoadIssue {
    /// The record's event has no `Event` record (before it).
    MissingEvent,
    /// The value is of another kind than its key.
    WrongKind,
    Invalid(String),
}
