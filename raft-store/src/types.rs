//! The openraft type configuration shared by every crate that talks Raft.
//!
//! A log entry carries one [`booking::Request`], already stamped with the
//! leader's clock; applying it yields a [`booking::Response`] (`None` for
//! entries that carry no request: blanks and membership changes). Node addresses
//! live in the membership so that every replica can find every other one.

use serde::{Deserialize, Serialize};

/// How to reach a replica: stored in Raft membership, so every node knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    pub region: String,
    /// `host:port` of the node's gRPC server (Raft and forwarded requests).
    pub grpc_addr: String,
    /// `host:port` of the node's client-facing HTTP server.
    pub http_addr: String,
}

openraft::declare_raft_types!(
    /// The booking Raft group's types.
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
