//! Accounts, tokens, authorization and signed tickets over HTTP, against a
//! real three-node cluster in two regions.
//!
//! The whole customer path runs once: an operator makes the first organiser
//! (no public route can), the organiser creates an event, a customer
//! registers in one region and logs in through the other, holds, confirms,
//! reads their ticket with its signed QR payload (checked here with the
//! published public key), and staff admit it exactly once. Around it: what a
//! customer may not do (see another's hold, order or ticket; book for someone
//! else; create events; check in), what bad tokens get (tampered, `alg: none`,
//! expired, wrong scheme), refresh-token rotation with replay detection,
//! logout, guest checkout, an `Idempotency-Key` reused for another body, and
//! accounts surviving a kill -9 of every node.

use std::time::Duration;

use anyhow::{Context, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chaos_tests::shop::{call, checkout, expect, text};
use chaos_tests::{READY_TIMEOUT, TestCluster, grid_event};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use region_config::{ClusterLayout, NodeId, RaftTuning, RegionId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);
const EVENT: u64 = 1;
const EU: NodeId = 1;
const US: NodeId = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_tokens_and_tickets() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let layout = ClusterLayout {
        groups_per_region: 1,
        replication: 3,
        ..ClusterLayout::default()
    };
    let regions = [RegionId::new("eu-west")?, RegionId::new("us-east")?];
    let mut test =
        TestCluster::start_in_regions(3, RaftTuning::default(), layout, &regions, READY_TIMEOUT).await?;
    let client = test.client.clone();
    let operator = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    let password = "correct horse battery";

    // Every route in /openapi.json is served (anonymously: refused, but routed).
    let doc = call(&client, None, Method::GET, EU, "/openapi.json", None, None).await?;
    expect("the OpenAPI document", &doc, StatusCode::OK, None)?;
    let paths = doc.1["paths"].as_object().context("no paths")?;
    ensure!(paths.len() >= 30, "only {} paths documented", paths.len());
    let anonymous = client.clone().with_token(None);
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|part| if part.starts_with('{') { "1" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().context("a path item")?.keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let (status, _, body) = anonymous.raw(method.clone(), EU, &concrete).await?;
            let unrouted =
                body.contains("\"code\":\"not_found\"") || status == StatusCode::METHOD_NOT_ALLOWED;
            ensure!(
                !unrouted,
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }

    // The first organiser comes from the operator; the public route cannot make one.
    let organiser =
        json!({ "email": "org@example.org", "password": password, "name": "Org", "role": "admin" });
    let made = call(
        &client,
        operator,
        Method::POST,
        EU,
        "/v1/admin/users",
        Some(organiser.clone()),
        None,
    )
    .await?;
    expect("operator creates an admin", &made, StatusCode::CREATED, None)?;
    ensure!(
        made.1["role"] == "admin" && made.1.get("password_hash").is_none(),
        "{}",
        made.1
    );
    let sneaky = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/auth/register",
        Some(organiser),
        None,
    )
    .await?;
    expect(
        "public registration with a role",
        &sneaky,
        StatusCode::BAD_REQUEST,
        Some("malformed_json"),
    )?;
    let anonymous_admin =
        json!({ "email": "x@example.org", "password": password, "name": "X", "role": "admin" });
    let refused = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/admin/users",
        Some(anonymous_admin),
        None,
    )
    .await?;
    expect(
        "anonymous user creation",
        &refused,
        StatusCode::UNAUTHORIZED,
        Some("unauthorized"),
    )?;

    let login = |email: &'static str, node: NodeId| {
        let client = client.clone();
        async move {
            let body = json!({ "email": email, "password": "correct horse battery" });
            call(
                &client,
                None,
                Method::POST,
                node,
                "/v1/auth/login",
                Some(body),
                None,
            )
            .await
        }
    };
    let org = login("org@example.org", US).await?;
    expect("organiser login", &org, StatusCode::OK, None)?;
    let org_token = text(&org.1, "access_token")?.to_owned();

    // Organisers create events; customers and strangers cannot.
    let venue = json!({ "name": "Arena", "address": "5 Quay", "city": "Dublin", "country": "IE", "time_zone": "Europe/Dublin" });
    let venue = call(
        &client,
        Some(&org_token),
        Method::POST,
        EU,
        "/v1/venues",
        Some(venue),
        Some("venue"),
    )
    .await?;
    expect("organiser adds a venue", &venue, StatusCode::CREATED, None)?;
    let spec = grid_event("Accounts Live", 1, 4, 10)?;
    let listing = json!({ "category": "concert", "performers": ["The Testers"], "venue_id": venue.1["venue_id"],
        "starts_at_ms": 4_000_000_000_000u64, "ends_at_ms": 4_000_010_000_000u64 });
    let event_body = json!({ "event_id": EVENT, "spec": spec, "listing": listing });
    let created = call(
        &client,
        Some(&org_token),
        Method::POST,
        EU,
        "/v1/events",
        Some(event_body.clone()),
        Some("ev-1"),
    )
    .await?;
    expect("organiser creates an event", &created, StatusCode::CREATED, None)?;

    // Alice registers in us-east; retrying with the same key is the same registration.
    let alice_body =
        json!({ "email": "Alice@Example.org", "password": password, "name": "Alice", "region": "us-east" });
    let alice = call(
        &client,
        None,
        Method::POST,
        US,
        "/v1/auth/register",
        Some(alice_body.clone()),
        Some("reg-alice"),
    )
    .await?;
    expect("alice registers", &alice, StatusCode::CREATED, None)?;
    let again = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/auth/register",
        Some(alice_body),
        Some("reg-alice"),
    )
    .await?;
    expect(
        "alice registers again with the same key",
        &again,
        StatusCode::CREATED,
        None,
    )?;
    ensure!(
        again.1["customer_id"] == alice.1["customer_id"],
        "{} vs {}",
        again.1,
        alice.1
    );
    let alice_id = text(&alice.1, "customer_id")?.to_owned();
    ensure!(
        alice.1["account"]["email"] == "alice@example.org",
        "e-mail not normalised: {}",
        alice.1
    );
    let us_group = test
        .client
        .cluster(EU)
        .await?
        .get("groups")
        .and_then(Value::as_array)
        .and_then(|groups| {
            groups
                .iter()
                .find(|g| g["group_id"] != 0 && g["home_region"] == "us-east")
                .map(|g| g["group_id"].to_string())
        })
        .context("no us-east group in the map")?;
    ensure!(
        alice_id.starts_with(&format!("u.{us_group}.")),
        "{alice_id} is not in group {us_group}"
    );

    let taken = json!({ "email": "alice@example.org", "password": "another password", "name": "A2" });
    let dup = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/auth/register",
        Some(taken),
        None,
    )
    .await?;
    expect(
        "a second account for the address",
        &dup,
        StatusCode::CONFLICT,
        Some("email_taken"),
    )?;
    let bad_email = json!({ "email": "nope", "password": password, "name": "N" });
    let bad = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/auth/register",
        Some(bad_email),
        None,
    )
    .await?;
    expect(
        "a malformed address",
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_request"),
    )?;
    ensure!(bad.1["field"] == "email", "{}", bad.1);
    let short = json!({ "email": "short@example.org", "password": "2short", "name": "S" });
    let bad = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/auth/register",
        Some(short),
        None,
    )
    .await?;
    expect(
        "a short password",
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_request"),
    )?;
    ensure!(bad.1["field"] == "password", "{}", bad.1);
    let bad_region = json!({ "email": "r@example.org", "password": password, "name": "R", "region": "mars" });
    let bad = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/auth/register",
        Some(bad_region),
        None,
    )
    .await?;
    expect(
        "an unknown region",
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("unknown_region"),
    )?;

    // Alice logs in through the other region; wrong passwords and unknown addresses look alike.
    let session = login("alice@example.org", EU).await?;
    expect("alice logs in from eu-west", &session, StatusCode::OK, None)?;
    let alice_token = text(&session.1, "access_token")?.to_owned();
    let wrong = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/auth/login",
        Some(json!({ "email": "alice@example.org", "password": "wrong password" })),
        None,
    )
    .await?;
    expect(
        "a wrong password",
        &wrong,
        StatusCode::UNAUTHORIZED,
        Some("invalid_credentials"),
    )?;
    let nobody = login("nobody@example.org", EU).await?;
    expect(
        "an unknown address",
        &nobody,
        StatusCode::UNAUTHORIZED,
        Some("invalid_credentials"),
    )?;
    let me = call(&client, Some(&alice_token), Method::GET, EU, "/v1/me", None, None).await?;
    expect("alice's account", &me, StatusCode::OK, None)?;
    ensure!(
        me.1["customer_id"] == alice_id.as_str() && me.1["region"] == "us-east",
        "{}",
        me.1
    );
    ensure!(me.1.get("password_hash").is_none(), "the hash leaked: {}", me.1);

    let as_customer = call(
        &client,
        Some(&alice_token),
        Method::POST,
        EU,
        "/v1/events",
        Some(json!({ "event_id": 2, "spec": grid_event("x", 1, 1, 1)? })),
        None,
    )
    .await?;
    expect(
        "a customer creates an event",
        &as_customer,
        StatusCode::FORBIDDEN,
        Some("forbidden"),
    )?;
    let stranger = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/events/1/holds",
        Some(json!({ "seats": ["A-1-1"] })),
        None,
    )
    .await?;
    expect(
        "an anonymous hold",
        &stranger,
        StatusCode::UNAUTHORIZED,
        Some("unauthorized"),
    )?;

    // Bad tokens.
    let mut parts: Vec<String> = alice_token.split('.').map(str::to_owned).collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1])?)?;
    parts[1] = URL_SAFE_NO_PAD.encode(payload.replace("\"customer\"", "\"operator\""));
    let tampered = parts.join(".");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let claims = json!({ "sub": alice_id, "role": "customer", "region": "us-east", "sid": null,
        "iss": "boxoffice", "aud": "boxoffice-api", "iat": 1, "exp": 1_000 });
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(node::launcher::LOCAL_JWT_SECRET.as_bytes()),
    )?;
    for (what, token, code) in [
        ("a tampered token", tampered.as_str(), "invalid_token"),
        ("an alg:none token", unsigned.as_str(), "invalid_token"),
        ("an expired token", expired.as_str(), "token_expired"),
        ("garbage", "not-a-jwt", "invalid_token"),
    ] {
        let got = call(&client, Some(token), Method::GET, EU, "/v1/me", None, None).await?;
        expect(what, &got, StatusCode::UNAUTHORIZED, Some(code))?;
    }

    // Alice finds the event (through the other region's replica) ...
    let found = chaos_tests::eventually(
        "alice finds the event",
        std::time::Duration::from_secs(20),
        async || {
            let got = call(
                &client,
                Some(&alice_token),
                Method::GET,
                US,
                "/v1/events?q=testers",
                None,
                None,
            )
            .await?;
            Ok((got.1["events"][0]["event_id"] == EVENT).then_some(got.1))
        },
    )
    .await?;
    ensure!(found["events"][0]["venue"]["city"] == "Dublin", "{found}");

    // ... and holds, for herself only.
    let hold = call(
        &client,
        Some(&alice_token),
        Method::POST,
        US,
        "/v1/events/1/holds",
        Some(json!({ "seats": ["A-1-1"] })),
        Some("alice-hold-1"),
    )
    .await?;
    expect("alice holds", &hold, StatusCode::CREATED, None)?;
    ensure!(hold.1["holder"] == alice_id.as_str(), "{}", hold.1);
    let hold_id = hold.1["hold_id"].to_string();
    let for_other = call(
        &client,
        Some(&alice_token),
        Method::POST,
        US,
        "/v1/events/1/holds",
        Some(json!({ "holder": "u.1.someone", "seats": ["A-1-5"] })),
        None,
    )
    .await?;
    expect(
        "alice books for someone else",
        &for_other,
        StatusCode::FORBIDDEN,
        Some("forbidden"),
    )?;

    // The same key for another body is refused and holds nothing.
    let reused = call(
        &client,
        Some(&alice_token),
        Method::POST,
        US,
        "/v1/events/1/holds",
        Some(json!({ "seats": ["A-1-3"] })),
        Some("alice-hold-1"),
    )
    .await?;
    expect(
        "a reused key",
        &reused,
        StatusCode::CONFLICT,
        Some("idempotency_key_reused"),
    )?;
    let event = call(&client, None, Method::GET, EU, "/v1/events/1", None, None).await?;
    ensure!(
        event.1["held"] == 1,
        "the reused key held something: {}",
        event.1["held"]
    );

    // Holds are rate-limited per account: a burst trips 429 with Retry-After, and it recovers.
    let mut limited = None;
    for _ in 0..20 {
        let got = call(
            &client,
            Some(&alice_token),
            Method::POST,
            EU,
            "/v1/events/1/holds",
            Some(json!({ "seats": ["Z-9-9"] })),
            None,
        )
        .await?;
        if got.0 == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(got);
            break;
        }
        expect(
            "a hold of no seat",
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("unknown_seat"),
        )?;
    }
    let limited = limited.context("20 quick holds never hit the rate limit")?;
    expect(
        "a burst of holds",
        &limited,
        StatusCode::TOO_MANY_REQUESTS,
        Some("rate_limited"),
    )?;
    let wait = limited.1["retry_after_secs"]
        .as_u64()
        .context("no retry_after_secs")?;
    ensure!((1..=60).contains(&wait), "retry after {wait} s");
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let again = call(
        &client,
        Some(&alice_token),
        Method::POST,
        EU,
        "/v1/events/1/holds",
        Some(json!({ "seats": ["Z-9-9"] })),
        None,
    )
    .await?;
    expect(
        "a hold after waiting",
        &again,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("unknown_seat"),
    )?;

    // Bob cannot see or take Alice's hold.
    let bob = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/auth/register",
        Some(json!({ "email": "bob@example.org", "password": password, "name": "Bob" })),
        None,
    )
    .await?;
    expect("bob registers", &bob, StatusCode::CREATED, None)?;
    let bob_token = text(&bob.1, "access_token")?.to_owned();
    let hold_path = format!("/v1/events/1/holds/{hold_id}");
    let peek = call(&client, Some(&bob_token), Method::GET, EU, &hold_path, None, None).await?;
    expect(
        "bob reads alice's hold",
        &peek,
        StatusCode::NOT_FOUND,
        Some("unknown_hold"),
    )?;
    let steal = call(
        &client,
        Some(&bob_token),
        Method::POST,
        EU,
        &format!("{hold_path}/confirm"),
        None,
        None,
    )
    .await?;
    expect(
        "bob confirms alice's hold",
        &steal,
        StatusCode::FORBIDDEN,
        Some("wrong_holder"),
    )?;

    // A paid hold is not confirmed without paying; Alice checks out.
    let free = call(
        &client,
        Some(&alice_token),
        Method::POST,
        EU,
        &format!("{hold_path}/confirm"),
        None,
        Some("alice-confirm"),
    )
    .await?;
    expect(
        "alice confirms without paying",
        &free,
        StatusCode::PAYMENT_REQUIRED,
        Some("payment_required"),
    )?;
    let payment = checkout(
        &client,
        Some(&alice_token),
        EU,
        EVENT,
        &hold.1["hold_id"],
        "tok_visa",
        "alice-pay",
    )
    .await?;
    ensure!(payment["status"] == "succeeded", "alice's payment: {payment}");
    let order_path = format!("/v1/events/1/orders/{}", payment["order_id"]);
    let mine = call(
        &client,
        Some(&alice_token),
        Method::GET,
        US,
        &order_path,
        None,
        None,
    )
    .await?;
    expect("alice reads her order", &mine, StatusCode::OK, None)?;
    let code = mine.1["tickets"][0]["code"]
        .as_str()
        .context("no ticket")?
        .to_owned();
    let theirs = call(
        &client,
        Some(&bob_token),
        Method::GET,
        US,
        &order_path,
        None,
        None,
    )
    .await?;
    expect(
        "bob reads alice's order",
        &theirs,
        StatusCode::NOT_FOUND,
        Some("unknown_order"),
    )?;

    // The ticket: Alice sees it with a signed payload that verifies offline.
    let ticket_path = format!("/v1/events/1/tickets/{code}");
    let ticket = call(
        &client,
        Some(&alice_token),
        Method::GET,
        EU,
        &ticket_path,
        None,
        None,
    )
    .await?;
    expect("alice reads her ticket", &ticket, StatusCode::OK, None)?;
    let qr_payload = text(&ticket.1, "qr_payload")?.to_owned();
    let theirs = call(
        &client,
        Some(&bob_token),
        Method::GET,
        EU,
        &ticket_path,
        None,
        None,
    )
    .await?;
    expect(
        "bob reads alice's ticket",
        &theirs,
        StatusCode::NOT_FOUND,
        Some("unknown_ticket"),
    )?;
    let key = call(
        &client,
        None,
        Method::GET,
        US,
        "/v1/tickets/public-key",
        None,
        None,
    )
    .await?;
    expect("the public key", &key, StatusCode::OK, None)?;
    let public: [u8; 32] = URL_SAFE_NO_PAD
        .decode(text(&key.1, "public_key")?)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the public key is not 32 bytes"))?;
    let (message, signature) = qr_payload.rsplit_once('.').context("no signature")?;
    ensure!(message == format!("BX1.{EVENT}.{code}"), "payload {qr_payload}");
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the signature is not 64 bytes"))?;
    VerifyingKey::from_bytes(&public)?
        .verify(message.as_bytes(), &Signature::from_bytes(&signature))
        .context("the ticket signature does not verify with the published key")?;
    let svg = client
        .clone()
        .with_token(Some(&alice_token))
        .raw(Method::GET, EU, &format!("{ticket_path}/qr.svg"))
        .await?;
    ensure!(
        svg.0 == StatusCode::OK && svg.1.as_deref() == Some("image/svg+xml") && svg.2.contains("<svg"),
        "the QR image: {:?}",
        (svg.0, svg.1)
    );

    // Check-in: staff only, once; a forged payload never reaches the group.
    let scan = |token: String, payload: String, key: &'static str| {
        let client = client.clone();
        async move {
            call(
                &client,
                Some(&token),
                Method::POST,
                US,
                "/v1/check-in",
                Some(json!({ "payload": payload })),
                Some(key),
            )
            .await
        }
    };
    let by_customer = scan(alice_token.clone(), qr_payload.clone(), "scan-0").await?;
    expect(
        "a customer checks in",
        &by_customer,
        StatusCode::FORBIDDEN,
        Some("forbidden"),
    )?;
    let forged = qr_payload.replacen(&format!("BX1.{EVENT}."), "BX1.2.", 1);
    let forged = scan(org_token.clone(), forged, "scan-1").await?;
    expect(
        "a forged payload",
        &forged,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_ticket_signature"),
    )?;
    let first = scan(org_token.clone(), qr_payload.clone(), "scan-2").await?;
    expect("the first scan", &first, StatusCode::OK, None)?;
    let second = scan(org_token.clone(), qr_payload.clone(), "scan-3").await?;
    expect(
        "the second scan",
        &second,
        StatusCode::CONFLICT,
        Some("already_checked_in"),
    )?;
    ensure!(
        second.1["first_checked_in_at_ms"] == first.1["checked_in_at_ms"],
        "{} vs {}",
        second.1,
        first.1
    );

    // Refresh rotation, replay detection, logout.
    let old_refresh = text(&session.1, "refresh_token")?.to_owned();
    let refresh = |token: String| {
        let client = client.clone();
        async move {
            call(
                &client,
                None,
                Method::POST,
                US,
                "/v1/auth/refresh",
                Some(json!({ "refresh_token": token })),
                None,
            )
            .await
        }
    };
    let rotated = refresh(old_refresh.clone()).await?;
    expect("a refresh", &rotated, StatusCode::OK, None)?;
    let new_refresh = text(&rotated.1, "refresh_token")?.to_owned();
    ensure!(new_refresh != old_refresh, "the refresh token did not rotate");
    let replay = refresh(old_refresh).await?;
    expect(
        "a replayed refresh token",
        &replay,
        StatusCode::UNAUTHORIZED,
        Some("refresh_token_reused"),
    )?;
    let after = refresh(new_refresh).await?;
    expect(
        "the family after a replay",
        &after,
        StatusCode::UNAUTHORIZED,
        Some("session_invalid"),
    )?;
    let garbage = refresh("rt1.999.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()).await?;
    expect(
        "a refresh token of no group",
        &garbage,
        StatusCode::UNAUTHORIZED,
        Some("session_invalid"),
    )?;
    let session = login("alice@example.org", US).await?;
    let refresh_token = text(&session.1, "refresh_token")?.to_owned();
    let out = call(
        &client,
        None,
        Method::POST,
        EU,
        "/v1/auth/logout",
        Some(json!({ "refresh_token": refresh_token })),
        None,
    )
    .await?;
    ensure!(out.0 == StatusCode::NO_CONTENT, "logout: {out:?}");
    let after = refresh(refresh_token).await?;
    expect(
        "a refresh after logout",
        &after,
        StatusCode::UNAUTHORIZED,
        Some("session_invalid"),
    )?;

    // A guest buys with an e-mail address only, once they proved it: the
    // code goes to the address (here, with no mail relay, to node EU's log).
    let log = test.cluster.log_path(EU).to_owned();
    let guest = chaos_tests::shop::verified_guest(&client, EU, "guest@example.org", &log).await?;
    let guest = (StatusCode::OK, guest);
    let guest_token = text(&guest.1, "access_token")?.to_owned();
    let held = call(
        &client,
        Some(&guest_token),
        Method::POST,
        EU,
        "/v1/events/1/holds",
        Some(json!({ "seats": ["A-2-1"] })),
        Some("guest-hold"),
    )
    .await?;
    expect("a guest holds", &held, StatusCode::CREATED, None)?;
    let bought = checkout(
        &client,
        Some(&guest_token),
        EU,
        EVENT,
        &held.1["hold_id"],
        "tok_visa",
        "guest-pay",
    )
    .await?;
    ensure!(
        bought["status"] == "succeeded" && bought["holder"] == guest.1["customer_id"],
        "{bought}"
    );

    // Accounts are in Raft: a kill -9 of every node loses none of them.
    for id in test.cluster.node_ids() {
        test.cluster.kill(id)?;
    }
    for id in test.cluster.node_ids() {
        test.cluster.restart(id)?;
    }
    test.cluster.wait_ready(READY_TIMEOUT).await?;
    let back = login("alice@example.org", US).await?;
    expect(
        "alice logs in after every node was killed",
        &back,
        StatusCode::OK,
        None,
    )?;
    ensure!(back.1["customer_id"] == alice_id.as_str(), "{}", back.1);
    test.finish().await
}
