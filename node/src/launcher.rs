//! Starting and stopping a cluster of real `boxoffice node` processes on this machine.
//!
//! The demo, the benchmark and the chaos tests all need the same thing: N nodes on
//! 127.0.0.1, each with its own data directory, config file and log file, that can be
//! killed, restarted and stopped. [`LocalCluster`] does exactly that and nothing more.
//!
//! Layout under the base directory (one cluster per base directory):
//!
//! ```text
//! {base}/.boxoffice-local-cluster   marker: this directory belongs to a launcher
//! {base}/node-{id}.toml             the node's NodeConfig, written once at start
//! {base}/node-{id}/                 the node's data directory
//! {base}/node-{id}.log              stdout and stderr of every run of the node, appended
//! {base}/node-{id}.pid              the PID of the current run, removed when it is reaped
//! {base}/tls/                       the cluster CA and every node's certificate (`certs`)
//! ```
//!
//! Invariants:
//! - A cluster is planned once: ports, configs and data directories never change for its
//!   lifetime, so [`LocalCluster::restart`] brings a node back exactly as it was.
//! - [`LocalCluster::start`] refuses a base directory whose data directories already hold
//!   data, because an old Raft membership would name other ports.
//! - Signals go only to children this value spawned and has not reaped yet, so a PID can
//!   never be one that the kernel handed to an unrelated process in the meantime.
//! - Dropping a `LocalCluster` SIGKILLs every child it still owns.
//!
//! What it does not do: it knows nothing about events or bookings (callers speak the
//! HTTP API themselves), it does not build the binary (see [`find_binary`]), and it does
//! not put the children in their own process group, so a test runner or terminal that
//! signals the group reaches the nodes too.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use region_config::{ClusterLayout, MemberConfig, NodeConfig, NodeId, RaftTuning, RegionId};
use serde::Deserialize;

/// Makes rustls's *ring* provider the process default: every process that
/// builds an HTTP client calls this first (harmless when repeated).
pub fn install_crypto_provider() {
    transport::tls::install_crypto_provider();
}

/// Environment variable that overrides where [`find_binary`] looks for `boxoffice`.
pub const BINARY_ENV: &str = "BOXOFFICE_BIN";

/// Region every local node is placed in.
const LOCAL_REGION: &str = "local";

/// The admin bearer token of launcher-built clusters. They listen on loopback
/// only; a real deployment sets its own secret in each node's config.
pub const LOCAL_ADMIN_TOKEN: &str = "boxoffice-local-admin-token";
/// The access-token key of local clusters (demo and tests only, like the admin token).
pub const LOCAL_JWT_SECRET: &str = "boxoffice-local-jwt-secret-not-for-production";
/// The ticket signing key of local clusters (demo and tests only).
pub const LOCAL_TICKET_KEY: &str = "6c6f63616c2d7469636b65742d6b65792d6e6f742d666f722d70726f64756374";

/// The webhook key of local clusters' simulated payment provider.
pub const LOCAL_WEBHOOK_SECRET: &str = "boxoffice-local-webhook-secret";

/// The `[payments]` section of a local cluster's nodes: the simulated
/// processor, approving everything unless the method token says otherwise.
pub fn local_payments() -> region_config::PaymentsConfig {
    region_config::PaymentsConfig {
        webhook_secret: LOCAL_WEBHOOK_SECRET.to_owned(),
        decline_rate_pct: 0,
        latency_ms: 150,
        retry_after_ms: 3_000,
    }
}

/// The `[auth]` section of a local cluster's nodes.
pub fn local_auth() -> region_config::AuthConfig {
    region_config::AuthConfig {
        jwt_secret: LOCAL_JWT_SECRET.to_owned(),
        access_ttl_secs: 900,
        refresh_ttl_secs: 7 * 24 * 3600,
        ticket_signing_key: LOCAL_TICKET_KEY.to_owned(),
    }
}

/// The data group events land on in a cluster laid out with one group
/// ([`LocalCluster::start`]'s default).
pub const FIRST_DATA_GROUP: u64 = 1;

/// File that marks a base directory as created by a launcher, so that it may be wiped.
const MARKER_FILE: &str = ".boxoffice-local-cluster";

/// How long [`LocalCluster::stop_all`] waits after SIGTERM before it sends SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Interval between two polls of a node's `/health` or of a child's exit.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Lines of a node's log shown when it exits unexpectedly.
const LOG_TAIL_LINES: usize = 30;

/// The two addresses one node listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddrs {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
}

/// A node's answer to `GET /health` (see docs/http-api.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    pub node_id: NodeId,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: String,
    #[serde(default)]
    pub leader_id: Option<NodeId>,
    pub term: u64,
    #[serde(default)]
    pub last_log_index: Option<u64>,
    #[serde(default)]
    pub last_applied: Option<u64>,
    #[serde(default)]
    pub snapshot_index: Option<u64>,
    #[serde(default)]
    pub purged_index: Option<u64>,
    /// The cluster map exists and every replica of this node runs and knows a leader.
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub map_epoch: u64,
    #[serde(default)]
    pub groups: Vec<GroupHealth>,
}

/// One replica's line in `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupHealth {
    pub group_id: u64,
    pub replica_id: u64,
    pub state: String,
    #[serde(default)]
    pub leader_node: Option<NodeId>,
    pub term: u64,
    #[serde(default)]
    pub last_log_index: Option<u64>,
    #[serde(default)]
    pub last_applied: Option<u64>,
    #[serde(default)]
    pub snapshot_index: Option<u64>,
    #[serde(default)]
    pub purged_index: Option<u64>,
    /// The group is idle and this replica's timers are parked.
    #[serde(default)]
    pub parked: bool,
}

impl Health {
    /// This node's replica of `group`, if it runs one.
    pub fn group(&self, group: u64) -> Option<&GroupHealth> {
        self.groups.iter().find(|g| g.group_id == group)
    }
}

/// The region table of a local cluster: the demo's regions with their real
/// currencies, languages, zones and countries, any other region plain
/// (euros, English, UTC); each region's endpoint is its first node's HTTP
/// address.
pub(crate) fn region_table(
    regions: &[RegionId],
    members: &[MemberConfig],
) -> anyhow::Result<Vec<region_config::RegionConfig>> {
    // (name, currency, locale, zone, countries homed there)
    type Known = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    );
    let known = |id: &str| -> Option<Known> {
        Some(match id {
            "eu-west" => (
                "Europe (Dublin)",
                "EUR",
                "en-IE",
                "Europe/Dublin",
                &["IE", "GB", "FR", "ES", "PT", "NL", "BE"],
            ),
            "eu-central" => (
                "Europe (Frankfurt)",
                "EUR",
                "de-DE",
                "Europe/Berlin",
                &["DE", "AT", "CH", "IT", "PL"],
            ),
            "us-east" => (
                "US East (Virginia)",
                "USD",
                "en-US",
                "America/New_York",
                &["US", "CA"],
            ),
            "us-west" => ("US West (Oregon)", "USD", "en-US", "America/Los_Angeles", &[]),
            "ap-south" => ("Asia Pacific (Mumbai)", "INR", "en-IN", "Asia/Kolkata", &["IN"]),
            "ap-northeast" => (
                "Asia Pacific (Tokyo)",
                "JPY",
                "ja-JP",
                "Asia/Tokyo",
                &["JP", "KR"],
            ),
            "sa-east" => (
                "South America (São Paulo)",
                "BRL",
                "pt-BR",
                "America/Sao_Paulo",
                &["BR", "AR"],
            ),
            _ => return None,
        })
    };
    let mut table: Vec<region_config::RegionConfig> = Vec::new();
    for region in regions {
        if table.iter().any(|r| &r.id == region) {
            continue;
        }
        let mut info = booking::RegionInfo::plain(region);
        if let Some((name, currency, locale, zone, countries)) = known(region.as_str()) {
            info.name = name.to_owned();
            info.currency = booking::Currency::new(currency)?;
            info.locale = locale.to_owned();
            info.time_zone = zone.to_owned();
            info.countries = countries.iter().map(|c| (*c).to_owned()).collect();
        }
        let endpoint = members
            .iter()
            .find(|m| &m.region == region)
            .map(|m| format!("http://{}", m.http_addr));
        table.push(region_config::RegionConfig {
            id: region.clone(),
            name: info.name,
            currency: info.currency,
            locale: info.locale,
            time_zone: info.time_zone,
            http_endpoint: endpoint,
            countries: info.countries,
        });
    }
    Ok(table)
}

/// Polls `GET path` on `client` every 100 ms until it answers 2xx with a
/// body `done` accepts, for at most `timeout`.
pub async fn wait_for_answer(
    client: &api::client::Client,
    path: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(answer) = client.get(path).send().await
            && answer.status.is_success()
            && done(&answer.body)
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "GET {path} did not give the expected answer within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a `GET /v1/regions` answer shows every region described: the
/// nodes have put the configured region table in the cluster map.
pub fn regions_described(body: &serde_json::Value) -> bool {
    body["regions"]
        .as_array()
        .is_some_and(|regions| regions.iter().all(|r| r["described"] == true))
}

/// Finds the `boxoffice` binary for tests: `$BOXOFFICE_BIN` if set, otherwise the
/// `boxoffice` next to the running executable's target profile directory
/// (`target/debug/deps/cluster-1234` → `target/debug/boxoffice`).
pub fn find_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        let path = PathBuf::from(path);
        ensure!(path.is_file(), "{BINARY_ENV}={} is not a file", path.display());
        return Ok(path);
    }
    let exe = std::env::current_exe().context("cannot tell where the running executable is")?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir = dir
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent directory", dir.display()))?;
    }
    let candidate = dir.join(format!("boxoffice{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        candidate.is_file(),
        "{} does not exist; build it with `cargo build -p node --bin boxoffice` \
         (same profile as this executable) or set {BINARY_ENV}",
        candidate.display()
    );
    Ok(candidate)
}

/// Picks `n` pairs of free ports on 127.0.0.1 by binding port 0 and releasing it.
///
/// All listeners stay open until every port is chosen, so no two nodes get the same
/// port; another process may still take one before the node binds it, which is rare
/// enough for tests and reported by the node's log when it happens.
pub fn ephemeral_addrs(n: usize) -> anyhow::Result<Vec<NodeAddrs>> {
    let mut listeners = Vec::with_capacity(2 * n);
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let http = bind_loopback(0)?;
        let grpc = bind_loopback(0)?;
        addrs.push(NodeAddrs {
            http: http.local_addr()?,
            grpc: grpc.local_addr()?,
        });
        listeners.extend([http, grpc]);
    }
    Ok(addrs)
}

/// Picks `base_http + i` and `base_grpc + i` for node `i + 1`, falling back to an
/// ephemeral port for each one that is busy.
pub fn preferred_addrs(n: usize, base_http: u16, base_grpc: u16) -> anyhow::Result<Vec<NodeAddrs>> {
    let mut listeners = Vec::with_capacity(2 * n);
    let mut addrs = Vec::with_capacity(n);
    let mut claim = |base: u16, offset: usize| -> anyhow::Result<SocketAddr> {
        let preferred = u16::try_from(offset)
            .ok()
            .and_then(|offset| base.checked_add(offset))
            .and_then(|port| bind_loopback(port).ok());
        let listener = match preferred {
            Some(listener) => listener,
            None => bind_loopback(0)?,
        };
        let addr = listener.local_addr()?;
        listeners.push(listener);
        Ok(addr)
    };
    for i in 0..n {
        let http = claim(base_http, i)?;
        let grpc = claim(base_grpc, i)?;
        addrs.push(NodeAddrs { http, grpc });
    }
    Ok(addrs)
}

fn bind_loopback(port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).with_context(|| format!("cannot bind 127.0.0.1:{port}"))
}

/// Makes `dir` ready for a new cluster: creates it if missing, wipes it if a launcher
/// made it before, and refuses to touch a non-empty directory that is not ours.
/// Returns the absolute path.
pub fn prepare_base_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        let ours = dir.join(MARKER_FILE).is_file();
        let empty = fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .next()
            .is_none();
        if ours {
            if let Some(pid) = live_node_pid(dir) {
                bail!(
                    "a node of the cluster in {} still runs (pid {pid}); stop it before reusing the directory",
                    dir.display()
                );
            }
            fs::remove_dir_all(dir)
                .with_context(|| format!("cannot wipe old cluster in {}", dir.display()))?;
        } else if !empty {
            bail!(
                "{} is not empty and was not made by a boxoffice launcher; refusing to wipe it",
                dir.display()
            );
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

/// The PID of a `boxoffice` process recorded in one of `dir`'s PID files, if any still
/// runs (a launcher that was killed itself leaves its nodes and their PID files behind).
fn live_node_pid(dir: &Path) -> Option<u32> {
    let entries = fs::read_dir(dir).ok()?;
    entries.flatten().find_map(|entry| {
        let name = entry.file_name();
        let name = name.to_str()?;
        if !(name.starts_with("node-") && name.ends_with(".pid")) {
            return None;
        }
        let pid: u32 = fs::read_to_string(entry.path()).ok()?.trim().parse().ok()?;
        let command = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (command.trim() == "boxoffice").then_some(pid)
    })
}

/// One planned node and, while it runs, its process.
struct LocalNode {
    config: NodeConfig,
    config_path: PathBuf,
    log_path: PathBuf,
    pid_path: PathBuf,
    /// Words run before the binary (for example `ip netns exec <ns>`); empty:
    /// the binary itself is started.
    prefix: Vec<OsString>,
    /// `Some` from spawn until the child is reaped (killed, stopped or seen exited).
    child: Option<Child>,
}

/// A cluster of `boxoffice node` child processes on 127.0.0.1.
pub struct LocalCluster {
    binary: PathBuf,
    base_dir: PathBuf,
    nodes: BTreeMap<NodeId, LocalNode>,
    http: reqwest::Client,
}

impl LocalCluster {
    /// Plans `n` nodes on ephemeral ports under `base_dir` and spawns them all.
    /// Call [`LocalCluster::wait_ready`] before sending requests.
    /// Events go to one data group ([`FIRST_DATA_GROUP`]) next to the metadata group.
    pub fn start(binary: &Path, base_dir: &Path, n: usize, raft: RaftTuning) -> anyhow::Result<Self> {
        let layout = ClusterLayout {
            groups_per_region: 1,
            ..ClusterLayout::default()
        };
        Self::start_with_addrs(binary, base_dir, ephemeral_addrs(n)?, raft, layout, &[])
    }

    /// Like [`LocalCluster::start`] with another data-group layout.
    pub fn start_with_layout(
        binary: &Path,
        base_dir: &Path,
        n: usize,
        raft: RaftTuning,
        layout: ClusterLayout,
    ) -> anyhow::Result<Self> {
        Self::start_with_addrs(binary, base_dir, ephemeral_addrs(n)?, raft, layout, &[])
    }

    /// Like [`LocalCluster::start_with_layout`] with node `i + 1` in region
    /// `regions[i % regions.len()]`.
    pub fn start_in_regions(
        binary: &Path,
        base_dir: &Path,
        n: usize,
        raft: RaftTuning,
        layout: ClusterLayout,
        regions: &[RegionId],
    ) -> anyhow::Result<Self> {
        Self::start_with_addrs(binary, base_dir, ephemeral_addrs(n)?, raft, layout, regions)
    }

    /// Like [`LocalCluster::start`] with chosen addresses (node `i + 1` gets
    /// `addrs[i]`), data-group layout and regions (node `i + 1` is in
    /// `regions[i % regions.len()]`; none: all in region `local`).
    pub fn start_with_addrs(
        binary: &Path,
        base_dir: &Path,
        addrs: Vec<NodeAddrs>,
        raft: RaftTuning,
        layout: ClusterLayout,
        regions: &[RegionId],
    ) -> anyhow::Result<Self> {
        Self::start_configured(binary, base_dir, addrs, raft, layout, regions, &|_| {})
    }

    /// Like [`LocalCluster::start_with_addrs`], letting `configure` change each
    /// node's config before it is written (for example to point notifications
    /// at a test's SMTP sink).
    pub fn start_configured(
        binary: &Path,
        base_dir: &Path,
        addrs: Vec<NodeAddrs>,
        raft: RaftTuning,
        layout: ClusterLayout,
        regions: &[RegionId],
        configure: &dyn Fn(&mut NodeConfig),
    ) -> anyhow::Result<Self> {
        let mut cluster = Self::plan(binary, base_dir, addrs, raft, layout, regions, configure)?;
        cluster.spawn_all()?;
        Ok(cluster)
    }

    /// Writes every node's config like [`LocalCluster::start_configured`]
    /// but starts none: set [`LocalCluster::set_prefix`] first, then
    /// [`LocalCluster::spawn_all`].
    pub fn plan(
        binary: &Path,
        base_dir: &Path,
        addrs: Vec<NodeAddrs>,
        raft: RaftTuning,
        layout: ClusterLayout,
        regions: &[RegionId],
        configure: &dyn Fn(&mut NodeConfig),
    ) -> anyhow::Result<Self> {
        ensure!(!addrs.is_empty(), "a cluster needs at least one node");
        ensure!(
            binary.is_file(),
            "node binary {} does not exist",
            binary.display()
        );
        fs::create_dir_all(base_dir).with_context(|| format!("cannot create {}", base_dir.display()))?;
        let base_dir = fs::canonicalize(base_dir)?;
        File::create(base_dir.join(MARKER_FILE)).context("cannot write the launcher marker file")?;

        let local = [RegionId::new(LOCAL_REGION)?];
        let regions = if regions.is_empty() { &local[..] } else { regions };
        let members: Vec<MemberConfig> = (1..)
            .zip(&addrs)
            .enumerate()
            .map(|(i, (node_id, addrs))| MemberConfig {
                node_id,
                region: regions[i % regions.len()].clone(),
                grpc_addr: addrs.grpc,
                http_addr: addrs.http,
            })
            .collect();

        let region_table = region_table(regions, &members)?;
        // Node-to-node gRPC is mutual TLS: a CA for this cluster alone.
        let certs = crate::certs::CertDir::open_or_create(&base_dir.join("tls"))?;
        let mut nodes = BTreeMap::new();
        for member in &members {
            let id = member.node_id;
            let data_dir = base_dir.join(format!("node-{id}"));
            let has_data = data_dir.is_dir() && fs::read_dir(&data_dir)?.next().is_some();
            ensure!(
                !has_data,
                "{} already holds data from another cluster; use an empty base directory",
                data_dir.display()
            );
            fs::create_dir_all(&data_dir)?;
            let mut config = NodeConfig {
                node_id: id,
                region: member.region.clone(),
                data_dir,
                http_addr: member.http_addr,
                grpc_addr: member.grpc_addr,
                // Every node may initialise the cluster; doing it twice with the same
                // members is harmless, and any one of them being up first suffices.
                bootstrap: true,
                members: members.clone(),
                raft: raft.clone(),
                layout: layout.clone(),
                admin_token: Some(LOCAL_ADMIN_TOKEN.to_owned()),
                auth: Some(local_auth()),
                payments: Some(local_payments()),
                limits: region_config::LimitsConfig::default(),
                notifications: region_config::NotificationsConfig {
                    // Test receivers and the demo's listen on loopback.
                    allow_private_webhooks: true,
                    ..region_config::NotificationsConfig::default()
                },
                tls: Some(certs.node(id)?),
                http: region_config::HttpConfig::default(),
                login: region_config::LoginLimits::default(),
                // The secrets above are published with the code: fine on loopback.
                allow_insecure_demo_secrets: true,
                regions: region_table.clone(),
                wan: region_config::WanConfig::default(),
            };
            configure(&mut config);
            config.validate()?;
            let config_path = base_dir.join(format!("node-{id}.toml"));
            fs::write(&config_path, config.to_toml())
                .with_context(|| format!("cannot write {}", config_path.display()))?;
            nodes.insert(
                id,
                LocalNode {
                    config,
                    config_path,
                    log_path: base_dir.join(format!("node-{id}.log")),
                    pid_path: base_dir.join(format!("node-{id}.pid")),
                    prefix: Vec::new(),
                    child: None,
                },
            );
        }

        transport::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .context("cannot build the health-check HTTP client")?;
        Ok(Self {
            binary: binary.to_owned(),
            base_dir,
            nodes,
            http,
        })
    }

    /// Runs node `id` as `prefix... binary node --config ...` from its next
    /// start on: `ip netns exec <ns>` puts it in a network namespace. The
    /// prefix must exec the binary, so that the child's pid is the node's.
    pub fn set_prefix(&mut self, id: NodeId, prefix: Vec<OsString>) {
        self.node_mut(id).prefix = prefix;
    }

    /// Starts every planned node that is not running.
    pub fn spawn_all(&mut self) -> anyhow::Result<()> {
        for id in self.node_ids() {
            if self.node(id).child.is_none() {
                self.spawn(id)?;
            }
        }
        Ok(())
    }

    /// Plans and spawns one more node that does not bootstrap: it waits to be
    /// added to the cluster through the admin API (`POST /v1/admin/nodes`).
    /// Returns its id (one above the highest so far).
    pub fn add_node(&mut self) -> anyhow::Result<NodeId> {
        let (&last, template) = self
            .nodes
            .iter()
            .next_back()
            .ok_or_else(|| anyhow!("an empty cluster has no template for a new node"))?;
        let id = last + 1;
        let addrs = ephemeral_addrs(1)?[0];
        let data_dir = self.base_dir.join(format!("node-{id}"));
        ensure!(!data_dir.exists(), "{} already exists", data_dir.display());
        fs::create_dir_all(&data_dir)?;
        let me = MemberConfig {
            node_id: id,
            region: template.config.region.clone(),
            grpc_addr: addrs.grpc,
            http_addr: addrs.http,
        };
        let mut members = template.config.members.clone();
        members.push(me);
        let certs = crate::certs::CertDir::open_or_create(&self.base_dir.join("tls"))?;
        let config = NodeConfig {
            node_id: id,
            data_dir,
            http_addr: addrs.http,
            grpc_addr: addrs.grpc,
            bootstrap: false,
            members,
            tls: Some(certs.node(id)?),
            ..template.config.clone()
        };
        config.validate()?;
        let config_path = self.base_dir.join(format!("node-{id}.toml"));
        fs::write(&config_path, config.to_toml())
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        self.nodes.insert(
            id,
            LocalNode {
                config,
                config_path,
                log_path: self.base_dir.join(format!("node-{id}.log")),
                pid_path: self.base_dir.join(format!("node-{id}.pid")),
                prefix: Vec::new(),
                child: None,
            },
        );
        self.spawn(id)?;
        Ok(id)
    }

    /// The base directory (absolute) holding configs, data and logs.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Ids of all planned nodes, running or not, in ascending order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Ids of the nodes whose process this cluster spawned and has not reaped.
    pub fn running_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.child.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// `http://127.0.0.1:PORT` of node `id`. Panics on an id that is not in the cluster.
    pub fn http_url(&self, id: NodeId) -> String {
        format!("http://{}", self.node(id).config.http_addr)
    }

    /// HTTP base URLs of all nodes, in node id order.
    pub fn http_urls(&self) -> Vec<String> {
        self.node_ids().into_iter().map(|id| self.http_url(id)).collect()
    }

    /// The configuration node `id` runs with.
    pub fn config(&self, id: NodeId) -> &NodeConfig {
        &self.node(id).config
    }

    /// Where node `id` writes its stdout and stderr.
    pub fn log_path(&self, id: NodeId) -> &Path {
        &self.node(id).log_path
    }

    /// The PID of node `id`'s current process, if it runs.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        self.node(id).child.as_ref().map(Child::id)
    }

    /// The nodes of `group`'s voters in node `id`'s cluster map.
    async fn voters_of(&self, id: NodeId, group: u64) -> Option<Vec<NodeId>> {
        let url = format!("{}/v1/cluster", self.http_url(id));
        let map: serde_json::Value = self.http.get(&url).send().await.ok()?.json().await.ok()?;
        if group == 0 {
            return map["nodes"]
                .as_array()?
                .iter()
                .map(|n| n["node_id"].as_u64())
                .collect();
        }
        let info = map["groups"]
            .as_array()?
            .iter()
            .find(|g| g["group_id"] == group)?;
        info["voters"]
            .as_array()?
            .iter()
            .map(|v| v["node_id"].as_u64())
            .collect()
    }

    /// Asks node `id` for `GET /health`, once.
    pub async fn health(&self, id: NodeId) -> anyhow::Result<Health> {
        let url = format!("{}/health", self.http_url(id));
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        ensure!(status.is_success(), "GET {url} answered {status}");
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: unexpected body"))
    }

    /// The leader of `group` every running node reports, if they all answer,
    /// are ready and agree, and the leader itself is running and says it leads.
    pub async fn group_leader(&self, group: u64) -> Option<NodeId> {
        let running = self.running_ids();
        let mut agreed = None;
        let mut hosting = 0;
        for id in &running {
            let health = self.health(*id).await.ok()?;
            if !health.ready {
                return None;
            }
            // In a cluster larger than a group, some nodes host no replica of it.
            let Some(replica) = health.group(group) else {
                continue;
            };
            hosting += 1;
            let leader = replica.leader_node?;
            if *agreed.get_or_insert(leader) != leader {
                return None;
            }
            if leader == *id && replica.state != "leader" {
                return None;
            }
        }
        // Every voter of the group on a running node must be up (the map
        // says how many there are: an accounts group in a small region has
        // fewer than three).
        let leader = agreed.filter(|leader| running.contains(leader))?;
        let voters_running = self
            .voters_of(leader, group)
            .await?
            .iter()
            .filter(|n| running.contains(n))
            .count();
        (hosting >= voters_running).then_some(leader)
    }

    /// The leader of [`FIRST_DATA_GROUP`], where events of a cluster started
    /// with [`LocalCluster::start`] live, once every running node agrees.
    pub async fn leader_id(&self) -> Option<NodeId> {
        self.group_leader(FIRST_DATA_GROUP).await
    }

    /// Waits until every running node is ready and reports the same running
    /// leader of [`FIRST_DATA_GROUP`]; returns it.
    /// Fails early if a node exits, with the end of its log in the error.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<NodeId> {
        self.wait_group_leader(FIRST_DATA_GROUP, timeout).await
    }

    /// [`LocalCluster::wait_ready`] for the leader of `group`.
    pub async fn wait_group_leader(&mut self, group: u64, timeout: Duration) -> anyhow::Result<NodeId> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((id, status)) = self.reap_exited().into_iter().next() {
                bail!(
                    "node {id} exited with {status} while waiting for a leader; end of {}:\n{}",
                    self.log_path(id).display(),
                    self.log_tail(id)
                );
            }
            if let Some(leader) = self.group_leader(group).await {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                let mut report = String::new();
                for id in self.running_ids() {
                    let answer = match self.health(id).await {
                        Ok(health) => format!("{health:?}"),
                        Err(err) => format!("{err:#}"),
                    };
                    report.push_str(&format!("\n  node {id}: {answer}"));
                }
                bail!(
                    "no agreed leader of group {group} after {timeout:?}; logs in {}{report}",
                    self.base_dir.display()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Reaps children that exited on their own and returns their ids and statuses;
    /// each exit is reported once.
    pub fn reap_exited(&mut self) -> Vec<(NodeId, ExitStatus)> {
        let mut exited = Vec::new();
        for (id, node) in &mut self.nodes {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                node.child = None;
                let _ = fs::remove_file(&node.pid_path);
                exited.push((*id, status));
            }
        }
        exited
    }

    /// SIGKILLs node `id` and waits for it to die. Its data directory stays.
    pub fn kill(&mut self, id: NodeId) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        let mut child = node
            .child
            .take()
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        // kill() fails only if the child was already reaped, which `take` rules out;
        // a child that exited by itself just has nothing left to kill.
        let _ = child.kill();
        child.wait().with_context(|| format!("cannot reap node {id}"))?;
        let _ = fs::remove_file(&node.pid_path);
        Ok(())
    }

    /// How node `id` exited, if it stopped by itself (`None`: it still runs,
    /// or was never started).
    pub fn exit_status(&mut self, id: NodeId) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match self.node_mut(id).child.as_mut() {
            Some(child) => child
                .try_wait()
                .with_context(|| format!("cannot wait for node {id}")),
            None => Ok(None),
        }
    }

    /// Starts node `id` again with the same config and data directory.
    pub fn restart(&mut self, id: NodeId) -> anyhow::Result<()> {
        ensure!(self.node(id).child.is_none(), "node {id} is still running");
        self.spawn(id)
    }

    /// Stops every running node: SIGTERM, then SIGKILL for those still alive after a
    /// grace period of 10 s.
    pub async fn stop_all(&mut self) -> anyhow::Result<()> {
        for id in self.running_ids() {
            if let Some(pid) = self.pid(id) {
                // `kill` exits non-zero only if the process is already gone; the wait
                // below reaps it either way.
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while !self.running_ids().is_empty() && Instant::now() < deadline {
            self.reap_exited();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for id in self.running_ids() {
            tracing::warn!(node = id, "node ignored SIGTERM for {STOP_GRACE:?}; killing it");
            self.kill(id)?;
        }
        Ok(())
    }

    /// The last lines of node `id`'s log, for error messages.
    pub fn log_tail(&self, id: NodeId) -> String {
        let text = fs::read_to_string(self.log_path(id)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    fn spawn(&mut self, id: NodeId) -> anyhow::Result<()> {
        let binary = self.binary.clone();
        let node = self.node_mut(id);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .with_context(|| format!("cannot open {}", node.log_path.display()))?;
        writeln!(log, "--- launcher: starting node {id} ---")?;
        let stderr = log.try_clone()?;
        let mut command = match node.prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command
            .arg("node")
            .arg("--config")
            .arg(&node.config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {} for node {id}", binary.display()))?;
        fs::write(&node.pid_path, format!("{}\n", child.id()))?;
        node.child = Some(child);
        Ok(())
    }

    fn node(&self, id: NodeId) -> &LocalNode {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("node {id} is not part of this cluster"))
    }

    fn node_mut(&mut self, id: NodeId) -> &mut LocalNode {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("node {id} is not part of this cluster"))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
                let _ = fs::remove_file(&node.pid_path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_addrs_are_distinct() {
        let addrs = ephemeral_addrs(3).unwrap();
        let mut ports: Vec<u16> = addrs
            .iter()
            .flat_map(|a| [a.http.port(), a.grpc.port()])
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6);
    }

    #[test]
    fn preferred_addrs_fall_back_when_busy() {
        let busy = bind_loopback(0).unwrap();
        let port = busy.local_addr().unwrap().port();
        let addrs = preferred_addrs(1, port, 0).unwrap();
        assert_ne!(addrs[0].http.port(), port);
    }

    #[test]
    fn prepare_base_dir_refuses_foreign_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
        assert!(prepare_base_dir(dir.path()).is_err());
        assert!(dir.path().join("precious.txt").exists());

        let ours = dir.path().join("cluster");
        prepare_base_dir(&ours).unwrap();
        File::create(ours.join(MARKER_FILE)).unwrap();
        fs::write(ours.join("node-1.log"), "old run").unwrap();
        prepare_base_dir(&ours).unwrap();
        assert!(!ours.join("node-1.log").exists());
    }
}
