//! An event's invariants, checked after loading and by the tests (see the
//! list in `event`).

use std::collections::BTreeMap;

use super::event::EventState;
use super::records::{GaRecord, HeldPlaces, HoldState, SeatRecord, TicketPlace};
use super::vocab::MAX_PLACES_PER_HOLD;
use crate::ids::{CustomerId, Millis, OrderId, TicketCode};

impl EventState {
    /// Recomputes everything derivable from holds and orders and compares it with
    /// what is stored and counted. `now` is the state machine's clock.
    pub fn check_invariants(&self, now: Millis) -> Result<(), String> {
        let event = self.id;
        let fail = |what: String| Err(format!("event {event}: {what}"));
        if self.active_holds != self.count_active_holds() {
            return fail("the active-hold counts do not match the active holds".to_owned());
        }

        // What seats, areas and customers should look like, from holds and orders.
        let mut seats: Vec<Option<SeatRecord>> = vec![None; self.seats.len()];
        let mut ga = vec![GaRecord::default(); self.ga.len()];
        let mut customers = BTreeMap::<CustomerId, u32>::new();
        for (&hold_id, hold) in &self.holds {
            // Shape first: the checks below index the seat map with these places.
            let places_fit = match &hold.places {
                HeldPlaces::Seats(list) => list.iter().all(|&seat| (seat as usize) < self.seats.len()),
                &HeldPlaces::Ga { area, quantity } => {
                    (area as usize) < self.ga.len() && (1..=MAX_PLACES_PER_HOLD).contains(&quantity)
                }
            };
            if !places_fit {
                return fail(format!(
                    "hold {hold_id} names places outside the seat map or too many"
                ));
            }
            if hold.total != self.total(&hold.places).map_err(|e| e.to_string())? {
                return fail(format!("hold {hold_id} total does not match its places"));
            }
            if let HeldPlaces::Seats(list) = &hold.places
                && (list.is_empty()
                    || list.len() > MAX_PLACES_PER_HOLD as usize
                    || !list.is_sorted()
                    || list.windows(2).any(|w| w[0] == w[1]))
            {
                return fail(format!("hold {hold_id} seats are not a sorted, non-empty set"));
            }
            if let HoldState::Confirmed(order_id) = hold.state
                && self
                    .orders
                    .get(&order_id)
                    .is_none_or(|order| order.hold_id != hold_id)
            {
                return fail(format!(
                    "hold {hold_id} names order {order_id}, which does not name it back"
                ));
            }
            if hold.state != HoldState::Active {
                continue;
            }
            if hold.expires_at_ms <= now {
                return fail(format!(
                    "hold {hold_id} is active but expired at {}",
                    hold.expires_at_ms
                ));
            }
            *customers.entry(hold.holder.clone()).or_default() += hold.places.count();
            match &hold.places {
                HeldPlaces::Seats(list) => {
                    for &seat in list {
                        let slot = seats
                            .get_mut(seat as usize)
                            .ok_or_else(|| format!("hold {hold_id}: bad seat"))?;
                        if slot.replace(SeatRecord::Held(hold_id)).is_some() {
                            return fail(format!("seat {seat} is in two active holds"));
                        }
                    }
                }
                &HeldPlaces::Ga { area, quantity } => {
                    let slot = ga
                        .get_mut(area as usize)
                        .ok_or_else(|| format!("hold {hold_id}: bad area"))?;
                    slot.held += quantity;
                }
            }
        }
        let mut ticket_owner = BTreeMap::<&TicketCode, OrderId>::new();
        for (&order_id, order) in &self.orders {
            let hold_confirms_it = self.holds.get(&order.hold_id).is_some_and(|hold| {
                hold.state == HoldState::Confirmed(order_id) && hold.holder == order.holder
            });
            if !hold_confirms_it {
                return fail(format!(
                    "order {order_id} is not the confirmation of hold {}",
                    order.hold_id
                ));
            }
            let hold = &self.holds[&order.hold_id];
            if order.total != hold.total || order.tickets.len() as u32 != hold.places.count() {
                return fail(format!("order {order_id} does not match hold {}", order.hold_id));
            }
            let cancelled = order.cancelled_at_ms.is_some();
            if !cancelled {
                *customers.entry(order.holder.clone()).or_default() += order.tickets.len() as u32;
            }
            for code in &order.tickets {
                if ticket_owner.insert(code, order_id).is_some() {
                    return fail(format!("ticket {code} is listed by two orders or twice"));
                }
                let Some(ticket) = self.tickets.get(code) else {
                    return fail(format!("order {order_id} lists missing ticket {code}"));
                };
                if ticket.order_id != order_id {
                    return fail(format!(
                        "ticket {code} names order {}, not {order_id}",
                        ticket.order_id
                    ));
                }
                if cancelled && ticket.checked_in_at_ms.is_some() {
                    return fail(format!("ticket {code} was checked in but its order is cancelled"));
                }
                if cancelled {
                    continue;
                }
                match ticket.place {
                    TicketPlace::Seat(seat) => {
                        let slot = seats
                            .get_mut(seat as usize)
                            .ok_or_else(|| format!("ticket {code}: bad seat"))?;
                        if slot.replace(SeatRecord::Sold(order_id)).is_some() {
                            return fail(format!("seat {seat} is sold twice or also held"));
                        }
                    }
                    TicketPlace::Ga(area) => {
                        ga.get_mut(area as usize)
                            .ok_or_else(|| format!("ticket {code}: bad area"))?
                            .sold += 1;
                    }
                }
            }
        }
        if ticket_owner.len() != self.tickets.len() {
            return fail("some tickets belong to no order".to_owned());
        }
        if seats != self.seats {
            let seat = seats
                .iter()
                .zip(&self.seats)
                .position(|(a, b)| a != b)
                .unwrap_or_default();
            return fail(format!(
                "seat {} is {:?} but holds and orders say {:?}",
                self.map.seats[seat].id, self.seats[seat], seats[seat]
            ));
        }
        if ga != self.ga {
            return fail(format!(
                "GA counts are {:?} but holds and orders say {ga:?}",
                self.ga
            ));
        }
        for (area, entry) in self.ga.iter().zip(&self.map.areas) {
            if u64::from(area.held) + u64::from(area.sold) > u64::from(entry.capacity) {
                return fail(format!("area {} is oversold", entry.name));
            }
        }
        if customers != self.customers {
            return fail(format!(
                "customer counts are {:?} but holds and orders say {customers:?}",
                self.customers
            ));
        }
        let recounted = self.recount_tiers();
        if recounted != self.tiers {
            return fail(format!(
                "tier counters are {:?} but records say {recounted:?}",
                self.tiers
            ));
        }
        for (tier, (count, &capacity)) in self.tiers.iter().zip(&self.map.tier_capacity).enumerate() {
            let available = self.recount_available(tier as u32);
            if u64::from(available) + u64::from(count.held) + u64::from(count.sold) != u64::from(capacity) {
                return fail(format!(
                    "tier {tier}: available + held + sold != capacity {capacity}"
                ));
            }
        }
        for code in self.tickets.keys() {
            if !code.as_str().starts_with(&format!("{event}-")) {
                return fail(format!("ticket {code} does not carry the event id"));
            }
        }
        Ok(())
    }

    /// Available places of a tier, counted one by one (not from the counters).
    pub(super) fn recount_available(&self, tier: u32) -> u32 {
        let seats = self
            .map
            .seats
            .iter()
            .zip(&self.seats)
            .filter(|(s, state)| s.tier == tier && state.is_none())
            .count();
        let places: u32 = self
            .map
            .areas
            .iter()
            .zip(&self.ga)
            .filter(|(area, _)| area.tier == tier)
            .map(|(area, ga)| area.capacity - ga.held - ga.sold)
            .sum();
        seats as u32 + places
    }
}
