//! A leader whose wall clock jumps must not stamp the log with it.
//!
//! Three nodes; node 3 runs under libfaketime, its clock offset set by the
//! test. Node 3 is made the event group's leader while a customer holds a
//! seat, then its clock jumps an hour forward. Before the max-offset rule an
//! hour-fast leader expired every hold at once and moved the log's clock an
//! hour ahead for good. Now node 3 must refuse to stamp writes, say why in
//! `/health` (live, but 503 on `/readyz`), sign no tokens, and hand the group over; writes continue through every node
//! (node 3 included, which forwards them); the hold made before the jump
//! stays active; nothing is stamped with the fast clock. Then its clock is
//! put right, and it leads and writes again. The same for a jump backwards.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::fake_clock::FakeClock;
use chaos_tests::{
    Breakable, Consistency, FIRST_DATA_GROUP, LOCAL_ADMIN_TOKEN, TestCluster, eventually, expect_ok,
    grid_event,
};
use region_config::{NodeId, RaftTuning};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVENT: u64 = 1;
const SKEWED: NodeId = 3;
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_a_jumped_clock_hands_over_and_stamps_nothing() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

fn true_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn scenario() -> anyhow::Result<()> {
    ensure!(
        FakeClock::available(),
        "libfaketime is missing: install Debian's faketime package (./dev test does)"
    );
    let breakable = Breakable {
        fake_clocks: vec![SKEWED],
        ..Breakable::default()
    };
    let test = TestCluster::start_breakable(3, RaftTuning::default(), &breakable).await?;
    let skewed = test.clocks.get(&SKEWED).context("node 3's clock")?;
    let client = test.client.clone();
    let view = test
        .create_event(1, EVENT, &grid_event("clock", 1, 1, 10)?)
        .await?;
    let seats: Vec<String> = view.seats().map(|s| s.id.clone()).collect();
    let before = expect_ok(
        client
            .hold_seats(1, EVENT, "early", &seats[..1], "hold-early")
            .await?,
        "hold before the jump",
    )?;

    for (jump_secs, round) in [(3_600_i64, "forward"), (-600, "backward")] {
        lead_from(&test, SKEWED).await?;
        skewed.set_offset_secs(jump_secs)?;
        // libfaketime re-reads the offset within a second; the next write
        // that node 3 would stamp comes after it.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let seat = if jump_secs > 0 { 1 } else { 2 };
        let hold = expect_ok(
            client
                .hold_seats(1, EVENT, round, &seats[seat..=seat], &format!("hold-{round}"))
                .await?,
            &format!("hold after the {round} jump"),
        )?;
        let stamped = created_at(&test, &hold.hold_id).await?;
        let now = true_now_ms();
        ensure!(
            stamped.abs_diff(now) < 60_000,
            "{round}: a hold was stamped {stamped}, {} ms from the true time {now}",
            stamped as i64 - now as i64
        );

        let health = eventually(
            "node 3 to find its clock suspect",
            Duration::from_secs(15),
            async || {
                let health = health_json(&test, SKEWED).await?;
                Ok((health["clock"]["suspect"] == true).then_some(health))
            },
        )
        .await?;
        let reason = health["clock"]["reason"].as_str().unwrap_or_default().to_owned();
        ensure!(
            reason.contains("ms from 2 of its 2 peers") || reason.contains("jumped"),
            "{round}: reason {reason:?}"
        );
        // It is live but not ready, and says why; its peers stay ready.
        let (status, _, body) = test.client.raw(Method::GET, SKEWED, "/livez").await?;
        ensure!(
            status == StatusCode::OK,
            "{round}: node 3's livez: {status} {body}"
        );
        let (status, _, body) = test.client.raw(Method::GET, SKEWED, "/readyz").await?;
        let not_ready: Value = serde_json::from_str(&body)?;
        ensure!(
            status == StatusCode::SERVICE_UNAVAILABLE
                && not_ready["code"] == "not_ready"
                && not_ready["reasons"].as_array().is_some_and(|r| r
                    .iter()
                    .any(|r| r.as_str().is_some_and(|r| r.contains("clock is suspect")))),
            "{round}: node 3's readyz: {status} {body}"
        );
        // Nor does it sign tokens, and a registration it refuses makes no
        // account: the same address registers at node 1 afterwards.
        let http = reqwest::Client::new();
        let email = format!("clock-{round}@example.org");
        let register = async |node: NodeId| -> anyhow::Result<(StatusCode, Value)> {
            let answer = http
                .post(format!("{}/v1/auth/register", test.cluster.http_url(node)))
                .json(
                    &json!({ "email": email, "password": "a long enough password", "name": "Clock Tester" }),
                )
                .send()
                .await?;
            let status = answer.status();
            Ok((status, answer.json().await.unwrap_or(Value::Null)))
        };
        let (status, body) = register(SKEWED).await?;
        ensure!(
            status == StatusCode::SERVICE_UNAVAILABLE && body["code"] == "clock_suspect",
            "{round}: registering at node 3: {status} {body}"
        );
        let (status, body) = register(1).await?;
        ensure!(
            status == StatusCode::CREATED,
            "{round}: registering at node 1 after node 3 refused: {status} {body}"
        );
        for good in [1, 2] {
            let (status, _, body) = test.client.raw(Method::GET, good, "/readyz").await?;
            ensure!(
                status == StatusCode::OK,
                "{round}: node {good}'s readyz: {status} {body}"
            );
            let h = health_json(&test, good).await?;
            ensure!(
                h["clock"]["suspect"] == false,
                "{round}: node {good} finds its own clock suspect: {h}"
            );
            let offset = h["clock"]["peer_offsets_ms"]["3"]["offset_ms"]
                .as_i64()
                .unwrap_or(0);
            ensure!(
                (offset / 1000 - jump_secs).abs() <= 2,
                "{round}: node {good} measured node 3 at {offset} ms"
            );
        }
        let leader = eventually("the group to leave node 3", Duration::from_secs(15), async || {
            Ok(test
                .cluster
                .group_leader(FIRST_DATA_GROUP)
                .await
                .filter(|l| *l != SKEWED))
        })
        .await?;
        eprintln!("{round} jump: node 3 says {reason:?}; group led by node {leader}");
        // Writes go on through node 3, which forwards them.
        let through = expect_ok(
            client
                .hold_seats(
                    SKEWED,
                    EVENT,
                    round,
                    &seats[seat + 2..=seat + 2],
                    &format!("hold-{round}-via-3"),
                )
                .await?,
            &format!("hold through node 3 after the {round} jump"),
        )?;
        ensure!(created_at(&test, &through.hold_id).await?.abs_diff(true_now_ms()) < 60_000);

        // The hold made at the start has not expired: nothing ran on the
        // fast clock.
        let early = expect_ok(
            client
                .get_hold(1, EVENT, &before.hold_id, Consistency::Linearizable)
                .await?,
            "the early hold",
        )?;
        ensure!(early["status"] == "active", "{round}: the early hold is {early}");

        // Put right: node 3 trusts its clock again and can lead and write.
        skewed.set_offset_secs(0)?;
        eventually(
            "node 3 to trust its clock again",
            Duration::from_secs(20),
            async || Ok((health_json(&test, SKEWED).await?["clock"]["suspect"] == false).then_some(())),
        )
        .await?;
        eventually("node 3 to be ready again", Duration::from_secs(20), async || {
            let (status, _, _) = test.client.raw(Method::GET, SKEWED, "/readyz").await?;
            Ok((status == StatusCode::OK).then_some(()))
        })
        .await?;
    }
    lead_from(&test, SKEWED).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        test.cluster.group_leader(FIRST_DATA_GROUP).await == Some(SKEWED),
        "node 3 did not keep the leadership once its clock was right"
    );
    let last = expect_ok(
        client
            .hold_seats(1, EVENT, "last", &seats[9..], "hold-last")
            .await?,
        "hold once node 3 leads again",
    )?;
    ensure!(created_at(&test, &last.hold_id).await?.abs_diff(true_now_ms()) < 60_000);
    test.finish().await
}

/// Makes `node` lead the event group.
async fn lead_from(test: &TestCluster, node: NodeId) -> anyhow::Result<()> {
    let path = format!("/v1/admin/groups/{FIRST_DATA_GROUP}/transfer-leader");
    let body = json!({ "to_node": node });
    eventually(
        "the transfer to be accepted",
        Duration::from_secs(20),
        async || {
            let (status, _) = test
                .client
                .admin(Method::POST, 1, &path, Some(LOCAL_ADMIN_TOKEN), Some(&body))
                .await?;
            Ok((status == StatusCode::OK).then_some(()))
        },
    )
    .await?;
    eventually(
        &format!("node {node} to lead"),
        Duration::from_secs(15),
        async || {
            Ok(test
                .cluster
                .group_leader(FIRST_DATA_GROUP)
                .await
                .filter(|l| *l == node))
        },
    )
    .await?;
    Ok(())
}

async fn health_json(test: &TestCluster, node: NodeId) -> anyhow::Result<Value> {
    let (status, _, body) = test.client.raw(Method::GET, node, "/health").await?;
    ensure!(status == StatusCode::OK, "health of node {node}: {status}");
    Ok(serde_json::from_str(&body)?)
}

/// When the log says a hold was made: the time its leader stamped.
async fn created_at(test: &TestCluster, hold_id: &chaos_tests::client::WireId) -> anyhow::Result<u64> {
    let hold = expect_ok(
        test.client
            .get_hold(1, EVENT, hold_id, Consistency::Linearizable)
            .await?,
        "the hold",
    )?;
    hold["created_at_ms"].as_u64().context("created_at_ms")
}
