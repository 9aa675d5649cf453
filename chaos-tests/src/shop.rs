//! Helpers for tests that use the product API as a customer, an organiser or
//! the payment provider would: calls with a given bearer token, status and
//! code checks, and a checkout that waits for its payment to settle.

use std::time::Duration;

use anyhow::{Context, ensure};
use region_config::NodeId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{ApiClient, eventually};

/// One call as `token` (`None`: anonymous), retried only while the cluster is unavailable.
pub async fn call(
    client: &ApiClient,
    token: Option<&str>,
    method: Method,
    node: NodeId,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> anyhow::Result<(StatusCode, Value)> {
    client
        .clone()
        .with_token(token)
        .send_until_definitive(method, node, false, path, body.as_ref(), key)
        .await
}

/// Checks an answer's status and, if given, its problem `code`.
pub fn expect(
    what: &str,
    got: &(StatusCode, Value),
    status: StatusCode,
    code: Option<&str>,
) -> anyhow::Result<()> {
    ensure!(
        got.0 == status,
        "{what}: expected {status}, got {} {}",
        got.0,
        got.1
    );
    if let Some(code) = code {
        ensure!(
            got.1["code"] == code,
            "{what}: expected code {code}, got {}",
            got.1
        );
    }
    Ok(())
}

/// A string field of a JSON answer.
pub fn text<'a>(value: &'a Value, field: &str) -> anyhow::Result<&'a str> {
    value[field]
        .as_str()
        .with_context(|| format!("no string {field} in {value}"))
}

/// Polls a payment until its status is no longer `pending`; returns it.
pub async fn settled_payment(
    client: &ApiClient,
    token: Option<&str>,
    node: NodeId,
    event_id: u64,
    payment_id: &Value,
    within: Duration,
) -> anyhow::Result<Value> {
    let path = format!("/v1/events/{event_id}/payments/{payment_id}");
    eventually("the payment settles", within, async || {
        let got = call(client, token, Method::GET, node, &path, None, None).await?;
        ensure!(got.0 == StatusCode::OK, "GET {path}: {} {}", got.0, got.1);
        Ok((got.1["status"] != "pending").then_some(got.1))
    })
    .await
}

/// Checks out a hold with `method` under `key` and waits for the payment to settle.
pub async fn checkout(
    client: &ApiClient,
    token: Option<&str>,
    node: NodeId,
    event_id: u64,
    hold_id: &Value,
    method: &str,
    key: &str,
) -> anyhow::Result<Value> {
    let path = format!("/v1/events/{event_id}/holds/{hold_id}/checkout");
    let started = call(
        client,
        token,
        Method::POST,
        node,
        &path,
        Some(json!({ "method": method })),
        Some(key),
    )
    .await?;
    expect("a checkout", &started, StatusCode::ACCEPTED, None)?;
    ensure!(
        started.1["status"] == "pending",
        "a new payment is pending: {}",
        started.1
    );
    settled_payment(
        client,
        token,
        node,
        event_id,
        &started.1["payment_id"],
        Duration::from_secs(30),
    )
    .await
}

/// The guest codes a node wrote to its log, oldest first (nodes without an
/// SMTP relay send e-mail there: "Your boxoffice code: 123456").
pub fn logged_codes(log: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split("Your boxoffice code: ").nth(1))
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
        .collect())
}

/// Asks node `node` to send `email` a guest code; the challenge id.
pub async fn request_guest_code(client: &ApiClient, node: NodeId, email: &str) -> anyhow::Result<String> {
    let started = call(
        client,
        None,
        Method::POST,
        node,
        "/v1/auth/guest",
        Some(json!({ "email": email })),
        None,
    )
    .await?;
    expect("a guest asks for a code", &started, StatusCode::ACCEPTED, None)?;
    Ok(text(&started.1, "challenge_id")?.to_owned())
}

/// A guest's way in through node `node`, whose log (`log`) receives its
/// e-mail: asks for a code, reads the new one from the log, and answers the
/// verification's body (`access_token`, `customer_id`).
pub async fn verified_guest(
    client: &ApiClient,
    node: NodeId,
    email: &str,
    log: &std::path::Path,
) -> anyhow::Result<Value> {
    let before = logged_codes(log)?.len();
    let challenge = request_guest_code(client, node, email).await?;
    let code = eventually(
        "the guest code reaches the log",
        Duration::from_secs(10),
        async || Ok(logged_codes(log)?.get(before).cloned()),
    )
    .await?;
    let verified = call(
        client,
        None,
        Method::POST,
        node,
        "/v1/auth/guest/verify",
        Some(json!({ "challenge_id": challenge, "code": code })),
        None,
    )
    .await?;
    expect("the guest's code", &verified, StatusCode::OK, None)?;
    Ok(verified.1)
}
