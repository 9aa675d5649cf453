//! Bookings across a simulated wide-area network.
//!
//! Three nodes in three regions with a 60 ms one-way delay between regions
//! (`[wan]`, what `boxoffice demo --wan-ms` uses) and Raft timeouts stretched
//! to match. A hold is acknowledged only once a quorum has it, and every
//! quorum here lies partly abroad, so each hold, through whichever node,
//! takes at least one round trip between regions; a hold through a node
//! outside the event's home region pays for the forward too. The cluster
//! still elects, books and agrees: no seat is held twice.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chaos_tests::shop::{call, expect};
use chaos_tests::{READY_TIMEOUT, TestCluster, expect_ok, grid_event};
use region_config::{ClusterLayout, RaftTuning, RegionId};
use reqwest::{Method, StatusCode};
use serde_json::json;

const TEST_TIMEOUT: Duration = Duration::from_secs(180);
const ONE_WAY_MS: u64 = 60;
const EVENT: u64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_pay_a_round_trip_between_regions() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let regions = [
        RegionId::new("eu-west")?,
        RegionId::new("us-east")?,
        RegionId::new("ap-south")?,
    ];
    // Two groups per region: the first keeps the region's accounts on its
    // one node there; the event goes to the second, whose voters span the regions.
    let layout = ClusterLayout {
        groups_per_region: 2,
        ..ClusterLayout::default()
    };
    let tuning = RaftTuning::default().over_wan(ONE_WAY_MS);
    let mut test = TestCluster::launch(3, tuning, layout, &regions, READY_TIMEOUT, &|config| {
        config.wan.one_way_ms = ONE_WAY_MS;
    })
    .await?;
    let leader = test.leader().await?;
    let client = test.client.clone();
    let operator = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    let spec = grid_event("across the sea", 1, 2, 5)?;
    expect_ok(
        client
            .create_event_with(
                leader,
                EVENT,
                &spec,
                "create",
                json!({ "home_region": "eu-west" }),
            )
            .await?,
        "create",
    )?;

    let round_trip = Duration::from_millis(2 * ONE_WAY_MS);
    let mut took = Vec::new();
    for node in [1, 2, 3] {
        let body = json!({ "holder": format!("buyer-{node}"), "seats": [format!("A-1-{node}")] });
        let started = Instant::now();
        let hold = call(
            &client,
            operator,
            Method::POST,
            node,
            &format!("/v1/events/{EVENT}/holds"),
            Some(body),
            Some(&format!("hold-{node}")),
        )
        .await?;
        let elapsed = started.elapsed();
        expect("a hold across the WAN", &hold, StatusCode::CREATED, None)?;
        ensure!(
            elapsed >= round_trip,
            "a hold through node {node} took {elapsed:?}, less than one round trip between regions ({round_trip:?})"
        );
        took.push(elapsed);
    }
    eprintln!("holds through nodes 1, 2, 3 took {took:?}");

    // The same seat again, through another region: refused, not sold twice.
    let again = call(
        &client,
        operator,
        Method::POST,
        3,
        &format!("/v1/events/{EVENT}/holds"),
        Some(json!({ "holder": "late", "seats": ["A-1-1"] })),
        None,
    )
    .await?;
    expect(
        "a held seat",
        &again,
        StatusCode::CONFLICT,
        Some("seat_unavailable"),
    )?;
    let seen = call(
        &client,
        None,
        Method::GET,
        2,
        &format!("/v1/events/{EVENT}"),
        None,
        None,
    )
    .await?;
    expect("the seat map", &seen, StatusCode::OK, None)?;
    ensure!(
        seen.1["held"] == 3 && seen.1["available"] == 7,
        "seat map {}",
        seen.1
    );
    test.finish().await
}
