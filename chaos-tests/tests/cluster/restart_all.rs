//! A whole cluster killed with SIGKILL comes back with exactly the state it acknowledged.
//!
//! Four clients make a few hundred bookings on disjoint parts of a 400-seat event: holds
//! of one or two seats that are then confirmed, released or left active, plus one order
//! cancelled and one ticket checked in. The event view, every hold and every order are
//! recorded; then all three nodes are killed at once and restarted. The leader's answers
//! and each node's own replica must match the recording exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::checks::{self, first_difference};
use chaos_tests::{ApiClient, Consistency, OrderView, TestCluster, WireId, expect_ok, grid_event, test_seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use region_config::{NodeId, RaftTuning};
use serde_json::Value;

const EVENT: u64 = 1;
const WORKERS: u64 = 4;
/// Holds per worker; each takes at most two of the worker's 100 seats, and only
/// confirmed or still active holds keep them.
const HOLDS_PER_WORKER: u64 = 45;
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_killing_every_node() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

/// What the workers did, by id.
#[derive(Default)]
struct Recorded {
    holds: Vec<WireId>,
    orders: Vec<OrderView>,
}

async fn scenario() -> anyhow::Result<()> {
    let seed = test_seed();
    let mut test = TestCluster::start(3, RaftTuning::default()).await?;
    let leader = test.leader().await?;
    let client = test.client.clone();
    let view = test
        .create_event(leader, EVENT, &grid_event("restart everything", 2, 10, 20)?)
        .await?;
    let seats: Vec<String> = view.seats().map(|s| s.id.clone()).collect();
    ensure!(seats.len() == 400, "event has {} seats", seats.len());

    let per_worker = seats.len() / WORKERS as usize;
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let part = seats[w as usize * per_worker..(w as usize + 1) * per_worker].to_vec();
            tokio::spawn(book_and_release(client.clone(), part, w, seed.wrapping_add(w)))
        })
        .collect();
    let mut recorded = Recorded::default();
    for worker in workers {
        let done = worker.await.context("a worker panicked")??;
        recorded.holds.extend(done.holds);
        recorded.orders.extend(done.orders);
    }
    ensure!(
        recorded.orders.len() >= 2,
        "too few orders to cancel one and check one in"
    );

    // One cancelled order and one used ticket must survive too.
    let cancelled = recorded.orders[0].clone();
    let key = "cancel-first-order";
    expect_ok(
        client
            .cancel(leader, EVENT, &cancelled.order_id, &cancelled.holder, key)
            .await?,
        "cancel",
    )?;
    let ticket = &recorded.orders[1].tickets[0].code;
    expect_ok(
        client.check_in(leader, EVENT, ticket, "check-in-one").await?,
        "check-in",
    )?;
    eprintln!(
        "recorded {} holds and {} orders",
        recorded.holds.len(),
        recorded.orders.len()
    );

    let before = snapshot(&client, leader, &recorded, Consistency::Linearizable).await?;

    for id in test.cluster.node_ids() {
        test.cluster.kill(id)?;
    }
    for id in test.cluster.node_ids() {
        test.cluster.restart(id)?;
    }
    let leader = test.leader().await?;

    let after = snapshot(&client, leader, &recorded, Consistency::Linearizable).await?;
    same_state(&before, &after, "the leader after the restart")?;
    for node in test.cluster.node_ids() {
        checks::local_view_converges(&client, node, EVENT, &before.view, Duration::from_secs(60)).await?;
        let local = snapshot(&client, node, &recorded, Consistency::Local).await?;
        same_state(&before, &local, &format!("node {node}'s own replica"))?;
    }

    test.finish().await
}

/// The event view and every recorded hold and order, as the API renders them.
struct Snapshot {
    view: Value,
    holds: BTreeMap<WireId, Value>,
    orders: BTreeMap<WireId, Value>,
}

async fn snapshot(
    client: &ApiClient,
    node: NodeId,
    recorded: &Recorded,
    consistency: Consistency,
) -> anyhow::Result<Snapshot> {
    let view = expect_ok(
        client.event_view_json(node, EVENT, consistency).await?,
        "event view",
    )?;
    let mut holds = BTreeMap::new();
    for hold_id in &recorded.holds {
        let hold = client.get_hold(node, EVENT, hold_id, consistency).await?;
        holds.insert(hold_id.clone(), expect_ok(hold, &format!("hold {hold_id}"))?);
    }
    let mut orders = BTreeMap::new();
    for order in &recorded.orders {
        let stored = client
            .get_order_json(node, EVENT, &order.order_id, consistency)
            .await?;
        orders.insert(
            order.order_id.clone(),
            expect_ok(stored, &format!("order {}", order.order_id))?,
        );
    }
    Ok(Snapshot { view, holds, orders })
}

fn same_state(before: &Snapshot, after: &Snapshot, whom: &str) -> anyhow::Result<()> {
    ensure!(
        before.view == after.view,
        "{whom}: event view changed: {}",
        first_difference(&before.view, &after.view)
    );
    for (what, old, new) in [
        ("hold", &before.holds, &after.holds),
        ("order", &before.orders, &after.orders),
    ] {
        for (id, value) in old {
            let other = &new[id];
            ensure!(
                value == other,
                "{whom}: {what} {id} changed: {}",
                first_difference(value, other)
            );
        }
    }
    Ok(())
}

/// One worker over its own seats: holds of one or two seats, most confirmed, some
/// released, some left active. Its seats are its own, so nothing may be rejected.
async fn book_and_release(
    client: ApiClient,
    mut free: Vec<String>,
    worker: u64,
    seed: u64,
) -> anyhow::Result<Recorded> {
    let mut rng = StdRng::seed_from_u64(seed);
    let holder = format!("w{worker}");
    let node: NodeId = 1 + worker % 3;
    let mut recorded = Recorded::default();
    for attempt in 0..HOLDS_PER_WORKER {
        let count = rng.random_range(1..=2).min(free.len());
        if count == 0 {
            break;
        }
        let seats: Vec<String> = free.drain(..count).collect();
        let key = format!("w{worker}-a{attempt}");
        let hold = client
            .hold_seats(node, EVENT, &holder, &seats, &format!("{key}-hold"))
            .await?;
        let hold = expect_ok(hold, &format!("holding {seats:?}"))?;
        recorded.holds.push(hold.hold_id.clone());
        match rng.random_range(0..10) {
            0..7 => {
                let order = client
                    .confirm(node, EVENT, &hold.hold_id, &holder, &format!("{key}-confirm"))
                    .await?;
                recorded
                    .orders
                    .push(expect_ok(order, &format!("confirming {}", hold.hold_id))?);
            }
            7..9 => {
                let released = client
                    .release(node, EVENT, &hold.hold_id, &holder, &format!("{key}-release"))
                    .await?;
                expect_ok(released, &format!("releasing {}", hold.hold_id))?;
                free.extend(seats);
            }
            _ => {}
        }
    }
    Ok(recorded)
}
