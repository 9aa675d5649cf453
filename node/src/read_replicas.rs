//! Keeping every data group's read replicas where the cluster map wants them.
//!
//! A read replica is a non-voting learner of a data group on a node of a
//! region that holds none of the group's voters, so that region's searches
//! and seat maps are answered by a node of its own instead of crossing the
//! WAN. It never counts toward a quorum: writes do not wait for it, and
//! losing it loses nothing.
//!
//! Two loops make the map and the groups agree, each idempotent:
//!
//! - **Placement** (on the metadata leader): the map computes which read
//!   replicas it lacks and which it should drop
//!   (`ClusterMap::read_replica_plan`, a pure function of the map); this loop
//!   proposes that plan whenever it is not empty. Node and region changes,
//!   drains and new groups all end up here, and so does repair: a read
//!   replica whose node left is replaced on another node of its region.
//! - **Membership** (on each group leader): the group's Raft membership
//!   gains the map's read replicas as learners and loses learners the map no
//!   longer lists. The node a read replica is assigned to starts it from the
//!   map (`replicas.rs`), and the leader streams it the log or a snapshot.
//!
//! - **The metadata group** (on its leader): every node in the map gets a
//!   replica, but only a few vote (`booking::meta_voters`: up to five,
//!   spread over the regions); the rest follow as learners. Nodes new to the
//!   map join as learners, nodes gone from it leave, and when the voters the
//!   map calls for differ from the group's (a voter's node drained or
//!   removed, a new region, a cluster grown to five), the voters change
//!   once every newcomer has caught up. A leader that loses its own vote
//!   hands its leadership to a voter that keeps one first.
//!
//! A learner the map does not list is removed only if the map has already
//! allocated its id (`next_replica_id` is past it): a learner added a moment
//! ago by a replica move, recorded in a newer map than this node's copy, is
//! left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use booking::{ClusterMap, Command, META_GROUP, MapCommand, PlacementPolicy, ReadReplicas, RequestId};
use openraft::ChangeMembers;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use raft_store::NodeAddr;
use router::Router;
use tokio_util::sync::CancellationToken;
use transport::replicas::GroupReplica;

use crate::periodic::Periodic;

const INTERVAL: Duration = Duration::from_secs(1);

/// Records `wanted` as the cluster's read-replica rule if the map has no
/// rule yet (a new cluster, or one written before the rule existed). An
/// existing rule is never overwritten from a config file; a node whose file
/// disagrees says so once.
async fn seed_policy(router: &Router, wanted: ReadReplicas, shutdown: &CancellationToken) {
    let mut clock = Periodic::new(Duration::from_millis(500), shutdown);
    while clock.next().await {
        let Some(Some(current)) = router.with_local_map(|map| map.is_initialised().then_some(map.policy))
        else {
            continue;
        };
        if let Some(current) = current {
            if current.read_replicas != wanted {
                tracing::warn!(
                    configured = ?wanted,
                    in_force = ?current.read_replicas,
                    "layout.read_replicas differs from the cluster's rule, which stays"
                );
            }
            return;
        }
        let id = RequestId::new(&format!("placement-policy/{}", uuid::Uuid::new_v4()))
            .expect("a valid request id");
        let command = Command::Map(MapCommand::SetPlacementPolicy {
            policy: PlacementPolicy {
                read_replicas: wanted,
            },
        });
        if let Err(e) = router.submit(id, command).await {
            tracing::debug!(error = %e, "placement rule not recorded yet; retrying");
        }
    }
}

/// Says at start-up when this node's region keeps its customers' personal
/// data on fewer than three voters: the accounts group never spills abroad,
/// so losing those nodes stops logins and registrations in the region.
fn warn_thin_accounts(router: &Router) {
    let region = router.region().clone();
    let voters = router.with_local_map(|map| {
        let group = map.accounts_group(region.as_str())?;
        Some((group, map.groups.get(&group)?.voters.len()))
    });
    if let Some(Some((group, voters))) = voters
        && voters < 3
    {
        tracing::warn!(
            %region,
            group,
            voters,
            "the region's accounts group has fewer than 3 voters: personal data stays in the region, \
             so add nodes here to survive the loss of one"
        );
    }
}

pub async fn run(router: Arc<Router>, wanted: ReadReplicas, shutdown: CancellationToken) {
    seed_policy(&router, wanted, &shutdown).await;
    warn_thin_accounts(&router);
    let mut clock = Periodic::new(INTERVAL, &shutdown);
    while clock.next().await {
        let Some(meta) = router.groups().get(META_GROUP) else {
            continue;
        };
        let leads_meta = meta.raft.metrics().borrow_watched().state == ServerState::Leader;
        let plan = if leads_meta {
            router.with_local_map(ClusterMap::read_replica_plan).flatten()
        } else {
            None
        };
        if let Some(plan) = plan {
            propose(&router, plan).await;
        }
        if leads_meta {
            let change = router
                .with_local_map(|map| meta_change(&meta.raft.metrics().borrow_watched(), map))
                .flatten();
            if let Some(change) = change {
                apply_meta_change(&meta, change).await;
            }
        }
        let jobs = router
            .with_local_map(|map| membership_changes(&router.groups().list(), map))
            .unwrap_or_default();
        for (replica, change) in jobs {
            apply_membership(&replica, change).await;
        }
    }
}

async fn propose(router: &Router, plan: MapCommand) {
    let summary = match &plan {
        MapCommand::PlaceReadReplicas { adds, drops } => {
            format!("{} to add, {} to drop", adds.len(), drops.len())
        }
        _ => String::new(),
    };
    let id = RequestId::new(&format!("read-replicas/{}", uuid::Uuid::new_v4())).expect("a valid request id");
    match router.submit(id, Command::Map(plan)).await {
        Ok(Ok(_)) => tracing::info!(plan = summary, "read replicas placed"),
        Ok(Err(rejection)) => tracing::warn!(plan = summary, %rejection, "read-replica plan refused"),
        Err(e) => tracing::debug!(plan = summary, error = %e, "read-replica plan not proposed; retrying"),
    }
}

/// What one group leader must change in its membership.
#[derive(Debug, Default, PartialEq, Eq)]
struct LearnerChange {
    add: BTreeMap<u64, NodeAddr>,
    remove: BTreeSet<u64>,
}

/// For every data group led here, the learners to add and remove so that its
/// Raft membership has the map's read replicas and no forgotten learner.
fn membership_changes(replicas: &[GroupReplica], map: &ClusterMap) -> Vec<(GroupReplica, LearnerChange)> {
    let mut out = Vec::new();
    for replica in replicas {
        if replica.group_id == META_GROUP || !map.groups.contains_key(&replica.group_id) {
            continue;
        }
        let watch = replica.raft.metrics();
        let m = watch.borrow_watched();
        if m.state != ServerState::Leader {
            continue;
        }
        let membership = m.membership_config.membership();
        let present: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let listed: BTreeSet<u64> = map.replicas_of(replica.group_id).map(|(r, _)| r).collect();
        let mut change = LearnerChange::default();
        for (id, node) in map.read_replicas_of(replica.group_id) {
            if present.contains(&id) {
                continue;
            }
            if let Some(info) = map.nodes.get(&node) {
                change.add.insert(id, router::membership::node_addr(node, info));
            }
        }
        change.remove = present
            .iter()
            .filter(|id| !voters.contains(id) && !listed.contains(id) && **id < map.meta.next_replica_id)
            .copied()
            .collect();
        if change != LearnerChange::default() {
            out.push((replica.clone(), change));
        }
    }
    out
}

/// How far behind the leader's log a replica may be and still take a vote.
const META_CAUGHT_UP_LAG: u64 = 64;

/// One step toward the metadata group's membership the map calls for.
#[derive(Debug, PartialEq, Eq)]
enum MetaChange {
    /// Nodes in the map without a replica join as learners; replicas of
    /// nodes gone from the map, not voting, leave.
    Learners(LearnerChange),
    /// This leader loses its vote: `to`, a voter that keeps one, leads first.
    HandOff { to: u64 },
    /// The new voter set; replaced voters stay as learners until their
    /// node leaves the map.
    Voters(BTreeSet<u64>),
}

/// What the metadata leader (`m`) should change next, if anything.
fn meta_change(m: &openraft::RaftMetrics<raft_store::TypeConfig>, map: &ClusterMap) -> Option<MetaChange> {
    if m.state != ServerState::Leader || !map.is_initialised() || map.nodes.is_empty() {
        return None;
    }
    let membership = m.membership_config.membership();
    if membership.get_joint_config().len() > 1 {
        return None; // a change is half-way; the next pass looks again
    }
    let present: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let mut learners = LearnerChange::default();
    for (&node, info) in &map.nodes {
        // A draining node is on its way out: it keeps what it has.
        if !present.contains(&node) && !info.draining {
            learners
                .add
                .insert(node, router::membership::node_addr(node, info));
        }
    }
    learners.remove = present
        .iter()
        .filter(|id| !voters.contains(id) && !map.nodes.contains_key(id))
        .copied()
        .collect();
    if learners != LearnerChange::default() {
        return Some(MetaChange::Learners(learners));
    }
    let plan = map.meta_voter_plan(&voters);
    if plan == voters || plan.is_empty() {
        return None;
    }
    let last = m.last_log_index.unwrap_or(0);
    let caught_up = |id: &u64| {
        *id == m.id
            || m.replication
                .as_ref()
                .and_then(|r| r.get(id))
                .and_then(|matched| matched.as_ref())
                .is_some_and(|matched| matched.index + META_CAUGHT_UP_LAG >= last)
    };
    if !plan.iter().all(|id| present.contains(id) && caught_up(id)) {
        return None;
    }
    if !plan.contains(&m.id) {
        let to = *plan.intersection(&voters).next().or(plan.iter().next())?;
        return Some(MetaChange::HandOff { to });
    }
    Some(MetaChange::Voters(plan))
}

async fn apply_meta_change(meta: &GroupReplica, change: MetaChange) {
    meta.wake();
    let result = match &change {
        MetaChange::Learners(learners) => {
            let mut steps = Vec::new();
            if !learners.add.is_empty() {
                steps.push(ChangeMembers::AddNodes(learners.add.clone()));
            }
            if !learners.remove.is_empty() {
                steps.push(ChangeMembers::RemoveNodes(learners.remove.clone()));
            }
            meta.raft
                .change_membership(ChangeMembers::Batch(steps), true)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        MetaChange::HandOff { to } => meta
            .raft
            .trigger()
            .transfer_leader(*to)
            .await
            .map_err(|e| e.to_string()),
        MetaChange::Voters(voters) => meta
            .raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), true)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => tracing::info!(?change, "metadata group membership changed"),
        Err(e) => tracing::debug!(?change, error = %e, "metadata membership change failed; retrying"),
    }
}

async fn apply_membership(replica: &GroupReplica, change: LearnerChange) {
    // A membership entry is a new entry: the leader's timers must run.
    replica.wake();
    let mut steps = Vec::new();
    let (added, removed) = (change.add.len(), change.remove.len());
    if !change.add.is_empty() {
        steps.push(ChangeMembers::AddNodes(change.add));
    }
    if !change.remove.is_empty() {
        steps.push(ChangeMembers::RemoveNodes(change.remove));
    }
    match replica
        .raft
        .change_membership(ChangeMembers::Batch(steps), false)
        .await
    {
        Ok(_) => tracing::info!(
            group = replica.group_id,
            added,
            removed,
            "read replicas joined or left the group"
        ),
        // Another change in flight, a lost leadership: the next pass retries.
        Err(e) => {
            tracing::debug!(group = replica.group_id, error = %e, "read-replica membership change failed")
        }
    }
}
