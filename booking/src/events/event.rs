//! One event's state and the booking rules that act on it: hold, extend,
//! release, expire, confirm, cancel and check in.
//!
//! Every rule has two phases. The first only reads: it checks the command
//! against the state and computes everything the change needs (seats, totals,
//! ticket codes). The second only writes and cannot fail. This is what makes a
//! rejected command change nothing, without any undo machinery.
//!
//! All writes go through a few primitives (`set_seat`, `set_ga`,
//! `add_customer_places`, and direct inserts that mark their key dirty), which
//! keep the derived tier counters in step and record every changed key in the
//! dirty set that `BookingState::take_dirty` drains for persistence.
//!
//! Invariants (checked by `check_invariants`):
//! - Per tier, available + held + sold = capacity, and the derived counters equal
//!   the counts recomputed from seat and GA records.
//! - A seat is `Held(h)` iff active hold `h` lists it, and `Sold(o)` iff
//!   non-cancelled order `o` has a ticket for it.
//! - An area's `held` is the sum over its active holds, `sold` the number of its
//!   tickets in non-cancelled orders, and `held + sold <= capacity`.
//! - A customer's places are the places in their active holds plus the tickets in
//!   their non-cancelled orders, and customers with no places have no entry.
//! - Each ticket is listed by exactly the order it names, and each hold and
//!   order total is the sum of its places' prices.
//!
//! This module knows nothing about the clock's source, de-duplication, or which
//! holds are due to expire; `BookingState` owns those and passes them in.
//! The event's views are built in `render`, its records loaded in `loading`
//! and its invariants checked in `invariants`.

use std::collections::{BTreeMap, BTreeSet};

use super::best_available;
use super::feed::{AreaAvailability, AvailabilityChange, ChangeCause, SeatChange, TierAvailability};
use super::keys::{EventKey, EventKeys};
use super::records::{
    EventRecord, GaRecord, HeldPlaces, HoldRecord, HoldState, OrderRecord, SeatRecord, TicketPlace,
    TicketRecord, WaitlistRecord,
};
use super::ticket_codes::derive_code;
use super::views::{HoldView, OrderView, SeatStatusView, WaitlistView};
use super::vocab::{DEFAULT_HOLD_TTL_MS, Selection};
use crate::ids::{CustomerId, EventId, HoldId, Millis, Money, OrderId, TicketCode};
use crate::layout::SeatMap;
use crate::rejection::Rejection;

/// What `offer_waitlist` did with the entry it served.
pub(crate) struct WaitlistOffer {
    pub customer: CustomerId,
    /// The hold made for the customer, or why none could be.
    pub result: Result<HoldView, Rejection>,
}

/// Active holds ordered by when they expire: `(expires_at_ms, event, hold)`.
pub(crate) type ExpiryQueue = BTreeSet<(Millis, EventId, HoldId)>;

/// What a rule may touch outside its own event.
pub(crate) struct Context<'a> {
    /// The state machine's clock for this entry.
    pub now: Millis,
    /// The entry's log index, which names new holds and orders.
    pub log_index: u64,
    pub dirty: &'a mut EventKeys,
    pub expiry: &'a mut ExpiryQueue,
    /// Places whose availability changed, in the order they changed, for the
    /// live feed (`feed`). The state machine drains it after every rule.
    pub touched: &'a mut Vec<TicketPlace>,
    /// What the rules did, for metrics.
    pub tally: &'a mut super::tally::Tally,
}

/// Derived per-tier counts; available is capacity minus both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct TierCount {
    pub(super) held: u32,
    pub(super) sold: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct EventState {
    pub(super) id: EventId,
    pub(super) record: EventRecord,
    /// Derived from `record.spec`.
    pub(super) map: SeatMap,
    /// Indexed by seat index; `None` is available.
    pub(super) seats: Vec<Option<SeatRecord>>,
    /// Indexed by area index.
    pub(super) ga: Vec<GaRecord>,
    pub(super) holds: BTreeMap<HoldId, HoldRecord>,
    pub(super) orders: BTreeMap<OrderId, OrderRecord>,
    pub(super) tickets: BTreeMap<TicketCode, TicketRecord>,
    /// Places per customer; never zero.
    pub(super) customers: BTreeMap<CustomerId, u32>,
    /// Derived: active holds per customer; never zero.
    pub(super) active_holds: BTreeMap<CustomerId, u32>,
    /// Derived from `seats` and `ga`, indexed by tier.
    pub(super) tiers: Vec<TierCount>,
    /// Customers waiting for places, by the log index of their joining.
    pub(super) waitlist: BTreeMap<u64, WaitlistRecord>,
}

/// A selection whose names have been resolved against the seat map.
pub(super) enum Wanted {
    Seats(Vec<(u32, String)>),
    Best {
        section: u32,
        tier: Option<u32>,
        quantity: u32,
    },
    Ga {
        area: u32,
        quantity: u32,
    },
}

impl Wanted {
    pub(super) fn count(&self) -> u32 {
        match self {
            Wanted::Seats(seats) => seats.len() as u32,
            Wanted::Best { quantity, .. } | Wanted::Ga { quantity, .. } => *quantity,
        }
    }
}

impl EventState {
    /// An event with everything available. Fails if the spec does not validate.
    pub fn new(id: EventId, record: EventRecord) -> Result<EventState, Rejection> {
        let map = SeatMap::compile(&record.spec)?;
        Ok(EventState {
            id,
            seats: vec![None; map.seats.len()],
            ga: vec![GaRecord::default(); map.areas.len()],
            tiers: vec![TierCount::default(); map.tier_capacity.len()],
            map,
            record,
            holds: BTreeMap::new(),
            orders: BTreeMap::new(),
            tickets: BTreeMap::new(),
            customers: BTreeMap::new(),
            active_holds: BTreeMap::new(),
            waitlist: BTreeMap::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.record.spec.name
    }

    /// The cheapest tier's price: what a listing shows as "from".
    pub fn lowest_price(&self) -> Option<Money> {
        self.record
            .spec
            .tiers
            .iter()
            .map(|tier| tier.price)
            .min_by_key(|price| price.amount_minor)
    }

    pub fn capacity(&self) -> u32 {
        self.map.capacity()
    }

    // ----- Rules -------------------------------------------------------------

    pub fn hold(
        &mut self,
        ctx: &mut Context<'_>,
        holder: &CustomerId,
        selection: &Selection,
        ttl_ms: Option<u64>,
    ) -> Result<HoldView, Rejection> {
        if self.record.cancelled_at_ms.is_some() {
            return Err(Rejection::EventCancelled);
        }
        if self.record.published_at_ms.is_none() {
            return Err(Rejection::EventNotOnSale);
        }
        let spec = &self.record.spec;
        if let Some(opens_at_ms) = spec.sales_start_ms
            && ctx.now < opens_at_ms
        {
            return Err(Rejection::SalesNotOpen { opens_at_ms });
        }
        if let Some(closed_at_ms) = spec.sales_end_ms
            && ctx.now >= closed_at_ms
        {
            return Err(Rejection::SalesClosed { closed_at_ms });
        }
        let hold_id = HoldId(ctx.log_index);
        if self.holds.contains_key(&hold_id) {
            // Log indexes are unique, so this only happens if an entry is applied twice.
            return Err(Rejection::InvalidRequest(format!(
                "hold {hold_id} already exists"
            )));
        }
        let ttl_ms = ttl_ms.unwrap_or(DEFAULT_HOLD_TTL_MS);
        super::checks::check_hold_ttl(ttl_ms)?;
        let wanted = self.resolve(selection)?;
        if let Some(limit) = spec.max_active_holds_per_customer
            && self.active_holds.get(holder).copied().unwrap_or(0) >= limit
        {
            return Err(Rejection::TooManyHolds { limit });
        }
        let current = self.customer_places(holder);
        if let Some(limit) = self.record.spec.max_tickets_per_customer
            && u64::from(current) + u64::from(wanted.count()) > u64::from(limit)
        {
            return Err(Rejection::CustomerLimit { limit, current });
        }
        let places = self.allocate(wanted)?;
        let total = self.total(&places)?;

        let hold = HoldRecord {
            holder: holder.clone(),
            places,
            created_at_ms: ctx.now,
            ttl_ms,
            expires_at_ms: ctx.now.saturating_add(ttl_ms),
            extended: false,
            state: HoldState::Active,
            total,
        };
        match &hold.places {
            HeldPlaces::Seats(seats) => {
                for &seat in seats {
                    self.set_seat(ctx, seat, Some(SeatRecord::Held(hold_id)));
                }
            }
            &HeldPlaces::Ga { area, quantity } => {
                let mut ga = self.ga[area as usize];
                ga.held += quantity;
                self.set_ga(ctx, area, ga);
            }
        }
        self.add_customer_places(ctx, holder, i64::from(hold.places.count()));
        *self.active_holds.entry(holder.clone()).or_default() += 1;
        ctx.expiry.insert((hold.expires_at_ms, self.id, hold_id));
        ctx.dirty.insert((self.id, EventKey::Hold(hold_id)));
        self.holds.insert(hold_id, hold);
        ctx.tally.held += 1;
        Ok(self.hold_view(hold_id).expect("the hold was just inserted"))
    }

    pub fn extend(
        &mut self,
        ctx: &mut Context<'_>,
        hold_id: HoldId,
        holder: &CustomerId,
    ) -> Result<HoldView, Rejection> {
        let hold = self.active_hold(hold_id, holder)?;
        if hold.extended {
            return Err(Rejection::ExtensionUsed);
        }
        let old_expiry = hold.expires_at_ms;
        let new_expiry = old_expiry.saturating_add(hold.ttl_ms);

        ctx.expiry.remove(&(old_expiry, self.id, hold_id));
        ctx.expiry.insert((new_expiry, self.id, hold_id));
        let hold = self.holds.get_mut(&hold_id).expect("checked by active_hold");
        hold.expires_at_ms = new_expiry;
        hold.extended = true;
        ctx.dirty.insert((self.id, EventKey::Hold(hold_id)));
        Ok(self.hold_view(hold_id).expect("the hold exists"))
    }

    pub fn release(
        &mut self,
        ctx: &mut Context<'_>,
        hold_id: HoldId,
        holder: &CustomerId,
    ) -> Result<(), Rejection> {
        let hold = self.active_hold(hold_id, holder)?;
        ctx.expiry.remove(&(hold.expires_at_ms, self.id, hold_id));
        self.end_hold(ctx, hold_id, HoldState::Released);
        Ok(())
    }

    /// Ends an active hold whose time is up. The caller has already taken it off
    /// the expiry queue; a hold that is not active is left alone.
    pub fn expire(&mut self, ctx: &mut Context<'_>, hold_id: HoldId) {
        if self
            .holds
            .get(&hold_id)
            .is_some_and(|h| h.state == HoldState::Active)
        {
            self.end_hold(ctx, hold_id, HoldState::Expired);
        }
    }

    pub fn confirm(
        &mut self,
        ctx: &mut Context<'_>,
        hold_id: HoldId,
        holder: &CustomerId,
    ) -> Result<OrderView, Rejection> {
        let hold = self.active_hold(hold_id, holder)?;
        let order_id = OrderId(ctx.log_index);
        if self.orders.contains_key(&order_id) {
            // Log indexes are unique, so this only happens if an entry is applied twice.
            return Err(Rejection::InvalidRequest(format!(
                "order {order_id} already exists"
            )));
        }
        let places: Vec<TicketPlace> = match &hold.places {
            HeldPlaces::Seats(seats) => seats.iter().map(|&seat| TicketPlace::Seat(seat)).collect(),
            &HeldPlaces::Ga { area, quantity } => (0..quantity).map(|_| TicketPlace::Ga(area)).collect(),
        };
        let mut codes: Vec<TicketCode> = Vec::with_capacity(places.len());
        for ordinal in 0..places.len() as u32 {
            let taken = |candidate: &str| {
                self.tickets.contains_key(candidate) || codes.iter().any(|c| c.as_str() == candidate)
            };
            let code = derive_code(&self.record.ticket_salt, self.id, order_id, ordinal, taken);
            codes.push(code);
        }
        let order = OrderRecord {
            holder: hold.holder.clone(),
            hold_id,
            created_at_ms: ctx.now,
            cancelled_at_ms: None,
            total: hold.total,
            tickets: codes.clone(),
        };
        let expiry_entry = (hold.expires_at_ms, self.id, hold_id);

        ctx.expiry.remove(&expiry_entry);
        let mut ga_sold = BTreeMap::<u32, u32>::new();
        for (code, place) in codes.into_iter().zip(places) {
            match place {
                TicketPlace::Seat(seat) => self.set_seat(ctx, seat, Some(SeatRecord::Sold(order_id))),
                TicketPlace::Ga(area) => *ga_sold.entry(area).or_default() += 1,
            }
            ctx.dirty.insert((self.id, EventKey::Ticket(code.clone())));
            self.tickets.insert(
                code,
                TicketRecord {
                    order_id,
                    place,
                    checked_in_at_ms: None,
                },
            );
        }
        for (area, sold) in ga_sold {
            let mut ga = self.ga[area as usize];
            ga.held -= sold;
            ga.sold += sold;
            self.set_ga(ctx, area, ga);
        }
        // The customer's count does not change: the places move from hold to order.
        let hold = self.holds.get_mut(&hold_id).expect("checked by active_hold");
        hold.state = HoldState::Confirmed(order_id);
        ctx.tally.confirmed += 1;
        let holder = hold.holder.clone();
        self.forget_active_hold(&holder);
        ctx.dirty.insert((self.id, EventKey::Hold(hold_id)));
        ctx.dirty.insert((self.id, EventKey::Order(order_id)));
        self.orders.insert(order_id, order);
        Ok(self.order_view(order_id).expect("the order was just inserted"))
    }

    pub fn cancel(
        &mut self,
        ctx: &mut Context<'_>,
        order_id: OrderId,
        holder: &CustomerId,
    ) -> Result<OrderView, Rejection> {
        let order = self.orders.get(&order_id).ok_or(Rejection::UnknownOrder)?;
        if &order.holder != holder {
            return Err(Rejection::WrongHolder);
        }
        if order.cancelled_at_ms.is_some() {
            return Err(Rejection::OrderNotActive);
        }
        if order
            .tickets
            .iter()
            .any(|code| self.tickets[code].checked_in_at_ms.is_some())
        {
            return Err(Rejection::OrderCheckedIn);
        }
        self.cancel_unchecked(ctx, order_id);
        Ok(self.order_view(order_id).expect("the order exists"))
    }

    /// Cancels the event: active holds are released, every order (checked in
    /// or not) is cancelled, and no new hold is taken. Returns the orders it
    /// cancelled, for their payments to be refunded.
    pub fn cancel_event(&mut self, ctx: &mut Context<'_>) -> Result<Vec<OrderId>, Rejection> {
        if self.record.cancelled_at_ms.is_some() {
            return Err(Rejection::EventCancelled);
        }
        let active: Vec<(HoldId, Millis)> = self
            .holds
            .iter()
            .filter(|(_, h)| h.state == HoldState::Active)
            .map(|(&id, h)| (id, h.expires_at_ms))
            .collect();
        for (hold_id, expires_at_ms) in active {
            ctx.expiry.remove(&(expires_at_ms, self.id, hold_id));
            self.end_hold(ctx, hold_id, HoldState::Released);
        }
        let live: Vec<OrderId> = self
            .orders
            .iter()
            .filter(|(_, o)| o.cancelled_at_ms.is_none())
            .map(|(&id, _)| id)
            .collect();
        for &order_id in &live {
            self.cancel_unchecked(ctx, order_id);
        }
        self.record.cancelled_at_ms = Some(ctx.now);
        ctx.dirty.insert((self.id, EventKey::Event));
        Ok(live)
    }

    /// Puts a draft on sale; publishing again answers the first time.
    pub fn publish(&mut self, ctx: &mut Context<'_>) -> Result<Millis, Rejection> {
        if self.record.cancelled_at_ms.is_some() {
            return Err(Rejection::EventCancelled);
        }
        if let Some(at_ms) = self.record.published_at_ms {
            return Ok(at_ms);
        }
        self.record.published_at_ms = Some(ctx.now);
        ctx.dirty.insert((self.id, EventKey::Event));
        Ok(ctx.now)
    }

    /// The total of an active hold that `holder` may pay for.
    pub fn payable_total(&self, hold_id: HoldId, holder: &CustomerId) -> Result<Money, Rejection> {
        if self.record.cancelled_at_ms.is_some() {
            return Err(Rejection::EventCancelled);
        }
        self.active_hold(hold_id, holder).map(|hold| hold.total)
    }

    /// Whether the order exists and is not cancelled.
    pub fn order_is_live(&self, order_id: OrderId) -> bool {
        self.orders
            .get(&order_id)
            .is_some_and(|o| o.cancelled_at_ms.is_none())
    }

    /// The orders of one customer, oldest first.
    pub fn orders_of(&self, customer: &CustomerId) -> Vec<OrderView> {
        self.orders
            .iter()
            .filter(|(_, order)| &order.holder == customer)
            .filter_map(|(&id, _)| self.order_view(id))
            .collect()
    }

    pub fn has_hold(&self, hold_id: HoldId) -> bool {
        self.holds.contains_key(&hold_id)
    }

    /// Cancels a live order without asking whether it may be: its places go
    /// back on sale and its tickets become void.
    pub(super) fn cancel_unchecked(&mut self, ctx: &mut Context<'_>, order_id: OrderId) {
        ctx.tally.cancelled += 1;
        let order = &self.orders[&order_id];
        let places: Vec<TicketPlace> = order
            .tickets
            .iter()
            .map(|code| self.tickets[code].place)
            .collect();
        let holder = order.holder.clone();

        let mut ga_returned = BTreeMap::<u32, u32>::new();
        for place in &places {
            match *place {
                TicketPlace::Seat(seat) => self.set_seat(ctx, seat, None),
                TicketPlace::Ga(area) => *ga_returned.entry(area).or_default() += 1,
            }
        }
        for (area, returned) in ga_returned {
            let mut ga = self.ga[area as usize];
            ga.sold -= returned;
            self.set_ga(ctx, area, ga);
        }
        self.add_customer_places(ctx, &holder, -(places.len() as i64));
        let order = self.orders.get_mut(&order_id).expect("looked up above");
        order.cancelled_at_ms = Some(ctx.now);
        ctx.dirty.insert((self.id, EventKey::Order(order_id)));
    }

    pub fn check_in(&mut self, ctx: &mut Context<'_>, code: &TicketCode) -> Result<Millis, Rejection> {
        let ticket = self.tickets.get(code).ok_or(Rejection::UnknownTicket)?;
        if self.orders[&ticket.order_id].cancelled_at_ms.is_some() {
            return Err(Rejection::TicketVoid);
        }
        if let Some(first_checked_in_at_ms) = ticket.checked_in_at_ms {
            return Err(Rejection::AlreadyCheckedIn {
                first_checked_in_at_ms,
            });
        }
        let ticket = self.tickets.get_mut(code).expect("looked up above");
        ticket.checked_in_at_ms = Some(ctx.now);
        ctx.tally.checked_in += 1;
        ctx.dirty.insert((self.id, EventKey::Ticket(code.clone())));
        Ok(ctx.now)
    }

    // ----- Waitlist ------------------------------------------------------------

    /// Puts `customer` on the waitlist for `quantity` places of `tier` (any
    /// tier if `None`). Only when what they want is sold out: otherwise they
    /// should simply hold it.
    pub fn join_waitlist(
        &mut self,
        ctx: &mut Context<'_>,
        customer: &CustomerId,
        tier: Option<&str>,
        quantity: u32,
    ) -> Result<WaitlistView, Rejection> {
        if self.record.cancelled_at_ms.is_some() {
            return Err(Rejection::EventCancelled);
        }
        if self.record.published_at_ms.is_none() {
            return Err(Rejection::EventNotOnSale);
        }
        super::checks::check_waitlist_quantity(quantity)?;
        let tier = match tier {
            Some(name) => Some(self.map.tier(name).ok_or_else(|| Rejection::UnknownTier {
                tier: name.to_owned(),
            })?),
            None => None,
        };
        if let Some(position) = self.waitlist_position(customer) {
            return Err(Rejection::AlreadyWaitlisted { position });
        }
        if self.places_for(tier, quantity).is_some() {
            return Err(Rejection::PlacesAvailable);
        }
        if let Some(limit) = self.record.spec.max_tickets_per_customer {
            let current = self.customer_places(customer);
            if u64::from(current) + u64::from(quantity) > u64::from(limit) {
                return Err(Rejection::CustomerLimit { limit, current });
            }
        }
        let entry = WaitlistRecord {
            customer: customer.clone(),
            tier,
            quantity,
            joined_at_ms: ctx.now,
        };
        self.waitlist.insert(ctx.log_index, entry);
        ctx.dirty.insert((self.id, EventKey::Waitlist(ctx.log_index)));
        Ok(self.waitlist_view(customer).expect("the entry was just inserted"))
    }

    /// Takes `customer` off the waitlist.
    pub fn leave_waitlist(&mut self, ctx: &mut Context<'_>, customer: &CustomerId) -> Result<(), Rejection> {
        let position = self
            .waitlist
            .iter()
            .find(|(_, entry)| &entry.customer == customer)
            .map(|(&position, _)| position)
            .ok_or(Rejection::NotWaitlisted)?;
        self.waitlist.remove(&position);
        ctx.dirty.insert((self.id, EventKey::Waitlist(position)));
        Ok(())
    }

    /// The customer's place in the queue (1 is next), if they are on it.
    pub(super) fn waitlist_position(&self, customer: &CustomerId) -> Option<u32> {
        self.waitlist
            .values()
            .position(|entry| &entry.customer == customer)
            .map(|ahead| ahead as u32 + 1)
    }

    pub fn waitlist_view(&self, customer: &CustomerId) -> Option<WaitlistView> {
        let (&key, entry) = self
            .waitlist
            .iter()
            .find(|(_, entry)| &entry.customer == customer)?;
        let tier_name = entry
            .tier
            .map(|tier| self.record.spec.tiers[tier as usize].name.clone());
        Some(WaitlistView {
            event_id: self.id,
            customer_id: customer.clone(),
            position: self.waitlist.range(..key).count() as u32 + 1,
            waiting: self.waitlist.len() as u32,
            tier: tier_name,
            quantity: entry.quantity,
            joined_at_ms: entry.joined_at_ms,
        })
    }

    /// Whether an offer can be made now: someone waits for places that are
    /// available. The group leader asks this before proposing `OfferWaitlist`.
    pub fn offer_due(&self) -> bool {
        !self.waitlist.is_empty()
            && self.record.cancelled_at_ms.is_none()
            && self.capacity() > self.tiers.iter().map(|t| t.held + t.sold).sum::<u32>()
            && self
                .waitlist
                .values()
                .any(|entry| self.places_for(entry.tier, entry.quantity).is_some())
    }

    /// Makes one offer: the earliest entry whose places are available gets them
    /// as a hold of `ttl_ms`, and leaves the waitlist. An entry that can no
    /// longer be served (the customer reached a limit meanwhile) is dropped.
    /// Entries whose places are not available keep their position.
    pub fn offer_waitlist(&mut self, ctx: &mut Context<'_>, ttl_ms: u64) -> Option<WaitlistOffer> {
        let (position, entry, selection) = self.waitlist.iter().find_map(|(&position, entry)| {
            let selection = self.places_for(entry.tier, entry.quantity)?;
            Some((position, entry.clone(), selection))
        })?;
        self.waitlist.remove(&position);
        ctx.dirty.insert((self.id, EventKey::Waitlist(position)));
        let result = self.hold(ctx, &entry.customer, &selection, Some(ttl_ms));
        Some(WaitlistOffer {
            customer: entry.customer,
            result,
        })
    }

    /// A selection of `quantity` available places of `tier` (of any tier if
    /// `None`): adjacent seats in one row if there are, else a GA area with
    /// enough room, else the first available seats of the tier.
    pub(super) fn places_for(&self, tier: Option<u32>, quantity: u32) -> Option<Selection> {
        let tiers: Vec<u32> = match tier {
            Some(tier) => vec![tier],
            None => (0..self.tiers.len() as u32).collect(),
        };
        for tier in tiers {
            let count = self.tiers[tier as usize];
            let available = self.map.tier_capacity[tier as usize] - count.held - count.sold;
            if available < quantity {
                continue;
            }
            let tier_name = &self.record.spec.tiers[tier as usize].name;
            for (section, entry) in self.map.sections.iter().enumerate() {
                let adjacent =
                    best_available::choose_seats(&self.map, section as u32, Some(tier), quantity, |seat| {
                        self.seats[seat as usize].is_none()
                    });
                if adjacent.is_some() {
                    return Some(Selection::BestAvailable {
                        section: entry.name.clone(),
                        tier: Some(tier_name.clone()),
                        quantity,
                    });
                }
            }
            for (area, entry) in self.map.areas.iter().enumerate() {
                if entry.tier == tier && self.ga_available(area as u32) >= quantity {
                    return Some(Selection::GeneralAdmission {
                        area: entry.name.clone(),
                        quantity,
                    });
                }
            }
            let scattered: Vec<String> = self
                .map
                .seats
                .iter()
                .enumerate()
                .filter(|(index, seat)| seat.tier == tier && self.seats[*index].is_none())
                .take(quantity as usize)
                .map(|(_, seat)| seat.id.clone())
                .collect();
            if scattered.len() == quantity as usize {
                return Some(Selection::Seats(scattered));
            }
        }
        None
    }

    /// Whether the event still takes holds (published, not cancelled).
    pub fn is_cancelled(&self) -> bool {
        self.record.cancelled_at_ms.is_some()
    }

    /// The active hold's expiry, if the hold is active.
    pub fn active_hold_expiry(&self, hold_id: HoldId) -> Option<Millis> {
        self.holds
            .get(&hold_id)
            .filter(|hold| hold.state == HoldState::Active)
            .map(|hold| hold.expires_at_ms)
    }

    /// Every live order's holder, for telling them the event is cancelled.
    pub fn order_holder(&self, order_id: OrderId) -> Option<&CustomerId> {
        self.orders.get(&order_id).map(|order| &order.holder)
    }

    /// Customers on the waitlist, in order; empties it (the event is cancelled).
    pub fn clear_waitlist(&mut self, ctx: &mut Context<'_>) -> Vec<CustomerId> {
        let entries = std::mem::take(&mut self.waitlist);
        entries
            .into_iter()
            .map(|(position, entry)| {
                ctx.dirty.insert((self.id, EventKey::Waitlist(position)));
                entry.customer
            })
            .collect()
    }

    // ----- Live feed -------------------------------------------------------------

    /// What `touched` places look like now, with every tier's count: one
    /// change of the live feed.
    pub fn availability_change(
        &self,
        touched: &[TicketPlace],
        log_index: u64,
        ordinal: u32,
        at_ms: Millis,
        cause: ChangeCause,
    ) -> AvailabilityChange {
        let mut seats = BTreeSet::new();
        let mut areas = BTreeSet::new();
        for place in touched {
            match *place {
                TicketPlace::Seat(seat) => seats.insert(seat),
                TicketPlace::Ga(area) => areas.insert(area),
            };
        }
        let seat_status = |seat: u32| match self.seats[seat as usize] {
            None => SeatStatusView::Available,
            Some(SeatRecord::Held(_)) => SeatStatusView::Held,
            Some(SeatRecord::Sold(_)) => SeatStatusView::Sold,
        };
        let tiers = self
            .record
            .spec
            .tiers
            .iter()
            .zip(&self.tiers)
            .zip(&self.map.tier_capacity)
            .map(|((tier, count), &capacity)| TierAvailability {
                tier: tier.name.clone(),
                available: capacity - count.held - count.sold,
            })
            .collect();
        let taken: u32 = self.tiers.iter().map(|t| t.held + t.sold).sum();
        AvailabilityChange {
            event_id: self.id,
            log_index,
            ordinal,
            at_ms,
            cause,
            seats: seats
                .into_iter()
                .map(|seat| SeatChange {
                    seat: self.map.seats[seat as usize].id.clone(),
                    status: seat_status(seat),
                })
                .collect(),
            areas: areas
                .into_iter()
                .map(|area| AreaAvailability {
                    area: self.map.areas[area as usize].name.clone(),
                    available: self.ga_available(area),
                })
                .collect(),
            tiers,
            available: self.capacity() - taken,
        }
    }

    // ----- Checks shared by rules (read only) -------------------------------

    /// The hold, if `holder` may act on it and it is still active. The holder is
    /// checked before the state so that strangers learn nothing about a hold.
    pub(super) fn active_hold(&self, hold_id: HoldId, holder: &CustomerId) -> Result<&HoldRecord, Rejection> {
        let hold = self.holds.get(&hold_id).ok_or(Rejection::UnknownHold)?;
        if &hold.holder != holder {
            return Err(Rejection::WrongHolder);
        }
        match hold.state {
            HoldState::Active => Ok(hold),
            HoldState::Expired => Err(Rejection::HoldExpired),
            HoldState::Released | HoldState::Confirmed(_) => Err(Rejection::HoldNotActive),
        }
    }

    /// Checks a selection's shape (`Selection::check_shape`, the edge's check
    /// too) and resolves its names.
    pub(super) fn resolve(&self, selection: &Selection) -> Result<Wanted, Rejection> {
        selection.check_shape()?;
        match selection {
            Selection::Seats(ids) => {
                let seats = ids
                    .iter()
                    .map(|id| match self.map.seat(id) {
                        Some(index) => Ok((index, id.clone())),
                        None => Err(Rejection::UnknownSeat { seat: id.clone() }),
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Wanted::Seats(seats))
            }
            Selection::BestAvailable {
                section,
                tier,
                quantity,
            } => {
                let section_index = self
                    .map
                    .section(section)
                    .ok_or_else(|| Rejection::UnknownSection {
                        section: section.clone(),
                    })?;
                let tier_index = match tier {
                    Some(tier) => Some(
                        self.map
                            .tier(tier)
                            .ok_or_else(|| Rejection::UnknownTier { tier: tier.clone() })?,
                    ),
                    None => None,
                };
                Ok(Wanted::Best {
                    section: section_index,
                    tier: tier_index,
                    quantity: *quantity,
                })
            }
            Selection::GeneralAdmission { area, quantity } => {
                let area_index = self
                    .map
                    .area(area)
                    .ok_or_else(|| Rejection::UnknownArea { area: area.clone() })?;
                Ok(Wanted::Ga {
                    area: area_index,
                    quantity: *quantity,
                })
            }
        }
    }

    /// Finds available places for a resolved selection.
    pub(super) fn allocate(&self, wanted: Wanted) -> Result<HeldPlaces, Rejection> {
        match wanted {
            Wanted::Seats(seats) => {
                let taken: Vec<String> = seats
                    .iter()
                    .filter(|(index, _)| self.seats[*index as usize].is_some())
                    .map(|(_, id)| id.clone())
                    .collect();
                if !taken.is_empty() {
                    return Err(Rejection::SeatUnavailable { seats: taken });
                }
                let mut indexes: Vec<u32> = seats.into_iter().map(|(index, _)| index).collect();
                indexes.sort_unstable();
                Ok(HeldPlaces::Seats(indexes))
            }
            Wanted::Best {
                section,
                tier,
                quantity,
            } => best_available::choose_seats(&self.map, section, tier, quantity, |seat| {
                self.seats[seat as usize].is_none()
            })
            .map(HeldPlaces::Seats)
            .ok_or(Rejection::NotEnoughSeats { requested: quantity }),
            Wanted::Ga { area, quantity } => {
                if quantity > self.ga_available(area) {
                    return Err(Rejection::NotEnoughSeats { requested: quantity });
                }
                Ok(HeldPlaces::Ga { area, quantity })
            }
        }
    }

    /// The sum of the places' tier prices. Spec validation bounds prices so that
    /// this cannot overflow; the check stays so that it can never wrap silently.
    pub(super) fn total(&self, places: &HeldPlaces) -> Result<Money, Rejection> {
        let overflow = || Rejection::InvalidRequest("the total price overflows".to_owned());
        let mut total = Money::zero(self.record.spec.currency);
        let mut add = |tier: u32, count: u32| -> Result<(), Rejection> {
            let price = self.record.spec.tiers[tier as usize].price;
            for _ in 0..count {
                total = total.checked_add(price).ok_or_else(overflow)?;
            }
            Ok(())
        };
        match places {
            HeldPlaces::Seats(seats) => seats
                .iter()
                .try_for_each(|&seat| add(self.map.seats[seat as usize].tier, 1))?,
            &HeldPlaces::Ga { area, quantity } => add(self.map.areas[area as usize].tier, quantity)?,
        }
        Ok(total)
    }

    pub(super) fn customer_places(&self, customer: &CustomerId) -> u32 {
        self.customers.get(customer).copied().unwrap_or(0)
    }

    pub(super) fn ga_available(&self, area: u32) -> u32 {
        let ga = self.ga[area as usize];
        self.map.areas[area as usize].capacity - ga.held - ga.sold
    }

    // ----- Write primitives (cannot fail) -----------------------------------

    /// Moves an active hold to `state` and puts its places back on sale.
    pub(super) fn end_hold(&mut self, ctx: &mut Context<'_>, hold_id: HoldId, state: HoldState) {
        let hold = self.holds.get_mut(&hold_id).expect("caller checked the hold");
        hold.state = state;
        match state {
            HoldState::Expired => ctx.tally.expired += 1,
            HoldState::Released => ctx.tally.released += 1,
            HoldState::Active | HoldState::Confirmed(_) => {}
        }
        let places = hold.places.clone();
        let holder = hold.holder.clone();
        self.forget_active_hold(&holder);
        ctx.dirty.insert((self.id, EventKey::Hold(hold_id)));
        match places {
            HeldPlaces::Seats(seats) => {
                for &seat in &seats {
                    self.set_seat(ctx, seat, None);
                }
                self.add_customer_places(ctx, &holder, -(seats.len() as i64));
            }
            HeldPlaces::Ga { area, quantity } => {
                let mut ga = self.ga[area as usize];
                ga.held -= quantity;
                self.set_ga(ctx, area, ga);
                self.add_customer_places(ctx, &holder, -i64::from(quantity));
            }
        }
    }

    pub(super) fn forget_active_hold(&mut self, holder: &CustomerId) {
        if let Some(count) = self.active_holds.get_mut(holder) {
            *count -= 1;
            if *count == 0 {
                self.active_holds.remove(holder);
            }
        }
    }

    pub(super) fn count_active_holds(&self) -> BTreeMap<CustomerId, u32> {
        let mut counts = BTreeMap::new();
        for hold in self.holds.values().filter(|h| h.state == HoldState::Active) {
            *counts.entry(hold.holder.clone()).or_default() += 1;
        }
        counts
    }

    pub(super) fn set_seat(&mut self, ctx: &mut Context<'_>, seat: u32, new: Option<SeatRecord>) {
        let tier = self.map.seats[seat as usize].tier as usize;
        let old = std::mem::replace(&mut self.seats[seat as usize], new);
        let count = &mut self.tiers[tier];
        match old {
            Some(SeatRecord::Held(_)) => count.held -= 1,
            Some(SeatRecord::Sold(_)) => count.sold -= 1,
            None => {}
        }
        match new {
            Some(SeatRecord::Held(_)) => count.held += 1,
            Some(SeatRecord::Sold(_)) => count.sold += 1,
            None => {}
        }
        ctx.dirty.insert((self.id, EventKey::Seat(seat)));
        ctx.touched.push(TicketPlace::Seat(seat));
    }

    pub(super) fn set_ga(&mut self, ctx: &mut Context<'_>, area: u32, new: GaRecord) {
        let tier = self.map.areas[area as usize].tier as usize;
        let old = std::mem::replace(&mut self.ga[area as usize], new);
        let count = &mut self.tiers[tier];
        count.held = count.held - old.held + new.held;
        count.sold = count.sold - old.sold + new.sold;
        ctx.dirty.insert((self.id, EventKey::Ga(area)));
        ctx.touched.push(TicketPlace::Ga(area));
    }

    pub(super) fn add_customer_places(&mut self, ctx: &mut Context<'_>, customer: &CustomerId, delta: i64) {
        let places = i64::from(self.customer_places(customer)) + delta;
        debug_assert!(places >= 0, "customer {customer} would have {places} places");
        if places > 0 {
            self.customers.insert(customer.clone(), places as u32);
        } else {
            self.customers.remove(customer);
        }
        ctx.dirty.insert((self.id, EventKey::Customer(customer.clone())));
    }
}
