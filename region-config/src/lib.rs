//! Node and cluster configuration: what one `boxoffice` process is told at start.
//!
//! A configuration file is TOML. It names the node, its region, where it keeps
//! its data, the addresses it listens on, the initial members of the cluster and
//! the Raft timing. Everything is validated once, here, so that the rest of the
//! system can trust a [`NodeConfig`] it is handed.
//!
//! This crate deliberately knows nothing about Raft, RocksDB or HTTP: it only
//! describes and validates settings. Region-specific presentation (currency,
//! language, time zone) will live here too once read replicas serve search.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Node and region ids are the booking core's, defined once there.
pub use booking::{NodeId, RegionId};

/// Node ids stay below this: data-group replica ids start there.
pub const MAX_NODE_ID: NodeId = booking::FIRST_DATA_REPLICA_ID;

/// Why a configuration was refused. Each message names the field to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML for a node: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// One member of the cluster as every node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberConfig {
    pub node_id: NodeId,
    pub region: RegionId,
    /// Address of the node-to-node and forwarding gRPC server.
    pub grpc_addr: SocketAddr,
    /// Address of the client-facing HTTP server.
    pub http_addr: SocketAddr,
}

/// Raft timing and log compaction. The defaults suit a LAN or one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftTuning {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot once this many entries were applied since the last one.
    pub snapshot_after_logs: u64,
    /// Entries kept in the log behind the last snapshot, so that a briefly
    /// lagging follower catches up from the log rather than a snapshot.
    pub logs_to_keep_after_snapshot: u64,
    /// Heartbeat and election timing of the data groups (the settings above
    /// are the metadata group's). Slower than the metadata group's so that a
    /// node starting or waking hundreds of groups does not drown in their
    /// heartbeats; idle data groups park anyway (`quiesce_after_ms`).
    pub group_heartbeat_interval_ms: u64,
    pub group_election_timeout_min_ms: u64,
    pub group_election_timeout_max_ms: u64,
    /// A group with no new entry for this long parks its timers (no
    /// heartbeats, no election timeouts) until traffic or a dead node wakes
    /// it. 0 never parks.
    pub quiesce_after_ms: u64,
    /// A peer node that has not answered a liveness ping for this long counts
    /// as down, and parked followers of its leaders wake to elect new ones.
    pub node_down_after_ms: u64,
    /// A node whose wall clock is more than this far from a majority of its
    /// peers' (measured on the liveness pings), or that jumps by more,
    /// stamps no write: its leaders refuse writes and hand their groups
    /// over until it agrees again. CockroachDB's `max-offset` rule; 0 turns
    /// it off.
    pub max_clock_offset_ms: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_after_logs: 20_000,
            logs_to_keep_after_snapshot: 5_000,
            group_heartbeat_interval_ms: 250,
            // A follower campaigns after its leader's lease (openraft: the
            // maximum below) plus a timeout drawn from [min, max), so a dead
            // leader is replaced 2.0–2.6 s after its last heartbeat: writes
            // resume within 3 s.
            group_election_timeout_min_ms: 700,
            group_election_timeout_max_ms: 1_300,
            quiesce_after_ms: 2_000,
            node_down_after_ms: 1_500,
            max_clock_offset_ms: 500,
        }
    }
}

/// How a new cluster lays out its data groups. Read only when this node
/// initialises the cluster map (first bootstrap); later changes go through
/// the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterLayout {
    /// Data groups homed in each region that has a node.
    pub groups_per_region: u32,
    /// Voters per data group (capped at the number of members).
    pub replication: u8,
    /// `"every-region"` (the default): each data group keeps a non-voting
    /// read replica in every region that has none of its voters, so search
    /// and seat maps are served there without crossing the WAN. `"none"`:
    /// reads abroad go to the group. Seeds the cluster map's placement rules
    /// once, like `[[regions]]`.
    pub read_replicas: booking::ReadReplicas,
}

impl Default for ClusterLayout {
    fn default() -> Self {
        Self {
            groups_per_region: 4,
            replication: 3,
            read_replicas: booking::ReadReplicas::EveryRegion,
        }
    }
}

/// Customer accounts, tokens and signed tickets. Every node of a cluster must
/// have the same secrets: any node verifies a token another node signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The HMAC-SHA256 key of access tokens (JWT, HS256): at least 32 bytes.
    pub jwt_secret: String,
    /// Lifetime of an access token.
    #[serde(default = "default_access_ttl_secs")]
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh-token session since its last rotation.
    #[serde(default = "default_refresh_ttl_secs")]
    pub refresh_ttl_secs: u64,
    /// The Ed25519 private key of ticket QR codes, as 64 hex digits (its seed).
    /// Scanners verify tickets offline with the public key from
    /// `GET /v1/tickets/public-key`.
    pub ticket_signing_key: String,
}

fn default_access_ttl_secs() -> u64 {
    900
}

fn default_refresh_ttl_secs() -> u64 {
    30 * 24 * 3600
}

impl AuthConfig {
    /// The ticket signing seed as bytes.
    pub fn ticket_seed(&self) -> Result<[u8; 32], ConfigError> {
        let hex = self.ticket_signing_key.as_bytes();
        let invalid = || ConfigError::Invalid("auth.ticket_signing_key must be 64 hex digits".into());
        if hex.len() != 64 {
            return Err(invalid());
        }
        let mut seed = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| invalid())?;
            seed[i] = u8::from_str_radix(text, 16).map_err(|_| invalid())?;
        }
        Ok(seed)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.jwt_secret.len() < 32 {
            return Err(ConfigError::Invalid(
                "auth.jwt_secret must be at least 32 bytes".into(),
            ));
        }
        if !(30..=86_400).contains(&self.access_ttl_secs) {
            return Err(ConfigError::Invalid(
                "auth.access_ttl_secs must be 30..=86400".into(),
            ));
        }
        if !(60..=90 * 86_400).contains(&self.refresh_ttl_secs) {
            return Err(ConfigError::Invalid(
                "auth.refresh_ttl_secs must be 60..=7776000".into(),
            ));
        }
        self.ticket_seed().map(|_| ())
    }
}

/// The payment provider. Only the built-in simulated card processor exists
/// so far; a real provider plugs in behind the same boundary (`api::payments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// The HMAC key webhooks are signed with: at least 16 bytes, the same on every node.
    pub webhook_secret: String,
    /// Percentage of authorisations the simulated provider declines (0..=100).
    #[serde(default)]
    pub decline_rate_pct: u8,
    /// How long the simulated provider takes to answer.
    #[serde(default = "default_payment_latency_ms")]
    pub latency_ms: u64,
    /// A payment still pending after this long is asked of the provider again.
    #[serde(default = "default_payment_retry_after_ms")]
    pub retry_after_ms: u64,
}

fn default_payment_latency_ms() -> u64 {
    200
}

fn default_payment_retry_after_ms() -> u64 {
    5_000
}

impl PaymentsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.webhook_secret.len() < 16 {
            return Err(ConfigError::Invalid(
                "payments.webhook_secret must be at least 16 bytes".into(),
            ));
        }
        if self.decline_rate_pct > 100 {
            return Err(ConfigError::Invalid(
                "payments.decline_rate_pct must be 0..=100".into(),
            ));
        }
        if self.latency_ms > 60_000 || self.retry_after_ms == 0 {
            return Err(ConfigError::Invalid(
                "payments.latency_ms must be at most 60000 and retry_after_ms positive".into(),
            ));
        }
        Ok(())
    }
}

/// Where notifications go. Without an `smtp` section, e-mail notices are
/// written to the node's log instead (the demo's default); webhooks are
/// signed with `webhook_secret` when it is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    pub smtp: Option<SmtpConfig>,
    /// The HMAC key customer webhooks are signed with (at least 16 bytes).
    pub webhook_secret: Option<String>,
    /// Let customer webhooks use plain `http` and reach loopback, private and
    /// link-local addresses. Off by default: a webhook URL is a request the
    /// node makes on a customer's behalf, so it must only reach the public
    /// internet. The demo and the tests, whose receivers run on loopback,
    /// turn it on.
    pub allow_private_webhooks: bool,
}

/// An SMTP relay, without TLS or authentication (a local MTA or sink).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// The sender address of every notice.
    pub from: String,
}

impl NotificationsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.webhook_secret
            && secret.len() < 16
        {
            return Err(ConfigError::Invalid(
                "notifications.webhook_secret must be at least 16 bytes".into(),
            ));
        }
        if let Some(smtp) = &self.smtp
            && (smtp.host.is_empty() || smtp.port == 0 || !smtp.from.contains('@'))
        {
            return Err(ConfigError::Invalid(
                "notifications.smtp needs a host, a port and a from address".into(),
            ));
        }
        Ok(())
    }
}

/// A rate: `per_minute` on average, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

/// Rate limits on holds and checkouts, per account and per client IP, on
/// each node. A missing entry turns that limit off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub holds_per_account: Option<RateLimit>,
    pub holds_per_ip: Option<RateLimit>,
    pub checkouts_per_account: Option<RateLimit>,
    pub checkouts_per_ip: Option<RateLimit>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let rate = |per_minute, burst| Some(RateLimit { per_minute, burst });
        LimitsConfig {
            holds_per_account: rate(30, 10),
            holds_per_ip: rate(300, 60),
            checkouts_per_account: rate(10, 5),
            checkouts_per_ip: rate(100, 30),
        }
    }
}

/// Login protection (`api::logins`), per node: failed logins per account
/// and per client address within a window, beyond which each attempt waits
/// longer, and how many password hashes may run at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimits {
    /// Failed logins per account within `failure_window_secs` before a delay.
    pub failures_per_account: u32,
    /// Failed logins per client address within the window before a delay.
    pub failures_per_ip: u32,
    pub failure_window_secs: u64,
    /// Password hashes (argon2id, 19 MiB each) running at once on this node;
    /// a request beyond it is answered 503 with `Retry-After`, never queued.
    pub max_concurrent_hashes: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            failures_per_account: 5,
            failures_per_ip: 50,
            failure_window_secs: 15 * 60,
            max_concurrent_hashes: 4,
        }
    }
}

impl RaftTuning {
    /// This tuning stretched for a network whose round trips take
    /// `2 * one_way_ms`. openraft gives every append and heartbeat the
    /// heartbeat interval as its deadline, so the interval must hold a round
    /// trip and a follower's WAL sync with room to spare; elections and
    /// liveness then wait several intervals, so that latency alone never
    /// looks like a dead leader.
    pub fn over_wan(mut self, one_way_ms: u64) -> Self {
        if one_way_ms == 0 {
            return self;
        }
        let rtt = 2 * one_way_ms;
        let at_least = |value: &mut u64, floor: u64| *value = (*value).max(floor);
        at_least(&mut self.heartbeat_interval_ms, 2 * rtt + 100);
        at_least(&mut self.election_timeout_min_ms, 4 * self.heartbeat_interval_ms);
        at_least(&mut self.election_timeout_max_ms, 8 * self.heartbeat_interval_ms);
        at_least(&mut self.group_heartbeat_interval_ms, 2 * rtt + 150);
        at_least(
            &mut self.group_election_timeout_min_ms,
            4 * self.group_heartbeat_interval_ms,
        );
        at_least(
            &mut self.group_election_timeout_max_ms,
            8 * self.group_heartbeat_interval_ms,
        );
        at_least(&mut self.node_down_after_ms, 4 * self.group_heartbeat_interval_ms);
        self
    }
}

/// A simulated wide-area network between regions (`transport::wan`), for
/// demos and tests on one machine. Empty by default: real networks need
/// no help.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WanConfig {
    /// One-way delay between two different regions not listed in `links`.
    pub one_way_ms: u64,
    /// Share of calls between different regions that are lost, in percent.
    pub loss_pct: u8,
    /// Per pair of regions, from this node's region to a peer's: the matrix.
    /// A pair listed one way only holds both ways.
    pub links: Vec<WanLink>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WanLink {
    pub from: RegionId,
    pub to: RegionId,
    pub one_way_ms: u64,
    #[serde(default)]
    pub loss_pct: Option<u8>,
}

/// Longest simulated one-way delay accepted.
pub const MAX_WAN_ONE_WAY_MS: u64 = 10_000;

impl WanConfig {
    /// The one-way delay and loss from region `from` to region `to`.
    pub fn link(&self, from: &RegionId, to: &RegionId) -> (u64, u8) {
        if from == to {
            return (0, 0);
        }
        let listed = self
            .links
            .iter()
            .find(|l| &l.from == from && &l.to == to)
            .or_else(|| self.links.iter().find(|l| &l.from == to && &l.to == from));
        match listed {
            Some(link) => (link.one_way_ms, link.loss_pct.unwrap_or(self.loss_pct)),
            None => (self.one_way_ms, self.loss_pct),
        }
    }

    fn validate(&self) -> Result<(), String> {
        let delays = std::iter::once(self.one_way_ms).chain(self.links.iter().map(|l| l.one_way_ms));
        if delays.into_iter().any(|ms| ms > MAX_WAN_ONE_WAY_MS) {
            return Err(format!("wan: a one-way delay is at most {MAX_WAN_ONE_WAY_MS} ms"));
        }
        let losses = std::iter::once(self.loss_pct).chain(self.links.iter().filter_map(|l| l.loss_pct));
        if losses.into_iter().any(|pct| pct > 100) {
            return Err("wan: a loss share is a percentage, 0..=100".to_owned());
        }
        Ok(())
    }
}

/// The client-facing HTTP server's bounds (`api::serve`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A connection's request head must arrive within this long of its first
    /// byte (or of the connection's start).
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with nothing in flight is closed after this long.
    pub idle_timeout_ms: u64,
    /// A handler that has not answered within this long is answered for
    /// (`outcome_unknown` for writes). Not applied to `/v1/admin/*`.
    pub request_timeout_ms: u64,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: u32,
    /// Bytes of rendered answers (searches, local seat maps) kept for the
    /// next identical request while the replica has not moved; 0 turns the
    /// cache off.
    pub read_cache_bytes: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 30_000,
            max_connections: 10_000,
            read_cache_bytes: 64 << 20,
        }
    }
}

/// Mutual TLS on the node-to-node gRPC port. Every node presents a
/// certificate signed by the cluster's CA and accepts only peers that do;
/// `boxoffice admin gen-certs` makes a CA and node certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The cluster CA's certificate (PEM): the only issuer peers are trusted from.
    pub ca_cert: PathBuf,
    /// This node's certificate (PEM), signed by the CA, for the name
    /// [`CLUSTER_TLS_NAME`].
    pub cert: PathBuf,
    /// This node's private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// The DNS name every node certificate carries and every node checks its
/// peers for: membership is proven by the CA's signature, not by an address.
pub const CLUSTER_TLS_NAME: &str = "node.boxoffice.internal";

/// Secrets published with the source code (the demo's and the test
/// launcher's): a node refuses to start with one unless its config says
/// `allow_insecure_demo_secrets = true`.
pub const DEMO_SECRETS: &[&str] = &[
    "boxoffice-local-admin-token",
    "boxoffice-local-jwt-secret-not-for-production",
    "6c6f63616c2d7469636b65742d6b65792d6e6f742d666f722d70726f64756374",
    "boxoffice-local-webhook-secret",
    "boxoffice-local-notify-secret",
];

/// Why `secret` must not protect a production cluster, if it must not:
/// published with the code, one repeated character, or too few distinct
/// characters to be random.
pub fn weak_secret(secret: &str) -> Option<&'static str> {
    if DEMO_SECRETS.contains(&secret) {
        return Some("is a published demo secret");
    }
    let bytes = secret.as_bytes();
    let distinct = bytes.iter().collect::<BTreeSet<_>>().len();
    if distinct <= 1 {
        return Some("repeats one character");
    }
    // A random key of 16+ characters from any alphabet of 16+ symbols has
    // far more than 6 distinct characters; "abababab..." or "00000001" do not.
    if distinct < 7 {
        return Some("has too few distinct characters to be random");
    }
    None
}

/// Everything one `boxoffice node` process needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node_id: NodeId,
    pub region: RegionId,
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// Whether this node may initialise the cluster with `members` when its
    /// storage is empty. Initialising twice with the same members is harmless.
    #[serde(default)]
    pub bootstrap: bool,
    /// The initial voters, this node included.
    pub members: Vec<MemberConfig>,
    #[serde(default)]
    pub raft: RaftTuning,
    #[serde(default)]
    pub layout: ClusterLayout,
    /// Bearer token for `/v1/admin/*`; without it the admin API refuses every call.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Accounts and tickets; without it customer login is off and only the
    /// operator's `admin_token` authenticates.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Checkout; without it holds are confirmed only by staff or for free.
    #[serde(default)]
    pub payments: Option<PaymentsConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub notifications: NotificationsConfig,
    /// Mutual TLS between nodes; a node refuses to start without it.
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub login: LoginLimits,
    /// Start even though a secret is a published demo secret or plainly not
    /// random (the demo and the test launcher set this; production must not).
    #[serde(default)]
    pub allow_insecure_demo_secrets: bool,
    /// The region table: what each region's endpoint shows by default. The
    /// same on every node; a region missing from the cluster map is added
    /// from it at start-up (later changes: `PUT /v1/admin/regions/{id}`).
    #[serde(default)]
    pub regions: Vec<RegionConfig>,
    /// A simulated WAN between regions (demos and tests only).
    #[serde(default)]
    pub wan: WanConfig,
}

/// One `[[regions]]` entry (see [`booking::RegionInfo`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub id: RegionId,
    pub name: String,
    /// The ISO 4217 currency prices are shown in by default.
    pub currency: booking::Currency,
    /// A BCP 47 tag such as `en-IE`.
    pub locale: String,
    /// An IANA time zone name such as `Europe/Dublin`.
    pub time_zone: String,
    /// The region's public base URL.
    #[serde(default)]
    pub http_endpoint: Option<String>,
    /// ISO 3166-1 countries whose venues' events are homed here unless an
    /// organiser says otherwise; each in one region at most.
    #[serde(default)]
    pub countries: Vec<String>,
}

impl RegionConfig {
    pub fn info(&self) -> booking::RegionInfo {
        booking::RegionInfo {
            name: self.name.clone(),
            currency: self.currency,
            locale: self.locale.clone(),
            time_zone: self.time_zone.clone(),
            http_endpoint: self.http_endpoint.clone(),
            countries: self.countries.clone(),
        }
    }
}

impl NodeConfig {
    /// Every configured secret that is weak, with why (see [`weak_secret`]).
    pub fn weak_secrets(&self) -> Vec<String> {
        let mut secrets: Vec<(&str, &str)> = Vec::new();
        if let Some(token) = &self.admin_token {
            secrets.push(("admin_token", token));
        }
        if let Some(auth) = &self.auth {
            secrets.push(("auth.jwt_secret", &auth.jwt_secret));
            secrets.push(("auth.ticket_signing_key", &auth.ticket_signing_key));
        }
        if let Some(payments) = &self.payments {
            secrets.push(("payments.webhook_secret", &payments.webhook_secret));
        }
        if let Some(secret) = &self.notifications.webhook_secret {
            secrets.push(("notifications.webhook_secret", secret));
        }
        secrets
            .into_iter()
            .filter_map(|(name, secret)| weak_secret(secret).map(|why| format!("{name} {why}")))
            .collect()
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the config as TOML (used by the demo and test launchers).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a NodeConfig always serialises")
    }

    /// Checks the cross-field rules that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.node_id == 0 {
            return invalid("node_id must be at least 1".into());
        }
        if let Err(why) = self.wan.validate() {
            return invalid(why);
        }
        let mut described = BTreeSet::new();
        for region in &self.regions {
            if !described.insert(&region.id) {
                return invalid(format!("regions: {} is listed twice", region.id));
            }
            if let Err(e) = region.info().validate() {
                return invalid(format!("regions: {}: {e}", region.id));
            }
            if region.time_zone.parse::<chrono_tz::Tz>().is_err() {
                return invalid(format!(
                    "regions: {}: time_zone {:?} is not in the IANA tz database",
                    region.id, region.time_zone
                ));
            }
        }
        let mut homed = BTreeMap::new();
        for region in &self.regions {
            for country in &region.countries {
                if let Some(other) = homed.insert(country, &region.id) {
                    return invalid(format!(
                        "regions: country {country} is listed by both {other} and {}",
                        region.id
                    ));
                }
            }
        }
        if !self.regions.is_empty() {
            for region in std::iter::once(&self.region).chain(self.members.iter().map(|m| &m.region)) {
                if !described.contains(region) {
                    return invalid(format!("regions: {region} has nodes but no [[regions]] entry"));
                }
            }
        }
        let mut ids = BTreeSet::new();
        for m in &self.members {
            if m.node_id == 0 {
                return invalid("members: node_id must be at least 1".into());
            }
            if !ids.insert(m.node_id) {
                return invalid(format!("members: node_id {} is listed twice", m.node_id));
            }
        }
        match self.members.iter().find(|m| m.node_id == self.node_id) {
            None if self.bootstrap => {
                return invalid(format!(
                    "bootstrap is set but node {} is not among members",
                    self.node_id
                ));
            }
            Some(me) if me.grpc_addr != self.grpc_addr || me.http_addr != self.http_addr => {
                return invalid(format!(
                    "members entry for node {} has other addresses than grpc_addr/http_addr",
                    self.node_id
                ));
            }
            _ => {}
        }
        let r = &self.raft;
        let timings = [
            (
                "raft.",
                r.heartbeat_interval_ms,
                r.election_timeout_min_ms,
                r.election_timeout_max_ms,
            ),
            (
                "raft.group_",
                r.group_heartbeat_interval_ms,
                r.group_election_timeout_min_ms,
                r.group_election_timeout_max_ms,
            ),
        ];
        for (prefix, heartbeat, min, max) in timings {
            if heartbeat == 0 {
                return invalid(format!("{prefix}heartbeat_interval_ms must be positive"));
            }
            if min <= heartbeat * 2 {
                return invalid(format!(
                    "{prefix}election_timeout_min_ms must exceed twice {prefix}heartbeat_interval_ms"
                ));
            }
            if max <= min {
                return invalid(format!(
                    "{prefix}election_timeout_max_ms must exceed {prefix}election_timeout_min_ms"
                ));
            }
        }
        if r.snapshot_after_logs == 0 {
            return invalid("raft.snapshot_after_logs must be positive".into());
        }
        if r.node_down_after_ms < r.heartbeat_interval_ms {
            return invalid("raft.node_down_after_ms must be at least raft.heartbeat_interval_ms".into());
        }
        if self.node_id >= MAX_NODE_ID || self.members.iter().any(|m| m.node_id >= MAX_NODE_ID) {
            return invalid(format!("node ids must be below {MAX_NODE_ID}"));
        }
        if self.layout.replication == 0 {
            return invalid("layout.replication must be at least 1".into());
        }
        if self.layout.groups_per_region > 4096 {
            return invalid("layout.groups_per_region must be at most 4096".into());
        }
        if let Some(token) = &self.admin_token
            && token.len() < 16
        {
            return invalid("admin_token must be at least 16 characters".into());
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        if self.tls.is_none() {
            return invalid(
                "tls: node-to-node gRPC needs [tls] with ca_cert, cert and key \
                 (make them with `boxoffice admin gen-certs`)"
                    .into(),
            );
        }
        let weak = self.weak_secrets();
        if !weak.is_empty() && !self.allow_insecure_demo_secrets {
            return invalid(format!(
                "refusing weak secrets: {}; generate random ones (for example `openssl rand -hex 32`), \
                 or set allow_insecure_demo_secrets = true for a demo",
                weak.join("; ")
            ));
        }
        let h = &self.http;
        if h.header_read_timeout_ms == 0 || h.idle_timeout_ms == 0 || h.request_timeout_ms == 0 {
            return invalid("http: timeouts must be positive".into());
        }
        if h.max_connections == 0 {
            return invalid("http.max_connections must be at least 1".into());
        }
        let login = &self.login;
        if login.failures_per_account == 0
            || login.failures_per_ip == 0
            || login.failure_window_secs == 0
            || login.max_concurrent_hashes == 0
        {
            return invalid("login: every limit must be at least 1".into());
        }
        self.notifications.validate()?;
        if let Some(payments) = &self.payments {
            payments.validate()?;
        }
        let l = &self.limits;
        let rates = [
            l.holds_per_account,
            l.holds_per_ip,
            l.checkouts_per_account,
            l.checkouts_per_ip,
        ];
        if rates.iter().flatten().any(|r| r.per_minute == 0 || r.burst == 0) {
            return invalid(
                "limits: per_minute and burst must be positive (leave a limit out to turn it off)".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeConfig {
        let member = |id: u64| MemberConfig {
            node_id: id,
            region: RegionId::new("eu-west").unwrap(),
            grpc_addr: format!("127.0.0.1:{}", 9000 + id).parse().unwrap(),
            http_addr: format!("127.0.0.1:{}", 8000 + id).parse().unwrap(),
        };
        NodeConfig {
            node_id: 1,
            region: RegionId::new("eu-west").unwrap(),
            data_dir: "/tmp/n1".into(),
            http_addr: "127.0.0.1:8001".parse().unwrap(),
            grpc_addr: "127.0.0.1:9001".parse().unwrap(),
            bootstrap: true,
            members: vec![member(1), member(2), member(3)],
            raft: RaftTuning::default(),
            layout: ClusterLayout::default(),
            admin_token: Some("a-long-enough-admin-token".into()),
            auth: Some(AuthConfig {
                jwt_secret: "0123456789abcdef0123456789abcdef".into(),
                access_ttl_secs: 900,
                refresh_ttl_secs: 86_400,
                ticket_signing_key: "3f9c1a7be2d54086a1c9e7f30b6d2a584e1f7c93d0a2b6e58c4f1d7a9e3b5c20".into(),
            }),
            payments: Some(PaymentsConfig {
                webhook_secret: "a-webhook-secret-of-some-length".into(),
                decline_rate_pct: 10,
                latency_ms: 200,
                retry_after_ms: 5_000,
            }),
            limits: LimitsConfig::default(),
            notifications: NotificationsConfig::default(),
            tls: Some(TlsConfig {
                ca_cert: "/etc/boxoffice/ca.pem".into(),
                cert: "/etc/boxoffice/node.pem".into(),
                key: "/etc/boxoffice/node.key".into(),
            }),
            http: HttpConfig::default(),
            login: LoginLimits::default(),
            allow_insecure_demo_secrets: false,
            regions: Vec::new(),
            wan: WanConfig::default(),
        }
    }

    #[test]
    fn toml_round_trip() {
        let config = sample();
        let back: NodeConfig = toml::from_str(&config.to_toml()).unwrap();
        assert_eq!(config, back);
        back.validate().unwrap();
    }

    #[test]
    fn rejects_duplicate_members_and_bad_timing() {
        let mut config = sample();
        config.members[1].node_id = 1;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(m)) if m.contains("listed twice")));

        let mut config = sample();
        config.raft.election_timeout_min_ms = 150;
        assert!(config.validate().is_err());
    }

    #[test]
    fn rejects_weak_auth_secrets() {
        let mut config = sample();
        config.auth.as_mut().unwrap().jwt_secret = "short".into();
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(m)) if m.contains("jwt_secret")));
        let mut config = sample();
        config.auth.as_mut().unwrap().ticket_signing_key = "zz".repeat(32);
        assert!(
            matches!(config.validate(), Err(ConfigError::Invalid(m)) if m.contains("ticket_signing_key"))
        );
        let mut config = sample();
        config.auth.as_mut().unwrap().ticket_signing_key = "11".repeat(32);
        config.allow_insecure_demo_secrets = true;
        assert_eq!(config.auth.as_ref().unwrap().ticket_seed().unwrap(), [0x11; 32]);
        config.validate().unwrap();
    }

    #[test]
    fn refuses_demo_and_low_entropy_secrets_unless_allowed() {
        for (field, set) in [
            (
                "admin_token",
                (|c: &mut NodeConfig| c.admin_token = Some(DEMO_SECRETS[0].into())) as fn(&mut NodeConfig),
            ),
            ("auth.jwt_secret", |c| {
                c.auth.as_mut().unwrap().jwt_secret = "ab".repeat(20);
            }),
            ("auth.ticket_signing_key", |c| {
                c.auth.as_mut().unwrap().ticket_signing_key = "0".repeat(64);
            }),
            ("payments.webhook_secret", |c| {
                c.payments.as_mut().unwrap().webhook_secret = DEMO_SECRETS[3].into();
            }),
        ] {
            let mut config = sample();
            set(&mut config);
            let refused = config.validate().unwrap_err().to_string();
            assert!(refused.contains(field), "{field}: {refused}");
            config.allow_insecure_demo_secrets = true;
            config.validate().unwrap();
            assert_eq!(config.weak_secrets().len(), 1, "{field}");
        }
        assert_eq!(sample().weak_secrets(), Vec::<String>::new());
    }

    #[test]
    fn refuses_to_run_grpc_without_tls() {
        let mut config = sample();
        config.tls = None;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(m)) if m.contains("[tls]")));
    }

    #[test]
    fn rejects_bad_region_names() {
        assert!(RegionId::new("EU West").is_err());
        assert!(RegionId::new("").is_err());
        assert!(RegionId::new("us-east-1").is_ok());
        assert!(
            toml::from_str::<MemberConfig>(
                "node_id = 1\nregion = \"Bad\"\ngrpc_addr = \"127.0.0.1:1\"\nhttp_addr = \"127.0.0.1:2\""
            )
            .is_err()
        );
    }

    #[test]
    fn the_region_table_describes_every_region_with_nodes() {
        let mut config = sample();
        config.regions = vec![RegionConfig {
            id: RegionId::new("eu-west").unwrap(),
            name: "Europe (Dublin)".to_owned(),
            currency: booking::Currency::new("EUR").unwrap(),
            locale: "en-IE".to_owned(),
            time_zone: "Europe/Dublin".to_owned(),
            http_endpoint: Some("https://eu.tickets.example".to_owned()),
            countries: vec!["IE".to_owned(), "GB".to_owned()],
        }];
        config.validate().unwrap();
        let text = config.to_toml();
        assert!(text.contains("[[regions]]"), "{text}");
        let parsed: NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(parsed.regions, config.regions);

        let mut missing = config.clone();
        missing.members[1].region = RegionId::new("us-east").unwrap();
        let refused = missing.validate().unwrap_err().to_string();
        assert!(
            refused.contains("us-east has nodes but no [[regions]] entry"),
            "{refused}"
        );

        let mut twice = config.clone();
        twice.regions.push(twice.regions[0].clone());
        assert!(twice.validate().unwrap_err().to_string().contains("listed twice"));

        let mut gold = config.clone();
        gold.regions[0].currency = booking::Currency::new("XAU").unwrap();
        assert!(gold.validate().unwrap_err().to_string().contains("XAU"));

        let mut atlantis = config.clone();
        atlantis.regions[0].time_zone = "Europe/Atlantis".to_owned();
        assert!(
            atlantis
                .validate()
                .unwrap_err()
                .to_string()
                .contains("tz database")
        );

        let mut shared = config.clone();
        shared.regions.push(RegionConfig {
            id: RegionId::new("eu-north").unwrap(),
            countries: vec!["GB".to_owned()],
            ..shared.regions[0].clone()
        });
        let refused = shared.validate().unwrap_err().to_string();
        assert!(refused.contains("country GB is listed by both"), "{refused}");
    }

    #[test]
    fn the_wan_matrix_holds_both_ways_and_defaults_elsewhere() {
        let region = |id: &str| RegionId::new(id).unwrap();
        let wan = WanConfig {
            one_way_ms: 80,
            loss_pct: 1,
            links: vec![WanLink {
                from: region("eu"),
                to: region("ap"),
                one_way_ms: 150,
                loss_pct: None,
            }],
        };
        assert_eq!(wan.link(&region("eu"), &region("ap")), (150, 1));
        assert_eq!(wan.link(&region("ap"), &region("eu")), (150, 1));
        assert_eq!(wan.link(&region("eu"), &region("us")), (80, 1));
        assert_eq!(wan.link(&region("eu"), &region("eu")), (0, 0));
        let mut config = sample();
        config.wan = wan;
        config.validate().unwrap();
        config.wan.loss_pct = 101;
        assert!(config.validate().is_err());
        config.wan.loss_pct = 0;
        config.wan.one_way_ms = MAX_WAN_ONE_WAY_MS + 1;
        assert!(config.validate().is_err());
        // Stretched timing keeps a round trip inside every deadline.
        let tuning = RaftTuning::default().over_wan(150);
        assert!(tuning.heartbeat_interval_ms > 300 && tuning.group_heartbeat_interval_ms > 300);
        assert!(tuning.election_timeout_min_ms >= 4 * tuning.heartbeat_interval_ms);
        assert_eq!(RaftTuning::default().over_wan(0), RaftTuning::default());
    }
}
