//! Reads of the booking state, named so they can travel to a leader.

use booking::{EventId, EventView, HoldId, HoldView, OrderId, OrderView, TicketCode, TicketView};
use serde::{Deserialize, Serialize};

use crate::state_machine::SharedState;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Event(EventId),
    Hold(EventId, HoldId),
    Order(EventId, OrderId),
    Ticket(EventId, TicketCode),
}

impl Query {
    /// The event whose Raft group must answer this query.
    pub fn event_id(&self) -> EventId {
        match self {
            Query::Event(e) | Query::Hold(e, _) | Query::Order(e, _) | Query::Ticket(e, _) => *e,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryResult {
    Event(Option<EventView>),
    Hold(Option<HoldView>),
    Order(Option<OrderView>),
    Ticket(Option<TicketView>),
}

impl SharedState {
    /// Answers `query` from this replica's applied state, as it is now.
    pub fn query(&self, query: &Query) -> QueryResult {
        let state = self.read();
        match query {
            Query::Event(e) => QueryResult::Event(state.event_view(*e)),
            Query::Hold(e, h) => QueryResult::Hold(state.hold_view(*e, *h)),
            Query::Order(e, o) => QueryResult::Order(state.order_view(*e, *o)),
            Query::Ticket(e, code) => QueryResult::Ticket(state.ticket_view(*e, code)),
        }
    }
}
