//! Operations endpoints: health, Prometheus metrics, cluster status, and the
//! admin API (`/v1/admin/*`, behind a bearer token).
//!
//! Status comes from this node's replicas: for each group it hosts, its role,
//! term, indexes and, where it leads, how far each follower has matched. The
//! cluster map comes from this node's copy of the metadata group; its epoch is
//! reported so an operator can tell two nodes' copies apart.
//!
//! Admin writes go through the router like any other write: creating a group
//! or placing an event is a cluster-map command of the metadata group, and a
//! leadership transfer or membership change is carried out by the group's
//! leader wherever it is. Adding and removing nodes are `router::membership`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use booking::{Command, EventId, GroupId, META_GROUP, MapCommand, MapSuccess, NodeInfo, RegionId, Success};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use router::membership::{self, MembershipError};
use serde::Deserialize;
use serde_json::{Value, json};
use transport::booking_service::ManageOp;
use transport::replicas::GroupReplica;

use crate::extract::{ApiJson, ApiPath};
use crate::{ApiResult, AppState, Problem, parse_id};

fn role(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// The node hosting `replica` of this group, from the replica's membership.
fn node_of(replica: &GroupReplica, id: u64) -> Option<u64> {
    replica
        .raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .get_node(&id)
        .map(|n| n.node_id)
}

/// One replica's view of its group.
fn group_status(replica: &GroupReplica, with_members: bool) -> Value {
    let m = replica.raft.metrics().borrow_watched().clone();
    let index = |id: &Option<raft_store::LogId>| id.as_ref().map(|id| id.index);
    let mut status = json!({
        "group_id": replica.group_id,
        "replica_id": replica.replica_id,
        "state": role(m.state),
        "leader_replica": m.current_leader,
        "leader_node": m.current_leader.and_then(|l| node_of(replica, l)),
        "term": m.current_term,
        "last_log_index": m.last_log_index,
        "committed_index": index(&m.cluster_committed),
        "last_applied": index(&m.last_applied),
        "snapshot_index": index(&m.snapshot),
        "purged_index": index(&m.purged),
        "parked": replica.is_quiet(),
    });
    if with_members {
        let membership = m.membership_config.membership();
        let last = m.last_log_index.unwrap_or(0);
        let members: Vec<Value> = membership
            .nodes()
            .map(|(id, node)| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .map(|progress| progress.as_ref().map_or(0, |log_id| log_id.index));
                json!({
                    "replica_id": id,
                    "node_id": node.node_id,
                    "region": node.region,
                    "grpc_addr": node.grpc_addr,
                    "http_addr": node.http_addr,
                    "voter": membership.voter_ids().any(|v| v == *id),
                    // Known on the leader only.
                    "matched_index": matched,
                    "lag": matched.map(|index| last.saturating_sub(index)),
                })
            })
            .collect();
        status["members"] = json!(members);
    }
    status
}

/// `GET /health`: the metadata group's state at the top level (as before
/// there were many groups), whether this node is ready, and every group.
pub(crate) async fn health(State(state): State<AppState>) -> Json<Value> {
    let router = &state.router;
    let replicas = router.groups().list();
    // (map initialised, epoch, replicas expected here), read in place: health
    // is polled often and the map holds every placement.
    let node_id = router.node_id();
    let (initialised, epoch, expected) = router
        .with_local_map(|map| {
            (
                map.is_initialised(),
                map.epoch(),
                placed_on(map, node_id).count() + 1,
            )
        })
        .unwrap_or((false, 0, 1));
    let mut body = match replicas.iter().find(|r| r.group_id == booking::META_GROUP) {
        Some(meta) => {
            let m = meta.raft.metrics().borrow_watched().clone();
            json!({
                "node_id": router.node_id(),
                "state": role(m.state),
                "leader_id": m.current_leader,
                "term": m.current_term,
                "last_log_index": m.last_log_index,
                "last_applied": m.last_applied.as_ref().map(|id| id.index),
                "snapshot_index": m.snapshot.as_ref().map(|id| id.index),
                "purged_index": m.purged.as_ref().map(|id| id.index),
            })
        }
        None => json!({ "node_id": router.node_id(), "state": "starting", "term": 0 }),
    };
    let every_group_led = replicas
        .iter()
        .all(|r| r.raft.metrics().borrow_watched().current_leader.is_some());
    body["region"] = json!(router.region());
    body["map_epoch"] = json!(epoch);
    let clock = router.groups().clock().snapshot();
    body["clock"] = json!({
        "suspect": clock.suspect,
        "reason": clock.reason,
        "max_offset_ms": router.groups().clock().max_offset_ms(),
        // Each peer's clock minus this node's, measured on the liveness pings.
        "peer_offsets_ms": clock
            .offsets
            .iter()
            .map(|(peer, o)| (peer.to_string(), json!({ "offset_ms": o.offset_ms, "uncertainty_ms": o.uncertainty_ms })))
            .collect::<serde_json::Map<String, Value>>(),
    });
    body["ready"] = json!(initialised && replicas.len() == expected && every_group_led);
    body["groups"] = json!(
        replicas
            .iter()
            .map(|r| group_status(r, false))
            .collect::<Vec<_>>()
    );
    Json(body)
}

/// The groups (but the metadata group, on every node) that `map` places a
/// replica of on `node`.
fn placed_on(map: &booking::ClusterMap, node: u64) -> impl Iterator<Item = GroupId> + '_ {
    map.groups
        .keys()
        .copied()
        .filter(move |g| map.replica_on(*g, node).is_some())
}

/// How many committed entries a replica may have left to apply and still
/// count as caught up for `/readyz`: about a second of a busy group's writes,
/// far less than a restarted or lagging replica's backlog.
pub const READY_MAX_APPLY_LAG: u64 = 1_000;

/// `GET /livez`: the process is up and its HTTP server answers. Nothing
/// else is checked, on purpose: a live node that is not ready (a lost
/// quorum, a backlog to apply) is to be waited for, not restarted.
pub(crate) async fn livez(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "live", "node_id": state.router.node_id() }))
}

/// `GET /readyz`: whether this node can serve its share now. 200 when it
/// is; 503 `not_ready` naming every reason when not (see [`not_ready`]).
pub(crate) async fn readyz(State(state): State<AppState>) -> HttpResponse {
    let reasons = not_ready(&state);
    if reasons.is_empty() {
        return Json(json!({ "status": "ready", "node_id": state.router.node_id() })).into_response();
    }
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        format!(
            "this node cannot serve its share yet: {}; it becomes ready by itself once these clear \
             (a live node need not be restarted; /health shows each group)",
            reasons.join("; ")
        ),
    )
    .with("node_id", json!(state.router.node_id()))
    .with("reasons", json!(reasons))
    .into_response()
}

/// Why this node is not ready, or nothing: its copy of the cluster map is
/// initialised, it runs a replica of every group the map places on it, each
/// of them knows its leader and has applied all but [`READY_MAX_APPLY_LAG`]
/// of the entries it knows committed, and its clock agrees with its peers'.
pub(crate) fn not_ready(state: &AppState) -> Vec<String> {
    let router = &state.router;
    let node_id = router.node_id();
    let mut reasons = Vec::new();
    let replicas = router.groups().list();
    let placed = router
        .with_local_map(|map| {
            map.is_initialised()
                .then(|| placed_on(map, node_id).collect::<Vec<_>>())
        })
        .flatten();
    match placed {
        Some(placed) => {
            let missing: Vec<GroupId> = placed
                .into_iter()
                .chain([META_GROUP])
                .filter(|g| !replicas.iter().any(|r| r.group_id == *g))
                .collect();
            if !missing.is_empty() {
                reasons.push(format!(
                    "the replicas of groups {missing:?} have not started here"
                ));
            }
        }
        _ => reasons.push("this node's copy of the cluster map is not initialised".to_owned()),
    }
    for replica in &replicas {
        let metrics = replica.raft.metrics();
        let m = metrics.borrow_watched();
        if m.current_leader.is_none() {
            reasons.push(format!(
                "group {} has no leader (term {})",
                replica.group_id, m.current_term
            ));
            continue;
        }
        let committed = m.cluster_committed.as_ref().map_or(0, |id| id.index);
        let applied = m.last_applied.as_ref().map_or(0, |id| id.index);
        if committed.saturating_sub(applied) > READY_MAX_APPLY_LAG {
            reasons.push(format!(
                "group {}'s replica has applied {applied} of {committed} committed entries",
                replica.group_id
            ));
        }
    }
    let clock = router.groups().clock().snapshot();
    if clock.suspect {
        reasons.push(format!(
            "this node's clock is suspect{}",
            clock.reason.map(|r| format!(": {r}")).unwrap_or_default()
        ));
    }
    reasons
}

/// Reads one per-group gauge from a replica's Raft metrics.
type MetricReader = fn(&openraft::RaftMetrics<raft_store::TypeConfig>) -> u64;

/// Prometheus text exposition of this node's Raft and storage counters.
pub(crate) async fn metrics(State(state): State<AppState>) -> HttpResponse {
    use prometheus_client::metrics::counter::{ConstCounter, Counter};
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
    use prometheus_client::registry::Registry;
    use std::sync::atomic::Ordering::Relaxed;
    // Read at scrape time from the replicas, the store and the cache into a
    // registry of this scrape; the request metrics follow (`telemetry`).
    let replicas = state.router.groups().list();
    let snapshots: Vec<_> = replicas
        .iter()
        .map(|r| {
            (
                r.group_id,
                r.is_quiet(),
                r.raft.metrics().borrow_watched().clone(),
            )
        })
        .collect();
    let mut registry = Registry::default();
    let mut gauge = |name: &str, help: &str, value: u64| {
        registry.register(
            name,
            help,
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    };
    gauge(
        "boxoffice_groups_hosted",
        "Raft replicas this node runs",
        replicas.len() as u64,
    );
    let led = snapshots
        .iter()
        .filter(|(_, _, m)| m.state == ServerState::Leader)
        .count();
    gauge("boxoffice_groups_led", "Groups this node leads", led as u64);
    let parked = snapshots.iter().filter(|(_, quiet, _)| *quiet).count();
    gauge(
        "boxoffice_groups_parked",
        "Replicas whose timers are parked because their group is idle",
        parked as u64,
    );
    let clock = state.router.groups().clock().snapshot();
    gauge(
        "boxoffice_clock_suspect",
        "1 while this node's clock is beyond the maximum offset from its peers or just jumped: it stamps no write",
        u64::from(clock.suspect),
    );
    gauge(
        "boxoffice_clock_offset_max_ms",
        "The largest clock offset measured to a peer, in ms (either sign)",
        clock
            .offsets
            .iter()
            .map(|(_, o)| o.offset_ms.unsigned_abs())
            .max()
            .unwrap_or(0),
    );
    let cache = state.cache.stats();
    gauge(
        "boxoffice_read_cache_entries",
        "Answers in the read cache",
        cache.entries,
    );
    gauge(
        "boxoffice_read_cache_bytes",
        "Weight of the read cache in bytes",
        cache.bytes,
    );
    let wal = &state.wal_stats;
    let routed = state.router.route_stats();
    for (name, help, value) in [
        (
            "boxoffice_wal_syncs",
            "WAL syncs by the group-commit thread",
            wal.syncs.load(Relaxed),
        ),
        (
            "boxoffice_wal_appends",
            "Log appends made durable",
            wal.appends.load(Relaxed),
        ),
        (
            "boxoffice_log_entries_written",
            "Log entries appended",
            wal.entries.load(Relaxed),
        ),
        (
            "boxoffice_wal_sync_microseconds",
            "Time spent in WAL syncs",
            wal.sync_micros.load(Relaxed),
        ),
        (
            "boxoffice_read_cache_hits",
            "Searches and seat maps answered from the read cache",
            cache.hits,
        ),
        (
            "boxoffice_read_cache_misses",
            "Cacheable reads rendered afresh",
            cache.misses,
        ),
        (
            "boxoffice_read_cache_evictions",
            "Cached answers dropped for size or age",
            cache.evictions,
        ),
        (
            "boxoffice_router_attempts",
            "Requests' attempts sent to a replica believed to lead a group (this node's or a peer's)",
            routed.attempts,
        ),
        (
            "boxoffice_router_retries",
            "Times a request went round again: after an attempt that did not settle it, or with no replica to try",
            routed.retries,
        ),
        (
            "boxoffice_router_redirects",
            "Retries sent straight to the leader a peer named",
            routed.redirects,
        ),
        (
            "boxoffice_router_outcome_unknown",
            "Writes given up at the deadline with an attempt that may have taken effect",
            routed.outcome_unknown,
        ),
        (
            "boxoffice_router_unavailable",
            "Requests given up at the deadline certainly without effect",
            routed.unavailable,
        ),
    ] {
        registry.register(name, help, ConstCounter::new(value));
    }
    registry.register(
        "boxoffice_wal_sync_duration_seconds",
        "Time of each WAL sync by the group-commit thread",
        wal.sync_seconds.clone(),
    );
    registry.register(
        "boxoffice_wal_appends_per_sync",
        "Log appends each WAL sync made durable (the group commit's batching)",
        wal.appends_per_sync.clone(),
    );
    // Per group, labelled by group; the lag of each member only where this
    // node leads (only a leader knows what its followers matched).
    let per_group: [(&str, &str, MetricReader); 5] = [
        ("boxoffice_raft_term", "Current Raft term", |m| m.current_term),
        (
            "boxoffice_raft_is_leader",
            "1 if this node leads the group",
            |m| u64::from(m.state == ServerState::Leader),
        ),
        ("boxoffice_raft_last_log_index", "Last log index", |m| {
            m.last_log_index.unwrap_or(0)
        }),
        (
            "boxoffice_raft_committed_index",
            "Last index this replica knows committed",
            |m| m.cluster_committed.as_ref().map_or(0, |id| id.index),
        ),
        ("boxoffice_raft_applied_index", "Last applied log index", |m| {
            m.last_applied.as_ref().map_or(0, |id| id.index)
        }),
    ];
    for (name, help, read) in per_group {
        let family = Family::<GroupLabel, Gauge>::default();
        for (group, _, m) in &snapshots {
            family
                .get_or_create(&GroupLabel { group: *group })
                .set(i64::try_from(read(m)).unwrap_or(i64::MAX));
        }
        registry.register(name, help, family);
    }
    let parked = Family::<GroupLabel, Gauge>::default();
    let lag = Family::<MemberLabel, Gauge>::default();
    let lag_ms = Family::<MemberLabel, Gauge>::default();
    for (group, quiet, m) in &snapshots {
        parked
            .get_or_create(&GroupLabel { group: *group })
            .set(i64::from(*quiet));
        let last = m.last_log_index.unwrap_or(0);
        for (replica, matched) in m.replication.iter().flat_map(|r| r.iter()) {
            let matched = matched.as_ref().map_or(0, |id| id.index);
            let member = MemberLabel {
                group: *group,
                replica: *replica,
            };
            let behind = last.saturating_sub(matched);
            lag.get_or_create(&member)
                .set(i64::try_from(behind).unwrap_or(i64::MAX));
            // A member that matched everything is not behind; one that has
            // not is behind by at least the time since it last answered.
            let acked = m
                .heartbeat
                .as_ref()
                .and_then(|h| h.get(replica).cloned().flatten());
            let ms = match (behind, acked) {
                (0, _) => 0,
                (_, Some(at)) => openraft::Instant::elapsed(&*at).as_millis(),
                (_, None) => continue,
            };
            lag_ms
                .get_or_create(&member)
                .set(i64::try_from(ms).unwrap_or(i64::MAX));
        }
    }
    registry.register(
        "boxoffice_raft_replica_lag_ms",
        "On the group's leader: 0 for a member that matched its whole log, else the time since the member last acknowledged",
        lag_ms,
    );
    group_stats(&mut registry, &replicas);
    let refused = Family::<Refusal, Counter>::default();
    for (action, limit, n) in state.limits.refusals() {
        refused.get_or_create(&Refusal { action, limit }).inc_by(n);
    }
    registry.register(
        "boxoffice_rate_limited",
        "Requests refused with 429 by this node's rate limits, by action (hold, checkout) and limit (account, ip)",
        refused,
    );
    registry.register(
        "boxoffice_raft_parked",
        "1 while this replica's timers are parked because its group is idle",
        parked,
    );
    registry.register(
        "boxoffice_raft_replica_lag_entries",
        "On the group's leader: entries of its log a member has not matched yet",
        lag,
    );
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    state.telemetry.encode(&mut out);
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct GroupLabel {
    group: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct Refusal {
    action: &'static str,
    limit: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct GroupOutcome {
    group: u64,
    outcome: &'static str,
}

/// What each replica's state machine did (`raft_store::ReplicaStats`). The
/// booking, payment and notice counts are the rules' and every replica of a
/// group applies the same log, so each counts the same: a dashboard takes
/// `max by (group, outcome)` across nodes, not the sum.
fn group_stats(registry: &mut prometheus_client::registry::Registry, replicas: &[GroupReplica]) {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use std::sync::atomic::Ordering::Relaxed;
    let bookings = Family::<GroupOutcome, Counter>::default();
    let payments = Family::<GroupOutcome, Counter>::default();
    let notices = Family::<GroupOutcome, Counter>::default();
    let leaderships = Family::<GroupLabel, Counter>::default();
    let built = Family::<GroupLabel, Counter>::default();
    let installed = Family::<GroupLabel, Counter>::default();
    let mut histograms = GroupHistograms::default();
    for replica in replicas {
        let group = replica.group_id;
        let stats = replica.state.stats();
        let tally = stats.tally();
        for (family, counts) in [
            (&bookings, tally.bookings().to_vec()),
            (&payments, tally.payment_steps().collect()),
            (&notices, tally.notices().to_vec()),
        ] {
            for (outcome, n) in counts {
                family.get_or_create(&GroupOutcome { group, outcome }).inc_by(n);
            }
        }
        for (family, counter) in [
            (&leaderships, &stats.leaderships),
            (&built, &stats.snapshots_built),
            (&installed, &stats.snapshots_installed),
        ] {
            family
                .get_or_create(&GroupLabel { group })
                .inc_by(counter.load(Relaxed));
        }
        histograms.0.push((group, stats.clone()));
    }
    registry.register(
        "boxoffice_bookings",
        "Booking outcomes applied by this replica: held, conflict (places taken), expired, released, confirmed, cancelled, checked_in",
        bookings,
    );
    registry.register(
        "boxoffice_payments",
        "Payments entering each status (pending: started; succeeded, failed, refund_pending, refunded)",
        payments,
    );
    registry.register(
        "boxoffice_notices",
        "Notice delivery outcomes recorded: delivered, retried (a failed attempt to be tried again), failed (given up)",
        notices,
    );
    registry.register(
        "boxoffice_raft_leader_changes",
        "Leaderships that committed their first entry, as this replica applied them",
        leaderships,
    );
    registry.register("boxoffice_snapshots_built", "Snapshots this replica built", built);
    registry.register(
        "boxoffice_snapshots_installed",
        "Snapshots this replica installed from its leader",
        installed,
    );
    registry.register_collector(Box::new(histograms));
}

/// The per-group histograms, which live in each replica's stats: a collector
/// writes them under one descriptor each, labelled by group.
#[derive(Debug, Default)]
struct GroupHistograms(Vec<(u64, std::sync::Arc<raft_store::ReplicaStats>)>);

impl prometheus_client::collector::Collector for GroupHistograms {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::histogram::Histogram;
        type Pick = fn(&raft_store::ReplicaStats) -> &Histogram;
        let described: [(&str, &str, Pick); 2] = [
            (
                "boxoffice_raft_apply_duration_seconds",
                "Time to apply each batch of committed entries, by group",
                |s| &s.apply_seconds,
            ),
            (
                "boxoffice_raft_entries_per_apply",
                "Committed entries applied in each batch, by group: the proposals Raft carried together",
                |s| &s.entries_per_apply,
            ),
        ];
        for (name, help, pick) in described {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (group, stats) in &self.0 {
                let label = GroupLabel { group: *group };
                pick(stats).encode(family.encode_family(&label)?)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct MemberLabel {
    group: u64,
    replica: u64,
}

/// `GET /v1/cluster` (and `/v1/admin/cluster`): the map and every local group.
/// `GET /v1/cluster`: the map and this node's replicas. Node-to-node (gRPC)
/// addresses are internal: only operators see them.
pub(crate) async fn cluster(State(state): State<AppState>, caller: crate::Caller) -> Json<Value> {
    Json(cluster_view(&state, caller.is_operator()))
}

fn cluster_view(state: &AppState, internal: bool) -> Value {
    let router = &state.router;
    let map = router.local_map().unwrap_or_default();
    let nodes: Vec<Value> = map
        .nodes
        .iter()
        .map(|(id, n)| {
            let mut node = json!({ "node_id": id, "region": n.region, "http_addr": n.http_addr });
            if internal {
                node["grpc_addr"] = json!(n.grpc_addr);
            }
            node
        })
        .collect();
    let groups: Vec<Value> = map
        .groups
        .iter()
        .map(|(id, g)| {
            json!({
                "group_id": id,
                "home_region": g.home_region,
                "voters": g.voters.iter().map(|(r, n)| json!({ "replica_id": r, "node_id": n })).collect::<Vec<_>>(),
                "read_replicas": map
                    .read_replicas_of(*id)
                    .map(|(r, n)| json!({ "replica_id": r, "node_id": n }))
                    .collect::<Vec<_>>(),
                "dedicated_to": g.dedicated_to,
                "survive": if map.survive_region.contains(id) { "region" } else { "node" },
                "events": g.events,
            })
        })
        .collect();
    let local: Vec<Value> = router
        .groups()
        .list()
        .iter()
        .map(|r| {
            let mut status = group_status(r, true);
            if !internal && let Some(members) = status["members"].as_array_mut() {
                for member in members {
                    if let Some(member) = member.as_object_mut() {
                        member.remove("grpc_addr");
                    }
                }
            }
            status
        })
        .collect();
    json!({
        "node_id": router.node_id(),
        "region": router.region(),
        "map_epoch": map.epoch(),
        "nodes": nodes,
        "groups": groups,
        "read_replicas": map.policy().read_replicas,
        "events_placed": map.placements.len(),
        "replicas": local,
    })
}

/// Checks `Authorization: Bearer <admin_token>`.
pub(crate) fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
    let Some(expected) = state.admin_token.as_deref() else {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "this node has no admin_token configured",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare without an early exit so timing does not reveal a prefix.
    let same_len = given.len() == expected.len();
    let diff = given
        .bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if same_len && diff == 0 {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer token is required",
        ))
    }
}

pub(crate) async fn admin_cluster(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    require_admin(&state, &headers)?;
    Ok(Json(cluster_view(&state, true)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateGroupBody {
    home_region: RegionId,
}

pub(crate) async fn create_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateGroupBody>,
) -> ApiResult {
    require_admin(&state, &headers)?;
    let id = crate::scoped_request_id(&headers, "admin-token")?;
    let command = Command::Map(MapCommand::CreateGroup {
        home_region: body.home_region,
    });
    match state.router.submit(id, command).await?? {
        Success::Map(MapSuccess::GroupCreated { group_id, epoch }) => Ok((
            StatusCode::CREATED,
            Json(json!({ "group_id": group_id, "map_epoch": epoch })),
        )
            .into_response()),
        other => Err(Problem::unexpected(&other)),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaceEventBody {
    home_region: RegionId,
    #[serde(default)]
    dedicated: bool,
}

/// Places an event before it is created (for example on a dedicated group
/// for a big on-sale). A placed event keeps its group.
pub(crate) async fn place_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_event): ApiPath<String>,
    ApiJson(body): ApiJson<PlaceEventBody>,
) -> ApiResult {
    require_admin(&state, &headers)?;
    let id = crate::scoped_request_id(&headers, "admin-token")?;
    let event_id = EventId(parse_id("event_id", &raw_event)?);
    let command = Command::Map(MapCommand::PlaceEvent {
        event_id,
        home_region: body.home_region,
        dedicated: body.dedicated,
    });
    match state.router.submit(id, command).await?? {
        Success::Map(MapSuccess::Placed {
            event_id,
            group_id,
            epoch,
        }) => Ok(
            Json(json!({ "event_id": event_id, "group_id": group_id, "map_epoch": epoch })).into_response(),
        ),
        other => Err(Problem::unexpected(&other)),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferBody {
    to_node: u64,
}

/// Hands a group's leadership to its replica on `to_node`, through the
/// group's current leader (any node can be asked). Waits up to 5 s to see
/// the new leader take over when this node has a replica of the group.
pub(crate) async fn transfer_leader(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_group): ApiPath<String>,
    ApiJson(body): ApiJson<TransferBody>,
) -> ApiResult {
    require_admin(&state, &headers)?;
    let group_id: GroupId = parse_id("group_id", &raw_group)?;
    let router = &state.router;
    let target = if group_id == META_GROUP {
        // A node's metadata replica has the node's id.
        router
            .with_local_map(|m| m.nodes.contains_key(&body.to_node))
            .filter(|known| *known)
            .map(|_| body.to_node)
    } else {
        let voter = router.with_local_map(|map| {
            let group = map.groups.get(&group_id)?;
            Some(
                group
                    .voters
                    .iter()
                    .find(|(_, n)| **n == body.to_node)
                    .map(|(r, _)| *r),
            )
        });
        voter
            .flatten()
            .ok_or_else(|| Problem::from(booking::Rejection::UnknownGroup { group_id }))?
    };
    let target = target.ok_or_else(|| {
        Problem::invalid(format!(
            "node {} has no voting replica of group {group_id}",
            body.to_node
        ))
    })?;
    router
        .manage(group_id, ManageOp::TransferLeader { to: target })
        .await?
        .map_err(|reason| Problem::new(StatusCode::CONFLICT, "would_lose_quorum", reason))?;
    if let Some(replica) = router.groups().get(group_id) {
        let mut metrics = replica.raft.metrics();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while metrics.borrow_watched().current_leader != Some(target) {
            if !matches!(
                tokio::time::timeout_at(deadline, metrics.changed()).await,
                Ok(Ok(()))
            ) {
                return Err(Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "transfer_pending",
                    "leadership was handed over but the new leader is not confirmed yet",
                ));
            }
        }
    }
    Ok(
        Json(json!({ "group_id": group_id, "leader_node": body.to_node, "leader_replica": target }))
            .into_response(),
    )
}

impl From<MembershipError> for Problem {
    fn from(error: MembershipError) -> Self {
        match error {
            MembershipError::Route(route) => route.into(),
            MembershipError::Rejected(rejection) => rejection.into(),
            MembershipError::Refused { group_id, reason } => {
                Problem::new(StatusCode::CONFLICT, "would_lose_quorum", reason)
                    .with("group_id", json!(group_id))
            }
            MembershipError::Unexpected(what) => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", what)
            }
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddNodeBody {
    node_id: u64,
    region: RegionId,
    grpc_addr: String,
    http_addr: String,
}

/// Adds a running, not bootstrapped node: it joins the metadata group and
/// takes over its share of replicas. Answers the moves made.
pub(crate) async fn add_node(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AddNodeBody>,
) -> ApiResult {
    require_admin(&state, &headers)?;
    for (field, addr) in [("grpc_addr", &body.grpc_addr), ("http_addr", &body.http_addr)] {
        addr.parse::<std::net::SocketAddr>()
            .map_err(|_| Problem::invalid(format!("{field} must be host:port with an IP, got {addr:?}")))?;
    }
    let info = NodeInfo {
        region: body.region,
        grpc_addr: body.grpc_addr,
        http_addr: body.http_addr,
        draining: false,
    };
    let moves = membership::add_node(&state.router, body.node_id, info).await?;
    Ok(Json(json!({ "node_id": body.node_id, "moves": moves })).into_response())
}

/// Moves every replica off a node and removes it from the cluster.
pub(crate) async fn remove_node(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_node): ApiPath<String>,
) -> ApiResult {
    require_admin(&state, &headers)?;
    let node_id = parse_id("node_id", &raw_node)?;
    let moves = membership::remove_node(&state.router, node_id).await?;
    Ok(Json(json!({ "node_id": node_id, "removed": true, "moves": moves })).into_response())
}
