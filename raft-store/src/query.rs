//! Reads of the replicated state, named so they can travel to a leader.

use booking::{
    AccountRecord, AccountView, ClusterMap, CustomerId, EventId, EventView, GroupId, HoldId, HoldView,
    OrderId, OrderView, PaymentView, TicketCode, TicketView,
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
    /// A payment of an event.
    Payment(EventId, u64),
    /// An account, in the group its id names (`u.{group}.{..}`).
    Account(CustomerId),
    /// An account with its password hash, by e-mail address, in a region's
    /// accounts group (which the caller names).
    AccountByEmail(String),
    /// Who holds an e-mail address, by its keyed hash (metadata group).
    EmailClaim(booking::TokenHash),
    /// A venue of the catalog (metadata group).
    Venue(u64),
    /// Venues after an id (metadata group).
    Venues {
        after: u64,
        limit: u32,
    },
    /// An event's listing as of `now_ms` (metadata group).
    Listing(EventId, u64),
    /// A page of listings (metadata group).
    Search(booking::Search),
    /// A customer's orders in one group (asked of every data group).
    OrdersOf(CustomerId),
    /// A customer's place on an event's waitlist.
    Waitlist(EventId, CustomerId),
    /// A customer's notices about an event.
    Notices(EventId, CustomerId),
}

impl Query {
    /// The event whose Raft group must answer this query; `None` for the
    /// metadata group's and the accounts' queries.
    pub fn event_id(&self) -> Option<EventId> {
        match self {
            Query::Event(e)
            | Query::Hold(e, _)
            | Query::Order(e, _)
            | Query::Ticket(e, _)
            | Query::Payment(e, _)
            | Query::Waitlist(e, _)
            | Query::Notices(e, _) => Some(*e),
            Query::ClusterMap
            | Query::Placement(_)
            | Query::Account(_)
            | Query::AccountByEmail(_)
            | Query::EmailClaim(_)
            | Query::Venue(_)
            | Query::Venues { .. }
            | Query::Listing(..)
            | Query::Search(_)
            | Query::OrdersOf(_) => None,
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
    Payment(Option<PaymentView>),
    Account(Option<AccountView>),
    AccountByEmail(Option<(CustomerId, AccountRecord)>),
    EmailClaim(Option<booking::EmailClaim>),
    Venue(Option<booking::VenueView>),
    Venues(Vec<booking::VenueView>),
    Listing(Option<booking::ListingView>),
    Search(booking::SearchPage),
    Orders(Vec<OrderView>),
    Waitlist(Option<booking::WaitlistView>),
    Notices(Vec<booking::NoticeView>),
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
            Query::Payment(e, p) => QueryResult::Payment(state.payment_view_of(*e, *p)),
            Query::Account(c) => QueryResult::Account(state.account_view(c)),
            Query::AccountByEmail(email) => QueryResult::AccountByEmail(state.account_by_email(email)),
            Query::EmailClaim(key) => QueryResult::EmailClaim(state.email_claim(key)),
            Query::Venue(id) => QueryResult::Venue(state.venue(*id)),
            Query::Venues { after, limit } => QueryResult::Venues(state.venues(*after, *limit)),
            Query::Listing(e, now_ms) => QueryResult::Listing(state.listing(*e, *now_ms)),
            Query::Search(search) => QueryResult::Search(state.search(search)),
            Query::OrdersOf(customer) => QueryResult::Orders(state.orders_of(customer)),
            Query::Waitlist(e, customer) => QueryResult::Waitlist(state.waitlist_view(*e, customer)),
            Query::Notices(e, customer) => QueryResult::Notices(state.notices_of(*e, customer)),
        }
    }
}
