//! The chaos harness: a booking workload against a local cluster while a
//! seeded nemesis breaks it, then a settled final read, the linearizability
//! checker over everything the clients saw, and a JSON report.
//!
//! One seed gives one schedule: the order and timing of the faults, which
//! node each one hits, and every client's choice of seats and of confirm or
//! release. (What the cluster answers under those faults still depends on
//! timing; the checker does not.) The faults, each a named nemesis:
//!
//! - `kill-leader`: `kill -9` of the event group's leader, restarted 3–5 s later;
//! - `kill-node`: `kill -9` of a random node, restarted 3–5 s later;
//! - `pause`: `SIGSTOP` of a random node for longer than the election
//!   timeout (4–6 s), then `SIGCONT`: a leader frozen mid-term comes back
//!   believing it still leads;
//! - `pause-leader`: the same done to the event group's leader;
//! - `restart-all`: every node killed at once and started again;
//! - `isolate-leader`: the leader cut off from every other node, both ways,
//!   for 4–6 s while the clients still reach it;
//! - `split`: a minority cut off from the majority for 3–4 s, then another
//!   minority for 3–4 s (the split moves), then healed;
//! - `one-way-cut`: for 4–6 s the leader's packets to the others are
//!   dropped, or theirs to it (the seed picks), but not both;
//! - `drop-responses`: for 3–5 s a random node's answers to the clients
//!   vanish while it still receives and applies their requests: outcomes
//!   become unknown, and the clients retry them elsewhere with the same
//!   idempotency key;
//! - `transfer-crash`: the leader is asked to hand the event group to a
//!   follower, and within 300 ms the leader or that follower (the seed
//!   picks) is killed with `kill -9`, restarted 3–5 s later: a membership
//!   step interrupted by a crash;
//! - `clock-jump`: the leader's wall clock jumps an hour forward or ten
//!   minutes back (the seed picks) for 4–6 s, then is put right: it must
//!   stamp nothing with it and hand its group over (the max-offset rule,
//!   `transport::clock`);
//! - `disk-fail`: the leader's disk fails every sync (a failpoint,
//!   `raft_store::disk_health`): the node must acknowledge nothing more and
//!   exit by itself within 15 s; its disk is then mended and it restarts
//!   1–3 s later;
//! - `clock-drift`: the leader's wall clock drifts ahead or behind (the seed
//!   picks) by 250 ms a second out to 1 s, twice the maximum offset, in
//!   steps too small to look like a jump, stays there 2 s, then is slewed
//!   back the same way;
//! - `wan-delay`: for 5–7 s every node-to-node call is delayed 40–120 ms
//!   each way plus up to 60 ms of jitter, and 0–10 % are lost (the seed
//!   picks): a bad WAN, made in the nodes' transport (`transport::wan`'s
//!   failpoint), since this machine's kernel has no `netem`;
//! - `region-loss`: every node of one region (the event leader's or
//!   another, the seed picks) killed with `kill -9` at once, restarted 4–6 s
//!   later. It needs a run over three regions or more (`regions`), where
//!   the event is created to survive a region (`survive: region`, voters in
//!   three regions): the sale must go on from the others.
//!
//! With `regions` above one the nodes are spread over that many regions
//! (node `i + 1` in the `i % regions`-th), and with three or more the event
//! gets a group of its own with voters in three regions; every fault that
//! names "the leader" means that group's leader.
//!
//! The four cuts need real links: the run then puts every node in a
//! network namespace of its own ([`crate::netlab`], root only). The clock
//! faults run every node under libfaketime ([`crate::fake_clock`]).
//!
//! The nemesis goes through the faults in a seeded order, each at least
//! once before any repeats, with a calm spell of 2–4 s between them. When
//! the time is up every node is running again, the clients go on for 8 s
//! more (so that the last fault's recovery is seen) and stop, and the
//! harness waits for a leader, reads the seat map through it and checks the
//! history (`history::Recorder::check`). The report holds the operations by
//! outcome, each fault with its window and recovery time (the first
//! acknowledged write that was invoked after the fault began), and the
//! verdict.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use region_config::{NodeId, RaftTuning};
use serde::Serialize;

use crate::history::Recorder;
use crate::linearizability::Outcome;
use crate::{ApiClient, Consistency, SeatPicker, TestCluster, expect_ok, grid_event};

const EVENT: u64 = 1;

/// How long the clients go on after the last fault healed.
const CALM_TAIL: Duration = Duration::from_secs(8);

/// How soon a node whose disk failed must have stopped: its replicas stop
/// at their next write, and the node looks for stopped replicas every second.
const DISK_FAIL_EXIT_WITHIN: Duration = Duration::from_secs(15);

/// A drift of `DRIFT_STEP_MS` a second for `DRIFT_STEPS` seconds, then back.
const DRIFT_STEPS: i64 = 4;
const DRIFT_STEP_MS: i64 = 250;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    KillLeader,
    KillNode,
    Pause,
    RestartAll,
    /// SIGSTOP of the event group's leader past the election timeout: the
    /// requests it holds must move to its successor.
    PauseLeader,
    /// The event group's leader cut off from every other node, both ways,
    /// while clients still reach it: it must not acknowledge what it cannot
    /// commit, and the majority must elect another.
    IsolateLeader,
    /// A minority cut off from the majority, then another minority (the
    /// split moves), then healed.
    Split,
    /// The leader's links cut one way only: either it cannot send to the
    /// others, or it cannot hear them.
    OneWayCut,
    /// The leader's wall clock jumps forward or back, then is put right.
    ClockJump,
    /// A node's answers to the clients dropped after it applied their
    /// requests: ambiguous outcomes, retried with the same key.
    DropResponses,
    /// A leadership transfer interrupted by `kill -9` of the old leader or
    /// of its successor.
    TransferCrash,
    /// The leader's disk fails every sync (a failpoint): it must stop
    /// acknowledging and exit by itself; it is then mended and restarted.
    DiskFail,
    /// The leader's wall clock drifts away from the others' (ahead or
    /// behind, 250 ms a second, past the maximum offset), then is slewed
    /// back, as NTP would.
    ClockDrift,
    /// Every node-to-node link slow, jittery and lossy, as across a bad
    /// WAN (the `wan` failpoint: this kernel has no netem).
    WanDelay,
    /// Every node of one region killed at once, then restarted: an event
    /// that survives a region goes on selling from the others.
    RegionLoss,
}

impl Fault {
    pub const ALL: [Fault; 15] = [
        Fault::KillLeader,
        Fault::KillNode,
        Fault::Pause,
        Fault::RestartAll,
        Fault::PauseLeader,
        Fault::IsolateLeader,
        Fault::Split,
        Fault::OneWayCut,
        Fault::ClockJump,
        Fault::DropResponses,
        Fault::TransferCrash,
        Fault::DiskFail,
        Fault::ClockDrift,
        Fault::WanDelay,
        Fault::RegionLoss,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillNode => "kill-node",
            Fault::Pause => "pause",
            Fault::RestartAll => "restart-all",
            Fault::PauseLeader => "pause-leader",
            Fault::IsolateLeader => "isolate-leader",
            Fault::Split => "split",
            Fault::OneWayCut => "one-way-cut",
            Fault::ClockJump => "clock-jump",
            Fault::DropResponses => "drop-responses",
            Fault::TransferCrash => "transfer-crash",
            Fault::DiskFail => "disk-fail",
            Fault::ClockDrift => "clock-drift",
            Fault::WanDelay => "wan-delay",
            Fault::RegionLoss => "region-loss",
        }
    }

    /// Whether the fault cuts links, so that the run needs a
    /// [`crate::netlab::NetLab`] (root).
    pub fn needs_network(self) -> bool {
        matches!(
            self,
            Fault::IsolateLeader | Fault::Split | Fault::OneWayCut | Fault::DropResponses
        )
    }

    /// Whether the fault sets clocks, so that the nodes run under
    /// libfaketime ([`crate::fake_clock::FakeClock`]).
    pub fn needs_fake_clock(self) -> bool {
        matches!(self, Fault::ClockJump | Fault::ClockDrift)
    }

    /// Whether the fault needs a run over three regions or more.
    pub fn needs_regions(self) -> bool {
        self == Fault::RegionLoss
    }

    /// `kill-leader,pause` or `all`.
    pub fn parse_list(list: &str) -> anyhow::Result<Vec<Fault>> {
        if list == "all" {
            return Ok(Fault::ALL.to_vec());
        }
        list.split(',')
            .map(|name| {
                Fault::ALL
                    .into_iter()
                    .find(|f| f.name() == name.trim())
                    .with_context(|| {
                        let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                        format!("unknown fault {name:?}; known: {}", known.join(", "))
                    })
            })
            .collect()
    }
}

/// What one run does.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub faults: Vec<Fault>,
    pub seed: u64,
    /// How long the workload runs with faults.
    pub duration: Duration,
    pub clients: u64,
    pub nodes: usize,
    /// Regions the nodes are spread over (see the module doc); 1: all in one.
    pub regions: usize,
}

/// The regions of a run over `count` of them.
fn region_names(count: usize) -> anyhow::Result<Vec<region_config::RegionId>> {
    const KNOWN: [&str; 3] = ["eu-west", "us-east", "ap-south"];
    (0..count)
        .map(|i| match KNOWN.get(i) {
            Some(name) => region_config::RegionId::new(name),
            None => region_config::RegionId::new(&format!("region-{}", i + 1)),
        })
        .collect::<Result<_, _>>()
        .context("a region name")
}

/// One fault as it happened, in milliseconds of the run's clock.
#[derive(Debug, Clone, Serialize)]
pub struct FaultWindow {
    pub fault: Fault,
    pub nodes: Vec<NodeId>,
    pub start_ms: u64,
    pub end_ms: u64,
    /// From the fault's start to the first acknowledged write invoked after
    /// it; `None`: no write was acknowledged afterwards.
    pub recovery_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OpCounts {
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub nodes: usize,
    pub regions: usize,
    pub clients: u64,
    pub duration_ms: u64,
    pub ops: OpCounts,
    pub faults: Vec<FaultWindow>,
    pub seats_checked: usize,
    pub linearizable: bool,
    /// The checker's summary when the history failed it.
    pub violation: Option<String>,
    pub final_sold: u64,
    pub final_held: u64,
    /// The run as a picture: one row per client, one bar per operation
    /// coloured by outcome, fault windows shaded (`timeline_svg`).
    #[serde(skip)]
    pub timeline_svg: String,
}

/// Runs one chaos run (see the module doc).
pub async fn run(opts: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    if opts.faults.is_empty() || opts.nodes < 3 || opts.clients == 0 {
        bail!("a chaos run needs at least one fault, three nodes and one client");
    }
    if opts.regions == 0 || opts.regions > opts.nodes {
        bail!(
            "a chaos run spreads its {} nodes over 1 to {0} regions, not {}",
            opts.nodes,
            opts.regions
        );
    }
    if opts.regions < 3 && opts.faults.iter().any(|f| f.needs_regions()) {
        bail!(
            "region-loss needs a run over three regions or more (--regions 3), so that the event's voters span three"
        );
    }
    let network = opts.faults.iter().any(|f| f.needs_network());
    let fake_clocks = opts.faults.iter().any(|f| f.needs_fake_clock());
    if network && !crate::netlab::NetLab::available() {
        bail!(
            "the faults {} cut links between nodes in network namespaces: run as root with ip and iptables",
            opts.faults
                .iter()
                .filter(|f| f.needs_network())
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if fake_clocks && !crate::fake_clock::FakeClock::available() {
        bail!(
            "clock-jump and clock-drift run the nodes under libfaketime: install Debian's faketime package"
        );
    }
    let breakable = crate::Breakable {
        network,
        fake_clocks: if fake_clocks {
            (1..=opts.nodes as NodeId).collect()
        } else {
            Vec::new()
        },
        failpoints: opts
            .faults
            .iter()
            .any(|f| matches!(f, Fault::DiskFail | Fault::WanDelay)),
    };
    let regions = region_names(opts.regions)?;
    let mut test =
        TestCluster::start_breakable_in(opts.nodes, RaftTuning::default(), &regions, &breakable).await?;
    let leader = test.leader().await?;
    let client = test.client.clone();
    // Enough seats that the clients never run out (a client stops when no
    // seat is left, and a fault after that would show no recovery). Every
    // seat is tried once: four clients try about 6,400 in two minutes on
    // two cores.
    let spec = grid_event("chaos", 16, 40, 40)?;
    let group = if opts.regions >= 3 {
        let extra = serde_json::json!({ "survive": "region", "home_region": regions[0].to_string() });
        expect_ok(
            client
                .create_event_with(leader, EVENT, &spec, "create-event-chaos", extra)
                .await?,
            "create the event",
        )?;
        event_group(&client, leader).await?
    } else {
        test.create_event(leader, EVENT, &spec).await?;
        crate::FIRST_DATA_GROUP
    };
    let leader = event_leader(&mut test, group).await?;
    let view = expect_ok(
        client
            .event_view(leader, EVENT, Consistency::Linearizable)
            .await?,
        "view",
    )?;
    let picker = Arc::new(SeatPicker::new(view.seats().map(|s| s.id.clone()).collect()));

    let history = Arc::new(Recorder::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Short budgets, so that a request caught in a fault ends as an unknown
    // outcome and the client goes on, as a real one would.
    let impatient = client.clone().with_retry_budget(Duration::from_secs(3));
    let nodes = test.cluster.node_ids();
    let clients: Vec<_> = (0..opts.clients)
        .map(|c| {
            let worker = Worker {
                client: impatient.clone(),
                picker: picker.clone(),
                history: history.clone(),
                stop: stop.clone(),
                nodes: nodes.clone(),
            };
            tokio::spawn(worker.run(c, opts.seed.wrapping_add(c + 1)))
        })
        .collect();

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut windows = Vec::new();
    let mut order = Vec::new();
    // One full round of the faults at least, then until the time is up.
    while windows.len() < opts.faults.len() || started.elapsed() < opts.duration {
        if order.is_empty() {
            order = opts.faults.clone();
            order.shuffle(&mut rng);
        }
        let fault = order.pop().expect("refilled above");
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..4_000))).await;
        windows.push(inject(&mut test, group, fault, &mut rng, &history).await?);
    }
    // A calm spell before the clients stop, so that the last fault's
    // recovery shows in the history too.
    tokio::time::sleep(CALM_TAIL).await;
    stop.store(true, Ordering::Relaxed);
    for task in clients {
        task.await.context("a client panicked")??;
    }

    // Settled: every node runs, a leader answers, the final read is its.
    let leader = event_leader(&mut test, group).await?;
    let settled = client.clone().with_retry_budget(Duration::from_secs(30));
    let view = expect_ok(
        settled
            .event_view(leader, EVENT, Consistency::Linearizable)
            .await?,
        "final view",
    )?;
    let entries = history.history().entries;
    for window in &mut windows {
        window.recovery_ms = entries
            .iter()
            .filter(|e| e.outcome == Outcome::Ok(None) && e.invoke_us / 1000 >= window.start_ms)
            .filter_map(|e| e.complete_us)
            .min()
            .map(|done| done / 1000 - window.start_ms);
    }
    let mut ops = OpCounts::default();
    for entry in &entries {
        match entry.outcome {
            Outcome::Ok(_) => ops.ok += 1,
            Outcome::Failed => ops.failed += 1,
            Outcome::Unknown => ops.unknown += 1,
        }
    }
    let (linearizable, violation, seats_checked) = match history.check(&view) {
        Ok(report) => (true, None, report.seats.len()),
        Err(e) => (false, Some(format!("{e:#}")), 0),
    };
    let report = ChaosReport {
        seed: opts.seed,
        nodes: opts.nodes,
        regions: opts.regions,
        clients: opts.clients,
        duration_ms: started.elapsed().as_millis() as u64,
        ops,
        faults: windows,
        seats_checked,
        linearizable,
        violation,
        final_sold: view.sold,
        final_held: view.held,
        timeline_svg: String::new(),
    };
    let report = ChaosReport {
        timeline_svg: timeline_svg(&report, &entries),
        ..report
    };
    if report.linearizable {
        test.finish().await?;
    }
    Ok(report)
}

/// Applies `fault`, waits it out and heals it; its window.
async fn inject(
    test: &mut TestCluster,
    group: u64,
    fault: Fault,
    rng: &mut StdRng,
    history: &Recorder,
) -> anyhow::Result<FaultWindow> {
    let running = test.cluster.running_ids();
    let victim = running[rng.random_range(0..running.len())];
    // The window starts when the fault strikes, not when the victim is
    // looked for: finding the leader takes a round of health checks, and
    // writes acknowledged meanwhile say nothing about recovery.
    let mut start_ms = history.now_ms();
    let nodes = match fault {
        Fault::KillLeader | Fault::KillNode => {
            let node = if fault == Fault::KillLeader {
                event_leader(test, group).await?
            } else {
                victim
            };
            start_ms = history.now_ms();
            test.cluster.kill(node)?;
            tokio::time::sleep(Duration::from_millis(rng.random_range(3_000..5_000))).await;
            test.cluster.restart(node)?;
            vec![node]
        }
        Fault::Pause | Fault::PauseLeader => {
            let victim = if fault == Fault::PauseLeader {
                event_leader(test, group).await?
            } else {
                victim
            };
            let pid = test.cluster.pid(victim).context("no pid")?;
            start_ms = history.now_ms();
            signal(pid, "STOP")?;
            tokio::time::sleep(Duration::from_millis(rng.random_range(4_000..6_000))).await;
            signal(pid, "CONT")?;
            vec![victim]
        }
        Fault::RestartAll => {
            for node in &running {
                test.cluster.kill(*node)?;
            }
            for node in &running {
                test.cluster.restart(*node)?;
            }
            running.clone()
        }
        Fault::IsolateLeader => {
            let leader = event_leader(test, group).await?;
            let net = test.net.as_mut().context("isolate-leader needs a network lab")?;
            net.split(&[leader])?;
            // From when the rules are in force: installing them takes a
            // few processes' time, and writes meanwhile still go through.
            start_ms = history.now_ms();
            tokio::time::sleep(Duration::from_millis(rng.random_range(4_000..6_000))).await;
            net.heal()?;
            vec![leader]
        }
        Fault::Split => {
            let net = test.net.as_mut().context("split needs a network lab")?;
            let minority = (running.len() - 1) / 2;
            let mut order = running.clone();
            order.shuffle(rng);
            let first: Vec<NodeId> = order[..minority].to_vec();
            // The second minority takes at least one node of the first
            // majority: the split moves rather than repeats.
            let second: Vec<NodeId> = order[minority..2 * minority].to_vec();
            net.split(&first)?;
            start_ms = history.now_ms();
            tokio::time::sleep(Duration::from_millis(rng.random_range(3_000..4_000))).await;
            net.heal()?;
            net.split(&second)?;
            tokio::time::sleep(Duration::from_millis(rng.random_range(3_000..4_000))).await;
            net.heal()?;
            first.into_iter().chain(second).collect()
        }
        Fault::OneWayCut => {
            let leader = event_leader(test, group).await?;
            let net = test.net.as_mut().context("one-way-cut needs a network lab")?;
            let deaf = rng.random_bool(0.5);
            for &other in running.iter().filter(|&&n| n != leader) {
                if deaf {
                    net.cut(other, leader)?;
                } else {
                    net.cut(leader, other)?;
                }
            }
            start_ms = history.now_ms();
            eprintln!(
                "chaos: leader {leader} {}",
                if deaf {
                    "cannot hear the others"
                } else {
                    "cannot reach the others"
                }
            );
            tokio::time::sleep(Duration::from_millis(rng.random_range(4_000..6_000))).await;
            net.heal()?;
            vec![leader]
        }
        Fault::DropResponses => {
            let net = test.net.as_mut().context("drop-responses needs a network lab")?;
            net.cut(victim, crate::netlab::HARNESS)?;
            start_ms = history.now_ms();
            tokio::time::sleep(Duration::from_millis(rng.random_range(3_000..5_000))).await;
            net.heal()?;
            vec![victim]
        }
        Fault::TransferCrash => {
            let leader = event_leader(test, group).await?;
            let followers: Vec<NodeId> = running.iter().copied().filter(|&n| n != leader).collect();
            let to = followers[rng.random_range(0..followers.len())];
            let victim = if rng.random_bool(0.5) { leader } else { to };
            let asker = test.client.clone();
            let path = format!("/v1/admin/groups/{group}/transfer-leader");
            start_ms = history.now_ms();
            // Whatever the transfer answers (it may not, its node dying):
            // the crash is what is being tested.
            let transfer = tokio::spawn(async move {
                let body = serde_json::json!({ "to_node": to });
                asker
                    .admin(
                        reqwest::Method::POST,
                        leader,
                        &path,
                        Some(crate::LOCAL_ADMIN_TOKEN),
                        Some(&body),
                    )
                    .await
            });
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
            test.cluster.kill(victim)?;
            eprintln!("chaos: transfer of the lead from {leader} to {to}, node {victim} killed");
            let _ = transfer.await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(3_000..5_000))).await;
            test.cluster.restart(victim)?;
            vec![leader, to]
        }
        Fault::ClockJump => {
            let leader = event_leader(test, group).await?;
            let clock = test
                .clocks
                .get(&leader)
                .context("clock-jump needs the nodes under libfaketime")?;
            let jump_secs: i64 = if rng.random_bool(0.5) { 3_600 } else { -600 };
            // libfaketime reads the offset within a second, and writes go
            // on until it does: this window's recovery is a lower bound
            // (tests/cluster/clock.rs checks the hand-over itself).
            start_ms = history.now_ms();
            clock.set_offset_secs(jump_secs)?;
            eprintln!("chaos: node {leader}'s clock jumps {jump_secs:+} s");
            tokio::time::sleep(Duration::from_millis(rng.random_range(4_000..6_000))).await;
            clock.set_offset_secs(0)?;
            vec![leader]
        }
        Fault::DiskFail => {
            let leader = event_leader(test, group).await?;
            start_ms = history.now_ms();
            test.fail_disk(leader, true)?;
            // Every later sync fails, its replicas stop at their next write,
            // and the node exits by itself (`node::faults`).
            let failed_at = Instant::now();
            let status = loop {
                if let Some(status) = test.cluster.exit_status(leader)? {
                    break status;
                }
                if failed_at.elapsed() > DISK_FAIL_EXIT_WITHIN {
                    bail!(
                        "node {leader} still ran {} s after its disk failed",
                        DISK_FAIL_EXIT_WITHIN.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            eprintln!(
                "chaos: node {leader}'s disk failed; it stopped within {} ms ({status})",
                failed_at.elapsed().as_millis()
            );
            test.fail_disk(leader, false)?;
            test.cluster.kill(leader)?;
            tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..3_000))).await;
            test.cluster.restart(leader)?;
            vec![leader]
        }
        Fault::ClockDrift => {
            let leader = event_leader(test, group).await?;
            let clock = test
                .clocks
                .get(&leader)
                .context("clock-drift needs the nodes under libfaketime")?;
            let sign: i64 = if rng.random_bool(0.5) { 1 } else { -1 };
            eprintln!(
                "chaos: node {leader}'s clock drifts {}",
                if sign > 0 { "ahead" } else { "behind" }
            );
            start_ms = history.now_ms();
            // Out to 1 s (twice the maximum offset) a step a second, each
            // step too small to look like a jump; held there for 2 s; then
            // back the same way.
            for step in 1..=DRIFT_STEPS {
                tokio::time::sleep(Duration::from_secs(1)).await;
                clock.set_offset_ms(sign * step * DRIFT_STEP_MS)?;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let at_peak = test.cluster.group_leader(group).await;
            eprintln!(
                "chaos: node {leader} {} ms off; the group's leader: {}",
                sign * DRIFT_STEPS * DRIFT_STEP_MS,
                at_peak.map_or_else(|| "none agreed".to_owned(), |n| format!("node {n}"))
            );
            for step in (0..DRIFT_STEPS).rev() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                clock.set_offset_ms(sign * step * DRIFT_STEP_MS)?;
            }
            vec![leader]
        }
        Fault::WanDelay => {
            // 40-120 ms each way plus up to 60 ms of jitter: a round trip of
            // up to 360 ms against a 250 ms heartbeat; 0-10 % of calls lost.
            let one_way = rng.random_range(40..=120);
            let jitter = rng.random_range(0..=60);
            let loss = rng.random_range(0..=10);
            eprintln!("chaos: every link {one_way} ms (+{jitter} ms jitter) each way, {loss}% lost");
            start_ms = history.now_ms();
            for &node in &running {
                test.disturb_links(node, Some((one_way, jitter, loss)))?;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(5_000..7_000))).await;
            for &node in &running {
                test.disturb_links(node, None)?;
            }
            running.clone()
        }
        Fault::RegionLoss => {
            let leader = event_leader(test, group).await?;
            let region_of = |node: NodeId| test.cluster.config(node).region.clone();
            let mut regions: Vec<_> = running.iter().map(|&n| region_of(n)).collect();
            regions.sort();
            regions.dedup();
            // The leader's region half the time (the sale must move abroad),
            // else another (it must go on undisturbed).
            let lost = if rng.random_bool(0.5) {
                region_of(leader)
            } else {
                regions[rng.random_range(0..regions.len())].clone()
            };
            let victims: Vec<NodeId> = running
                .iter()
                .copied()
                .filter(|&n| region_of(n) == lost)
                .collect();
            eprintln!("chaos: region {lost} lost (nodes {victims:?}; the event's leader is node {leader})");
            for &node in &victims {
                test.cluster.kill(node)?;
            }
            // From when the region is gone: a leader killed last may still
            // acknowledge while the others go.
            start_ms = history.now_ms();
            tokio::time::sleep(Duration::from_millis(rng.random_range(4_000..6_000))).await;
            for &node in &victims {
                test.cluster.restart(node)?;
            }
            victims
        }
    };
    let end_ms = history.now_ms();
    eprintln!(
        "chaos: {} of {nodes:?} from {start_ms} ms to {end_ms} ms",
        fault.name()
    );
    Ok(FaultWindow {
        fault,
        nodes,
        start_ms,
        end_ms,
        recovery_ms: None,
    })
}

/// The leader of the event's group, once every running node agrees.
async fn event_leader(test: &mut TestCluster, group: u64) -> anyhow::Result<NodeId> {
    test.cluster.wait_group_leader(group, crate::READY_TIMEOUT).await
}

/// The group the event was placed on, from node `node`'s map (the run has
/// one event).
async fn event_group(client: &ApiClient, node: NodeId) -> anyhow::Result<u64> {
    let deadline = Instant::now() + crate::READY_TIMEOUT;
    loop {
        let map = client.cluster(node).await?;
        let placed = map["groups"].as_array().and_then(|groups| {
            groups
                .iter()
                .find(|g| g["events"].as_u64().is_some_and(|n| n > 0))
                .and_then(|g| g["group_id"].as_u64())
        });
        if let Some(group) = placed {
            return Ok(group);
        }
        if Instant::now() >= deadline {
            bail!("node {node}'s map places the event on no group: {map}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn signal(pid: u32, which: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{which}"))
        .arg(pid.to_string())
        .status()
        .context("cannot run kill")?;
    if !status.success() {
        bail!("kill -{which} {pid} failed: {status}");
    }
    Ok(())
}

/// What a problem answer says about the outcome: a definite failure (a
/// 4xx, or 503 "nothing was changed"), or nothing known (504
/// `outcome_unknown`, any other server error).
fn definite(problem: &crate::Problem) -> Option<bool> {
    (problem.status < 500 || problem.status == 503).then_some(false)
}

/// One booking client: hold a free seat, then confirm it (seven times in
/// ten) or release it, until told to stop. Every operation is recorded; an
/// error is an unknown outcome, and the client moves on.
struct Worker {
    client: ApiClient,
    picker: Arc<SeatPicker>,
    history: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    nodes: Vec<NodeId>,
}

impl Worker {
    async fn run(self, number: u64, seed: u64) -> anyhow::Result<()> {
        let mut rng = StdRng::seed_from_u64(seed);
        let holder = format!("chaos-{number}");
        let mut attempt = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            attempt += 1;
            let Some((index, seat)) = self.picker.pick(&mut rng) else {
                eprintln!("chaos: client {number} ran out of seats and stops");
                break;
            };
            let node = self.nodes[rng.random_range(0..self.nodes.len())];
            let seats = vec![seat.to_owned()];
            let key = format!("chaos-c{number}-a{attempt}");
            let (checked, pending) = self.history.invoke_hold(number, &seats);
            let answer = self
                .client
                .hold_seats(node, EVENT, &holder, &seats, &format!("{key}-hold"))
                .await;
            self.picker.mark_taken(index);
            let hold = match answer {
                Ok(Ok(hold)) => {
                    self.history.complete(pending, Some(true));
                    hold
                }
                Ok(Err(problem)) => {
                    self.history.complete(pending, definite(&problem));
                    continue;
                }
                Err(_) => {
                    self.history.complete(pending, None);
                    continue;
                }
            };
            let confirm = rng.random_range(0..10) < 7;
            let pending = if confirm {
                self.history.invoke_confirm(number, checked)
            } else {
                self.history.invoke_release(number, checked)
            };
            let outcome = if confirm {
                let answer = self
                    .client
                    .confirm(node, EVENT, &hold.hold_id, &holder, &format!("{key}-confirm"))
                    .await;
                answer.map(|reply| reply.map_or_else(|p| definite(&p), |_| Some(true)))
            } else {
                let answer = self
                    .client
                    .release(node, EVENT, &hold.hold_id, &holder, &format!("{key}-release"))
                    .await;
                answer.map(|reply| reply.map_or_else(|p| definite(&p), |_| Some(true)))
            };
            self.history.complete(pending, outcome.ok().flatten());
        }
        Ok(())
    }
}

/// An SVG timeline of `entries` under the fault windows of `report`.
pub fn timeline_svg(report: &ChaosReport, entries: &[crate::linearizability::Entry]) -> String {
    const WIDTH: f64 = 1200.0;
    const ROW: f64 = 22.0;
    const TOP: f64 = 40.0;
    const LEFT: f64 = 80.0;
    let end_ms = entries
        .iter()
        .filter_map(|e| e.complete_us.map(|c| c / 1000))
        .chain(report.faults.iter().map(|w| w.end_ms))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |ms: f64| LEFT + ms / end_ms * (WIDTH - LEFT - 20.0);
    let height = TOP + ROW * report.clients as f64 + 40.0;
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' font-family='sans-serif' font-size='12'>\n\
         <text x='{LEFT}' y='18'>seed {} · {} ok (green), {} failed (grey), {} unknown (orange) · faults shaded · {}</text>\n",
        report.seed,
        report.ops.ok,
        report.ops.failed,
        report.ops.unknown,
        if report.linearizable {
            "linearizable"
        } else {
            "VIOLATION"
        }
    );
    for window in &report.faults {
        let (x0, x1) = (
            x(window.start_ms as f64),
            x(window.end_ms.max(window.start_ms + 50) as f64),
        );
        svg.push_str(&format!(
            "<rect x='{x0:.1}' y='{}' width='{:.1}' height='{}' fill='#e33' fill-opacity='0.15'/>\n\
             <text x='{x0:.1}' y='{}' fill='#a00'>{} {:?}</text>\n",
            TOP - 10.0,
            x1 - x0,
            ROW * report.clients as f64 + 10.0,
            height - 12.0,
            window.fault.name(),
            window.nodes
        ));
    }
    for client in 0..report.clients {
        let y = TOP + ROW * client as f64;
        svg.push_str(&format!(
            "<text x='8' y='{:.1}'>client {client}</text>\n",
            y + 14.0
        ));
    }
    for entry in entries {
        let y = TOP + ROW * entry.client as f64 + 3.0;
        let start = entry.invoke_us as f64 / 1000.0;
        let done = entry.complete_us.map_or(end_ms, |c| c as f64 / 1000.0);
        let colour = match entry.outcome {
            Outcome::Ok(_) => "#2a2",
            Outcome::Failed => "#999",
            Outcome::Unknown => "#f90",
        };
        svg.push_str(&format!(
            "<rect x='{:.1}' y='{y:.1}' width='{:.1}' height='{}' fill='{colour}'/>\n",
            x(start),
            (x(done) - x(start)).max(0.5),
            ROW - 6.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
