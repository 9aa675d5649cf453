//! Durable Raft storage for boxoffice: the openraft log store and the booking
//! state machine of every replica a node hosts, all persisted in one RocksDB
//! database per node, each replica in its own key range.
//!
//! One database holds three column families, each with a single owner:
//!
//! * `log`  — Raft log entries keyed by big-endian index (owned by [`log_store`]);
//! * `meta` — vote, committed and purged log ids, current snapshot (owned by [`log_store`]
//!   and [`snapshot`]);
//! * `sm`   — the booking state machine's records plus its applied log id
//!   (owned by [`state_machine`]).
//!
//! Durability: a log append is acknowledged to openraft only after the write-ahead
//! log has been synced by the single group-commit flusher thread
//! ([`flusher`]). Because RocksDB has one WAL for all column families, one sync
//! also covers every earlier state-machine write, so a purge that is durable
//! implies the state it relies on is durable too. One failed sync is final for
//! the process ([`disk_health`]).
//!
//! What this crate does not do: networking (see `transport`), choosing leaders
//! or routing (see `router`), or any booking rule (see `booking`; the state
//! machine here is a thin adapter that never decides anything itself).

pub mod codec;
pub mod disk_health;
pub mod feed;
pub mod flusher;
pub mod keys;
pub mod log_store;
pub mod migrate;
pub mod replica_stats;
pub mod snapshot;
pub mod state_machine;
pub mod store;
pub mod types;

pub use feed::{FeedHub, FeedItem, Subscription};
pub use flusher::WalStats;
pub use log_store::LogStore;
pub use replica_stats::ReplicaStats;
pub use snapshot::SnapshotFile;
pub use state_machine::{SharedState, StateMachine};
pub use store::{NodeStore, Store, StoreError, open};
pub use types::{Entry, LogId, NodeAddr, Raft, StoredMembership, TypeConfig, Vote};
