//! The replicas this node hosts: one [`GroupReplica`] per group, found by
//! group id in [`Groups`]. The Raft service delivers messages to them, the
//! router reads and writes through them, quiescence parks and wakes them,
//! and the API reports on them; none of these needs more than this module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use raft_store::{Raft, SharedState};

/// One local replica: what the transport, the router and the API need of it.
#[derive(Clone)]
pub struct GroupReplica {
    pub group_id: u64,
    /// This replica's Raft node id, unique across all groups.
    pub replica_id: u64,
    pub raft: Raft,
    /// Its applied state, for local reads.
    pub state: SharedState,
    /// Where incoming snapshot files are written before installation.
    /// Shared, because every request that finds this replica copies the handle.
    pub snapshot_dir: Arc<Path>,
    /// Whether this replica's timers are parked (see [`crate::quiescence`]).
    pub quiet: Arc<AtomicBool>,
}

impl GroupReplica {
    /// `parked`: the Raft instance was built with its ticker disabled.
    pub fn new(
        group_id: u64,
        replica_id: u64,
        raft: Raft,
        state: SharedState,
        snapshot_dir: PathBuf,
        parked: bool,
    ) -> Self {
        Self {
            group_id,
            replica_id,
            raft,
            state,
            snapshot_dir: Arc::from(snapshot_dir),
            quiet: Arc::new(AtomicBool::new(parked)),
        }
    }

    /// Restarts the replica's timers if they were parked. Cheap when awake.
    pub fn wake(&self) {
        if self.quiet.swap(false, Ordering::AcqRel) {
            self.raft.runtime_config().tick(true);
            tracing::debug!(group = self.group_id, "replica woke");
        }
    }

    /// Parks the replica's timers: no heartbeats, no election timeouts.
    pub fn park(&self) {
        self.quiet.store(true, Ordering::Release);
        self.raft.runtime_config().tick(false);
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet.load(Ordering::Acquire)
    }

    /// The voters of the group as this replica's Raft membership has them.
    pub fn voter_ids<C: FromIterator<u64>>(&self) -> C {
        use openraft::async_runtime::WatchReceiver;
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }
}

/// The replicas this node hosts, by group id.
#[derive(Clone, Default)]
pub struct Groups {
    inner: Arc<RwLock<HashMap<u64, GroupReplica>>>,
}

impl Groups {
    pub fn insert(&self, group_id: u64, replica: GroupReplica) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group_id, replica);
    }

    pub fn remove(&self, group_id: u64) -> Option<GroupReplica> {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&group_id)
    }

    /// Every local replica, by group id.
    pub fn list(&self) -> Vec<GroupReplica> {
        let mut all: Vec<GroupReplica> = self
            .inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|r| r.group_id);
        all
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, group_id: u64) -> Option<GroupReplica> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&group_id)
            .cloned()
    }
}
