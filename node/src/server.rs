//! Running one node: storage, Raft groups, the gRPC and HTTP servers, and shutdown.
//!
//! Start order matters: the node's database opens first, then its replica of
//! the metadata group and every data-group replica its stored cluster map
//! assigns to it; the gRPC server goes up so peers can reach them; then the
//! cluster is bootstrapped (if asked and if storage is empty) and the cluster
//! map initialised; and only then does HTTP accept clients. Shutdown runs the
//! other way: HTTP and gRPC stop taking requests, background tasks end, then
//! every replica shuts down, which releases RocksDB.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use booking::{ClusterMap, Command, MapCommand, MapSuccess, NodeInfo, Rejection, RequestId, Success};
use openraft::{Config, SnapshotPolicy};
use raft_store::{NodeAddr, Raft};
use region_config::{MemberConfig, NodeConfig};
use router::{RetryPolicy, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use transport::booking_service::BookingService;
use transport::channels::ChannelPool;
use transport::raft_service::RaftService;
use transport::replicas::Groups;

use crate::replicas::ReplicaManager;

/// Concurrent gRPC streams allowed on one peer connection.
const MAX_STREAMS_PER_PEER: u32 = 65_536;
/// Availability changes kept per watched event, and per live client, for
/// resumes and slow readers (see `raft_store::feed`).
const FEED_BUFFER: usize = 1024;

/// Which kind of group an openraft configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Metadata,
    Data,
}

/// The openraft settings a node runs a kind of group with, from its config.
/// The API's rate limits from the node config.
fn limits_of(config: &region_config::LimitsConfig) -> api::limits::LimitConfig {
    let rate = |r: Option<region_config::RateLimit>| {
        r.map(|r| api::limits::Rate {
            per_minute: r.per_minute,
            burst: r.burst,
        })
    };
    api::limits::LimitConfig {
        holds_per_account: rate(config.holds_per_account),
        holds_per_ip: rate(config.holds_per_ip),
        checkouts_per_account: rate(config.checkouts_per_account),
        checkouts_per_ip: rate(config.checkouts_per_ip),
    }
}

pub fn raft_config(config: &NodeConfig, kind: GroupKind) -> anyhow::Result<Config> {
    let tuning = &config.raft;
    let (heartbeat, min, max) = match kind {
        GroupKind::Metadata => (
            tuning.heartbeat_interval_ms,
            tuning.election_timeout_min_ms,
            tuning.election_timeout_max_ms,
        ),
        GroupKind::Data => (
            tuning.group_heartbeat_interval_ms,
            tuning.group_election_timeout_min_ms,
            tuning.group_election_timeout_max_ms,
        ),
    };
    let raft = Config {
        cluster_name: "boxoffice".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: min,
        election_timeout_max: max,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_after_logs),
        max_in_snapshot_log_to_keep: tuning.logs_to_keep_after_snapshot,
        // Large append batches amortise one WAL sync over many bookings.
        max_payload_entries: 1024,
        // Data replicas start parked and wake in waves (`transport::quiescence`);
        // the metadata group always ticks.
        enable_tick: kind == GroupKind::Metadata,
        ..Default::default()
    };
    Ok(raft.validate()?)
}

fn node_addr(member: &MemberConfig) -> NodeAddr {
    NodeAddr {
        node_id: member.node_id,
        region: member.region.to_string(),
        grpc_addr: member.grpc_addr.to_string(),
        http_addr: member.http_addr.to_string(),
    }
}

/// Runs a node until `shutdown` is cancelled.
pub async fn run(config: NodeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let node_id = config.node_id;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    for weak in config.weak_secrets() {
        // Allowed only by `allow_insecure_demo_secrets` (config validation
        // refuses them otherwise): say so on every start.
        tracing::warn!("INSECURE: {weak}; this node must not hold real customers' data");
    }
    let tls_files = config
        .tls
        .as_ref()
        .context("[tls] is required for node-to-node gRPC")?;
    let tls = transport::tls::ClusterTls::load(
        &tls_files.ca_cert,
        &tls_files.cert,
        &tls_files.key,
        region_config::CLUSTER_TLS_NAME,
    )
    .context("loading the node's TLS certificates")?;
    let store = raft_store::open(&config.data_dir)?;
    let wal_stats = store.wal_stats().clone();

    let (wan, disturbance) = simulated_wan(&config);
    let pool = ChannelPool::new(tls.client.clone()).with_wan(wan);
    let groups = Groups::new(transport::clock::ClockGuard::new(config.raft.max_clock_offset_ms));
    let feed = raft_store::FeedHub::new(FEED_BUFFER);
    let replicas = ReplicaManager::new(
        node_id,
        store,
        pool.clone(),
        groups.clone(),
        Arc::new(raft_config(&config, GroupKind::Metadata)?),
        Arc::new(raft_config(&config, GroupKind::Data)?),
        feed.clone(),
    );
    let meta = replicas.start_meta().await?;
    // Every data replica the stored map gives this node, before peers call.
    let stored_map = meta.state.read().cluster_map().clone();
    replicas.reconcile(&stored_map).await?;

    let router = Arc::new(Router::new(
        node_id,
        config.region.clone(),
        groups.clone(),
        pool.clone(),
        RetryPolicy::default(),
    ));

    let grpc_listener = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;

    let tasks = tokio_util::task::TaskTracker::new();
    if let Some((disturbance, file)) = disturbance {
        let stop = shutdown.clone();
        tasks.spawn(disturbance.follow(file, async move { stop.cancelled().await }));
    }
    let grpc_shutdown = shutdown.clone();
    // One HTTP/2 connection per peer carries every group's traffic: allow far
    // more concurrent streams than hyper's default of 200, and do not treat
    // the cancelled RPCs of a busy moment (timeouts) as an attack.
    // Mutual TLS: a caller without a certificate from the cluster CA is
    // refused in the handshake, before any RPC reaches a group.
    let grpc = tonic::transport::Server::builder()
        .tls_config(tls.server.clone())
        .context("the node's TLS certificate or key is unusable")?
        .max_concurrent_streams(Some(MAX_STREAMS_PER_PEER))
        .http2_max_pending_accept_reset_streams(Some(MAX_STREAMS_PER_PEER as usize))
        .http2_max_local_error_reset_streams(Some(MAX_STREAMS_PER_PEER as usize))
        .add_service(RaftService::server(groups.clone()))
        .add_service(BookingService::server(router.clone()))
        // TCP_NODELAY on every accepted connection: the builder's
        // `tcp_nodelay` applies only to listeners tonic binds itself, and
        // without it Nagle holds an answer's last short segment until the
        // caller's delayed ACK (about 40 ms).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            async move { grpc_shutdown.cancelled().await },
        );
    let grpc_task = tasks.spawn(grpc);

    if config.bootstrap {
        bootstrap(&meta.raft, &config).await?;
        tasks.spawn(initialise_map(router.clone(), config.clone(), shutdown.clone()));
    }
    let region_table = config.regions.iter().map(|r| (r.id.clone(), r.info())).collect();
    tasks.spawn(crate::regions::seed(
        router.clone(),
        region_table,
        shutdown.clone(),
    ));
    tasks.spawn(replicas.clone().run(Some(stored_map.epoch()), shutdown.clone()));
    tasks.spawn(crate::read_replicas::run(
        router.clone(),
        config.layout.read_replicas,
        shutdown.clone(),
    ));
    tasks.spawn(router::run_expiry_ticker(router.clone(), shutdown.clone()));
    let fault = crate::faults::FirstFault::default();
    tasks.spawn(crate::faults::watch(
        groups.clone(),
        fault.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(crate::liveness::run_liveness(
        node_id,
        groups.clone(),
        pool.clone(),
        Duration::from_millis(config.raft.node_down_after_ms),
        closed_time_lease(&config.raft),
        shutdown.clone(),
    ));
    tasks.spawn(crate::home_leaders::run(
        groups.clone(),
        config.region.clone(),
        shutdown.clone(),
    ));
    if config.raft.quiesce_after_ms > 0 {
        tasks.spawn(crate::liveness::run_quiescer(
            groups.clone(),
            pool.clone(),
            Duration::from_millis(config.raft.quiesce_after_ms),
            shutdown.clone(),
        ));
    }

    let payments = config.payments.as_ref().map(|p| {
        let simulated = Arc::new(api::payments::SimulatedProvider::new(
            p.webhook_secret.as_bytes(),
            p.decline_rate_pct,
            Duration::from_millis(p.latency_ms),
        ));
        api::payments::Payments {
            provider: simulated.clone(),
            webhook_secret: Arc::from(p.webhook_secret.as_bytes()),
            callback_url: format!("http://{}/v1/payments/webhook", config.http_addr),
            simulated: Some(simulated),
        }
    });
    if let (Some(payments), Some(payments_config)) = (&payments, &config.payments) {
        tasks.spawn(crate::payments::run(
            groups.clone(),
            router.clone(),
            payments.clone(),
            Duration::from_millis(payments_config.retry_after_ms),
            shutdown.clone(),
        ));
    }
    let channels = crate::notifications::Channels::new(&config.notifications)?;
    tasks.spawn(crate::notifications::run(
        groups.clone(),
        router.clone(),
        channels.clone(),
        shutdown.clone(),
    ));
    let app = api::app(api::AppState {
        router: router.clone(),
        wal_stats,
        admin_token: config.admin_token.clone().map(Arc::from),
        auth: config.auth.as_ref().map(|auth| {
            Arc::new(api::AuthKeys::new(
                auth.jwt_secret.as_bytes(),
                Duration::from_secs(auth.access_ttl_secs),
                Duration::from_secs(auth.refresh_ttl_secs),
            ))
        }),
        tickets: match &config.auth {
            Some(auth) => Some(Arc::new(api::TicketSigner::from_seed(&auth.ticket_seed()?))),
            None => None,
        },
        payments: payments.clone(),
        limits: Arc::new(api::limits::RateLimits::new(&limits_of(&config.limits))),
        allow_private_webhooks: config.notifications.allow_private_webhooks,
        codes: Some(Arc::new(channels)),
        logins: Arc::new(api::logins::Logins::new(&api::logins::LoginConfig {
            failures_per_account: config.login.failures_per_account,
            failures_per_ip: config.login.failures_per_ip,
            window: Duration::from_secs(config.login.failure_window_secs),
            max_concurrent_hashes: config.login.max_concurrent_hashes,
        })),
        feed: Some(feed),
        cache: Arc::new(api::cache::ReadCache::new(config.http.read_cache_bytes)),
        telemetry: Default::default(),
    });
    let http_shutdown = shutdown.clone();
    tracing::info!(node_id, http = %config.http_addr, grpc = %config.grpc_addr, "node serving");
    let http_limits = api::serve::ServeLimits {
        header_read_timeout: Duration::from_millis(config.http.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(config.http.idle_timeout_ms),
        request_timeout: Duration::from_millis(config.http.request_timeout_ms),
        max_connections: config.http.max_connections as usize,
    };
    let http_result = api::serve::serve(http_listener, app, http_limits, async move {
        http_shutdown.cancelled().await
    })
    .await;

    tasks.close();
    if tokio::time::timeout(Duration::from_secs(10), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop within 10 s");
    }
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_millis(1), grpc_task).await {
        tracing::warn!(error = %e, "gRPC server ended with an error");
    }
    drop(router);
    replicas.shutdown_all().await;
    if let Some(fault) = fault.get() {
        tracing::error!(node_id, %fault, "node stopped on a fault");
        anyhow::bail!("node {node_id} stopped on a fault: {fault}");
    }
    tracing::info!(node_id, "node stopped");
    http_result.context("HTTP server")
}

/// The simulated WAN of `[wan]` (empty unless configured): a link to each
/// member in another region; with the failpoints armed, also the disturbance
/// of every link and the file it follows (`transport::wan`).
fn simulated_wan(
    config: &NodeConfig,
) -> (
    transport::wan::Wan,
    Option<(Arc<transport::wan::Disturbance>, std::path::PathBuf)>,
) {
    let links: std::collections::HashMap<String, transport::wan::Link> = config
        .members
        .iter()
        .map(|m| {
            let (one_way_ms, loss_pct) = config.wan.link(&config.region, &m.region);
            let link = transport::wan::Link {
                one_way: Duration::from_millis(one_way_ms),
                loss_pct,
            };
            (m.grpc_addr.to_string(), link)
        })
        .collect();
    let wan = transport::wan::Wan::new(links);
    if config.wan != region_config::WanConfig::default() {
        tracing::warn!(?config.wan, "node-to-node calls cross a SIMULATED wide-area network");
    }
    match std::env::var_os(raft_store::disk_health::FAILPOINTS_ENV) {
        Some(dir) => {
            let disturbance = Arc::new(transport::wan::Disturbance::default());
            let file = std::path::PathBuf::from(dir).join(transport::wan::WAN_FAILPOINT);
            (wan.disturbed(disturbance.clone()), Some((disturbance, file)))
        }
        None => (wan, None),
    }
}

/// Initialises the metadata group from the configured members if this
/// node's storage is empty. Every bootstrapping node computes the same
/// voters (`booking::meta_voters`: up to five, spread over the regions),
/// which openraft accepts from any number of them; a member that does not
/// vote waits for the leader to add it as a learner
/// (`read_replicas::meta_membership`).
async fn bootstrap(raft: &Raft, config: &NodeConfig) -> anyhow::Result<()> {
    if raft.is_initialized().await? {
        return Ok(());
    }
    let voters = booking::meta_voters::meta_voters(
        &Default::default(),
        config.members.iter().map(|m| (m.node_id, m.region.as_str())),
    );
    if !voters.contains(&config.node_id) {
        tracing::info!(?voters, "this node follows the metadata group as a learner");
        return Ok(());
    }
    let members: BTreeMap<u64, NodeAddr> = config
        .members
        .iter()
        .filter(|m| voters.contains(&m.node_id))
        .map(|m| (m.node_id, node_addr(m)))
        .collect();
    match raft.initialize(members).await {
        Ok(()) => tracing::info!("cluster initialised"),
        // Another member initialised first and already reached us: fine.
        Err(e) => tracing::info!(error = %e, "cluster already initialised"),
    }
    Ok(())
}

/// Writes the first cluster map (the members and the configured data groups)
/// once the metadata group has a leader. Every bootstrapping node tries with
/// the same request id, so only one map is ever written; a map that already
/// exists ends the task too.
async fn initialise_map(router: Arc<Router>, config: NodeConfig, shutdown: CancellationToken) {
    let nodes: Vec<(u64, NodeInfo)> = config
        .members
        .iter()
        .map(|m| {
            (
                m.node_id,
                NodeInfo {
                    region: m.region.clone(),
                    grpc_addr: m.grpc_addr.to_string(),
                    http_addr: m.http_addr.to_string(),
                    draining: false,
                },
            )
        })
        .collect();
    let replication = config
        .layout
        .replication
        .min(u8::try_from(nodes.len()).unwrap_or(u8::MAX));
    let command = Command::Map(MapCommand::Bootstrap {
        nodes,
        groups_per_region: config.layout.groups_per_region,
        replication,
        policy: booking::PlacementPolicy {
            read_replicas: config.layout.read_replicas,
        },
    });
    let request_id = RequestId::new("cluster-map-initialise").expect("a valid id");
    loop {
        if router.with_local_map(ClusterMap::is_initialised) == Some(true) {
            return;
        }
        match router.submit(request_id.clone(), command.clone()).await {
            Ok(Ok(Success::Map(MapSuccess::Initialised { epoch, groups }))) => {
                tracing::info!(epoch, groups = groups.len(), "cluster map initialised");
                return;
            }
            Ok(Err(Rejection::MapInitialised)) => return,
            Ok(Err(Rejection::IdempotencyKeyReused)) => {
                // Another founding node initialised the map first, from a
                // member list or layout that differs from this node's.
                tracing::warn!(
                    "the cluster map was initialised by another node from a different member list or layout; \
                     compare the nodes' [[members]] and [layout]"
                );
                return;
            }
            Ok(other) => {
                tracing::error!(?other, "the cluster map cannot be initialised; fix the config");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "cluster map not initialised yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// The leases closed-time claims need (`transport::quiescence::Leases`).
fn closed_time_lease(raft: &region_config::RaftTuning) -> transport::quiescence::Leases {
    let half = |ms: u64| Duration::from_millis(ms / 2);
    transport::quiescence::Leases {
        meta: half(raft.election_timeout_min_ms),
        // A voter grants no rival its vote before the lease (the maximum)
        // plus the shortest timeout has passed since it last heard the leader.
        data: half(raft.group_election_timeout_min_ms + raft.group_election_timeout_max_ms),
        parked: half(raft.node_down_after_ms),
    }
}
