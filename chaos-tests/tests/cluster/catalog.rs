//! The catalog and a customer's orders over HTTP, against a real cluster in
//! two regions.
//!
//! Venues and listings are written once, through one node, and searched
//! through a node of the other region (from its own replica, so the test
//! waits for it to catch up): filters by city, category, text and dates,
//! pages with a cursor, bad cursors and limits refused. With one group a
//! region, the events get a group apart from the region's accounts, so the
//! other region holds a replica of it. An event whose
//! listing names an unknown venue is not created at all. A customer who buys
//! in two events sees both orders, newest first; another customer sees none.
//! Cancelling an event cancels its listing.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::shop::{call, checkout, expect, text};
use chaos_tests::{READY_TIMEOUT, TestCluster, eventually, grid_event};
use region_config::{ClusterLayout, NodeId, RaftTuning, RegionId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);
const DAY_MS: u64 = 24 * 3600 * 1000;
const EU: NodeId = 1;
const US: NodeId = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_search_and_my_orders() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

fn ids(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["event_id"].as_u64()).collect())
        .unwrap_or_default()
}

async fn scenario() -> anyhow::Result<()> {
    let layout = ClusterLayout {
        groups_per_region: 1,
        replication: 3,
        ..ClusterLayout::default()
    };
    let regions = [RegionId::new("eu-west")?, RegionId::new("us-east")?];
    let test =
        TestCluster::start_in_regions(3, RaftTuning::default(), layout, &regions, READY_TIMEOUT).await?;
    let client = test.client.clone();
    let org = Some(chaos_tests::LOCAL_ADMIN_TOKEN);

    let venue = |name: &str, city: &str| json!({ "name": name, "address": "1 Grand Rue", "city": city, "country": "FR", "time_zone": "Europe/Paris" });
    let paris = call(
        &client,
        org,
        Method::POST,
        EU,
        "/v1/venues",
        Some(venue("Olympia", "Paris")),
        Some("v1"),
    )
    .await?;
    expect("a venue", &paris, StatusCode::CREATED, None)?;
    let lyon = call(
        &client,
        org,
        Method::POST,
        EU,
        "/v1/venues",
        Some(venue("Halle", "Lyon")),
        Some("v2"),
    )
    .await?;
    expect("another venue", &lyon, StatusCode::CREATED, None)?;
    let mut bad = venue("X", "Paris");
    bad["country"] = json!("France");
    let refused = call(&client, org, Method::POST, EU, "/v1/venues", Some(bad), None).await?;
    expect(
        "a venue with a bad country",
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_request"),
    )?;
    let anonymous = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/venues",
        Some(venue("Y", "Paris")),
        None,
    )
    .await?;
    expect(
        "an anonymous venue",
        &anonymous,
        StatusCode::UNAUTHORIZED,
        Some("unauthorized"),
    )?;
    // A zone of the right shape that the tz database does not know.
    let mut atlantis = venue("Atlantis Hall", "Atlantis");
    atlantis["time_zone"] = json!("Europe/Atlantis");
    let refused = call(&client, org, Method::POST, EU, "/v1/venues", Some(atlantis), None).await?;
    expect(
        "a venue in no time zone",
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_request"),
    )?;
    ensure!(refused.1["field"] == "time_zone", "{}", refused.1);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let events = [
        (1, "Rock Night", "concert", "The Band", &paris.1, now + DAY_MS),
        (
            2,
            "Summer Fest",
            "festival",
            "DJ Someone",
            &lyon.1,
            now + 2 * DAY_MS,
        ),
        (3, "Hamlet", "theatre", "The Company", &paris.1, now + 3 * DAY_MS),
    ];
    for (id, name, category, performer, venue, starts) in events {
        let listing = json!({ "description": format!("{name}, live"), "category": category, "performers": [performer],
            "venue_id": venue["venue_id"], "starts_at_ms": starts, "ends_at_ms": starts + 3 * 3600 * 1000 });
        let body = json!({ "event_id": id, "spec": grid_event(name, 1, 2, 5)?, "listing": listing });
        let created = call(
            &client,
            org,
            Method::POST,
            EU,
            "/v1/events",
            Some(body),
            Some(&format!("ev-{id}")),
        )
        .await?;
        expect("an event with a listing", &created, StatusCode::CREATED, None)?;
    }
    let nowhere = json!({ "category": "concert", "venue_id": 999_999, "starts_at_ms": now + DAY_MS, "ends_at_ms": now + 2 * DAY_MS });
    let body = json!({ "event_id": 4, "spec": grid_event("Nowhere", 1, 1, 1)?, "listing": nowhere });
    let orphan = call(&client, org, Method::POST, EU, "/v1/events", Some(body), None).await?;
    expect(
        "a listing at an unknown venue",
        &orphan,
        StatusCode::NOT_FOUND,
        Some("unknown_venue"),
    )?;
    let missing = call(&client, None, Method::GET, EU, "/v1/events/4", None, None).await?;
    expect(
        "the refused event",
        &missing,
        StatusCode::NOT_FOUND,
        Some("unknown_event"),
    )?;

    // Search through the other region's node, from its replica.
    let search = |query: String| {
        let client = client.clone();
        async move {
            let got = call(
                &client,
                None,
                Method::GET,
                US,
                &format!("/v1/events?{query}"),
                None,
                None,
            )
            .await?;
            expect("a search", &got, StatusCode::OK, None)?;
            Ok::<Value, anyhow::Error>(got.1)
        }
    };
    let all = eventually(
        "every listing reaches us-east",
        Duration::from_secs(20),
        async || {
            let page = search("limit=10".to_owned()).await?;
            Ok((ids(&page) == [1, 2, 3]).then_some(page))
        },
    )
    .await?;
    ensure!(
        all["as_of_index"].is_u64() && all["next_cursor"].is_null(),
        "{all}"
    );
    ensure!(
        all["events"][0]["venue"]["city"] == "Paris" && all["events"][0]["status"] == "on_sale",
        "{all}"
    );
    // One group a region: the events still keep off eu-west's accounts group
    // (its lowest-numbered group, which never has a replica abroad), on a
    // group made for them, so us-east prices them from a replica of its own.
    let map = client.cluster(EU).await?;
    let groups = map["groups"].as_array().context("no groups")?;
    let accounts = groups
        .iter()
        .filter(|g| g["home_region"] == "eu-west")
        .min_by_key(|g| g["group_id"].as_u64())
        .context("no eu-west group")?;
    ensure!(accounts["events"] == 0, "events on the accounts group: {map}");
    ensure!(
        all["events"]
            .as_array()
            .is_some_and(|events| events.iter().all(|e| e["price_from"].is_object())),
        "us-east has no replica of the events' group: {all}"
    );
    // Times also in RFC 3339 at the venue's local time, with Paris's offset.
    let starts_at = all["events"][0]["starts_at"].as_str().unwrap_or_default();
    ensure!(
        starts_at.len() >= 25 && (starts_at.ends_with("+01:00") || starts_at.ends_with("+02:00")),
        "starts_at {starts_at:?}"
    );
    ensure!(ids(&search("city=paris".into()).await?) == [1, 3], "city filter");
    ensure!(
        ids(&search("category=festival".into()).await?) == [2],
        "category filter"
    );
    ensure!(
        ids(&search("q=band".into()).await?) == [1],
        "text matches performers"
    );
    let window = format!("from_ms={}&to_ms={}", now + DAY_MS + 1, now + 3 * DAY_MS);
    ensure!(ids(&search(window).await?) == [2], "date window");
    let first = search("city=paris&limit=1".into()).await?;
    ensure!(ids(&first) == [1], "first page {first}");
    let cursor = text(&first, "next_cursor")?.to_owned();
    let second = search(format!("city=paris&limit=1&cursor={cursor}")).await?;
    ensure!(ids(&second) == [3], "second page {second}");
    for (query, field) in [
        ("cursor=nonsense", "cursor"),
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
    ] {
        let got = call(
            &client,
            None,
            Method::GET,
            US,
            &format!("/v1/events?{query}"),
            None,
            None,
        )
        .await?;
        expect(
            query,
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_request"),
        )?;
        ensure!(got.1["field"] == field, "{query}: {}", got.1);
    }
    let venues = call(&client, None, Method::GET, US, "/v1/venues?limit=1", None, None).await?;
    expect("venues", &venues, StatusCode::OK, None)?;
    ensure!(
        venues.1["venues"].as_array().map(Vec::len) == Some(1) && venues.1["next_cursor"].is_string(),
        "{}",
        venues.1
    );

    // A customer's orders across events, newest first; nobody else's.
    let register = |email: &'static str| {
        let client = client.clone();
        async move {
            let body = json!({ "email": email, "password": "a long password", "name": "N" });
            let got = call(
                &client,
                None,
                Method::POST,
                EU,
                "/v1/auth/register",
                Some(body),
                None,
            )
            .await?;
            expect("registration", &got, StatusCode::CREATED, None)?;
            Ok::<String, anyhow::Error>(text(&got.1, "access_token")?.to_owned())
        }
    };
    let alice = register("alice@example.org").await?;
    let bob = register("bob@example.org").await?;
    for event in [1u64, 2] {
        let held = call(
            &client,
            Some(&alice),
            Method::POST,
            EU,
            &format!("/v1/events/{event}/holds"),
            Some(json!({ "seats": ["A-1-1"] })),
            None,
        )
        .await?;
        expect("a hold", &held, StatusCode::CREATED, None)?;
        let paid = checkout(
            &client,
            Some(&alice),
            EU,
            event,
            &held.1["hold_id"],
            "tok_visa",
            &format!("pay-{event}"),
        )
        .await?;
        ensure!(paid["status"] == "succeeded", "{paid}");
    }
    let mine = call(
        &client,
        Some(&alice),
        Method::GET,
        US,
        "/v1/me/orders",
        None,
        None,
    )
    .await?;
    expect("alice's orders", &mine, StatusCode::OK, None)?;
    let events: Vec<u64> = mine.1["orders"]
        .as_array()
        .context("orders")?
        .iter()
        .filter_map(|o| o["event_id"].as_u64())
        .collect();
    ensure!(events == [2, 1], "alice's orders, newest first: {}", mine.1);
    let theirs = call(&client, Some(&bob), Method::GET, US, "/v1/me/orders", None, None).await?;
    ensure!(
        theirs.1["orders"].as_array().is_some_and(Vec::is_empty),
        "bob sees {}",
        theirs.1
    );
    let nobody = call(&client, None, Method::GET, US, "/v1/me/orders", None, None).await?;
    expect(
        "anonymous orders",
        &nobody,
        StatusCode::UNAUTHORIZED,
        Some("unauthorized"),
    )?;

    // A draft is neither searchable nor on sale until it is published.
    let listing = json!({ "category": "opera", "venue_id": paris.1["venue_id"], "starts_at_ms": now + 4 * DAY_MS,
        "ends_at_ms": now + 4 * DAY_MS + 3_600_000 });
    let body =
        json!({ "event_id": 5, "spec": grid_event("Tosca", 1, 1, 4)?, "listing": listing, "draft": true });
    let draft = call(
        &client,
        org,
        Method::POST,
        EU,
        "/v1/events",
        Some(body),
        Some("ev-5"),
    )
    .await?;
    expect("a draft", &draft, StatusCode::CREATED, None)?;
    let early = call(
        &client,
        Some(&alice),
        Method::POST,
        EU,
        "/v1/events/5/holds",
        Some(json!({ "seats": ["A-1-1"] })),
        None,
    )
    .await?;
    expect(
        "a hold on a draft",
        &early,
        StatusCode::CONFLICT,
        Some("event_not_on_sale"),
    )?;
    // Once us-east's replica has the draft's listing, its search still leaves it out.
    eventually(
        "the draft listing reaches us-east",
        Duration::from_secs(20),
        async || {
            let got = call(
                &client,
                None,
                Method::GET,
                US,
                "/v1/events/5/listing?consistency=local",
                None,
                None,
            )
            .await?;
            Ok((got.1["status"] == "draft").then_some(()))
        },
    )
    .await?;
    ensure!(
        ids(&search("category=opera".into()).await?).is_empty(),
        "a draft is searchable"
    );
    let by_customer = call(
        &client,
        Some(&alice),
        Method::POST,
        EU,
        "/v1/events/5/publish",
        None,
        None,
    )
    .await?;
    expect(
        "a customer publishes",
        &by_customer,
        StatusCode::FORBIDDEN,
        Some("forbidden"),
    )?;
    let published = call(
        &client,
        org,
        Method::POST,
        EU,
        "/v1/events/5/publish",
        None,
        Some("pub-5"),
    )
    .await?;
    expect("publishing", &published, StatusCode::OK, None)?;
    ensure!(published.1["published_at_ms"].is_u64(), "{}", published.1);
    // Once us-east's replica has applied the publication, its very next
    // search shows it: the empty answer cached a moment ago is keyed by the
    // index before it.
    eventually(
        "the publication reaches us-east",
        Duration::from_secs(20),
        async || {
            let got = call(
                &client,
                None,
                Method::GET,
                US,
                "/v1/events/5/listing?consistency=local",
                None,
                None,
            )
            .await?;
            Ok((got.1["status"] == "on_sale").then_some(()))
        },
    )
    .await?;
    ensure!(
        ids(&search("category=opera".into()).await?) == [5],
        "a search after the replica applied the publication still leaves it out"
    );
    // The same search again is answered from us-east's read cache.
    let hits_before = cache_hits(&client, US).await?;
    eventually(
        "a repeated search hits the cache",
        Duration::from_secs(10),
        async || {
            ensure!(
                ids(&search("category=opera".into()).await?) == [5],
                "the cached answer changed"
            );
            Ok((cache_hits(&client, US).await? > hits_before).then_some(()))
        },
    )
    .await?;
    // A local seat map, cached, then a hold: the replica moves on, and so
    // does the answer (a cached one is never older than the replica).
    let local_map = async || {
        let got = call(
            &client,
            None,
            Method::GET,
            US,
            "/v1/events/5?consistency=local",
            None,
            None,
        )
        .await?;
        expect("a local seat map", &got, StatusCode::OK, None)?;
        anyhow::Ok(got.1["available"].as_u64().context("no availability")?)
    };
    let before = local_map().await?;
    ensure!(
        local_map().await? == before,
        "two reads of a quiet replica differ"
    );
    let on_sale = call(
        &client,
        Some(&alice),
        Method::POST,
        EU,
        "/v1/events/5/holds",
        Some(json!({ "seats": ["A-1-1"] })),
        None,
    )
    .await?;
    expect("a hold once published", &on_sale, StatusCode::CREATED, None)?;
    eventually(
        "the hold in us-east's local seat map",
        Duration::from_secs(10),
        async || Ok((local_map().await? == before - 1).then_some(())),
    )
    .await?;

    // Cancelling an event cancels its listing.
    let cancelled = call(
        &client,
        org,
        Method::POST,
        EU,
        "/v1/events/3/cancel",
        None,
        Some("cancel-3"),
    )
    .await?;
    expect("a cancellation", &cancelled, StatusCode::OK, None)?;
    let listing = call(&client, None, Method::GET, EU, "/v1/events/3/listing", None, None).await?;
    ensure!(listing.1["status"] == "cancelled", "{}", listing.1);
    test.finish().await
}

/// `boxoffice_read_cache_hits_total` of one node.
async fn cache_hits(client: &chaos_tests::ApiClient, node: region_config::NodeId) -> anyhow::Result<u64> {
    let (status, _, text) = client.raw(Method::GET, node, "/metrics").await?;
    ensure!(status == StatusCode::OK, "/metrics answered {status}");
    text.lines()
        .find_map(|line| line.strip_prefix("boxoffice_read_cache_hits_total "))
        .context("no cache hit counter")?
        .trim()
        .parse()
        .context("a counter that is not a number")
}
