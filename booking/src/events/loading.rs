//! An event's records: what it stores under each key, and how it is rebuilt
//! from them with everything derived (tier counters, active-hold counts).

use super::event::{EventState, TierCount};
use super::keys::EventKey;
use super::records::{CustomerRecord, EventValue, GaRecord, HoldState, SeatRecord};
use crate::ids::{EventId, HoldId, Millis};

impl EventState {
    /// The current record under `key`; `None` for no record, and for the
    /// payments and notices of the event, which its group keeps.
    pub fn record(&self, key: &EventKey) -> Option<EventValue> {
        match key {
            EventKey::Event => Some(EventValue::Event(self.record.clone())),
            EventKey::Seat(seat) => self
                .seats
                .get(*seat as usize)
                .copied()
                .flatten()
                .map(EventValue::Seat),
            EventKey::Ga(area) => self
                .ga
                .get(*area as usize)
                .filter(|ga| **ga != GaRecord::default())
                .map(|ga| EventValue::Ga(*ga)),
            EventKey::Hold(hold_id) => self.holds.get(hold_id).cloned().map(EventValue::Hold),
            EventKey::Order(order_id) => self.orders.get(order_id).cloned().map(EventValue::Order),
            EventKey::Ticket(code) => self.tickets.get(code).cloned().map(EventValue::Ticket),
            EventKey::Customer(customer) => self
                .customers
                .get(customer)
                .map(|&places| EventValue::Customer(CustomerRecord { places })),
            EventKey::Waitlist(position) => self.waitlist.get(position).cloned().map(EventValue::Waitlist),
            EventKey::Payment(_) | EventKey::Notice(..) => None,
        }
    }

    /// Appends every record of this event (not its payments and notices).
    pub fn append_records(&self, out: &mut Vec<(EventId, EventKey, EventValue)>) {
        let id = self.id;
        out.push((id, EventKey::Event, EventValue::Event(self.record.clone())));
        for (seat, state) in self.seats.iter().enumerate() {
            if let Some(state) = state {
                out.push((id, EventKey::Seat(seat as u32), EventValue::Seat(*state)));
            }
        }
        for (area, ga) in self.ga.iter().enumerate() {
            if *ga != GaRecord::default() {
                out.push((id, EventKey::Ga(area as u32), EventValue::Ga(*ga)));
            }
        }
        for (hold_id, hold) in &self.holds {
            out.push((id, EventKey::Hold(*hold_id), EventValue::Hold(hold.clone())));
        }
        for (order_id, order) in &self.orders {
            out.push((id, EventKey::Order(*order_id), EventValue::Order(order.clone())));
        }
        for (code, ticket) in &self.tickets {
            out.push((
                id,
                EventKey::Ticket(code.clone()),
                EventValue::Ticket(ticket.clone()),
            ));
        }
        for (customer, &places) in &self.customers {
            out.push((
                id,
                EventKey::Customer(customer.clone()),
                EventValue::Customer(CustomerRecord { places }),
            ));
        }
        for (&position, entry) in &self.waitlist {
            out.push((
                id,
                EventKey::Waitlist(position),
                EventValue::Waitlist(entry.clone()),
            ));
        }
    }

    /// Loads one record of this event (not the `Event` record itself, nor a
    /// payment or notice). Derived state is rebuilt afterwards by
    /// [`EventState::rebuild_counters`].
    pub fn load(&mut self, key: &EventKey, value: EventValue) -> Result<(), String> {
        match (key, value) {
            (EventKey::Seat(seat), EventValue::Seat(state)) => {
                let slot = self
                    .seats
                    .get_mut(*seat as usize)
                    .ok_or("seat index out of range")?;
                *slot = Some(state);
            }
            (EventKey::Ga(area), EventValue::Ga(ga)) => {
                if ga == GaRecord::default() {
                    return Err("an area with nothing held or sold must have no record".to_owned());
                }
                *self.ga.get_mut(*area as usize).ok_or("area index out of range")? = ga;
            }
            (EventKey::Hold(hold_id), EventValue::Hold(hold)) => {
                self.holds.insert(*hold_id, hold);
            }
            (EventKey::Order(order_id), EventValue::Order(order)) => {
                self.orders.insert(*order_id, order);
            }
            (EventKey::Ticket(code), EventValue::Ticket(ticket)) => {
                self.tickets.insert(code.clone(), ticket);
            }
            (EventKey::Customer(customer), EventValue::Customer(CustomerRecord { places })) => {
                if places == 0 {
                    return Err("a customer with no places must have no record".to_owned());
                }
                self.customers.insert(customer.clone(), places);
            }
            (EventKey::Waitlist(position), EventValue::Waitlist(entry)) => {
                if entry
                    .tier
                    .is_some_and(|tier| tier as usize >= self.map.tier_capacity.len())
                {
                    return Err("waitlist tier out of range".to_owned());
                }
                self.waitlist.insert(*position, entry);
            }
            _ => return Err("not a record of an event's contents".to_owned()),
        }
        Ok(())
    }

    /// Recomputes the tier counters from seat and GA records. Validates indexes
    /// and capacities first, so that the arithmetic cannot underflow.
    pub fn rebuild_counters(&mut self) -> Result<(), String> {
        for (index, ga) in self.ga.iter().enumerate() {
            let capacity = self.map.areas[index].capacity;
            if u64::from(ga.held) + u64::from(ga.sold) > u64::from(capacity) {
                return Err(format!(
                    "area {} has more than {capacity} places held or sold",
                    self.map.areas[index].name
                ));
            }
        }
        self.tiers = self.recount_tiers();
        self.active_holds = self.count_active_holds();
        Ok(())
    }

    pub(super) fn recount_tiers(&self) -> Vec<TierCount> {
        let mut tiers = vec![TierCount::default(); self.map.tier_capacity.len()];
        for (seat, state) in self.map.seats.iter().zip(&self.seats) {
            match state {
                Some(SeatRecord::Held(_)) => tiers[seat.tier as usize].held += 1,
                Some(SeatRecord::Sold(_)) => tiers[seat.tier as usize].sold += 1,
                None => {}
            }
        }
        for (area, ga) in self.map.areas.iter().zip(&self.ga) {
            tiers[area.tier as usize].held += ga.held;
            tiers[area.tier as usize].sold += ga.sold;
        }
        tiers
    }

    /// The expiry-queue entries of this event's active holds.
    pub fn active_expiries(&self) -> impl Iterator<Item = (Millis, EventId, HoldId)> + '_ {
        self.holds
            .iter()
            .filter(|(_, hold)| hold.state == HoldState::Active)
            .map(|(&hold_id, hold)| (hold.expires_at_ms, self.id, hold_id))
    }
}
