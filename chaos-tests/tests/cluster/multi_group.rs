//! Many Raft groups behind one API: placement, routing from any node, leadership
//! transfer under load, dedicated groups and the admin API's guards.
//!
//! Three nodes with four data groups. Eight events created through rotating nodes
//! must spread two per group, and a hold sent to any node must land in the right
//! group. Then a stream of hold→confirm runs on one event while its group's
//! leadership is handed to another node through the admin API (asked of the third
//! node, which forwards it to the group's leader): every acknowledged
//! order must still be confirmed afterwards and no seat sold twice. Finally an
//! event asks for a group of its own, and the admin API refuses callers without
//! the token and unknown regions with their stable codes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::checks;
use chaos_tests::workload::Booker;
use chaos_tests::{
    Consistency, LOCAL_ADMIN_TOKEN, READY_TIMEOUT, SeatPicker, TestCluster, eventually, expect_ok,
    grid_event, test_seed,
};
use region_config::{ClusterLayout, NodeId, RaftTuning};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const GROUPS: u32 = 4;
const SMALL_EVENTS: u64 = 8;
const STREAM_EVENT: u64 = 100;
const DEDICATED_EVENT: u64 = 200;
const CLIENTS: u64 = 6;
const HOLDS_PER_CLIENT: u64 = 40;
const CONFIRMS_BEFORE_TRANSFER: u64 = 40;
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_route_transfer_and_place() -> anyhow::Result<()> {
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
    let mut test = TestCluster::start_with_layout(3, RaftTuning::default(), layout, READY_TIMEOUT).await?;
    let client = test.client.clone();
    let nodes = test.cluster.node_ids();

    // Leaders of the data groups spread over the nodes (each node is preferred
    // leader of at least one of the four groups).
    let mut leaders = BTreeMap::new();
    for group in 1..=u64::from(GROUPS) {
        let leader = eventually("a group leader", Duration::from_secs(30), async || {
            Ok(test.cluster.group_leader(group).await)
        })
        .await?;
        leaders.insert(group, leader);
    }
    let distinct: std::collections::BTreeSet<_> = leaders.values().collect();
    eprintln!("data group leaders: {leaders:?}");
    ensure!(distinct.len() == 3, "group leaders do not spread: {leaders:?}");

    // Events created through every node spread evenly, and any node routes to them.
    let spec = grid_event("small", 1, 2, 10)?;
    for event in 1..=SMALL_EVENTS {
        let via = nodes[event as usize % nodes.len()];
        expect_ok(
            client
                .create_event(via, event, &spec, &format!("create-{event}"))
                .await?,
            "create a small event",
        )?;
    }
    // Node 1's copy of the map may trail the placements it did not make.
    let map = eventually(
        "node 1's map has every placement",
        Duration::from_secs(10),
        async || {
            let map = client.cluster(1).await?;
            Ok((map["events_placed"] == json!(SMALL_EVENTS)).then_some(map))
        },
    )
    .await?;
    ensure!(map["events_placed"] == json!(SMALL_EVENTS), "map: {map}");
    for group in map["groups"].as_array().context("groups")? {
        ensure!(group["events"] == json!(2), "uneven placement: {group}");
    }
    for event in 1..=SMALL_EVENTS {
        for (i, &via) in nodes.iter().enumerate() {
            let seat = format!("A-1-{}", i + 1);
            let hold = client
                .hold_seats(
                    via,
                    event,
                    "router",
                    std::slice::from_ref(&seat),
                    &format!("route-{event}-{via}"),
                )
                .await?;
            let hold = expect_ok(hold, &format!("hold {seat} of event {event} via node {via}"))?;
            // Read it back through another node, linearizably.
            let other = nodes[(i + 1) % nodes.len()];
            let read = client
                .get_hold(other, event, &hold.hold_id, Consistency::Linearizable)
                .await?;
            expect_ok(read, "read the hold through another node")?;
        }
    }

    // A booking stream on one event while its group's leadership moves.
    let stream_spec = grid_event("stream", 2, 10, 25)?;
    expect_ok(
        client
            .create_event(2, STREAM_EVENT, &stream_spec, "create-stream")
            .await?,
        "create the stream event",
    )?;
    let group = placement(&test, STREAM_EVENT).await?;
    let view = expect_ok(
        client
            .event_view(1, STREAM_EVENT, Consistency::Linearizable)
            .await?,
        "view",
    )?;
    let confirms = Arc::new(AtomicU64::new(0));
    let history = Arc::new(chaos_tests::history::Recorder::default());
    let booker = Booker {
        client: client.clone(),
        event_id: STREAM_EVENT,
        picker: Arc::new(SeatPicker::new(view.seats().map(|s| s.id.clone()).collect())),
        confirms: confirms.clone(),
        nodes: nodes.clone(),
        history: history.clone(),
    };
    let seed = test_seed();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(booker.clone().book(c, HOLDS_PER_CLIENT, seed.wrapping_add(c))))
        .collect();
    eventually("the first confirms", Duration::from_secs(60), async || {
        Ok((confirms.load(Ordering::Relaxed) >= CONFIRMS_BEFORE_TRANSFER).then_some(()))
    })
    .await?;
    let old_leader = test.cluster.group_leader(group).await.context("no leader")?;
    let new_leader: NodeId = nodes
        .iter()
        .copied()
        .find(|n| *n != old_leader)
        .context("no other node")?;
    let follower: NodeId = nodes
        .iter()
        .copied()
        .find(|n| *n != old_leader && *n != new_leader)
        .context("no third node")?;
    let transfer_path = format!("/v1/admin/groups/{group}/transfer-leader");
    let body = json!({ "to_node": new_leader });

    // The guards first: no token, a wrong token.
    let (status, problem) = client
        .admin(Method::POST, old_leader, &transfer_path, None, Some(&body))
        .await?;
    ensure!(
        status == StatusCode::UNAUTHORIZED && problem["code"] == "unauthorized",
        "{status} {problem}"
    );
    let (status, problem) = client
        .admin(
            Method::POST,
            old_leader,
            &transfer_path,
            Some("wrong-token-of-length"),
            Some(&body),
        )
        .await?;
    ensure!(status == StatusCode::UNAUTHORIZED, "{status} {problem}");
    // Asked of a node that does not lead the group: it is forwarded to the leader.
    let (status, answer) = client
        .admin(
            Method::POST,
            follower,
            &transfer_path,
            Some(LOCAL_ADMIN_TOKEN),
            Some(&body),
        )
        .await?;
    ensure!(status == StatusCode::OK, "transfer answered {status} {answer}");
    let moved_to = eventually(
        "the new leader taking over",
        Duration::from_secs(10),
        async || Ok(test.cluster.group_leader(group).await),
    )
    .await?;
    ensure!(
        moved_to == new_leader,
        "group {group} is led by {moved_to}, not {new_leader}"
    );
    eprintln!(
        "group {group}: leadership moved from node {old_leader} to node {new_leader} after {} confirms",
        confirms.load(Ordering::Relaxed)
    );

    let mut orders = Vec::new();
    for task in clients {
        orders.extend(task.await.context("a client panicked")??);
    }
    ensure!(
        orders.len() as u64 > CONFIRMS_BEFORE_TRANSFER,
        "too few bookings to mean anything"
    );
    checks::no_seat_in_two_orders(&orders)?;
    checks::orders_still_confirmed(&client, follower, STREAM_EVENT, &orders).await?;
    let view = expect_ok(
        client
            .event_view(follower, STREAM_EVENT, Consistency::Linearizable)
            .await?,
        "view",
    )?;
    checks::sold_seats_match_orders(&view, &orders)?;
    let report = history.check(&view)?;
    eprintln!(
        "linearizable: {} operations on {} seats",
        history.history().entries.len(),
        report.seats.len()
    );
    eprintln!("{} acknowledged orders intact after the transfer", orders.len());

    // A big on-sale gets a group of its own, started on every node.
    let big = grid_event("big on-sale", 1, 5, 20)?;
    expect_ok(
        client
            .create_event_with(
                3,
                DEDICATED_EVENT,
                &big,
                "create-big",
                json!({ "dedicated_group": true }),
            )
            .await?,
        "create the dedicated event",
    )?;
    let dedicated = placement(&test, DEDICATED_EVENT).await?;
    ensure!(dedicated > u64::from(GROUPS), "not a new group: {dedicated}");
    let map = client.cluster(1).await?;
    let info = map["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .find(|g| g["group_id"] == json!(dedicated))
        .cloned()
        .unwrap_or(Value::Null);
    ensure!(info["dedicated_to"] == json!(DEDICATED_EVENT), "{info}");
    test.leader().await?;
    let hold = client
        .hold_seats(1, DEDICATED_EVENT, "fan", &["A-1-1".to_owned()], "big-hold")
        .await?;
    expect_ok(hold, "hold in the dedicated group")?;

    // The admin API validates its input like the rest.
    let (status, problem) = client
        .admin(
            Method::POST,
            1,
            "/v1/admin/groups",
            Some(LOCAL_ADMIN_TOKEN),
            Some(&json!({ "home_region": "mars" })),
        )
        .await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY && problem["code"] == "unknown_region",
        "{status} {problem}"
    );
    let (status, created) = client
        .admin(
            Method::POST,
            2,
            "/v1/admin/groups",
            Some(LOCAL_ADMIN_TOKEN),
            Some(&json!({ "home_region": "local" })),
        )
        .await?;
    ensure!(status == StatusCode::CREATED, "{status} {created}");
    let new_group = created["group_id"].as_u64().context("group id")?;
    eventually(
        "the new group electing a leader",
        Duration::from_secs(30),
        async || Ok(test.cluster.group_leader(new_group).await),
    )
    .await?;

    test.finish().await
}

/// The group an event is placed on (placing again is a no-op that reports it).
async fn placement(test: &TestCluster, event: u64) -> anyhow::Result<u64> {
    let (status, answer) = test
        .client
        .admin(
            Method::POST,
            1,
            &format!("/v1/admin/events/{event}/placement"),
            Some(LOCAL_ADMIN_TOKEN),
            Some(&json!({ "home_region": "local" })),
        )
        .await?;
    ensure!(status == StatusCode::OK, "placement answered {status} {answer}");
    answer["group_id"].as_u64().context("no group id")
}
