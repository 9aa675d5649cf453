//! The receiving side of Raft traffic: hands each message to the local
//! replica of the group it names.

use std::path::PathBuf;

use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use raft_store::types::{Snapshot, SnapshotMeta};
use raft_store::{SnapshotFile, TypeConfig, Vote};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use crate::MAX_MESSAGE_BYTES;
use crate::codec::{decode, encode};
use crate::proto::raft_server::{Raft as RaftRpc, RaftServer};
use crate::proto::{Envelope, SnapshotChunk};
use crate::replicas::{GroupReplica, Groups};

/// The local replica of `group_id` that a Raft message for replica
/// `target` may be delivered to.
fn require(groups: &Groups, group_id: u64, target: u64) -> Result<GroupReplica, Status> {
    let replica = groups
        .get(group_id)
        .ok_or_else(|| Status::not_found(format!("this node has no replica of group {group_id}")))?;
    if target != replica.replica_id {
        return Err(Status::not_found(format!(
            "replica {target} of group {group_id} is not here (this node runs replica {})",
            replica.replica_id
        )));
    }
    Ok(replica)
}

pub struct RaftService {
    groups: Groups,
}

impl RaftService {
    pub fn server(groups: Groups) -> RaftServer<Self> {
        RaftServer::new(Self { groups })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn reply<T: serde::Serialize, E: std::fmt::Display>(
    group_id: u64,
    result: Result<T, E>,
) -> Response<Envelope> {
    let result = result.map_err(|e| e.to_string());
    Response::new(Envelope {
        group_id,
        payload: encode(&result),
        target_replica: 0,
    })
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let envelope = request.into_inner();
        let replica = require(&self.groups, envelope.group_id, envelope.target_replica)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&envelope.payload)?;
        // A bare heartbeat keeps a parked follower parked; new entries mean
        // the group is busy again. Wake after the append, so that the lease
        // the append renews is in place before the first election tick.
        let carries_entries = !rpc.entries.is_empty();
        let result = replica.raft.append_entries(rpc).await;
        if carries_entries {
            replica.wake();
        }
        Ok(reply(envelope.group_id, result))
    }

    async fn vote(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let envelope = request.into_inner();
        let replica = require(&self.groups, envelope.group_id, envelope.target_replica)?;
        let rpc: VoteRequest<TypeConfig> = decode(&envelope.payload)?;
        // Someone is electing: this replica must take part with live timers.
        replica.wake();
        Ok(reply(envelope.group_id, replica.raft.vote(rpc).await))
    }

    async fn pre_vote(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let envelope = request.into_inner();
        let replica = require(&self.groups, envelope.group_id, envelope.target_replica)?;
        let rpc: VoteRequest<TypeConfig> = decode(&envelope.payload)?;
        replica.wake();
        Ok(reply(envelope.group_id, replica.raft.pre_vote(rpc).await))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<Envelope>, Status> {
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let group_id = first.group_id;
        let replica = require(&self.groups, group_id, first.target_replica)?;
        let (vote, meta): (Vote, SnapshotMeta) = decode(&first.header)?;

        let index = meta.last_log_id.as_ref().map_or(0, |id| id.index);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = raft_store::snapshot::incoming_path(&replica.snapshot_dir, &format!("{index}-{nanos}"));
        let io = |e: std::io::Error| Status::internal(format!("writing snapshot file: {e}"));
        // However the transfer ends, no partial file stays behind; an installed
        // file has been moved away by then.
        let _cleanup = RemoveOnDrop(path.clone());
        let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
        file.write_all(&first.data).await.map_err(io)?;
        while let Some(chunk) = stream.message().await? {
            file.write_all(&chunk.data).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        drop(file);

        let snapshot = Snapshot {
            meta,
            snapshot: SnapshotFile { path: path.clone() },
        };
        let result = replica.raft.install_full_snapshot(vote, snapshot).await;
        replica.wake();
        Ok(reply(group_id, result))
    }

    async fn transfer_leader(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let envelope = request.into_inner();
        let replica = require(&self.groups, envelope.group_id, envelope.target_replica)?;
        let rpc: TransferLeaderRequest<TypeConfig> = decode(&envelope.payload)?;
        // The new leader needs its timers for heartbeats.
        replica.wake();
        Ok(reply(
            envelope.group_id,
            replica.raft.handle_transfer_leader(rpc).await,
        ))
    }

    async fn quiesce(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let envelope = request.into_inner();
        let replica = require(&self.groups, envelope.group_id, envelope.target_replica)?;
        let ask: crate::quiescence::QuiesceRequest = decode(&envelope.payload)?;
        let parked = crate::quiescence::park_follower(&replica, &ask);
        Ok(reply::<bool, String>(envelope.group_id, Ok(parked)))
    }

    async fn ping(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let envelope = request.into_inner();
        // An empty ping (no group led by the sender has a replica here) carries no claims.
        if !envelope.payload.is_empty() {
            let claims: crate::quiescence::ClosedClaims = decode(&envelope.payload)?;
            crate::quiescence::take_claims(&self.groups, &claims);
        }
        // The answer carries this node's wall clock, read now: the pinger
        // measures its offset from it (`crate::clock`).
        Ok(reply::<crate::quiescence::PingAnswer, String>(
            envelope.group_id,
            Ok(crate::quiescence::PingAnswer {
                replicas: self.groups.len() as u64,
                wall_ms: crate::wall_clock_ms(),
            }),
        ))
    }
}

/// Deletes a received snapshot file when the transfer is over.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
