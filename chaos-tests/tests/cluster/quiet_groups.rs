//! Idle groups park their timers, and a parked group still fails over when its
//! leader's node dies.
//!
//! Three nodes with four data groups. After one booking the cluster goes idle: every
//! data-group replica on every node must report `parked` (no heartbeats, no election
//! timers). Then the node leading the booked event's group is killed with SIGKILL. Its
//! peers' liveness pings notice, wake the parked followers, and they elect a new
//! leader: a hold through a surviving node must succeed within 20 s, and the order made
//! before the kill must still be confirmed.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chaos_tests::checks::{self, ConfirmedOrder};
use chaos_tests::{READY_TIMEOUT, TestCluster, eventually, expect_ok, grid_event};
use region_config::{ClusterLayout, RaftTuning};

const EVENT: u64 = 1;
const FAILOVER_WITHIN: Duration = Duration::from_secs(20);
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_groups_fail_over() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let layout = ClusterLayout {
        groups_per_region: 4,
        replication: 3,
        ..ClusterLayout::default()
    };
    let mut test = TestCluster::start_with_layout(3, RaftTuning::default(), layout, READY_TIMEOUT).await?;
    let client = test.client.clone();
    let spec = grid_event("quiet", 1, 2, 10)?;
    expect_ok(client.create_event(1, EVENT, &spec, "create").await?, "create")?;
    let seats = vec!["A-1-1".to_owned()];
    let hold = expect_ok(client.hold_seats(2, EVENT, "fan", &seats, "hold").await?, "hold")?;
    let order = expect_ok(
        client.confirm(3, EVENT, &hold.hold_id, "fan", "confirm").await?,
        "confirm",
    )?;
    let order = ConfirmedOrder {
        order_id: order.order_id,
        holder: "fan".to_owned(),
        seats,
    };

    // Idle: every data-group replica parks.
    let nodes = test.cluster.node_ids();
    eventually("every data group parked", Duration::from_secs(30), async || {
        for node in &nodes {
            let health = client.health(*node).await?;
            let data: Vec<_> = health.groups.iter().filter(|g| g.group_id != 0).collect();
            if data.len() != 4 || !data.iter().all(|g| g.parked) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    let group = client
        .health(1)
        .await?
        .groups
        .iter()
        .filter(|g| g.group_id != 0)
        .map(|g| g.group_id)
        .find(|g| *g == chaos_tests::FIRST_DATA_GROUP)
        .context("group 1 missing")?;
    let leader = test
        .cluster
        .group_leader(group)
        .await
        .context("group 1 has no agreed leader")?;
    eprintln!("all data groups parked; killing node {leader}, leader of group {group}");

    test.cluster.kill(leader)?;
    let killed_at = Instant::now();
    let survivor = nodes
        .iter()
        .copied()
        .find(|n| *n != leader)
        .context("no survivor")?;
    let probe = client.clone().with_retry_budget(FAILOVER_WITHIN);
    let second = vec!["A-1-2".to_owned()];
    expect_ok(
        probe
            .hold_seats(survivor, EVENT, "late-fan", &second, "hold-after-kill")
            .await?,
        "hold after the kill",
    )?;
    let failover = killed_at.elapsed();
    ensure!(
        failover <= FAILOVER_WITHIN,
        "the parked group took {failover:?} to serve a write"
    );
    eprintln!("the parked group served a write {failover:?} after its leader's node died");
    checks::orders_still_confirmed(&client, survivor, EVENT, std::slice::from_ref(&order)).await?;

    test.cluster.restart(leader)?;
    test.leader().await?;
    test.finish().await
}
