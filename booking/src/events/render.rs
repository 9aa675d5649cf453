//! What an event looks like from outside: its seat map with counts, and its
//! holds, orders and tickets (the types are in `views`).

use std::ops::Bound;

use super::event::EventState;
use super::records::{HeldPlaces, HoldState, SeatRecord, TicketPlace};
use super::views::{
    EventView, GaAreaView, GaSelectionView, HoldStatus, HoldView, OrderStatus, OrderView, RowView,
    SeatStatusView, SeatView, SectionView, TicketStatus, TicketView, TierView,
};
use super::vocab::{ListFilter, MAX_PAGE, SeatDetail};
use crate::ids::{HoldId, OrderId, TicketCode};

impl EventState {
    pub fn event_view(&self) -> EventView {
        let spec = &self.record.spec;
        let tier_name = |tier: u32| spec.tiers[tier as usize].name.clone();
        let tiers = spec
            .tiers
            .iter()
            .zip(&self.tiers)
            .zip(&self.map.tier_capacity)
            .map(|((tier, count), &capacity)| TierView {
                name: tier.name.clone(),
                price: tier.price,
                capacity,
                available: capacity - count.held - count.sold,
            })
            .collect();
        let sections = self
            .map
            .sections
            .iter()
            .map(|section| SectionView {
                name: section.name.clone(),
                rows: self.map.rows[section.rows.start as usize..section.rows.end as usize]
                    .iter()
                    .map(|row| RowView {
                        name: row.name.clone(),
                        seats: row
                            .seats
                            .clone()
                            .map(|index| {
                                let seat = &self.map.seats[index as usize];
                                SeatView {
                                    id: seat.id.clone(),
                                    number: seat.number,
                                    tier: tier_name(seat.tier),
                                    status: match self.seats[index as usize] {
                                        None => SeatStatusView::Available,
                                        Some(SeatRecord::Held(_)) => SeatStatusView::Held,
                                        Some(SeatRecord::Sold(_)) => SeatStatusView::Sold,
                                    },
                                }
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        let ga_areas = self
            .map
            .areas
            .iter()
            .enumerate()
            .map(|(index, area)| GaAreaView {
                name: area.name.clone(),
                tier: tier_name(area.tier),
                capacity: area.capacity,
                available: self.ga_available(index as u32),
            })
            .collect();
        let held = self.tiers.iter().map(|t| t.held).sum();
        let sold = self.tiers.iter().map(|t| t.sold).sum();
        EventView {
            event_id: self.id,
            name: spec.name.clone(),
            currency: spec.currency,
            capacity: self.capacity(),
            available: self.capacity() - held - sold,
            held,
            sold,
            max_tickets_per_customer: spec.max_tickets_per_customer,
            sales_start_ms: spec.sales_start_ms,
            sales_end_ms: spec.sales_end_ms,
            status: match (self.record.cancelled_at_ms, self.record.published_at_ms) {
                (Some(_), _) => "cancelled",
                (None, None) => "draft",
                (None, Some(_)) => "on_sale",
            }
            .to_owned(),
            published_at_ms: self.record.published_at_ms,
            cancelled_at_ms: self.record.cancelled_at_ms,
            tiers,
            sections,
            ga_areas,
        }
    }

    /// The holds `filter` asks for, in id order.
    pub fn holds_page(&self, filter: &ListFilter<HoldStatus>) -> Vec<HoldView> {
        let start = filter
            .after
            .map_or(Bound::Unbounded, |after| Bound::Excluded(HoldId(after)));
        self.holds
            .range((start, Bound::Unbounded))
            .filter(|(_, hold)| filter.holder.as_ref().is_none_or(|h| *h == hold.holder))
            .filter_map(|(&id, _)| self.hold_view(id))
            .filter(|view| filter.status.is_none_or(|s| s == view.status))
            .take(filter.limit.min(MAX_PAGE) as usize)
            .collect()
    }

    /// The orders `filter` asks for, in id order.
    pub fn orders_page(&self, filter: &ListFilter<OrderStatus>) -> Vec<OrderView> {
        let start = filter
            .after
            .map_or(Bound::Unbounded, |after| Bound::Excluded(OrderId(after)));
        self.orders
            .range((start, Bound::Unbounded))
            .filter(|(_, order)| filter.holder.as_ref().is_none_or(|h| *h == order.holder))
            .filter_map(|(&id, _)| self.order_view(id))
            .filter(|view| filter.status.is_none_or(|s| s == view.status))
            .take(filter.limit.min(MAX_PAGE) as usize)
            .collect()
    }

    /// A seat's status and who has it; `None` for an id the map lacks.
    pub fn seat_detail(&self, id: &str) -> Option<SeatDetail> {
        let index = self.map.seat(id)?;
        let (status, hold_id, order_id, holder) = match &self.seats[index as usize] {
            None => (SeatStatusView::Available, None, None, None),
            Some(SeatRecord::Held(hold_id)) => (
                SeatStatusView::Held,
                Some(*hold_id),
                None,
                self.holds.get(hold_id).map(|h| h.holder.clone()),
            ),
            Some(SeatRecord::Sold(order_id)) => {
                let order = self.orders.get(order_id);
                (
                    SeatStatusView::Sold,
                    order.map(|o| o.hold_id),
                    Some(*order_id),
                    order.map(|o| o.holder.clone()),
                )
            }
        };
        Some(SeatDetail {
            seat: id.to_owned(),
            status,
            hold_id,
            order_id,
            holder,
        })
    }

    pub fn hold_view(&self, hold_id: HoldId) -> Option<HoldView> {
        let hold = self.holds.get(&hold_id)?;
        let (seats, ga) = match &hold.places {
            HeldPlaces::Seats(seats) => (
                seats
                    .iter()
                    .map(|&seat| self.map.seats[seat as usize].id.clone())
                    .collect(),
                None,
            ),
            &HeldPlaces::Ga { area, quantity } => (
                Vec::new(),
                Some(GaSelectionView {
                    area: self.map.areas[area as usize].name.clone(),
                    quantity,
                }),
            ),
        };
        let (status, order_id) = match hold.state {
            HoldState::Active => (HoldStatus::Active, None),
            HoldState::Released => (HoldStatus::Released, None),
            HoldState::Expired => (HoldStatus::Expired, None),
            HoldState::Confirmed(order_id) => (HoldStatus::Confirmed, Some(order_id)),
        };
        Some(HoldView {
            hold_id,
            event_id: self.id,
            holder: hold.holder.clone(),
            seats,
            ga,
            created_at_ms: hold.created_at_ms,
            expires_at_ms: hold.expires_at_ms,
            extended: hold.extended,
            status,
            order_id,
            total: hold.total,
        })
    }

    /// The hold's view as the answer that created it (`extended: false`) or
    /// extended it (`true`) showed it: active, with the expiry it had then.
    /// The record keeps everything else such a view shows.
    pub fn hold_view_as_of(&self, hold_id: HoldId, extended: bool) -> Option<HoldView> {
        let hold = self.holds.get(&hold_id)?;
        let ttls = if extended { 2 } else { 1 };
        let mut view = self.hold_view(hold_id)?;
        view.expires_at_ms = hold
            .created_at_ms
            .saturating_add(hold.ttl_ms.saturating_mul(ttls));
        view.extended = extended;
        view.status = HoldStatus::Active;
        view.order_id = None;
        Some(view)
    }

    /// The order's view as the answer that confirmed it (`cancelled: false`)
    /// or cancelled it (`true`) showed it.
    pub fn order_view_as_of(&self, order_id: OrderId, cancelled: bool) -> Option<OrderView> {
        let mut view = self.order_view(order_id)?;
        if cancelled {
            view.status = OrderStatus::Cancelled;
        } else {
            view.status = OrderStatus::Confirmed;
            view.cancelled_at_ms = None;
        }
        for ticket in &mut view.tickets {
            // A confirmed order's tickets were all valid; a customer can only
            // cancel an order none of whose tickets was used.
            ticket.status = if cancelled {
                TicketStatus::Void
            } else {
                TicketStatus::Valid
            };
            ticket.checked_in_at_ms = None;
        }
        Some(view)
    }

    pub fn order_view(&self, order_id: OrderId) -> Option<OrderView> {
        let order = self.orders.get(&order_id)?;
        Some(OrderView {
            order_id,
            event_id: self.id,
            holder: order.holder.clone(),
            hold_id: order.hold_id,
            status: match order.cancelled_at_ms {
                None => OrderStatus::Confirmed,
                Some(_) => OrderStatus::Cancelled,
            },
            created_at_ms: order.created_at_ms,
            cancelled_at_ms: order.cancelled_at_ms,
            total: order.total,
            tickets: order
                .tickets
                .iter()
                .filter_map(|code| self.ticket_view(code))
                .collect(),
        })
    }

    pub fn ticket_view(&self, code: &TicketCode) -> Option<TicketView> {
        let ticket = self.tickets.get(code)?;
        let order = self.orders.get(&ticket.order_id)?;
        let (seat, ga_area, tier) = match ticket.place {
            TicketPlace::Seat(seat) => {
                let seat = &self.map.seats[seat as usize];
                (Some(seat.id.clone()), None, seat.tier)
            }
            TicketPlace::Ga(area) => {
                let area = &self.map.areas[area as usize];
                (None, Some(area.name.clone()), area.tier)
            }
        };
        let tier = &self.record.spec.tiers[tier as usize];
        let status = match (order.cancelled_at_ms, ticket.checked_in_at_ms) {
            (Some(_), _) => TicketStatus::Void,
            (None, Some(_)) => TicketStatus::CheckedIn,
            (None, None) => TicketStatus::Valid,
        };
        Some(TicketView {
            code: code.clone(),
            event_id: self.id,
            order_id: ticket.order_id,
            seat,
            ga_area,
            tier: tier.name.clone(),
            price: tier.price,
            status,
            checked_in_at_ms: ticket.checked_in_at_ms,
        })
    }
}
