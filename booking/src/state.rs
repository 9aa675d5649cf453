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
use crate::command::{Command, Rejection, Request, Response, Success};
use crate::event::{Context, EventState, ExpiryQueue};
use crate::ids::{CustomerId, EventId, HoldId, Millis, OrderId, RequestId, TicketCode};
use crate::payments::{
    MAX_PAYMENT_TEXT, PaymentOutcome, PaymentRecord, PaymentStatus, PaymentStep, PaymentView, Payments,
};
use crate::records::{EventRecord, Record, RecordKey, RequestRecord};
use crate::views::{EventView, HoldView, OrderView, TicketView};

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
    /// `DEDUP_CAPACITY`, except in tests that exercise eviction.
    dedup_capacity: usize,
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
            dedup_capacity: DEDUP_CAPACITY,
        }
    }

    /// Applies one committed entry. `log_index` is the entry's Raft log index:
    /// holds and orders created by it are `HoldId(log_index)` and
    /// `OrderId(log_index)`, unique and identical on every replica.
    pub fn apply(&mut self, log_index: u64, request: &Request) -> Response {
        self.advance_clock(request.now_ms);
        self.expire_holds(log_index);
        self.accounts.expire_sessions(self.clock, &mut self.dirty);
        self.forget_old_requests();
        if request.command == Command::Tick {
            return Ok(Success::Ticked);
        }
        if let Some(seen) = self.requests.get(&request.request_id) {
            if seen.fingerprint != request.fingerprint {
                return Err(Rejection::IdempotencyKeyReused);
            }
            return seen.response.clone();
        }
        let response = self.execute(log_index, &request.command);
        self.remember(log_index, &request.request_id, request.fingerprint, &response);
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
            };
            event.expire(&mut ctx, hold_id);
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
                event
                    .hold(&mut ctx, holder, selection, *ttl_ms)
                    .map(Success::Held)
            }
            Command::ExtendHold {
                event_id,
                hold_id,
                holder,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                event.extend(&mut ctx, *hold_id, holder).map(Success::Extended)
            }
            Command::ReleaseHold {
                event_id,
                hold_id,
                holder,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                event
                    .release(&mut ctx, *hold_id, holder)
                    .map(|()| Success::Released { hold_id: *hold_id })
            }
            Command::ConfirmHold {
                event_id,
                hold_id,
                holder,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                event.confirm(&mut ctx, *hold_id, holder).map(Success::Confirmed)
            }
            Command::CancelOrder {
                event_id,
                order_id,
                holder,
            } => {
                let (event, mut ctx) = self.event_mut(*event_id, log_index)?;
                let view = event.cancel(&mut ctx, *order_id, holder)?;
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
                let mut refunds = 0;
                for &order_id in &cancelled {
                    refunds += u32::from(self.refund_order(*event_id, order_id, "the event was cancelled"));
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
        if method.is_empty() || method.len() > MAX_PAYMENT_TEXT {
            return Err(Rejection::InvalidRequest(format!(
                "payment method must be 1..={MAX_PAYMENT_TEXT} bytes"
            )));
        }
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
        if payment.status != PaymentStatus::Pending {
            // A repeated or late answer: the first one decided.
            return Ok(Success::PaymentUpdated(self.payment_view(event_id, payment_id)));
        }
        let (hold_id, holder) = (payment.hold_id, payment.holder.clone());
        let (status, order_id, detail) = match outcome {
            PaymentOutcome::Declined { reason } => {
                let mut reason = reason.clone();
                reason.truncate(MAX_PAYMENT_TEXT);
                (PaymentStatus::Failed, None, Some(reason))
            }
            PaymentOutcome::Authorised => {
                let (event, mut ctx) = self.event_mut(event_id, log_index)?;
                match event.confirm(&mut ctx, hold_id, &holder) {
                    Ok(order) => (PaymentStatus::Succeeded, Some(order.order_id), None),
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
