//! A read replica lost with its node and placed again, and the metadata
//! group's few voters.
//!
//! Five nodes: eu-west 1–3 and ap-south 4–5. The second eu-west group (the
//! first is the accounts group, which keeps nothing abroad) has a read
//! replica on one ap-south node, R. All five nodes vote in the metadata
//! group (two regions: up to three voters each, five in all). A sixth node
//! joins ap-south and follows the metadata group as a learner: five voters
//! are the most, and joining does not reshuffle them. Then R is removed
//! through the admin API: its voters move within ap-south, its metadata
//! vote goes to the learner, and its read replica is placed again on
//! another ap-south node, which answers the event from its own replica with
//! the holds made before and after.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::shop::{call, expect};
use chaos_tests::{LOCAL_ADMIN_TOKEN, READY_TIMEOUT, TestCluster, eventually, expect_ok, grid_event};
use region_config::{ClusterLayout, RaftTuning, RegionId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);
const EVENT: u64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_read_replica_is_placed_again_and_the_metadata_group_keeps_five_voters() -> anyhow::Result<()>
{
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

/// The metadata group's voters and learners, by node, as `node` sees them.
async fn meta_members(
    client: &chaos_tests::ApiClient,
    node: u64,
) -> anyhow::Result<(BTreeSet<u64>, BTreeSet<u64>)> {
    let cluster = client.cluster(node).await?;
    let meta = cluster["replicas"]
        .as_array()
        .context("replicas")?
        .iter()
        .find(|r| r["group_id"] == 0)
        .context("no metadata replica")?;
    let (mut voters, mut learners) = (BTreeSet::new(), BTreeSet::new());
    for member in meta["members"].as_array().context("members")? {
        let node = member["node_id"].as_u64().context("node id")?;
        if member["voter"] == true {
            voters.insert(node);
        } else {
            learners.insert(node);
        }
    }
    Ok((voters, learners))
}

/// The eu-west group with events (not the accounts group) and its reader.
fn reader_of_eu_group(cluster: &Value) -> anyhow::Result<(u64, Option<u64>)> {
    let group = cluster["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .filter(|g| g["home_region"] == "eu-west")
        .nth(1)
        .context("a second eu-west group")?;
    let reader = group["read_replicas"]
        .as_array()
        .and_then(|r| r.first())
        .and_then(|r| r["node_id"].as_u64());
    Ok((group["group_id"].as_u64().context("group id")?, reader))
}

async fn hold(client: &chaos_tests::ApiClient, seat: &str) -> anyhow::Result<()> {
    let answer = call(
        client,
        Some(LOCAL_ADMIN_TOKEN),
        Method::POST,
        1,
        &format!("/v1/events/{EVENT}/holds"),
        Some(json!({ "holder": "home", "seats": [seat] })),
        Some(&format!("hold-{seat}")),
    )
    .await?;
    expect("a hold at home", &answer, StatusCode::CREATED, None)
}

/// Waits until `node` answers the event from its own replica with `held`.
async fn reads_locally(test: &TestCluster, node: u64, held: u64) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let url = format!(
        "{}/v1/events/{EVENT}?consistency=local",
        test.cluster.http_url(node)
    );
    eventually(
        &format!("node {node} reads {held} held from its own replica"),
        Duration::from_secs(60),
        async || {
            let response = http.get(&url).send().await?;
            let served_by = response
                .headers()
                .get("boxoffice-served-by")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            ensure!(status == StatusCode::OK, "{status} {body}");
            ensure!(served_by == Some(node), "served by {served_by:?}");
            ensure!(body["held"] == held, "held {}", body["held"]);
            Ok(Some(()))
        },
    )
    .await
}

async fn scenario() -> anyhow::Result<()> {
    let eu = RegionId::new("eu-west")?;
    let ap = RegionId::new("ap-south")?;
    let regions = [eu.clone(), eu.clone(), eu, ap.clone(), ap.clone()];
    let layout = ClusterLayout {
        groups_per_region: 2,
        ..ClusterLayout::default()
    };
    let mut test =
        TestCluster::launch(5, RaftTuning::default(), layout, &regions, READY_TIMEOUT, &|_| {}).await?;
    test.leader().await?;
    let client = test.client.clone();

    let (voters, learners) = meta_members(&client, 1).await?;
    ensure!(
        voters == BTreeSet::from([1, 2, 3, 4, 5]) && learners.is_empty(),
        "five nodes, five metadata voters: {voters:?} / {learners:?}"
    );
    let (group, reader) = eventually(
        "a read replica in ap-south",
        Duration::from_secs(60),
        async || {
            let (group, reader) = reader_of_eu_group(&client.cluster(1).await?)?;
            Ok(reader.map(|r| (group, r)))
        },
    )
    .await?;
    ensure!([4, 5].contains(&reader), "the reader {reader} is not in ap-south");

    let spec = grid_event("repaired", 1, 2, 5)?;
    let created = client
        .create_event_with(1, EVENT, &spec, "create", json!({ "home_region": "eu-west" }))
        .await?;
    expect_ok(created, "create")?;
    hold(&client, "A-1-1").await?;
    reads_locally(&test, reader, 1).await?;

    // A sixth node joins ap-south: a metadata learner, not a sixth voter.
    let (joining, _) = test.join_node(2).await?;
    let region = test.cluster.config(joining).region.clone();
    ensure!(region == ap, "the new node is in {region}");
    eventually("the new node ready", Duration::from_secs(60), async || {
        Ok(client.health(joining).await?.ready.then_some(()))
    })
    .await?;
    let (voters, learners) = meta_members(&client, joining).await?;
    eprintln!("after node {joining} joined: metadata voters {voters:?}, learners {learners:?}");
    ensure!(
        voters == BTreeSet::from([1, 2, 3, 4, 5]) && learners == BTreeSet::from([joining]),
        "joining reshuffled the metadata voters: {voters:?} / {learners:?}"
    );

    // The reader leaves: its read replica is placed on another ap-south node.
    let (status, answer) = client
        .admin(
            Method::POST,
            2,
            &format!("/v1/admin/nodes/{reader}/remove"),
            Some(LOCAL_ADMIN_TOKEN),
            None,
        )
        .await?;
    ensure!(
        status == StatusCode::OK,
        "removing node {reader}: {status} {answer}"
    );
    let replacement = eventually(
        "the read replica placed again",
        Duration::from_secs(60),
        async || {
            let (now_group, now) = reader_of_eu_group(&client.cluster(1).await?)?;
            ensure!(now_group == group, "the group changed: {now_group}");
            Ok(now.filter(|n| *n != reader))
        },
    )
    .await?;
    let ap_nodes: BTreeSet<u64> = [4, 5, joining].into_iter().filter(|n| *n != reader).collect();
    ensure!(
        ap_nodes.contains(&replacement),
        "the replacement {replacement} is not an ap-south node"
    );
    hold(&client, "A-1-2").await?;
    reads_locally(&test, replacement, 2).await?;
    eprintln!("the read replica moved from node {reader} to node {replacement} and serves the event");

    // Five voters still, the removed node among neither voters nor learners.
    let (voters, learners) = eventually(
        "the metadata group settled",
        Duration::from_secs(60),
        async || {
            let (voters, learners) = meta_members(&client, 1).await?;
            Ok((!voters.contains(&reader) && !learners.contains(&reader)).then_some((voters, learners)))
        },
    )
    .await?;
    eprintln!("after node {reader} left: metadata voters {voters:?}, learners {learners:?}");
    let expected: BTreeSet<u64> = [1, 2, 3, 4, 5, joining]
        .into_iter()
        .filter(|n| *n != reader)
        .collect();
    ensure!(
        voters == expected && learners.is_empty(),
        "after the removal: voters {voters:?}, learners {learners:?}"
    );
    Ok(())
}
