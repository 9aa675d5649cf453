//! Each regional endpoint answers in its region's language, currency and
//! the venue's local time, against a real cluster.
//!
//! Three nodes in three regions: Frankfurt (German, euros), Tokyo (Japanese,
//! yen) and Virginia (English, dollars). One Berlin event with a listing.
//! A problem document's `title` and `detail` follow the node's region unless
//! `Accept-Language` names a language we speak; the `code` and every
//! machine-read member never change, and a translated problem keeps the
//! English detail beside it. A rejection's translated detail names its
//! values (the taken seat). Search lists the event with its cheapest price,
//! charged in euros and shown in yen in Tokyo, from the Tokyo node's own
//! replica. A hold shows its times in RFC 3339 at Berlin's offset, equal to
//! its epoch milliseconds.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::shop::{call, expect};
use chaos_tests::{TestCluster, eventually, expect_ok, grid_event};
use chrono::Offset;
use region_config::{ClusterLayout, RaftTuning, RegionId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(180);
const EVENT: u64 = 1;
const FRANKFURT: u64 = 1;
const TOKYO: u64 = 2;
const VIRGINIA: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_region_answers_in_its_language_currency_and_local_time() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

/// A problem as a client sees it: status, body and `Content-Language`.
struct Answer {
    status: StatusCode,
    body: Value,
    language: Option<String>,
}

/// Checks that `body[field]` is `body[field + "_ms"]` in RFC 3339 at `zone`,
/// with the offset that applied then.
fn local_time_in(body: &Value, field: &str, zone: &str) -> anyhow::Result<()> {
    let ms_field = format!("{field}_ms");
    let text = body[field]
        .as_str()
        .with_context(|| format!("no RFC 3339 {field} in {body}"))?;
    let parsed = chrono::DateTime::parse_from_rfc3339(text).with_context(|| format!("{field}: {text}"))?;
    let tz: chrono_tz::Tz = zone.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let expected = chrono::DateTime::from_timestamp_millis(body[&ms_field].as_i64().context("ms")?)
        .context("a time")?
        .with_timezone(&tz);
    ensure!(
        parsed == expected && parsed.offset().local_minus_utc() == expected.offset().fix().local_minus_utc(),
        "{field} {text} is not {ms_field} in {zone} ({expected})"
    );
    Ok(())
}

async fn get(http: &reqwest::Client, base: &str, path: &str, accept: Option<&str>) -> anyhow::Result<Answer> {
    let mut request = http.get(format!("{base}{path}"));
    if let Some(accept) = accept {
        request = request.header("accept-language", accept);
    }
    let response = request.send().await?;
    let language = response
        .headers()
        .get("content-language")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Answer {
        status: response.status(),
        body: response.json().await.unwrap_or(Value::Null),
        language,
    })
}

async fn scenario() -> anyhow::Result<()> {
    let regions = [
        RegionId::new("eu-central")?,
        RegionId::new("ap-northeast")?,
        RegionId::new("us-east")?,
    ];
    // Two groups a region: the first holds the region's accounts and never
    // gets a replica abroad, the second takes the event and gets its read
    // replicas in the other regions.
    let layout = ClusterLayout {
        groups_per_region: 2,
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
    let http = reqwest::Client::new();
    let url = |node: u64| test.cluster.http_url(node);

    // The region table reaches every node before anything is asked of it.
    for node in [FRANKFURT, TOKYO, VIRGINIA] {
        eventually("the region table", Duration::from_secs(20), async || {
            let seen = call(&client, operator, Method::GET, node, "/v1/regions", None, None).await?;
            let all = seen.1["regions"].as_array().cloned().unwrap_or_default();
            Ok((all.len() == 3 && all.iter().all(|r| r["described"] == true)).then_some(()))
        })
        .await?;
    }

    let venue = json!({
        "name": "Halle", "address": "Hauptstraße 1", "city": "Berlin", "country": "DE", "time_zone": "Europe/Berlin",
    });
    let created = call(
        &client,
        operator,
        Method::POST,
        leader,
        "/v1/venues",
        Some(venue),
        Some("venue"),
    )
    .await?;
    expect("the venue", &created, StatusCode::CREATED, None)?;
    // 2026-07-01T18:00:00Z: 20:00 in Berlin (summer time).
    let starts_at_ms: u64 = 1_782_928_800_000;
    let listing = json!({
        "category": "concert", "venue_id": created.1["venue_id"], "starts_at_ms": starts_at_ms,
        "ends_at_ms": starts_at_ms + 3 * 3600 * 1000,
    });
    expect_ok(
        client
            .create_event_with(
                leader,
                EVENT,
                &grid_event("localized", 1, 2, 5)?,
                "create",
                json!({ "listing": listing }),
            )
            .await?,
        "create",
    )?;
    let rates = json!({ "base": "EUR", "rates": { "JPY": "157.43", "USD": "1.0842" }, "as_of_ms": 1_000 });
    let set = call(
        &client,
        operator,
        Method::PUT,
        leader,
        "/v1/admin/fx-rates",
        Some(rates),
        Some("rates"),
    )
    .await?;
    expect("rates", &set, StatusCode::OK, None)?;

    // One missing event, asked of each region, in each way.
    let missing = "/v1/events/999";
    let cases = [
        (FRANKFURT, None, "de", "Unbekannte Veranstaltung"),
        (TOKYO, None, "ja", "不明なイベント"),
        (VIRGINIA, None, "en", "Unknown event"),
        (TOKYO, Some("de-CH, en;q=0.5"), "de", "Unbekannte Veranstaltung"),
        (FRANKFURT, Some("fr-FR, es;q=0.8"), "en", "Unknown event"),
        (VIRGINIA, Some("ja;q=0.9, *;q=0.1"), "ja", "不明なイベント"),
        (TOKYO, Some("*"), "ja", "不明なイベント"),
    ];
    for (node, accept, language, title) in cases {
        let answer = get(&http, &url(node), missing, accept).await?;
        let what = format!("node {node} with Accept-Language {accept:?}");
        ensure!(
            answer.status == StatusCode::NOT_FOUND && answer.body["code"] == "unknown_event",
            "{what}: {} {}",
            answer.status,
            answer.body
        );
        ensure!(
            answer.body["title"] == title && answer.language.as_deref() == Some(language),
            "{what}: {:?} {}",
            answer.language,
            answer.body
        );
        ensure!(
            answer.body["type"] == "https://boxoffice.dev/problems/unknown_event",
            "{what}: {}",
            answer.body
        );
        // The English words stay beside a translation, and only then.
        ensure!(
            (language == "en") == answer.body.get("detail_en").is_none(),
            "{what}: {}",
            answer.body
        );
    }

    // A rejection names its values in the customer's language.
    let hold = json!({ "seats": ["A-1-1"], "holder": "c-local" });
    let path = format!("/v1/events/{EVENT}/holds");
    let first = call(
        &client,
        operator,
        Method::POST,
        TOKYO,
        &path,
        Some(hold.clone()),
        Some("hold-1"),
    )
    .await?;
    expect("the first hold", &first, StatusCode::CREATED, None)?;
    let taken = http
        .post(format!("{}{path}", url(TOKYO)))
        .bearer_auth(chaos_tests::LOCAL_ADMIN_TOKEN)
        .header("idempotency-key", "hold-2")
        .json(&hold)
        .send()
        .await?;
    ensure!(
        taken.status() == StatusCode::CONFLICT,
        "the second hold: {}",
        taken.status()
    );
    let taken: Value = taken.json().await?;
    ensure!(
        taken["code"] == "seat_unavailable"
            && taken["detail"] == "座席 A-1-1 は確保できません。"
            && taken["seats"] == json!(["A-1-1"])
            && taken["detail_en"] == "seats A-1-1 are not available",
        "the taken seat in Japanese: {taken}"
    );

    // The hold's times at the venue: Berlin's offset, the same instant.
    for field in ["created_at", "expires_at"] {
        local_time_in(&first.1, field, "Europe/Berlin")?;
    }
    // So is the venue's own time, and the listing's; an account's is in its
    // home region's zone; an exchange rate's, which has no place, in UTC.
    local_time_in(&created.1, "created_at", "Europe/Berlin")?;
    let listing = get(
        &http,
        &url(FRANKFURT),
        &format!("/v1/events/{EVENT}/listing"),
        None,
    )
    .await?;
    local_time_in(&listing.body, "updated_at", "Europe/Berlin")?;
    local_time_in(&listing.body["venue"], "created_at", "Europe/Berlin")?;
    let registered = http
        .post(format!("{}/v1/auth/register", url(TOKYO)))
        .header("idempotency-key", "register-tokyo")
        .json(&json!({ "email": "hanako@example.jp", "password": "correct horse", "name": "Hanako" }))
        .send()
        .await?;
    ensure!(
        registered.status() == StatusCode::CREATED,
        "registration in Tokyo: {}",
        registered.status()
    );
    let registered: Value = registered.json().await?;
    local_time_in(&registered["account"], "created_at", "Asia/Tokyo")?;
    local_time_in(&registered, "refresh_expires_at", "Asia/Tokyo")?;
    let rates = get(&http, &url(VIRGINIA), "/v1/fx-rates", None).await?;
    ensure!(
        rates.body["rates"][0]["as_of"] == "1970-01-01T00:00:01+00:00",
        "a rate's time in UTC: {}",
        rates.body
    );

    // Search in Tokyo lists the Berlin event from the Tokyo replica, priced
    // from 45.00 EUR, shown as 7084 yen (45 × 157.43 = 7084.35).
    let listing = eventually(
        "the listing priced in Tokyo",
        Duration::from_secs(30),
        async || {
            let answer = get(&http, &url(TOKYO), "/v1/events?q=localized", None).await?;
            ensure!(
                answer.status == StatusCode::OK,
                "search: {} {}",
                answer.status,
                answer.body
            );
            let found = answer.body["events"]
                .as_array()
                .and_then(|events| events.iter().find(|e| e["event_id"] == EVENT))
                .cloned();
            Ok(found.filter(|l| !l["price_from"].is_null() && l.get("display_price_from").is_some()))
        },
    )
    .await?;
    ensure!(
        listing["price_from"] == json!({ "amount_minor": 4500, "currency": "EUR" })
            && listing["display_price_from"]["amount_minor"] == 7084
            && listing["display_price_from"]["currency"] == "JPY"
            && listing["display_price_from"]["rate"] == "157.43"
            && listing["starts_at"] == "2026-07-01T20:00:00+02:00",
        "the Berlin listing in Tokyo: {listing}"
    );
    // Asked for a currency, and for one without a rate.
    let dollars = get(&http, &url(TOKYO), "/v1/events?q=localized&currency=USD", None).await?;
    ensure!(
        dollars.body["events"][0]["display_price_from"]["amount_minor"] == 4879,
        "45.00 EUR at 1.0842 is 48.79 USD: {}",
        dollars.body
    );
    let no_rate = get(&http, &url(TOKYO), "/v1/events?q=localized&currency=KWD", None).await?;
    ensure!(
        no_rate.status == StatusCode::UNPROCESSABLE_ENTITY
            && no_rate.body["code"] == "fx_rate_missing"
            && no_rate.body["title"] == "為替レートがありません"
            && no_rate.body["detail"] == "EUR から KWD への為替レートが設定されていません。",
        "no dinar rate, in Japanese: {}",
        no_rate.body
    );
    Ok(())
}
