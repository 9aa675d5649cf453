//! Read replicas: a region without a voter of an event's group reads its
//! seat map from a learner of its own, and says how fresh the answer is.
//!
//! Five nodes: three in eu-west, two in ap-south, 60 ms one way between the
//! regions. The groups homed in eu-west have all their voters there, so one
//! ap-south node carries a non-voting read replica of each (but of none of
//! the accounts group: personal data stays home), and the other reads from it. The test books in eu-west,
//! reads the seat map in ap-south from that node's own replica (well under a
//! round trip, served-by and as-of headers saying so), then cuts ap-south
//! off from its home (the eu-west nodes die) and checks the three read
//! levels and a write there: `local` still answers with a growing
//! staleness, `bounded` refuses with `replica_too_stale` once the bound is
//! passed, and a hold is refused as unavailable and changes nothing.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chaos_tests::shop::{call, expect};
use chaos_tests::{READY_TIMEOUT, TestCluster, eventually, expect_ok, grid_event};
use region_config::{ClusterLayout, RaftTuning, RegionId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(240);
const ONE_WAY_MS: u64 = 60;
const EVENT: u64 = 1;
const ABROAD: u64 = 4;
/// The other ap-south node: it has no replica of the event's group and
/// reads from its neighbour's.
const NEIGHBOUR: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_without_voters_reads_from_its_own_replica_and_knows_how_stale() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

/// One answer with the headers a read from a replica carries.
struct Read {
    status: StatusCode,
    body: Value,
    served_by: Option<u64>,
    as_of_index: Option<u64>,
    staleness_ms: Option<u64>,
    took: Duration,
}

async fn get(http: &reqwest::Client, base: &str, path: &str) -> anyhow::Result<Read> {
    let started = Instant::now();
    let response = http.get(format!("{base}{path}")).send().await?;
    let took = started.elapsed();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (served_by, as_of_index, staleness_ms) = (
        header("boxoffice-served-by"),
        header("boxoffice-as-of-index"),
        header("boxoffice-staleness-ms"),
    );
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok(Read {
        status,
        body,
        served_by,
        as_of_index,
        staleness_ms,
        took,
    })
}

async fn scenario() -> anyhow::Result<()> {
    let eu = RegionId::new("eu-west")?;
    let ap = RegionId::new("ap-south")?;
    let regions = [eu.clone(), eu.clone(), eu, ap.clone(), ap];
    let layout = ClusterLayout {
        groups_per_region: 2,
        ..ClusterLayout::default()
    };
    let tuning = RaftTuning::default().over_wan(ONE_WAY_MS);
    let mut test = TestCluster::launch(5, tuning, layout, &regions, READY_TIMEOUT, &|config| {
        config.wan.one_way_ms = ONE_WAY_MS;
    })
    .await?;
    test.leader().await?;
    let client = test.client.clone();
    let operator = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    let http = reqwest::Client::new();
    let abroad = test.cluster.http_url(ABROAD);

    // The placement rule is recorded and every eu-west group but the
    // accounts one has its read replica on the ap-south node.
    let cluster = eventually("read replicas placed", Duration::from_secs(60), async || {
        let (status, body) = call(&client, operator, Method::GET, 1, "/v1/cluster", None, None).await?;
        ensure!(status == StatusCode::OK, "cluster view: {status}");
        ensure!(
            body["read_replicas"] == "every-region",
            "rule: {}",
            body["read_replicas"]
        );
        let eu_groups: Vec<&Value> = body["groups"]
            .as_array()
            .context("groups")?
            .iter()
            .filter(|g| g["home_region"] == "eu-west")
            .collect();
        ensure!(eu_groups.len() == 2, "two eu-west groups: {eu_groups:?}");
        let readers = |g: &Value| g["read_replicas"].as_array().map_or(0, Vec::len);
        ensure!(
            readers(eu_groups[0]) == 0,
            "the accounts group (lowest id) keeps no replica abroad: {}",
            eu_groups[0]
        );
        ensure!(
            eu_groups[1]["read_replicas"][0]["node_id"] == ABROAD,
            "the other eu-west group reads in ap-south: {}",
            eu_groups[1]
        );
        Ok(Some(body))
    })
    .await?;
    let reading_group = cluster["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["home_region"] == "eu-west")
        .nth(1)
        .and_then(|g| g["group_id"].as_u64())
        .context("group id")?;

    // An eu-west event avoids the accounts group and so has a reader abroad.
    let spec = grid_event("read everywhere", 1, 2, 5)?;
    let created = client
        .create_event_with(1, EVENT, &spec, "create", json!({ "home_region": "eu-west" }))
        .await?;
    expect_ok(created, "create")?;
    for seat in ["A-1-1", "A-1-2"] {
        let hold = call(
            &client,
            operator,
            Method::POST,
            1,
            &format!("/v1/events/{EVENT}/holds"),
            Some(json!({ "holder": "home", "seats": [seat] })),
            Some(&format!("hold-{seat}")),
        )
        .await?;
        expect("a hold at home", &hold, StatusCode::CREATED, None)?;
    }

    // Abroad, the learner catches up and answers by itself, fast.
    let path = format!("/v1/events/{EVENT}?consistency=local");
    let seen = eventually("the learner has the holds", Duration::from_secs(30), async || {
        let read = get(&http, &abroad, &path).await?;
        ensure!(read.status == StatusCode::OK, "{} {}", read.status, read.body);
        ensure!(read.body["held"] == 2, "held {}", read.body["held"]);
        // Until the node runs its replica, the leader answers for it.
        ensure!(read.served_by == Some(ABROAD), "served by {:?}", read.served_by);
        Ok(Some(read))
    })
    .await?;
    ensure!(seen.as_of_index.is_some(), "no as-of index");
    let round_trip = Duration::from_millis(2 * ONE_WAY_MS);
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        fastest = fastest.min(get(&http, &abroad, &path).await?.took);
    }
    ensure!(
        fastest < round_trip,
        "a local seat map abroad took {fastest:?}, not less than a round trip ({round_trip:?})"
    );
    let (_, map) = call(&client, operator, Method::GET, 1, "/v1/cluster", None, None).await?;
    let owner = map["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["events"].as_u64() == Some(1) && g["home_region"] == "eu-west")
        .and_then(|g| g["group_id"].as_u64());
    ensure!(
        owner == Some(reading_group),
        "the event is on group {owner:?}, not {reading_group}"
    );

    // A bounded read is answered here too, and says within what.
    let bounded = eventually(
        "a bounded read from the learner",
        Duration::from_secs(30),
        async || {
            let read = get(
                &http,
                &abroad,
                &format!("/v1/events/{EVENT}?consistency=bounded&max_staleness_ms=3000&fallback=none"),
            )
            .await?;
            ensure!(read.status == StatusCode::OK, "{} {}", read.status, read.body);
            Ok(Some(read))
        },
    )
    .await?;
    ensure!(
        bounded.served_by == Some(ABROAD),
        "bounded served by {:?}",
        bounded.served_by
    );
    let staleness = bounded.staleness_ms.context("no staleness")?;
    ensure!(staleness <= 3000, "staleness {staleness} ms");

    // The other ap-south node has no replica of the group: it asks its
    // neighbour's (still well under a round trip), not the leader abroad.
    let beside = get(
        &http,
        &test.cluster.http_url(NEIGHBOUR),
        &format!("/v1/events/{EVENT}?consistency=bounded&max_staleness_ms=3000&fallback=none"),
    )
    .await?;
    ensure!(
        beside.status == StatusCode::OK,
        "{} {}",
        beside.status,
        beside.body
    );
    ensure!(
        beside.served_by == Some(ABROAD),
        "node {NEIGHBOUR}'s read served by {:?}",
        beside.served_by
    );
    ensure!(
        beside.took < round_trip,
        "a neighbour's read took {:?}",
        beside.took
    );
    // Read again, it is the borrowed answer that serves, from the cache,
    // saying what it reflects: the same lender and index, no fresher.
    let hits_before = cache_hits(&http, &test.cluster.http_url(NEIGHBOUR)).await?;
    let again = get(
        &http,
        &test.cluster.http_url(NEIGHBOUR),
        &format!("/v1/events/{EVENT}?consistency=bounded&max_staleness_ms=3000&fallback=none"),
    )
    .await?;
    ensure!(again.status == StatusCode::OK, "{} {}", again.status, again.body);
    ensure!(
        again.served_by == Some(ABROAD) && again.as_of_index >= beside.as_of_index,
        "the second read: served by {:?} at {:?}, the first at {:?}",
        again.served_by,
        again.as_of_index,
        beside.as_of_index
    );
    ensure!(
        again.staleness_ms.is_some_and(|s| s <= 3000),
        "a borrowed answer beyond its bound: {:?}",
        again.staleness_ms
    );
    let hits_after = cache_hits(&http, &test.cluster.http_url(NEIGHBOUR)).await?;
    ensure!(
        hits_after > hits_before,
        "node {NEIGHBOUR}'s second read missed the cache ({hits_before} -> {hits_after} hits)"
    );

    // Personal data stays home: a customer of ap-south registers there and
    // books the eu-west event; no eu-west node's files hold their address
    // or name (the event group keeps only the opaque customer id), while the
    // ap-south node's do (the scan can find what it looks for).
    let email = format!("quokka-{}@example.org", std::process::id());
    let name = "Zephyrine Quokkafeather";
    let registered = call(
        &client,
        None,
        Method::POST,
        ABROAD,
        "/v1/auth/register",
        Some(json!({ "email": email, "password": "a long enough password", "name": name })),
        Some("register-abroad"),
    )
    .await?;
    expect("registration in ap-south", &registered, StatusCode::CREATED, None)?;
    let token = registered.1["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned();
    let hold = call(
        &client,
        Some(&token),
        Method::POST,
        1,
        &format!("/v1/events/{EVENT}/holds"),
        Some(json!({ "seats": ["A-1-3"] })),
        Some("customer-hold"),
    )
    .await?;
    expect("the customer's hold in eu-west", &hold, StatusCode::CREATED, None)?;
    eventually(
        "the learner has the customer's hold",
        Duration::from_secs(30),
        async || {
            let read = get(&http, &abroad, &path).await?;
            Ok((read.body["held"] == 3).then_some(()))
        },
    )
    .await?;
    // The borrowed answer is refreshed behind the reads: the neighbour
    // shows the new hold too.
    eventually(
        "the neighbour's borrowed seat map has the customer's hold",
        Duration::from_secs(30),
        async || {
            let read = get(
                &http,
                &test.cluster.http_url(NEIGHBOUR),
                &format!("/v1/events/{EVENT}?consistency=bounded&max_staleness_ms=3000&fallback=none"),
            )
            .await?;
            Ok((read.body["held"] == 3).then_some(()))
        },
    )
    .await?;
    for node in [1, 2, 3, ABROAD, NEIGHBOUR] {
        let hits = files_mentioning(&test, node, &[email.as_bytes(), name.as_bytes()])?;
        if node == ABROAD || node == NEIGHBOUR {
            ensure!(
                !hits.is_empty(),
                "the scan finds nothing even at home: it cannot be trusted"
            );
        } else {
            ensure!(
                hits.is_empty(),
                "node {node} (eu-west) stores ap-south personal data in {hits:?}"
            );
        }
    }

    // Cut ap-south off from home: every eu-west node goes.
    for node in [1, 2, 3] {
        test.cluster.kill(node)?;
    }
    let cut_at = Instant::now();
    let local = get(&http, &abroad, &path).await?;
    ensure!(
        local.status == StatusCode::OK,
        "local read when cut off: {} {}",
        local.status,
        local.body
    );
    ensure!(
        local.body["held"] == 3,
        "the learner keeps what it had: {}",
        local.body
    );
    ensure!(local.served_by == Some(ABROAD), "served by {:?}", local.served_by);

    let too_stale = eventually(
        "a bounded read refuses once the bound passes",
        Duration::from_secs(30),
        async || {
            let read = get(
                &http,
                &abroad,
                &format!("/v1/events/{EVENT}?consistency=bounded&max_staleness_ms=1000&fallback=none"),
            )
            .await?;
            if read.status == StatusCode::OK {
                bail!("still within the bound ({:?} ms)", read.staleness_ms);
            }
            Ok(Some(read))
        },
    )
    .await?;
    ensure!(
        too_stale.status == StatusCode::SERVICE_UNAVAILABLE && too_stale.body["code"] == "replica_too_stale",
        "{} {}",
        too_stale.status,
        too_stale.body
    );
    ensure!(
        cut_at.elapsed() >= Duration::from_millis(500),
        "refused before any staleness could build up"
    );
    // Nor does the neighbour's borrowed answer outlive the bound.
    let borrowed_too_stale = eventually(
        "the neighbour's bounded read refuses once the bound passes",
        Duration::from_secs(30),
        async || {
            let read = get(
                &http,
                &test.cluster.http_url(NEIGHBOUR),
                &format!("/v1/events/{EVENT}?consistency=bounded&max_staleness_ms=1000&fallback=none"),
            )
            .await?;
            // An answer beyond the bound ends the wait too, and fails below.
            if read.status == StatusCode::OK && read.staleness_ms.is_some_and(|s| s <= 1000) {
                bail!("still within the bound ({:?} ms)", read.staleness_ms);
            }
            Ok(Some(read))
        },
    )
    .await?;
    ensure!(
        borrowed_too_stale.status == StatusCode::SERVICE_UNAVAILABLE
            && borrowed_too_stale.body["code"] == "replica_too_stale",
        "the neighbour's read once the bound passed: {} (staleness {:?} ms) {}",
        borrowed_too_stale.status,
        borrowed_too_stale.staleness_ms,
        borrowed_too_stale.body
    );
    let later = get(&http, &abroad, &path).await?;
    ensure!(
        later.staleness_ms.is_some_and(|s| s >= 1000),
        "local staleness grows while cut off: {:?}",
        later.staleness_ms
    );

    // A write cannot be decided abroad: a clear refusal, nothing changed.
    let hold = http
        .post(format!("{abroad}/v1/events/{EVENT}/holds"))
        .bearer_auth(chaos_tests::LOCAL_ADMIN_TOKEN)
        .header("Idempotency-Key", "cut-off-hold")
        .json(&json!({ "holder": "abroad", "seats": ["A-2-1"] }))
        .timeout(Duration::from_secs(90))
        .send()
        .await?;
    let status = hold.status();
    let body: Value = hold.json().await.unwrap_or(Value::Null);
    ensure!(
        status == StatusCode::SERVICE_UNAVAILABLE && body["code"] == "unavailable",
        "a hold cut off from home: {status} {body}"
    );
    let after = get(&http, &abroad, &path).await?;
    ensure!(after.body["held"] == 3, "nothing changed: {}", after.body);
    test.finish().await
}

/// The read cache's hits so far on the node at `base`.
async fn cache_hits(http: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let text = http.get(format!("{base}/metrics")).send().await?.text().await?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("boxoffice_read_cache_hits_total")?
                .trim()
                .parse()
                .ok()
        })
        .context("no boxoffice_read_cache_hits_total in /metrics")
}

/// The files of `node` (its data directory and its log) that contain any of `needles`.
fn files_mentioning(
    test: &TestCluster,
    node: u64,
    needles: &[&[u8]],
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut pending = vec![test.cluster.config(node).data_dir.clone()];
    let mut files = vec![test.cluster.log_path(node).to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut hits = Vec::new();
    for file in files {
        // A file may vanish mid-scan (a compaction, a rotated log).
        let Ok(bytes) = std::fs::read(&file) else { continue };
        if needles.iter().any(|n| bytes.windows(n.len()).any(|w| w == *n)) {
            hits.push(file);
        }
    }
    Ok(hits)
}
