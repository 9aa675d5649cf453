//! Killing the leader under load loses no acknowledged booking and sells no seat twice.
//!
//! Twelve clients stream hold → confirm on random seats of a 2000-seat event, spread
//! over the three nodes. After some confirms the leader gets SIGKILL; the clients keep
//! going, resolving every unanswered write by retrying it with the same key on the other
//! nodes. A new leader must accept a write within 10 s of the kill. At the end every
//! acknowledged order must still be confirmed as acknowledged, no seat may be in two
//! orders, and the sold count must equal the seats of those orders. Finally the killed
//! node is restarted and its own replica must converge to the leader's view.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chaos_tests::checks;
use chaos_tests::workload::Booker;
use chaos_tests::{Consistency, SeatPicker, TestCluster, eventually, expect_ok, grid_event, test_seed};
use region_config::{NodeId, RaftTuning};

const EVENT: u64 = 1;
/// An event created after the kill, only to prove that the cluster takes writes again.
const PROBE_EVENT: u64 = 2;
const CLIENTS: u64 = 12;
/// Hold attempts per client; 12 x 60 = 720 stays well below the 2000 seats.
const HOLDS_PER_CLIENT: u64 = 60;
const CONFIRMS_BEFORE_KILL: u64 = 100;
const NEW_LEADER_WITHIN: Duration = Duration::from_secs(10);
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_bookings_survive_a_killed_leader() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let seed = test_seed();
    let mut test = TestCluster::start(3, RaftTuning::default()).await?;
    let leader = test.leader().await?;
    let client = test.client.clone();
    let spec = grid_event("kill the leader", 4, 20, 25)?;
    let created = expect_ok(
        client.create_event(leader, EVENT, &spec, "create-event").await?,
        "create",
    )?;
    ensure!(created.capacity == 2000, "event capacity {}", created.capacity);
    let view = expect_ok(
        client
            .event_view(leader, EVENT, Consistency::Linearizable)
            .await?,
        "view",
    )?;
    let picker = Arc::new(SeatPicker::new(view.seats().map(|s| s.id.clone()).collect()));

    let confirms = Arc::new(AtomicU64::new(0));
    let history = Arc::new(chaos_tests::history::Recorder::default());
    let booker = Booker {
        client: client.clone(),
        event_id: EVENT,
        picker,
        confirms: confirms.clone(),
        nodes: test.cluster.node_ids(),
        history: history.clone(),
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(booker.clone().book(c, HOLDS_PER_CLIENT, seed.wrapping_add(c))))
        .collect();

    eventually("the first confirms", Duration::from_secs(60), async || {
        Ok((confirms.load(Ordering::Relaxed) >= CONFIRMS_BEFORE_KILL).then_some(()))
    })
    .await?;
    let old_leader = test.leader().await?;
    test.cluster.kill(old_leader)?;
    let killed_at = Instant::now();
    eprintln!(
        "killed leader {old_leader} after {} confirms",
        confirms.load(Ordering::Relaxed)
    );

    // A write through a surviving node must succeed within the limit. A retry after an
    // unknown outcome may find the event already created by its own first try.
    let survivor: NodeId = test.cluster.running_ids()[0];
    let probe = client.clone().with_retry_budget(NEW_LEADER_WITHIN);
    let small = grid_event("probe", 1, 1, 10)?;
    match probe
        .create_event(survivor, PROBE_EVENT, &small, "probe-after-kill")
        .await?
    {
        Ok(_) => {}
        Err(problem) if problem.code == "event_exists" => {}
        Err(problem) => bail!("the write after the kill was rejected: {problem}"),
    }
    let recovered_in = killed_at.elapsed();
    ensure!(
        recovered_in <= NEW_LEADER_WITHIN,
        "the first write after the kill took {recovered_in:?}"
    );
    let new_leader = test.leader().await?;
    ensure!(
        new_leader != old_leader,
        "the killed node {old_leader} still counts as leader"
    );
    eprintln!("node {new_leader} leads; a write succeeded {recovered_in:?} after the kill");

    let mut orders = Vec::new();
    for task in clients {
        orders.extend(task.await.context("a client panicked")??);
    }
    eprintln!("clients recorded {} acknowledged orders", orders.len());
    ensure!(
        orders.len() as u64 > CONFIRMS_BEFORE_KILL,
        "too few bookings to mean anything"
    );

    checks::no_seat_in_two_orders(&orders)?;
    checks::orders_still_confirmed(&client, new_leader, EVENT, &orders).await?;
    let view = expect_ok(
        client
            .event_view(new_leader, EVENT, Consistency::Linearizable)
            .await?,
        "view",
    )?;
    checks::sold_seats_match_orders(&view, &orders)?;
    let report = history.check(&view)?;
    eprintln!(
        "linearizable: {} operations on {} seats",
        history.history().entries.len(),
        report.seats.len()
    );

    test.cluster.restart(old_leader)?;
    let leader = test.leader().await?;
    let expected = expect_ok(
        client
            .event_view_json(leader, EVENT, Consistency::Linearizable)
            .await?,
        "leader's view",
    )?;
    checks::local_view_converges(&client, old_leader, EVENT, &expected, Duration::from_secs(60)).await?;

    test.finish().await
}
