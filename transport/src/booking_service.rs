//! Forwarding client requests to a group leader over gRPC.
//!
//! The receiving node only ever acts as the leader: if it is not, it answers
//! [`LeaderReply::NotLeader`] with its best hint and never forwards again, so
//! a request can not loop between nodes. Deciding whom to ask next is the
//! router's job.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use booking::{Command, RequestId, Response};
use booking::{Query, QueryResult};
use raft_store::NodeAddr;
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::MAX_MESSAGE_BYTES;
use crate::channels::ChannelPool;
use crate::codec::{decode, encode};
use crate::proto::Envelope;
use crate::proto::booking_client::BookingClient;
use crate::proto::booking_server::{Booking, BookingServer};

/// A write as a follower forwards it: the leader stamps the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedWrite {
    pub request_id: RequestId,
    pub command: Command,
}

/// A change to a group's membership or leadership, carried out by its leader.
/// Each is idempotent in its target state, so a retry after a lost reply is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManageOp {
    /// Adds `replica_id` (on `node`) as a learner and waits until it caught up.
    AddLearner { replica_id: u64, node: NodeAddr },
    /// Makes `voters` the voter set, through joint consensus; replicas left
    /// out are removed. Refused if the new set has no caught-up majority.
    SetVoters { voters: BTreeSet<u64> },
    /// Hands leadership to `to`.
    TransferLeader { to: u64 },
    /// If `leaving` leads, hands leadership to `to` and waits for it to take
    /// over; otherwise does nothing.
    HandOffFrom { leaving: u64, to: u64 },
}

/// What a node's own replica answers to a read (the `ReadReplica` call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAnswer {
    pub result: QueryResult,
    /// The replica's closed time (Unix ms; 0: none known), see
    /// `replicas::GroupReplica::closed`.
    pub closed_ms: u64,
    /// The log index it had applied before the query ran.
    pub index: Option<u64>,
}

/// A leader's definitive answer to a [`ManageOp`]: done, or refused and why.
pub type ManageOutcome = Result<(), String>;

/// What a would-be leader answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderReply<T> {
    /// The request was applied (or, for a read, answered) by the leader.
    Done(T),
    /// This node is not the leader; `leader_id` is its best guess.
    NotLeader { leader_id: Option<u64> },
    /// The leader lost its leadership while the write was in flight: it may
    /// or may not commit. Retrying with the same request id is safe.
    OutcomeUnknown { reason: String },
    /// The node cannot serve right now (shutting down, no quorum).
    Unavailable { reason: String },
}

/// Implemented by the router: serve a request as the leader of `group_id`.
pub trait LeaderService: Send + Sync + 'static {
    fn submit_as_leader(
        &self,
        group_id: u64,
        write: ForwardedWrite,
    ) -> impl Future<Output = LeaderReply<Response>> + Send;

    fn query_as_leader(
        &self,
        group_id: u64,
        query: Query,
    ) -> impl Future<Output = LeaderReply<QueryResult>> + Send;

    fn manage_as_leader(
        &self,
        group_id: u64,
        op: ManageOp,
    ) -> impl Future<Output = LeaderReply<ManageOutcome>> + Send;

    /// Answers from this node's replica of `group_id`, whatever its role;
    /// `None` if the node has none.
    fn read_replica(&self, group_id: u64, query: &Query) -> Option<ReplicaAnswer>;
}

pub struct BookingService<H> {
    handler: Arc<H>,
}

impl<H: LeaderService> BookingService<H> {
    pub fn server(handler: Arc<H>) -> BookingServer<Self> {
        BookingServer::new(Self { handler })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl<H: LeaderService> Booking for BookingService<H> {
    async fn submit(&self, request: Request<Envelope>) -> Result<tonic::Response<Envelope>, Status> {
        let envelope = request.into_inner();
        let write: ForwardedWrite = decode(&envelope.payload)?;
        let reply = self.handler.submit_as_leader(envelope.group_id, write).await;
        Ok(tonic::Response::new(Envelope {
            group_id: envelope.group_id,
            payload: encode(&reply),
            target_replica: 0,
        }))
    }

    async fn manage(&self, request: Request<Envelope>) -> Result<tonic::Response<Envelope>, Status> {
        self.serve_manage(request.into_inner()).await
    }

    async fn read_replica(&self, request: Request<Envelope>) -> Result<tonic::Response<Envelope>, Status> {
        let envelope = request.into_inner();
        let query: Query = decode(&envelope.payload)?;
        let answer = self.handler.read_replica(envelope.group_id, &query);
        Ok(tonic::Response::new(Envelope {
            group_id: envelope.group_id,
            payload: encode(&answer),
            target_replica: 0,
        }))
    }

    async fn query(&self, request: Request<Envelope>) -> Result<tonic::Response<Envelope>, Status> {
        let envelope = request.into_inner();
        let query: Query = decode(&envelope.payload)?;
        let reply = self.handler.query_as_leader(envelope.group_id, query).await;
        Ok(tonic::Response::new(Envelope {
            group_id: envelope.group_id,
            payload: encode(&reply),
            target_replica: 0,
        }))
    }
}

impl<H: LeaderService> BookingService<H> {
    async fn serve_manage(&self, envelope: Envelope) -> Result<tonic::Response<Envelope>, Status> {
        let op: ManageOp = decode(&envelope.payload)?;
        let reply = self.handler.manage_as_leader(envelope.group_id, op).await;
        Ok(tonic::Response::new(Envelope {
            group_id: envelope.group_id,
            payload: encode(&reply),
            target_replica: 0,
        }))
    }
}

/// Why a call to a peer did not produce a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The request never reached the peer (no connection could be made).
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The request may have reached the peer; no reply came in time or the
    /// connection broke. Its outcome is unknown.
    #[error("no reply from peer: {0}")]
    NoReply(String),
}

/// The client side of the `Booking` service for one peer.
#[derive(Clone)]
pub struct BookingPeer {
    client: BookingClient<crate::wan::PeerChannel>,
}

impl BookingPeer {
    pub fn new(pool: &ChannelPool, grpc_addr: &str) -> Result<Self, PeerError> {
        let channel = pool
            .get(grpc_addr)
            .map_err(|e| PeerError::Unreachable(format!("bad address {grpc_addr}: {e}")))?;
        Ok(Self {
            client: BookingClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        })
    }

    pub async fn submit(
        &mut self,
        group_id: u64,
        write: &ForwardedWrite,
        timeout: Duration,
    ) -> Result<LeaderReply<Response>, PeerError> {
        let envelope = Envelope {
            group_id,
            payload: encode(write),
            target_replica: 0,
        };
        let mut client = self.client.clone();
        let reply = call(timeout, async move { client.submit(envelope).await }).await?;
        decode(&reply.payload).map_err(|s| PeerError::NoReply(s.message().to_owned()))
    }

    /// Reads from the peer's own replica of `group_id` (`None`: it has none).
    pub async fn read_replica(
        &mut self,
        group_id: u64,
        query: &Query,
        timeout: Duration,
    ) -> Result<Option<ReplicaAnswer>, PeerError> {
        let envelope = Envelope {
            group_id,
            payload: encode(query),
            target_replica: 0,
        };
        let mut client = self.client.clone();
        let reply = call(timeout, async move { client.read_replica(envelope).await }).await?;
        decode(&reply.payload).map_err(|s| PeerError::NoReply(s.message().to_owned()))
    }

    pub async fn query(
        &mut self,
        group_id: u64,
        query: &Query,
        timeout: Duration,
    ) -> Result<LeaderReply<QueryResult>, PeerError> {
        let envelope = Envelope {
            group_id,
            payload: encode(query),
            target_replica: 0,
        };
        let mut client = self.client.clone();
        let reply = call(timeout, async move { client.query(envelope).await }).await?;
        decode(&reply.payload).map_err(|s| PeerError::NoReply(s.message().to_owned()))
    }
}

impl BookingPeer {
    pub async fn manage(
        &mut self,
        group_id: u64,
        op: &ManageOp,
        timeout: Duration,
    ) -> Result<LeaderReply<ManageOutcome>, PeerError> {
        let envelope = Envelope {
            group_id,
            payload: encode(op),
            target_replica: 0,
        };
        let mut client = self.client.clone();
        let reply = call(timeout, async move { client.manage(envelope).await }).await?;
        decode(&reply.payload).map_err(|s| PeerError::NoReply(s.message().to_owned()))
    }
}

async fn call(
    timeout: Duration,
    fut: impl Future<Output = Result<tonic::Response<Envelope>, Status>>,
) -> Result<Envelope, PeerError> {
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(PeerError::NoReply(format!("no reply within {timeout:?}"))),
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) if never_sent(&status) => Err(PeerError::Unreachable(status.message().to_owned())),
        Ok(Err(status)) => Err(PeerError::NoReply(format!(
            "{}: {}",
            status.code(),
            status.message()
        ))),
    }
}

/// Whether a failed call certainly never reached the peer: no connection
/// could be made (refused, unroutable, the TLS handshake failed), which
/// tonic's channel reports with a [`tonic::ConnectError`] in the status's
/// source chain. Decided by the error's type, never by its text: a stream
/// reset or a connection closed mid-call is also `Unavailable`, and its
/// request may have been applied; a peer's own `Unavailable` answer was
/// delivered by definition.
fn never_sent(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Notify;
    use tonic::transport::{Channel, Endpoint};

    use super::*;

    /// A leader that takes every request and never answers: the test
    /// decides what happens to the connection meanwhile.
    struct Silent {
        received: Arc<Notify>,
    }

    impl LeaderService for Silent {
        async fn submit_as_leader(&self, _: u64, _: ForwardedWrite) -> LeaderReply<Response> {
            self.received.notify_one();
            std::future::pending().await
        }
        async fn query_as_leader(&self, _: u64, _: Query) -> LeaderReply<QueryResult> {
            std::future::pending().await
        }
        async fn manage_as_leader(&self, _: u64, _: ManageOp) -> LeaderReply<ManageOutcome> {
            std::future::pending().await
        }
        fn read_replica(&self, _: u64, _: &Query) -> Option<ReplicaAnswer> {
            None
        }
    }

    /// A leader whose own answer is an `Unavailable` status naming a
    /// connection: delivered, whatever the words say.
    struct Refusing;

    #[tonic::async_trait]
    impl Booking for Refusing {
        async fn submit(&self, _: Request<Envelope>) -> Result<tonic::Response<Envelope>, Status> {
            Err(Status::unavailable("could not connect to the group's leader"))
        }
        async fn manage(&self, _: Request<Envelope>) -> Result<tonic::Response<Envelope>, Status> {
            Err(Status::unimplemented("manage"))
        }
        async fn read_replica(&self, _: Request<Envelope>) -> Result<tonic::Response<Envelope>, Status> {
            Err(Status::unimplemented("read_replica"))
        }
        async fn query(&self, _: Request<Envelope>) -> Result<tonic::Response<Envelope>, Status> {
            Err(Status::unimplemented("query"))
        }
    }

    fn write() -> Envelope {
        let write = ForwardedWrite {
            request_id: RequestId::new("dropped-after-sending").unwrap(),
            command: Command::Map(booking::MapCommand::DrainNode { node_id: 1 }),
        };
        Envelope {
            group_id: 7,
            payload: encode(&write),
            target_replica: 0,
        }
    }

    fn client(addr: std::net::SocketAddr) -> BookingClient<Channel> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        BookingClient::new(channel)
    }

    async fn serve<S: Booking>(service: BookingServer<S>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    #[tokio::test]
    async fn a_refused_connection_is_never_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut client = client(addr);
        let outcome = call(
            Duration::from_secs(5),
            async move { client.submit(write()).await },
        )
        .await;
        assert!(matches!(outcome, Err(PeerError::Unreachable(_))), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_connection_dropped_after_the_request_was_sent_is_no_reply() {
        let received = Arc::new(Notify::new());
        let server = serve(BookingService::server(Arc::new(Silent {
            received: received.clone(),
        })))
        .await;
        // A proxy in between, so that the test can cut the connection with
        // the request already at the leader.
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let relay = tokio::spawn(async move {
            let (mut inbound, _) = proxy.accept().await.unwrap();
            let mut outbound = TcpStream::connect(server).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
        let mut client = client(proxy_addr);
        let call = tokio::spawn(async move {
            call(
                Duration::from_secs(10),
                async move { client.submit(write()).await },
            )
            .await
        });
        received.notified().await;
        relay.abort();
        let outcome = call.await.unwrap();
        assert!(
            matches!(&outcome, Err(PeerError::NoReply(_))),
            "a write that reached the leader may have been applied: {outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_peers_own_unavailable_answer_was_delivered() {
        let addr = serve(BookingServer::new(Refusing)).await;
        let mut client = client(addr);
        let outcome = call(
            Duration::from_secs(5),
            async move { client.submit(write()).await },
        )
        .await;
        assert!(matches!(&outcome, Err(PeerError::NoReply(_))), "{outcome:?}");
    }
}
