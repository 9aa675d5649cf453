//! The replicas this node hosts: one [`GroupReplica`] per group, found by
//! group id in [`Groups`]. The Raft service delivers messages to them, the
//! router reads and writes through them, quiescence parks and wakes them,
//! and the API reports on them; none of these needs more than this module.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use raft_store::{NodeAddr, Raft, SharedState};

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
    /// On the replica that is to found a new group: the group's first
    /// members, kept until node liveness admits it to initialise the group
    /// and call its first election (see `quiescence::wake_leaderless`).
    founding: Arc<Mutex<Option<BTreeMap<u64, NodeAddr>>>>,
    /// What the group's leader has told this replica about how current it
    /// is (see [`Closed`]).
    closed: Arc<Mutex<Closed>>,
}

/// Claims kept while the replica has not applied up to them.
const PENDING_CLAIMS: usize = 8;

/// A replica's *closed time*: a leader-stamped wall-clock time T such that
/// this replica has applied every entry the group committed before T. Reads
/// from the replica reflect every write acknowledged before T, so
/// `now - T` bounds their staleness (plus the clocks' offset; see
/// ARCHITECTURE.md, "Reading from a replica").
///
/// Two sources advance it: the stamp of every applied entry (entries are
/// stamped by their leader and applied in order), and the leader's claims
/// "at time T my commit index was C", carried by node pings
/// (`quiescence::ClosedClaims`), which a replica holds until it has
/// applied C.
#[derive(Debug, Default)]
struct Closed {
    /// The newest claim time this replica has applied up to.
    satisfied_ms: u64,
    /// Claims not reached yet, oldest first: (commit index, time).
    pending: VecDeque<(u64, u64)>,
}

impl Closed {
    fn settle(&mut self, applied: Option<u64>) {
        while let Some(&(commit, at_ms)) = self.pending.front() {
            if applied.is_none_or(|a| a < commit) {
                break;
            }
            self.satisfied_ms = self.satisfied_ms.max(at_ms);
            self.pending.pop_front();
        }
    }
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
            founding: Arc::default(),
            closed: Arc::default(),
        }
    }

    /// The log index this replica has applied (`None`: nothing yet).
    pub fn applied_index(&self) -> Option<u64> {
        use openraft::async_runtime::WatchReceiver;
        self.raft
            .metrics()
            .borrow_watched()
            .last_applied
            .map(|id| id.index)
    }

    /// Takes the leader's claim that at `at_ms` its commit index was `commit`.
    pub fn note_claim(&self, commit: u64, at_ms: u64) {
        let applied = self.applied_index();
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if closed
            .pending
            .back()
            .is_some_and(|&(c, t)| c >= commit && t >= at_ms)
        {
            return;
        }
        closed.pending.push_back((commit, at_ms));
        if closed.pending.len() > PENDING_CLAIMS {
            closed.pending.pop_front();
        }
        closed.settle(applied);
    }

    /// This replica's closed time in Unix milliseconds (0: it knows none),
    /// and the log index it has applied, read together: the closed time
    /// holds for the state at (at least) that index.
    pub fn closed(&self) -> (u64, Option<u64>) {
        let applied = self.applied_index();
        let stamp = self.state.read().clock_ms();
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        closed.settle(applied);
        (closed.satisfied_ms.max(stamp), applied)
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

    /// Queues this replica to found its group with `members` when admitted.
    pub fn queue_founding(&self, members: BTreeMap<u64, NodeAddr>) {
        *self.founding.lock().unwrap_or_else(|p| p.into_inner()) = Some(members);
    }

    /// Whether a founding is queued here (it stays queued).
    pub fn founding_queued(&self) -> bool {
        self.founding.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Takes the queued founding's members, if any.
    pub fn take_founding(&self) -> Option<BTreeMap<u64, NodeAddr>> {
        self.founding.lock().unwrap_or_else(|p| p.into_inner()).take()
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
#[derive(Clone)]
pub struct Groups {
    inner: Arc<RwLock<HashMap<u64, GroupReplica>>>,
    /// Whether this node's clock may stamp writes (see [`crate::clock`]).
    clock: crate::clock::ClockGuard,
}

impl Groups {
    /// An empty registry whose leaders ask `clock` before stamping a write.
    pub fn new(clock: crate::clock::ClockGuard) -> Self {
        Self {
            inner: Arc::default(),
            clock,
        }
    }

    /// The node's clock check, shared by all its replicas.
    pub fn clock(&self) -> &crate::clock::ClockGuard {
        &self.clock
    }

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

    /// How many data-group replicas have their timers running: the node's
    /// share of groups electing, leading awake or following awake. The
    /// metadata group (0, always ticking) is not counted.
    pub fn awake_data_replicas(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|r| r.group_id != 0 && !r.is_quiet())
            .count()
    }

    pub fn get(&self, group_id: u64) -> Option<GroupReplica> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&group_id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_counts_once_its_commit_index_is_applied() {
        let mut closed = Closed::default();
        closed.pending.push_back((10, 1_000));
        closed.pending.push_back((12, 1_500));
        closed.settle(Some(9));
        assert_eq!(closed.satisfied_ms, 0, "index 10 not applied yet");
        closed.settle(Some(11));
        assert_eq!(closed.satisfied_ms, 1_000);
        assert_eq!(closed.pending.len(), 1);
        closed.settle(Some(20));
        assert_eq!(closed.satisfied_ms, 1_500);
        assert!(closed.pending.is_empty());
        // An older claim reached later never moves the closed time back.
        closed.pending.push_back((5, 900));
        closed.settle(Some(20));
        assert_eq!(closed.satisfied_ms, 1_500);
        closed.settle(None);
        assert_eq!(closed.satisfied_ms, 1_500);
    }
}
