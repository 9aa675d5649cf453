//! A node added and another removed while bookings stream in: replicas move
//! through learner, catch-up and joint consensus, and nothing acknowledged is lost.
//!
//! Three nodes carry three data groups. Clients book on one event through nodes 2
//! and 3. A fourth node is started without bootstrap and added through the admin
//! API: it must join the metadata group and take over replicas. Then node 1 is
//! removed: every replica it carried must move, the cluster map must forget it, and
//! it must stop its own replicas. Afterwards every acknowledged order is confirmed,
//! no seat is sold twice, every group has three voters on live nodes, and removing
//! another node (which would leave too few for three replicas) is refused without
//! any change.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::checks;
use chaos_tests::workload::Booker;
use chaos_tests::{
    ApiClient, Consistency, LOCAL_ADMIN_TOKEN, READY_TIMEOUT, SeatPicker, TestCluster, eventually, expect_ok,
    grid_event, test_seed,
};
use region_config::{ClusterLayout, RaftTuning};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const EVENT: u64 = 1;
const CLIENTS: u64 = 6;
const HOLDS_PER_CLIENT: u64 = 80;
const CONFIRMS_BEFORE_CHANGES: u64 = 30;
const TEST_TIMEOUT: Duration = Duration::from_secs(420);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_and_leave_under_load() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let layout = ClusterLayout {
        groups_per_region: 3,
        replication: 3,
        ..ClusterLayout::default()
    };
    let mut test = TestCluster::start_with_layout(3, RaftTuning::default(), layout, READY_TIMEOUT).await?;
    let client = test.client.clone();
    let spec = grid_event("membership", 4, 10, 25)?;
    expect_ok(
        client.create_event(2, EVENT, &spec, "create-event").await?,
        "create",
    )?;
    let view = expect_ok(
        client.event_view(2, EVENT, Consistency::Linearizable).await?,
        "view",
    )?;
    let confirms = Arc::new(AtomicU64::new(0));
    let history = Arc::new(chaos_tests::history::Recorder::default());
    let booker = Booker {
        client: client.clone(),
        event_id: EVENT,
        picker: Arc::new(SeatPicker::new(view.seats().map(|s| s.id.clone()).collect())),
        confirms: confirms.clone(),
        nodes: vec![2, 3],
        history: history.clone(),
    };
    let seed = test_seed();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(booker.clone().book(c, HOLDS_PER_CLIENT, seed.wrapping_add(c))))
        .collect();
    eventually("the first confirms", Duration::from_secs(60), async || {
        Ok((confirms.load(Ordering::Relaxed) >= CONFIRMS_BEFORE_CHANGES).then_some(()))
    })
    .await?;

    // A fourth node joins under load.
    let (joining, answer) = test.join_node(2).await?;
    let moves = answer["moves"].as_array().map_or(0, Vec::len);
    ensure!(moves >= 2, "node {joining} took only {moves} replicas: {answer}");
    eprintln!(
        "node {joining} joined with {moves} replicas after {} confirms",
        confirms.load(Ordering::Relaxed)
    );
    let all = ApiClient::for_cluster(&test.cluster)?;
    let health = eventually("the new node ready", Duration::from_secs(60), async || {
        let health = all.health(joining).await?;
        Ok(health.ready.then_some(health))
    })
    .await?;
    ensure!(
        health.groups.len() == moves + 1,
        "node {joining} runs {:?}",
        health.groups
    );

    // Node 1 leaves under load.
    let (status, answer) = client
        .admin(
            Method::POST,
            3,
            "/v1/admin/nodes/1/remove",
            Some(LOCAL_ADMIN_TOKEN),
            None,
        )
        .await?;
    ensure!(status == StatusCode::OK, "removing node 1: {status} {answer}");
    eprintln!(
        "node 1 removed ({} replicas moved) after {} confirms",
        answer["moves"].as_array().map_or(0, Vec::len),
        confirms.load(Ordering::Relaxed)
    );
    eventually(
        "node 1 stopping its replicas",
        Duration::from_secs(30),
        async || {
            let health = all.health(1).await?;
            Ok((health.groups.len() == 1).then_some(()))
        },
    )
    .await?;

    let mut orders = Vec::new();
    for task in clients {
        orders.extend(task.await.context("a client panicked")??);
    }
    ensure!(
        orders.len() as u64 > CONFIRMS_BEFORE_CHANGES,
        "too few bookings to mean anything"
    );
    checks::no_seat_in_two_orders(&orders)?;
    checks::orders_still_confirmed(&all, joining, EVENT, &orders).await?;
    let view = expect_ok(
        all.event_view(joining, EVENT, Consistency::Linearizable).await?,
        "view",
    )?;
    checks::sold_seats_match_orders(&view, &orders)?;
    let report = history.check(&view)?;
    eprintln!(
        "linearizable: {} operations on {} seats",
        history.history().entries.len(),
        report.seats.len()
    );
    eprintln!("{} acknowledged orders intact", orders.len());

    // The map: node 1 gone, three voters per group on live nodes.
    let map = all.cluster(joining).await?;
    let nodes: BTreeSet<u64> = map["nodes"]
        .as_array()
        .context("nodes")?
        .iter()
        .filter_map(|n| n["node_id"].as_u64())
        .collect();
    ensure!(
        nodes == BTreeSet::from([2, 3, joining]),
        "nodes in the map: {nodes:?}"
    );
    for group in map["groups"].as_array().context("groups")? {
        let voters: Vec<u64> = group["voters"]
            .as_array()
            .context("voters")?
            .iter()
            .filter_map(|v| v["node_id"].as_u64())
            .collect();
        ensure!(voters.len() == 3 && !voters.contains(&1), "group voters: {group}");
    }

    // Removing another node now would leave two nodes for three replicas.
    let epoch_before = map["map_epoch"].clone();
    let (status, problem) = client
        .admin(
            Method::POST,
            2,
            "/v1/admin/nodes/3/remove",
            Some(LOCAL_ADMIN_TOKEN),
            None,
        )
        .await?;
    ensure!(
        status == StatusCode::CONFLICT && problem["code"] == "not_enough_nodes",
        "{status} {problem}"
    );
    let map_after: Value = all.cluster(joining).await?;
    ensure!(
        map_after["map_epoch"] == epoch_before,
        "a refused removal changed the map"
    );

    test.cluster.kill(1)?;
    test.finish().await
}
