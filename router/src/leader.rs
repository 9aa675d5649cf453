//! Serving a request on this node as the group leader.

use std::time::Duration;

use booking::{Query, QueryResult};
use booking::{Request, Response};
use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use raft_store::Raft;
use transport::booking_service::{ForwardedWrite, LeaderReply, ManageOp, ManageOutcome};
use transport::replicas::GroupReplica;

/// The leader's wall clock in ms. This is the only place a request's time is
/// decided; the state machine takes it from the entry and never reads a clock.
fn leader_now_ms() -> u64 {
    transport::wall_clock_ms()
}

/// The first 8 bytes of the SHA-256 of the command's binary encoding: what a
/// request id must come back with to count as the same request. Taken here,
/// once, and carried in the entry, so every replica compares the same value.
pub(crate) fn fingerprint(command: &booking::Command) -> u64 {
    fingerprint_bytes(&postcard::to_allocvec(command).expect("a command always encodes"))
}

/// The first 8 bytes of the SHA-256 of `bytes`.
pub(crate) fn fingerprint_bytes(bytes: &[u8]) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

pub(crate) async fn submit(
    replica: &GroupReplica,
    clock: &transport::clock::ClockGuard,
    write: ForwardedWrite,
    timeout: Duration,
) -> LeaderReply<Response> {
    // A parked group needs its timers for replication retries and leases.
    replica.wake();
    // A clock the peers disagree with must not stamp an entry: its time
    // would expire holds early and move the log's clock for good.
    if let Err(why) = clock.check() {
        return LeaderReply::Unavailable { reason: why };
    }
    let raft = &replica.raft;
    let request = Request {
        request_id: write.request_id,
        now_ms: leader_now_ms(),
        fingerprint: fingerprint(&write.command),
        command: write.command,
    };
    match tokio::time::timeout(timeout, raft.client_write(request)).await {
        Err(_) => LeaderReply::OutcomeUnknown {
            reason: format!("not committed within {timeout:?}"),
        },
        Ok(Ok(written)) => match written.data {
            Some(response) => LeaderReply::Done(response),
            None => LeaderReply::Unavailable {
                reason: "entry applied without a response".into(),
            },
        },
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => LeaderReply::NotLeader {
            leader_id: forward.leader_id,
        },
        Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)))) => LeaderReply::OutcomeUnknown {
            reason: "leadership changed while the write was in flight".into(),
        },
        // Any other failure (a stopping core, a storage fault) may come after
        // the entry was appended and shipped to followers, who can still
        // commit it: only "not leader" above proves nothing happened.
        Ok(Err(other)) => LeaderReply::OutcomeUnknown {
            reason: other.to_string(),
        },
    }
}

pub(crate) async fn query(replica: &GroupReplica, query: Query) -> LeaderReply<QueryResult> {
    replica.wake();
    match replica.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
        Ok(_) => LeaderReply::Done(replica.state.query(&query)),
        Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward))) => LeaderReply::NotLeader {
            leader_id: forward.leader_id,
        },
        Err(other) => LeaderReply::Unavailable {
            reason: other.to_string(),
        },
    }
}

/// A follower whose matched index is within this many entries of the
/// leader's last log counts as caught up for a membership change.
const CAUGHT_UP_LAG: u64 = 1_000;

/// How long a membership change waits for enough voters to show progress.
const QUORUM_CHECK_WAIT: Duration = Duration::from_secs(3);

/// How long a leader waits for its successor to take over before a removal.
const HAND_OFF_WAIT: Duration = Duration::from_secs(10);

/// How long adding a learner may take to catch it up (a snapshot included).
const LEARNER_CATCH_UP: Duration = Duration::from_secs(120);

pub(crate) async fn manage(
    replica: &GroupReplica,
    op: ManageOp,
    timeout: Duration,
) -> LeaderReply<ManageOutcome> {
    replica.wake();
    let raft = &replica.raft;
    // Only the leader may judge a change: a follower's view of replication is
    // empty, so it would refuse every voter change as losing quorum.
    {
        let watch = raft.metrics();
        let m = watch.borrow_watched();
        if m.state != openraft::ServerState::Leader {
            return LeaderReply::NotLeader {
                leader_id: m.current_leader,
            };
        }
    }
    let result = match op {
        ManageOp::AddLearner { replica_id, node } => {
            match tokio::time::timeout(LEARNER_CATCH_UP, raft.add_learner(replica_id, node, true)).await {
                Err(_) => {
                    return LeaderReply::Unavailable {
                        reason: format!("learner {replica_id} did not catch up within {LEARNER_CATCH_UP:?}"),
                    };
                }
                Ok(result) => result.map(|_| ()),
            }
        }
        ManageOp::SetVoters { voters } => {
            if let Err(refusal) = check_quorum(raft, &voters).await {
                return LeaderReply::Done(Err(refusal));
            }
            match tokio::time::timeout(
                timeout.max(Duration::from_secs(30)),
                raft.change_membership(voters, false),
            )
            .await
            {
                Err(_) => {
                    return LeaderReply::OutcomeUnknown {
                        reason: "the membership change did not commit in time".into(),
                    };
                }
                Ok(result) => result.map(|_| ()),
            }
        }
        ManageOp::HandOffFrom { leaving, to } => {
            if raft.metrics().borrow_watched().id != leaving {
                return LeaderReply::Done(Ok(()));
            }
            if let Err(e) = raft.trigger().transfer_leader(to).await {
                return LeaderReply::Unavailable {
                    reason: e.to_string(),
                };
            }
            let mut metrics = raft.metrics();
            let deadline = tokio::time::Instant::now() + HAND_OFF_WAIT;
            while metrics.borrow_watched().current_leader != Some(to) {
                if !matches!(
                    tokio::time::timeout_at(deadline, metrics.changed()).await,
                    Ok(Ok(()))
                ) {
                    return LeaderReply::Unavailable {
                        reason: format!("replica {to} did not take over within {HAND_OFF_WAIT:?}"),
                    };
                }
            }
            return LeaderReply::Done(Ok(()));
        }
        ManageOp::TransferLeader { to } => {
            return match raft.trigger().transfer_leader(to).await {
                Ok(()) => LeaderReply::Done(Ok(())),
                Err(e) => LeaderReply::Unavailable {
                    reason: e.to_string(),
                },
            };
        }
    };
    match result {
        Ok(()) => LeaderReply::Done(Ok(())),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => LeaderReply::NotLeader {
            leader_id: forward.leader_id,
        },
        // The previous membership entry (a learner added a moment ago, the
        // second half of a joint change) is not committed yet: that passes,
        // so the router retries instead of refusing the operation.
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
            openraft::error::ChangeMembershipError::InProgress(e),
        ))) => LeaderReply::Unavailable {
            reason: e.to_string(),
        },
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            LeaderReply::Done(Err(e.to_string()))
        }
        Err(other) => LeaderReply::Unavailable {
            reason: other.to_string(),
        },
    }
}

/// Refuses a voter set without a caught-up majority: committing the change
/// would need replicas that are down or far behind, and the group would stall.
/// A leader elected a moment ago has not heard from its followers yet, so the
/// check waits up to [`QUORUM_CHECK_WAIT`] for their progress to show.
async fn check_quorum(raft: &Raft, voters: &std::collections::BTreeSet<u64>) -> Result<(), String> {
    let mut watch = raft.metrics();
    let deadline = tokio::time::Instant::now() + QUORUM_CHECK_WAIT;
    loop {
        let (up, majority) = {
            let metrics = watch.borrow_watched();
            let last = metrics.last_log_index.unwrap_or(0);
            let me = metrics.id;
            let up = voters
                .iter()
                .filter(|id| {
                    **id == me
                        || metrics
                            .replication
                            .as_ref()
                            .and_then(|r| r.get(*id))
                            .and_then(|matched| matched.as_ref())
                            .is_some_and(|matched| matched.index + CAUGHT_UP_LAG >= last)
                })
                .count();
            (up, voters.len() / 2 + 1)
        };
        if !voters.is_empty() && up >= majority {
            return Ok(());
        }
        if !matches!(
            tokio::time::timeout_at(deadline, watch.changed()).await,
            Ok(Ok(()))
        ) {
            return Err(format!(
                "would lose quorum: only {up} of the {} new voters are caught up, {majority} are needed",
                voters.len()
            ));
        }
    }
}
