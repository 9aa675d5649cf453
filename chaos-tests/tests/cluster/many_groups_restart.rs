//! A cluster of 100 data groups, killed whole with SIGKILL, restores every group.
//!
//! Three nodes each run 101 replicas (100 data groups plus the metadata group) in one
//! RocksDB database per node. Events are created on ten different groups and each gets
//! a confirmed order. All nodes are killed at once and restarted from disk: every node
//! must come back running all 101 replicas, each group must elect a leader, the map
//! must keep every placement, and every acknowledged order must still be confirmed
//! when read through a node other than the one that took it.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::checks::{self, ConfirmedOrder};
use chaos_tests::{Consistency, TestCluster, eventually, expect_ok, grid_event};
use region_config::{ClusterLayout, RaftTuning};
use serde_json::json;

const GROUPS: u32 = 100;
const EVENTS: u64 = 10;
/// Starting or restarting 300 replicas on two shared cores takes a while.
const READY_WITHIN: Duration = Duration::from_secs(180);
const TEST_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_groups_survive_a_full_restart() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let layout = ClusterLayout {
        groups_per_region: GROUPS,
        replication: 3,
        ..ClusterLayout::default()
    };
    let mut test = TestCluster::start_with_layout(3, RaftTuning::default(), layout, READY_WITHIN).await?;
    let client = test.client.clone();
    let nodes = test.cluster.node_ids();
    for node in &nodes {
        let health = client.health(*node).await?;
        ensure!(
            health.groups.len() == GROUPS as usize + 1,
            "node {node} runs {} replicas",
            health.groups.len()
        );
    }

    let spec = grid_event("restart", 1, 1, 10)?;
    let mut orders = Vec::new();
    for event in 1..=EVENTS {
        let via = nodes[event as usize % nodes.len()];
        expect_ok(
            client
                .create_event(via, event, &spec, &format!("create-{event}"))
                .await?,
            "create",
        )?;
        let seats = vec!["A-1-1".to_owned()];
        let hold = expect_ok(
            client
                .hold_seats(via, event, "fan", &seats, &format!("hold-{event}"))
                .await?,
            "hold",
        )?;
        let order = expect_ok(
            client
                .confirm(via, event, &hold.hold_id, "fan", &format!("confirm-{event}"))
                .await?,
            "confirm",
        )?;
        orders.push((
            event,
            ConfirmedOrder {
                order_id: order.order_id,
                holder: "fan".to_owned(),
                seats,
            },
        ));
    }
    // Node 1's copy of the map may trail the placements made through others.
    let map_before = eventually(
        "node 1 seeing every placement",
        Duration::from_secs(10),
        async || {
            let map = client.cluster(1).await?;
            Ok((map["events_placed"] == json!(EVENTS)).then_some(map))
        },
    )
    .await?;
    let groups_used: std::collections::BTreeSet<u64> = map_before["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .filter(|g| g["events"].as_u64() > Some(0))
        .filter_map(|g| g["group_id"].as_u64())
        .collect();
    ensure!(
        groups_used.len() == EVENTS as usize,
        "events share groups: {groups_used:?}"
    );

    for id in &nodes {
        test.cluster.kill(*id)?;
    }
    for id in &nodes {
        test.cluster.restart(*id)?;
    }
    test.cluster.wait_ready(READY_WITHIN).await?;
    for node in &nodes {
        let health = client.health(*node).await?;
        ensure!(
            health.groups.len() == GROUPS as usize + 1,
            "node {node} restarted with {} replicas",
            health.groups.len()
        );
        ensure!(
            health.groups.iter().all(|g| g.leader_node.is_some()),
            "node {node} sees a group without a leader"
        );
    }
    let map_after = eventually(
        "node 2's map after the restart",
        Duration::from_secs(10),
        async || {
            let map = client.cluster(2).await?;
            Ok((map["map_epoch"] == map_before["map_epoch"]).then_some(map))
        },
    )
    .await?;
    ensure!(
        map_after["groups"] == map_before["groups"],
        "the cluster map changed across the restart"
    );
    for (i, (event, order)) in orders.iter().enumerate() {
        let reader = nodes[(i + 1) % nodes.len()];
        checks::orders_still_confirmed(&client, reader, *event, std::slice::from_ref(order)).await?;
        let view = expect_ok(
            client
                .event_view(reader, *event, Consistency::Linearizable)
                .await?,
            "view",
        )?;
        checks::sold_seats_match_orders(&view, std::slice::from_ref(order))?;
    }
    test.finish().await
}
