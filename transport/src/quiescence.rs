//! Quiet groups: an idle Raft group parks its timers, traffic or a dead node wakes it.
//!
//! Every openraft group ticks on its own: its leader heartbeats each follower
//! and each follower watches an election timer. A thousand idle groups per node
//! would spend whole cores on heartbeats that say nothing. So a leader whose
//! group has been idle for a while (no new entries, every replica holding the
//! whole log, everything committed) parks its own timers first, then asks each
//! follower to park too. A follower parks only if it follows that leader in
//! that term and holds exactly the leader's log; if any follower does not, the
//! leader wakes again and stays awake.
//!
//! Data replicas also *start* parked, and node liveness wakes those that know
//! no leader a few dozen at a time, and only while fewer than
//! [`MAX_AWAKE_DATA_REPLICAS`] run their timers, so a node creating or
//! restarting thousands of groups holds its elections in waves rather than all
//! at once. A leader elected into silence parks as soon as its log is on every
//! member, which frees its slot for the next wave.
//!
//! A parked replica still answers every message; only its timers stop. It wakes
//! on new entries, on any vote request (someone is electing) and on a snapshot;
//! a parked leader wakes on any client request (`router`). A bare heartbeat does
//! not wake a parked follower, so a late heartbeat cannot undo the parking.
//!
//! Parking trades nothing in safety: terms, votes and commits are untouched,
//! and reads still confirm leadership with a quorum. What it needs in exchange
//! is liveness from elsewhere: node liveness (`node/src/liveness.rs`) pings
//! every peer node once per interval for all groups together, and when a peer
//! stops answering, every parked follower whose leader lives there wakes, so
//! its election timer runs and a new leader is elected as usual.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use openraft::Instant as _;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use serde::{Deserialize, Serialize};

use crate::MAX_MESSAGE_BYTES;
use crate::channels::ChannelPool;
use crate::clock::Offset;
use crate::codec::{decode, encode};
use crate::proto::Envelope;
use crate::proto::raft_client::RaftClient;
use crate::replicas::{GroupReplica, Groups};
use raft_store::NodeAddr;

/// How long a leader waits for a follower's answer to a parking request.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// A leader's request that a follower park its timers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuiesceRequest {
    /// The leader's replica id.
    pub leader: u64,
    pub term: u64,
    pub last_log_index: Option<u64>,
}

/// Follower side: parks if this replica follows `ask.leader` in `ask.term`
/// (as a voter or a learner) and has exactly the leader's log, all of it
/// applied.
pub fn park_follower(replica: &GroupReplica, ask: &QuiesceRequest) -> bool {
    let agrees = {
        let watch = replica.raft.metrics();
        let m = watch.borrow_watched();
        matches!(m.state, ServerState::Follower | ServerState::Learner)
            && m.current_leader == Some(ask.leader)
            && m.current_term == ask.term
            && m.last_log_index == ask.last_log_index
            && m.last_applied.as_ref().map(|id| id.index) == ask.last_log_index
    };
    if agrees {
        replica.park();
    }
    agrees
}

/// Leader side: parks the local leaders of groups idle for `idle_after`.
pub struct Quiescer {
    groups: Groups,
    pool: ChannelPool,
    idle_after: Duration,
    /// Per group this node leads: what the last pass saw of its log.
    seen: HashMap<u64, Seen>,
}

/// What the quiescer last saw of a group this node leads.
#[derive(Debug, Clone, Copy)]
struct Seen {
    term: u64,
    last: Option<u64>,
    /// Since when `last` has not moved.
    since: Instant,
    /// The log has not grown since this leader was first seen in `term`:
    /// it was elected into silence (a start, a restart, a failover of an
    /// idle group) and may park as soon as its log is everywhere, without
    /// waiting out `idle_after`. Cleared once it has grown or parking was
    /// tried, so a group that clients woke waits out the full idle time.
    untouched: bool,
}

/// Groups asked to park at once by one pass: enough that thousands of
/// groups elected together park within a few passes, few enough that the
/// requests do not crowd out the node's other traffic.
const PARK_ASKS_IN_FLIGHT: usize = 64;

impl Quiescer {
    pub fn new(groups: Groups, pool: ChannelPool, idle_after: Duration) -> Self {
        Self {
            groups,
            pool,
            idle_after,
            seen: HashMap::new(),
        }
    }

    /// One pass over every local replica. Returns how many groups it parked.
    pub async fn pass(&mut self) -> usize {
        let now = Instant::now();
        let replicas = self.groups.list();
        self.seen
            .retain(|group, _| replicas.iter().any(|r| r.group_id == *group));
        let mut ready = Vec::new();
        for replica in replicas {
            if replica.is_quiet() {
                continue;
            }
            if let Some(ask) = self.ready_to_park(&replica, now) {
                let followers = followers(&replica);
                ready.push((replica, ask, followers));
            }
        }
        let pool = &self.pool;
        let outcomes: Vec<(u64, Option<u64>, bool)> = stream::iter(ready)
            .map(|(replica, ask, followers)| async move {
                // Park first: no heartbeat of ours may follow a follower's parking.
                replica.park();
                let answers = join_all(
                    followers
                        .iter()
                        .map(|(id, addr)| ask_to_park(pool, addr, replica.group_id, *id, &ask)),
                )
                .await;
                let all = answers.iter().all(|parked| *parked);
                if !all {
                    replica.wake();
                }
                (replica.group_id, ask.last_log_index, all)
            })
            .buffer_unordered(PARK_ASKS_IN_FLIGHT)
            .collect()
            .await;
        let mut parked = 0;
        for (group_id, last, all) in outcomes {
            if all {
                parked += 1;
            }
            if let Some(seen) = self.seen.get_mut(&group_id) {
                seen.untouched = false;
                if !all {
                    // Refused: wait out the idle time again before asking.
                    seen.last = last;
                    seen.since = now;
                }
            }
        }
        parked
    }

    /// The request to send if `replica` leads an idle, fully replicated group.
    fn ready_to_park(&mut self, replica: &GroupReplica, now: Instant) -> Option<QuiesceRequest> {
        let watch = replica.raft.metrics();
        let m = watch.borrow_watched();
        if m.state != ServerState::Leader {
            self.seen.remove(&replica.group_id);
            return None;
        }
        let last = m.last_log_index;
        let term = m.current_term;
        let fresh = Seen {
            term,
            last,
            since: now,
            untouched: true,
        };
        let seen = self.seen.entry(replica.group_id).or_insert(fresh);
        if seen.term != term {
            *seen = fresh;
        }
        if seen.last != last {
            seen.last = last;
            seen.since = now;
            seen.untouched = false;
            return None;
        }
        // Seen at least once before with this log: quiet for a pass.
        let quiet_for = now.duration_since(seen.since);
        let idle = quiet_for >= self.idle_after || (seen.untouched && !quiet_for.is_zero());
        if !idle {
            return None;
        }
        let committed = m.cluster_committed.as_ref().map(|id| id.index);
        let applied = m.last_applied.as_ref().map(|id| id.index);
        if committed != last || applied != last {
            return None;
        }
        let replication = m.replication.as_ref()?;
        let all_matched = replication
            .iter()
            .filter(|(id, _)| **id != m.id)
            .all(|(_, matched)| matched.as_ref().map(|id| id.index) == last);
        if !all_matched {
            return None;
        }
        Some(QuiesceRequest {
            leader: m.id,
            term,
            last_log_index: last,
        })
    }
}

/// Every other member of `replica`'s group with its gRPC address.
fn followers(replica: &GroupReplica) -> Vec<(u64, String)> {
    let watch = replica.raft.metrics();
    let m = watch.borrow_watched();
    m.membership_config
        .membership()
        .nodes()
        .filter(|(id, _)| **id != replica.replica_id)
        .map(|(id, node)| (*id, node.grpc_addr.clone()))
        .collect()
}

fn client(pool: &ChannelPool, addr: &str) -> Option<RaftClient<crate::wan::PeerChannel>> {
    let channel = pool.get(addr).ok()?;
    Some(
        RaftClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}

async fn ask_to_park(
    pool: &ChannelPool,
    addr: &str,
    group_id: u64,
    target: u64,
    ask: &QuiesceRequest,
) -> bool {
    let Some(mut client) = client(pool, addr) else {
        return false;
    };
    let envelope = Envelope {
        group_id,
        payload: encode(ask),
        target_replica: target,
    };
    match tokio::time::timeout(ASK_TIMEOUT, client.quiesce(envelope)).await {
        Ok(Ok(reply)) => matches!(
            decode::<Result<bool, String>>(&reply.into_inner().payload),
            Ok(Ok(true))
        ),
        _ => false,
    }
}

/// What a node tells a peer with each ping about the groups it leads that
/// have a replica there: "at `at_ms` (my wall clock), my commit index of
/// this group was `commit`". A replica that has applied `commit` knows it
/// reflects every write committed before `at_ms` (its closed time, see
/// `replicas::GroupReplica::closed`). Only a leader that holds a lease makes
/// the claim (see [`leader_claims`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedClaims {
    pub at_ms: u64,
    /// (group, leader replica, term, commit index).
    pub groups: Vec<(u64, u64, u64, u64)>,
}

/// How recently a leader must have heard from its quorum to make a claim:
/// half the shortest time after which a voter may campaign against it, the
/// other half left for clock-rate drift and the message's flight.
#[derive(Debug, Clone, Copy)]
pub struct Leases {
    /// The metadata group (always ticking): half its election timeout.
    pub meta: Duration,
    /// An awake data group: half of the leader lease plus the shortest
    /// election timeout (openraft's voters refuse a rival for the lease,
    /// the election timeout's maximum, and only then campaign).
    pub data: Duration,
    /// A parked group: half of `node_down_after`, after which its parked
    /// followers wake; measured on ping answers from its voters' nodes.
    pub parked: Duration,
}

/// A group this node leads under a lease: what it may claim, and the
/// nodes of its other members, who are told.
#[derive(Debug, Clone)]
pub struct LeaderClaim {
    pub group_id: u64,
    pub leader: u64,
    pub term: u64,
    pub commit: u64,
    pub member_nodes: Vec<u64>,
}

/// One pass over this node's replicas: for every group it leads, its commit
/// index, provided no other leader can have been elected meanwhile. An
/// awake leader must have heard from a quorum within its lease (shorter than
/// the election timeout, so no voter has voted for a rival since); a parked
/// leader sends no heartbeats, and its parked followers only campaign after
/// node liveness has missed this node for `node_down_after`, so it needs a
/// majority of its voters on nodes that answered its pings within the
/// parked lease (`answered`).
pub fn leader_claims(groups: &Groups, lease: &Leases, answered: &dyn Fn(u64) -> bool) -> Vec<LeaderClaim> {
    groups
        .list()
        .iter()
        .filter_map(|replica| leased_commit(replica, lease, answered))
        .collect()
}

impl ClosedClaims {
    /// What to tell `peer` of `claims` at `at_ms`: those of groups with a
    /// replica on it.
    pub fn for_peer(at_ms: u64, claims: &[LeaderClaim], peer: u64) -> ClosedClaims {
        ClosedClaims {
            at_ms,
            groups: claims
                .iter()
                .filter(|c| c.member_nodes.contains(&peer))
                .map(|c| (c.group_id, c.leader, c.term, c.commit))
                .collect(),
        }
    }
}

/// The same claims, made to this node's own leader replicas: a leader
/// holding a lease that has applied its commit index is current as of now.
pub fn claim_own(groups: &Groups, claims: &[LeaderClaim], at_ms: u64) {
    for claim in claims {
        if let Some(replica) = groups.get(claim.group_id) {
            replica.note_claim(claim.commit, at_ms);
        }
    }
}

/// `replica`'s claim if it leads its group and no rival can have been
/// elected (see [`leader_claims`]).
fn leased_commit(
    replica: &GroupReplica,
    lease: &Leases,
    answered: &dyn Fn(u64) -> bool,
) -> Option<LeaderClaim> {
    let watch = replica.raft.metrics();
    let m = watch.borrow_watched();
    if m.state != ServerState::Leader {
        return None;
    }
    let membership = m.membership_config.membership();
    let leased = if replica.is_quiet() {
        let voters: Vec<u64> = membership.voter_ids().collect();
        let fresh = voters
            .iter()
            .filter(|id| **id == m.id || membership.get_node(id).is_some_and(|n| answered(n.node_id)))
            .count();
        fresh > voters.len() / 2
    } else {
        let lease = if replica.group_id == 0 {
            lease.meta
        } else {
            lease.data
        };
        m.last_quorum_acked
            .as_ref()
            .is_some_and(|acked| acked.elapsed() < lease)
    };
    let commit = m.cluster_committed.as_ref()?.index;
    leased.then(|| LeaderClaim {
        group_id: replica.group_id,
        leader: m.id,
        term: m.current_term,
        commit,
        member_nodes: membership
            .nodes()
            .filter(|(id, _)| **id != m.id)
            .map(|(_, node)| node.node_id)
            .collect(),
    })
}

/// Follower side: records each claim for the replica it names.
pub fn take_claims(groups: &Groups, claims: &ClosedClaims) {
    for &(group_id, leader, term, commit) in &claims.groups {
        let Some(replica) = groups.get(group_id) else {
            continue;
        };
        let current = {
            let watch = replica.raft.metrics();
            let m = watch.borrow_watched();
            (m.current_term, m.current_leader)
        };
        // A claim from a leader this replica knows was replaced is void.
        if term < current.0 || (term == current.0 && current.1.is_some_and(|l| l != leader)) {
            continue;
        }
        replica.note_claim(commit, claims.at_ms);
    }
}

/// Node liveness: whether the node at `addr` answers a ping within `timeout`.
/// The ping carries this node's closed-time `claims` for it.
pub async fn ping(
    pool: &ChannelPool,
    addr: &str,
    timeout: Duration,
    claims: &ClosedClaims,
) -> Option<Pinged> {
    let mut client = client(pool, addr)?;
    let envelope = Envelope {
        group_id: 0,
        payload: if claims.groups.is_empty() {
            Vec::new()
        } else {
            encode(claims)
        },
        target_replica: 0,
    };
    let sent_wall_ms = crate::wall_clock_ms();
    let sent = Instant::now();
    let answer = tokio::time::timeout(timeout, client.ping(envelope))
        .await
        .ok()?
        .ok()?;
    let rtt = sent.elapsed();
    // A node of an older version answers with its replica count alone: it
    // is alive, but its clock is not measured.
    let answer = decode::<Result<PingAnswer, String>>(&answer.into_inner().payload)
        .ok()
        .and_then(Result::ok);
    Some(Pinged {
        offset: answer.map(|answer| Offset::measure(sent_wall_ms, rtt, answer.wall_ms)),
        replicas: answer.map(|answer| answer.replicas),
        rtt,
    })
}

/// What a node answers a liveness ping with.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PingAnswer {
    /// How many replicas it hosts.
    pub replicas: u64,
    /// Its wall clock when it answered, Unix ms.
    pub wall_ms: u64,
}

/// A ping that was answered.
#[derive(Debug, Clone, Copy)]
pub struct Pinged {
    /// The peer's clock against this node's, when its answer carried it.
    pub offset: Option<Offset>,
    /// How many replicas the peer runs, when its answer said.
    pub replicas: Option<u64>,
    /// How long the answer took.
    pub rtt: Duration,
}

/// Wakes every parked follower whose leader lives on `node`, so that its
/// election timer runs again. Returns how many woke.
pub fn wake_followers_of(groups: &Groups, node: u64) -> usize {
    let mut woken = 0;
    for replica in groups.list() {
        if replica.is_quiet() && leader_node(&replica) == Some(node) {
            replica.wake();
            woken += 1;
        }
    }
    woken
}

/// The node of the leader `replica` follows, if it knows one.
fn leader_node(replica: &GroupReplica) -> Option<u64> {
    let watch = replica.raft.metrics();
    let m = watch.borrow_watched();
    m.current_leader.and_then(|leader| {
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.node_id)
    })
}

/// The first response to `node` going silent: of every group led from there
/// that has a parked replica here, one surviving voter campaigns at once,
/// the one the group's id picks among the voters on nodes that still answer
/// (`up`), so that the survivors share the elections out instead of all of
/// them timing out together. The others stay parked; the campaigner's vote
/// request wakes them. At most `limit` campaigns start here per call, fewer
/// if they would take the node past `max_awake`; the caller calls again each
/// interval while the node is silent, and falls back to
/// [`wake_followers_of`] if that is not enough.
pub fn take_over_from(
    groups: &Groups,
    node: u64,
    up: &dyn Fn(u64) -> bool,
    limit: usize,
    max_awake: usize,
) -> Woken {
    let budget = limit.min(max_awake.saturating_sub(groups.awake_data_replicas()));
    let mut woken = Woken::default();
    for replica in groups.list() {
        if woken.count == budget {
            break;
        }
        if replica.group_id == 0 || !replica.is_quiet() || leader_node(&replica) != Some(node) {
            continue;
        }
        let chosen = {
            let watch = replica.raft.metrics();
            let m = watch.borrow_watched();
            let membership = m.membership_config.membership();
            let voters: Vec<(u64, u64)> = membership
                .voter_ids()
                .filter_map(|id| Some((id, membership.get_node(&id)?.node_id)))
                .collect();
            successor(replica.group_id, &voters, node, up)
        };
        if chosen == Some(replica.replica_id) {
            replica.wake();
            woken.count += 1;
            woken.campaigners.push((replica, None));
        }
    }
    woken
}

/// Which of a group's `voters` (replica id, node id), in replica-id order,
/// campaigns when `dead` goes silent: among those on other nodes that are
/// `up`, the one the group id picks, so that the survivors of a node split
/// its groups between them.
fn successor(group_id: u64, voters: &[(u64, u64)], dead: u64, up: &dyn Fn(u64) -> bool) -> Option<u64> {
    let survivors: Vec<u64> = voters
        .iter()
        .filter(|(_, node)| *node != dead && up(*node))
        .map(|(replica, _)| *replica)
        .collect();
    if survivors.is_empty() {
        return None;
    }
    survivors.get(group_id as usize % survivors.len()).copied()
}

/// Data replicas a node lets run their timers while it still wakes more
/// to elect. Every awake replica ticks 20 times a second and an awake leader
/// heartbeats each follower 4 times; measured on two shared cores (debug
/// build, three nodes), a few hundred per node saturate them: appends and
/// votes time out, elections start again, and neither the new groups nor
/// the metadata group keep a leader. Below the cap, each group elected parks
/// a pass or two later and frees its slot, so start-up time grows linearly
/// with the group count.
pub const MAX_AWAKE_DATA_REPLICAS: usize = 128;

/// Leaderless replicas woken per call however many are awake.
const ALWAYS_WOKEN: usize = 4;

/// Wakes at most `limit` parked replicas that know no leader, fewer (down to
/// a handful) if that would take the node's awake data replicas past
/// `max_awake`, so that their election timers run. Data replicas start parked
/// (a node starting a thousand of them must not hold a thousand elections at
/// once); this lets them elect in waves. Replicas queued to found a new group
/// go first, but only if `found` (every peer has started the replicas the map
/// gives it: a founder calling on a peer that has no replica yet would only
/// time out, stay awake and try again); they are returned, for the caller to
/// initialise their groups and call the elections now. A replica that knows
/// no membership and founds nothing is left alone: it cannot campaign, and
/// the founder's first message wakes it.
pub fn wake_leaderless(groups: &Groups, limit: usize, max_awake: usize, found: bool) -> Woken {
    // A few always: a node whose groups are all busy must still elect.
    let budget = limit
        .min(max_awake.saturating_sub(groups.awake_data_replicas()))
        .max(limit.min(ALWAYS_WOKEN));
    let mut woken = Woken::default();
    let mut founders = Vec::new();
    let mut others = Vec::new();
    for replica in groups.list() {
        if replica.group_id == 0 || !replica.is_quiet() {
            continue;
        }
        if replica.founding_queued() {
            if found {
                founders.push(replica);
            }
        } else if knows_no_leader(&replica) {
            others.push(replica);
        }
    }
    for replica in founders.into_iter().chain(others).take(budget) {
        replica.wake();
        woken.count += 1;
        if let Some(members) = replica.take_founding() {
            woken.campaigners.push((replica, Some(members)));
        }
    }
    woken
}

/// Calls an election on each replica, at once rather than after an
/// election timeout, first initialising the group of each that founds one:
/// the founders of new groups, the chosen successors of a silent node's
/// leaders.
pub async fn campaign(campaigners: Vec<(GroupReplica, Option<BTreeMap<u64, NodeAddr>>)>) {
    join_all(campaigners.into_iter().map(|(replica, founding)| async move {
        if let Some(members) = founding
            && let Err(e) = replica.raft.initialize(members).await
        {
            tracing::info!(group = replica.group_id, error = %e, "group already initialised");
        }
        if let Err(e) = replica.raft.trigger().elect(false).await {
            tracing::debug!(group = replica.group_id, error = %e, "could not call an election");
        }
    }))
    .await;
}

/// What [`wake_leaderless`] and [`take_over_from`] woke.
#[derive(Default)]
pub struct Woken {
    pub count: usize,
    /// Woken replicas to call an election now, each with the members of
    /// the group it founds, if it founds one.
    pub campaigners: Vec<(GroupReplica, Option<BTreeMap<u64, NodeAddr>>)>,
}

/// Parks awake data replicas of groups that never had a leader once they
/// have waited `after` for one (`since`: when each was first seen so, kept
/// between calls), or at once when `congested`: an election
/// that has not succeeded in several election timeouts is only adding votes
/// and ticks to a node that cannot keep up, and [`wake_leaderless`] admits
/// the replica again in a later wave. Parking stops timers only; terms and
/// votes are untouched. Returns how many it parked.
pub fn requeue_stalled(
    groups: &Groups,
    since: &mut HashMap<u64, Instant>,
    after: Duration,
    congested: bool,
) -> usize {
    let now = Instant::now();
    let mut stalled = HashMap::new();
    let mut parked = 0;
    for replica in groups.list() {
        if replica.group_id == 0 || replica.is_quiet() {
            continue;
        }
        let (leaderless, never_led) = {
            let watch = replica.raft.metrics();
            let m = watch.borrow_watched();
            // Index 0 is the founding membership; a first leader's entry follows it.
            (
                m.current_leader.is_none(),
                m.last_applied.is_none_or(|id| id.index == 0),
            )
        };
        // Only groups that never had a leader (a start-up wave): a
        // failover's or a restart's election is never cut short.
        if !leaderless || !never_led {
            continue;
        }
        let first = *since.get(&replica.group_id).unwrap_or(&now);
        if congested || now.duration_since(first) >= after {
            replica.park();
            parked += 1;
        } else {
            stalled.insert(replica.group_id, first);
        }
    }
    *since = stalled;
    parked
}

/// Parked, with a membership, and no leader known.
fn knows_no_leader(replica: &GroupReplica) -> bool {
    let watch = replica.raft.metrics();
    let m = watch.borrow_watched();
    m.current_leader.is_none() && m.membership_config.membership().voter_ids().next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_survivors_of_a_node_share_its_groups_and_skip_the_silent() {
        // Replicas 10, 11, 12 of one group on nodes 1, 2, 3; node 1 died.
        let voters = [(10, 1), (11, 2), (12, 3)];
        let all_up = |_: u64| true;
        let picked: Vec<Option<u64>> = (0..4).map(|g| successor(g, &voters, 1, &all_up)).collect();
        assert_eq!(picked, [Some(11), Some(12), Some(11), Some(12)]);
        // Node 3 is silent too: node 2's replica takes every group.
        let three_down = |n: u64| n != 3;
        assert!((0..4).all(|g| successor(g, &voters, 1, &three_down) == Some(11)));
        // Nobody left to campaign.
        let none_up = |_: u64| false;
        assert_eq!(successor(0, &voters, 1, &none_up), None);
        // The dead node is never chosen, even when "up" says it answers.
        assert!((0..4).all(|g| successor(g, &voters, 2, &all_up) != Some(11)));
    }
}
