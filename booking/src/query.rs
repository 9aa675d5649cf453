//! Reads of the replicated state, named so they can travel to a leader, and
//! nested by domain like the commands.
//!
//! A [`Query`] is answered from one replica's applied state
//! (`BookingState::query`); whether that replica is the leader (a
//! linearizable read) or any replica (a local read) is the router's choice.

use serde::{Deserialize, Serialize};

use crate::accounts::{AccountAnswer, AccountQuery};
use crate::catalog::{CatalogAnswer, CatalogQuery, SearchPage};
use crate::cluster_map::{MapAnswer, MapQuery};
use crate::events::views::OrderView;
use crate::events::vocab::{EventAnswer, EventQuery};
use crate::ids::{CustomerId, EventId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// About one event, in the event's group.
    Event(EventId, EventQuery),
    /// A customer's orders in the group's events (asked of every data group).
    Orders(CustomerId),
    Map(MapQuery),
    Account(AccountQuery),
    Catalog(CatalogQuery),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryResult {
    Event(EventAnswer),
    Orders(Vec<OrderView>),
    Map(MapAnswer),
    Account(AccountAnswer),
    Catalog(CatalogAnswer),
}

impl Query {
    /// The event whose group must answer this query; `None` for the other
    /// domains (their group is the metadata group or an accounts group).
    pub fn event_id(&self) -> Option<EventId> {
        match self {
            Query::Event(event_id, _) => Some(*event_id),
            Query::Orders(_) | Query::Map(_) | Query::Account(_) | Query::Catalog(_) => None,
        }
    }

    /// The answer when there is nothing to find (no such event, no group).
    pub fn nothing(&self) -> QueryResult {
        match self {
            Query::Event(_, query) => QueryResult::Event(EventAnswer::nothing(query)),
            Query::Orders(_) => QueryResult::Orders(Vec::new()),
            Query::Map(MapQuery::ClusterMap) => QueryResult::Map(MapAnswer::ClusterMap(Box::default())),
            Query::Map(MapQuery::Placement(_)) => QueryResult::Map(MapAnswer::Placement(None)),
            Query::Account(AccountQuery::Account(_)) => QueryResult::Account(AccountAnswer::Account(None)),
            Query::Account(AccountQuery::ByEmail(_)) => QueryResult::Account(AccountAnswer::ByEmail(None)),
            Query::Account(AccountQuery::EmailClaim(_)) => {
                QueryResult::Account(AccountAnswer::EmailClaim(None))
            }
            Query::Catalog(CatalogQuery::Venue(_)) => QueryResult::Catalog(CatalogAnswer::Venue(None)),
            Query::Catalog(CatalogQuery::Venues { .. }) => {
                QueryResult::Catalog(CatalogAnswer::Venues(Vec::new()))
            }
            Query::Catalog(CatalogQuery::Listing(..)) => QueryResult::Catalog(CatalogAnswer::Listing(None)),
            Query::Catalog(CatalogQuery::Search(_)) => {
                QueryResult::Catalog(CatalogAnswer::Search(SearchPage {
                    events: Vec::new(),
                    next: None,
                }))
            }
            Query::Catalog(CatalogQuery::FxRates) => QueryResult::Catalog(CatalogAnswer::FxRates(Vec::new())),
        }
    }
}
