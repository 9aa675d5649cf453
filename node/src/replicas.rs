//! Making this node's running Raft replicas match the cluster map.
//!
//! Every node runs a replica of the metadata group (its replica id is the
//! node id). The metadata group's state holds the cluster map; whenever its
//! epoch changes, [`ReplicaManager::reconcile`] starts a replica of every data
//! group the map assigns to this node that is not yet running. The replica
//! that the map lists first (the one on the group's preferred node, in its
//! home region) initialises a new group's membership and calls an election at
//! once, so new groups get their first leader at home without waiting out an
//! election timeout; when thousands of groups are created together, only a
//! wave of them elects at once and the rest queue (see
//! `transport::quiescence::wake_leaderless`). A restarted node reads the map
//! from its own storage before Raft replays anything, so it restarts every
//! replica it had.
//!
//! All replicas share one RocksDB database (one WAL, one group-commit
//! flusher), one gRPC server and one connection per peer.
//!
//! A replica the map no longer assigns here (moved to another node by
//! `router::membership`) is stopped and its data deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use booking::{ClusterMap, GroupId, META_GROUP, ReplicaId};
use openraft::async_runtime::WatchReceiver;
use raft_store::FeedHub;
use raft_store::{NodeAddr, NodeStore, Raft};
use tokio_util::sync::CancellationToken;
use transport::channels::ChannelPool;
use transport::network::NetworkFactory;
use transport::replicas::{GroupReplica, Groups};

/// New groups one reconciliation founds at once; a larger batch queues its
/// foundings for node liveness, which admits a wave per interval.
const FOUNDED_AT_ONCE: usize = 64;

/// Replicas stopped together when the node shuts down.
const SHUTDOWNS_AT_ONCE: usize = 64;

#[derive(Clone)]
pub struct ReplicaManager {
    node_id: u64,
    store: NodeStore,
    pool: ChannelPool,
    groups: Groups,
    meta_config: Arc<openraft::Config>,
    data_config: Arc<openraft::Config>,
    /// Where data replicas publish their availability changes.
    feed: FeedHub,
}

impl ReplicaManager {
    pub fn new(
        node_id: u64,
        store: NodeStore,
        pool: ChannelPool,
        groups: Groups,
        meta_config: Arc<openraft::Config>,
        data_config: Arc<openraft::Config>,
        feed: FeedHub,
    ) -> Self {
        Self {
            node_id,
            store,
            pool,
            groups,
            meta_config,
            data_config,
            feed,
        }
    }

    /// Starts this node's replica of the metadata group (never parked).
    pub async fn start_meta(&self) -> anyhow::Result<GroupReplica> {
        self.start(META_GROUP, self.node_id, self.meta_config.clone())
            .await
    }

    /// Starts a replica; data replicas start parked (see `transport::quiescence`).
    async fn start(
        &self,
        group_id: GroupId,
        replica_id: ReplicaId,
        config: Arc<openraft::Config>,
    ) -> anyhow::Result<GroupReplica> {
        let parked = !config.enable_tick;
        let mut store = self
            .store
            .replica(replica_id)
            .with_context(|| format!("opening storage of replica {replica_id}"))?;
        if group_id != META_GROUP {
            store.state_machine.attach_feed(self.feed.clone(), group_id);
        }
        let state = store.state_machine.shared();
        let snapshot_dir = store.state_machine.snapshot_dir();
        let network = NetworkFactory::new(group_id, replica_id, self.pool.clone());
        let raft = Raft::new(replica_id, config, network, store.log, store.state_machine)
            .await
            .with_context(|| format!("starting replica {replica_id} of group {group_id}"))?;
        let replica = GroupReplica::new(group_id, replica_id, raft, state, snapshot_dir, parked);
        self.groups.insert(group_id, replica.clone());
        Ok(replica)
    }

    /// Starts every replica `map` assigns to this node that is not running,
    /// and initialises the new groups this node is the preferred leader of.
    pub async fn reconcile(&self, map: &ClusterMap) -> anyhow::Result<()> {
        // Replicas the map no longer gives this node were moved away: their
        // group's committed membership no longer includes them, so they stop
        // and their data goes. (The map only moves forward, and replicas only
        // start from it, so an older map never stops a newer replica.)
        if map.is_initialised() {
            for replica in self.groups.list() {
                if replica.group_id == META_GROUP {
                    continue;
                }
                let assigned = map.replica_on(replica.group_id, self.node_id);
                if assigned != Some(replica.replica_id) {
                    self.groups.remove(replica.group_id);
                    if let Err(e) = replica.raft.shutdown().await {
                        tracing::warn!(group = replica.group_id, error = %e, "removed replica did not stop cleanly");
                    }
                    self.store
                        .destroy_replica(replica.replica_id)
                        .with_context(|| format!("deleting replica {}", replica.replica_id))?;
                    tracing::info!(
                        group = replica.group_id,
                        replica = replica.replica_id,
                        "replica moved away: stopped and deleted"
                    );
                }
            }
        }
        let missing: Vec<(GroupId, ReplicaId)> = map
            .groups
            .keys()
            .filter(|&&group_id| self.groups.get(group_id).is_none())
            .filter_map(|&group_id| Some((group_id, map.replica_on(group_id, self.node_id)?)))
            .collect();
        // A few new groups (an event's own group) elect at once; a batch of
        // thousands (a cluster's layout) queues its foundings for node
        // liveness, which admits them in waves once every peer has started
        // its replicas too.
        let found_now = missing.len() <= FOUNDED_AT_ONCE;
        let mut started = 0;
        for (group_id, replica_id) in missing {
            let replica = self.start(group_id, replica_id, self.data_config.clone()).await?;
            started += 1;
            // Starting hundreds of groups at once must not starve the ones running.
            tokio::task::yield_now().await;
            // Replica ids are allocated in preference order, so the lowest id
            // sits on the node chosen first, in the group's home region.
            let info = &map.groups[&group_id];
            let preferred = info.voters.keys().next() == Some(&replica_id);
            if !preferred || replica.raft.is_initialized().await? {
                continue;
            }
            let members: BTreeMap<u64, NodeAddr> = info
                .voters
                .iter()
                .filter_map(|(&replica, &node)| {
                    let addr = map.nodes.get(&node)?;
                    Some((
                        replica,
                        NodeAddr {
                            node_id: node,
                            region: addr.region.to_string(),
                            grpc_addr: addr.grpc_addr.clone(),
                            http_addr: addr.http_addr.clone(),
                        },
                    ))
                })
                .collect();
            if !found_now {
                replica.queue_founding(members);
                continue;
            }
            match replica.raft.initialize(members).await {
                Ok(()) => {
                    // Lead at home now rather than after an election timeout;
                    // a leader needs its timers for heartbeats until it parks.
                    replica.wake();
                    if let Err(e) = replica.raft.trigger().elect(false).await {
                        tracing::debug!(group_id, error = %e, "could not call an election");
                    }
                    tracing::info!(group_id, "group initialised");
                }
                Err(e) => tracing::info!(group_id, error = %e, "group already initialised"),
            }
        }
        if started > 0 {
            tracing::info!(
                started,
                running = self.groups.len(),
                epoch = map.epoch(),
                "replicas started"
            );
        }
        Ok(())
    }

    /// Reconciles whenever the metadata group applies a new map epoch, until
    /// `shutdown`. A failure is logged and retried on the next check.
    /// `reconciled_epoch`: the epoch the caller has already reconciled, if any.
    pub async fn run(self, mut reconciled_epoch: Option<u64>, shutdown: CancellationToken) {
        let Some(meta) = self.groups.get(META_GROUP) else {
            tracing::error!("no metadata replica: replicas cannot follow the cluster map");
            return;
        };
        let mut applied = meta.raft.metrics();
        loop {
            let epoch = meta.state.read().cluster_map().epoch();
            if reconciled_epoch != Some(epoch) {
                // Clone only on a change: the map can hold many placements.
                let map = meta.state.read().cluster_map().clone();
                match self.reconcile(&map).await {
                    Ok(()) => reconciled_epoch = Some(map.epoch()),
                    Err(e) => tracing::warn!(error = format!("{e:#}"), "reconciling replicas failed"),
                }
            }
            // Wake on any metrics change of the metadata replica (an apply), or
            // at least once a second to retry a failed reconciliation.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = applied.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Shuts every replica down, data groups first (many at a time: a node
    /// with thousands of groups must still stop within its grace period),
    /// the metadata group last.
    pub async fn shutdown_all(&self) {
        use futures::stream::{self, StreamExt};
        let (meta, data): (Vec<_>, Vec<_>) = self
            .groups
            .list()
            .into_iter()
            .partition(|r| r.group_id == META_GROUP);
        let stop = |replica: GroupReplica| async move {
            if let Err(e) = replica.raft.shutdown().await {
                tracing::warn!(group = replica.group_id, error = %e, "replica did not shut down cleanly");
            }
            self.groups.remove(replica.group_id);
        };
        stream::iter(data)
            .for_each_concurrent(SHUTDOWNS_AT_ONCE, stop)
            .await;
        for replica in meta {
            stop(replica).await;
        }
    }
}
