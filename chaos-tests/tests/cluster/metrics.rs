//! `/metrics` after a booking flow: the request counters and the latency
//! histogram of the node that served it moved by exactly what was asked of
//! it, by route template; its replica of the event's group counted the
//! booking outcomes the rules decided; and the store's figures are there
//! beside them.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::{TestCluster, eventually, expect_ok, grid_event};
use region_config::RaftTuning;
use reqwest::Method;

const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const EVENT: u64 = 1;
const NODE: u64 = 2;
const HOLDS: &str = "/v1/events/{event_id}/holds";
const CONFIRM: &str = "/v1/events/{event_id}/holds/{hold_id}/confirm";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_flow_moves_the_request_counters_by_what_was_asked() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

/// The value of the sample `name{…}` (or `name`, unlabelled) whose labels
/// include every one of `labels` (0 when there is none yet: a series
/// appears on first use).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<u64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (inside, value) = if let Some(labelled) = rest.strip_prefix('{') {
            let Some(split) = labelled.split_once("} ") else {
                continue;
            };
            split
        } else if let Some(value) = rest.strip_prefix(' ') {
            ("", value)
        } else {
            continue;
        };
        let have: Vec<&str> = inside.split(',').collect();
        if wanted.iter().all(|w| have.contains(&w.as_str())) {
            ensure!(found.is_none(), "two {name} samples match {labels:?}");
            found = Some(value.trim().parse::<f64>().with_context(|| format!("{line:?}"))? as u64);
        }
    }
    Ok(found.unwrap_or(0))
}

async fn scenario() -> anyhow::Result<()> {
    let test = TestCluster::start(3, RaftTuning::default()).await?;
    let view = test
        .create_event(1, EVENT, &grid_event("metrics", 1, 1, 10)?)
        .await?;
    let seats: Vec<String> = view.seats().map(|s| s.id.clone()).collect();
    let client = test.client.clone();
    let metrics = async || -> anyhow::Result<String> {
        let (status, _, body) = client.raw(Method::GET, NODE, "/metrics").await?;
        ensure!(status.is_success(), "GET /metrics: {status}");
        Ok(body)
    };
    let before = metrics().await?;

    // Through node 2 (a follower or the leader, whichever): three holds,
    // one refused for a seat already held, and one confirm.
    let mut holds = Vec::new();
    for (i, seat) in seats[..3].iter().enumerate() {
        let hold = expect_ok(
            client
                .hold_seats(
                    NODE,
                    EVENT,
                    &format!("buyer-{i}"),
                    std::slice::from_ref(seat),
                    &format!("m-hold-{i}"),
                )
                .await?,
            "a hold",
        )?;
        holds.push(hold);
    }
    let refused = client
        .hold_seats(NODE, EVENT, "late", &seats[..1], "m-hold-late")
        .await?;
    let problem = refused.err().context("a hold of a held seat was accepted")?;
    ensure!(
        problem.status == 409,
        "a hold of a held seat: {} {}",
        problem.status,
        problem.code
    );
    expect_ok(
        client
            .confirm(NODE, EVENT, &holds[0].hold_id, "buyer-0", "m-confirm-0")
            .await?,
        "the confirm",
    )?;

    let after = metrics().await?;
    let moved = |name: &str, labels: &[(&str, &str)]| -> anyhow::Result<u64> {
        Ok(sample(&after, name, labels)? - sample(&before, name, labels)?)
    };
    let requests = "boxoffice_http_requests_total";
    let created = moved(
        requests,
        &[("route", HOLDS), ("method", "POST"), ("status", "201")],
    )?;
    ensure!(created == 3, "{created} holds counted created, 3 made");
    let conflicts = moved(
        requests,
        &[("route", HOLDS), ("method", "POST"), ("status", "409")],
    )?;
    ensure!(conflicts == 1, "{conflicts} holds counted refused, 1 refused");
    let confirmed = moved(
        requests,
        &[("route", CONFIRM), ("method", "POST"), ("status", "201")],
    )?;
    ensure!(confirmed == 1, "{confirmed} confirms counted, 1 made");
    let timed = moved(
        "boxoffice_http_request_duration_seconds_count",
        &[("route", HOLDS), ("method", "POST")],
    )?;
    ensure!(timed == 4, "{timed} hold requests timed, 4 made");
    // Every WAL sync of node 2 is in the sync-time histogram, and every
    // append in the batching one (a sync may land between the two reads,
    // never the other way: the histograms are written first).
    let (syncs, timed_syncs) = (
        sample(&after, "boxoffice_wal_syncs_total", &[])?,
        sample(&after, "boxoffice_wal_sync_duration_seconds_count", &[])?,
    );
    ensure!(
        syncs > 0 && timed_syncs >= syncs && timed_syncs <= syncs + 2,
        "{timed_syncs} syncs timed of {syncs}"
    );
    let appends = sample(&after, "boxoffice_wal_appends_total", &[])?;
    let batched = sample(&after, "boxoffice_wal_appends_per_sync_sum", &[])?;
    ensure!(
        batched == appends,
        "{batched} appends in the histogram of {appends}"
    );
    // Each of the five writes went to a leader at least once.
    let attempts = moved("boxoffice_router_attempts_total", &[])?;
    ensure!(attempts >= 5, "{attempts} router attempts for 5 writes");
    // The largest bucket holds every one of them; no id became a label.
    let all = moved(
        "boxoffice_http_request_duration_seconds_bucket",
        &[("route", HOLDS), ("method", "POST"), ("le", "+Inf")],
    )?;
    ensure!(all == 4, "the +Inf bucket moved by {all}");
    ensure!(
        !after.contains(&format!("/v1/events/{EVENT}/holds")),
        "a concrete path became a label"
    );
    // The store's and the replicas' figures are still served beside them.
    for name in [
        "boxoffice_wal_syncs_total",
        "boxoffice_groups_hosted",
        "boxoffice_raft_term{",
        "boxoffice_raft_committed_index{",
        "boxoffice_raft_parked{",
        "boxoffice_router_outcome_unknown_total",
        "boxoffice_wal_sync_duration_seconds_bucket{",
    ] {
        ensure!(after.contains(name), "no {name} in /metrics");
    }
    // Node 2's replica of the event group applies the four accepted writes
    // (the refused hold is decided without an entry), once it hears of
    // their commit.
    let applied_before = sample(&before, "boxoffice_raft_applied_index", &[("group", "1")])?;
    eventually(
        "node 2 to apply the four writes",
        Duration::from_secs(10),
        async || {
            let now = sample(
                &metrics().await?,
                "boxoffice_raft_applied_index",
                &[("group", "1")],
            )?;
            Ok((now >= applied_before + 4).then_some(()))
        },
    )
    .await?;
    // Its state machine counted what the rules did, once each (the five
    // entries are applied once on this replica, whatever the retries).
    let after = metrics().await?;
    let group = ("group", "1");
    for (outcome, made) in [("held", 3), ("conflict", 1), ("confirmed", 1), ("released", 0)] {
        let counted = sample(&after, "boxoffice_bookings_total", &[group, ("outcome", outcome)])?
            - sample(
                &before,
                "boxoffice_bookings_total",
                &[group, ("outcome", outcome)],
            )?;
        ensure!(
            counted == made,
            "{counted} bookings counted {outcome}, {made} made"
        );
    }
    let entries = sample(&after, "boxoffice_raft_entries_per_apply_sum", &[group])?
        - sample(&before, "boxoffice_raft_entries_per_apply_sum", &[group])?;
    let batches = sample(&after, "boxoffice_raft_apply_duration_seconds_count", &[group])?
        - sample(&before, "boxoffice_raft_apply_duration_seconds_count", &[group])?;
    ensure!(
        entries >= 5 && (1..=entries).contains(&batches),
        "{entries} entries applied in {batches} batches"
    );
    let elected = sample(&after, "boxoffice_raft_leader_changes_total", &[group])?;
    ensure!(elected >= 1, "no leadership of group 1 counted");
    // Its leader knows each member's lag.
    let leader = test.cluster.leader_id().await.context("no leader")?;
    let (_, _, text) = client.raw(Method::GET, leader, "/metrics").await?;
    ensure!(
        text.lines()
            .filter(|l| l.starts_with("boxoffice_raft_replica_lag_entries{group=\"1\""))
            .count()
            >= 2,
        "the leader shows no lag of group 1's members:\n{text}"
    );
    ensure!(
        text.lines()
            .filter(|l| l.starts_with("boxoffice_raft_replica_lag_ms{group=\"1\""))
            .count()
            >= 2,
        "the leader shows no lag in ms of group 1's members"
    );
    // Every series the on-sale dashboard plots is one a node serves (the
    // leader's page has them all: lag is only known there).
    let board = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/grafana/dashboards/boxoffice-onsale.json"),
    )?;
    let board: serde_json::Value = serde_json::from_str(&board)?;
    let mut plotted = 0;
    for panel in board["panels"].as_array().context("no panels")? {
        for target in panel["targets"].as_array().context("a panel without targets")? {
            let expr = target["expr"].as_str().context("a target without expr")?;
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("boxoffice_"))
            {
                plotted += 1;
                ensure!(
                    text.lines()
                        .any(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' '])),
                    "the dashboard plots {name}, which /metrics does not serve"
                );
            }
        }
    }
    ensure!(plotted >= 16, "the dashboard plots only {plotted} series");
    test.finish().await
}
