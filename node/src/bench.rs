//! `boxoffice bench`: the "on-sale storm", the same workload the peers' benchmark runs
//! against etcd and PostgreSQL (`shared/peers/README.md`), here through our HTTP API.
//!
//! One cell = one fresh event of S seats and C concurrent clients. Each client loops:
//! pick a random seat not known to be taken (a shared in-process seat map, marked after
//! every hold attempt, so it is slightly stale and clients still collide), HOLD it, and
//! on success CONFIRM the hold. A client stops when every seat is sold, no seat is left
//! that is not known taken, the time limit passes, or it made 4*S+1000 attempts. Every
//! operation is bounded by the op timeout; within it a 503, 504 or connection error is
//! retried with the same `Idempotency-Key` (rotating over the nodes) until a definitive
//! answer, so a retried write never takes a second effect. Clients start on the nodes
//! round-robin. Cells run interleaved: for each round, every client count in turn.
//!
//! After the timed phase the store is read back: the number of sold seats must equal the
//! successful confirms the clients recorded, no seat may be in two clients' confirms, and
//! every confirmed seat's order must belong to that holder and hold exactly that seat.
//! The last line of each cell is one JSON object (keys as in the peers' bench, plus
//! `verify_ok`); [`run`] fails if any cell failed verification.
//!
//! Without `--urls` the bench starts its own local cluster from the given binary and
//! stops it at the end, also on Ctrl-C or SIGTERM. It does not measure the servers'
//! fsync counts (the peers' "write ops per WAL sync"): the node exports none yet.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use api::client::{Answer, Client, ClientError};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use region_config::RaftTuning;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Barrier, watch};

use crate::launcher::{self, LocalCluster};

/// How long a cell waits for the cluster to agree on a leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Budget for setup and verification requests (create event, read back).
const ADMIN_BUDGET: Duration = Duration::from_secs(60);

/// Orders read back concurrently during verification.
const VERIFY_CONCURRENCY: usize = 32;

/// Largest latency the histograms hold: 10 minutes, in microseconds.
const MAX_LATENCY_US: u64 = 600_000_000;

/// Pause before the first retry of an operation; doubles up to [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE_MIN: Duration = Duration::from_millis(5);
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(200);

/// Random picks a client tries before it scans the seat map for any seat left.
const RANDOM_PICKS: usize = 32;

/// Assumed kernel clock ticks per second for `/proc` CPU times (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Seats S in each cell's event.
    #[arg(long, default_value_t = 20_000)]
    pub seats: u32,
    /// Concurrent client counts C, comma separated; one cell per count and round.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub clients: Vec<usize>,
    /// Rounds; cells are interleaved round by round.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Time limit of each cell's booking phase, seconds.
    #[arg(long, default_value_t = 120)]
    pub duration_s: u64,
    /// Time limit of one operation including its retries, seconds (then it is an error).
    #[arg(long, default_value_t = 30)]
    pub op_timeout_s: u64,
    /// HTTP base URLs of an existing cluster, comma separated; without them the bench
    /// starts a local cluster.
    #[arg(long, value_delimiter = ',')]
    pub urls: Vec<String>,
    /// Nodes of the local cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Directory of the local cluster (configs, data, logs); an old one is wiped.
    #[arg(long, default_value = "./.bench")]
    pub base_dir: PathBuf,
    /// Label copied into the JSON line; with several cells each gets `-c{C}-r{round}` added.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Seed of the clients' seat choices (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl BenchOptions {
    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.seats > 0, "--seats must be positive");
        ensure!(!self.clients.is_empty(), "--clients needs at least one count");
        ensure!(
            self.clients.iter().all(|&c| c > 0),
            "--clients counts must be positive"
        );
        ensure!(self.rounds > 0, "--rounds must be positive");
        ensure!(self.duration_s > 0, "--duration-s must be positive");
        ensure!(self.op_timeout_s > 0, "--op-timeout-s must be positive");
        ensure!(
            !self.urls.is_empty() || self.nodes > 0,
            "--nodes must be positive"
        );
        Ok(())
    }

    fn cell_count(&self) -> usize {
        self.clients.len() * self.rounds as usize
    }
}

/// Runs every cell. `binary` is the `boxoffice` executable for the local cluster
/// (normally the running one); it is unused with `--urls`.
pub async fn run(opts: BenchOptions, binary: PathBuf) -> anyhow::Result<()> {
    opts.validate()?;
    let seed = opts.seed.unwrap_or_else(clock_seed);
    eprintln!("[bench] seed {seed} (pass --seed to repeat the seat choices)");

    let mut local = None;
    let urls = if opts.urls.is_empty() {
        let base_dir = launcher::prepare_base_dir(&opts.base_dir)?;
        let cluster = LocalCluster::start(&binary, &base_dir, opts.nodes, RaftTuning::default())?;
        eprintln!(
            "[bench] started {} local nodes; logs in {}",
            opts.nodes,
            base_dir.display()
        );
        let urls = cluster.http_urls();
        local = Some(cluster);
        urls
    } else {
        opts.urls
            .iter()
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .collect()
    };

    let outcome = tokio::select! {
        outcome = run_cells(&opts, &urls, local.as_mut(), seed) => outcome,
        signal = termination_signal() => Err(anyhow!("interrupted by {signal}")),
    };
    if let Some(cluster) = local.as_mut() {
        cluster.stop_all().await?;
    }
    outcome
}

async fn termination_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        // Without a SIGTERM handler, Ctrl-C still ends the bench cleanly.
        let _ = tokio::signal::ctrl_c().await;
        return "Ctrl-C";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = terminate.recv() => "SIGTERM",
    }
}

async fn run_cells(
    opts: &BenchOptions,
    urls: &[String],
    mut local: Option<&mut LocalCluster>,
    seed: u64,
) -> anyhow::Result<()> {
    let max_clients = opts.clients.iter().copied().max().unwrap_or(1);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(max_clients)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("cannot build the HTTP client")?;
    let token = std::env::var("BOXOFFICE_ADMIN_TOKEN")
        .unwrap_or_else(|_| crate::launcher::LOCAL_ADMIN_TOKEN.to_owned());
    let api = Api {
        client: Client::with_http(http, urls.to_vec())?
            .with_token(Some(&token))
            .with_retry_pauses(RETRY_PAUSE_MIN, RETRY_PAUSE_MAX),
    };
    let target = match &local {
        Some(_) => format!("boxoffice, {} local nodes", urls.len()),
        None => format!("boxoffice at {}", urls.join(",")),
    };
    // A local cluster is new, so its event ids start at 1; an existing cluster gets ids
    // from the clock, skipping any that exist.
    let mut next_event_id = if local.is_some() {
        1
    } else {
        clock_seed() / 1_000_000_000
    };

    let mut failed = Vec::new();
    for round in 1..=opts.rounds {
        for &clients in &opts.clients {
            match local.as_deref_mut() {
                Some(cluster) => {
                    cluster.wait_ready(READY_TIMEOUT).await?;
                }
                None => api.wait_for_leader(READY_TIMEOUT).await?,
            }
            let event_id = api.create_storm_event(&mut next_event_id, opts.seats).await?;
            let label = if !opts.label.is_empty() && opts.cell_count() == 1 {
                opts.label.clone()
            } else if opts.label.is_empty() {
                format!("boxoffice-c{clients}-r{round}")
            } else {
                format!("{}-c{clients}-r{round}", opts.label)
            };
            let node_pids = local
                .as_deref()
                .map(|cluster| {
                    cluster
                        .node_ids()
                        .into_iter()
                        .filter_map(|id| cluster.pid(id))
                        .collect()
                })
                .unwrap_or_default();
            let cell = Cell {
                api: api.clone(),
                event_id,
                clients,
                seats: opts.seats,
                limit: Duration::from_secs(opts.duration_s),
                op_timeout: Duration::from_secs(opts.op_timeout_s),
                seed: seed ^ (u64::from(round) << 32) ^ clients as u64,
                node_pids,
            };
            let report = cell.run().await?;
            report.print(&target, &label, round);
            if !report.verify.ok() {
                failed.push(label);
            }
        }
    }
    if !failed.is_empty() {
        bail!("verification failed in {}", failed.join(", "));
    }
    Ok(())
}

fn clock_seed() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------
// Talking to the cluster.

/// How an answer is summed up in an error line.
fn describe(answer: &Answer) -> String {
    format!("{} {}", answer.status.as_u16(), answer.code())
}

/// The HTTP client shared by all clients of a run (one connection pool).
#[derive(Clone)]
struct Api {
    /// Books as the box office does, with the operator token naming each
    /// customer: customer login is not what is measured.
    client: Client,
}

impl Api {
    fn urls(&self) -> &[String] {
        self.client.urls()
    }

    /// Sums the WAL counters of every node; a node that does not answer counts as zero.
    async fn wal_counters(&self) -> WalCounters {
        let mut counters = WalCounters::default();
        for node in 0..self.urls().len() {
            let answer = self
                .client
                .get("/metrics")
                .to(node)
                .once()
                .try_timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Ok(answer) = answer {
                counters.add_metrics_text(&answer.text);
            }
        }
        counters
    }

    /// Sends one request, starting at node `first`, under the API client's retry
    /// rule (the same `key` goes with every try, so a write takes effect at most
    /// once), within `budget`. Returns the answer and how many tries were retries.
    async fn send(
        &self,
        method: Method,
        first: usize,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
        budget: Duration,
    ) -> (Result<Answer, ClientError>, u64) {
        let mut request = self
            .client
            .request(method, path)
            .to(first)
            .budget(budget)
            .try_timeout(budget);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.key(key);
        }
        match request.send().await {
            Ok(answer) => {
                let retries = u64::from(answer.retries);
                (Ok(answer), retries)
            }
            Err(err) => {
                let retries = match &err {
                    ClientError::NoAnswer { tries, .. } => u64::from(tries.saturating_sub(1)),
                    _ => 0,
                };
                (Err(err), retries)
            }
        }
    }

    /// Sends an administrative request and insists on a definitive answer.
    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let (answer, _) = self.send(method.clone(), 0, path, body, key, ADMIN_BUDGET).await;
        answer.with_context(|| format!("{method} {path} within {ADMIN_BUDGET:?}"))
    }

    async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for node in 0..self.urls().len() {
                let health = self
                    .client
                    .get("/health")
                    .to(node)
                    .once()
                    .try_timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if let Ok(answer) = health
                    && answer.body.get("ready").and_then(Value::as_bool) == Some(true)
                {
                    return Ok(());
                }
            }
            ensure!(
                Instant::now() < deadline,
                "no node reported ready (map written, every group led) within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates the cell's event under the first free id at or after `next_id`.
    async fn create_storm_event(&self, next_id: &mut u64, seats: u32) -> anyhow::Result<u64> {
        let spec = storm_event_spec(seats)?;
        for _ in 0..100 {
            let event_id = *next_id;
            *next_id += 1;
            let body = json!({ "event_id": event_id, "spec": api::dto::EventSpec::from(spec.clone()) });
            let key = format!("bench-create-{event_id}-{}", clock_seed());
            let answer = self
                .admin(Method::POST, "/v1/events", Some(&body), Some(&key))
                .await?;
            match answer.status {
                StatusCode::CREATED => {
                    let capacity = answer.body.get("capacity").and_then(Value::as_u64);
                    ensure!(
                        capacity == Some(u64::from(seats)),
                        "event {event_id} has capacity {capacity:?}, expected {seats}"
                    );
                    return Ok(event_id);
                }
                StatusCode::CONFLICT if answer.code() == "event_exists" => continue,
                _ => bail!(
                    "creating event {event_id} failed: {} {}",
                    answer.status,
                    answer.body
                ),
            }
        }
        bail!("found no free event id in 100 tries")
    }

    /// The event's seat ids in seat-map order, and each seat's status.
    async fn seat_map(&self, event_id: u64) -> anyhow::Result<(Vec<String>, Vec<String>, Option<u64>)> {
        let path = format!("/v1/events/{event_id}");
        let answer = self.admin(Method::GET, &path, None, None).await?;
        ensure!(
            answer.status == StatusCode::OK,
            "GET {path}: {} {}",
            answer.status,
            answer.body
        );
        let mut ids = Vec::new();
        let mut statuses = Vec::new();
        let sections = answer.body["sections"]
            .as_array()
            .context("event view without sections")?;
        for section in sections {
            for row in section["rows"].as_array().context("section without rows")? {
                for seat in row["seats"].as_array().context("row without seats")? {
                    ids.push(seat["id"].as_str().context("seat without id")?.to_owned());
                    statuses.push(seat["status"].as_str().unwrap_or("").to_owned());
                }
            }
        }
        Ok((ids, statuses, answer.body["sold"].as_u64()))
    }
}

/// A grid of exactly `seats` seats: rows of up to 50 seats, sections of up to 20 rows.
fn storm_event_spec(seats: u32) -> anyhow::Result<booking::EventSpec> {
    let (sections, rows, per_row) = grid_shape(seats);
    let currency = booking::Currency::new("EUR")?;
    let tier = booking::PriceTier {
        name: "standard".to_owned(),
        price: booking::Money::new(5_000, currency),
    };
    Ok(booking::EventSpec::grid(
        "on-sale storm",
        currency,
        sections,
        rows,
        per_row,
        vec![tier],
    ))
}

/// Factors `seats` into sections x rows x seats per row, preferring 50 seats per row
/// and 20 rows per section (20000 = 20 x 20 x 50).
fn grid_shape(seats: u32) -> (u32, u32, u32) {
    let largest_divisor_up_to = |n: u32, limit: u32| {
        (1..=limit.min(n))
            .rev()
            .find(|d| n.is_multiple_of(*d))
            .unwrap_or(1)
    };
    let per_row = largest_divisor_up_to(seats, 50);
    let rows = largest_divisor_up_to(seats / per_row, 20);
    (seats / per_row / rows, rows, per_row)
}

// ---------------------------------------------------------------------------------------
// One cell.

struct Cell {
    api: Api,
    event_id: u64,
    clients: usize,
    seats: u32,
    limit: Duration,
    op_timeout: Duration,
    seed: u64,
    node_pids: Vec<u32>,
}

/// State every client of a cell shares.
struct Storm {
    api: Api,
    event_id: u64,
    seat_ids: Vec<String>,
    /// Seats known to be taken: a hold was attempted on them.
    taken: Vec<AtomicBool>,
    sold: AtomicU64,
    deadline: OnceLock<Instant>,
    op_timeout: Duration,
    max_attempts: u64,
    seed: u64,
}

impl Storm {
    fn should_stop(&self) -> bool {
        self.sold.load(Ordering::Relaxed) >= self.seat_ids.len() as u64
            || self
                .deadline
                .get()
                .is_some_and(|deadline| Instant::now() >= *deadline)
    }

    /// A random seat not known to be taken, or `None` when every seat is.
    fn pick_seat(&self, rng: &mut StdRng) -> Option<usize> {
        let n = self.seat_ids.len();
        let free = |seat: &usize| !self.taken[*seat].load(Ordering::Relaxed);
        if let Some(seat) = (0..RANDOM_PICKS).map(|_| rng.random_range(0..n)).find(free) {
            return Some(seat);
        }
        // The map is nearly full: scan from a random start so clients spread out.
        let start = rng.random_range(0..n);
        (0..n).map(|i| (start + i) % n).find(free)
    }
}

/// A confirm a client saw succeed.
struct Confirmed {
    seat: usize,
    holder: String,
    order_id: String,
}

/// What one client measured.
struct Tally {
    hold_latency: Histogram<u64>,
    confirm_latency: Histogram<u64>,
    hold_attempts: u64,
    failed_holds: u64,
    failed_confirms: u64,
    errors: u64,
    retries: u64,
    first_error: Option<String>,
    confirmed: Vec<Confirmed>,
}

impl Tally {
    fn new() -> Self {
        Self {
            hold_latency: new_histogram(),
            confirm_latency: new_histogram(),
            hold_attempts: 0,
            failed_holds: 0,
            failed_confirms: 0,
            errors: 0,
            retries: 0,
            first_error: None,
            confirmed: Vec::new(),
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hold_latency.add(&other.hold_latency);
        let _ = self.confirm_latency.add(&other.confirm_latency);
        self.hold_attempts += other.hold_attempts;
        self.failed_holds += other.failed_holds;
        self.failed_confirms += other.failed_confirms;
        self.errors += other.errors;
        self.retries += other.retries;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.confirmed.extend(other.confirmed);
    }
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

pub(crate) fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(MAX_LATENCY_US);
    // Clamped into the bounds, so recording cannot fail.
    let _ = histogram.record(micros.clamp(1, MAX_LATENCY_US));
}

/// The JSON id of a created hold or order, as it goes into a path.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) => Some(text.clone()),
        _ => None,
    }
}

async fn storm_client(
    storm: Arc<Storm>,
    client: usize,
    ready: Arc<Barrier>,
    mut start: watch::Receiver<bool>,
) -> Tally {
    let mut tally = Tally::new();
    let api = &storm.api;
    let home = client % api.urls().len();
    // Open this client's connection before the clock starts.
    let _ = api
        .client
        .get("/health")
        .to(home)
        .once()
        .try_timeout(Duration::from_secs(5))
        .send()
        .await;
    ready.wait().await;
    if start.wait_for(|go| *go).await.is_err() {
        return tally;
    }

    let mut rng = StdRng::seed_from_u64(storm.seed ^ (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let holder = format!("c{client}");
    let holds_path = format!("/v1/events/{}/holds", storm.event_id);
    for attempt in 1..=storm.max_attempts {
        if storm.should_stop() {
            break;
        }
        let Some(seat) = storm.pick_seat(&mut rng) else {
            break;
        };
        let seat_id = &storm.seat_ids[seat];
        let key = format!("bench-e{}-c{client}-a{attempt}", storm.event_id);

        tally.hold_attempts += 1;
        let body = json!({ "holder": holder, "seats": [seat_id] });
        let started = Instant::now();
        let (answer, retries) = api
            .send(
                Method::POST,
                home,
                &holds_path,
                Some(&body),
                Some(&format!("{key}-hold")),
                storm.op_timeout,
            )
            .await;
        record(&mut tally.hold_latency, started.elapsed());
        tally.retries += retries;
        storm.taken[seat].store(true, Ordering::Relaxed);
        let hold_id = match answer {
            Ok(answer) if answer.status == StatusCode::CREATED => match id_text(&answer.body["hold_id"]) {
                Some(hold_id) => hold_id,
                None => {
                    tally.error(format!("hold {seat_id}: answer without hold_id: {}", answer.body));
                    continue;
                }
            },
            Ok(answer) if answer.status == StatusCode::CONFLICT => {
                tally.failed_holds += 1;
                continue;
            }
            Ok(answer) => {
                tally.error(format!("hold {seat_id}: {}", describe(&answer)));
                continue;
            }
            Err(no) => {
                tally.error(format!("hold {seat_id}: {no}"));
                continue;
            }
        };

        let confirm_path = format!("{holds_path}/{hold_id}/confirm");
        let body = json!({ "holder": holder });
        let started = Instant::now();
        let (answer, retries) = api
            .send(
                Method::POST,
                home,
                &confirm_path,
                Some(&body),
                Some(&format!("{key}-confirm")),
                storm.op_timeout,
            )
            .await;
        record(&mut tally.confirm_latency, started.elapsed());
        tally.retries += retries;
        match answer {
            Ok(answer) if answer.status == StatusCode::CREATED => match id_text(&answer.body["order_id"]) {
                Some(order_id) => {
                    storm.sold.fetch_add(1, Ordering::Relaxed);
                    tally.confirmed.push(Confirmed {
                        seat,
                        holder: holder.clone(),
                        order_id,
                    });
                }
                None => tally.error(format!(
                    "confirm {hold_id}: answer without order_id: {}",
                    answer.body
                )),
            },
            Ok(answer) if answer.status == StatusCode::CONFLICT || answer.status == StatusCode::GONE => {
                tally.failed_confirms += 1;
            }
            Ok(answer) => tally.error(format!("confirm {hold_id}: {}", describe(&answer))),
            Err(no) => tally.error(format!("confirm {hold_id}: {no}")),
        }
    }
    tally
}

impl Cell {
    async fn run(self) -> anyhow::Result<CellReport> {
        let (seat_ids, _, _) = self.api.seat_map(self.event_id).await?;
        ensure!(
            seat_ids.len() == self.seats as usize,
            "event {} has {} seats, expected {}",
            self.event_id,
            seat_ids.len(),
            self.seats
        );
        let storm = Arc::new(Storm {
            api: self.api.clone(),
            event_id: self.event_id,
            taken: seat_ids.iter().map(|_| AtomicBool::new(false)).collect(),
            seat_ids,
            sold: AtomicU64::new(0),
            deadline: OnceLock::new(),
            op_timeout: self.op_timeout,
            max_attempts: u64::from(self.seats) * 4 + 1000,
            seed: self.seed,
        });
        eprintln!(
            "[bench] event {}: {} seats, {} clients, limit {:?}",
            self.event_id, self.seats, self.clients, self.limit
        );

        let ready = Arc::new(Barrier::new(self.clients + 1));
        let (start_tx, start_rx) = watch::channel(false);
        let tasks: Vec<_> = (0..self.clients)
            .map(|client| {
                tokio::spawn(storm_client(
                    storm.clone(),
                    client,
                    ready.clone(),
                    start_rx.clone(),
                ))
            })
            .collect();
        ready.wait().await;
        let wal_before = self.api.wal_counters().await;
        let cpu_before = CpuSample::take(&self.node_pids);
        let started = Instant::now();
        storm
            .deadline
            .set(started + self.limit)
            .map_err(|_| anyhow!("cell deadline set twice"))?;
        start_tx.send_replace(true);

        let progress = tokio::spawn(report_progress(storm.clone()));
        let mut tally = Tally::new();
        for task in tasks {
            tally.merge(task.await.context("a bench client panicked")?);
        }
        let wall = started.elapsed();
        let cpu_after = CpuSample::take(&self.node_pids);
        progress.abort();
        let wal_after = self.api.wal_counters().await;
        let durability = wal_after.since(&wal_before);

        let verify = self.verify(&storm, &tally.confirmed).await?;
        Ok(CellReport {
            event_id: self.event_id,
            seats: self.seats,
            clients: self.clients,
            limit: self.limit,
            wall,
            cpu: cpu_after.since(&cpu_before),
            durability,
            tally,
            verify,
        })
    }

    /// Reads the store back and checks the clients' confirms against it.
    async fn verify(&self, storm: &Storm, confirmed: &[Confirmed]) -> anyhow::Result<Verification> {
        let (_, statuses, view_sold) = self.api.seat_map(self.event_id).await?;
        let store_sold = statuses.iter().filter(|status| *status == "sold").count() as u64;
        let still_held = statuses.iter().filter(|status| *status == "held").count() as u64;

        let mut confirms_per_seat: HashMap<usize, u32> = HashMap::new();
        for confirm in confirmed {
            *confirms_per_seat.entry(confirm.seat).or_default() += 1;
        }
        let duplicates = confirms_per_seat.values().filter(|&&count| count > 1).count() as u64;
        let not_sold_in_store = confirms_per_seat
            .keys()
            .filter(|&&seat| statuses[seat] != "sold")
            .count() as u64;

        // Every confirmed order, read back with a bounded number of requests in flight.
        let expected: Vec<(String, String, String)> = confirmed
            .iter()
            .map(|c| {
                (
                    c.order_id.clone(),
                    c.holder.clone(),
                    storm.seat_ids[c.seat].clone(),
                )
            })
            .collect();
        let chunk = expected.len().div_ceil(VERIFY_CONCURRENCY).max(1);
        let mut readers = tokio::task::JoinSet::new();
        for part in expected.chunks(chunk) {
            let part = part.to_vec();
            let api = self.api.clone();
            let event_id = self.event_id;
            readers.spawn(async move {
                let mut mismatches = Vec::new();
                for (order_id, holder, seat) in part {
                    let path = format!("/v1/events/{event_id}/orders/{order_id}");
                    match api.admin(Method::GET, &path, None, None).await {
                        Ok(answer) if answer.status == StatusCode::OK => {
                            if let Some(problem) = order_mismatch(&answer.body, &holder, &seat) {
                                mismatches.push(format!("order {order_id}: {problem}"));
                            }
                        }
                        Ok(answer) => mismatches.push(format!("order {order_id}: {}", describe(&answer))),
                        Err(err) => mismatches.push(format!("order {order_id}: {err:#}")),
                    }
                }
                mismatches
            });
        }
        let mut order_mismatches = Vec::new();
        while let Some(part) = readers.join_next().await {
            order_mismatches.extend(part.context("an order reader panicked")?);
        }

        Ok(Verification {
            store_sold,
            view_sold,
            client_confirms: confirmed.len() as u64,
            duplicates,
            not_sold_in_store,
            orders_checked: expected.len() as u64,
            order_mismatches,
            still_held,
        })
    }
}

/// Why an order does not show exactly `seat` confirmed for `holder`, if it does not.
fn order_mismatch(order: &Value, holder: &str, seat: &str) -> Option<String> {
    if order["status"] != "confirmed" {
        return Some(format!("status {}", order["status"]));
    }
    if order["holder"] != holder {
        return Some(format!("holder {} instead of {holder}", order["holder"]));
    }
    let seats: Vec<&str> = order["tickets"]
        .as_array()
        .map(|tickets| tickets.iter().filter_map(|t| t["seat"].as_str()).collect())
        .unwrap_or_default();
    if seats != [seat] {
        return Some(format!("seats {seats:?} instead of [{seat}]"));
    }
    None
}

async fn report_progress(storm: Arc<Storm>) {
    let mut last = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    ticker.tick().await;
    for elapsed in (10..).step_by(10) {
        ticker.tick().await;
        let sold = storm.sold.load(Ordering::Relaxed);
        eprintln!("[bench] t={elapsed}s sold={sold} (+{} in 10 s)", sold - last);
        last = sold;
    }
}

// ---------------------------------------------------------------------------------------
// CPU accounting from /proc (Linux).

#[derive(Default)]
struct CpuSample {
    busy: u64,
    iowait: u64,
    total: u64,
    own: u64,
    nodes: u64,
}

impl CpuSample {
    /// Reads the machine's CPU counters, this process's CPU time and the nodes'.
    /// Unreadable counters stay zero.
    fn take(node_pids: &[u32]) -> Self {
        let mut sample = Self::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            // cpu  user nice system idle iowait irq softirq steal ...
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            if fields.len() >= 8 {
                sample.total = fields[..8].iter().sum();
                sample.iowait = fields[4];
                sample.busy = sample.total - fields[3] - fields[4];
            }
        }
        sample.own = process_ticks("self").unwrap_or(0);
        sample.nodes = node_pids
            .iter()
            .filter_map(|pid| process_ticks(&pid.to_string()))
            .sum();
        sample
    }

    fn since(&self, before: &Self) -> CpuUse {
        let total = self.total.saturating_sub(before.total).max(1) as f64;
        CpuUse {
            machine_busy_pct: self.busy.saturating_sub(before.busy) as f64 * 100.0 / total,
            machine_iowait_pct: self.iowait.saturating_sub(before.iowait) as f64 * 100.0 / total,
            bench_cpu_s: self.own.saturating_sub(before.own) as f64 / TICKS_PER_SECOND,
            nodes_cpu_s: self.nodes.saturating_sub(before.nodes) as f64 / TICKS_PER_SECOND,
        }
    }
}

/// User plus system clock ticks of `/proc/{pid}/stat`.
pub(crate) fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after its closing parenthesis
    // start with the state (field 3), so utime and stime (14, 15) are at 11 and 12.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

struct CpuUse {
    machine_busy_pct: f64,
    machine_iowait_pct: f64,
    bench_cpu_s: f64,
    nodes_cpu_s: f64,
}

// ---------------------------------------------------------------------------------------
// Reporting.

struct Verification {
    store_sold: u64,
    /// The event view's own `sold` count.
    view_sold: Option<u64>,
    client_confirms: u64,
    duplicates: u64,
    not_sold_in_store: u64,
    orders_checked: u64,
    order_mismatches: Vec<String>,
    still_held: u64,
}

impl Verification {
    fn ok(&self) -> bool {
        self.store_sold == self.client_confirms
            && self.view_sold == Some(self.client_confirms)
            && self.duplicates == 0
            && self.not_sold_in_store == 0
            && self.order_mismatches.is_empty()
    }
}

struct CellReport {
    event_id: u64,
    seats: u32,
    clients: usize,
    limit: Duration,
    wall: Duration,
    cpu: CpuUse,
    durability: WalCounters,
    tally: Tally,
    verify: Verification,
}

/// Write-ahead-log counters summed over every node's `/metrics`: how many
/// fsyncs the cluster paid for its log entries (the Raft batching factor).
#[derive(Debug, Clone, Copy, Default)]
struct WalCounters {
    syncs: u64,
    entries: u64,
    appends: u64,
    sync_micros: u64,
}

impl WalCounters {
    fn since(&self, before: &Self) -> Self {
        Self {
            syncs: self.syncs.saturating_sub(before.syncs),
            entries: self.entries.saturating_sub(before.entries),
            appends: self.appends.saturating_sub(before.appends),
            sync_micros: self.sync_micros.saturating_sub(before.sync_micros),
        }
    }

    fn entries_per_sync(&self) -> f64 {
        self.entries as f64 / self.syncs.max(1) as f64
    }

    fn add_metrics_text(&mut self, text: &str) {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            match name {
                "boxoffice_wal_syncs_total" => self.syncs += value,
                "boxoffice_log_entries_written_total" => self.entries += value,
                "boxoffice_wal_appends_total" => self.appends += value,
                "boxoffice_wal_sync_microseconds_total" => self.sync_micros += value,
                _ => {}
            }
        }
    }
}

fn millis(micros: u64) -> f64 {
    round3(micros as f64 / 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(crate) fn latency_json(histogram: &Histogram<u64>) -> Value {
    if histogram.is_empty() {
        return Value::Null;
    }
    json!({
        "n": histogram.len(),
        "p50_ms": millis(histogram.value_at_quantile(0.50)),
        "p90_ms": millis(histogram.value_at_quantile(0.90)),
        "p99_ms": millis(histogram.value_at_quantile(0.99)),
        "max_ms": millis(histogram.max()),
        "mean_ms": round3(histogram.mean() / 1000.0),
    })
}

pub(crate) fn latency_line(histogram: &Histogram<u64>) -> String {
    if histogram.is_empty() {
        return "(none)".to_owned();
    }
    format!(
        "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (n={})",
        millis(histogram.value_at_quantile(0.50)),
        millis(histogram.value_at_quantile(0.90)),
        millis(histogram.value_at_quantile(0.99)),
        millis(histogram.max()),
        histogram.len()
    )
}

impl CellReport {
    fn print(&self, target: &str, label: &str, round: u32) {
        let tally = &self.tally;
        let verify = &self.verify;
        let sold = tally.confirmed.len() as u64;
        let all_sold = sold >= u64::from(self.seats);
        let wall_s = self.wall.as_secs_f64();
        let confirms_per_s = sold as f64 / wall_s.max(f64::EPSILON);
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("cell             : {label} ({target}), event {}", self.event_id);
        println!("seats/clients    : {} / {}", self.seats, self.clients);
        println!(
            "seats sold       : {sold} ({})",
            if all_sold { "all" } else { "NOT all" }
        );
        println!(
            "wall time        : {wall_s:.3} s (limit {} s)",
            self.limit.as_secs()
        );
        println!("confirmed/s      : {confirms_per_s:.1}");
        println!(
            "hold attempts    : {}  failed holds: {}  failed confirms: {}  errors: {}  retries: {}",
            tally.hold_attempts, tally.failed_holds, tally.failed_confirms, tally.errors, tally.retries
        );
        println!("hold latency     : {}", latency_line(&tally.hold_latency));
        println!("confirm latency  : {}", latency_line(&tally.confirm_latency));
        println!(
            "cpu              : machine busy {:.1}% of {cores} cores, iowait {:.1}%, bench {:.2} cpu-s, nodes {:.2} cpu-s",
            self.cpu.machine_busy_pct,
            self.cpu.machine_iowait_pct,
            self.cpu.bench_cpu_s,
            self.cpu.nodes_cpu_s
        );
        println!(
            "verify           : store_sold={} view_sold={} client_confirms={} duplicates={} not_sold={} \
             order_mismatches={} still_held={} orders_checked={} -> {}",
            verify.store_sold,
            verify.view_sold.map_or("?".to_owned(), |n| n.to_string()),
            verify.client_confirms,
            verify.duplicates,
            verify.not_sold_in_store,
            verify.order_mismatches.len(),
            verify.still_held,
            verify.orders_checked,
            if verify.ok() { "OK" } else { "FAILED" }
        );
        for mismatch in verify.order_mismatches.iter().take(10) {
            println!("  mismatch       : {mismatch}");
        }
        println!(
            "durability       : {} WAL syncs for {} log entries on all nodes ({:.1} entries per sync, {:.2} s in fsync)",
            self.durability.syncs,
            self.durability.entries,
            self.durability.entries_per_sync(),
            self.durability.sync_micros as f64 / 1e6
        );
        if let Some(error) = &tally.first_error {
            println!("first error      : {error}");
        }
        let summary = json!({
            "bench": "onsale",
            "target": "boxoffice",
            "label": label,
            "round": round,
            "server": target,
            "event_id": self.event_id,
            "seats": self.seats,
            "clients": self.clients,
            "limit_s": self.limit.as_secs(),
            "sold": sold,
            "all_sold": all_sold,
            "wall_s": round3(wall_s),
            "confirms_per_s": round1(confirms_per_s),
            "hold_attempts": tally.hold_attempts,
            "failed_holds": tally.failed_holds,
            "failed_confirms": tally.failed_confirms,
            "errors": tally.errors,
            "retries": tally.retries,
            "first_error": tally.first_error,
            "hold": latency_json(&tally.hold_latency),
            "confirm": latency_json(&tally.confirm_latency),
            "durability": {
                "wal_syncs": self.durability.syncs,
                "log_entries_written": self.durability.entries,
                "entries_per_wal_sync": round1(self.durability.entries_per_sync()),
                "wal_sync_s": round3(self.durability.sync_micros as f64 / 1e6),
            },
            "cpu": {
                "machine_busy_pct": round1(self.cpu.machine_busy_pct),
                "machine_iowait_pct": round1(self.cpu.machine_iowait_pct),
                "bench_cpu_s": round3(self.cpu.bench_cpu_s),
                "nodes_cpu_s": round3(self.cpu.nodes_cpu_s),
                "cores": cores,
            },
            "verify": {
                "store_sold": verify.store_sold,
                "view_sold": verify.view_sold,
                "client_confirms": verify.client_confirms,
                "duplicates": verify.duplicates,
                "not_sold_in_store": verify.not_sold_in_store,
                "order_mismatches": verify.order_mismatches.len(),
                "orders_checked": verify.orders_checked,
                "still_held": verify.still_held,
                "ok": verify.ok(),
            },
            "verify_ok": verify.ok(),
        });
        println!("{summary}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchOptions,
    }

    #[test]
    fn defaults_match_the_peers_matrix() {
        use clap::Parser;
        let opts = Cli::parse_from(["bench"]).bench;
        assert_eq!(opts.seats, 20_000);
        assert_eq!(opts.clients, [64, 256]);
        assert_eq!((opts.rounds, opts.duration_s, opts.op_timeout_s), (1, 120, 30));
        assert!(opts.urls.is_empty());
        let opts = Cli::parse_from(["bench", "--urls", "http://a:1,http://b:2/", "--clients", "8"]).bench;
        assert_eq!(opts.urls.len(), 2);
        assert_eq!(opts.clients, [8]);
    }

    #[test]
    fn grid_shape_has_exactly_the_seats() {
        assert_eq!(grid_shape(20_000), (20, 20, 50));
        assert_eq!(grid_shape(100_000), (100, 20, 50));
        assert_eq!(grid_shape(40), (1, 1, 40));
        for seats in [1, 7, 97, 1_000, 2_048, 10_007, 33_333] {
            let (sections, rows, per_row) = grid_shape(seats);
            assert_eq!(sections * rows * per_row, seats, "{seats}");
            assert!(rows <= 20 && per_row <= 50);
        }
    }

    #[test]
    fn order_mismatch_names_the_difference() {
        let order = json!({
            "status": "confirmed",
            "holder": "c1",
            "tickets": [{ "seat": "A-1-1" }],
        });
        assert_eq!(order_mismatch(&order, "c1", "A-1-1"), None);
        assert!(order_mismatch(&order, "c2", "A-1-1").unwrap().contains("holder"));
        assert!(order_mismatch(&order, "c1", "A-1-2").unwrap().contains("seats"));
    }

    #[test]
    fn process_ticks_reads_this_process() {
        assert!(process_ticks("self").is_some());
    }
}
