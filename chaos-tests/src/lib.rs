//! The chaos harness: real `boxoffice` processes, killed and restarted on purpose, and
//! checkers that hold the cluster to what it acknowledged.
//!
//! Each test starts its own [`TestCluster`] (three nodes on ephemeral ports, in a fresh
//! temporary directory) through [`node::launcher`], drives it over HTTP with an
//! [`ApiClient`], and asserts invariants with the functions in [`checks`]. Every wait is
//! a poll with a deadline ([`eventually`]); every loop is bounded in count and in time.
//!
//! A test that fails keeps its directory (configs, data, node logs), prints where it is
//! and shows the end of each node's log; a test that passes removes it. Random choices
//! come from [`test_seed`], which is printed and can be set with `CHAOS_SEED` to repeat
//! a run's choices (the interleaving of concurrent clients still varies).
//!
//! What it does not do: it does not build the binary (see [`node::launcher::find_binary`])
//! and it never talks to anything but the nodes it started on 127.0.0.1.

pub mod chaos;
pub mod checks;
pub mod client;
pub mod fake_clock;
pub mod history;
pub mod linearizability;
pub mod netlab;
pub mod shop;
pub mod smtp_sink;
pub mod sse;
pub mod webhook_sink;
pub mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use rand::Rng;
use region_config::{ClusterLayout, RaftTuning};
use tempfile::TempDir;

pub use client::{ApiClient, Consistency, EventView, OrderView, Problem, Reply, WireId, expect_ok};
pub use node::launcher::{
    FIRST_DATA_GROUP, GroupHealth, Health, LOCAL_ADMIN_TOKEN, LocalCluster, find_binary,
};

/// How long a fresh or restarted cluster may take to agree on a leader.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Interval between two probes of [`eventually`].
const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// The seed for this test's random choices: `CHAOS_SEED` if set, otherwise the clock.
/// Printed so that a failing run can be repeated.
pub fn test_seed() -> u64 {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            since_epoch.as_nanos() as u64
        });
    eprintln!("chaos seed {seed} (set CHAOS_SEED={seed} to repeat)");
    seed
}

/// Probes until `probe` returns `Ok(Some(value))`, for at most `timeout`. `Ok(None)` and
/// `Err` both mean "not yet"; the last error is reported if time runs out.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("never satisfied");
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) => last = format!("{err:#}"),
        }
        if Instant::now() >= deadline {
            return Err(anyhow!("{what}: not reached within {timeout:?}; last: {last}"));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// A cluster started for one test, with its directory and a client for all nodes.
pub struct TestCluster {
    // Declared first so that it is dropped (children killed) before the directory goes.
    pub cluster: LocalCluster,
    /// The private network the nodes run in, when started with
    /// [`TestCluster::start_breakable`]; dropped after the nodes are.
    pub net: Option<netlab::NetLab>,
    /// The nodes whose wall clock the test sets.
    pub clocks: BTreeMap<region_config::NodeId, fake_clock::FakeClock>,
    /// The failpoint directory of each node whose disk or links the test can
    /// break (`raft_store::disk_health`, `transport::wan`).
    failpoints: BTreeMap<region_config::NodeId, std::path::PathBuf>,
    pub client: ApiClient,
    dir: Option<TempDir>,
}

/// What [`TestCluster::start_breakable`] prepares, beyond signals.
#[derive(Debug, Clone, Default)]
pub struct Breakable {
    /// Every node in its own network namespace of a [`netlab::NetLab`]
    /// (root only), so that links between nodes can be cut while the
    /// harness still reaches each.
    pub network: bool,
    /// These nodes under a [`fake_clock::FakeClock`] each (libfaketime),
    /// found in [`TestCluster::clocks`].
    pub fake_clocks: Vec<region_config::NodeId>,
    /// Every node's failpoints armed: its disk ([`TestCluster::fail_disk`])
    /// and its links ([`TestCluster::disturb_links`]).
    pub failpoints: bool,
}

impl TestCluster {
    /// Starts `nodes` nodes with `raft` tuning and waits until they agree on a leader.
    /// Events go to one data group, [`FIRST_DATA_GROUP`].
    pub async fn start(nodes: usize, raft: RaftTuning) -> anyhow::Result<Self> {
        let layout = ClusterLayout {
            groups_per_region: 1,
            ..ClusterLayout::default()
        };
        Self::start_with_layout(nodes, raft, layout, READY_TIMEOUT).await
    }

    /// Like [`TestCluster::start`] with another data-group layout, waiting at
    /// most `ready_within` for every group to have a leader.
    pub async fn start_with_layout(
        nodes: usize,
        raft: RaftTuning,
        layout: ClusterLayout,
        ready_within: Duration,
    ) -> anyhow::Result<Self> {
        Self::start_in_regions(nodes, raft, layout, &[], ready_within).await
    }

    /// Like [`TestCluster::start_with_layout`] with node `i + 1` in region
    /// `regions[i % regions.len()]` (none: all in one region).
    pub async fn start_in_regions(
        nodes: usize,
        raft: RaftTuning,
        layout: ClusterLayout,
        regions: &[region_config::RegionId],
        ready_within: Duration,
    ) -> anyhow::Result<Self> {
        Self::launch(nodes, raft, layout, regions, ready_within, &|_| {}).await
    }

    /// Starts `nodes` nodes in one region with one data group, letting
    /// `configure` change each node's config first.
    pub async fn start_configured(
        nodes: usize,
        raft: RaftTuning,
        configure: &dyn Fn(&mut region_config::NodeConfig),
    ) -> anyhow::Result<Self> {
        let layout = ClusterLayout {
            groups_per_region: 1,
            ..ClusterLayout::default()
        };
        Self::launch(nodes, raft, layout, &[], READY_TIMEOUT, configure).await
    }

    /// The general form: `nodes` nodes, node `i + 1` in `regions[i %
    /// regions.len()]` (none: one region), `configure` applied to each
    /// node's config, ready within `ready_within`.
    pub async fn launch(
        nodes: usize,
        raft: RaftTuning,
        layout: ClusterLayout,
        regions: &[region_config::RegionId],
        ready_within: Duration,
        configure: &dyn Fn(&mut region_config::NodeConfig),
    ) -> anyhow::Result<Self> {
        let plain = Breakable::default();
        Self::launch_breakable(nodes, raft, layout, regions, ready_within, configure, &plain).await
    }

    /// Like [`TestCluster::start`], ready to be broken in ways that need
    /// more than signals (see [`Breakable`]).
    pub async fn start_breakable(
        nodes: usize,
        raft: RaftTuning,
        breakable: &Breakable,
    ) -> anyhow::Result<Self> {
        let layout = ClusterLayout {
            groups_per_region: 1,
            ..ClusterLayout::default()
        };
        Self::launch_breakable(nodes, raft, layout, &[], READY_TIMEOUT, &|_| {}, breakable).await
    }

    /// [`TestCluster::start_breakable`] with the nodes spread over
    /// `regions` (node `i + 1` in `regions[i % len]`).
    pub async fn start_breakable_in(
        nodes: usize,
        raft: RaftTuning,
        regions: &[region_config::RegionId],
        breakable: &Breakable,
    ) -> anyhow::Result<Self> {
        let layout = ClusterLayout {
            groups_per_region: 1,
            ..ClusterLayout::default()
        };
        Self::launch_breakable(nodes, raft, layout, regions, READY_TIMEOUT, &|_| {}, breakable).await
    }

    /// Starts `nodes` nodes in one region laid out as `layout` and returns
    /// at once, without waiting for any leader: for tests that watch the
    /// cluster come up.
    pub async fn spawn_with_layout(
        nodes: usize,
        raft: RaftTuning,
        layout: ClusterLayout,
    ) -> anyhow::Result<Self> {
        Self::spawn_breakable(nodes, raft, layout, &[], &|_| {}, &Breakable::default())
    }

    /// [`TestCluster::launch`] with `breakable`'s network and clocks.
    async fn launch_breakable(
        nodes: usize,
        raft: RaftTuning,
        layout: ClusterLayout,
        regions: &[region_config::RegionId],
        ready_within: Duration,
        configure: &dyn Fn(&mut region_config::NodeConfig),
        breakable: &Breakable,
    ) -> anyhow::Result<Self> {
        let mut test = Self::spawn_breakable(nodes, raft, layout, regions, configure, breakable)?;
        test.cluster.wait_ready(ready_within).await?;
        Ok(test)
    }

    /// The processes of [`TestCluster::launch_breakable`], started and not waited for.
    fn spawn_breakable(
        nodes: usize,
        raft: RaftTuning,
        layout: ClusterLayout,
        regions: &[region_config::RegionId],
        configure: &dyn Fn(&mut region_config::NodeConfig),
        breakable: &Breakable,
    ) -> anyhow::Result<Self> {
        let binary = find_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-chaos-")
            .tempdir()
            .context("cannot create the test directory")?;
        let ids: Vec<region_config::NodeId> = (1..=nodes as u64).collect();
        let net = if breakable.network {
            Some(netlab::NetLab::create(&ids)?)
        } else {
            None
        };
        let addrs = match &net {
            // One namespace per node: every node can use the same two ports.
            Some(net) => ids
                .iter()
                .map(|&id| node::launcher::NodeAddrs {
                    http: std::net::SocketAddr::from((net.addr(id), 7080)),
                    grpc: std::net::SocketAddr::from((net.addr(id), 7090)),
                })
                .collect(),
            None => node::launcher::ephemeral_addrs(nodes)?,
        };
        let mut cluster = LocalCluster::plan(&binary, dir.path(), addrs, raft, layout, regions, configure)?;
        let mut clocks = BTreeMap::new();
        let mut failpoints = BTreeMap::new();
        for &id in &ids {
            let mut prefix = net.as_ref().map(|net| net.prefix(id)).unwrap_or_default();
            if breakable.failpoints {
                let failpoint_dir = dir.path().join(format!("failpoints-{id}"));
                std::fs::create_dir_all(&failpoint_dir)
                    .with_context(|| format!("cannot create {}", failpoint_dir.display()))?;
                let mut armed =
                    std::ffi::OsString::from(format!("{}=", raft_store::disk_health::FAILPOINTS_ENV));
                armed.push(&failpoint_dir);
                prefix.extend(["env".into(), armed]);
                failpoints.insert(id, failpoint_dir);
            }
            if breakable.fake_clocks.contains(&id) {
                let clock = fake_clock::FakeClock::new(dir.path().join(format!("clock-{id}")))?;
                prefix.extend(clock.prefix());
                clocks.insert(id, clock);
            }
            cluster.set_prefix(id, prefix);
        }
        cluster.spawn_all()?;
        let client = ApiClient::for_cluster(&cluster)?;
        Ok(Self {
            cluster,
            net,
            clocks,
            failpoints,
            client,
            dir: Some(dir),
        })
    }

    /// Fails (or mends) node `id`'s disk: while failed, every sync the node
    /// attempts fails. Only for a cluster started with
    /// [`Breakable::failpoints`].
    pub fn fail_disk(&self, id: region_config::NodeId, failed: bool) -> anyhow::Result<()> {
        let text = failed.then_some("");
        self.set_failpoint(id, raft_store::disk_health::WAL_SYNC_FAILPOINT, text)
    }

    /// Disturbs every call node `id` makes to another node (`None`: mends
    /// them): each way delayed by `one_way_ms` plus up to `jitter_ms`, and
    /// `loss_pct` percent lost. The node notices within a quarter second.
    pub fn disturb_links(
        &self,
        id: region_config::NodeId,
        disturbance: Option<(u32, u32, u32)>,
    ) -> anyhow::Result<()> {
        let text = disturbance.map(|(one_way, jitter, loss)| format!("{one_way} {jitter} {loss}\n"));
        self.set_failpoint(id, transport::wan::WAN_FAILPOINT, text.as_deref())
    }

    /// Writes node `id`'s failpoint file `name` (`None`: removes it).
    fn set_failpoint(&self, id: region_config::NodeId, name: &str, text: Option<&str>) -> anyhow::Result<()> {
        let dir = self
            .failpoints
            .get(&id)
            .with_context(|| format!("node {id} was started without failpoints"))?;
        let file = dir.join(name);
        match text {
            Some(text) => {
                // Whole or not at all: the node may read it at any moment.
                let tmp = dir.join(format!("{name}.tmp"));
                std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
                std::fs::rename(&tmp, &file).with_context(|| format!("cannot write {}", file.display()))
            }
            None => match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", file.display()))
                }
                _ => Ok(()),
            },
        }
    }

    /// The current leader, once every running node agrees on one.
    pub async fn leader(&mut self) -> anyhow::Result<region_config::NodeId> {
        self.cluster.wait_ready(READY_TIMEOUT).await
    }

    /// Starts one more node (in the region of the highest-numbered one) and
    /// adds it through node `via`'s admin API; its id and the API's answer
    /// (`moves`: the replicas it took).
    pub async fn join_node(
        &mut self,
        via: region_config::NodeId,
    ) -> anyhow::Result<(region_config::NodeId, serde_json::Value)> {
        let joining = self.cluster.add_node()?;
        let config = self.cluster.config(joining).clone();
        let body = serde_json::json!({
            "node_id": joining,
            "region": config.region.to_string(),
            "grpc_addr": config.grpc_addr.to_string(),
            "http_addr": config.http_addr.to_string(),
        });
        let (status, answer) = self
            .client
            .admin(
                reqwest::Method::POST,
                via,
                "/v1/admin/nodes",
                Some(LOCAL_ADMIN_TOKEN),
                Some(&body),
            )
            .await?;
        anyhow::ensure!(
            status == reqwest::StatusCode::OK,
            "adding node {joining}: {status} {answer}"
        );
        Ok((joining, answer))
    }

    /// Creates event `event_id` from `spec` through `node` and reads it back
    /// through the leader: the seat map the clients pick from.
    pub async fn create_event(
        &self,
        node: region_config::NodeId,
        event_id: u64,
        spec: &booking::EventSpec,
    ) -> anyhow::Result<EventView> {
        expect_ok(
            self.client
                .create_event(node, event_id, spec, &format!("create-event-{event_id}"))
                .await?,
            "create",
        )?;
        expect_ok(
            self.client
                .event_view(node, event_id, Consistency::Linearizable)
                .await?,
            "view",
        )
    }

    /// Stops the nodes and removes the directory: call this at the end of a passing test.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.cluster.stop_all().await?;
        if let Some(dir) = self.dir.take() {
            dir.close().context("cannot remove the test directory")?;
        }
        Ok(())
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Not finished: the test failed. Keep the evidence and show the logs' ends.
        let Some(dir) = self.dir.take() else { return };
        let path = dir.keep();
        eprintln!(
            "test cluster kept in {} (configs, data, node logs)",
            path.display()
        );
        for id in self.cluster.node_ids() {
            eprintln!(
                "--- end of {} ---\n{}",
                self.cluster.log_path(id).display(),
                self.cluster.log_tail(id)
            );
        }
    }
}

/// A live seat map shared by concurrent clients: seats are picked at random among those
/// not known to be taken, and marked taken once someone tried to hold them.
#[derive(Debug)]
pub struct SeatPicker {
    seats: Vec<String>,
    taken: Vec<AtomicBool>,
}

impl SeatPicker {
    pub fn new(seats: Vec<String>) -> Self {
        let taken = seats.iter().map(|_| AtomicBool::new(false)).collect();
        Self { seats, taken }
    }

    /// A random seat not known to be taken, or `None` when all are.
    pub fn pick(&self, rng: &mut impl Rng) -> Option<(usize, &str)> {
        let n = self.seats.len();
        if n == 0 {
            return None;
        }
        let start = rng.random_range(0..n);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| !self.taken[i].load(Ordering::Relaxed))
            .map(|i| (i, self.seats[i].as_str()))
    }

    /// Marks seat number `index` (from [`SeatPicker::pick`]) as taken.
    pub fn mark_taken(&self, index: usize) {
        self.taken[index].store(true, Ordering::Relaxed);
    }
}

/// A seated event of `sections` x `rows` x `seats_per_row` seats at one price.
pub fn grid_event(
    name: &str,
    sections: u32,
    rows: u32,
    seats_per_row: u32,
) -> anyhow::Result<booking::EventSpec> {
    let currency = booking::Currency::new("EUR")?;
    let tier = booking::PriceTier {
        name: "standard".to_owned(),
        price: booking::Money::new(4_500, currency),
    };
    Ok(booking::EventSpec::grid(
        name,
        currency,
        sections,
        rows,
        seats_per_row,
        vec![tier],
    ))
}
