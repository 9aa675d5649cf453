//! `boxoffice bench-idle`: what idle Raft groups cost.
//!
//! For each group count G it starts a local 3-node cluster laid out with G
//! data groups (three replicas each, so every node runs G + 1 replicas),
//! times how long until every group has a leader, lets it settle, then
//! samples each node's CPU time (from `/proc/<pid>/stat`) and resident memory
//! (from `/proc/<pid>/status`) over a quiet window with no client traffic.
//! Then it kills every node and restarts them (time until every group is led
//! again), and kills one node (time until every group it led has a new
//! leader). It prints one line per node and a JSON summary per G. Nothing is timed against a
//! threshold: this is a measurement to compare settings, not a test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use region_config::{ClusterLayout, RaftTuning};
use serde_json::json;

use crate::bench::process_ticks;
use crate::launcher::{self, LocalCluster};

/// Kernel clock ticks per second (USER_HZ) for `/proc` CPU times.
const TICKS: f64 = 100.0;

#[derive(Debug, Clone, clap::Args)]
pub struct IdleBenchOptions {
    /// Data-group counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub groups: Vec<u32>,
    /// Length of the quiet measuring window, seconds.
    #[arg(long, default_value_t = 30)]
    pub window_s: u64,
    /// Wait this long after every group has a leader before measuring, seconds.
    #[arg(long, default_value_t = 10)]
    pub settle_s: u64,
    /// Heartbeat interval of the data groups, ms (election timeouts scale with it: 6x-12x).
    #[arg(long, default_value_t = RaftTuning::default().group_heartbeat_interval_ms)]
    pub heartbeat_ms: u64,
    /// Park idle groups after this many ms without entries (0: never).
    #[arg(long, default_value_t = RaftTuning::default().quiesce_after_ms)]
    pub quiesce_after_ms: u64,
    /// Directory of the local clusters; an old one is wiped.
    #[arg(long, default_value = "./.bench-idle")]
    pub base_dir: PathBuf,
}

pub async fn run(opts: IdleBenchOptions, binary: PathBuf) -> anyhow::Result<()> {
    ensure!(!opts.groups.is_empty(), "--groups needs at least one count");
    ensure!(opts.window_s > 0, "--window-s must be positive");
    ensure!(opts.heartbeat_ms > 0, "--heartbeat-ms must be positive");
    let raft = RaftTuning {
        group_heartbeat_interval_ms: opts.heartbeat_ms,
        group_election_timeout_min_ms: opts.heartbeat_ms * 6,
        group_election_timeout_max_ms: opts.heartbeat_ms * 12,
        quiesce_after_ms: opts.quiesce_after_ms,
        ..RaftTuning::default()
    };
    for &groups in &opts.groups {
        let base_dir = launcher::prepare_base_dir(&opts.base_dir)?;
        let layout = ClusterLayout {
            groups_per_region: groups,
            replication: 3,
            ..ClusterLayout::default()
        };
        let addrs = launcher::ephemeral_addrs(3)?;
        let mut cluster =
            LocalCluster::start_with_addrs(&binary, &base_dir, addrs, raft.clone(), layout, &[])?;
        let started = Instant::now();
        let outcome = match cluster.wait_ready(READY_WITHIN).await {
            Ok(_) => run_phases(&mut cluster, groups, &opts, started.elapsed()).await,
            Err(e) => Err(e),
        };
        cluster.stop_all().await?;
        outcome?;
    }
    Ok(())
}

/// How long any phase may take before the benchmark gives up on it.
const READY_WITHIN: Duration = Duration::from_secs(300);

/// After a cold start: the quiet window, a restart of every node, and the
/// failover of one killed node's groups.
async fn run_phases(
    cluster: &mut LocalCluster,
    groups: u32,
    opts: &IdleBenchOptions,
    cold_ready: Duration,
) -> anyhow::Result<()> {
    let idle = measure(cluster, groups, opts, cold_ready).await?;
    let ids = cluster.running_ids();
    for &id in &ids {
        cluster.kill(id)?;
    }
    let restarted = Instant::now();
    for &id in &ids {
        cluster.restart(id)?;
    }
    cluster.wait_ready(READY_WITHIN).await?;
    let restart_ready = restarted.elapsed();
    eprintln!(
        "[bench-idle] every node killed and restarted: every group led after {:.1} s; settling {} s",
        restart_ready.as_secs_f64(),
        opts.settle_s
    );
    tokio::time::sleep(Duration::from_secs(opts.settle_s)).await;
    let victim = *ids.first().context("no node")?;
    let led_by_victim = cluster
        .health(victim)
        .await?
        .groups
        .iter()
        .filter(|g| g.group_id != booking::META_GROUP && g.state == "leader")
        .count();
    cluster.kill(victim)?;
    let failover = wait_failed_over(cluster, victim).await?;
    eprintln!(
        "[bench-idle] node {victim} killed: the {led_by_victim} groups it led have new leaders after {:.1} s",
        failover.as_secs_f64()
    );
    println!(
        "{}",
        json!({
            "bench": "idle-groups", "data_groups": groups, "replicas_per_group": 3,
            "heartbeat_ms": opts.heartbeat_ms, "quiesce_after_ms": opts.quiesce_after_ms,
            "window_s": opts.window_s,
            "cold_start_ready_s": secs(cold_ready),
            "restart_all_ready_s": secs(restart_ready),
            "failover": { "node": victim, "groups_it_led": led_by_victim, "all_led_again_s": secs(failover) },
            "mean_cpu_pct_of_core_per_node": idle.mean_cpu,
            "nodes": idle.per_node,
        })
    );
    Ok(())
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// Waits until every surviving node sees a live leader of every group it
/// hosts (none led by `dead`); returns how long that took.
async fn wait_failed_over(cluster: &LocalCluster, dead: region_config::NodeId) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let mut settled = true;
        for id in cluster.running_ids() {
            let led = match cluster.health(id).await {
                Ok(health) => health
                    .groups
                    .iter()
                    .all(|g| g.leader_node.is_some_and(|leader| leader != dead)),
                Err(_) => false,
            };
            settled &= led;
        }
        if settled {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < READY_WITHIN,
            "groups of node {dead} still without a live leader after {READY_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The quiet window's figures.
struct Idle {
    mean_cpu: f64,
    per_node: Vec<serde_json::Value>,
}

async fn measure(
    cluster: &LocalCluster,
    groups: u32,
    opts: &IdleBenchOptions,
    ready_after: Duration,
) -> anyhow::Result<Idle> {
    eprintln!(
        "[bench-idle] {groups} data groups led everywhere after {:.1} s; settling {} s",
        ready_after.as_secs_f64(),
        opts.settle_s
    );
    tokio::time::sleep(Duration::from_secs(opts.settle_s)).await;
    let ids = cluster.running_ids();
    let pids: Vec<u32> = ids
        .iter()
        .map(|id| cluster.pid(*id).context("a node is not running"))
        .collect::<anyhow::Result<_>>()?;
    let before: Vec<u64> = pids
        .iter()
        .map(|pid| process_ticks(&pid.to_string()).unwrap_or(0))
        .collect();
    let window = Duration::from_secs(opts.window_s);
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let mut per_node = Vec::new();
    for ((id, pid), before) in ids.iter().zip(&pids).zip(&before) {
        let after = process_ticks(&pid.to_string()).unwrap_or(0);
        let cpu_pct = after.saturating_sub(*before) as f64 / TICKS / elapsed * 100.0;
        let rss_mib = resident_kib(*pid).unwrap_or(0) as f64 / 1024.0;
        let health = cluster.health(*id).await?;
        let led = health.groups.iter().filter(|g| g.state == "leader").count();
        println!(
            "groups={groups} node={id} replicas={} leads={led} cpu={cpu_pct:.1}% of one core rss={rss_mib:.0} MiB",
            health.groups.len()
        );
        per_node.push(json!({ "node": id, "replicas": health.groups.len(), "leads": led,
            "cpu_pct_of_core": (cpu_pct * 10.0).round() / 10.0, "rss_mib": rss_mib.round() }));
    }
    let mean_cpu = per_node
        .iter()
        .filter_map(|n| n["cpu_pct_of_core"].as_f64())
        .sum::<f64>()
        / per_node.len().max(1) as f64;
    Ok(Idle {
        mean_cpu: (mean_cpu * 10.0).round() / 10.0,
        per_node,
    })
}

/// `VmRSS` of a process, in KiB.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
