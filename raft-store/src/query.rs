//! Reads of the replicated state, named so they can travel to a leader.

use booking::{
    ClusterMap, EventId, EventView, GroupId, HoldId, HoldView, OrderId, OrderView, TicketCode, TicketView,
};
use serde::{Deserialize, Serialize};

use crate::state_machine::SharedState;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Event(EventId),
    Hold(EventId, HoldId),
    Order(EventId, OrderId),
    Ticket(EventId, TicketCode),
    /// The whole cluster map (metadata group).
    ClusterMap,
    /// The group owning an event (metadata group).
    Placement(EventId),
}

impl Query {
    /// The event whose Raft group must answer this query; `None` for the
    /// metadata group's queries.
    pub fn event_id(&self) -> Option<EventId> {
        match self {
            Query::Event(e) | Query::Hold(e, _) | Query::Order(e, _) | Query::Ticket(e, _) => Some(*e),
            Query::ClusterMap | Query::Placement(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryResult {
    Event(Option<EventView>),
    Hold(Option<HoldView>),
    Order(Option<OrderView>),
    Ticket(Option<TicketView>),
    ClusterMap(Box<ClusterMap>),
    Placement(Option<GroupId>),
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
            Query::ClusterMap => QueryResult::ClusterMap(Box::new(state.cluster_map().clone())),
            Query::Placement(e) => QueryResult::Placement(state.cluster_map().group_of(*e)),
        }
    }
}
