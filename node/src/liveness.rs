//! Node liveness and group quiescence: the two loops that let idle groups
//! park their timers without losing failover (see `transport::quiescence`).
//!
//! The liveness loop pings every other node in the cluster map once per
//! interval (one call per peer for all groups together). A peer that has not
//! answered for `down_after` counts as down, and every parked follower whose
//! leader lives there is woken so that its election timer can run. The
//! quiescer loop parks the leaders (and their followers) of groups that have
//! been idle for `idle_after`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use booking::META_GROUP;
use openraft::async_runtime::WatchReceiver;
use tokio_util::sync::CancellationToken;

use crate::periodic::Periodic;
use transport::channels::ChannelPool;
use transport::quiescence::{self, Quiescer};
use transport::replicas::Groups;

/// How often peers are pinged and idle groups looked for.
const INTERVAL: Duration = Duration::from_millis(500);

/// Parked replicas without a leader woken per interval (see
/// `transport::quiescence::wake_leaderless`).
const WAKE_PER_INTERVAL: usize = 64;

/// Pings peers until `shutdown`; wakes parked followers of peers that went quiet.
///
/// Each ping also carries this node's closed-time claims for the peer's
/// replicas (`quiescence::leader_claims`); `lease` is how recently a leader
/// must have heard from its quorum to make one.
pub async fn run_liveness(
    node_id: u64,
    groups: Groups,
    pool: ChannelPool,
    down_after: Duration,
    lease: quiescence::Leases,
    shutdown: CancellationToken,
) {
    let mut last_ok: HashMap<u64, Instant> = HashMap::new();
    // Only answers, unlike `last_ok`, which starts counting at first sight.
    let mut answered_at: HashMap<u64, Instant> = HashMap::new();
    let mut down: HashMap<u64, bool> = HashMap::new();
    let mut clock = Periodic::new(INTERVAL, &shutdown);
    while clock.next().await {
        let woken = quiescence::wake_leaderless(&groups, WAKE_PER_INTERVAL);
        if woken > 0 {
            tracing::debug!(woken, "woke leaderless replicas to elect");
        }
        let Some(meta) = groups.get(META_GROUP) else {
            continue;
        };
        let peers: Vec<(u64, String)> = meta
            .state
            .read()
            .cluster_map()
            .nodes
            .iter()
            .filter(|(id, _)| **id != node_id)
            .map(|(id, n)| (*id, n.grpc_addr.clone()))
            .collect();
        let at_ms = transport::wall_clock_ms();
        let answered = |node: u64| answered_at.get(&node).is_some_and(|t| t.elapsed() < lease.parked);
        // One pass over the groups this node leads, then each peer its share.
        // A node whose clock is suspect claims nothing: a claim is a time.
        let leading = if groups.clock().check().is_ok() {
            quiescence::leader_claims(&groups, &lease, &answered)
        } else {
            Vec::new()
        };
        quiescence::claim_own(&groups, &leading, at_ms);
        let claims: Vec<quiescence::ClosedClaims> = peers
            .iter()
            .map(|(peer, _)| quiescence::ClosedClaims::for_peer(at_ms, &leading, *peer))
            .collect();
        let answers = futures::future::join_all(
            peers
                .iter()
                .zip(&claims)
                .map(|((_, addr), claims)| quiescence::ping(&pool, addr, down_after, claims)),
        )
        .await;
        let now = Instant::now();
        for ((peer, _), answer) in peers.iter().zip(answers) {
            let seen = *last_ok.entry(*peer).or_insert(now);
            if let Some(answer) = answer {
                if let Some(offset) = answer.offset {
                    groups.clock().record(*peer, offset);
                }
                last_ok.insert(*peer, now);
                answered_at.insert(*peer, now);
                if down.insert(*peer, false) == Some(true) {
                    tracing::info!(peer, "node answers again");
                }
                continue;
            }
            if now.duration_since(seen) < down_after {
                continue;
            }
            if down.insert(*peer, true) != Some(true) {
                tracing::warn!(peer, "node stopped answering");
            }
            // Every interval while it is down: a follower parked meanwhile
            // (it cannot be, but a replica started meanwhile could follow it).
            let woken = quiescence::wake_followers_of(&groups, *peer);
            if woken > 0 {
                tracing::info!(peer, woken, "woke parked followers of a silent node");
            }
        }
        let peer_ids: Vec<u64> = peers.iter().map(|(id, _)| *id).collect();
        if groups.clock().evaluate(&peer_ids).suspect {
            hand_over_leadership(&groups).await;
        }
    }
}

/// While this node's clock is suspect its leaders refuse writes (see
/// `router::leader`); this moves each group it leads to the voter with the
/// longest log, so that writes resume there within an election's time.
async fn hand_over_leadership(groups: &Groups) {
    for replica in groups.list() {
        let target = {
            let watch = replica.raft.metrics();
            let m = watch.borrow_watched();
            if m.state != openraft::ServerState::Leader {
                continue;
            }
            let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            let replication = m.replication.as_ref();
            voters.into_iter().filter(|&v| v != m.id).max_by_key(|v| {
                replication
                    .and_then(|r| r.get(v))
                    .and_then(|l| l.as_ref())
                    .map(|l| l.index)
            })
        };
        let Some(target) = target else {
            // The only voter: there is no one to hand over to.
            continue;
        };
        replica.wake();
        match replica.raft.trigger().transfer_leader(target).await {
            Ok(()) => tracing::info!(
                group = replica.group_id,
                to = target,
                "handing leadership over: this node's clock is suspect"
            ),
            Err(e) => tracing::warn!(group = replica.group_id, error = %e, "leadership hand-off failed"),
        }
    }
}

/// Parks idle groups this node leads, until `shutdown`.
pub async fn run_quiescer(
    groups: Groups,
    pool: ChannelPool,
    idle_after: Duration,
    shutdown: CancellationToken,
) {
    let mut quiescer = Quiescer::new(groups, pool, idle_after);
    let mut clock = Periodic::new(INTERVAL, &shutdown);
    while clock.next().await {
        let parked = quiescer.pass().await;
        if parked > 0 {
            tracing::debug!(parked, "idle groups parked");
        }
    }
}
