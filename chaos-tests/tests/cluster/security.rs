//! The doors around the API, tried from outside as an attacker would, against
//! a real three-node cluster (issue #11):
//!
//! - the node-to-node gRPC port refuses a caller without a node certificate
//!   of the cluster's CA (plaintext, TLS without a client certificate, a
//!   certificate of another CA), and serves one with it (the control that
//!   shows the refusals are not a broken port); `/v1/cluster` shows gRPC
//!   addresses to operators only;
//! - a guest proves the address with a one-time code: wrong codes use up the
//!   challenge, someone else's guest token sees nothing of a guest's order,
//!   and the per-customer limit counts per verified address;
//! - failed logins are throttled and recover, and password hashing is
//!   capped per node (excess answered `too_busy`, not queued);
//! - customer webhooks must be https to a public host;
//! - a 7 MiB hold is refused before any log is appended (log indexes of the
//!   group on every node compared before and after);
//! - a connection that never finishes its headers is closed after the header
//!   timeout, an idle one after the idle timeout, and one beyond the cap is
//!   answered 503;
//! - a forged "declined" webhook does not decline a charge the provider
//!   authorised, and a forged "authorised" one does not buy a declined one;
//! - one customer's `Idempotency-Key` neither replays nor blocks another's;
//!   token answers are not cached; security headers are on every answer;
//! - a node refuses to start with the published demo secrets unless told.

use booking::MapQuery;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chaos_tests::shop::{self, call, checkout, expect, text};
use chaos_tests::{FIRST_DATA_GROUP, TestCluster, eventually, grid_event};
use region_config::{NodeId, RaftTuning};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);
const EVENT: u64 = 1;
/// The node whose HTTP server gets small limits for the connection tests;
/// the API client leaves it alone.
const TIGHT: NodeId = 3;
const TIGHT_HEADER_TIMEOUT: Duration = Duration::from_millis(1_500);
const TIGHT_IDLE_TIMEOUT: Duration = Duration::from_millis(3_000);
const TIGHT_MAX_CONNECTIONS: u32 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doors_are_closed() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let test = TestCluster::start_configured(3, RaftTuning::default(), &|config| {
        // Webhooks as in production: https to public hosts only.
        config.notifications.allow_private_webhooks = false;
        config.login.failures_per_account = 3;
        config.login.max_concurrent_hashes = 1;
        if config.node_id == TIGHT {
            config.http.header_read_timeout_ms = TIGHT_HEADER_TIMEOUT.as_millis() as u64;
            config.http.idle_timeout_ms = TIGHT_IDLE_TIMEOUT.as_millis() as u64;
            config.http.max_connections = TIGHT_MAX_CONNECTIONS;
        }
    })
    .await?;
    let client = test.client.clone();
    let staff = Some(chaos_tests::LOCAL_ADMIN_TOKEN);

    let mut spec = grid_event("Security", 2, 2, 10)?;
    spec.max_tickets_per_customer = Some(2);
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

    grpc_needs_a_node_certificate(&test).await?;
    guests_prove_their_address(&test).await?;
    logins_are_throttled(&test).await?;
    webhooks_reach_public_hosts_only(&test).await?;
    oversized_writes_reach_no_log(&test).await?;
    forged_webhooks_change_nothing_the_provider_did_not_say(&test).await?;
    keys_headers_and_caching(&test).await?;
    connections_are_bounded(&test).await?;
    weak_secrets_stop_a_node(&test).await?;
    drop(client);
    test.finish().await
}

/// gRPC with no certificate, with none of ours, and with ours.
async fn grpc_needs_a_node_certificate(test: &TestCluster) -> anyhow::Result<()> {
    use transport::booking_service::{BookingPeer, LeaderReply};
    use transport::proto::Envelope;
    use transport::proto::booking_client::BookingClient;

    let addr = test.cluster.config(1).grpc_addr;
    let envelope = Envelope {
        group_id: booking::META_GROUP,
        payload: transport::codec::encode(&booking::Query::Map(MapQuery::ClusterMap)),
        target_replica: 0,
    };
    // Plaintext: the TLS listener does not speak it.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3));
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(channel) => BookingClient::new(channel).query(envelope.clone()).await.is_err(),
    };
    ensure!(refused, "a plaintext gRPC query was answered");

    // TLS that trusts the cluster's CA but shows no client certificate.
    let tls_dir = test.cluster.base_dir().join("tls");
    let ca = tonic::transport::Certificate::from_pem(std::fs::read(tls_dir.join("ca.pem"))?);
    let anonymous_tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .domain_name(region_config::CLUSTER_TLS_NAME);
    let no_cert = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(anonymous_tls)?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3));
    let refused = match no_cert.connect().await {
        Err(_) => true,
        Ok(channel) => BookingClient::new(channel).query(envelope.clone()).await.is_err(),
    };
    ensure!(refused, "a gRPC query without a client certificate was answered");

    // A node certificate from another CA.
    let stranger_dir = tempfile::tempdir()?;
    let stranger = node::certs::CertDir::open_or_create(stranger_dir.path())?.node(99)?;
    let stranger_tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(ca)
        .identity(tonic::transport::Identity::from_pem(
            std::fs::read(&stranger.cert)?,
            std::fs::read(&stranger.key)?,
        ))
        .domain_name(region_config::CLUSTER_TLS_NAME);
    let pool = transport::channels::ChannelPool::new(stranger_tls);
    let mut peer = BookingPeer::new(&pool, &addr.to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = peer
        .query(
            booking::META_GROUP,
            &booking::Query::Map(MapQuery::ClusterMap),
            Duration::from_secs(3),
        )
        .await;
    ensure!(
        answer.is_err(),
        "a certificate of another CA was accepted: {answer:?}"
    );

    // The control: this cluster's own node certificate is served.
    let ours = test.cluster.config(2).tls.clone().context("node 2 has [tls]")?;
    let tls = transport::tls::ClusterTls::load(
        &ours.ca_cert,
        &ours.cert,
        &ours.key,
        region_config::CLUSTER_TLS_NAME,
    )?;
    let pool = transport::channels::ChannelPool::new(tls.client);
    let mut peer = BookingPeer::new(&pool, &addr.to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = eventually(
        "a node certificate is served",
        Duration::from_secs(10),
        async || {
            Ok(peer
                .query(
                    booking::META_GROUP,
                    &booking::Query::Map(MapQuery::ClusterMap),
                    Duration::from_secs(3),
                )
                .await
                .ok())
        },
    )
    .await?;
    ensure!(
        matches!(answer, LeaderReply::Done(_) | LeaderReply::NotLeader { .. }),
        "{answer:?}"
    );

    // Internal addresses are for operators only.
    let public = call(&client_of(test), None, Method::GET, 1, "/v1/cluster", None, None).await?;
    ensure!(
        !public.1.to_string().contains("grpc_addr"),
        "anonymous /v1/cluster lists gRPC addresses: {}",
        public.1
    );
    let operator = test.client.cluster(1).await?;
    ensure!(operator.to_string().contains("grpc_addr"), "{operator}");
    Ok(())
}

fn client_of(test: &TestCluster) -> chaos_tests::ApiClient {
    test.client.clone()
}

fn hold_body(seats: &[&str]) -> Value {
    json!({ "seats": seats })
}

/// Guests: codes, identities, and what one guest may see of another's.
async fn guests_prove_their_address(test: &TestCluster) -> anyhow::Result<()> {
    let client = client_of(test);
    let log = test.cluster.log_path(1).to_owned();
    let holds = format!("/v1/events/{EVENT}/holds");

    // Without the code, no token: five wrong guesses void the challenge.
    let before = shop::logged_codes(&log)?.len();
    let challenge = shop::request_guest_code(&client, 1, "alice@example.org").await?;
    let code = eventually("alice's code", Duration::from_secs(10), async || {
        Ok(shop::logged_codes(&log)?.get(before).cloned())
    })
    .await?;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for left in (0..5).rev() {
        let guess = call(
            &client,
            None,
            Method::POST,
            1,
            "/v1/auth/guest/verify",
            Some(json!({ "challenge_id": challenge, "code": wrong })),
            None,
        )
        .await?;
        expect(
            "a wrong code",
            &guess,
            StatusCode::UNAUTHORIZED,
            Some("code_invalid"),
        )?;
        ensure!(guess.1["attempts_left"] == left, "{}", guess.1);
    }
    let late = call(
        &client,
        None,
        Method::POST,
        1,
        "/v1/auth/guest/verify",
        Some(json!({ "challenge_id": challenge, "code": code })),
        None,
    )
    .await?;
    expect(
        "the right code after five wrong ones",
        &late,
        StatusCode::UNAUTHORIZED,
        Some("code_invalid"),
    )?;

    // Alice proves her address and buys; the same address later is the same guest.
    let alice = shop::verified_guest(&client, 1, "alice@example.org", &log).await?;
    let alice_token = text(&alice, "access_token")?.to_owned();
    let alice_id = text(&alice, "customer_id")?.to_owned();
    ensure!(alice_id.starts_with("g."), "{alice}");
    let held = call(
        &client,
        Some(&alice_token),
        Method::POST,
        1,
        &holds,
        Some(hold_body(&["A-1-1"])),
        Some("a1"),
    )
    .await?;
    expect("alice holds", &held, StatusCode::CREATED, None)?;
    let bought = checkout(
        &client,
        Some(&alice_token),
        1,
        EVENT,
        &held.1["hold_id"],
        "tok_visa",
        "pay-a1",
    )
    .await?;
    ensure!(bought["status"] == "succeeded", "{bought}");
    let order_path = format!("/v1/events/{EVENT}/orders/{}", bought["order_id"]);

    let again = shop::verified_guest(&client, 2, "ALICE@example.org ", test.cluster.log_path(2)).await?;
    ensure!(
        again["customer_id"] == alice_id.as_str(),
        "one guest identity per address: {again}"
    );
    let alice_again = text(&again, "access_token")?.to_owned();
    let mine = call(
        &client,
        Some(&alice_again),
        Method::GET,
        2,
        &order_path,
        None,
        None,
    )
    .await?;
    expect("alice's order from a new session", &mine, StatusCode::OK, None)?;

    // The per-customer limit (2) counts per verified address: one more
    // place is all alice's address may have, in any session.
    let second = call(
        &client,
        Some(&alice_again),
        Method::POST,
        2,
        &holds,
        Some(hold_body(&["A-1-2"])),
        Some("a2"),
    )
    .await?;
    expect("alice's second place", &second, StatusCode::CREATED, None)?;
    let third = call(
        &client,
        Some(&alice_token),
        Method::POST,
        1,
        &holds,
        Some(hold_body(&["A-1-3"])),
        Some("a3"),
    )
    .await?;
    expect(
        "alice's third place",
        &third,
        StatusCode::CONFLICT,
        Some("customer_limit"),
    )?;

    // Mallory, a guest of her own, sees nothing of alice's.
    let mallory = shop::verified_guest(&client, 1, "mallory@example.org", &log).await?;
    let mallory_token = text(&mallory, "access_token")?.to_owned();
    ensure!(mallory["customer_id"] != alice_id.as_str(), "{mallory}");
    let theirs = call(
        &client,
        Some(&mallory_token),
        Method::GET,
        1,
        &order_path,
        None,
        None,
    )
    .await?;
    expect(
        "mallory reads alice's order",
        &theirs,
        StatusCode::NOT_FOUND,
        Some("unknown_order"),
    )?;
    let mine = call(
        &client,
        Some(&mallory_token),
        Method::GET,
        1,
        "/v1/me/orders",
        None,
        None,
    )
    .await?;
    expect("mallory's orders", &mine, StatusCode::OK, None)?;
    ensure!(
        mine.1["orders"].as_array().is_some_and(Vec::is_empty),
        "{}",
        mine.1
    );
    let cancel = call(
        &client,
        Some(&mallory_token),
        Method::POST,
        1,
        &format!("{order_path}/cancel"),
        None,
        None,
    )
    .await?;
    ensure!(
        !cancel.0.is_success(),
        "mallory cancelled alice's order: {cancel:?}"
    );

    // The confirmation reached alice's address (here: node logs, no relay).
    let confirmed = eventually(
        "alice's confirmation is delivered",
        Duration::from_secs(20),
        async || {
            let notices = call(
                &client,
                Some(&alice_again),
                Method::GET,
                1,
                &format!("/v1/events/{EVENT}/notices"),
                None,
                None,
            )
            .await?;
            Ok(notices.1["notices"].as_array().and_then(|all| {
                all.iter()
                    .find(|n| {
                        n["kind"].get("order_confirmed").is_some() && n["delivery"].get("delivered").is_some()
                    })
                    .cloned()
            }))
        },
    )
    .await?;
    ensure!(confirmed["recipient"] == alice_id.as_str(), "{confirmed}");
    Ok(())
}

/// Failed logins back off; a success afterwards recovers; hashing is capped.
async fn logins_are_throttled(test: &TestCluster) -> anyhow::Result<()> {
    let client = client_of(test);
    let password = "correct horse battery";
    let register = call(
        &client,
        None,
        Method::POST,
        1,
        "/v1/auth/register",
        Some(json!({ "email": "bob@example.org", "password": password, "name": "Bob" })),
        Some("reg-bob"),
    )
    .await?;
    expect("bob registers", &register, StatusCode::CREATED, None)?;
    let login = |secret: &'static str| {
        let client = client.clone();
        async move {
            call(
                &client,
                None,
                Method::POST,
                1,
                "/v1/auth/login",
                Some(json!({ "email": "bob@example.org", "password": secret })),
                None,
            )
            .await
        }
    };
    for _ in 0..3 {
        expect(
            "a wrong password",
            &login("wrong password!").await?,
            StatusCode::UNAUTHORIZED,
            Some("invalid_credentials"),
        )?;
    }
    let throttled = login(password).await?;
    expect(
        "a login after three failures",
        &throttled,
        StatusCode::TOO_MANY_REQUESTS,
        Some("login_throttled"),
    )?;
    ensure!(
        throttled.1["retry_after_secs"]
            .as_u64()
            .is_some_and(|s| (1..=2).contains(&s)),
        "{}",
        throttled.1
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    expect(
        "the right password once the wait is over",
        &login(password).await?,
        StatusCode::OK,
        None,
    )?;
    expect(
        "and again: the failures are forgiven",
        &login(password).await?,
        StatusCode::OK,
        None,
    )?;

    // One hash at a time per node: a burst gets some `too_busy`, each quickly.
    let url = format!("{}/v1/auth/login", test.cluster.http_url(1));
    let http = reqwest::Client::new();
    let burst = (0..8).map(|_| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let started = Instant::now();
            let response = http
                .post(&url)
                .json(&json!({ "email": "nobody@example.org", "password": "whatever it is" }))
                .send()
                .await?;
            let retry_after = response.headers().get("retry-after").cloned();
            let status = response.status();
            let body: Value = response.json().await?;
            anyhow::Ok((status, body, retry_after, started.elapsed()))
        }
    });
    let answers = futures::future::join_all(burst).await;
    let mut busy = 0;
    for answer in answers {
        let (status, body, retry_after, took) = answer?;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            ensure!(body["code"] == "too_busy" && retry_after.is_some(), "{body}");
            ensure!(
                took < Duration::from_secs(2),
                "a refusal waited {took:?}: refusals are not queued"
            );
            busy += 1;
        } else {
            ensure!(
                status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
                "{status} {body}"
            );
        }
    }
    ensure!(
        busy > 0,
        "eight logins at once on a node hashing one at a time: none refused"
    );
    Ok(())
}

/// Webhook URLs: https to a public host, nothing else.
async fn webhooks_reach_public_hosts_only(test: &TestCluster) -> anyhow::Result<()> {
    let client = client_of(test);
    let carol = call(
        &client,
        None,
        Method::POST,
        2,
        "/v1/auth/register",
        Some(json!({ "email": "carol@example.org", "password": "correct horse battery", "name": "Carol" })),
        Some("reg-carol"),
    )
    .await?;
    expect("carol registers", &carol, StatusCode::CREATED, None)?;
    let token = text(&carol.1, "access_token")?.to_owned();
    for url in [
        "http://hooks.example.org/boxoffice",
        "https://127.0.0.1:9/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://10.0.0.7/hook",
    ] {
        let set = call(
            &client,
            Some(&token),
            Method::PUT,
            2,
            "/v1/me/notifications",
            Some(json!({ "channel": "webhook", "webhook_url": url })),
            None,
        )
        .await?;
        expect(
            url,
            &set,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_request"),
        )?;
        ensure!(set.1["field"] == "webhook_url", "{}", set.1);
    }
    let fine = call(
        &client,
        Some(&token),
        Method::PUT,
        2,
        "/v1/me/notifications",
        Some(json!({ "channel": "webhook", "webhook_url": "https://hooks.example.org/boxoffice" })),
        None,
    )
    .await?;
    expect("a public https URL", &fine, StatusCode::OK, None)?;
    Ok(())
}

/// The event group's last log index on every node.
async fn log_indexes(test: &TestCluster) -> anyhow::Result<Vec<Option<u64>>> {
    let mut indexes = Vec::new();
    for node in test.cluster.node_ids() {
        indexes.push(
            test.client
                .group_health(node, FIRST_DATA_GROUP)
                .await?
                .last_log_index,
        );
    }
    Ok(indexes)
}

/// A 7 MiB hold is refused at the edge: no replica's log grows.
async fn oversized_writes_reach_no_log(test: &TestCluster) -> anyhow::Result<()> {
    let client = client_of(test);
    let staff = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    // Let the group settle (every replica caught up), so indexes only move by writes.
    let before = eventually("the group's logs agree", Duration::from_secs(20), async || {
        let indexes = log_indexes(test).await?;
        Ok((indexes.windows(2).all(|w| w[0] == w[1])).then_some(indexes))
    })
    .await?;
    // About 7 MiB: under the 8 MiB body limit, so only the shape check stops it.
    let seats: Vec<String> = (0..600_000).map(|i| format!("A-1-{i}")).collect();
    let body = json!({ "holder": "c1", "seats": seats });
    let size = body.to_string().len();
    ensure!(
        (7 << 20..8 << 20).contains(&size),
        "the body is {size} bytes, not about 7 MiB"
    );
    let refused = call(
        &client,
        staff,
        Method::POST,
        2,
        &format!("/v1/events/{EVENT}/holds"),
        Some(body),
        Some("huge"),
    )
    .await?;
    expect(
        "a 600k-seat hold",
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_request"),
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = log_indexes(test).await?;
    ensure!(
        before == after,
        "the oversized hold reached a log: {before:?} -> {after:?}"
    );
    Ok(())
}

/// Staff hold `seat` for `holder` and check out with `method` on node 1, then
/// a webhook claiming `claim`, signed with the demo's published secret, is
/// sent to node 1: the payment as started, and the webhook's answer.
async fn checkout_then_forge(
    client: &chaos_tests::ApiClient,
    holder: &str,
    seat: &str,
    method: &str,
    claim: &str,
) -> anyhow::Result<(Value, (StatusCode, Value))> {
    let staff = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    let holds = format!("/v1/events/{EVENT}/holds");
    let held = call(
        client,
        staff,
        Method::POST,
        1,
        &holds,
        Some(json!({ "holder": holder, "seats": [seat] })),
        Some(&format!("hold-{holder}")),
    )
    .await?;
    expect("the hold", &held, StatusCode::CREATED, None)?;
    let started = call(
        client,
        staff,
        Method::POST,
        1,
        &format!("{holds}/{}/checkout", held.1["hold_id"]),
        Some(json!({ "method": method, "holder": holder })),
        Some(&format!("pay-{holder}")),
    )
    .await?;
    expect("the checkout", &started, StatusCode::ACCEPTED, None)?;
    let reference = text(&started.1, "reference")?;
    let body = json!({ "reference": reference, "outcome": claim, "reason": "forged" });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let signature = api::payments::sign(
        node::launcher::LOCAL_WEBHOOK_SECRET.as_bytes(),
        now,
        body.to_string().as_bytes(),
    );
    let answered = client
        .raw_post(
            1,
            "/v1/payments/webhook",
            &body,
            Some(("boxoffice-signature", &signature)),
        )
        .await?;
    Ok((started.1, answered))
}

/// Forged webhooks: the provider's word decides.
async fn forged_webhooks_change_nothing_the_provider_did_not_say(test: &TestCluster) -> anyhow::Result<()> {
    let client = client_of(test);
    let staff = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    // Dave pays with a slow card (authorised after 3 s); a forged decline
    // arrives first at the node that asked the provider.
    let (started, answered) = checkout_then_forge(&client, "dave", "B-1-1", "tok_slow", "declined").await?;
    ensure!(answered.0.is_success(), "{answered:?}");
    ensure!(
        answered.1["status"] != "failed",
        "a forged decline was believed: {}",
        answered.1
    );
    let settled = shop::settled_payment(
        &client,
        staff,
        1,
        EVENT,
        &started["payment_id"],
        Duration::from_secs(30),
    )
    .await?;
    ensure!(settled["status"] == "succeeded", "{settled}");
    // The genuine webhook comes later; it changes nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let path = format!("/v1/events/{EVENT}/payments/{}", started["payment_id"]);
    let still = call(&client, staff, Method::GET, 2, &path, None, None).await?;
    ensure!(
        still.1["status"] == "succeeded" && !still.1["order_id"].is_null(),
        "{}",
        still.1
    );

    // Erin's card is declined; a forged authorisation buys nothing.
    let (started, answered) =
        checkout_then_forge(&client, "erin", "B-1-2", "tok_decline", "authorised").await?;
    ensure!(
        answered.1["status"] != "succeeded",
        "a forged authorisation bought seats: {}",
        answered.1
    );
    let settled = shop::settled_payment(
        &client,
        staff,
        1,
        EVENT,
        &started["payment_id"],
        Duration::from_secs(30),
    )
    .await?;
    ensure!(settled["status"] == "failed", "{settled}");
    let view = client
        .event_view_json(1, EVENT, chaos_tests::Consistency::Linearizable)
        .await?
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    let status = view["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|section| section["rows"].as_array().into_iter().flatten())
        .flat_map(|row| row["seats"].as_array().into_iter().flatten())
        .find(|seat| seat["id"] == "B-1-2")
        .map(|seat| seat["status"].clone())
        .context("no seat B-1-2")?;
    ensure!(status == "held", "B-1-2 is {status}, not sold");
    Ok(())
}

/// Idempotency keys per caller, headers on every answer, no caching of tokens.
async fn keys_headers_and_caching(test: &TestCluster) -> anyhow::Result<()> {
    let client = client_of(test);
    let holds = format!("/v1/events/{EVENT}/holds");
    let mut tokens = Vec::new();
    for name in ["frank", "grace"] {
        let registered = call(
            &client,
            None,
            Method::POST,
            1,
            "/v1/auth/register",
            Some(json!({ "email": format!("{name}@example.org"), "password": "correct horse battery", "name": name })),
            // The same key for both: registration keys are scoped by address.
            Some("same-key"),
        )
        .await?;
        expect("a registration", &registered, StatusCode::CREATED, None)?;
        ensure!(
            registered.1["account"]["email"] == format!("{name}@example.org"),
            "{}",
            registered.1
        );
        tokens.push(text(&registered.1, "access_token")?.to_owned());
    }
    let frank = call(
        &client,
        Some(&tokens[0]),
        Method::POST,
        1,
        &holds,
        Some(hold_body(&["A-2-1"])),
        Some("k-1"),
    )
    .await?;
    expect("frank's hold", &frank, StatusCode::CREATED, None)?;
    let grace = call(
        &client,
        Some(&tokens[1]),
        Method::POST,
        1,
        &holds,
        Some(hold_body(&["A-2-2"])),
        Some("k-1"),
    )
    .await?;
    expect(
        "grace's hold under frank's key",
        &grace,
        StatusCode::CREATED,
        None,
    )?;
    ensure!(
        grace.1["holder"] != frank.1["holder"] && grace.1["seats"][0] == "A-2-2",
        "{}",
        grace.1
    );
    let replay = call(
        &client,
        Some(&tokens[0]),
        Method::POST,
        1,
        &holds,
        Some(hold_body(&["A-2-1"])),
        Some("k-1"),
    )
    .await?;
    ensure!(
        replay.1["hold_id"] == frank.1["hold_id"],
        "frank's retry is his first answer: {}",
        replay.1
    );

    let url = format!("{}/v1/auth/login", test.cluster.http_url(1));
    let response = reqwest::Client::new()
        .post(&url)
        .json(&json!({ "email": "frank@example.org", "password": "correct horse battery" }))
        .send()
        .await?;
    ensure!(response.status() == StatusCode::OK, "{}", response.status());
    let headers = response.headers();
    ensure!(
        headers.get("cache-control").is_some_and(|v| v == "no-store"),
        "{headers:?}"
    );
    ensure!(
        headers
            .get("x-content-type-options")
            .is_some_and(|v| v == "nosniff"),
        "{headers:?}"
    );
    ensure!(headers.get("referrer-policy").is_some(), "{headers:?}");
    ensure!(
        headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("default-src 'none'")),
        "{headers:?}"
    );
    Ok(())
}

/// Slowloris, idle keep-alive and the connection cap on node TIGHT.
async fn connections_are_bounded(test: &TestCluster) -> anyhow::Result<()> {
    let addr = test.cluster.config(TIGHT).http_addr;
    // A head that never ends is cut after the header timeout.
    let mut slow = tokio::net::TcpStream::connect(addr).await?;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: boxoffice\r\nX-Slow: ")
        .await?;
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(TIGHT_HEADER_TIMEOUT * 4, slow.read(&mut buf)).await;
    let took = started.elapsed();
    ensure!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the half-sent head was not closed within {:?}: {read:?}",
        TIGHT_HEADER_TIMEOUT * 4
    );
    ensure!(
        took + Duration::from_millis(100) >= TIGHT_HEADER_TIMEOUT,
        "closed too early: {took:?}"
    );

    // An idle keep-alive connection is closed after the idle timeout, not before.
    let mut idle = tokio::net::TcpStream::connect(addr).await?;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: boxoffice\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    let head = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = idle.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "closed before answering");
            answer.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&answer).contains("\"node_id\"") {
                return Ok(());
            }
        }
    })
    .await;
    ensure!(
        matches!(head, Ok(Ok(()))),
        "no answer to a keep-alive request: {head:?}"
    );
    let answered = Instant::now();
    let closed = tokio::time::timeout(TIGHT_IDLE_TIMEOUT * 3, idle.read(&mut buf)).await;
    ensure!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection stayed open: {closed:?}"
    );
    ensure!(
        answered.elapsed() + Duration::from_millis(100) >= TIGHT_IDLE_TIMEOUT,
        "closed after {:?}, before the idle timeout",
        answered.elapsed()
    );

    // The cap: the connection after the sixth is answered 503 and closed.
    let mut open = Vec::new();
    for _ in 0..TIGHT_MAX_CONNECTIONS {
        open.push(tokio::net::TcpStream::connect(addr).await?);
    }
    // Let the server accept them before the one over the cap arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The server answers at once, before the client sends anything.
    let mut extra = tokio::net::TcpStream::connect(addr).await?;
    let mut refused = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), extra.read_to_end(&mut refused)).await;
    let refused = String::from_utf8_lossy(&refused);
    ensure!(
        refused.starts_with("HTTP/1.1 503") && refused.contains("too_many_connections"),
        "over the cap: {refused}"
    );
    drop(open);
    Ok(())
}

/// A node with the published secrets and no `allow_insecure_demo_secrets` does not start.
async fn weak_secrets_stop_a_node(test: &TestCluster) -> anyhow::Result<()> {
    let mut config = test.cluster.config(1).clone();
    config.allow_insecure_demo_secrets = false;
    let dir = tempfile::tempdir()?;
    config.data_dir = dir.path().join("data");
    let path = dir.path().join("node.toml");
    std::fs::write(&path, config.to_toml())?;
    let output = tokio::process::Command::new(node::launcher::find_binary()?)
        .arg("node")
        .arg("--config")
        .arg(&path)
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success(), "a node started with the demo secrets");
    ensure!(
        stderr.contains("refusing weak secrets") && stderr.contains("admin_token"),
        "{stderr}"
    );
    ensure!(
        !Path::new(&config.data_dir).join("CURRENT").exists(),
        "it opened its database first"
    );
    Ok(())
}
