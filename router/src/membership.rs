//! Adding and removing nodes, one safe step at a time.
//!
//! Every change of a group's replicas is a *move*: a new replica joins as a
//! learner (recorded in the cluster map first, so its node starts it), the
//! group's leader adds it and waits until it has caught up, then switches the
//! voter set through joint consensus (refused unless a majority of the new set
//! is caught up), and only then does the map record the new voter and forget
//! the old one, whose node stops it and deletes its data. Bookings continue
//! throughout: at every step a majority of the group's current configuration
//! is up to date.
//!
//! Adding a node: register it, add it to the metadata group as a learner
//! (whether it also votes is the metadata leader's call: a few voters
//! spread over the regions, `booking::meta_voters`), then move replicas to it from the most loaded nodes until
//! it carries its share. Removing a node: refuse if the rest could not carry
//! its replicas, mark it draining, move each of its replicas to the least
//! loaded other node (home region first), give its metadata vote (if any) to
//! another node, and forget it.
//!
//! Each step is idempotent in its target state, so an operation cut short
//! (a timeout, a crash of the node driving it) can simply be run again.

use std::collections::BTreeSet;

use booking::{
    ClusterMap, Command, GroupId, META_GROUP, MapAnswer, MapCommand, MapQuery, MapSuccess, NodeId, NodeInfo,
    Rejection, ReplicaId, RequestId, Success,
};
use booking::{Query, QueryResult};
use raft_store::NodeAddr;
use serde::Serialize;
use transport::booking_service::ManageOp;

use crate::{RouteError, Router};

/// Why a membership operation stopped. Steps already taken stay taken and
/// are safe; running the operation again continues from where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("the cluster map refused: {0}")]
    Rejected(Rejection),
    /// A group leader refused a voter change (it would lose quorum).
    #[error("group {group_id} refused the change: {reason}")]
    Refused { group_id: GroupId, reason: String },
    #[error("unexpected answer from the cluster map: {0}")]
    Unexpected(String),
}

/// One replica moved from a node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub group_id: GroupId,
    pub from_node: NodeId,
    pub to_node: NodeId,
    pub replica_id: ReplicaId,
}

fn admin_request_id(what: &str) -> RequestId {
    RequestId::new(&format!("admin-{what}-{:016x}", rand::random::<u64>()))
        .expect("a short ASCII id is valid")
}

async fn map_command(router: &Router, what: &str, command: MapCommand) -> Result<Success, MembershipError> {
    match router
        .submit_to_group(META_GROUP, admin_request_id(what), Command::Map(command))
        .await?
    {
        Ok(success) => Ok(success),
        Err(rejection) => Err(MembershipError::Rejected(rejection)),
    }
}

/// The cluster map as the metadata leader has it now.
pub async fn fresh_map(router: &Router) -> Result<ClusterMap, MembershipError> {
    match router.query(Query::Map(MapQuery::ClusterMap)).await? {
        QueryResult::Map(MapAnswer::ClusterMap(map)) => Ok(*map),
        other => Err(MembershipError::Unexpected(format!("{other:?}"))),
    }
}

async fn manage(router: &Router, group_id: GroupId, op: ManageOp) -> Result<(), MembershipError> {
    router
        .manage(group_id, op)
        .await?
        .map_err(|reason| MembershipError::Refused { group_id, reason })
}

/// The Raft membership entry of node `node_id` as the map describes it.
pub fn node_addr(node_id: NodeId, info: &NodeInfo) -> NodeAddr {
    NodeAddr {
        node_id,
        region: info.region.to_string(),
        grpc_addr: info.grpc_addr.clone(),
        http_addr: info.http_addr.clone(),
    }
}

/// The voters of the metadata group, from this node's replica of it.
fn meta_voters(router: &Router) -> Result<BTreeSet<u64>, MembershipError> {
    let meta = router
        .groups()
        .get(META_GROUP)
        .ok_or_else(|| RouteError::Unavailable {
            reason: "this node has no metadata replica".into(),
        })?;
    Ok(meta.voter_ids())
}

/// Moves `group`'s replica on `from` to `to` (see the module doc).
pub async fn move_replica(
    router: &Router,
    group_id: GroupId,
    from: NodeId,
    to: NodeId,
) -> Result<Move, MembershipError> {
    let replica_id = match map_command(
        router,
        "learner",
        MapCommand::AddLearner {
            group_id,
            node_id: to,
        },
    )
    .await?
    {
        Success::Map(MapSuccess::LearnerAdded { replica_id, .. }) => replica_id,
        other => return Err(MembershipError::Unexpected(format!("{other:?}"))),
    };
    let map = fresh_map(router).await?;
    let info = map
        .nodes
        .get(&to)
        .ok_or(MembershipError::Rejected(Rejection::UnknownNode { node_id: to }))?;
    let group = map
        .groups
        .get(&group_id)
        .ok_or(MembershipError::Rejected(Rejection::UnknownGroup { group_id }))?;
    let old = group.voters.iter().find(|(_, n)| **n == from).map(|(r, _)| *r);
    manage(
        router,
        group_id,
        ManageOp::AddLearner {
            replica_id,
            node: node_addr(to, info),
        },
    )
    .await?;
    let mut voters: BTreeSet<u64> = group.voters.keys().copied().collect();
    if let Some(old) = old {
        voters.remove(&old);
        // A leader that votes itself out leaves the group leaderless until an
        // election timeout; handing over first keeps bookings flowing.
        if let Some(&successor) = voters.iter().next() {
            manage(
                router,
                group_id,
                ManageOp::HandOffFrom {
                    leaving: old,
                    to: successor,
                },
            )
            .await?;
        }
    }
    voters.insert(replica_id);
    manage(router, group_id, ManageOp::SetVoters { voters }).await?;
    map_command(
        router,
        "promote",
        MapCommand::PromoteLearner {
            group_id,
            replica_id,
            replaces: old,
        },
    )
    .await?;
    tracing::info!(group_id, from, to, replica_id, "replica moved");
    Ok(Move {
        group_id,
        from_node: from,
        to_node: to,
        replica_id,
    })
}

/// Adds a node whose process is already running (not bootstrapping) and
/// moves replicas to it until it carries its share.
pub async fn add_node(
    router: &Router,
    node_id: NodeId,
    info: NodeInfo,
) -> Result<Vec<Move>, MembershipError> {
    map_command(
        router,
        "add-node",
        MapCommand::AddNode {
            node_id,
            info: info.clone(),
        },
    )
    .await?;
    manage(
        router,
        META_GROUP,
        ManageOp::AddLearner {
            replica_id: node_id,
            node: node_addr(node_id, &info),
        },
    )
    .await?;
    // Whether it also votes there is the metadata leader's call
    // (`booking::meta_voters`): a few voters over the regions, not all.

    let mut moves = Vec::new();
    loop {
        let map = fresh_map(router).await?;
        let counts = map.replica_counts();
        let active: Vec<NodeId> = map
            .nodes
            .iter()
            .filter(|(_, n)| !n.draining)
            .map(|(id, _)| *id)
            .collect();
        let total: usize = active.iter().map(|id| counts[id]).sum();
        let share = total / active.len().max(1);
        if counts.get(&node_id).copied().unwrap_or(0) >= share {
            break;
        }
        // A group the new node lacks, with a replica on the most loaded node;
        // groups homed in the new node's region first.
        let candidate = map
            .groups
            .iter()
            .filter(|(id, g)| {
                map.replica_on(**id, node_id).is_none()
                    && g.learners.is_empty()
                    && map.may_carry(**id, node_id)
            })
            .filter_map(|(id, g)| {
                let (from, load) = g
                    .voters
                    .values()
                    .map(|n| (*n, counts.get(n).copied().unwrap_or(0)))
                    .max_by_key(|(n, load)| (*load, std::cmp::Reverse(*n)))?;
                (load > share).then_some((g.home_region != info.region, std::cmp::Reverse(load), *id, from))
            })
            .min();
        let Some((_, _, group_id, from)) = candidate else {
            break;
        };
        moves.push(move_replica(router, group_id, from, node_id).await?);
    }
    Ok(moves)
}

/// Moves every replica off `node_id`, drops it from the metadata group and
/// forgets it. Refused before any change if the other nodes cannot carry
/// its replicas.
pub async fn remove_node(router: &Router, node_id: NodeId) -> Result<Vec<Move>, MembershipError> {
    let map = fresh_map(router).await?;
    if !map.nodes.contains_key(&node_id) {
        return Err(MembershipError::Rejected(Rejection::UnknownNode { node_id }));
    }
    let others = map
        .nodes
        .iter()
        .filter(|(id, n)| **id != node_id && !n.draining)
        .count();
    let widest = map
        .groups
        .values()
        .filter(|g| g.replica_on(node_id).is_some())
        .map(|g| g.voters.len())
        .max()
        .unwrap_or(0);
    if others < widest || others == 0 {
        return Err(MembershipError::Rejected(Rejection::NotEnoughNodes {
            needed: widest.max(1) as u32,
            available: others as u32,
        }));
    }
    // Every group on the node needs somewhere to go (an accounts group only
    // within its region): refuse before anything changes.
    for (&group_id, group) in &map.groups {
        if group.voters.values().any(|n| *n == node_id) && map.choose_move_target(group_id).is_none() {
            return Err(MembershipError::Rejected(Rejection::NotEnoughNodes {
                needed: 1,
                available: 0,
            }));
        }
    }
    map_command(router, "drain", MapCommand::DrainNode { node_id }).await?;

    let mut moves = Vec::new();
    loop {
        let map = fresh_map(router).await?;
        let Some(group_id) = map
            .groups
            .iter()
            .find(|(_, g)| g.voters.values().any(|n| *n == node_id))
            .map(|(id, _)| *id)
        else {
            break;
        };
        let to =
            map.choose_move_target(group_id)
                .ok_or(MembershipError::Rejected(Rejection::NotEnoughNodes {
                    needed: 1,
                    available: 0,
                }))?;
        moves.push(move_replica(router, group_id, node_id, to).await?);
    }
    let voters = meta_voters(router)?;
    if voters.contains(&node_id) {
        // The node is draining, so the voters the map calls for leave it
        // out; a learner elsewhere takes its vote.
        let plan = fresh_map(router).await?.meta_voter_plan(&voters);
        if let Some(&successor) = plan.intersection(&voters).next() {
            manage(
                router,
                META_GROUP,
                ManageOp::HandOffFrom {
                    leaving: node_id,
                    to: successor,
                },
            )
            .await?;
        }
        manage(router, META_GROUP, ManageOp::SetVoters { voters: plan }).await?;
    }
    map_command(router, "remove-node", MapCommand::RemoveNode { node_id }).await?;
    Ok(moves)
}
