//! The router: any node accepts any request and gets it to the right leader.
//!
//! Today every event lives in one Raft group (`transport::BOOKING_GROUP`);
//! the router already speaks in groups so that sharding events across groups
//! changes how a group is found, not how a request travels.
//!
//! A write goes to the leader this node believes in (from Raft metrics or the
//! last hint a peer gave). "Not leader" answers redirect it; an unreachable
//! peer or a missing leader is retried with exponential backoff and jitter
//! until a deadline. Every attempt of one write carries the same request id,
//! and the state machine de-duplicates by it, so a retry never takes a second
//! effect. When an attempt may have reached a leader without an answer coming
//! back and the deadline passes, the caller is told the outcome is unknown,
//! never that the write failed.
//!
//! What the router does not do: decide outcomes (the booking core does), or
//! persist anything.

mod expiry;
mod leader;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use booking::{Command, RequestId, Response};
use openraft::async_runtime::WatchReceiver;
use raft_store::{Query, QueryResult, Raft, SharedState};
use transport::BOOKING_GROUP;
use transport::booking_service::{BookingPeer, ForwardedWrite, LeaderReply, PeerError};
use transport::channels::ChannelPool;

pub use expiry::run_expiry_ticker;

/// How hard the router tries before giving up on a request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Give up after this long, counted from the first attempt.
    pub deadline: Duration,
    /// Wait for one attempt's reply at most this long.
    pub attempt_timeout: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        }
    }
}

/// Why the router could not deliver a definite answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Nothing was applied; retrying later is safe.
    #[error("no leader could be reached: {reason}")]
    Unavailable { reason: String },
    /// The write may or may not have been applied. Retrying with the same
    /// request id returns the original outcome if it was.
    #[error("the outcome of request {request_id} is unknown: {reason}")]
    OutcomeUnknown { request_id: RequestId, reason: String },
}

pub struct Router {
    node_id: u64,
    raft: Raft,
    state: SharedState,
    pool: ChannelPool,
    policy: RetryPolicy,
    /// The leader a peer told us about most recently; used before metrics,
    /// which lag behind a fresh election.
    hint: Mutex<Option<u64>>,
}

enum Attempt<T> {
    Done(T),
    /// Try again; `uncertain` if this attempt may have taken effect.
    Retry {
        uncertain: bool,
        reason: String,
    },
}

impl Router {
    pub fn new(node_id: u64, raft: Raft, state: SharedState, pool: ChannelPool, policy: RetryPolicy) -> Self {
        Self {
            node_id,
            raft,
            state,
            pool,
            policy,
            hint: Mutex::new(None),
        }
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Applies `command` once, on the leader of the group owning it.
    pub async fn submit(&self, request_id: RequestId, command: Command) -> Result<Response, RouteError> {
        let write = ForwardedWrite { request_id, command };
        let outcome = self
            .with_retries(|target| {
                let write = write.clone();
                async move {
                    let reply = if target == self.node_id {
                        Ok(leader::submit(&self.raft, write, self.policy.attempt_timeout).await)
                    } else {
                        match self.peer(target) {
                            Ok(mut peer) => {
                                peer.submit(BOOKING_GROUP, &write, self.policy.attempt_timeout)
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    };
                    self.interpret(reply)
                }
            })
            .await;
        outcome.map_err(|(uncertain, reason)| {
            if uncertain {
                RouteError::OutcomeUnknown {
                    request_id: write.request_id.clone(),
                    reason,
                }
            } else {
                RouteError::Unavailable { reason }
            }
        })
    }

    /// Answers `query` linearizably: from the leader, after it confirmed its
    /// leadership with a quorum.
    pub async fn query(&self, query: Query) -> Result<QueryResult, RouteError> {
        let outcome = self
            .with_retries(|target| {
                let query = query.clone();
                async move {
                    let reply = if target == self.node_id {
                        Ok(leader::query(&self.raft, &self.state, query).await)
                    } else {
                        match self.peer(target) {
                            Ok(mut peer) => {
                                peer.query(BOOKING_GROUP, &query, self.policy.attempt_timeout)
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    };
                    // A read has no effect, so an unanswered one is simply retried.
                    match self.interpret(reply) {
                        Attempt::Retry { reason, .. } => Attempt::Retry {
                            uncertain: false,
                            reason,
                        },
                        done => done,
                    }
                }
            })
            .await;
        outcome.map_err(|(_, reason)| RouteError::Unavailable { reason })
    }

    /// Answers `query` from this node's replica without asking anyone: fast,
    /// possibly stale.
    pub fn query_local(&self, query: &Query) -> QueryResult {
        self.state.query(query)
    }

    fn peer(&self, target: u64) -> Result<BookingPeer, PeerError> {
        // Borrow the metrics only long enough to copy one address: cloning the
        // whole RaftMetrics on every forwarded request is needless work.
        let watch = self.raft.metrics();
        let addr = watch
            .borrow_watched()
            .membership_config
            .membership()
            .get_node(&target)
            .map(|n| n.grpc_addr.clone())
            .ok_or_else(|| PeerError::Unreachable(format!("node {target} is not a member")))?;
        BookingPeer::new(&self.pool, &addr)
    }

    fn interpret<T>(&self, reply: Result<LeaderReply<T>, PeerError>) -> Attempt<T> {
        match reply {
            Ok(LeaderReply::Done(value)) => Attempt::Done(value),
            Ok(LeaderReply::NotLeader { leader_id }) => {
                *self.hint.lock().unwrap_or_else(|p| p.into_inner()) = leader_id;
                Attempt::Retry {
                    uncertain: false,
                    reason: "leader changed".into(),
                }
            }
            Ok(LeaderReply::OutcomeUnknown { reason }) => Attempt::Retry {
                uncertain: true,
                reason,
            },
            Ok(LeaderReply::Unavailable { reason }) => Attempt::Retry {
                uncertain: false,
                reason,
            },
            Err(PeerError::Unreachable(reason)) => Attempt::Retry {
                uncertain: false,
                reason,
            },
            Err(PeerError::NoReply(reason)) => Attempt::Retry {
                uncertain: true,
                reason,
            },
        }
    }

    /// The node to try next: a fresh hint, else the leader Raft metrics know.
    fn target(&self) -> Option<u64> {
        if let Some(hint) = self.hint.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Some(hint);
        }
        self.raft.metrics().borrow_watched().current_leader
    }

    /// Runs `attempt` against successive targets until it is done or the
    /// deadline passes. Returns `(uncertain, last reason)` on giving up.
    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, (bool, String)>
    where
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let started = Instant::now();
        let mut backoff = self.policy.first_backoff;
        let mut uncertain = false;
        let mut reason = String::from("no leader is known");
        let mut redirects = 0;
        loop {
            if let Some(target) = self.target() {
                match attempt(target).await {
                    Attempt::Done(value) => return Ok(value),
                    Attempt::Retry {
                        uncertain: maybe,
                        reason: why,
                    } => {
                        uncertain |= maybe;
                        reason = why;
                        // A redirect is worth following at once, but only a few
                        // times: two nodes with stale views could point at each other.
                        let redirected = self.hint.lock().unwrap_or_else(|p| p.into_inner()).is_some();
                        if redirected && redirects < 3 && started.elapsed() < self.policy.deadline {
                            redirects += 1;
                            continue;
                        }
                        redirects = 0;
                    }
                }
            }
            if started.elapsed() >= self.policy.deadline {
                return Err((uncertain, reason));
            }
            let jitter = rand::random_range(0.5..1.5);
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }
}

impl transport::booking_service::LeaderService for Router {
    async fn submit_as_leader(&self, group_id: u64, write: ForwardedWrite) -> LeaderReply<Response> {
        if group_id != BOOKING_GROUP {
            return LeaderReply::Unavailable {
                reason: format!("no group {group_id} on this node"),
            };
        }
        leader::submit(&self.raft, write, self.policy.attempt_timeout).await
    }

    async fn query_as_leader(&self, group_id: u64, query: Query) -> LeaderReply<QueryResult> {
        if group_id != BOOKING_GROUP {
            return LeaderReply::Unavailable {
                reason: format!("no group {group_id} on this node"),
            };
        }
        leader::query(&self.raft, &self.state, query).await
    }
}
