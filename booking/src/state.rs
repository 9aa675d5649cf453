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
//! `execute` is a dispatcher: each domain runs its own commands
//! (`events::Events` for an event's group, `cluster_map`, `accounts`,
//! `catalog`) and marks what it writes; this module owns only what every
//! domain shares: the clock, de-duplication, and persistence.
//!
//! This module does not decide booking rules (`events` does) and does no I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::accounts::{
    AccountKey, AccountRecord, AccountSuccess, AccountView, Accounts, EmailClaim, TokenHash,
};
use crate::catalog::{Catalog, CatalogKey, CatalogSuccess, ListingView, Search, SearchPage, VenueView};
use crate::cluster_map::{ClusterMap, MapKey};
use crate::command::{Command, Request, Response, Success};
use crate::events::feed::AvailabilityChange;
use crate::events::notices::{NoticeId, NoticeView};
use crate::events::payments::PaymentView;
use crate::events::tally::Tally;
use crate::events::views::{EventView, HoldView, OrderView, TicketView, WaitlistView};
use crate::events::vocab::{EventAnswer, EventQuery, EventSuccess};
use crate::events::{Events, LoadIssue};
use crate::ids::{CustomerId, EventId, HoldId, Millis, Money, OrderId, RequestId, TicketCode};
use crate::query::{Query, QueryResult};
use crate::records::{Record, RecordKey, RequestRecord};
use crate::rejection::Rejection;
use crate::remembered::{AccountOutcome, CatalogOutcome, EventOutcome, Outcome, Remembered};

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

/// Keys written since the last `take_dirty`, by domain (the events keep
/// their own, `Events::dirty`). Not part of the state proper.
#[derive(Debug, Clone, Default)]
struct Dirty {
    clock: bool,
    requests: BTreeSet<RequestId>,
    map: BTreeSet<MapKey>,
    accounts: BTreeSet<AccountKey>,
    catalog: BTreeSet<CatalogKey>,
}

#[derive(Debug, Clone)]
pub struct BookingState {
    /// The largest `now_ms` applied so far.
    clock: Millis,
    /// The events of this group with their payments, notices and feed.
    events: Events,
    requests: BTreeMap<RequestId, RequestRecord>,
    /// Derived: the request ids of `requests`, oldest first.
    request_age: BTreeMap<(Millis, u64), RequestId>,
    dirty: Dirty,
    /// The cluster map; empty except in the metadata group.
    map: ClusterMap,
    /// Accounts and sessions; empty except in a region's accounts group.
    accounts: Accounts,
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
            events: Events::default(),
            requests: BTreeMap::new(),
            request_age: BTreeMap::new(),
            dirty: Dirty::default(),
            map: ClusterMap::default(),
            accounts: Accounts::default(),
            catalog: Catalog::default(),
            dedup_capacity: DEDUP_CAPACITY,
        }
    }

    /// Turns on recording of availability changes for the live feed; they are
    /// collected until `take_changes`.
    pub fn record_changes(&mut self) {
        self.events.record_changes();
    }

    /// Turns recording off (changes not yet taken are dropped), for a replica
    /// nobody is watching.
    pub fn stop_recording_changes(&mut self) {
        self.events.stop_recording_changes();
    }

    /// The availability changes recorded since the last call, in log order.
    pub fn take_changes(&mut self) -> Vec<AvailabilityChange> {
        self.events.take_changes()
    }

    /// What the rules did since the last call (booking outcomes, payment
    /// steps, notice deliveries), for metrics; not part of the state.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.events.tally)
    }

    /// Applies one committed entry. `log_index` is the entry's Raft log index:
    /// holds and orders created by it are `HoldId(log_index)` and
    /// `OrderId(log_index)`, unique and identical on every replica.
    pub fn apply(&mut self, log_index: u64, request: &Request) -> Response {
        self.advance_clock(request.now_ms);
        self.events.set_clock(self.clock);
        self.events.housekeep(log_index);
        self.accounts
            .expire_sessions(self.clock, &mut self.dirty.accounts);
        self.forget_old_requests();
        if request.command.is_housekeeping() {
            return self.execute(log_index, &request.command);
        }
        if let Some(seen) = self.requests.get(&request.request_id) {
            if seen.fingerprint != request.fingerprint {
                return Err(Rejection::IdempotencyKeyReused);
            }
            return self.recall(&seen.outcome);
        }
        let response = self.execute(log_index, &request.command);
        self.remember(log_index, &request.request_id, request.fingerprint, &response);
        response
    }

    /// Runs a command in its domain.
    fn execute(&mut self, log_index: u64, command: &Command) -> Response {
        match command {
            Command::Event(event_id, command) => self
                .events
                .execute(log_index, *event_id, command)
                .map(Success::Event),
            Command::Map(command) => self.map.apply(command, &mut self.dirty.map).map(Success::Map),
            Command::Account(command) => self
                .accounts
                .execute(self.clock, log_index, &mut self.dirty.accounts, command)
                .map(Success::Account),
            Command::Catalog(command) => self
                .catalog
                .execute(self.clock, log_index, &mut self.dirty.catalog, command)
                .map(Success::Catalog),
            Command::Tick => Ok(Success::Ticked),
        }
    }

    fn advance_clock(&mut self, now_ms: Millis) {
        if now_ms > self.clock {
            self.clock = now_ms;
            self.dirty.clock = true;
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
            outcome: response.as_ref().map(Remembered::of).map_err(Clone::clone),
        };
        self.request_age
            .insert((record.at_ms, log_index), request_id.clone());
        self.requests.insert(request_id.clone(), record);
        self.dirty.requests.insert(request_id.clone());
        while self.requests.len() > self.dedup_capacity {
            let Some((&(at_ms, oldest), _)) = self.request_age.first_key_value() else {
                break;
            };
            self.forget_request(at_ms, oldest);
        }
    }

    /// Answers a retry from what was remembered of its first answer: the same
    /// resource, rendered as it is now (see `remembered`).
    fn recall(&self, outcome: &Outcome) -> Response {
        let remembered = outcome.as_ref().map_err(Clone::clone)?;
        Ok(match remembered {
            Remembered::Event(outcome) => Success::Event(self.recall_event(outcome)?),
            Remembered::Map(success) => Success::Map(success.clone()),
            Remembered::Account(outcome) => Success::Account(self.recall_account(outcome)?),
            Remembered::Catalog(CatalogOutcome::VenueCreated(venue_id)) => Success::Catalog(
                CatalogSuccess::VenueCreated(self.venue(*venue_id).ok_or(Rejection::UnknownVenue)?),
            ),
            Remembered::Catalog(CatalogOutcome::Listed(listing)) => {
                Success::Catalog(CatalogSuccess::Listed(listing.clone()))
            }
            Remembered::Catalog(CatalogOutcome::FxRatesSet { base, count }) => {
                Success::Catalog(CatalogSuccess::FxRatesSet {
                    base: *base,
                    count: *count,
                })
            }
            Remembered::Ticked => Success::Ticked,
        })
    }

    fn recall_event(&self, outcome: &EventOutcome) -> Result<EventSuccess, Rejection> {
        use EventOutcome as O;
        let events = &self.events;
        let hold = |e: &EventId, h: &HoldId, extended| {
            events
                .hold_view_as_of(*e, *h, extended)
                .ok_or(Rejection::UnknownHold)
        };
        let order = |e: &EventId, o: &OrderId, cancelled| {
            events
                .order_view_as_of(*e, *o, cancelled)
                .ok_or(Rejection::UnknownOrder)
        };
        let payment = |e: &EventId, p: &u64, steps: usize| {
            events
                .payment_view_after(*e, *p, steps)
                .ok_or(Rejection::UnknownPayment)
        };
        Ok(match outcome {
            O::Created { event_id, capacity } => EventSuccess::Created {
                event_id: *event_id,
                capacity: *capacity,
            },
            O::Published { event_id, at_ms } => EventSuccess::Published {
                event_id: *event_id,
                at_ms: *at_ms,
            },
            O::Held(e, h) => EventSuccess::Held(hold(e, h, false)?),
            O::Extended(e, h) => EventSuccess::Extended(hold(e, h, true)?),
            O::Released { hold_id } => EventSuccess::Released { hold_id: *hold_id },
            O::Confirmed(e, o) => EventSuccess::Confirmed(order(e, o, false)?),
            O::OrderCancelled(e, o) => EventSuccess::OrderCancelled(order(e, o, true)?),
            O::CheckedIn { code, at_ms } => EventSuccess::CheckedIn {
                code: code.clone(),
                at_ms: *at_ms,
            },
            O::PaymentStarted(e, p) => EventSuccess::PaymentStarted(payment(e, p, 1)?),
            O::PaymentUpdated {
                event_id,
                payment_id,
                steps,
            } => EventSuccess::PaymentUpdated(payment(event_id, payment_id, *steps as usize)?),
            O::Cancelled {
                event_id,
                orders_cancelled,
                refunds,
            } => EventSuccess::Cancelled {
                event_id: *event_id,
                orders_cancelled: *orders_cancelled,
                refunds: *refunds,
            },
            O::ReminderSet(notice) => EventSuccess::ReminderSet(notice.clone()),
            O::ReminderCancelled { event_id } => EventSuccess::ReminderCancelled { event_id: *event_id },
            O::Waitlisted(view) => EventSuccess::Waitlisted(view.clone()),
            O::LeftWaitlist { event_id } => EventSuccess::LeftWaitlist { event_id: *event_id },
            O::WaitlistOffered(offered) => EventSuccess::WaitlistOffered {
                hold: offered
                    .as_ref()
                    .and_then(|(e, h)| self.events.hold_view_as_of(*e, *h, false)),
            },
            O::NoticeUpdated(notice) => EventSuccess::NoticeUpdated(notice.clone()),
        })
    }

    fn recall_account(&self, outcome: &AccountOutcome) -> Result<AccountSuccess, Rejection> {
        use AccountOutcome as O;
        Ok(match outcome {
            O::EmailClaimed { claim, fresh } => AccountSuccess::EmailClaimed {
                claim: claim.clone(),
                fresh: *fresh,
            },
            O::Registered(view) => AccountSuccess::Registered(view.clone()),
            O::Updated(view) => AccountSuccess::Updated(view.clone()),
            O::SessionStarted(grant) => AccountSuccess::SessionStarted(grant.clone()),
            O::SessionRotated(grant) => AccountSuccess::SessionRotated(grant.clone()),
            O::SessionRevoked { session_id } => AccountSuccess::SessionRevoked {
                session_id: *session_id,
            },
            O::SessionEnded { session_id } => AccountSuccess::SessionEnded {
                session_id: *session_id,
            },
            O::GuestChallenge {
                challenge_id,
                expires_at_ms,
            } => AccountSuccess::GuestChallenge {
                challenge_id: *challenge_id,
                expires_at_ms: *expires_at_ms,
            },
            O::GuestCodeWrong { attempts_left } => AccountSuccess::GuestCodeWrong {
                attempts_left: *attempts_left,
            },
            O::GuestVerified(view) => AccountSuccess::GuestVerified(view.clone()),
        })
    }

    fn forget_request(&mut self, at_ms: Millis, log_index: u64) {
        if let Some(request_id) = self.request_age.remove(&(at_ms, log_index)) {
            self.requests.remove(&request_id);
            self.dirty.requests.insert(request_id);
        }
    }

    // ----- Persistence --------------------------------------------------------

    /// Every record written since the last call, each key once and sorted by key;
    /// `None` means the record was deleted (or is back at its default, which is
    /// stored as no record). Writing these in order to a store that held the
    /// previous records yields exactly `records()`.
    pub fn take_dirty(&mut self) -> Vec<(RecordKey, Option<Record>)> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut keys: Vec<RecordKey> = Vec::new();
        if dirty.clock {
            keys.push(RecordKey::Clock);
        }
        keys.extend(
            std::mem::take(&mut self.events.dirty)
                .into_iter()
                .map(|(event_id, key)| RecordKey::Event(event_id, key)),
        );
        keys.extend(dirty.requests.into_iter().map(RecordKey::Request));
        keys.extend(dirty.map.into_iter().map(RecordKey::Map));
        keys.extend(dirty.catalog.into_iter().map(RecordKey::Catalog));
        keys.extend(dirty.accounts.into_iter().map(RecordKey::Account));
        // Built in the domains' order, which is `RecordKey`'s: already sorted.
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
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
            RecordKey::Event(event_id, key) => self.events.record(*event_id, key).map(Record::Event),
            RecordKey::Request(request_id) => self.requests.get(request_id).cloned().map(Record::Request),
            RecordKey::Map(key) => self.map.record(key).map(Record::Map),
            RecordKey::Catalog(key) => self.catalog.record(key).map(Record::Catalog),
            RecordKey::Account(key) => self.accounts.record(key).map(Record::Account),
        }
    }

    /// The whole state as records, sorted by key.
    pub fn records(&self) -> Vec<(RecordKey, Record)> {
        let mut out = Vec::new();
        if self.clock > 0 {
            out.push((RecordKey::Clock, Record::Clock(self.clock)));
        }
        let mut events = Vec::new();
        self.events.append_records(&mut events);
        out.extend(
            events
                .into_iter()
                .map(|(event_id, key, value)| (RecordKey::Event(event_id, key), Record::Event(value))),
        );
        for (request_id, record) in &self.requests {
            out.push((
                RecordKey::Request(request_id.clone()),
                Record::Request(record.clone()),
            ));
        }
        let mut map = Vec::new();
        self.map.append_records(&mut map);
        out.extend(map.into_iter().map(|(k, v)| (RecordKey::Map(k), Record::Map(v))));
        let mut catalog = Vec::new();
        self.catalog.append_records(&mut catalog);
        out.extend(
            catalog
                .into_iter()
                .map(|(k, v)| (RecordKey::Catalog(k), Record::Catalog(v))),
        );
        let mut accounts = Vec::new();
        self.accounts.append_records(&mut accounts);
        out.extend(
            accounts
                .into_iter()
                .map(|(k, v)| (RecordKey::Account(k), Record::Account(v))),
        );
        // An event's payments and notices come after its other records; one
        // sort puts every event's records together.
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
                (RecordKey::Event(event_id, event_key), Record::Event(value)) => {
                    match state.events.load(*event_id, event_key, value) {
                        Ok(()) => {}
                        Err(LoadIssue::MissingEvent) => return Err(LoadError::MissingEvent { key }),
                        Err(LoadIssue::WrongKind) => return Err(LoadError::WrongKind { key }),
                        Err(LoadIssue::Invalid(reason)) => return Err(invalid(reason)),
                    }
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
                (RecordKey::Map(map_key), Record::Map(value)) => {
                    state.map.load(map_key, value).map_err(invalid)?;
                }
                (RecordKey::Catalog(catalog_key), Record::Catalog(value)) => {
                    state.catalog.load(catalog_key, value).map_err(invalid)?;
                }
                (RecordKey::Account(account_key), Record::Account(value)) => {
                    state.accounts.load(account_key, value).map_err(invalid)?;
                }
                (_, _) => return Err(LoadError::WrongKind { key }),
            }
        }
        state.events.set_clock(state.clock);
        state
            .events
            .finish_loading()
            .map_err(|(event_id, reason)| LoadError::InvalidRecord {
                key: RecordKey::Event(event_id, crate::events::keys::EventKey::Event),
                reason,
            })?;
        state.check_invariants().map_err(LoadError::Inconsistent)?;
        state.map.check_invariants().map_err(LoadError::Inconsistent)?;
        Ok(state)
    }

    // ----- Reads ----------------------------------------------------------------

    /// Answers `query` from this state as it is now.
    pub fn query(&self, query: &Query) -> QueryResult {
        match query {
            Query::Event(event_id, query) => QueryResult::Event(self.events.query(*event_id, query)),
            Query::Orders(customer) => QueryResult::Orders(self.events.orders_of(customer)),
            Query::Map(query) => QueryResult::Map(self.map.query(query)),
            Query::Account(query) => QueryResult::Account(self.accounts.query(query)),
            Query::Catalog(query) => QueryResult::Catalog(self.catalog.query(query)),
        }
    }

    fn event_answer(&self, event_id: EventId, query: EventQuery) -> EventAnswer {
        self.events.query(event_id, &query)
    }

    pub fn event_view(&self, event_id: EventId) -> Option<EventView> {
        match self.event_answer(event_id, EventQuery::View) {
            EventAnswer::View(view) => view,
            _ => None,
        }
    }

    /// An event's name (cheaper than its view, which lists every seat).
    pub fn event_name(&self, event_id: EventId) -> Option<String> {
        self.events.event_name(event_id)
    }

    /// An event's cheapest tier price (a spec's prices never change).
    pub fn lowest_price(&self, event_id: EventId) -> Option<Money> {
        self.events.lowest_price(event_id)
    }

    pub fn hold_view(&self, event_id: EventId, hold_id: HoldId) -> Option<HoldView> {
        match self.event_answer(event_id, EventQuery::Hold(hold_id)) {
            EventAnswer::Hold(view) => view,
            _ => None,
        }
    }

    pub fn order_view(&self, event_id: EventId, order_id: OrderId) -> Option<OrderView> {
        match self.event_answer(event_id, EventQuery::Order(order_id)) {
            EventAnswer::Order(view) => view,
            _ => None,
        }
    }

    pub fn ticket_view(&self, event_id: EventId, code: &TicketCode) -> Option<TicketView> {
        match self.event_answer(event_id, EventQuery::Ticket(code.clone())) {
            EventAnswer::Ticket(view) => view,
            _ => None,
        }
    }

    pub fn payment_view_of(&self, event_id: EventId, payment_id: u64) -> Option<PaymentView> {
        match self.event_answer(event_id, EventQuery::Payment(payment_id)) {
            EventAnswer::Payment(view) => view,
            _ => None,
        }
    }

    pub fn waitlist_view(&self, event_id: EventId, customer: &CustomerId) -> Option<WaitlistView> {
        match self.event_answer(event_id, EventQuery::Waitlist(customer.clone())) {
            EventAnswer::Waitlist(view) => view,
            _ => None,
        }
    }

    /// A customer's notices about an event.
    pub fn notices_of(&self, event_id: EventId, customer: &CustomerId) -> Vec<NoticeView> {
        match self.event_answer(event_id, EventQuery::Notices(customer.clone())) {
            EventAnswer::Notices(notices) => notices,
            _ => Vec::new(),
        }
    }

    pub fn notice_view(&self, event_id: EventId, notice_id: NoticeId) -> Option<NoticeView> {
        self.events.notice_view(event_id, notice_id)
    }

    /// The earliest `expires_at_ms` among active holds. Once the leader's clock
    /// passes it, the leader proposes a `Tick` so the places go back on sale even
    /// if no other write arrives.
    pub fn next_hold_expiry(&self) -> Option<Millis> {
        self.events.next_hold_expiry()
    }

    /// Notices due for delivery at `now_ms`, soonest first (for the leader's
    /// dispatcher).
    pub fn due_notices(&self, now_ms: Millis, limit: usize) -> Vec<NoticeView> {
        self.events.due_notices(now_ms, limit)
    }

    /// Events where a waitlisted customer could be offered places now (the
    /// leader proposes `OfferWaitlist` for each).
    pub fn waitlist_offers_due(&self) -> Vec<EventId> {
        self.events.waitlist_offers_due()
    }

    /// Payments waiting for the provider or for a refund (for the leader's worker).
    pub fn open_payments(&self) -> Vec<PaymentView> {
        self.events.open_payments()
    }

    /// A customer's orders in this group's events.
    pub fn orders_of(&self, customer: &CustomerId) -> Vec<OrderView> {
        self.events.orders_of(customer)
    }

    pub fn account_view(&self, customer_id: &CustomerId) -> Option<AccountView> {
        self.accounts.view(customer_id)
    }

    /// Who holds an e-mail address (metadata group).
    pub fn email_claim(&self, email_key: &TokenHash) -> Option<EmailClaim> {
        self.accounts.claim(email_key)
    }

    /// An account with its password hash, by e-mail address (for login).
    pub fn account_by_email(&self, email: &str) -> Option<(CustomerId, AccountRecord)> {
        self.accounts.by_email(email)
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

    /// The time zone of an event's venue (metadata group only).
    pub fn venue_zone(&self, event_id: EventId) -> Option<String> {
        self.catalog.venue_zone(event_id).map(str::to_owned)
    }

    pub fn search(&self, search: &Search) -> SearchPage {
        self.catalog.search(search)
    }

    /// The cluster map (meaningful in the metadata group only).
    pub fn cluster_map(&self) -> &ClusterMap {
        &self.map
    }

    /// The state machine's clock: the largest `now_ms` applied so far.
    pub fn clock_ms(&self) -> Millis {
        self.clock
    }

    /// Checks every invariant of every domain plus the de-duplication table.
    /// Linear in the size of the state: for tests and after loading.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.events.check_invariants()?;
        self.accounts.check_invariants(self.clock)?;
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
    use crate::accounts::AccountCommand;

    use crate::events::keys::EventKey;

    use crate::events::payments::{PaymentOutcome, PaymentStatus};
    use crate::events::records::{EventValue, HeldPlaces, HoldRecord, SeatRecord};
    use crate::events::views::HoldStatus;
    use crate::events::vocab::{DEFAULT_HOLD_TTL_MS, EventCommand, EventSuccess, Selection};
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
        Command::Event(
            EventId(event),
            EventCommand::Create {
                spec,
                ticket_salt: [0; 16],
                draft,
            },
        )
    }

    fn hold(event: u64, seat: &str) -> Command {
        Command::Event(
            EventId(event),
            EventCommand::Hold {
                holder: CustomerId::new("alice").unwrap(),
                selection: Selection::Seats(vec![seat.to_owned()]),
                ttl_ms: None,
            },
        )
    }

    #[test]
    fn a_retry_is_answered_identically_from_a_compact_outcome() {
        let mut state = BookingState::new();
        state.apply(1, &request("a", 10, create(1))).unwrap();
        let first = state.apply(2, &request("h", 10, hold(1, "A-1-1"))).unwrap();
        // The table keeps which hold, not the hold's view.
        assert_eq!(
            state.requests[&RequestId::new("h").unwrap()].outcome,
            Ok(Remembered::Event(EventOutcome::Held(EventId(1), HoldId(2))))
        );
        let confirm = Command::Event(
            EventId(1),
            EventCommand::ConfirmHold {
                hold_id: HoldId(2),
                holder: CustomerId::new("alice").unwrap(),
            },
        );
        state.apply(3, &request("c", 11, confirm)).unwrap();
        // The retry gets the first answer again, though the hold was confirmed
        // since: the view is rendered as of the hold's creation.
        let again = state.apply(4, &request("h", 12, hold(1, "A-1-1"))).unwrap();
        assert_eq!(again, first);
        assert!(matches!(&again, Success::Event(EventSuccess::Held(h)) if h.status == HoldStatus::Active));
        assert_eq!(
            state.hold_view(EventId(1), HoldId(2)).unwrap().status,
            HoldStatus::Confirmed
        );
        assert_eq!(
            state.event_view(EventId(1)).unwrap().sold,
            1,
            "the retry held nothing"
        );
        // Rejections are kept as they are.
        let taken = state.apply(5, &request("t", 12, hold(1, "A-1-1")));
        assert!(matches!(taken, Err(Rejection::SeatUnavailable { .. })));
        assert_eq!(state.apply(6, &request("t", 13, hold(1, "A-1-1"))), taken);
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
            .filter(|(k, _)| !matches!(k, RecordKey::Event(_, EventKey::Hold(..))))
            .cloned()
            .collect();
        assert!(matches!(
            BookingState::from_records(without_hold),
            Err(LoadError::Inconsistent(_))
        ));

        // A record of the wrong kind.
        let mut wrong = records.clone();
        wrong.push((RecordKey::Event(EventId(1), EventKey::Seat(5)), Record::Clock(3)));
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
            RecordKey::Event(EventId(9), EventKey::Seat(0)),
            Record::Event(EventValue::Seat(SeatRecord::Held(HoldId(1)))),
        )];
        assert!(matches!(
            BookingState::from_records(orphan),
            Err(LoadError::MissingEvent { .. })
        ));

        // A seat index beyond the event's seat map.
        let mut beyond = records.clone();
        beyond.push((
            RecordKey::Event(EventId(1), EventKey::Seat(100)),
            Record::Event(EventValue::Seat(SeatRecord::Held(HoldId(2)))),
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
        let corrupt = |change: &dyn Fn(&mut HoldRecord)| {
            let mut records = records.clone();
            for (_, record) in &mut records {
                if let Record::Event(EventValue::Hold(hold)) = record {
                    change(hold);
                }
            }
            BookingState::from_records(records)
        };
        let beyond_map = corrupt(&|hold| hold.places = HeldPlaces::Seats(vec![0, 1_000]));
        assert!(
            matches!(beyond_map, Err(LoadError::Inconsistent(_))),
            "{beyond_map:?}"
        );
        let huge_ga = corrupt(&|hold| {
            hold.places = HeldPlaces::Ga {
                area: 0,
                quantity: u32::MAX,
            };
        });
        assert!(matches!(huge_ga, Err(LoadError::Inconsistent(_))), "{huge_ga:?}");
        let unknown_area = corrupt(&|hold| hold.places = HeldPlaces::Ga { area: 7, quantity: 1 });
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
        let register = Command::Account(AccountCommand::Register {
            customer_id: alice.clone(),
            account: NewAccount {
                email: "alice@example.org".to_owned(),
                name: "Alice".to_owned(),
                region: crate::RegionId::new("eu-west").unwrap(),
                role: Role::Customer,
                password_hash: "$argon2id$x".to_owned(),
            },
        });
        state.apply(1, &request("r", 10, register)).unwrap();
        let start = Command::Account(AccountCommand::StartSession {
            customer_id: alice.clone(),
            token_hash: [4; 32],
            ttl_ms: 1_000,
        });
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
                .any(|(k, v)| matches!(k, RecordKey::Account(AccountKey::Session(_))) && v.is_some())
        );
        assert!(
            !state
                .records()
                .iter()
                .any(|(k, _)| matches!(k, RecordKey::Account(AccountKey::Session(_))))
        );
    }

    fn pay(event: u64, hold: u64) -> Command {
        Command::Event(
            EventId(event),
            EventCommand::StartPayment {
                hold_id: HoldId(hold),
                holder: CustomerId::new("alice").unwrap(),
                method: "tok_visa".to_owned(),
            },
        )
    }

    fn settle(event: u64, payment: u64, outcome: PaymentOutcome) -> Command {
        Command::Event(
            EventId(event),
            EventCommand::SettlePayment {
                payment_id: payment,
                outcome,
            },
        )
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
            matches!(started, Success::Event(EventSuccess::PaymentStarted(ref v)) if v.status == PaymentStatus::Pending && v.amount.amount_minor > 0)
        );
        // A second checkout of the same hold is refused while the first is pending.
        assert_eq!(
            state.apply(4, &request("p2", 11, pay(1, 2))),
            Err(Rejection::PaymentInProgress { payment_id: 3 })
        );
        let settled = state
            .apply(5, &request("s", 12, settle(1, 3, PaymentOutcome::Authorised)))
            .unwrap();
        let Success::Event(EventSuccess::PaymentUpdated(view)) = settled else {
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
        assert!(
            matches!(again, Ok(Success::Event(EventSuccess::PaymentUpdated(ref v))) if v.status == PaymentStatus::Succeeded)
        );
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
        let refunded = Command::Event(EventId(1), EventCommand::RefundSettled { payment_id: 5 });
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
        let confirm = Command::Event(
            EventId(1),
            EventCommand::ConfirmHold {
                hold_id: HoldId(5),
                holder: CustomerId::new("alice").unwrap(),
            },
        );
        state.apply(6, &request("c2", 12, confirm)).unwrap();
        state.apply(7, &request("h3", 12, hold(1, "A-1-3"))).unwrap();
        let cancelled = state.apply(
            8,
            &request("x", 13, Command::Event(EventId(1), EventCommand::Cancel)),
        );
        assert_eq!(
            cancelled,
            Ok(Success::Event(EventSuccess::Cancelled {
                event_id: EventId(1),
                orders_cancelled: 2,
                refunds: 1
            }))
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
        let publish = || Command::Event(EventId(1), EventCommand::Publish);
        let first = state.apply(3, &request("p", 12, publish()));
        assert_eq!(
            first,
            Ok(Success::Event(EventSuccess::Published {
                event_id: EventId(1),
                at_ms: 12
            }))
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
        let release = Command::Event(
            EventId(1),
            EventCommand::ReleaseHold {
                hold_id: HoldId(2),
                holder: CustomerId::new("alice").unwrap(),
            },
        );
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
    use crate::events::feed::ChangeCause;
    use crate::events::notices::{Channel, Delivery};

    use crate::events::views::SeatStatusView;
    use crate::events::vocab::{EventCommand, EventSuccess, Selection, WAITLIST_OFFER_TTL_MS};
    use crate::ids::{Currency, Money};
    use crate::layout::{EventSpec, PriceTier};

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
                Command::Event(
                    EVENT,
                    EventCommand::Create {
                        spec: tiny(),
                        ticket_salt: [0; 16],
                        draft: false,
                    },
                ),
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
            let command = Command::Event(
                EVENT,
                EventCommand::Hold {
                    holder: who.clone(),
                    selection: Selection::Seats(seats.iter().map(|s| (*s).to_owned()).collect()),
                    ttl_ms: Some(ttl_ms),
                },
            );
            match self.run(now_ms, command) {
                Ok(Success::Event(EventSuccess::Held(hold))) => hold,
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
    fn staff_list_holds_and_orders_by_page_and_see_who_has_a_seat() {
        use crate::events::views::{HoldStatus, OrderStatus};
        use crate::events::vocab::{EventAnswer, EventQuery, ListFilter};
        let mut log = Log::new();
        let sold = log.hold(10, &alice(), &["A-1-1"], 60_000);
        log.run(
            20,
            Command::Event(
                EVENT,
                EventCommand::ConfirmHold {
                    hold_id: sold.hold_id,
                    holder: alice(),
                },
            ),
        )
        .unwrap();
        log.hold(30, &bob(), &["A-1-2"], 1_000);
        log.run(5_000, Command::Tick).unwrap();
        let held = log.hold(5_010, &bob(), &["A-1-2"], 60_000);
        // Alice asks for the seat Bob holds: refused, and counted a conflict.
        let taken = Command::Event(
            EVENT,
            EventCommand::Hold {
                holder: alice(),
                selection: Selection::Seats(vec!["A-1-2".to_owned()]),
                ttl_ms: None,
            },
        );
        assert!(log.run(5_020, taken).is_err());

        let holds = |filter: ListFilter<HoldStatus>| match log
            .state
            .event_answer(EVENT, EventQuery::Holds(filter))
        {
            EventAnswer::Holds(views) => views.iter().map(|v| (v.hold_id.0, v.status)).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let all = |limit| ListFilter {
            after: None,
            limit,
            status: None,
            holder: None,
        };
        let everything = holds(all(10));
        assert_eq!(
            everything.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            [HoldStatus::Confirmed, HoldStatus::Expired, HoldStatus::Active]
        );
        // Two pages of two: the second starts after the first's last id.
        let first = holds(all(2));
        let second = holds(ListFilter {
            after: Some(first[1].0),
            ..all(2)
        });
        assert_eq!([first, second].concat(), everything);
        assert_eq!(
            holds(ListFilter {
                status: Some(HoldStatus::Active),
                ..all(10)
            }),
            [(held.hold_id.0, HoldStatus::Active)]
        );
        assert_eq!(
            holds(ListFilter {
                holder: Some(alice()),
                ..all(10)
            }),
            [(sold.hold_id.0, HoldStatus::Confirmed)]
        );
        let orders = |status| match log.state.event_answer(
            EVENT,
            EventQuery::Orders(ListFilter {
                after: None,
                limit: 10,
                status,
                holder: None,
            }),
        ) {
            EventAnswer::Orders(views) => views.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!((orders(None), orders(Some(OrderStatus::Cancelled))), (1, 0));

        let EventAnswer::Seats(seats) = log.state.event_answer(
            EVENT,
            EventQuery::Seats(vec!["A-1-1".into(), "A-1-2".into(), "Z-9-9".into()]),
        ) else {
            panic!("not a seat answer");
        };
        let who: Vec<_> = seats
            .iter()
            .map(|s| {
                s.as_ref()
                    .map(|s| (s.status, s.hold_id, s.order_id.is_some(), s.holder.clone()))
            })
            .collect();
        assert_eq!(
            who,
            [
                Some((SeatStatusView::Sold, Some(sold.hold_id), true, Some(alice()))),
                Some((SeatStatusView::Held, Some(held.hold_id), false, Some(bob()))),
                None,
            ]
        );

        // The tally saw every outcome once.
        let tally = log.state.take_tally();
        assert_eq!(
            (
                tally.held,
                tally.conflict,
                tally.expired,
                tally.confirmed,
                tally.released
            ),
            (3, 1, 1, 1, 0)
        );
        assert_eq!(log.state.take_tally(), Default::default(), "drained");
    }

    #[test]
    fn every_change_of_places_is_in_the_feed_in_log_order() {
        let mut log = Log::new();
        let first = log.hold(10, &alice(), &["A-1-1"], 60_000);
        log.run(
            20,
            Command::Event(
                EVENT,
                EventCommand::ConfirmHold {
                    hold_id: first.hold_id,
                    holder: alice(),
                },
            ),
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
                Command::Event(
                    EVENT,
                    EventCommand::ConfirmHold {
                        hold_id: first.hold_id,
                        holder: alice()
                    }
                )
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
            Command::Event(
                EVENT,
                EventCommand::ConfirmHold {
                    hold_id: hold.hold_id,
                    holder: alice(),
                },
            ),
        )
        .unwrap();
        assert_eq!(log.kinds_of(&alice()), [("order_confirmed", true)]);
        let due = log.state.due_notices(1_000, 10);
        assert_eq!(due.len(), 1);
        log.run(
            2_000,
            Command::Event(
                EVENT,
                EventCommand::NoticeDelivered {
                    notice_id: due[0].notice_id,
                    channel: Channel::Email,
                },
            ),
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
        let join = |who: &CustomerId, quantity| {
            Command::Event(
                EVENT,
                EventCommand::JoinWaitlist {
                    customer: who.clone(),
                    tier: None,
                    quantity,
                },
            )
        };
        assert!(
            matches!(log.run(1, join(&bob(), 2)), Ok(Success::Event(EventSuccess::Waitlisted(w))) if w.position == 1)
        );
        assert!(
            matches!(log.run(2, join(&carol, 1)), Ok(Success::Event(EventSuccess::Waitlisted(w))) if w.position == 2)
        );
        assert_eq!(
            log.run(3, join(&carol, 1)),
            Err(Rejection::AlreadyWaitlisted { position: 2 })
        );
        assert!(log.state.waitlist_offers_due().is_empty(), "sold out");
        log.run(
            4,
            Command::Event(
                EVENT,
                EventCommand::ReleaseHold {
                    hold_id: both.hold_id,
                    holder: alice(),
                },
            ),
        )
        .unwrap();
        assert_eq!(log.state.waitlist_offers_due(), [EVENT]);
        // Bob asked first and wants both places: he gets them.
        let Ok(Success::Event(EventSuccess::WaitlistOffered { hold: Some(offer) })) =
            log.run(5, Command::Event(EVENT, EventCommand::OfferWaitlist))
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
            log.run(6, Command::Event(EVENT, EventCommand::OfferWaitlist)),
            Ok(Success::Event(EventSuccess::WaitlistOffered { hold: None }))
        );
        // Joining while places are free is refused: hold them instead.
        log.run(
            7,
            Command::Event(
                EVENT,
                EventCommand::ReleaseHold {
                    hold_id: offer.hold_id,
                    holder: bob(),
                },
            ),
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
            Command::Event(
                EVENT,
                EventCommand::ConfirmHold {
                    hold_id: hold.hold_id,
                    holder: alice(),
                },
            ),
        )
        .unwrap();
        for who in [alice(), bob()] {
            log.run(
                2,
                Command::Event(
                    EVENT,
                    EventCommand::SubscribeReminder {
                        customer: who,
                        channel: Some(Channel::Webhook),
                        remind_at_ms: 1_000_000,
                    },
                ),
            )
            .unwrap();
        }
        let carol = CustomerId::new("u.1.carol").unwrap();
        log.run(
            3,
            Command::Event(
                EVENT,
                EventCommand::JoinWaitlist {
                    customer: carol.clone(),
                    tier: Some("std".to_owned()),
                    quantity: 1,
                },
            ),
        )
        .unwrap();
        log.run(4, Command::Event(EVENT, EventCommand::Cancel)).unwrap();
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
                Command::Event(
                    EVENT,
                    EventCommand::SubscribeReminder {
                        customer: bob(),
                        channel: None,
                        remind_at_ms: 0
                    }
                )
            ),
            Err(Rejection::EventCancelled)
        );
    }
}
