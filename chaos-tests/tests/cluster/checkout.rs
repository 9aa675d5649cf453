//! The hold → pay → confirm saga over HTTP, with the simulated card
//! processor, against a real three-node cluster.
//!
//! - An approved payment confirms the hold; the checkout key replays, and the
//!   same key with another body is refused.
//! - A declined payment leaves the hold usable; a second attempt succeeds.
//! - A payment authorised after its hold expired and the seat was sold to
//!   someone else is refunded by the group leader without anyone asking.
//! - Webhooks with a missing, wrong or stale signature are refused.
//! - The node that took a checkout is killed before the provider answers: the
//!   payment still settles (the leader asks the provider again).
//! - The organiser cancels the event: every order is cancelled and every
//!   paid one refunded.
//!
//! At the end the simulated provider's ledgers (every live node's) are held
//! to the rule that no money is kept without a ticket: every authorised
//! charge is refunded, since the event is cancelled.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::shop::{call, checkout, expect, settled_payment, text};
use chaos_tests::{ApiClient, READY_TIMEOUT, TestCluster, eventually, grid_event};
use region_config::{ClusterLayout, NodeId, RaftTuning};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);
const EVENT: u64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_confirm_decline_refund_and_survive_a_kill() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn register(client: &ApiClient, node: NodeId, email: &str) -> anyhow::Result<String> {
    let body = json!({ "email": email, "password": "a long password", "name": email });
    let got = call(
        client,
        None,
        Method::POST,
        node,
        "/v1/auth/register",
        Some(body),
        None,
    )
    .await?;
    expect("registration", &got, StatusCode::CREATED, None)?;
    Ok(text(&got.1, "access_token")?.to_owned())
}

async fn hold(client: &ApiClient, token: &str, seat: &str, ttl_secs: Option<u64>) -> anyhow::Result<Value> {
    let mut body = json!({ "seats": [seat] });
    if let Some(ttl) = ttl_secs {
        body["ttl_secs"] = json!(ttl);
    }
    let got = call(
        client,
        Some(token),
        Method::POST,
        1,
        "/v1/events/1/holds",
        Some(body),
        None,
    )
    .await?;
    expect("a hold", &got, StatusCode::CREATED, None)?;
    Ok(got.1["hold_id"].clone())
}

async fn scenario() -> anyhow::Result<()> {
    let layout = ClusterLayout {
        groups_per_region: 1,
        replication: 3,
        ..ClusterLayout::default()
    };
    let mut test = TestCluster::start_with_layout(3, RaftTuning::default(), layout, READY_TIMEOUT).await?;
    let client = test.client.clone();
    let spec = grid_event("checkout", 1, 2, 10)?;
    let created = call(
        &client,
        Some(chaos_tests::LOCAL_ADMIN_TOKEN),
        Method::POST,
        1,
        "/v1/events",
        Some(json!({ "event_id": EVENT, "spec": spec })),
        Some("ev"),
    )
    .await?;
    expect("the event", &created, StatusCode::CREATED, None)?;
    let alice = register(&client, 1, "alice@example.org").await?;
    let bob = register(&client, 2, "bob@example.org").await?;
    let alice_token = alice;
    let alice = Some(alice_token.as_str());

    // Approved: the hold becomes an order; the key replays; another body under it is refused.
    let hold_1 = hold(&client, &alice_token, "A-1-1", None).await?;
    let path = format!("/v1/events/1/holds/{hold_1}/checkout");
    let no_key = call(&client, alice, Method::POST, 2, &path, None, None).await?;
    expect(
        "a checkout without a key",
        &no_key,
        StatusCode::BAD_REQUEST,
        Some("idempotency_key_required"),
    )?;
    let paid = checkout(&client, alice, 2, EVENT, &hold_1, "tok_visa", "co-1").await?;
    ensure!(
        paid["status"] == "succeeded" && paid["order_id"].is_u64(),
        "{paid}"
    );
    let replay = call(
        &client,
        alice,
        Method::POST,
        3,
        &path,
        Some(json!({ "method": "tok_visa" })),
        Some("co-1"),
    )
    .await?;
    expect("the same checkout again", &replay, StatusCode::ACCEPTED, None)?;
    ensure!(
        replay.1["payment_id"] == paid["payment_id"],
        "a replay started another payment: {}",
        replay.1
    );
    let other = call(
        &client,
        alice,
        Method::POST,
        3,
        &path,
        Some(json!({ "method": "tok_decline" })),
        Some("co-1"),
    )
    .await?;
    expect(
        "the key with another body",
        &other,
        StatusCode::CONFLICT,
        Some("idempotency_key_reused"),
    )?;
    let order = call(
        &client,
        alice,
        Method::GET,
        1,
        &format!("/v1/events/1/orders/{}", paid["order_id"]),
        None,
        None,
    )
    .await?;
    expect("the paid order", &order, StatusCode::OK, None)?;
    ensure!(
        order.1["status"] == "confirmed" && order.1["total"] == paid["amount"],
        "{}",
        order.1
    );

    // Declined: the hold stays; a second attempt succeeds.
    let hold_2 = hold(&client, &alice_token, "A-1-2", None).await?;
    let declined = checkout(&client, alice, 1, EVENT, &hold_2, "tok_decline", "co-2").await?;
    ensure!(declined["status"] == "failed", "{declined}");
    let still = call(
        &client,
        alice,
        Method::GET,
        1,
        &format!("/v1/events/1/holds/{hold_2}"),
        None,
        None,
    )
    .await?;
    ensure!(
        still.1["status"] == "active",
        "a declined payment ended the hold: {}",
        still.1
    );
    let second = checkout(&client, alice, 1, EVENT, &hold_2, "tok_approve", "co-3").await?;
    ensure!(second["status"] == "succeeded", "{second}");

    // Too late: the hold expires, Bob buys the seat, the payment is refunded.
    let hold_3 = hold(&client, &alice_token, "A-1-3", Some(1)).await?;
    let slow_path = format!("/v1/events/1/holds/{hold_3}/checkout");
    let slow = call(
        &client,
        alice,
        Method::POST,
        1,
        &slow_path,
        Some(json!({ "method": "tok_slow" })),
        Some("co-4"),
    )
    .await?;
    expect("a slow checkout", &slow, StatusCode::ACCEPTED, None)?;
    let bob_hold = eventually("the seat is back on sale", Duration::from_secs(10), async || {
        let got = call(
            &client,
            Some(&bob),
            Method::POST,
            1,
            "/v1/events/1/holds",
            Some(json!({ "seats": ["A-1-3"] })),
            None,
        )
        .await?;
        Ok((got.0 == StatusCode::CREATED).then(|| got.1["hold_id"].clone()))
    })
    .await?;
    let bobs = checkout(&client, Some(&bob), 1, EVENT, &bob_hold, "tok_visa", "co-bob").await?;
    ensure!(bobs["status"] == "succeeded", "{bobs}");
    let late = eventually(
        "the late payment is refunded",
        Duration::from_secs(30),
        async || {
            let got = settled_payment(
                &client,
                alice,
                1,
                EVENT,
                &slow.1["payment_id"],
                Duration::from_secs(10),
            )
            .await?;
            Ok((got["status"] == "refunded").then_some(got))
        },
    )
    .await?;
    ensure!(
        late["order_id"].is_null(),
        "a refunded payment bought something: {late}"
    );

    // Webhooks must be signed by the provider.
    let body = json!({ "reference": format!("bx.1.{}", paid["payment_id"]), "outcome": "declined", "reason": "forged" });
    for (what, signature) in [
        ("no signature", None),
        ("a wrong one", Some("t=1,v1=00")),
        ("a stale one", Some("t=1,v1=abc")),
    ] {
        let raw = client
            .raw_post(
                1,
                "/v1/payments/webhook",
                &body,
                signature.map(|s| ("boxoffice-signature", s)),
            )
            .await?;
        ensure!(
            raw.0 == StatusCode::UNAUTHORIZED && raw.1["code"] == "invalid_signature",
            "{what}: {raw:?}"
        );
    }

    // The node that took a checkout dies before the provider's answer reaches it.
    let hold_4 = hold(&client, &alice_token, "A-2-1", None).await?;
    let victim: NodeId = 3;
    let kill_path = format!("/v1/events/1/holds/{hold_4}/checkout");
    let started = call(
        &client,
        alice,
        Method::POST,
        victim,
        &kill_path,
        Some(json!({ "method": "tok_slow" })),
        Some("co-5"),
    )
    .await?;
    expect(
        "a checkout on the doomed node",
        &started,
        StatusCode::ACCEPTED,
        None,
    )?;
    test.cluster.kill(victim)?;
    let survived = eventually(
        "the orphaned payment settles",
        Duration::from_secs(60),
        async || {
            let got = settled_payment(
                &client,
                alice,
                1,
                EVENT,
                &started.1["payment_id"],
                Duration::from_secs(20),
            )
            .await?;
            Ok(Some(got))
        },
    )
    .await?;
    ensure!(survived["status"] == "succeeded", "{survived}");
    test.cluster.restart(victim)?;
    test.cluster.wait_ready(READY_TIMEOUT).await?;

    // The organiser cancels: every order is cancelled, every paid one refunded.
    let org = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    let by_customer = call(&client, alice, Method::POST, 1, "/v1/events/1/cancel", None, None).await?;
    expect(
        "a customer cancels the event",
        &by_customer,
        StatusCode::FORBIDDEN,
        Some("forbidden"),
    )?;
    let cancelled = call(
        &client,
        org,
        Method::POST,
        2,
        "/v1/events/1/cancel",
        None,
        Some("cancel"),
    )
    .await?;
    expect("the organiser cancels", &cancelled, StatusCode::OK, None)?;
    ensure!(
        cancelled.1["orders_cancelled"] == 4 && cancelled.1["refunds"] == 4,
        "{}",
        cancelled.1
    );
    let refused = call(
        &client,
        Some(&bob),
        Method::POST,
        1,
        "/v1/events/1/holds",
        Some(json!({ "seats": ["A-2-5"] })),
        None,
    )
    .await?;
    expect(
        "a hold on a cancelled event",
        &refused,
        StatusCode::CONFLICT,
        Some("event_cancelled"),
    )?;
    for payment in [
        &paid["payment_id"],
        &second["payment_id"],
        &bobs["payment_id"],
        &survived["payment_id"],
    ] {
        eventually(
            "a cancelled order's payment is refunded",
            Duration::from_secs(30),
            async || {
                let got = settled_payment(&client, org, 1, EVENT, payment, Duration::from_secs(5)).await?;
                Ok((got["status"] == "refunded").then_some(()))
            },
        )
        .await?;
    }

    // No money kept: every charge any provider instance authorised is refunded.
    let mut charges: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for node in test.cluster.running_ids() {
        let ledger = call(
            &client,
            org,
            Method::GET,
            node,
            "/v1/admin/payments/ledger",
            None,
            None,
        )
        .await?;
        expect("a ledger", &ledger, StatusCode::OK, None)?;
        for charge in ledger.1["charges"].as_array().context("charges")? {
            let entry = charges.entry(text(charge, "reference")?.to_owned()).or_default();
            entry.0 |= charge["authorised"] == true;
            entry.1 |= charge["refunded"] == true;
        }
    }
    ensure!(!charges.is_empty(), "the providers charged nothing");
    for (reference, (authorised, refunded)) in &charges {
        ensure!(
            !authorised || *refunded,
            "{reference} was charged and never refunded"
        );
    }
    test.finish().await
}
