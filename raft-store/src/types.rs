//! The openraft type configuration shared by every crate that talks Raft.
//!
//! A log entry carries one [`booking::Request`], already stamped with the
//! leader's clock; applying it yields a [`booking::Response`] (`None` for
//! entries that carry no request: blanks and membership changes). Node addresses
//! live in the membership so that every replica can find every other one.
//!
//! One type configuration serves every group: the metadata group and the data
//! groups run the same state machine (`booking::BookingState`), the former
//! applying only cluster-map commands, the latter only booking commands. The
//! Raft node id of a replica is its *replica id*, unique across all groups.

use serde::{Deserialize, Serialize};

/// How to reach a replica: stored in Raft membership, so every node knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// The node hosting the replica (in the metadata group, equal to the replica id).
    pub node_id: u64,
    pub region: String,
    /// `host:port` of the node's gRPC server (Raft and forwarded requests).
    pub grpc_addr: String,
    /// `host:port` of the node's client-facing HTTP server.
    pub http_addr: String,
}

openraft::declare_raft_types!(
    /// The types of every boxoffice Raft group.
    pub TypeConfig:
        D = booking::Request,
        R = Option<booking::Response>,
        NodeId = u64,
        Node = NodeAddr,
);

pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, crate::snapshot::SnapshotFile>;
