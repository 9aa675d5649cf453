//! The payment-provider boundary, a simulated card processor, and the
//! checkout, payment, webhook and event-cancellation routes.
//!
//! The saga's rules are the state machine's (`booking::payments`); this
//! module moves messages between it and the provider:
//!
//! - checkout records a pending payment through Raft, then asks the provider
//!   to authorise it. The provider answers later with a webhook signed with
//!   HMAC-SHA256 (`Boxoffice-Signature: t={unix secs},v1={hex}` over
//!   `"{t}.{body}"`, five minutes of tolerance), which this node verifies and
//!   records as `SettlePayment` under a request id derived from the reference,
//!   so a repeated webhook is one settlement.
//! - a node that dies between recording and asking loses nothing: the group
//!   leader's worker (`node::payments`) asks again for payments pending too
//!   long, and performs refunds. Providers key everything by the payment's
//!   reference, so asking twice charges once.
//!
//! The simulated provider behaves like a real processor for tests and the
//! demo: asynchronous authorisation after a configurable latency, a decline
//! rate, webhooks retried until delivered, idempotent by reference. Its
//! decision is a pure function of the reference and the method token, so the
//! provider instance of another node (after a failover) decides the same.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use booking::events::payments::{parse_reference, reference};
use booking::{
    Command, EventAnswer, EventCommand, EventId, EventQuery, EventSuccess, HoldId, Money, PaymentOutcome,
    PaymentView, RequestId, Success,
};
use booking::{Query, QueryResult};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::{ApiPath, ApiResult, AppState, OptionalJson, Problem, dto, event_id, parse_id, request_id};

/// How far a webhook's timestamp may be from this node's clock.
const SIGNATURE_TOLERANCE_SECS: u64 = 300;
/// The header a provider signs webhooks with.
pub const SIGNATURE_HEADER: &str = "boxoffice-signature";

pub type ProviderFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ProviderError>> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment provider: {0}")]
pub struct ProviderError(pub String);

/// What a provider is asked to authorise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthoriseRequest {
    pub reference: String,
    pub amount: Money,
    /// The customer's payment method token.
    pub method: String,
    /// Where the provider sends its signed answer.
    pub callback_url: String,
}

/// What a provider says about a charge when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeStatus {
    /// The provider has no charge under this reference (never asked, or
    /// asked of another instance).
    NotFound,
    /// Asked, not decided yet.
    Pending,
    Authorised,
    Declined {
        reason: String,
    },
}

pub type StatusFuture<'a> = Pin<Box<dyn Future<Output = Result<ChargeStatus, ProviderError>> + Send + 'a>>;

/// A card processor. Every call is idempotent by reference.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Starts an authorisation; the outcome arrives later as a webhook.
    fn authorise(&self, request: AuthoriseRequest) -> ProviderFuture<'_>;
    /// Returns the money of an authorised payment.
    fn refund(&self, reference: &str, amount: Money) -> ProviderFuture<'_>;
    /// The provider's own record of a charge: what a webhook claims is only
    /// believed once the provider confirms it here.
    fn status(&self, reference: &str) -> StatusFuture<'_>;
}

/// The body of a provider's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    pub reference: String,
    /// `authorised` or `declined`.
    pub outcome: String,
    pub reason: Option<String>,
}

/// `t={unix secs},v1={hex HMAC-SHA256 of "{t}.{body}"}`.
pub fn sign(secret: &[u8], unix_secs: u64, body: &[u8]) -> String {
    let tag = signer(secret, unix_secs, body).finalize().into_bytes();
    format!("t={unix_secs},v1={}", hex::encode(tag))
}

/// Checks a webhook signature header against the body.
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8], now_secs: u64) -> Result<(), Problem> {
    let bad = |why: &str| Problem::unauthorized("invalid_signature", format!("webhook signature: {why}"));
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(bad("expected t=...,v1=..."));
    };
    if now_secs.abs_diff(t) > SIGNATURE_TOLERANCE_SECS {
        return Err(bad("the timestamp is too far from now"));
    }
    let tag = hex::decode(v1).map_err(|_| bad("v1 is not hexadecimal"))?;
    // `verify_slice` compares in constant time.
    signer(secret, t, body)
        .verify_slice(&tag)
        .map_err(|_| bad("the signature does not match"))
}

/// HMAC-SHA256 (RFC 2104) fed with `"{t}.{body}"`.
fn signer(secret: &[u8], unix_secs: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{unix_secs}.").as_bytes());
    mac.update(body);
    mac
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ----- The simulated processor ---------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimulatedCharge {
    pub reference: String,
    pub amount: Money,
    pub authorised: bool,
    pub decline_reason: Option<String>,
    pub refunded: bool,
    pub webhooks_sent: u32,
}

/// A card processor in the node's process (see the module doc).
pub struct SimulatedProvider {
    secret: Vec<u8>,
    decline_rate_pct: u8,
    latency: Duration,
    http: reqwest::Client,
    ledger: Arc<Mutex<HashMap<String, SimulatedCharge>>>,
}

impl std::fmt::Debug for SimulatedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedProvider")
            .field("decline_rate_pct", &self.decline_rate_pct)
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

impl SimulatedProvider {
    pub fn new(webhook_secret: &[u8], decline_rate_pct: u8, latency: Duration) -> Self {
        transport::tls::install_crypto_provider();
        SimulatedProvider {
            secret: webhook_secret.to_vec(),
            decline_rate_pct: decline_rate_pct.min(100),
            latency,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client builds"),
            ledger: Arc::default(),
        }
    }

    /// The decision for a payment: `tok_decline` always declines, `tok_approve`
    /// always succeeds (and `tok_slow` is slow), anything else declines at the configured rate, by a
    /// hash of the reference (the same on every node).
    pub fn decide(&self, reference: &str, method: &str) -> Result<(), String> {
        match method {
            "tok_decline" => Err("card_declined".to_owned()),
            "tok_approve" => Ok(()),
            _ => {
                let digest = Sha256::digest(format!("{reference}/{method}").as_bytes());
                let roll = u16::from_be_bytes([digest[0], digest[1]]) % 100;
                if roll < u16::from(self.decline_rate_pct) {
                    Err("insufficient_funds".to_owned())
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Every charge this instance made, by reference.
    pub fn ledger(&self) -> Vec<SimulatedCharge> {
        let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let mut charges: Vec<SimulatedCharge> = ledger.values().cloned().collect();
        charges.sort_by(|a, b| a.reference.cmp(&b.reference));
        charges
    }
}

impl PaymentProvider for SimulatedProvider {
    fn authorise(&self, request: AuthoriseRequest) -> ProviderFuture<'_> {
        Box::pin(async move {
            let decision = self.decide(&request.reference, &request.method);
            {
                let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
                ledger
                    .entry(request.reference.clone())
                    .or_insert_with(|| SimulatedCharge {
                        reference: request.reference.clone(),
                        amount: request.amount,
                        authorised: decision.is_ok(),
                        decline_reason: decision.clone().err(),
                        refunded: false,
                        webhooks_sent: 0,
                    });
            }
            let body = WebhookBody {
                reference: request.reference.clone(),
                outcome: if decision.is_ok() {
                    "authorised"
                } else {
                    "declined"
                }
                .to_owned(),
                reason: decision.err(),
            };
            let body = serde_json::to_vec(&body).map_err(|e| ProviderError(e.to_string()))?;
            // `tok_slow` answers 3 s late: a customer's bank taking its time.
            let latency = match request.method.as_str() {
                "tok_slow" => self.latency + Duration::from_secs(3),
                _ => self.latency,
            };
            let (http, secret, ledger) = (self.http.clone(), self.secret.clone(), self.ledger.clone());
            // The answer comes later, like a real processor's; delivery is
            // retried with backoff until the callback takes it (bounded).
            tokio::spawn(async move {
                tokio::time::sleep(latency).await;
                let mut pause = Duration::from_millis(200);
                for _ in 0..8 {
                    let signature = sign(&secret, unix_now(), &body);
                    let sent = http
                        .post(&request.callback_url)
                        .header("content-type", "application/json")
                        .header(SIGNATURE_HEADER, signature)
                        .body(body.clone())
                        .send()
                        .await;
                    if let Some(charge) = ledger
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&request.reference)
                    {
                        charge.webhooks_sent += 1;
                    }
                    match sent {
                        Ok(response) if response.status().is_success() => return,
                        Ok(response) => {
                            tracing::warn!(reference = %request.reference, status = %response.status(), "webhook refused")
                        }
                        Err(e) => {
                            tracing::warn!(reference = %request.reference, error = %e, "webhook not delivered")
                        }
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            });
            Ok(())
        })
    }

    fn status(&self, reference: &str) -> StatusFuture<'_> {
        let reference = reference.to_owned();
        Box::pin(async move {
            let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
            Ok(match ledger.get(&reference) {
                None => ChargeStatus::NotFound,
                Some(charge) if charge.authorised => ChargeStatus::Authorised,
                Some(charge) => ChargeStatus::Declined {
                    reason: charge
                        .decline_reason
                        .clone()
                        .unwrap_or_else(|| "declined".to_owned()),
                },
            })
        })
    }

    fn refund(&self, reference: &str, amount: Money) -> ProviderFuture<'_> {
        let reference = reference.to_owned();
        Box::pin(async move {
            let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
            let charge = ledger
                .entry(reference.clone())
                .or_insert_with(|| SimulatedCharge {
                    // A refund asked of another node's instance: the charge was made there.
                    reference: reference.clone(),
                    amount,
                    authorised: true,
                    decline_reason: None,
                    refunded: false,
                    webhooks_sent: 0,
                });
            charge.refunded = true;
            Ok(())
        })
    }
}

/// The node's payment setup: the provider and where it calls back.
#[derive(Clone)]
pub struct Payments {
    pub provider: Arc<dyn PaymentProvider>,
    pub webhook_secret: Arc<[u8]>,
    pub callback_url: String,
    /// The simulated provider, when that is the provider (for its ledger).
    pub simulated: Option<Arc<SimulatedProvider>>,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments")
            .field("callback_url", &self.callback_url)
            .finish_non_exhaustive()
    }
}

impl Payments {
    /// Asks the provider to authorise a recorded payment.
    pub async fn authorise(&self, payment: &PaymentView) -> Result<(), ProviderError> {
        self.provider
            .authorise(AuthoriseRequest {
                reference: payment.reference.clone(),
                amount: payment.amount,
                method: payment.method.clone(),
                callback_url: self.callback_url.clone(),
            })
            .await
    }
}

fn payments(state: &AppState) -> Result<&Payments, Problem> {
    state.payments.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "payments_disabled",
            "this node has no [payments] configured, so checkout is off; an operator adds the section to every node's config",
        )
    })
}

// ----- Routes ------------------------------------------------------------------

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckoutBody {
    /// The payment method token (default `tok_visa`).
    method: Option<String>,
    /// Staff name the customer they act for.
    holder: Option<String>,
}

/// `POST /v1/events/{e}/holds/{h}/checkout`: pay for a hold. Needs an
/// `Idempotency-Key`: a checkout retried without one could start a second
/// payment attempt after the first failed.
pub(crate) async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    crate::limits::ClientIp(ip): crate::limits::ClientIp,
    ApiPath((raw_event, raw_hold)): ApiPath<(String, String)>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<CheckoutBody>,
) -> ApiResult {
    let payments = payments(&state)?;
    let event_id = event_id(&raw_event)?;
    let hold_id = HoldId(parse_id("hold_id", &raw_hold)?);
    let body = body.unwrap_or_default();
    let holder = caller.holder(body.holder.as_deref())?;
    state.limits.check(crate::limits::Action::Checkout, &caller, ip)?;
    if !headers.contains_key("idempotency-key") {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "checkout needs an Idempotency-Key header",
        ));
    }
    let method = body.method.unwrap_or_else(|| "tok_visa".to_owned());
    let command = Command::Event(
        event_id,
        EventCommand::StartPayment {
            hold_id,
            holder,
            method,
        },
    );
    let id = request_id(&headers, &caller)?;
    let payment = match state.router.submit(id, command).await?? {
        Success::Event(EventSuccess::PaymentStarted(view))
        | Success::Event(EventSuccess::PaymentUpdated(view)) => view,
        other => return Err(Problem::unexpected(&other)),
    };
    // A failure here is not the client's: the payment is recorded, and the
    // leader's worker asks the provider again.
    if let Err(e) = payments.authorise(&payment).await {
        tracing::warn!(reference = %payment.reference, error = %e, "authorisation not requested; the worker retries");
    }
    let zone = crate::venue_zone(&state, payment.event_id);
    let payment = crate::in_zone(dto::Payment::from(payment), zone.as_deref());
    Ok((StatusCode::ACCEPTED, Json(payment)).into_response())
}

pub(crate) async fn get_payment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_payment)): ApiPath<(String, String)>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let payment_id = parse_id("payment_id", &raw_payment)?;
    if caller == Caller::Anonymous {
        return Err(crate::auth::login_required());
    }
    match state
        .router
        .query(Query::Event(event_id, EventQuery::Payment(payment_id)))
        .await?
    {
        QueryResult::Event(EventAnswer::Payment(Some(view))) if caller.may_see(&view.holder) => {
            let zone = crate::venue_zone(&state, event_id);
            Ok(Json(crate::in_zone(dto::Payment::from(view), zone.as_deref())).into_response())
        }
        _ => Err(Problem::not_found("unknown_payment", "no such payment")),
    }
}

/// `POST /v1/payments/webhook`: the provider's signed answer.
///
/// A valid signature proves the message came from someone who holds the
/// webhook secret, not that it is the provider's latest word: the answer is
/// settled only as the provider confirms it when asked (`status`). A claim
/// the provider contradicts is logged and settled with the provider's answer;
/// one the provider cannot confirm yet changes nothing (the leader's payment
/// worker asks again until the provider knows).
pub(crate) async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let payments = payments(&state)?;
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Problem::unauthorized("invalid_signature", "no Boxoffice-Signature header"))?;
    verify_signature(&payments.webhook_secret, signature, &body, unix_now())?;
    let hook: WebhookBody =
        serde_json::from_slice(&body).map_err(|e| Problem::malformed(format!("webhook body: {e}")))?;
    let (event_id, payment_id) = parse_reference(&hook.reference)
        .ok_or_else(|| Problem::invalid_field("reference", "not a boxoffice payment reference"))?;
    if !matches!(hook.outcome.as_str(), "authorised" | "declined") {
        return Err(Problem::invalid_field(
            "outcome",
            format!("must be authorised or declined, not {:?}", hook.outcome),
        ));
    }
    let confirmed = payments.provider.status(&hook.reference).await.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider_unavailable",
            e.to_string(),
        )
    })?;
    let outcome = match confirmed {
        ChargeStatus::Authorised => PaymentOutcome::Authorised,
        ChargeStatus::Declined { reason } => PaymentOutcome::Declined { reason },
        ChargeStatus::NotFound | ChargeStatus::Pending => {
            tracing::warn!(target: "boxoffice::security", reference = %hook.reference, claimed = %hook.outcome,
                "webhook not confirmed by the provider; the payment stays as it is");
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "reference": hook.reference, "settled": false })),
            )
                .into_response());
        }
    };
    let claimed_authorised = hook.outcome == "authorised";
    if claimed_authorised != matches!(outcome, PaymentOutcome::Authorised) {
        tracing::warn!(target: "boxoffice::security", reference = %hook.reference, claimed = %hook.outcome,
            "webhook contradicted by the provider; settling with the provider's answer");
    }
    match settle(&state, event_id, payment_id, outcome).await?? {
        Success::Event(EventSuccess::PaymentUpdated(view)) => {
            Ok(Json(dto::Payment::from(view)).into_response())
        }
        other => Err(Problem::unexpected(&other)),
    }
}

/// Records the provider's (confirmed) answer for a payment. One settlement
/// per payment and answer, however often it is reported: an authorisation
/// that follows a decline is a new answer, not a reused key.
pub async fn settle(
    state: &AppState,
    event_id: EventId,
    payment_id: u64,
    outcome: PaymentOutcome,
) -> Result<booking::Response, router::RouteError> {
    settle_with(&state.router, event_id, payment_id, outcome).await
}

/// [`settle`] for callers that hold only the router (the payment worker).
pub async fn settle_with(
    router: &router::Router,
    event_id: EventId,
    payment_id: u64,
    outcome: PaymentOutcome,
) -> Result<booking::Response, router::RouteError> {
    let answer = match &outcome {
        PaymentOutcome::Authorised => "authorised",
        PaymentOutcome::Declined { .. } => "declined",
    };
    let id = RequestId::new(&format!("settle/{}/{answer}", reference(event_id, payment_id)))
        .expect("a payment reference makes a valid request id");
    let command = Command::Event(event_id, EventCommand::SettlePayment { payment_id, outcome });
    router.submit(id, command).await
}

/// `POST /v1/events/{e}/cancel` (staff): cancel the event, refund every order.
pub(crate) async fn cancel_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult {
    caller.require_staff()?;
    let command = Command::Event(event_id(&raw_event)?, EventCommand::Cancel);
    match state
        .router
        .submit(request_id(&headers, &caller)?, command)
        .await??
    {
        Success::Event(EventSuccess::Cancelled {
            event_id,
            orders_cancelled,
            refunds,
        }) => {
            // The listing follows; a failure here leaves it one write behind,
            // and repeating the cancellation (same key) writes it again.
            crate::catalog::set_listing_status(&state, event_id, booking::ListingStatus::Cancelled).await?;
            Ok(Json(json!({
                "event_id": event_id,
                "orders_cancelled": orders_cancelled,
                "refunds": refunds,
            }))
            .into_response())
        }
        other => Err(Problem::unexpected(&other)),
    }
}

/// `GET /v1/admin/payments/ledger` (operators): the simulated provider's charges on this node.
pub(crate) async fn ledger(State(state): State<AppState>, caller: Caller) -> ApiResult {
    caller.require_operator()?;
    let simulated = payments(&state)?
        .simulated
        .as_ref()
        .ok_or_else(|| Problem::not_found("not_found", "this node's provider is not the simulated one"))?;
    Ok(Json(json!({ "charges": simulated.ledger() })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The webhook signer is that MAC over "{t}.{body}".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"7.{}");
        assert_eq!(
            sign(b"Jefe", 7, b"{}"),
            format!("t=7,v1={}", hex::encode(mac.finalize().into_bytes()))
        );
    }

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let header = sign(b"secret", 1_000, b"{\"a\":1}");
        assert!(verify_signature(b"secret", &header, b"{\"a\":1}", 1_010).is_ok());
        for (secret, body, now) in [
            (&b"other"[..], &b"{\"a\":1}"[..], 1_010),
            (&b"secret"[..], &b"{\"a\":2}"[..], 1_010),
            (&b"secret"[..], &b"{\"a\":1}"[..], 2_000),
        ] {
            assert_eq!(
                verify_signature(secret, &header, body, now).unwrap_err().code,
                "invalid_signature"
            );
        }
        assert!(verify_signature(b"secret", "garbage", b"", 1_000).is_err());
    }

    #[test]
    fn decisions_are_the_same_on_every_instance() {
        let a = SimulatedProvider::new(b"s", 30, Duration::ZERO);
        let b = SimulatedProvider::new(b"s", 30, Duration::ZERO);
        let declined = (0..200)
            .filter(|i| {
                let reference = format!("bx.1.{i}");
                assert_eq!(a.decide(&reference, "tok_visa"), b.decide(&reference, "tok_visa"));
                a.decide(&reference, "tok_visa").is_err()
            })
            .count();
        assert!((30..=90).contains(&declined), "{declined} of 200 declined at 30%");
        assert!(a.decide("bx.1.1", "tok_decline").is_err());
        assert!(a.decide("bx.1.1", "tok_approve").is_ok());
    }
}
