//! Serving a request on this node as the group leader.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use booking::{Request, Response};
use openraft::ReadPolicy;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use raft_store::{Query, QueryResult, Raft, SharedState};
use transport::booking_service::{ForwardedWrite, LeaderReply};

/// The leader's wall clock in ms. This is the only place a request's time is
/// decided; the state machine takes it from the entry and never reads a clock.
fn leader_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) async fn submit(raft: &Raft, write: ForwardedWrite, timeout: Duration) -> LeaderReply<Response> {
    let request = Request {
        request_id: write.request_id,
        now_ms: leader_now_ms(),
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

pub(crate) async fn query(raft: &Raft, state: &SharedState, query: Query) -> LeaderReply<QueryResult> {
    match raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
        Ok(_) => LeaderReply::Done(state.query(&query)),
        Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward))) => LeaderReply::NotLeader {
            leader_id: forward.leader_id,
        },
        Err(other) => LeaderReply::Unavailable {
            reason: other.to_string(),
        },
    }
}
