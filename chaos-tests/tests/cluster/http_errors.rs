//! Bad input gets a clear `application/problem+json` answer with the documented stable
//! `code` and HTTP status (docs/http-api.md, "Errors"), and a rejected request changes
//! nothing.
//!
//! One three-node cluster, one seated event. First a few accepted requests build some
//! state: a hold retried with the same `Idempotency-Key` (answered identically, held
//! once), a hold extended once, a hold confirmed and its ticket checked in, and a hold
//! with a one-second TTL left to expire. Then the event, those holds, the order and the
//! ticket are recorded as the API renders them (linearizable reads), a batch of bad
//! requests is sent, each checked for its status, content type and `code`, and the same
//! reads must give exactly the recorded JSON, on the leader and on every replica.
//!
//! The bad requests go to the nodes in turn, so rejections forwarded from a follower to
//! the leader are covered as well as those the receiving node gives itself. Requests are
//! sent raw (the API client's raw bodies, not `ApiClient`'s typed calls) because the
//! point is what is on the wire: bodies that are not JSON, missing headers, wrong methods.

use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use chaos_tests::checks::{self, first_difference};
use chaos_tests::{Consistency, TestCluster, eventually, expect_ok, grid_event};
use region_config::{NodeId, RaftTuning};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVENT: u64 = 1;
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// How long one raw request may take (the 8 MiB upload included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a raw request is retried while the cluster has no answer (503, or no connection).
const RETRY_BUDGET: Duration = Duration::from_secs(30);
/// The body limit of the API (`api::MAX_BODY_BYTES`).
const MAX_BODY_BYTES: usize = 8 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_problem_json_and_changes_nothing() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

/// A request body as it goes on the wire.
enum Body {
    None,
    /// Serialized JSON with `Content-Type: application/json`.
    Json(Value),
    /// These bytes, with this content type or none at all.
    Raw {
        content_type: Option<&'static str>,
        bytes: Vec<u8>,
    },
}

/// One answer: status, `Content-Type` and the body parsed as JSON (`null` if empty).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

/// Sends raw requests to the nodes and checks their answers.
struct Wire {
    client: api::client::Client,
    urls: Vec<String>,
    /// Node that the next [`Wire::next_node`] returns; moves round-robin.
    turn: usize,
}

impl Wire {
    fn new(urls: Vec<String>) -> anyhow::Result<Self> {
        // As the box office: staff name the customer they book for.
        let client = api::client::Client::new(urls.clone())?
            .with_token(Some(chaos_tests::LOCAL_ADMIN_TOKEN))
            .with_retry_budget(RETRY_BUDGET);
        Ok(Self {
            client,
            urls,
            turn: 0,
        })
    }

    /// The nodes in turn: 1, 2, 3, 1, ...
    fn next_node(&mut self) -> NodeId {
        let node = self.turn % self.urls.len() + 1;
        self.turn += 1;
        node as NodeId
    }

    /// Sends a request to node `node` (only) until it gets a definitive answer, under
    /// the API client's retry rule; a body that is not JSON is an error.
    async fn send(
        &self,
        node: NodeId,
        method: Method,
        path: &str,
        body: &Body,
        key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut request = self
            .client
            .request(method.clone(), path)
            .to(node as usize - 1)
            .pinned()
            .try_timeout(REQUEST_TIMEOUT);
        if let Some(key) = key {
            request = request.key(key);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Raw { content_type, bytes } => request.raw_body(*content_type, bytes.clone()),
        };
        let answer = request.send().await?;
        if !answer.text.is_empty() && answer.body.is_null() {
            bail!(
                "{method} {path} on node {node}: {} body is not JSON: {:?}",
                answer.status,
                answer.text
            );
        }
        Ok(Answer {
            status: answer.status,
            content_type: answer.content_type.unwrap_or_default(),
            body: answer.body,
        })
    }

    /// Sends a request that must succeed with `status`; returns its body.
    async fn expect_success(
        &self,
        node: NodeId,
        method: Method,
        path: &str,
        body: &Body,
        key: Option<&str>,
        status: StatusCode,
    ) -> anyhow::Result<Value> {
        let answer = self.send(node, method.clone(), path, body, key).await?;
        ensure!(
            answer.status == status,
            "{method} {path} on node {node}: expected {status}, got {} {}",
            answer.status,
            answer.body
        );
        Ok(answer.body)
    }

    /// Sends a request, to the next node in turn, that must be rejected with `status`
    /// and `code` as problem+json; returns the problem.
    async fn expect_problem(
        &mut self,
        method: Method,
        path: &str,
        body: &Body,
        key: Option<&str>,
        status: StatusCode,
        code: &str,
    ) -> anyhow::Result<Value> {
        let node = self.next_node();
        let answer = self.send(node, method.clone(), path, body, key).await?;
        check_problem(&answer, status, code).with_context(|| format!("{method} {path} on node {node}"))?;
        eprintln!("ok: {method} {path} -> {status} {code}");
        Ok(answer.body)
    }
}

/// `answer` is an `application/problem+json` rejection with `status` and `code`, and
/// its body is the documented problem shape.
fn check_problem(answer: &Answer, status: StatusCode, code: &str) -> anyhow::Result<Value> {
    let body = &answer.body;
    ensure!(
        answer.status == status,
        "expected {status} {code}, got {} {body}",
        answer.status
    );
    ensure!(
        answer.content_type == "application/problem+json",
        "expected content-type application/problem+json, got {:?} (body {body})",
        answer.content_type
    );
    ensure!(
        body.get("code").and_then(Value::as_str) == Some(code),
        "expected code {code:?}, got {body}"
    );
    ensure!(
        body.get("status").and_then(Value::as_u64) == Some(u64::from(status.as_u16())),
        "the body's status disagrees with the HTTP status {status}: {body}"
    );
    let expected_type = format!("https://boxoffice.dev/problems/{code}");
    ensure!(
        body.get("type").and_then(Value::as_str) == Some(expected_type.as_str()),
        "expected type {expected_type:?}, got {body}"
    );
    for field in ["title", "detail"] {
        ensure!(
            body.get(field)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty()),
            "the problem has no {field}: {body}"
        );
    }
    Ok(body.clone())
}

/// A field of a JSON body that must be there, as rendered (for ids and paths).
fn field(body: &Value, name: &str) -> anyhow::Result<String> {
    match body.get(name) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Number(number)) => Ok(number.to_string()),
        _ => bail!("no {name} in {body}"),
    }
}

/// Everything the accepted requests produced, as the API renders it.
#[derive(Debug, PartialEq)]
struct Recorded {
    view: Value,
    /// `(path, JSON)` of each hold, the order and the ticket.
    others: Vec<(String, Value)>,
}

/// Reads the event and the paths in `paths`, linearizably, through the leader.
async fn record(wire: &Wire, leader: NodeId, paths: &[String]) -> anyhow::Result<Recorded> {
    let view = wire
        .expect_success(
            leader,
            Method::GET,
            &format!("/v1/events/{EVENT}"),
            &Body::None,
            None,
            StatusCode::OK,
        )
        .await?;
    let mut others = Vec::new();
    for path in paths {
        let value = wire
            .expect_success(leader, Method::GET, path, &Body::None, None, StatusCode::OK)
            .await?;
        others.push((path.clone(), checks::without_countdown(value)));
    }
    Ok(Recorded { view, others })
}

/// The ids of the seats whose status is `status`, in seat-map order.
fn seats_with_status(view: &Value, status: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for section in view["sections"].as_array().into_iter().flatten() {
        for row in section["rows"].as_array().into_iter().flatten() {
            for seat in row["seats"].as_array().into_iter().flatten() {
                if seat["status"] == status {
                    ids.push(seat["id"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    }
    ids
}

async fn scenario() -> anyhow::Result<()> {
    let mut test = TestCluster::start(3, RaftTuning::default()).await?;
    let leader = test.leader().await?;
    let client = test.client.clone();
    let mut wire = Wire::new(client.urls().to_vec())?;
    let events = format!("/v1/events/{EVENT}");
    let holds = format!("{events}/holds");

    // ----- Accepted requests ---------------------------------------------------------

    let spec = grid_event("bad input", 2, 5, 10)?;
    expect_ok(
        client.create_event(leader, EVENT, &spec, "create-event").await?,
        "create",
    )?;

    // A hold retried with the same key: the identical answer, and one hold only.
    let alice_body = Body::Json(json!({ "holder": "alice", "seats": ["A-1-1", "A-1-2"] }));
    let first = wire
        .expect_success(
            leader,
            Method::POST,
            &holds,
            &alice_body,
            Some("alice-hold"),
            StatusCode::CREATED,
        )
        .await?;
    for node in test.cluster.node_ids() {
        let retry = wire
            .expect_success(
                node,
                Method::POST,
                &holds,
                &alice_body,
                Some("alice-hold"),
                StatusCode::CREATED,
            )
            .await
            .with_context(|| format!("retrying alice's hold on node {node}"))?;
        ensure!(
            retry == first,
            "a retry on node {node} with the same Idempotency-Key answered differently: {}",
            first_difference(&first, &retry)
        );
    }
    let alice_hold = field(&first, "hold_id")?;
    let view = expect_ok(
        client
            .event_view_json(leader, EVENT, Consistency::Linearizable)
            .await?,
        "view after alice's hold",
    )?;
    ensure!(
        seats_with_status(&view, "held") == ["A-1-1", "A-1-2"] && view["held"] == 2,
        "alice's hold, sent four times with one key, must hold her two seats once; view has held={} and held seats {:?}",
        view["held"],
        seats_with_status(&view, "held")
    );
    eprintln!("ok: a retried hold (same Idempotency-Key) answered identically and held once");

    // A hold extended once.
    let bob = wire
        .expect_success(
            leader,
            Method::POST,
            &holds,
            &Body::Json(json!({ "holder": "bob", "seats": ["A-2-1"] })),
            Some("bob-hold"),
            StatusCode::CREATED,
        )
        .await?;
    let bob_hold = field(&bob, "hold_id")?;
    let extended = wire
        .expect_success(
            leader,
            Method::POST,
            &format!("{holds}/{bob_hold}/extend"),
            &Body::Json(json!({ "holder": "bob" })),
            Some("bob-extend-1"),
            StatusCode::OK,
        )
        .await?;
    ensure!(extended["extended"] == true, "bob's extension: {extended}");

    // A hold confirmed, and its ticket checked in.
    let carol = wire
        .expect_success(
            leader,
            Method::POST,
            &holds,
            &Body::Json(json!({ "holder": "carol", "seats": ["A-3-1"] })),
            Some("carol-hold"),
            StatusCode::CREATED,
        )
        .await?;
    let carol_hold = field(&carol, "hold_id")?;
    let order = wire
        .expect_success(
            leader,
            Method::POST,
            &format!("{holds}/{carol_hold}/confirm"),
            &Body::Json(json!({ "holder": "carol" })),
            Some("carol-confirm"),
            StatusCode::CREATED,
        )
        .await?;
    let order_id = field(&order, "order_id")?;
    let ticket = order["tickets"][0]["code"]
        .as_str()
        .ok_or_else(|| anyhow!("no ticket in {order}"))?
        .to_owned();
    let checked_in = wire
        .expect_success(
            leader,
            Method::POST,
            &format!("{events}/tickets/{ticket}/check-in"),
            &Body::None,
            Some("carol-check-in-1"),
            StatusCode::OK,
        )
        .await?;
    let checked_in_at_ms = checked_in["checked_in_at_ms"]
        .as_u64()
        .ok_or_else(|| anyhow!("no checked_in_at_ms in {checked_in}"))?;

    // A hold of one second, left to expire (its seat goes back on sale).
    let dave = wire
        .expect_success(
            leader,
            Method::POST,
            &holds,
            &Body::Json(json!({ "holder": "dave", "seats": ["A-4-1"], "ttl_secs": 1 })),
            Some("dave-hold"),
            StatusCode::CREATED,
        )
        .await?;
    let dave_hold = field(&dave, "hold_id")?;
    let dave_path = format!("{holds}/{dave_hold}");
    eventually(
        "dave's one-second hold to expire",
        Duration::from_secs(30),
        async || {
            let hold = wire
                .expect_success(leader, Method::GET, &dave_path, &Body::None, None, StatusCode::OK)
                .await?;
            Ok((hold["status"] == "expired").then_some(()))
        },
    )
    .await?;

    // ----- What the accepted requests produced -----------------------------------------

    let paths = vec![
        format!("{holds}/{alice_hold}"),
        format!("{holds}/{bob_hold}"),
        format!("{holds}/{carol_hold}"),
        format!("{holds}/{dave_hold}"),
        format!("{events}/orders/{order_id}"),
        format!("{events}/tickets/{ticket}"),
    ];
    let before = record(&wire, leader, &paths).await?;
    ensure!(
        seats_with_status(&before.view, "held") == ["A-1-1", "A-1-2", "A-2-1"]
            && seats_with_status(&before.view, "sold") == ["A-3-1"]
            && before.view["available"] == 96,
        "unexpected view before the bad requests: {}",
        before.view
    );

    // ----- Rejected requests ------------------------------------------------------------

    let json_type = Some("application/json");
    let raw_json = |text: &str| Body::Raw {
        content_type: json_type,
        bytes: text.as_bytes().to_vec(),
    };
    let mut key_number = 0;
    let mut key = move || {
        key_number += 1;
        format!("bad-{key_number}")
    };
    let erin_takes = |seats: Value| Body::Json(json!({ "holder": "erin", "seats": seats }));

    // Bodies that are not JSON: 400 malformed_json.
    for text in [
        r#"{"holder": "erin", "seats": ["A-5-1"#,
        "not json at all",
        "",
        "[1, 2",
    ] {
        wire.expect_problem(
            Method::POST,
            &holds,
            &raw_json(text),
            Some(&key()),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        )
        .await
        .with_context(|| format!("body {text:?}"))?;
    }
    // JSON of the wrong shape: wrong types, unknown or missing fields: 400 malformed_json.
    for (path, body) in [
        (&holds, json!({ "holder": 42, "seats": ["A-5-1"] })),
        (&holds, json!({ "holder": "erin", "seats": "A-5-1" })),
        (
            &holds,
            json!({ "holder": "erin", "best": { "section": "A", "quantity": -1 } }),
        ),
        (
            &holds,
            json!({ "holder": "erin", "seats": ["A-5-1"], "ttl_secs": "soon" }),
        ),
        (
            &holds,
            json!({ "holder": "erin", "seats": ["A-5-1"], "colour": "red" }),
        ),
        (&holds, json!(["A-5-1"])),
        (
            &format!("{holds}/{alice_hold}/confirm"),
            json!({ "holder": "alice", "please": true }),
        ),
        (
            &format!("{holds}/{alice_hold}/confirm"),
            json!({ "holder": ["alice"] }),
        ),
        (
            &"/v1/events".to_owned(),
            json!({ "event_id": "two", "spec": spec }),
        ),
        (
            &"/v1/events".to_owned(),
            json!({ "event_id": 2, "spec": spec, "extra": 1 }),
        ),
    ] {
        wire.expect_problem(
            Method::POST,
            path,
            &Body::Json(body.clone()),
            Some(&key()),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        )
        .await
        .with_context(|| format!("body {body}"))?;
    }
    // Not declared as JSON: 415.
    for content_type in [None, Some("text/plain")] {
        wire.expect_problem(
            Method::POST,
            &holds,
            &Body::Raw {
                content_type,
                bytes: br#"{"holder": "erin", "seats": ["A-5-1"]}"#.to_vec(),
            },
            Some(&key()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await
        .with_context(|| format!("content type {content_type:?}"))?;
    }
    // A body over the 8 MiB limit: 413.
    {
        let mut text = String::with_capacity(MAX_BODY_BYTES + 2048);
        text.push_str(r#"{"holder": ""#);
        text.push_str(&"x".repeat(MAX_BODY_BYTES + 1024));
        text.push_str(r#"", "seats": ["A-5-1"]}"#);
        wire.expect_problem(
            Method::POST,
            &holds,
            &raw_json(&text),
            Some(&key()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        )
        .await
        .context("a body over 8 MiB")?;
    }

    // No such event: 404 unknown_event, for a read and for a write.
    wire.expect_problem(
        Method::GET,
        "/v1/events/999",
        &Body::None,
        None,
        StatusCode::NOT_FOUND,
        "unknown_event",
    )
    .await?;
    wire.expect_problem(
        Method::POST,
        "/v1/events/999/holds",
        &erin_takes(json!(["A-5-1"])),
        Some(&key()),
        StatusCode::NOT_FOUND,
        "unknown_event",
    )
    .await?;
    // No such hold or order: 404 unknown_hold / unknown_order.
    wire.expect_problem(
        Method::POST,
        &format!("{holds}/999999/confirm"),
        &Body::Json(json!({ "holder": "erin" })),
        Some(&key()),
        StatusCode::NOT_FOUND,
        "unknown_hold",
    )
    .await?;
    wire.expect_problem(
        Method::GET,
        &format!("{events}/orders/999999"),
        &Body::None,
        None,
        StatusCode::NOT_FOUND,
        "unknown_order",
    )
    .await?;

    // Ids in the path that are not numbers: 422 invalid_request.
    for (method, path, body) in [
        (Method::GET, "/v1/events/abc".to_owned(), Body::None),
        (Method::GET, "/v1/events/-1".to_owned(), Body::None),
        (Method::GET, format!("{holds}/first"), Body::None),
        (
            Method::POST,
            "/v1/events/abc/holds".to_owned(),
            erin_takes(json!(["A-5-1"])),
        ),
        (
            Method::POST,
            format!("/v1/events/1.5/holds/{alice_hold}/confirm"),
            Body::Json(json!({ "holder": "alice" })),
        ),
        (
            Method::POST,
            format!("{holds}/x{alice_hold}/confirm"),
            Body::Json(json!({ "holder": "alice" })),
        ),
    ] {
        wire.expect_problem(
            method,
            &path,
            &body,
            Some(&key()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await?;
    }

    // Not in the seat map: 422 unknown_seat (and unknown_section).
    wire.expect_problem(
        Method::POST,
        &holds,
        &erin_takes(json!(["A-5-1", "Z-9-9"])),
        Some(&key()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_seat",
    )
    .await?;
    wire.expect_problem(
        Method::POST,
        &holds,
        &Body::Json(json!({ "holder": "erin", "best": { "section": "Q", "quantity": 2 } })),
        Some(&key()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_section",
    )
    .await?;

    // Fields out of range: 422 invalid_request.
    for body in [
        json!({ "holder": "erin", "best": { "section": "A", "quantity": 0 } }),
        json!({ "holder": "erin", "best": { "section": "B", "quantity": 51 } }),
        json!({ "holder": "erin", "seats": [] }),
        json!({ "holder": "erin", "seats": ["A-5-1"], "best": { "section": "A", "quantity": 1 } }),
        json!({ "holder": "erin", "seats": ["A-5-1"], "ga": { "area": "floor", "quantity": 1 } }),
        json!({ "holder": "erin" }),
        json!({ "holder": "erin", "seats": ["A-5-1"], "ttl_secs": 1801 }),
        json!({ "holder": "erin", "seats": ["A-5-1"], "ttl_secs": 0 }),
        json!({ "holder": "erin", "seats": ["A-5-1"], "ttl_secs": u64::MAX }),
        json!({ "holder": "", "seats": ["A-5-1"] }),
        json!({ "holder": "erin smith", "seats": ["A-5-1"] }),
        // Staff (this test's token) must name the customer they book for.
        json!({ "seats": ["A-5-1"] }),
        json!({ "holder": "erin", "seats": ["A-5-1", "A-5-1"] }),
    ] {
        wire.expect_problem(
            Method::POST,
            &holds,
            &Body::Json(body.clone()),
            Some(&key()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await
        .with_context(|| format!("body {body}"))?;
    }
    // An Idempotency-Key that is too long: 422 invalid_request.
    wire.expect_problem(
        Method::POST,
        &holds,
        &erin_takes(json!(["A-5-1"])),
        Some(&"k".repeat(129)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    )
    .await?;

    // The event exists already: 409 event_exists.
    wire.expect_problem(
        Method::POST,
        "/v1/events",
        &Body::Json(json!({ "event_id": EVENT, "spec": spec })),
        Some(&key()),
        StatusCode::CONFLICT,
        "event_exists",
    )
    .await?;

    // Seats held or sold by someone else: 409 seat_unavailable, naming them.
    for (seats, taken) in [
        (json!(["A-1-1"]), json!(["A-1-1"])),
        (json!(["A-5-1", "A-1-2", "A-3-1"]), json!(["A-1-2", "A-3-1"])),
    ] {
        let problem = wire
            .expect_problem(
                Method::POST,
                &holds,
                &erin_takes(seats.clone()),
                Some(&key()),
                StatusCode::CONFLICT,
                "seat_unavailable",
            )
            .await?;
        ensure!(
            problem["seats"] == taken,
            "holding {seats}: the problem should name {taken}: {problem}"
        );
    }
    // Best-available cannot find that many in one row: 409 not_enough_seats.
    wire.expect_problem(
        Method::POST,
        &holds,
        &Body::Json(json!({ "holder": "erin", "best": { "section": "A", "quantity": 11 } })),
        Some(&key()),
        StatusCode::CONFLICT,
        "not_enough_seats",
    )
    .await?;

    // Someone else's hold: 403 wrong_holder (for confirm, extend and release).
    for action in ["confirm", "extend", "release"] {
        wire.expect_problem(
            Method::POST,
            &format!("{holds}/{alice_hold}/{action}"),
            &Body::Json(json!({ "holder": "erin" })),
            Some(&key()),
            StatusCode::FORBIDDEN,
            "wrong_holder",
        )
        .await
        .with_context(|| format!("{action} by the wrong holder"))?;
    }
    // Someone else's order: 403 wrong_holder.
    wire.expect_problem(
        Method::POST,
        &format!("{events}/orders/{order_id}/cancel"),
        &Body::Json(json!({ "holder": "erin" })),
        Some(&key()),
        StatusCode::FORBIDDEN,
        "wrong_holder",
    )
    .await?;

    // The expired hold: 410 hold_expired, for confirm and extend.
    for action in ["confirm", "extend"] {
        wire.expect_problem(
            Method::POST,
            &format!("{holds}/{dave_hold}/{action}"),
            &Body::Json(json!({ "holder": "dave" })),
            Some(&key()),
            StatusCode::GONE,
            "hold_expired",
        )
        .await
        .with_context(|| format!("{action} of the expired hold"))?;
    }

    // The second extension: 409 extension_used.
    wire.expect_problem(
        Method::POST,
        &format!("{holds}/{bob_hold}/extend"),
        &Body::Json(json!({ "holder": "bob" })),
        Some("bob-extend-2"),
        StatusCode::CONFLICT,
        "extension_used",
    )
    .await?;

    // The confirmed hold cannot be confirmed again: 409 hold_not_active.
    wire.expect_problem(
        Method::POST,
        &format!("{holds}/{carol_hold}/confirm"),
        &Body::Json(json!({ "holder": "carol" })),
        Some("carol-confirm-again"),
        StatusCode::CONFLICT,
        "hold_not_active",
    )
    .await?;

    // The used ticket: 409 already_checked_in with the first time, and its order
    // cannot be cancelled: 409 order_checked_in.
    let problem = wire
        .expect_problem(
            Method::POST,
            &format!("{events}/tickets/{ticket}/check-in"),
            &Body::None,
            Some("carol-check-in-2"),
            StatusCode::CONFLICT,
            "already_checked_in",
        )
        .await?;
    ensure!(
        problem["first_checked_in_at_ms"].as_u64() == Some(checked_in_at_ms),
        "the second check-in should report the first at {checked_in_at_ms}: {problem}"
    );
    wire.expect_problem(
        Method::POST,
        &format!("{events}/orders/{order_id}/cancel"),
        &Body::Json(json!({ "holder": "carol" })),
        Some(&key()),
        StatusCode::CONFLICT,
        "order_checked_in",
    )
    .await?;

    // Routes that do not exist: 404 not_found.
    for (method, path) in [
        (Method::GET, "/v2/events".to_owned()),
        (Method::GET, "/".to_owned()),
        (Method::POST, format!("{holds}/{alice_hold}/frobnicate")),
        (Method::GET, format!("{events}/sections")),
    ] {
        wire.expect_problem(
            method,
            &path,
            &Body::None,
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await?;
    }
    // Routes that exist, with the wrong method: 405 method_not_allowed.
    for (method, path) in [
        (Method::DELETE, "/v1/events".to_owned()),
        (Method::DELETE, events.clone()),
        (Method::PUT, holds.clone()),
        (Method::PUT, format!("{holds}/{alice_hold}")),
        (Method::GET, format!("{holds}/{alice_hold}/confirm")),
        (Method::GET, format!("{events}/tickets/{ticket}/check-in")),
    ] {
        wire.expect_problem(
            method,
            &path,
            &Body::None,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await?;
    }
    // Reads with a consistency that does not exist: 422 invalid_request.
    for path in [
        format!("{events}?consistency=eventual"),
        format!("{events}?consistency="),
        format!("{holds}/{alice_hold}?consistency=strong"),
    ] {
        wire.expect_problem(
            Method::GET,
            &path,
            &Body::None,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await?;
    }

    // A retry of an accepted write, after all that, is still the original answer.
    let node = wire.next_node();
    let retry = wire
        .expect_success(
            node,
            Method::POST,
            &holds,
            &alice_body,
            Some("alice-hold"),
            StatusCode::CREATED,
        )
        .await?;
    ensure!(
        retry == first,
        "a late retry of alice's hold answered differently: {}",
        first_difference(&first, &retry)
    );

    // ----- Nothing changed ---------------------------------------------------------------

    let leader = test.leader().await?;
    let after = record(&wire, leader, &paths).await?;
    ensure!(
        after.view == before.view,
        "the rejected requests changed the event view: {}",
        first_difference(&before.view, &after.view)
    );
    for ((path, old), (_, new)) in before.others.iter().zip(&after.others) {
        ensure!(
            old == new,
            "the rejected requests changed {path}: {}",
            first_difference(old, new)
        );
    }
    ensure!(after == before, "the recorded state changed");
    for node in test.cluster.node_ids() {
        checks::local_view_converges(&client, node, EVENT, &before.view, Duration::from_secs(30)).await?;
    }
    eprintln!("ok: the event, holds, order and ticket are exactly as before the rejected requests");

    test.finish().await
}
