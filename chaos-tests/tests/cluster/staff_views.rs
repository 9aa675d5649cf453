//! Staff views over HTTP: an event's holds and orders by page and filter,
//! and the seats asked about, with who has each for staff only.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::{TestCluster, expect_ok, grid_event};
use region_config::RaftTuning;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const EVENT: u64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_page_through_holds_and_orders_and_see_who_has_a_seat() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let test = TestCluster::start(3, RaftTuning::default()).await?;
    let view = test
        .create_event(1, EVENT, &grid_event("staff", 1, 1, 10)?)
        .await?;
    let seats: Vec<String> = view.seats().map(|s| s.id.clone()).collect();
    // The test client acts as the operator, naming each hold's customer.
    let staff = test.client.clone();
    let mut holds = Vec::new();
    for (i, seat) in seats[..5].iter().enumerate() {
        let buyer = if i == 0 { "alice" } else { "bob" };
        let hold = expect_ok(
            staff
                .hold_seats(
                    2,
                    EVENT,
                    buyer,
                    std::slice::from_ref(seat),
                    &format!("s-hold-{i}"),
                )
                .await?,
            "a hold",
        )?;
        holds.push(hold);
    }
    expect_ok(
        staff
            .confirm(2, EVENT, &holds[0].hold_id, "alice", "s-confirm-0")
            .await?,
        "the confirm",
    )?;

    let get = async |path: &str| -> anyhow::Result<Value> {
        let (status, _, body) = staff.raw(Method::GET, 3, path).await?;
        ensure!(status == StatusCode::OK, "GET {path}: {status} {body}");
        Ok(serde_json::from_str(&body)?)
    };
    let ids = |page: &Value, list: &str, key: &str| -> Vec<String> {
        page[list]
            .as_array()
            .map(|items| items.iter().map(|h| h[key].to_string()).collect())
            .unwrap_or_default()
    };
    // Three pages of two (the last has one), in id order, each cursor
    // leading on from the last page's end.
    let mut listed = Vec::new();
    let mut path = format!("/v1/events/{EVENT}/holds?limit=2");
    let mut pages = 0;
    loop {
        let page = get(&path).await?;
        pages += 1;
        listed.extend(ids(&page, "holds", "hold_id"));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/events/{EVENT}/holds?limit=2&cursor={cursor}"),
            None => break,
        }
        ensure!(pages < 10, "the pages do not end");
    }
    let made: Vec<String> = holds.iter().map(|h| h.hold_id.to_string()).collect();
    ensure!(listed == made, "listed {listed:?}, made {made:?}");
    let confirmed = get(&format!("/v1/events/{EVENT}/holds?status=confirmed")).await?;
    ensure!(
        ids(&confirmed, "holds", "hold_id") == made[..1],
        "confirmed holds: {confirmed}"
    );
    let bobs = get(&format!("/v1/events/{EVENT}/holds?holder=bob&status=active")).await?;
    ensure!(
        ids(&bobs, "holds", "hold_id") == made[1..],
        "bob's active holds: {bobs}"
    );
    let orders = get(&format!("/v1/events/{EVENT}/orders?holder=alice")).await?;
    ensure!(
        orders["orders"].as_array().map(Vec::len) == Some(1) && orders["next_cursor"].is_null(),
        "alice's orders: {orders}"
    );

    // Two seats asked about: staff see whose they are, anyone else only
    // their status.
    let asked = format!("/v1/events/{EVENT}/seats?ids={},{}", seats[0], seats[9]);
    let seen = get(&asked).await?;
    let first = &seen["seats"][0];
    ensure!(
        first["status"] == "sold" && first["holder"] == "alice" && first["order_id"].is_u64(),
        "the sold seat as staff see it: {first}"
    );
    ensure!(
        seen["seats"][1]["status"] == "available" && seen["seats"][1]["holder"].is_null(),
        "the free seat: {seen}"
    );
    let anonymous = staff.clone().with_token(None);
    let (status, _, body) = anonymous.raw(Method::GET, 3, &asked).await?;
    let public: Value = serde_json::from_str(&body)?;
    ensure!(
        status == StatusCode::OK
            && public["seats"][0]["status"] == "sold"
            && public["seats"][0]["holder"].is_null(),
        "the sold seat as anyone sees it: {status} {public}"
    );
    // Customers may not list holds; an unknown seat and a bad filter are
    // clear errors.
    let (status, _, _) = anonymous
        .raw(Method::GET, 3, &format!("/v1/events/{EVENT}/holds"))
        .await?;
    ensure!(
        status == StatusCode::UNAUTHORIZED,
        "an anonymous hold list: {status}"
    );
    for (path, code) in [
        (format!("/v1/events/{EVENT}/seats?ids=Z-9-9"), "unknown_seat"),
        (format!("/v1/events/{EVENT}/holds?status=kept"), "invalid_request"),
        (format!("/v1/events/{EVENT}/holds?limit=0"), "invalid_request"),
    ] {
        let (status, _, body) = staff.raw(Method::GET, 3, &path).await?;
        ensure!(
            status.is_client_error() && body.contains(&format!("\"code\":\"{code}\"")),
            "GET {path}: {status} {body}"
        );
    }
    test.finish().await
}
