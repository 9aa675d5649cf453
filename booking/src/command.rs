//! The state machine's input and output: [`Request`]s in, [`Response`]s out.
//!
//! A `Request` is exactly what the Raft leader proposes: the client's idempotency
//! key, the leader's wall-clock time and the command. Everything the rules need
//! must be in here, because replicas may not consult anything else.
//!
//! Commands and successes are nested by domain: each domain module owns its
//! vocabulary (`events::vocab`, `cluster_map`, `accounts`, `catalog`) and this
//! file only names which domain a command is for. A [`Rejection`] is a
//! deterministic business outcome shared by every domain (`rejection`).
//!
//! Every type here travels in a compact binary form (log entries, stored
//! responses), so none uses serde attributes that need a self-describing
//! format (no `flatten`, `untagged`, internal tags or skipped fields).

use serde::{Deserialize, Serialize};

use crate::accounts::{AccountCommand, AccountSuccess};
use crate::catalog::{CatalogCommand, CatalogSuccess};
use crate::cluster_map::{MapCommand, MapSuccess};
use crate::events::vocab::{EventCommand, EventSuccess};
use crate::ids::{EventId, Millis, RequestId};
use crate::rejection::Rejection;

/// One committed log entry's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The idempotency key: a second request with the same id gets the first
    /// one's response and has no effect (for 24 hours of log time).
    pub request_id: RequestId,
    /// The leader's clock when it proposed the entry. The state machine's clock
    /// is the maximum of these, so a new leader with a slow clock cannot move
    /// time backwards.
    pub now_ms: Millis,
    /// A digest of `command`, computed by the leader that proposed it. A
    /// request id that comes back with a different fingerprint is a client
    /// reusing an `Idempotency-Key` for another request, and is refused.
    pub fingerprint: u64,
    pub command: Command,
}

/// What a group is asked to do, by domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// About one event, in the event's group.
    Event(EventId, EventCommand),
    /// The cluster map (metadata group).
    Map(MapCommand),
    /// Accounts (a region's accounts group) and e-mail claims (metadata group).
    Account(AccountCommand),
    /// Venues and listings (metadata group).
    Catalog(CatalogCommand),
    /// Only advances the clock (and so expires holds). The leader proposes it
    /// when `next_hold_expiry` has passed. Never de-duplicated or recorded.
    Tick,
}

impl Command {
    /// The event the command is about; `None` for every other domain.
    pub fn event_id(&self) -> Option<EventId> {
        match self {
            Command::Event(event_id, _) => Some(*event_id),
            Command::Map(_) | Command::Account(_) | Command::Catalog(_) | Command::Tick => None,
        }
    }

    /// Housekeeping the leader proposes on its own (`Tick`,
    /// `OfferWaitlist`): not de-duplicated and not recorded, since each is
    /// safe to apply any number of times.
    pub fn is_housekeeping(&self) -> bool {
        match self {
            Command::Tick => true,
            Command::Event(_, command) => command.is_housekeeping(),
            Command::Map(_) | Command::Account(_) | Command::Catalog(_) => false,
        }
    }
}

pub type Response = Result<Success, Rejection>;

/// What a group answers, by domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Success {
    Event(EventSuccess),
    Map(MapSuccess),
    Account(AccountSuccess),
    Catalog(CatalogSuccess),
    Ticked,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::vocab::Selection;
    use crate::ids::CustomerId;

    #[test]
    fn requests_round_trip_through_json() {
        let request = Request {
            request_id: RequestId::new("r-1").unwrap(),
            now_ms: 5,
            fingerprint: 9,
            command: Command::Event(
                EventId(1),
                EventCommand::Hold {
                    holder: CustomerId::new("alice").unwrap(),
                    selection: Selection::BestAvailable {
                        section: "A".to_owned(),
                        tier: None,
                        quantity: 2,
                    },
                    ttl_ms: Some(60_000),
                },
            ),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
    }
}
