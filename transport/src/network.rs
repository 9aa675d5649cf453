//! openraft's `RaftNetworkV2` over the `Raft` gRPC service.
//!
//! Each call encodes the openraft message into an [`Envelope`] named by group,
//! bounds it by the deadline openraft gives, and maps transport failures onto
//! openraft's error kinds: a peer we cannot connect to is `Unreachable` (openraft
//! backs off), a call past its deadline is `Timeout`, anything else `Network`.
//! Snapshots are streamed from the snapshot file in 1 MiB chunks, never loaded
//! whole into memory.

use std::future::Future;
use std::time::Duration;

use crate::wan::PeerChannel as Channel;
use openraft::RaftNetworkV2;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use raft_store::{NodeAddr, SnapshotFile, TypeConfig, Vote};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::AsyncReadExt;

use crate::MAX_MESSAGE_BYTES;
use crate::channels::ChannelPool;
use crate::codec::{decode, encode};
use crate::proto::raft_client::RaftClient;
use crate::proto::{Envelope, SnapshotChunk};

const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// A snapshot transfer may take far longer than one append: allow at least this.
const MIN_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Creates a [`PeerNetwork`] per peer for one Raft group of this node.
#[derive(Clone)]
pub struct NetworkFactory {
    group_id: u64,
    node_id: u64,
    pool: ChannelPool,
}

impl NetworkFactory {
    pub fn new(group_id: u64, node_id: u64, pool: ChannelPool) -> Self {
        Self {
            group_id,
            node_id,
            pool,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: u64, node: &NodeAddr) -> Self::Network {
        PeerNetwork {
            group_id: self.group_id,
            node_id: self.node_id,
            target,
            addr: node.grpc_addr.clone(),
            pool: self.pool.clone(),
        }
    }
}

/// The sending side of one group's traffic to one peer.
pub struct PeerNetwork {
    group_id: u64,
    node_id: u64,
    target: u64,
    addr: String,
    pool: ChannelPool,
}

type RpcResult<T> = Result<T, RPCError<TypeConfig>>;

fn status_to_rpc_error(status: tonic::Status) -> RPCError<TypeConfig> {
    match status.code() {
        tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::from_string(status.message())),
        _ => RPCError::Network(NetworkError::from_string(format!(
            "{}: {}",
            status.code(),
            status.message()
        ))),
    }
}

impl PeerNetwork {
    fn client(&self) -> Result<RaftClient<Channel>, Unreachable<TypeConfig>> {
        let channel = self
            .pool
            .get(&self.addr)
            .map_err(|e| Unreachable::from_string(format!("bad peer address {}: {e}", self.addr)))?;
        Ok(RaftClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    fn timeout(&self, action: RPCTypes, timeout: Duration) -> Timeout<TypeConfig> {
        Timeout {
            action,
            id: self.node_id,
            target: self.target,
            timeout,
        }
    }

    /// One unary call: encode, send within the deadline, decode `Result<Resp, String>`.
    async fn unary<Req, Resp, F, Fut>(
        &self,
        action: RPCTypes,
        option: &RPCOption,
        req: &Req,
        call: F,
    ) -> RpcResult<Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, Envelope) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Envelope>, tonic::Status>>,
    {
        let client = self.client()?;
        let envelope = Envelope {
            group_id: self.group_id,
            payload: encode(req),
            target_replica: self.target,
        };
        let ttl = option.hard_ttl();
        let reply = tokio::time::timeout(ttl, call(client, envelope))
            .await
            .map_err(|_| RPCError::Timeout(self.timeout(action, ttl)))?
            .map_err(status_to_rpc_error)?;
        let result: Result<Resp, String> =
            decode(&reply.into_inner().payload).map_err(status_to_rpc_error)?;
        result.map_err(|remote| {
            RPCError::Network(NetworkError::from_string(format!(
                "peer {}: {remote}",
                self.target
            )))
        })
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<TypeConfig>> {
        self.unary(RPCTypes::AppendEntries, &option, &rpc, |mut c, e| async move {
            c.append_entries(e).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<TypeConfig>> {
        self.unary(RPCTypes::Vote, &option, &rpc, |mut c, e| async move {
            c.vote(e).await
        })
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<TypeConfig>> {
        self.unary(RPCTypes::Vote, &option, &rpc, |mut c, e| async move {
            c.pre_vote(e).await
        })
        .await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<TransferLeaderResponse<TypeConfig>> {
        self.unary(RPCTypes::TransferLeader, &option, &req, |mut c, e| async move {
            c.transfer_leader(e).await
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: raft_store::types::Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client()?;
        let group_id = self.group_id;
        let target_replica = self.target;
        let header = encode(&(vote, snapshot.meta.clone()));
        let mut file = tokio::fs::File::open(&snapshot.snapshot.path)
            .await
            .map_err(|e| {
                StreamingError::Network(NetworkError::from_string(format!("open snapshot file: {e}")))
            })?;

        // A reader task feeds the request stream so that a slow peer applies
        // backpressure through the bounded channel instead of memory growth.
        let (tx, rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(4);
        let reader = tokio::spawn(async move {
            let mut first = Some(header);
            loop {
                let mut data = vec![0u8; SNAPSHOT_CHUNK_BYTES];
                let n = match file.read(&mut data).await {
                    Ok(n) => n,
                    Err(e) => return Err(format!("read snapshot file: {e}")),
                };
                data.truncate(n);
                let header = first.take();
                if n == 0 && header.is_none() {
                    return Ok(());
                }
                let chunk = SnapshotChunk {
                    group_id,
                    header: header.unwrap_or_default(),
                    data,
                    target_replica,
                };
                if tx.send(chunk).await.is_err() {
                    return Err("snapshot stream closed by peer".to_owned());
                }
                if n == 0 {
                    return Ok(());
                }
            }
        });

        let ttl = option.hard_ttl().max(MIN_SNAPSHOT_TIMEOUT);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let call = tokio::time::timeout(ttl, client.install_snapshot(stream));
        let reply = tokio::select! {
            closed = cancel => {
                reader.abort();
                return Err(StreamingError::Closed(closed));
            }
            reply = call => reply,
        };
        let reply = reply
            .map_err(|_| StreamingError::Timeout(self.timeout(RPCTypes::InstallSnapshot, ttl)))?
            .map_err(|status| match status_to_rpc_error(status) {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                other => StreamingError::Network(NetworkError::from_string(other.to_string())),
            })?;
        if let Ok(Err(reason)) = reader.await {
            return Err(StreamingError::Network(NetworkError::from_string(reason)));
        }
        let result: Result<SnapshotResponse<TypeConfig>, String> = decode(&reply.into_inner().payload)
            .map_err(|s| StreamingError::Network(NetworkError::from_string(s.message())))?;
        result.map_err(|remote| StreamingError::Network(NetworkError::from_string(remote)))
    }
}
