//! Leaders live in their group's home region, and come home after a failover.
//!
//! Three nodes in three regions, two data groups homed in each. Every group must be
//! led from its home region. (The first of each region keeps its accounts, whose
//! only voter stays in the region; the event goes to the second, whose voters
//! span all three.) An event homed in `us-east` is booked; the `us-east` node
//! is killed, so its group's leadership moves abroad and bookings continue through the
//! other regions; when the node is back and caught up, leadership must return to it
//! without an operator, and the bookings made meanwhile must be intact.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::checks::{self, ConfirmedOrder};
use chaos_tests::{READY_TIMEOUT, TestCluster, eventually, expect_ok, grid_event};
use region_config::{ClusterLayout, NodeId, RaftTuning, RegionId};
use serde_json::json;

const EVENT: u64 = 1;
const HOME: &str = "us-east";
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_returns_home_after_failover() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let regions = ["eu-west", HOME, "ap-south"]
        .map(|r| RegionId::new(r).expect("a valid region"))
        .to_vec();
    let layout = ClusterLayout {
        groups_per_region: 2,
        replication: 3,
        ..ClusterLayout::default()
    };
    let mut test =
        TestCluster::start_in_regions(3, RaftTuning::default(), layout, &regions, READY_TIMEOUT).await?;
    let client = test.client.clone();
    let region_of = |node: NodeId| regions[(node - 1) as usize].to_string();

    // Every group is led from home.
    let map = client.cluster(1).await?;
    let groups: Vec<(u64, String)> = map["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .map(|g| {
            (
                g["group_id"].as_u64().unwrap_or(0),
                g["home_region"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    ensure!(groups.len() == 6, "groups: {groups:?}");
    for (group, home) in &groups {
        eventually("a leader at home", Duration::from_secs(30), async || {
            Ok(test
                .cluster
                .group_leader(*group)
                .await
                .filter(|leader| region_of(*leader) == *home))
        })
        .await?;
    }

    let spec = grid_event("home", 1, 2, 10)?;
    expect_ok(
        client
            .create_event_with(1, EVENT, &spec, "create", json!({ "home_region": HOME }))
            .await?,
        "create",
    )?;
    let group = client.cluster(1).await?["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .find(|g| g["home_region"] == HOME && g["events"] == 1)
        .and_then(|g| g["group_id"].as_u64())
        .context("no us-east group holds the event")?;
    let home_node: NodeId = 2;
    ensure!(
        test.cluster.group_leader(group).await == Some(home_node),
        "group {group} is not led from node {home_node}"
    );
    let mut orders = Vec::new();
    let book = async |node: NodeId, seat: &str, key: &str| -> anyhow::Result<ConfirmedOrder> {
        let seats = vec![seat.to_owned()];
        let hold = expect_ok(
            client
                .hold_seats(node, EVENT, "fan", &seats, &format!("{key}-hold"))
                .await?,
            "hold",
        )?;
        let order = expect_ok(
            client
                .confirm(node, EVENT, &hold.hold_id, "fan", &format!("{key}-confirm"))
                .await?,
            "confirm",
        )?;
        Ok(ConfirmedOrder {
            order_id: order.order_id,
            holder: "fan".to_owned(),
            seats,
        })
    };
    orders.push(book(1, "A-1-1", "before").await?);

    test.cluster.kill(home_node)?;
    orders.push(book(3, "A-1-2", "abroad").await?);
    let abroad = eventually("a leader abroad", Duration::from_secs(30), async || {
        Ok(test.cluster.group_leader(group).await)
    })
    .await?;
    ensure!(abroad != home_node, "the killed node still leads");
    eprintln!(
        "group {group} is led from node {abroad} ({}) while {HOME} is down",
        region_of(abroad)
    );

    test.cluster.restart(home_node)?;
    eventually("leadership back home", Duration::from_secs(60), async || {
        Ok((test.cluster.group_leader(group).await == Some(home_node)).then_some(()))
    })
    .await?;
    eprintln!("group {group} is led from {HOME} again");
    orders.push(book(2, "A-1-3", "home-again").await?);
    checks::no_seat_in_two_orders(&orders)?;
    checks::orders_still_confirmed(&client, 1, EVENT, &orders).await?;
    test.finish().await
}
