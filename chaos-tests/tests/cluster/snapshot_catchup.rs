//! A follower that missed more than the leader keeps in its log catches up by snapshot.
//!
//! With snapshots every 300 entries and only 50 kept behind them, a follower is killed,
//! a few thousand entries are committed without it (holds, then releases or confirms),
//! and the test waits until the leader has purged its log past everything the follower
//! had applied. Restarted, the follower can only catch up by installing a snapshot: its
//! applied index must reach the leader's, its replica must equal the leader's view, and
//! its `/health` must show a snapshot.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::checks::first_difference;
use chaos_tests::{ApiClient, Consistency, TestCluster, eventually, expect_ok, grid_event};
use node::launcher::FIRST_DATA_GROUP;
use region_config::{NodeId, RaftTuning};

const EVENT: u64 = 1;
const WORKERS: u64 = 8;
/// Hold attempts per worker; each is followed by a release or a confirm, so the
/// workers commit 2 x 8 x 300 = 4800 entries.
const HOLDS_PER_WORKER: u64 = 300;
const TEST_TIMEOUT: Duration = Duration::from_secs(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_a_snapshot() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let raft = RaftTuning {
        snapshot_after_logs: 300,
        logs_to_keep_after_snapshot: 50,
        ..RaftTuning::default()
    };
    let mut test = TestCluster::start(3, raft).await?;
    let leader = test.leader().await?;
    let client = test.client.clone();
    let view = test
        .create_event(leader, EVENT, &grid_event("snapshot catch-up", 4, 20, 25)?)
        .await?;
    let seats: Vec<String> = view.seats().map(|s| s.id.clone()).collect();

    let lagging: NodeId = if leader == 3 { 2 } else { 3 };
    // The follower's state right before it dies, once it has the event.
    let applied_before = eventually(
        "the follower applying the event",
        Duration::from_secs(30),
        async || {
            let leader_applied = client.group_health(leader, FIRST_DATA_GROUP).await?.last_applied;
            let follower_applied = client.group_health(lagging, FIRST_DATA_GROUP).await?.last_applied;
            Ok((follower_applied >= leader_applied).then_some(follower_applied.unwrap_or(0)))
        },
    )
    .await?;
    test.cluster.kill(lagging)?;
    eprintln!("killed follower {lagging} at applied index {applied_before}");

    let per_worker = seats.len() / WORKERS as usize;
    let survivors = test.cluster.running_ids();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let part = seats[w as usize * per_worker..(w as usize + 1) * per_worker].to_vec();
            let node = survivors[w as usize % survivors.len()];
            tokio::spawn(churn(client.clone(), part, node, w))
        })
        .collect();
    for worker in workers {
        worker.await.context("a worker panicked")??;
    }

    let leader = test.leader().await?;
    let purged = eventually(
        "the leader purging its log",
        Duration::from_secs(60),
        async || {
            let purged = client.group_health(leader, FIRST_DATA_GROUP).await?.purged_index;
            Ok(purged.filter(|&purged| purged > applied_before))
        },
    )
    .await?;
    eprintln!("leader {leader} purged its log up to {purged}");

    test.cluster.restart(lagging)?;
    let caught_up = eventually("the follower catching up", Duration::from_secs(90), async || {
        let target = client.group_health(leader, FIRST_DATA_GROUP).await?.last_applied;
        let health = client.group_health(lagging, FIRST_DATA_GROUP).await?;
        Ok((health.last_applied >= target).then_some(health))
    })
    .await?;

    let expected = expect_ok(
        client
            .event_view_json(leader, EVENT, Consistency::Linearizable)
            .await?,
        "leader's view",
    )?;
    let local = expect_ok(
        client.event_view_json(lagging, EVENT, Consistency::Local).await?,
        "follower's view",
    )?;
    ensure!(
        local == expected,
        "the caught-up follower differs: {}",
        first_difference(&expected, &local)
    );
    ensure!(
        caught_up.snapshot_index.is_some(),
        "node {lagging} caught up without a snapshot: {caught_up:?}"
    );

    test.finish().await
}

/// One worker over its own seats: hold a seat, then release it (three times in four)
/// or confirm it, so most seats are held many times over.
async fn churn(client: ApiClient, mut free: Vec<String>, node: NodeId, worker: u64) -> anyhow::Result<()> {
    let holder = format!("w{worker}");
    for attempt in 0..HOLDS_PER_WORKER {
        if free.is_empty() {
            break;
        }
        let seat = free[attempt as usize % free.len()].clone();
        let key = format!("w{worker}-a{attempt}");
        let seats = [seat.clone()];
        let hold = client
            .hold_seats(node, EVENT, &holder, &seats, &format!("{key}-hold"))
            .await?;
        let hold = expect_ok(hold, &format!("holding {seat}"))?;
        if attempt % 4 == 3 {
            let order = client
                .confirm(node, EVENT, &hold.hold_id, &holder, &format!("{key}-confirm"))
                .await?;
            expect_ok(order, &format!("confirming {}", hold.hold_id))?;
            free.retain(|s| *s != seat);
        } else {
            let released = client
                .release(node, EVENT, &hold.hold_id, &holder, &format!("{key}-release"))
                .await?;
            expect_ok(released, &format!("releasing {}", hold.hold_id))?;
        }
    }
    Ok(())
}
