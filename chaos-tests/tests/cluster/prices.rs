//! Display prices in another currency, against a real cluster.
//!
//! An operator sets exchange rates through one node; every node then has them
//! in its own replica of the catalog. A seat map, a hold and an order asked
//! for with `?currency=` show each price twice: what the card is charged (the
//! event's euros, unchanged) and the converted amount with its rate and the
//! rate's time, in the target currency's real minor units (yen have none,
//! dinars three), rounded half to even. A currency without a rate is
//! `fx_rate_missing`, never a zero; a pair with no rate of its own crosses
//! through a third currency. Bad codes, bad rates, the opposite pair of a set
//! one, and callers who are not operators are refused, and a refused request
//! changes no rate.
//!
//! The three nodes are in three regions (Dublin, Tokyo, Virginia). Each
//! node's config describes them, and the region table reaches the cluster
//! map. A request that names no currency sees prices in the region of the
//! node that answers: yen in Tokyo, euros alone in Dublin, and in Virginia,
//! with no dollar rate yet, the price alone until an operator sets one. An
//! operator's new description of a region reaches every node.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::shop::{call, expect};
use chaos_tests::{ApiClient, TestCluster, eventually, expect_ok, grid_event};
use region_config::{ClusterLayout, NodeId, RaftTuning, RegionId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(180);
const EVENT: u64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_are_shown_in_the_asked_currency() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn get(client: &ApiClient, node: NodeId, path: &str) -> anyhow::Result<(StatusCode, Value)> {
    call(
        client,
        Some(chaos_tests::LOCAL_ADMIN_TOKEN),
        Method::GET,
        node,
        path,
        None,
        None,
    )
    .await
}

async fn scenario() -> anyhow::Result<()> {
    let regions = [
        RegionId::new("eu-west")?,
        RegionId::new("ap-northeast")?,
        RegionId::new("us-east")?,
    ];
    let layout = ClusterLayout {
        groups_per_region: 1,
        ..ClusterLayout::default()
    };
    let mut test = TestCluster::start_in_regions(
        3,
        RaftTuning::default(),
        layout,
        &regions,
        chaos_tests::READY_TIMEOUT,
    )
    .await?;
    let leader = test.leader().await?;
    let client = test.client.clone();
    let operator = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    // 45.00 EUR a seat, at home in Dublin.
    let spec = grid_event("prices", 1, 2, 5)?;
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

    // Every node learns the region table its config seeded.
    for node in [1, 2, 3] {
        let table = eventually(
            "the region table on every node",
            Duration::from_secs(20),
            async || {
                let seen = get(&client, node, "/v1/regions").await?;
                expect("the region table", &seen, StatusCode::OK, None)?;
                let all = seen.1["regions"].as_array().cloned().unwrap_or_default();
                Ok((all.len() == 3 && all.iter().all(|r| r["described"] == true)).then_some(seen.1))
            },
        )
        .await?;
        ensure!(
            table["this_region"] == regions[node as usize - 1].as_str(),
            "node {node}: {table}"
        );
        let tokyo = table["regions"]
            .as_array()
            .and_then(|all| all.iter().find(|r| r["id"] == "ap-northeast"))
            .context("no Tokyo")?;
        ensure!(
            tokyo["currency"] == "JPY"
                && tokyo["locale"] == "ja-JP"
                && tokyo["time_zone"] == "Asia/Tokyo"
                && tokyo["nodes"] == 1
                && tokyo["http_endpoint"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("http://")),
            "Tokyo as node {node} sees it: {tokyo}"
        );
    }

    // Only operators set rates.
    let rates = json!({ "base": "EUR", "rates": { "JPY": "157.43", "KWD": "0.3312" }, "as_of_ms": 1_000 });
    let anonymous = call(
        &client,
        None,
        Method::PUT,
        1,
        "/v1/admin/fx-rates",
        Some(rates.clone()),
        None,
    )
    .await?;
    expect(
        "rates from nobody",
        &anonymous,
        StatusCode::UNAUTHORIZED,
        Some("unauthorized"),
    )?;
    let set = call(
        &client,
        operator,
        Method::PUT,
        1,
        "/v1/admin/fx-rates",
        Some(rates),
        Some("fx-1"),
    )
    .await?;
    expect("rates from an operator", &set, StatusCode::OK, None)?;
    ensure!(
        set.1 == json!({ "base": "EUR", "count": 2 }),
        "set answered {}",
        set.1
    );

    // Refused: a bad code, a bad rate, the opposite pair of a set one, gold.
    for (what, body) in [
        ("a bad base", json!({ "base": "euro", "rates": { "JPY": "157" } })),
        ("a bad rate", json!({ "base": "EUR", "rates": { "JPY": "lots" } })),
        ("a zero rate", json!({ "base": "EUR", "rates": { "JPY": "0" } })),
        (
            "the opposite pair",
            json!({ "base": "JPY", "rates": { "EUR": "0.0064" } }),
        ),
        ("a metal", json!({ "base": "EUR", "rates": { "XAU": "0.0004" } })),
    ] {
        let refused = call(
            &client,
            operator,
            Method::PUT,
            2,
            "/v1/admin/fx-rates",
            Some(body),
            None,
        )
        .await?;
        expect(
            what,
            &refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_request"),
        )?;
    }

    // Every node has the rates in its own replica.
    for node in [1, 2, 3] {
        eventually(
            "the rates on every replica",
            Duration::from_secs(20),
            async || {
                let listed = get(&client, node, "/v1/fx-rates").await?;
                expect("the rates", &listed, StatusCode::OK, None)?;
                let rates = listed.1["rates"].as_array().cloned().unwrap_or_default();
                Ok((rates.len() == 2).then_some(rates))
            },
        )
        .await?;
    }
    let listed = get(&client, 3, "/v1/fx-rates").await?.1;
    let yen_rate = listed["rates"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["quote"] == "JPY"))
        .cloned()
        .context("no JPY rate")?;
    ensure!(
        yen_rate["base"] == "EUR" && yen_rate["rate"] == "157.43" && yen_rate["as_of_ms"] == 1_000,
        "stored rate {yen_rate}"
    );

    // The seat map in yen (45.00 x 157.43 = 7084.35: 7084, yen have no minor
    // unit) and in dinars (45.00 x 0.3312 = 14.904: three decimals).
    for (node, currency, amount) in [(2, "JPY", 7_084), (3, "KWD", 14_904)] {
        let seen = get(&client, node, &format!("/v1/events/{EVENT}?currency={currency}")).await?;
        expect("the seat map in another currency", &seen, StatusCode::OK, None)?;
        let tier = &seen.1["tiers"][0];
        ensure!(
            tier["price"] == json!({ "amount_minor": 4_500, "currency": "EUR" }),
            "the charge price changed: {tier}"
        );
        let shown = &tier["display_price"];
        ensure!(
            shown["amount_minor"] == amount
                && shown["currency"] == currency
                && shown["rate_as_of_ms"] == 1_000,
            "{currency}: {shown}"
        );
    }
    // Unasked, each node shows its region's currency where it can: yen in
    // Tokyo; in Dublin the euro price alone; in Virginia, with no dollar
    // rate, the price alone too.
    let unasked = |node: NodeId| {
        let client = client.clone();
        async move {
            let seen = get(&client, node, &format!("/v1/events/{EVENT}")).await?;
            expect("the seat map unasked", &seen, StatusCode::OK, None)?;
            anyhow::Ok(seen.1["tiers"][0].clone())
        }
    };
    let tokyo = unasked(2).await?;
    ensure!(
        tokyo["display_price"]["currency"] == "JPY" && tokyo["display_price"]["amount_minor"] == 7_084,
        "Tokyo unasked: {tokyo}"
    );
    for node in [1, 3] {
        let tier = unasked(node).await?;
        ensure!(tier.get("display_price").is_none(), "node {node} unasked: {tier}");
    }

    // A currency without a rate, and one that is not a currency.
    let missing = get(&client, 1, &format!("/v1/events/{EVENT}?currency=USD")).await?;
    expect(
        "a currency without a rate",
        &missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("fx_rate_missing"),
    )?;
    let bogus = get(&client, 1, &format!("/v1/events/{EVENT}?currency=XAU")).await?;
    expect(
        "a metal",
        &bogus,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_request"),
    )?;

    // A hold and an order show their totals both ways.
    let hold = call(
        &client,
        operator,
        Method::POST,
        1,
        &format!("/v1/events/{EVENT}/holds"),
        Some(json!({ "holder": "alice", "seats": ["A-1-1", "A-1-2"] })),
        Some("hold-1"),
    )
    .await?;
    expect("a hold", &hold, StatusCode::CREATED, None)?;
    let hold_id = hold.1["hold_id"].as_u64().context("no hold id")?;
    let seen = get(
        &client,
        2,
        &format!("/v1/events/{EVENT}/holds/{hold_id}?currency=JPY"),
    )
    .await?;
    expect("the hold in yen", &seen, StatusCode::OK, None)?;
    // 90.00 EUR x 157.43 = 14168.7: 14169.
    ensure!(
        seen.1["total"]["amount_minor"] == 9_000 && seen.1["display_total"]["amount_minor"] == 14_169,
        "hold {}",
        seen.1
    );
    let order = call(
        &client,
        operator,
        Method::POST,
        1,
        &format!("/v1/events/{EVENT}/holds/{hold_id}/confirm"),
        Some(json!({ "holder": "alice" })),
        Some("confirm-1"),
    )
    .await?;
    expect("an order", &order, StatusCode::CREATED, None)?;
    let order_id = order.1["order_id"].as_u64().context("no order id")?;
    let seen = get(
        &client,
        3,
        &format!("/v1/events/{EVENT}/orders/{order_id}?currency=KWD"),
    )
    .await?;
    expect("the order in dinars", &seen, StatusCode::OK, None)?;
    // 90.00 x 0.3312 = 29.808 KWD.
    ensure!(
        seen.1["display_total"]["amount_minor"] == 29_808,
        "order {}",
        seen.1
    );

    // An operator describes a region anew; nobody else may.
    let virginia = json!({
        "name": "US East (N. Virginia)",
        "currency": "USD",
        "locale": "en-US",
        "time_zone": "America/New_York",
        "http_endpoint": "https://us-east.tickets.example",
    });
    let path = "/v1/admin/regions/us-east";
    let anonymous = call(&client, None, Method::PUT, 3, path, Some(virginia.clone()), None).await?;
    expect(
        "a region from nobody",
        &anonymous,
        StatusCode::UNAUTHORIZED,
        Some("unauthorized"),
    )?;
    for (what, field, value) in [
        ("a made-up locale", "locale", json!("American")),
        ("a zone that is not IANA's", "time_zone", json!("Eastern")),
        ("a metal", "currency", json!("XAU")),
        (
            "an ftp endpoint",
            "http_endpoint",
            json!("ftp://us-east.tickets.example"),
        ),
    ] {
        let mut body = virginia.clone();
        body[field] = value;
        let refused = call(&client, operator, Method::PUT, 3, path, Some(body), None).await?;
        expect(
            what,
            &refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_request"),
        )?;
    }
    let set = call(
        &client,
        operator,
        Method::PUT,
        3,
        path,
        Some(virginia),
        Some("region-1"),
    )
    .await?;
    expect("a region from an operator", &set, StatusCode::OK, None)?;
    let dollars = json!({ "base": "EUR", "rates": { "USD": "1.0842" }, "as_of_ms": 2_000 });
    let set = call(
        &client,
        operator,
        Method::PUT,
        1,
        "/v1/admin/fx-rates",
        Some(dollars),
        Some("fx-2"),
    )
    .await?;
    expect("a dollar rate", &set, StatusCode::OK, None)?;
    // A rate change reaches every region within the default read bound
    // (what a bounded read may lag), counted from its acknowledgement.
    let acked = std::time::Instant::now();
    let bound = Duration::from_millis(api::freshness::DEFAULT_MAX_STALENESS_MS);
    for node in [1, 2, 3] {
        let left = bound.saturating_sub(acked.elapsed());
        eventually("the dollar rate within the bound", left, async || {
            let listed = get(&client, node, "/v1/fx-rates").await?;
            let rates = listed.1["rates"].as_array().cloned().unwrap_or_default();
            Ok(rates.iter().any(|r| r["quote"] == "USD").then_some(()))
        })
        .await?;
    }
    for node in [1, 2, 3] {
        eventually(
            "the new description on every node",
            Duration::from_secs(20),
            async || {
                let seen = get(&client, node, "/v1/regions").await?;
                let entry = seen.1["regions"]
                    .as_array()
                    .and_then(|all| all.iter().find(|r| r["id"] == "us-east").cloned());
                Ok(entry.filter(|e| {
                    e["name"] == "US East (N. Virginia)"
                        && e["http_endpoint"] == "https://us-east.tickets.example"
                }))
            },
        )
        .await?;
    }
    // Now Virginia shows dollars unasked: 45.00 x 1.0842 = 48.789: 48.79.
    let tier = eventually("dollars in Virginia", Duration::from_secs(20), async || {
        let tier = unasked(3).await?;
        Ok(tier.get("display_price").is_some().then_some(tier))
    })
    .await?;
    ensure!(
        tier["display_price"]["currency"] == "USD" && tier["display_price"]["amount_minor"] == 4_879,
        "Virginia unasked: {tier}"
    );

    // A pair with no rate of its own crosses through a third currency: with
    // only GBP->USD and EUR->USD set, EUR->GBP goes through USD, the legs
    // multiplied before the one rounding: 45.00 x 1.0842 / 1.27 = 38.4165...
    // -> 38.42, observed as of the older leg (2000).
    let pounds = json!({ "base": "GBP", "rates": { "USD": "1.27" }, "as_of_ms": 3_000 });
    let set = call(
        &client,
        operator,
        Method::PUT,
        2,
        "/v1/admin/fx-rates",
        Some(pounds),
        Some("fx-3"),
    )
    .await?;
    expect("a pound rate", &set, StatusCode::OK, None)?;
    let shown = eventually("pounds through dollars", Duration::from_secs(20), async || {
        let seen = get(&client, 1, &format!("/v1/events/{EVENT}?currency=GBP")).await?;
        Ok((seen.0 == StatusCode::OK).then(|| seen.1["tiers"][0]["display_price"].clone()))
    })
    .await?;
    ensure!(
        shown["amount_minor"] == 3_842
            && shown["currency"] == "GBP"
            && shown["rate_via"] == "USD"
            && shown["rate_as_of_ms"] == 2_000,
        "EUR to GBP through USD: {shown}"
    );

    // An event's home defaults to the region that homes its venue's country:
    // a Tokyo venue's event, created through Dublin, is homed in Tokyo.
    let venue = json!({ "name": "Budokan", "address": "2-3 Kitanomarukoen", "city": "Tokyo", "country": "JP", "time_zone": "Asia/Tokyo" });
    let venue = call(
        &client,
        operator,
        Method::POST,
        1,
        "/v1/venues",
        Some(venue),
        Some("venue-jp"),
    )
    .await?;
    expect("a venue in Japan", &venue, StatusCode::CREATED, None)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let day = 24 * 3600 * 1000;
    let listing = json!({ "category": "concert", "venue_id": venue.1["venue_id"], "starts_at_ms": now + day, "ends_at_ms": now + day + 3 * 3600 * 1000 });
    let body = json!({ "event_id": 2, "spec": grid_event("Budokan night", 1, 1, 2)?, "listing": listing });
    let created = call(
        &client,
        operator,
        Method::POST,
        1,
        "/v1/events",
        Some(body),
        Some("event-jp"),
    )
    .await?;
    expect(
        "an event at a Japanese venue",
        &created,
        StatusCode::CREATED,
        None,
    )?;
    let listing = get(&client, 1, "/v1/events/2/listing").await?;
    ensure!(
        listing.1["home_region"] == "ap-northeast",
        "homed at {}",
        listing.1
    );
    let cluster = client.cluster(1).await?;
    let group = cluster["groups"]
        .as_array()
        .and_then(|groups| {
            groups
                .iter()
                .find(|g| g["events"].as_u64() > Some(0) && g["home_region"] == "ap-northeast")
        })
        .cloned();
    ensure!(group.is_some(), "no Tokyo group holds an event: {cluster}");
    // A country is homed in one region only.
    let grab = json!({ "name": "US East", "currency": "USD", "locale": "en-US", "time_zone": "America/New_York", "countries": ["US", "JP"] });
    let refused = call(
        &client,
        operator,
        Method::PUT,
        1,
        "/v1/admin/regions/us-east",
        Some(grab),
        None,
    )
    .await?;
    expect(
        "a country claimed twice",
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_request"),
    )?;

    test.finish().await
}
