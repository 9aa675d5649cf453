//! Running one node: storage, Raft, the gRPC and HTTP servers, and shutdown.
//!
//! Start order matters: the Raft replica is built on storage first, the gRPC
//! server goes up so peers can reach it, then the cluster is bootstrapped (if
//! asked and if storage is empty), and only then does HTTP accept clients.
//! Shutdown runs the other way: HTTP and gRPC stop taking requests, background
//! tasks end, then Raft shuts down, which releases RocksDB.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::{Config, SnapshotPolicy};
use raft_store::{NodeAddr, Raft};
use region_config::{MemberConfig, NodeConfig};
use router::{RetryPolicy, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use transport::BOOKING_GROUP;
use transport::booking_service::BookingService;
use transport::channels::ChannelPool;
use transport::network::NetworkFactory;
use transport::raft_service::{GroupReplica, Groups, RaftService};

/// The openraft settings a node runs with, from its config.
pub fn raft_config(config: &NodeConfig) -> anyhow::Result<Config> {
    let tuning = &config.raft;
    let raft = Config {
        cluster_name: "boxoffice".into(),
        heartbeat_interval: tuning.heartbeat_interval_ms,
        election_timeout_min: tuning.election_timeout_min_ms,
        election_timeout_max: tuning.election_timeout_max_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_after_logs),
        max_in_snapshot_log_to_keep: tuning.logs_to_keep_after_snapshot,
        // Large append batches amortise one WAL sync over many bookings.
        max_payload_entries: 1024,
        ..Default::default()
    };
    Ok(raft.validate()?)
}

fn node_addr(member: &MemberConfig) -> NodeAddr {
    NodeAddr {
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
    let group_dir = config.data_dir.join(format!("group-{BOOKING_GROUP}"));
    let store = raft_store::open(&group_dir)?;
    let shared = store.state_machine.shared();
    let wal_stats = store.wal_stats.clone();
    let snapshot_dir = store.state_machine.snapshot_dir();

    let pool = ChannelPool::new();
    let network = NetworkFactory::new(BOOKING_GROUP, node_id, pool.clone());
    let raft = Raft::new(
        node_id,
        Arc::new(raft_config(&config)?),
        network,
        store.log,
        store.state_machine,
    )
    .await
    .context("starting the Raft replica")?;
    let groups = Groups::default();
    groups.insert(
        BOOKING_GROUP,
        GroupReplica {
            raft: raft.clone(),
            snapshot_dir,
        },
    );
    let router = Arc::new(Router::new(
        node_id,
        raft.clone(),
        shared,
        pool,
        RetryPolicy::default(),
    ));

    let grpc_listener = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;

    let tasks = tokio_util::task::TaskTracker::new();
    let grpc_shutdown = shutdown.clone();
    let grpc = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(RaftService::server(groups))
        .add_service(BookingService::server(router.clone()))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            async move { grpc_shutdown.cancelled().await },
        );
    let grpc_task = tasks.spawn(grpc);

    if config.bootstrap {
        bootstrap(&raft, &config).await?;
    }

    tasks.spawn(router::run_expiry_ticker(router.clone(), shutdown.clone()));

    let app = api::app(api::AppState {
        router: router.clone(),
        wal_stats,
    });
    let http_shutdown = shutdown.clone();
    tracing::info!(node_id, http = %config.http_addr, grpc = %config.grpc_addr, "node serving");
    let http = axum::serve(
        http_listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { http_shutdown.cancelled().await });
    let http_result = http.await;

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
    raft.shutdown().await.context("shutting Raft down")?;
    tracing::info!(node_id, "node stopped");
    http_result.context("HTTP server")
}

/// Initialises the cluster from the configured members if this node's
/// storage is empty. Every bootstrapping node proposes the same membership,
/// which openraft accepts from any number of them.
async fn bootstrap(raft: &Raft, config: &NodeConfig) -> anyhow::Result<()> {
    if raft.is_initialized().await? {
        return Ok(());
    }
    let members: BTreeMap<u64, NodeAddr> = config.members.iter().map(|m| (m.node_id, node_addr(m))).collect();
    match raft.initialize(members).await {
        Ok(()) => tracing::info!("cluster initialised"),
        // Another member initialised first and already reached us: fine.
        Err(e) => tracing::info!(error = %e, "cluster already initialised"),
    }
    Ok(())
}
