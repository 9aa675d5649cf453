//! Survival goals: an event whose group survives a region keeps selling when
//! its home region is lost; one whose group survives a node does not.
//!
//! Five nodes: three in eu-west, one in us-east, one in ap-south. Event 1 is
//! on a shared eu-west group (`survive: node`, all three voters at home);
//! event 2 asks for `survive: region`, a group of its own with voters in all
//! three regions, led from home. Both sell; then every eu-west node dies.
//! A hold on event 2 through us-east succeeds once a leader is elected
//! abroad; a hold on event 1 answers `unavailable` and changes nothing.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::shop::{call, expect};
use chaos_tests::{READY_TIMEOUT, TestCluster, expect_ok, grid_event};
use region_config::{ClusterLayout, RaftTuning, RegionId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(180);
const AT_HOME: u64 = 1;
const SPREAD: u64 = 2;
const US: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_surviving_event_sells_on_when_its_home_region_is_lost() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let eu = RegionId::new("eu-west")?;
    let regions = [
        eu.clone(),
        eu.clone(),
        eu,
        RegionId::new("us-east")?,
        RegionId::new("ap-south")?,
    ];
    let layout = ClusterLayout {
        groups_per_region: 2,
        ..ClusterLayout::default()
    };
    let mut test =
        TestCluster::launch(5, RaftTuning::default(), layout, &regions, READY_TIMEOUT, &|_| {}).await?;
    test.leader().await?;
    let client = test.client.clone();
    let operator = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    let spec = grid_event("survival", 1, 2, 5)?;
    for (event, extra) in [
        (AT_HOME, json!({ "home_region": "eu-west" })),
        (SPREAD, json!({ "home_region": "eu-west", "survive": "region" })),
    ] {
        let created = client
            .create_event_with(1, event, &spec, &format!("create-{event}"), extra)
            .await?;
        expect_ok(created, "create")?;
    }
    let (_, map) = call(&client, operator, Method::GET, 1, "/v1/cluster", None, None).await?;
    let groups = map["groups"].as_array().context("groups")?;
    let spread = groups
        .iter()
        .find(|g| g["dedicated_to"] == SPREAD)
        .context("no group of its own for event 2")?;
    ensure!(spread["survive"] == "region", "{spread}");
    let voter_nodes: Vec<u64> = spread["voters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["node_id"].as_u64())
        .collect();
    ensure!(
        voter_nodes.iter().filter(|n| **n <= 3).count() == 1
            && voter_nodes.contains(&US)
            && voter_nodes.contains(&5),
        "voters of a region-surviving group span the regions: {voter_nodes:?}"
    );
    let shared = groups
        .iter()
        .find(|g| g["home_region"] == "eu-west" && g["events"] == 1 && g["dedicated_to"].is_null())
        .context("no shared group holds event 1")?;
    ensure!(shared["survive"] == "node", "{shared}");

    let hold = async |event: u64, node: u64, seat: &str| -> anyhow::Result<(StatusCode, Value)> {
        call(
            &client,
            operator,
            Method::POST,
            node,
            &format!("/v1/events/{event}/holds"),
            Some(json!({ "holder": "fan", "seats": [seat] })),
            Some(&format!("hold-{event}-{seat}")),
        )
        .await
    };
    for event in [AT_HOME, SPREAD] {
        expect(
            "a hold at home",
            &hold(event, 1, "A-1-1").await?,
            StatusCode::CREATED,
            None,
        )?;
    }

    for node in [1, 2, 3] {
        test.cluster.kill(node)?;
    }
    // The spread group elects abroad and sells on (the client retries until
    // it gets a definitive answer).
    expect(
        "a hold on the region-surviving event, its home region lost",
        &hold(SPREAD, US, "A-1-2").await?,
        StatusCode::CREATED,
        None,
    )?;
    // The home-only group has no quorum left: a clear refusal, nothing changed.
    let http = reqwest::Client::new();
    let refused = http
        .post(format!("{}/v1/events/{AT_HOME}/holds", test.cluster.http_url(US)))
        .bearer_auth(chaos_tests::LOCAL_ADMIN_TOKEN)
        .header("Idempotency-Key", "home-only-lost")
        .json(&json!({ "holder": "fan", "seats": ["A-1-2"] }))
        .timeout(Duration::from_secs(90))
        .send()
        .await?;
    let status = refused.status();
    let body: Value = refused.json().await.unwrap_or(Value::Null);
    ensure!(
        status == StatusCode::SERVICE_UNAVAILABLE && body["code"] == "unavailable",
        "a hold on the node-surviving event, its home region lost: {status} {body}"
    );
    let seats = call(
        &client,
        None,
        Method::GET,
        US,
        &format!("/v1/events/{SPREAD}"),
        None,
        None,
    )
    .await?;
    expect("the spread event's seat map", &seats, StatusCode::OK, None)?;
    ensure!(seats.1["held"] == 2, "both holds of event 2 stand: {}", seats.1);
    test.finish().await
}
