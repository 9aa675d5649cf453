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
//! no leader a few dozen at a time, so a node (re)starting a thousand groups
//! holds its elections in waves rather than all at once.
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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
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
    /// Per group: the last log index seen and since when it has not moved.
    seen: HashMap<u64, (Option<u64>, Instant)>,
}

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
        let mut parked = 0;
        for replica in replicas {
            if replica.is_quiet() {
                continue;
            }
            let Some(ask) = self.ready_to_park(&replica, now) else {
                continue;
            };
            let followers = followers(&replica);
            // Park first: no heartbeat of ours may follow a follower's parking.
            replica.park();
            let answers = join_all(
                followers
                    .iter()
                    .map(|(id, addr)| ask_to_park(&self.pool, addr, replica.group_id, *id, &ask)),
            )
            .await;
            if answers.iter().all(|parked| *parked) {
                parked += 1;
            } else {
                replica.wake();
                self.seen.insert(replica.group_id, (ask.last_log_index, now));
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
        let entry = self.seen.entry(replica.group_id).or_insert((last, now));
        if entry.0 != last {
            *entry = (last, now);
            return None;
        }
        if now.duration_since(entry.1) < self.idle_after {
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
            term: m.current_term,
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
    let offset = decode::<Result<PingAnswer, String>>(&answer.into_inner().payload)
        .ok()
        .and_then(Result::ok)
        .map(|answer| Offset::measure(sent_wall_ms, rtt, answer.wall_ms));
    Some(Pinged { offset })
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
}

/// Wakes every parked follower whose leader lives on `node`, so that its
/// election timer runs again. Returns how many woke.
pub fn wake_followers_of(groups: &Groups, node: u64) -> usize {
    let mut woken = 0;
    for replica in groups.list() {
        if !replica.is_quiet() {
            continue;
        }
        let leader_node = {
            let watch = replica.raft.metrics();
            let m = watch.borrow_watched();
            m.current_leader.and_then(|leader| {
                m.membership_config
                    .membership()
                    .get_node(&leader)
                    .map(|n| n.node_id)
            })
        };
        if leader_node == Some(node) {
            replica.wake();
            woken += 1;
        }
    }
    woken
}

/// Wakes at most `limit` parked replicas that know no leader, lowest group
/// first, so that their election timers run. Data replicas start parked (a
/// node starting a thousand of them must not hold a thousand elections at
/// once); this lets them elect in waves. Returns how many woke.
pub fn wake_leaderless(groups: &Groups, limit: usize) -> usize {
    let mut woken = 0;
    for replica in groups.list() {
        if woken == limit {
            break;
        }
        if replica.is_quiet() && replica.raft.metrics().borrow_watched().current_leader.is_none() {
            replica.wake();
            woken += 1;
        }
    }
    woken
}
