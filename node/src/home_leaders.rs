//! Keeping each data group's leader in the group's home region.
//!
//! An event's inventory leader belongs in its home region: that is where its
//! on-sale traffic comes from, and a write then needs only one round trip to a
//! quorum instead of a cross-region hop first. New groups are led from home
//! from the start (`booking::cluster_map::ClusterMap::choose_nodes`), but a
//! failover can move leadership abroad. Every few seconds this loop looks at
//! the groups this node leads outside their home region and hands leadership
//! to a voter at home once that voter has caught up, so leadership returns
//! when the home node does, without an operator.

use std::time::Duration;

use booking::META_GROUP;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio_util::sync::CancellationToken;

use crate::periodic::Periodic;
use transport::replicas::Groups;

const INTERVAL: Duration = Duration::from_secs(2);

/// A home voter this far behind the leader's log is not handed leadership.
const CAUGHT_UP_LAG: u64 = 100;

pub async fn run(groups: Groups, region: booking::RegionId, shutdown: CancellationToken) {
    let mut clock = Periodic::new(INTERVAL, &shutdown);
    while clock.next().await {
        for (replica, target) in handoffs(&groups, &region) {
            replica.wake();
            match replica.raft.trigger().transfer_leader(target).await {
                Ok(()) => tracing::info!(
                    group = replica.group_id,
                    to = target,
                    "handing leadership back to the group's home region"
                ),
                Err(e) => tracing::warn!(group = replica.group_id, error = %e, "leadership hand-off failed"),
            }
        }
    }
}

/// The groups this node leads away from home, each with a caught-up home
/// voter to hand leadership to.
fn handoffs(groups: &Groups, region: &booking::RegionId) -> Vec<(transport::replicas::GroupReplica, u64)> {
    let Some(meta) = groups.get(META_GROUP) else {
        return Vec::new();
    };
    let state = meta.state.read();
    let map = state.cluster_map();
    let mut out = Vec::new();
    for replica in groups.list() {
        let Some(info) = map.groups.get(&replica.group_id) else {
            continue;
        };
        if info.home_region == *region {
            continue;
        }
        let watch = replica.raft.metrics();
        let m = watch.borrow_watched();
        if m.state != ServerState::Leader {
            continue;
        }
        let last = m.last_log_index.unwrap_or(0);
        let target = info.voters.iter().find_map(|(&voter, node)| {
            let at_home = map.nodes.get(node).is_some_and(|n| n.region == info.home_region);
            let caught_up = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&voter))
                .and_then(|matched| matched.as_ref())
                .is_some_and(|matched| matched.index + CAUGHT_UP_LAG >= last);
            // Not to a node whose clock is off: it would hand the group
            // straight back (see `transport::clock`).
            let clock_ok = !groups.clock().is_far(*node);
            (at_home && caught_up && clock_ok).then_some(voter)
        });
        if let Some(target) = target {
            out.push((replica.clone(), target));
        }
    }
    out
}
