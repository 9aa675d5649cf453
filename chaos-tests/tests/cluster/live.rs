//! Live availability, notifications and the waitlist over real processes.
//!
//! One three-node cluster whose notifications go to an SMTP sink run by the
//! test:
//!
//! - A seat map follows the event over SSE from a follower: every change of
//!   a booking stream arrives in log order with the right cause and status.
//!   The client disconnects midway, the stream goes on, and reconnecting with
//!   `Last-Event-ID` replays exactly the missed changes, with no snapshot, no
//!   gap and no duplicate.
//! - Two customers pay; the sink stalls before acknowledging their
//!   confirmation e-mails, and the data group's leader is killed while it
//!   waits. The new leader sends them again. The sink received each
//!   confirmation more than once in raw deliveries but under one stable
//!   Message-ID, so after de-duplication each arrives exactly once, and the
//!   notices are recorded as delivered.
//! - The event sells out; a third customer joins the waitlist. A place is
//!   released and offered to them as a hold, with an e-mail; they buy it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::shop::{call, checkout, expect, text};
use chaos_tests::smtp_sink::SmtpSink;
use chaos_tests::sse::{SseEvent, SseStream};
use chaos_tests::{ApiClient, FIRST_DATA_GROUP, LOCAL_ADMIN_TOKEN, TestCluster, eventually, grid_event};
use region_config::{NodeId, RaftTuning, SmtpConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);
const EVENT: u64 = 1;
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_seat_map_notifications_and_waitlist() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn register(client: &ApiClient, email: &str) -> anyhow::Result<(String, String)> {
    let body = json!({ "email": email, "password": "a long password", "name": email });
    let got = call(
        client,
        None,
        Method::POST,
        1,
        "/v1/auth/register",
        Some(body),
        None,
    )
    .await?;
    expect("registration", &got, StatusCode::CREATED, None)?;
    Ok((
        text(&got.1, "access_token")?.to_owned(),
        text(&got.1, "customer_id")?.to_owned(),
    ))
}

async fn hold(client: &ApiClient, token: &str, node: NodeId, seat: &str) -> anyhow::Result<Value> {
    let got = call(
        client,
        Some(token),
        Method::POST,
        node,
        &format!("/v1/events/{EVENT}/holds"),
        Some(json!({ "seats": [seat] })),
        None,
    )
    .await?;
    expect("a hold", &got, StatusCode::CREATED, None)?;
    Ok(got.1["hold_id"].clone())
}

async fn buy(
    client: &ApiClient,
    token: &str,
    node: NodeId,
    hold_id: &Value,
    key: &str,
) -> anyhow::Result<()> {
    let paid = checkout(client, Some(token), node, EVENT, hold_id, "tok_visa", key).await?;
    ensure!(paid["status"] == "succeeded", "payment: {paid}");
    Ok(())
}

/// Reads `count` change events (skipping nothing else: any other event fails).
async fn changes(stream: &mut SseStream, count: usize) -> anyhow::Result<Vec<SseEvent>> {
    let mut out = Vec::new();
    while out.len() < count {
        let event = stream
            .next(WAIT)
            .await?
            .with_context(|| format!("the stream ended after {} changes", out.len()))?;
        ensure!(event.event == "change", "expected a change, got {event:?}");
        out.push(event);
    }
    Ok(out)
}

/// (cause, seat, status) of a change.
fn summary(event: &SseEvent) -> anyhow::Result<(String, String, String)> {
    let change = event.json()?;
    let seat = &change["seats"][0];
    // Its time twice: epoch milliseconds and the same instant in RFC 3339.
    let at = change["at"].as_str().context("a change's RFC 3339 time")?;
    let at = chrono::DateTime::parse_from_rfc3339(at).with_context(|| format!("at {at}"))?;
    ensure!(
        Some(at.timestamp_millis()) == change["at_ms"].as_i64(),
        "at {at} is not at_ms in {change}"
    );
    Ok((
        change["cause"].as_str().context("cause")?.to_owned(),
        seat["seat"].as_str().context("seat")?.to_owned(),
        seat["status"].as_str().context("status")?.to_owned(),
    ))
}

/// The (index, ordinal) of a change id `{group}.{index}.{ordinal}`.
fn position(event: &SseEvent) -> anyhow::Result<(u64, u32)> {
    let id = event.id.as_deref().context("a change has an id")?;
    let parts: Vec<&str> = id.split('.').collect();
    ensure!(parts.len() == 3, "change id {id}");
    Ok((parts[1].parse()?, parts[2].parse()?))
}

fn expected(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

async fn scenario() -> anyhow::Result<()> {
    let sink = SmtpSink::start().await?;
    let smtp = SmtpConfig {
        host: sink.addr().ip().to_string(),
        port: sink.addr().port(),
        from: "tickets@boxoffice.test".to_owned(),
    };
    let mut test = TestCluster::start_configured(3, RaftTuning::default(), &|config| {
        config.notifications.smtp = Some(smtp.clone());
    })
    .await?;
    let client = test.client.clone();
    let staff = Some(LOCAL_ADMIN_TOKEN);
    let spec = grid_event("live", 1, 1, 3)?;
    let created = call(
        &client,
        staff,
        Method::POST,
        1,
        "/v1/events",
        Some(json!({ "event_id": EVENT, "spec": spec })),
        Some("ev"),
    )
    .await?;
    expect("the event", &created, StatusCode::CREATED, None)?;
    let (alice, alice_id) = register(&client, "alice@example.org").await?;
    let (bob, _) = register(&client, "bob@example.org").await?;
    let (carol, carol_id) = register(&client, "carol@example.org").await?;

    let leader = test
        .cluster
        .group_leader(FIRST_DATA_GROUP)
        .await
        .context("the data group has a leader")?;
    let others: Vec<NodeId> = test
        .cluster
        .running_ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    let (watcher, shop) = (others[0], others[1]);
    node::launcher::install_crypto_provider();
    let sse_http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let live_url = format!("{}/v1/events/{EVENT}/live", test.cluster.http_url(watcher));

    // A seat map opens: a snapshot of three available seats.
    let mut stream = SseStream::open(&sse_http, &live_url, None, None).await?;
    let snapshot = stream.next(WAIT).await?.context("a first event")?;
    ensure!(
        snapshot.event == "snapshot",
        "expected a snapshot first: {snapshot:?}"
    );
    let seats = snapshot.json()?;
    ensure!(
        seats["available"] == 3 && seats["seats"].as_array().map(Vec::len) == Some(3),
        "{seats}"
    );

    // Two customers buy while the mail relay stalls before acknowledging.
    sink.stall_replies(true);
    let hold_a = hold(&client, &alice, shop, "A-1-1").await?;
    buy(&client, &alice, shop, &hold_a, "buy-a").await?;
    let hold_b = hold(&client, &bob, shop, "A-1-2").await?;
    buy(&client, &bob, shop, &hold_b, "buy-b").await?;
    eventually("both confirmations reach the stalled relay", WAIT, async || {
        Ok((sink.received().len() >= 2).then_some(()))
    })
    .await?;
    // The leader is waiting for the relay's answer: kill it there.
    test.cluster.kill(leader)?;
    sink.stall_replies(false);
    let mails = sink.wait_for(2, Duration::from_secs(60)).await?;
    eventually("the new leader sends the confirmations again", WAIT, async || {
        Ok((sink.received().len() >= 4).then_some(()))
    })
    .await?;
    let by_id = sink.distinct_by_message_id();
    ensure!(
        by_id.len() == 2,
        "two confirmations, each under one Message-ID: {by_id:?}"
    );
    ensure!(
        by_id.values().all(|&copies| copies >= 2),
        "each was sent again after the kill: {by_id:?}"
    );
    for mail in &mails {
        ensure!(
            mail.subject.as_deref().is_some_and(|s| s.contains("confirmed")),
            "a confirmation: {:?}",
            mail.subject
        );
    }
    let to: Vec<&str> = mails
        .iter()
        .flat_map(|m| m.to.iter().map(String::as_str))
        .collect();
    ensure!(
        to.iter().any(|t| t.contains("alice@example.org"))
            && to.iter().any(|t| t.contains("bob@example.org")),
        "one confirmation each: {to:?}"
    );
    // The outcome is recorded: the notice is delivered, once.
    let notices_path = format!("/v1/events/{EVENT}/notices");
    let delivered = eventually(
        "alice's confirmation is recorded as delivered",
        WAIT,
        async || {
            let got = call(
                &client,
                Some(&alice),
                Method::GET,
                shop,
                &notices_path,
                None,
                None,
            )
            .await?;
            expect("notices", &got, StatusCode::OK, None)?;
            let notices = got.1["notices"].as_array().cloned().unwrap_or_default();
            Ok(notices
                .iter()
                .find(|n| {
                    n["kind"].get("order_confirmed").is_some() && n["delivery"].get("delivered").is_some()
                })
                .cloned())
        },
    )
    .await?;
    ensure!(delivered["recipient"] == alice_id.as_str(), "{delivered}");

    // The follower's stream saw all four changes, in order.
    let first = changes(&mut stream, 4).await?;
    let got: Vec<_> = first.iter().map(summary).collect::<Result<_, _>>()?;
    ensure!(
        got == expected(&[
            ("held", "A-1-1", "held"),
            ("sold", "A-1-1", "sold"),
            ("held", "A-1-2", "held"),
            ("sold", "A-1-2", "sold"),
        ]),
        "the first changes: {got:?}"
    );
    let last_seen = first.last().and_then(|e| e.id.clone()).context("an id")?;
    drop(stream);

    // Sold out: carol waits; a walk-in's place comes back and is offered to her.
    let walk_in = call(
        &client,
        staff,
        Method::POST,
        shop,
        &format!("/v1/events/{EVENT}/holds"),
        Some(json!({ "holder": "walk-in", "seats": ["A-1-3"] })),
        None,
    )
    .await?;
    expect("the walk-in's hold", &walk_in, StatusCode::CREATED, None)?;
    let join_path = format!("/v1/events/{EVENT}/waitlist");
    let early = call(
        &client,
        Some(&carol),
        Method::POST,
        shop,
        &join_path,
        Some(json!({ "quantity": 0 })),
        None,
    )
    .await?;
    expect("no places at all", &early, StatusCode::UNPROCESSABLE_ENTITY, None)?;
    let joined = call(
        &client,
        Some(&carol),
        Method::POST,
        shop,
        &join_path,
        Some(json!({ "quantity": 1 })),
        None,
    )
    .await?;
    expect("carol joins the waitlist", &joined, StatusCode::CREATED, None)?;
    ensure!(joined.1["position"] == 1, "{}", joined.1);
    let again = call(
        &client,
        Some(&carol),
        Method::POST,
        shop,
        &join_path,
        Some(json!({ "quantity": 1 })),
        None,
    )
    .await?;
    expect(
        "joining twice",
        &again,
        StatusCode::CONFLICT,
        Some("already_waitlisted"),
    )?;
    let released = call(
        &client,
        staff,
        Method::POST,
        shop,
        &format!("/v1/events/{EVENT}/holds/{}/release", walk_in.1["hold_id"]),
        Some(json!({ "holder": "walk-in" })),
        None,
    )
    .await?;
    expect("the walk-in releases", &released, StatusCode::OK, None)?;
    let offer = eventually("carol is offered the place", WAIT, async || {
        let got = call(
            &client,
            Some(&carol),
            Method::GET,
            shop,
            &notices_path,
            None,
            None,
        )
        .await?;
        let notices = got.1["notices"].as_array().cloned().unwrap_or_default();
        Ok(notices
            .iter()
            .find_map(|n| n["kind"].get("waitlist_offer").cloned()))
    })
    .await?;
    let gone = call(&client, Some(&carol), Method::GET, shop, &join_path, None, None).await?;
    expect(
        "carol left the queue with her offer",
        &gone,
        StatusCode::NOT_FOUND,
        Some("not_waitlisted"),
    )?;
    let offered_hold = offer["hold_id"].clone();
    let held = call(
        &client,
        Some(&carol),
        Method::GET,
        shop,
        &format!("/v1/events/{EVENT}/holds/{offered_hold}"),
        None,
        None,
    )
    .await?;
    expect("the offered hold", &held, StatusCode::OK, None)?;
    ensure!(
        held.1["holder"] == carol_id.as_str()
            && held.1["seats"] == json!(["A-1-3"])
            && held.1["status"] == "active",
        "{}",
        held.1
    );
    buy(&client, &carol, shop, &offered_hold, "buy-c").await?;
    let all = sink.wait_for(4, WAIT).await?;
    let subjects: BTreeMap<String, usize> = all
        .iter()
        .filter(|m| m.to.iter().any(|t| t.contains("carol@")))
        .filter_map(|m| m.subject.clone())
        .fold(BTreeMap::new(), |mut seen, subject| {
            *seen.entry(subject).or_default() += 1;
            seen
        });
    ensure!(
        subjects.keys().any(|s| s.contains("yours to buy"))
            && subjects.keys().any(|s| s.contains("confirmed")),
        "carol got the offer and the confirmation: {subjects:?}"
    );
    ensure!(
        sink.distinct_by_message_id().len() == 4,
        "{:?}",
        sink.distinct_by_message_id()
    );

    // The seat map comes back: it resumes after its last change, with the
    // four it missed and nothing else.
    let mut resumed = SseStream::open(&sse_http, &live_url, Some(&last_seen), None).await?;
    let rest = changes(&mut resumed, 4).await?;
    let got: Vec<_> = rest.iter().map(summary).collect::<Result<_, _>>()?;
    ensure!(
        got == expected(&[
            ("held", "A-1-3", "held"),
            ("released", "A-1-3", "available"),
            ("offered", "A-1-3", "held"),
            ("sold", "A-1-3", "sold"),
        ]),
        "the changes after the reconnect: {got:?}"
    );
    let positions: Vec<(u64, u32)> = first
        .iter()
        .chain(&rest)
        .map(position)
        .collect::<Result<_, _>>()?;
    ensure!(
        positions.is_sorted() && positions.windows(2).all(|w| w[0] != w[1]),
        "{positions:?}"
    );
    let last = rest.last().context("a change")?.json()?;
    ensure!(
        last["available"] == 0 && last["tiers"][0]["available"] == 0,
        "{last}"
    );

    // A resume from an id the node cannot vouch for starts from a snapshot.
    let mut fresh = SseStream::open(&sse_http, &live_url, Some("999.1.0"), None).await?;
    let first_event = fresh.next(WAIT).await?.context("an event")?;
    ensure!(first_event.event == "snapshot", "{first_event:?}");
    ensure!(first_event.json()?["sold"] == 3, "{}", first_event.data);

    test.cluster.restart(leader)?;
    test.cluster.wait_ready(chaos_tests::READY_TIMEOUT).await?;
    test.finish().await
}

/// Webhooks, reminders and channels, with a webhook receiver run by the test:
///
/// - A customer who chose the webhook channel gets their confirmation as a
///   signed POST. The receiver fails the first attempt; the retry carries
///   the same notification id and a valid signature, and the notice is
///   recorded as delivered on the second attempt.
/// - A reminder subscription names its own channel (the log) and is
///   delivered when due; a later one stays pending, can be cancelled and
///   renewed. A verified guest may subscribe too (their address is on file).
/// - Cancelling the event tells the buyer (refunded) and the subscriber, and
///   withdraws the pending reminder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reminders_and_cancellation_notices() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, channels_scenario())
        .await
        .context("the test did not finish in time")?
}

const HOOK_SECRET: &str = "a-test-webhook-secret";

async fn notices_of(client: &ApiClient, token: &str) -> anyhow::Result<Vec<Value>> {
    let got = call(
        client,
        Some(token),
        Method::GET,
        2,
        &format!("/v1/events/{EVENT}/notices"),
        None,
        None,
    )
    .await?;
    expect("notices", &got, StatusCode::OK, None)?;
    Ok(got.1["notices"].as_array().cloned().unwrap_or_default())
}

/// Waits for the caller's notice of `kind` to settle as delivered; returns it.
async fn delivered(client: &ApiClient, token: &str, kind: &str) -> anyhow::Result<Value> {
    eventually(&format!("the {kind} notice is delivered"), WAIT, async || {
        let notices = notices_of(client, token).await?;
        let of_kind = |n: &&Value| n["kind"] == kind || n["kind"].get(kind).is_some();
        Ok(notices
            .iter()
            .filter(of_kind)
            .find(|n| n["delivery"].get("delivered").is_some())
            .cloned())
    })
    .await
}

async fn channels_scenario() -> anyhow::Result<()> {
    let hooks = chaos_tests::webhook_sink::WebhookSink::start().await?;
    let test = TestCluster::start_configured(3, RaftTuning::default(), &|config| {
        config.notifications.webhook_secret = Some(HOOK_SECRET.to_owned());
    })
    .await?;
    let client = test.client.clone();
    let staff = Some(LOCAL_ADMIN_TOKEN);

    let venue = json!({ "name": "Olympia", "address": "1 Grand Rue", "city": "Paris", "country": "FR",
        "time_zone": "Europe/Paris" });
    let venue = call(
        &client,
        staff,
        Method::POST,
        1,
        "/v1/venues",
        Some(venue),
        Some("v"),
    )
    .await?;
    expect("a venue", &venue, StatusCode::CREATED, None)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let starts = now_ms + 2 * 24 * 3600 * 1000;
    let listing = json!({ "category": "concert", "venue_id": venue.1["venue_id"], "starts_at_ms": starts,
        "ends_at_ms": starts + 3 * 3600 * 1000 });
    let body = json!({ "event_id": EVENT, "spec": grid_event("Hooks", 1, 1, 2)?, "listing": listing });
    let created = call(
        &client,
        staff,
        Method::POST,
        1,
        "/v1/events",
        Some(body),
        Some("ev"),
    )
    .await?;
    expect("the event", &created, StatusCode::CREATED, None)?;
    let (dana, dana_id) = register(&client, "dana@example.org").await?;
    let (erin, _) = register(&client, "erin@example.org").await?;

    // Dana wants webhooks; a webhook without a URL is refused.
    let prefs = "/v1/me/notifications";
    let no_url = call(
        &client,
        Some(&dana),
        Method::PUT,
        2,
        prefs,
        Some(json!({ "channel": "webhook" })),
        None,
    )
    .await?;
    expect(
        "webhook without a URL",
        &no_url,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_request"),
    )?;
    let set = call(
        &client,
        Some(&dana),
        Method::PUT,
        2,
        prefs,
        Some(json!({ "channel": "webhook", "webhook_url": hooks.url("/dana") })),
        None,
    )
    .await?;
    expect("webhook preference", &set, StatusCode::OK, None)?;
    ensure!(set.1["notify"]["channel"] == "webhook", "{}", set.1);

    // The first delivery fails; the retry succeeds with the same id.
    hooks.set_status(503);
    let hold_d = hold(&client, &dana, 2, "A-1-1").await?;
    buy(&client, &dana, 2, &hold_d, "buy-d").await?;
    hooks.wait_for(1, WAIT).await?;
    hooks.set_status(200);
    let confirmed = delivered(&client, &dana, "order_confirmed").await?;
    ensure!(
        confirmed["delivery"]["delivered"]["attempts"] == 2
            && confirmed["delivery"]["delivered"]["channel"] == "webhook",
        "{confirmed}"
    );
    let received = hooks.received();
    ensure!(
        received.len() == 2,
        "one failed and one good delivery: {received:?}"
    );
    let ids: Vec<_> = received
        .iter()
        .map(|h| h.header("boxoffice-notification-id"))
        .collect();
    ensure!(
        ids[0].is_some() && ids[0] == ids[1],
        "one notification id: {ids:?}"
    );
    let now_secs = now_ms / 1000 + 60;
    for hook in &received {
        let signature = hook.header("boxoffice-signature").context("a signature")?;
        api::payments::verify_signature(HOOK_SECRET.as_bytes(), signature, hook.body.as_bytes(), now_secs)
            .map_err(|p| anyhow::anyhow!("bad signature: {}", p.detail))?;
        let payload: Value = serde_json::from_str(&hook.body)?;
        ensure!(
            payload["type"] == "order_confirmed" && payload["customer_id"] == dana_id.as_str(),
            "{payload}"
        );
    }

    // Reminders: dana's names the log channel and is due at once (three
    // days before a start two days away); erin's is due tomorrow.
    let reminders = format!("/v1/events/{EVENT}/reminders");
    let set = call(
        &client,
        Some(&dana),
        Method::POST,
        3,
        &reminders,
        Some(json!({ "channel": "log", "remind_before_secs": 3 * 24 * 3600 })),
        None,
    )
    .await?;
    expect("dana's reminder", &set, StatusCode::CREATED, None)?;
    let reminded = delivered(&client, &dana, "event_reminder").await?;
    ensure!(
        reminded["delivery"]["delivered"]["channel"] == "log",
        "{reminded}"
    );
    let erins = call(&client, Some(&erin), Method::POST, 3, &reminders, None, None).await?;
    expect("erin's reminder", &erins, StatusCode::CREATED, None)?;
    let cancel = format!("/v1/events/{EVENT}/reminders/cancel");
    let stopped = call(&client, Some(&erin), Method::POST, 3, &cancel, None, None).await?;
    expect("erin stops it", &stopped, StatusCode::OK, None)?;
    let twice = call(&client, Some(&erin), Method::POST, 3, &cancel, None, None).await?;
    expect(
        "stopping twice",
        &twice,
        StatusCode::NOT_FOUND,
        Some("not_subscribed"),
    )?;
    let again = call(&client, Some(&erin), Method::POST, 3, &reminders, None, None).await?;
    expect("erin subscribes again", &again, StatusCode::CREATED, None)?;
    ensure!(
        again.1["delivery"].get("pending").is_some(),
        "due tomorrow: {}",
        again.1
    );
    // A guest who proved the address has it on file: they may subscribe.
    let log = test.cluster.log_path(3).to_owned();
    let guest = chaos_tests::shop::verified_guest(&client, 3, "gus@example.org", &log).await?;
    let gus = text(&guest, "access_token")?.to_owned();
    let accepted = call(&client, Some(&gus), Method::POST, 3, &reminders, None, None).await?;
    expect(
        "a verified guest's reminder",
        &accepted,
        StatusCode::CREATED,
        None,
    )?;

    // The organiser cancels: dana (refunded, by webhook) and erin are told.
    let cancelled = call(
        &client,
        staff,
        Method::POST,
        1,
        &format!("/v1/events/{EVENT}/cancel"),
        None,
        None,
    )
    .await?;
    expect("the cancellation", &cancelled, StatusCode::OK, None)?;
    let told = delivered(&client, &dana, "event_cancelled").await?;
    ensure!(
        told["kind"]["event_cancelled"]["refunded"] == true
            && told["delivery"]["delivered"]["channel"] == "webhook",
        "{told}"
    );
    let erin_told = delivered(&client, &erin, "event_cancelled").await?;
    // Erin's address is e-mail, and these nodes have no mail relay: the log.
    ensure!(
        erin_told["delivery"]["delivered"]["channel"] == "log",
        "{erin_told}"
    );
    let erin_notices = notices_of(&client, &erin).await?;
    ensure!(
        !erin_notices.iter().any(|n| n["kind"] == "event_reminder"),
        "the pending reminder is withdrawn: {erin_notices:?}"
    );
    let hooks_now = hooks.received();
    ensure!(
        hooks_now.iter().any(|h| h.body.contains("event_cancelled")),
        "the cancellation reached dana's webhook: {hooks_now:?}"
    );
    test.finish().await
}
