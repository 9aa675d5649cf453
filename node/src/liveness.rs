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

/// Elections this node may start per interval for groups whose leader's node
/// went silent (see `transport::quiescence::take_over_from`): more than the
/// start-up waves, since a dead node's groups take no writes until then.
const TAKEOVERS_PER_INTERVAL: usize = 256;

/// An awake replica that has known no leader this long is parked again and
/// waits for a later wave: several election timeouts, so a failover's
/// elections are never cut short.
const STALLED_AFTER: Duration = Duration::from_secs(5);

/// A yielding task that waits longer than this for its turn means this node
/// is too busy to start more elections.
const BUSY_LAG: Duration = Duration::from_millis(20);

/// Leaderless replicas woken per interval while congested.
const CONGESTED_WAKES: usize = 4;

/// A ping answered slower than this means the cluster is too busy to start
/// more elections (see `run_liveness`).
const SLOW_PING: Duration = Duration::from_millis(200);

/// After this many `down_after`s of silence every parked follower of the
/// silent node wakes to elect, whoever was chosen to campaign.
const FALLBACK_AFTER: u32 = 3;

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
    // What each peer last said it runs, and what the map gives each node
    // (recounted when the map changes).
    let mut running: HashMap<u64, u64> = HashMap::new();
    let mut assigned: (u64, HashMap<u64, u64>) = (u64::MAX, HashMap::new());
    // This node lagged, or the last round of pings found a peer slow or
    // unanswered (see `BUSY_LAG`, `SLOW_PING`).
    let mut congested = false;
    // Since when each awake replica has known no leader.
    let mut stalled: HashMap<u64, Instant> = HashMap::new();
    let mut clock = Periodic::new(INTERVAL, &shutdown);
    while clock.next().await {
        let Some(meta) = groups.get(META_GROUP) else {
            continue;
        };
        let peers: Vec<(u64, String)> = {
            let state = meta.state.read();
            let map = state.cluster_map();
            if assigned.0 != map.epoch() {
                assigned = (map.epoch(), replicas_per_node(map));
            }
            map.nodes
                .iter()
                .filter(|(id, _)| **id != node_id)
                .map(|(id, n)| (*id, n.grpc_addr.clone()))
                .collect()
        };
        // New groups are founded once every peer that answers has started
        // the replicas the map gives it.
        let found = peers.iter().all(|(peer, _)| {
            down.get(peer) == Some(&true)
                || running.get(peer).copied().unwrap_or(0) >= assigned.1.get(peer).copied().unwrap_or(0)
        });
        // How long a task that yields waits for its turn: this node's own
        // backlog of Raft work.
        let queued = Instant::now();
        tokio::task::yield_now().await;
        let lag = queued.elapsed();
        congested |= lag > BUSY_LAG;
        let requeued = quiescence::requeue_stalled(&groups, &mut stalled, STALLED_AFTER, congested);
        if requeued > 0 {
            tracing::debug!(requeued, congested, "parked replicas whose elections stalled");
        }
        // While peers answer slowly or this node lags, it (or they) cannot
        // keep up with the groups already awake: no new groups are founded,
        // and only a trickle of leaderless replicas wakes (never none: a
        // node busy for good must still elect).
        let limit = if congested {
            CONGESTED_WAKES
        } else {
            WAKE_PER_INTERVAL
        };
        let found = found && !congested;
        let woken = quiescence::wake_leaderless(&groups, limit, quiescence::MAX_AWAKE_DATA_REPLICAS, found);
        if woken.count > 0 {
            tracing::debug!(woken = woken.count, "woke leaderless replicas to elect");
        }
        if !woken.campaigners.is_empty() {
            // Not awaited here: the pings below must not wait on elections.
            tokio::spawn(quiescence::campaign(woken.campaigners));
        }
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
        let mut silent = Vec::new();
        let mut slowest = Duration::ZERO;
        let mut answered_now = 0;
        for ((peer, _), answer) in peers.iter().zip(answers) {
            let seen = *last_ok.entry(*peer).or_insert(now);
            if let Some(answer) = answer {
                if let Some(offset) = answer.offset {
                    groups.clock().record(*peer, offset);
                }
                if let Some(replicas) = answer.replicas {
                    running.insert(*peer, replicas);
                }
                slowest = slowest.max(answer.rtt);
                answered_now += 1;
                last_ok.insert(*peer, now);
                answered_at.insert(*peer, now);
                if down.insert(*peer, false) == Some(true) {
                    tracing::info!(peer, "node answers again");
                }
                continue;
            }
            let quiet_for = now.duration_since(seen);
            if quiet_for < down_after {
                continue;
            }
            if down.insert(*peer, true) != Some(true) {
                tracing::warn!(peer, "node stopped answering");
            }
            silent.push((*peer, quiet_for));
        }
        let unanswered = peers.len() - silent.len() - answered_now;
        congested = slowest > SLOW_PING || unanswered > 0;
        let up = |node: u64| node == node_id || down.get(&node) != Some(&true);
        for (peer, quiet_for) in silent {
            // Every interval while it is down. First one chosen successor
            // per group campaigns, a bounded wave at a time; if that has
            // not been enough, every parked follower of it wakes to elect.
            if quiet_for < down_after * FALLBACK_AFTER {
                let woken = quiescence::take_over_from(
                    &groups,
                    peer,
                    &up,
                    TAKEOVERS_PER_INTERVAL,
                    quiescence::MAX_AWAKE_DATA_REPLICAS,
                );
                if woken.count > 0 {
                    tracing::info!(
                        peer,
                        campaigns = woken.count,
                        "taking over groups led by a silent node"
                    );
                    tokio::spawn(quiescence::campaign(woken.campaigners));
                }
            } else {
                let woken = quiescence::wake_followers_of(&groups, peer);
                if woken > 0 {
                    tracing::info!(peer, woken, "woke parked followers of a silent node");
                }
            }
        }
        let peer_ids: Vec<u64> = peers.iter().map(|(id, _)| *id).collect();
        if groups.clock().evaluate(&peer_ids).suspect {
            hand_over_leadership(&groups).await;
        }
    }
}

/// How many replicas `map` gives each node, the metadata replica included.
fn replicas_per_node(map: &booking::ClusterMap) -> HashMap<u64, u64> {
    let mut count: HashMap<u64, u64> = map.nodes.keys().map(|&node| (node, 1)).collect();
    for &group in map.groups.keys() {
        for (_, node) in map.replicas_of(group) {
            *count.entry(node).or_default() += 1;
        }
    }
    count
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
