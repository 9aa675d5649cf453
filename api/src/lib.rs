//! The client-facing HTTP API of one node (see `docs/http-api.md`).
//!
//! Handlers parse and validate input, turn it into a booking [`Command`] or a
//! [`Query`], hand it to the [`Router`], and render the answer. A rejected
//! request never reaches the state machine unless the rejection depends on
//! state, and then the state machine rejects it without effect.
//!
//! This crate does not decide where a request runs (the router does) and
//! does not know how anything is stored.

mod accounts;
pub mod auth;
mod catalog;
mod extract;
pub mod limits;
mod live;
pub mod logins;
mod ops;
pub mod outbound;
pub mod payments;
mod problem;
pub mod request_ids;
pub mod serve;
pub mod tickets;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{MethodRouter, get, post, put};
use axum::{Json, Router as HttpRouter};
use booking::{
    AccountAnswer, AccountSuccess, CatalogAnswer, CatalogSuccess, Command, CustomerId, EventAnswer,
    EventCommand, EventId, EventQuery, EventSpec, EventSuccess, HoldId, MapAnswer, MapSuccess, OrderId,
    Rejection, RequestId, Response, Selection, Success, TicketCode,
};
use booking::{Query, QueryResult};
use router::Router;
use serde::Deserialize;
use serde_json::json;

pub use auth::{AuthKeys, Caller};
pub use extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
pub use problem::Problem;
pub use tickets::TicketSigner;

/// The largest request body accepted: a stadium's seat map fits, a runaway upload does not.
pub const MAX_BODY_BYTES: usize = 8 << 20;

#[derive(Clone)]
pub struct AppState {
    pub router: Arc<Router>,
    pub wal_stats: Arc<raft_store::WalStats>,
    /// The bearer token of `/v1/admin/*`; `None` disables the admin API.
    pub admin_token: Option<Arc<str>>,
    /// Access-token keys; `None` turns accounts off.
    pub auth: Option<Arc<AuthKeys>>,
    /// Signs ticket QR payloads; `None` turns signed tickets off.
    pub tickets: Option<Arc<TicketSigner>>,
    /// The payment provider; `None` turns checkout off.
    pub payments: Option<payments::Payments>,
    /// Rate limits on holds and checkouts.
    pub limits: Arc<limits::RateLimits>,
    /// Failed-login backoff and the password-hashing cap.
    pub logins: Arc<logins::Logins>,
    /// Customer webhooks may use plain http and private addresses (demo and
    /// tests only; see `outbound`).
    pub allow_private_webhooks: bool,
    /// Sends guests their one-time codes; `None` turns guest checkout off.
    pub codes: Option<Arc<dyn CodeSender>>,
    /// The local replicas' availability changes, for live seat maps; `None`
    /// turns `/live` off.
    pub feed: Option<raft_store::FeedHub>,
}

/// Sends a guest's one-time code to their address (the node's e-mail
/// channel: SMTP, or the log when no relay is configured).
pub trait CodeSender: Send + Sync + 'static {
    fn send_code<'a>(
        &'a self,
        email: &'a str,
        code: &'a str,
        valid_for: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Who may call a route (documented in the OpenAPI document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A logged-in customer, guest or staff member.
    Customer,
    /// Organisers (`admin`) and operators.
    Staff,
    /// Operators (an operator account or the `admin_token`).
    Operator,
    /// The `admin_token` only (the cluster admin API).
    AdminToken,
    /// The payment provider (an HMAC-signed webhook).
    Provider,
}

/// One route: how it is served and how it is documented.
pub struct Endpoint {
    pub method: axum::http::Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// The status of a success.
    pub ok: u16,
    handler: MethodRouter<AppState>,
}

/// Every route of the API, in the order of `docs/http-api.md`. The router and
/// `/openapi.json` are both built from this table, so neither can list a
/// route the other lacks.
pub fn endpoints() -> Vec<Endpoint> {
    use Access::*;
    use axum::http::Method;
    let e = |method: Method, path, access, ok, summary, handler| Endpoint {
        method,
        path,
        summary,
        access,
        ok,
        handler,
    };
    vec![
        e(
            Method::GET,
            "/health",
            Public,
            200,
            "This node's Raft state per group",
            get(ops::health),
        ),
        e(
            Method::GET,
            "/metrics",
            Public,
            200,
            "Prometheus metrics",
            get(ops::metrics),
        ),
        e(
            Method::GET,
            "/openapi.json",
            Public,
            200,
            "This document",
            get(openapi_json),
        ),
        e(
            Method::GET,
            "/v1/cluster",
            Public,
            200,
            "The cluster map and this node's replicas",
            get(ops::cluster),
        ),
        e(
            Method::GET,
            "/v1/admin/cluster",
            AdminToken,
            200,
            "The cluster map (admin)",
            get(ops::admin_cluster),
        ),
        e(
            Method::POST,
            "/v1/admin/groups",
            AdminToken,
            201,
            "Create a data group",
            post(ops::create_group),
        ),
        e(
            Method::POST,
            "/v1/admin/groups/{group_id}/transfer-leader",
            AdminToken,
            200,
            "Hand a group's leadership to another node",
            post(ops::transfer_leader),
        ),
        e(
            Method::POST,
            "/v1/admin/events/{event_id}/placement",
            AdminToken,
            200,
            "Place an event on a group",
            post(ops::place_event),
        ),
        e(
            Method::POST,
            "/v1/admin/nodes",
            AdminToken,
            200,
            "Add a node",
            post(ops::add_node),
        ),
        e(
            Method::POST,
            "/v1/admin/nodes/{node_id}/remove",
            AdminToken,
            200,
            "Remove a node",
            post(ops::remove_node),
        ),
        e(
            Method::POST,
            "/v1/admin/users",
            Operator,
            201,
            "Create an account with a role",
            post(accounts::create_user),
        ),
        e(
            Method::POST,
            "/v1/admin/users/{customer_id}/role",
            Operator,
            200,
            "Change an account's role",
            post(accounts::set_role),
        ),
        e(
            Method::GET,
            "/v1/admin/payments/ledger",
            Operator,
            200,
            "The simulated provider's charges on this node",
            get(payments::ledger),
        ),
        e(
            Method::POST,
            "/v1/auth/register",
            Public,
            201,
            "Register and log in",
            post(accounts::register),
        ),
        e(
            Method::POST,
            "/v1/auth/login",
            Public,
            200,
            "Log in",
            post(accounts::login),
        ),
        e(
            Method::POST,
            "/v1/auth/refresh",
            Public,
            200,
            "Rotate a refresh token",
            post(accounts::refresh),
        ),
        e(
            Method::POST,
            "/v1/auth/logout",
            Public,
            204,
            "End a session",
            post(accounts::logout),
        ),
        e(
            Method::POST,
            "/v1/auth/guest",
            Public,
            202,
            "Send a guest a one-time code by e-mail",
            post(accounts::guest),
        ),
        e(
            Method::POST,
            "/v1/auth/guest/verify",
            Public,
            200,
            "A guest token for the code from the e-mail",
            post(accounts::guest_verify),
        ),
        e(
            Method::GET,
            "/v1/me",
            Customer,
            200,
            "The caller's account",
            get(accounts::me),
        ),
        e(
            Method::GET,
            "/v1/tickets/public-key",
            Public,
            200,
            "The Ed25519 key that signs tickets",
            get(ticket_public_key),
        ),
        e(
            Method::POST,
            "/v1/check-in",
            Staff,
            200,
            "Admit a scanned ticket",
            post(check_in_scanned),
        ),
        e(
            Method::POST,
            "/v1/events",
            Staff,
            201,
            "Create an event",
            post(create_event),
        ),
        e(
            Method::GET,
            "/v1/events",
            Public,
            200,
            "Search event listings",
            get(catalog::search),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/publish",
            Staff,
            200,
            "Put a draft event on sale",
            post(catalog::publish),
        ),
        e(
            Method::POST,
            "/v1/venues",
            Staff,
            201,
            "Add a venue",
            post(catalog::create_venue),
        ),
        e(
            Method::GET,
            "/v1/venues",
            Public,
            200,
            "List venues",
            get(catalog::list_venues),
        ),
        e(
            Method::GET,
            "/v1/venues/{venue_id}",
            Public,
            200,
            "A venue",
            get(catalog::get_venue),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}/listing",
            Public,
            200,
            "An event's listing",
            get(catalog::get_listing),
        ),
        e(
            Method::GET,
            "/v1/me/orders",
            Customer,
            200,
            "The caller's orders, newest first",
            get(catalog::my_orders),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}",
            Public,
            200,
            "An event's seat map and counts",
            get(get_event),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/cancel",
            Staff,
            200,
            "Cancel an event and refund it",
            post(payments::cancel_event),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}/live",
            Public,
            200,
            "Live seat availability (text/event-stream; resumes with Last-Event-ID)",
            get(live::live),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/waitlist",
            Customer,
            201,
            "Join a sold-out event's waitlist",
            post(live::join_waitlist),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}/waitlist",
            Customer,
            200,
            "The caller's place on the waitlist",
            get(live::get_waitlist),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/waitlist/leave",
            Customer,
            200,
            "Leave the waitlist",
            post(live::leave_waitlist),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/reminders",
            Customer,
            201,
            "Be reminded before the event starts",
            post(live::subscribe_reminder),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/reminders/cancel",
            Customer,
            200,
            "Stop the reminder",
            post(live::unsubscribe_reminder),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}/notices",
            Customer,
            200,
            "The caller's notifications about the event and their delivery",
            get(live::notices),
        ),
        e(
            Method::PUT,
            "/v1/me/notifications",
            Customer,
            200,
            "Choose how notifications reach you (email, webhook, log)",
            put(live::set_notifications),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds",
            Customer,
            201,
            "Hold seats or places",
            post(create_hold),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}/holds/{hold_id}",
            Customer,
            200,
            "A hold with its countdown",
            get(get_hold),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds/{hold_id}/extend",
            Customer,
            200,
            "Extend a hold once",
            hold_route(|event_id, hold_id, holder| {
                Command::Event(event_id, EventCommand::ExtendHold { hold_id, holder })
            }),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds/{hold_id}/release",
            Customer,
            200,
            "Release a hold",
            hold_route(|event_id, hold_id, holder| {
                Command::Event(event_id, EventCommand::ReleaseHold { hold_id, holder })
            }),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds/{hold_id}/confirm",
            Customer,
            201,
            "Confirm a free hold, or any hold as staff",
            post(confirm_hold),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds/{hold_id}/checkout",
            Customer,
            202,
            "Pay for a hold",
            post(payments::checkout),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}/payments/{payment_id}",
            Customer,
            200,
            "A payment and its history",
            get(payments::get_payment),
        ),
        e(
            Method::POST,
            "/v1/payments/webhook",
            Provider,
            200,
            "The provider's signed answer",
            post(payments::webhook),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}/orders/{order_id}",
            Customer,
            200,
            "An order",
            get(get_order),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/orders/{order_id}/cancel",
            Customer,
            200,
            "Cancel an order (refunded if paid)",
            post(cancel_order),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}/tickets/{code}",
            Customer,
            200,
            "A ticket with its signed QR payload",
            get(get_ticket),
        ),
        e(
            Method::GET,
            "/v1/events/{event_id}/tickets/{code}/qr.svg",
            Customer,
            200,
            "A ticket's QR code as SVG",
            get(get_ticket_qr),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/tickets/{code}/check-in",
            Staff,
            200,
            "Admit a ticket by code",
            post(check_in),
        ),
    ]
}

pub fn app(state: AppState) -> HttpRouter {
    let mut router = HttpRouter::new();
    for endpoint in endpoints() {
        router = router.route(endpoint.path, endpoint.handler);
    }
    router
        .fallback(|| async { Problem::not_found("not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(request_ids::middleware))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers every answer carries: no MIME sniffing, no referrer leaks, no
/// framing, and a content security policy that allows nothing (the API serves
/// JSON, SVG and event streams, none of which needs a script or a style).
/// Answers that carry tokens or personal data are never cached.
async fn security_headers(request: axum::extract::Request, next: axum::middleware::Next) -> HttpResponse {
    use axum::http::HeaderValue;
    use axum::http::header;
    let private = {
        let path = request.uri().path();
        path.starts_with("/v1/auth/") || path.starts_with("/v1/me")
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    );
    if private {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    response
}

/// The OpenAPI 3.1 document of `endpoints()`.
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for endpoint in endpoints() {
        let parameters: Vec<serde_json::Value> = endpoint
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let security = match endpoint.access {
            Access::Public | Access::Provider => json!([]),
            _ => json!([{ "bearer": [] }]),
        };
        let mut operation = json!({
            "summary": endpoint.summary,
            "operationId": format!("{} {}", endpoint.method, endpoint.path),
            "x-access": format!("{:?}", endpoint.access).to_lowercase(),
            "parameters": parameters,
            "security": security,
            "responses": {
                endpoint.ok.to_string(): { "description": "success" },
                "default": {
                    "description": "an error",
                    "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
                }
            }
        });
        if endpoint.method == axum::http::Method::POST {
            operation["requestBody"] = json!({
                "required": false,
                "content": { "application/json": { "schema": { "type": "object" } } }
            });
        }
        let item = paths.entry(endpoint.path.to_owned()).or_insert_with(|| json!({}));
        item[endpoint.method.as_str().to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "boxoffice",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-region event ticketing. Field-level shapes: docs/http-api.md."
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "code", "detail"],
                    "properties": {
                        "type": { "type": "string" }, "title": { "type": "string" },
                        "status": { "type": "integer" }, "code": { "type": "string" },
                        "detail": { "type": "string" }, "request_id": { "type": "string" }
                    }
                }
            }
        }
    })
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi())
}

pub(crate) type ApiResult = Result<HttpResponse, Problem>;

fn parse_id(kind: &'static str, raw: &str) -> Result<u64, Problem> {
    raw.parse::<u64>()
        .map_err(|_| Problem::invalid(format!("{kind} must be a non-negative integer, got {raw:?}")))
}

fn event_id(raw: &str) -> Result<EventId, Problem> {
    parse_id("event_id", raw).map(EventId)
}

/// The request id of a write: the client's `Idempotency-Key` scoped to the
/// caller, or a fresh one.
///
/// A key is only ever compared with the same caller's keys: the id is a
/// digest of who is calling and the key, so one customer's key can neither
/// replay another's answer nor block another's request.
pub(crate) fn request_id(headers: &HeaderMap, caller: &Caller) -> Result<RequestId, Problem> {
    scoped_request_id(headers, &caller.idempotency_scope())
}

/// Like [`request_id`] with an explicit scope, for anonymous routes that
/// scope keys by what the request names (registration: the address).
pub(crate) fn scoped_request_id(headers: &HeaderMap, scope: &str) -> Result<RequestId, Problem> {
    match headers.get("idempotency-key") {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| Problem::invalid("Idempotency-Key must be printable ASCII"))?;
            // The key's own rule (1..=128 printable ASCII) still applies.
            RequestId::new(text).map_err(|e| Problem::invalid(format!("Idempotency-Key: {e}")))?;
            use sha2::Digest;
            let digest = sha2::Sha256::new()
                .chain_update(scope.as_bytes())
                .chain_update([0u8])
                .chain_update(text.as_bytes())
                .finalize();
            let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
            RequestId::new(&format!("k.{hex}")).map_err(|e| Problem::invalid(format!("Idempotency-Key: {e}")))
        }
        None => RequestId::new(&uuid::Uuid::new_v4().to_string())
            .map_err(|e| Problem::invalid(format!("generated request id: {e}"))),
    }
}

/// Sends a write through the router and renders its outcome.
async fn submit(state: &AppState, caller: &Caller, headers: &HeaderMap, command: Command) -> ApiResult {
    let id = request_id(headers, caller)?;
    let response: Response = state.router.submit(id, command).await?;
    render(response)
}

/// Renders a write's outcome: its success body or its rejection's problem.
fn render(response: Response) -> ApiResult {
    let success = response?;
    let (status, body) = match success {
        Success::Event(EventSuccess::PaymentStarted(payment)) => (StatusCode::ACCEPTED, json!(payment)),
        Success::Event(EventSuccess::PaymentUpdated(payment)) => (StatusCode::OK, json!(payment)),
        Success::Event(EventSuccess::Published { event_id, at_ms }) => (
            StatusCode::OK,
            json!({ "event_id": event_id, "published_at_ms": at_ms }),
        ),
        Success::Event(EventSuccess::Cancelled {
            event_id,
            orders_cancelled,
            refunds,
        }) => (
            StatusCode::OK,
            json!({ "event_id": event_id, "orders_cancelled": orders_cancelled, "refunds": refunds }),
        ),
        Success::Event(EventSuccess::Created { event_id, capacity }) => (
            StatusCode::CREATED,
            json!({ "event_id": event_id, "capacity": capacity }),
        ),
        Success::Event(EventSuccess::Held(hold)) => (StatusCode::CREATED, json!(hold)),
        Success::Event(EventSuccess::Extended(hold)) => (StatusCode::OK, json!(hold)),
        Success::Event(EventSuccess::Released { hold_id }) => (StatusCode::OK, json!({ "hold_id": hold_id })),
        Success::Event(EventSuccess::Confirmed(order)) => (StatusCode::CREATED, json!(order)),
        Success::Event(EventSuccess::OrderCancelled(order)) => (StatusCode::OK, json!(order)),
        Success::Event(EventSuccess::CheckedIn { code, at_ms }) => {
            (StatusCode::OK, json!({ "code": code, "checked_in_at_ms": at_ms }))
        }
        Success::Ticked => (StatusCode::OK, json!({})),
        Success::Map(MapSuccess::Initialised { epoch, groups }) => {
            (StatusCode::OK, json!({ "map_epoch": epoch, "groups": groups }))
        }
        Success::Map(MapSuccess::Placed {
            event_id,
            group_id,
            epoch,
        }) => (
            StatusCode::OK,
            json!({ "event_id": event_id, "group_id": group_id, "map_epoch": epoch }),
        ),
        Success::Map(MapSuccess::GroupCreated { group_id, epoch }) => (
            StatusCode::CREATED,
            json!({ "group_id": group_id, "map_epoch": epoch }),
        ),
        Success::Map(MapSuccess::LearnerAdded {
            group_id,
            replica_id,
            epoch,
        }) => (
            StatusCode::OK,
            json!({ "group_id": group_id, "replica_id": replica_id, "map_epoch": epoch }),
        ),
        Success::Map(MapSuccess::Changed { epoch }) => (StatusCode::OK, json!({ "map_epoch": epoch })),
        Success::Catalog(CatalogSuccess::VenueCreated(venue)) => (StatusCode::CREATED, json!(venue)),
        Success::Catalog(CatalogSuccess::Listed(listing)) => (StatusCode::OK, json!(listing)),
        Success::Account(AccountSuccess::EmailClaimed { claim, fresh }) => (
            StatusCode::OK,
            json!({ "customer_id": claim.customer_id, "region": claim.region, "fresh": fresh }),
        ),
        Success::Account(AccountSuccess::Registered(account)) => (StatusCode::CREATED, json!(account)),
        Success::Account(AccountSuccess::Updated(account)) => (StatusCode::OK, json!(account)),
        Success::Account(AccountSuccess::SessionStarted(grant))
        | Success::Account(AccountSuccess::SessionRotated(grant)) => (StatusCode::OK, json!(grant)),
        Success::Account(AccountSuccess::SessionRevoked { session_id })
        | Success::Account(AccountSuccess::SessionEnded { session_id }) => {
            (StatusCode::OK, json!({ "session_id": session_id }))
        }
        Success::Event(EventSuccess::ReminderSet(notice)) => (StatusCode::CREATED, json!(notice)),
        Success::Event(EventSuccess::ReminderCancelled { event_id })
        | Success::Event(EventSuccess::LeftWaitlist { event_id }) => {
            (StatusCode::OK, json!({ "event_id": event_id }))
        }
        Success::Event(EventSuccess::Waitlisted(view)) => (StatusCode::CREATED, json!(view)),
        Success::Event(EventSuccess::WaitlistOffered { hold }) => (StatusCode::OK, json!({ "hold": hold })),
        Success::Event(EventSuccess::NoticeUpdated(notice)) => (StatusCode::OK, json!(notice)),
        Success::Account(AccountSuccess::GuestChallenge {
            challenge_id,
            expires_at_ms,
        }) => (
            StatusCode::ACCEPTED,
            json!({ "challenge_id": challenge_id, "expires_at_ms": expires_at_ms }),
        ),
        Success::Account(AccountSuccess::GuestCodeWrong { attempts_left }) => {
            return Err(Problem::from(Rejection::CodeInvalid).with("attempts_left", json!(attempts_left)));
        }
        Success::Account(AccountSuccess::GuestVerified(account)) => (StatusCode::OK, json!(account)),
    };
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize, Default)]
struct ReadOptions {
    consistency: Option<String>,
}

/// Runs a read: linearizable through the leader by default, or this node's
/// replica with `?consistency=local`.
async fn read(state: &AppState, options: &ReadOptions, query: Query) -> Result<QueryResult, Problem> {
    match options.consistency.as_deref() {
        None | Some("linearizable") => Ok(state.router.query(query).await?),
        Some("local") => Ok(state.router.query_local(query).await?),
        Some(other) => Err(Problem::invalid(format!(
            "consistency must be 'linearizable' or 'local', got {other:?}"
        ))),
    }
}

fn found<T: serde::Serialize>(value: Option<T>, code: &'static str, what: &str) -> ApiResult {
    match value {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(Problem::not_found(code, format!("no such {what}"))),
    }
}

/// Reads `query` and renders its answer, or the matching `unknown_*` problem.
async fn read_and_render(state: &AppState, options: &ReadOptions, query: Query) -> ApiResult {
    match read(state, options, query).await? {
        QueryResult::Event(EventAnswer::View(view)) => found(view, "unknown_event", "event"),
        QueryResult::Event(EventAnswer::Hold(view)) => found(view, "unknown_hold", "hold"),
        QueryResult::Event(EventAnswer::Order(view)) => found(view, "unknown_order", "order"),
        QueryResult::Event(EventAnswer::Ticket(view)) => found(view, "unknown_ticket", "ticket"),
        QueryResult::Map(MapAnswer::ClusterMap(map)) => Ok(Json(map).into_response()),
        QueryResult::Map(MapAnswer::Placement(group)) => found(group, "unknown_event", "event"),
        QueryResult::Account(AccountAnswer::Account(view)) => found(view, "unknown_account", "account"),
        QueryResult::Event(EventAnswer::Payment(view)) => found(view, "unknown_payment", "payment"),
        QueryResult::Catalog(CatalogAnswer::Venue(view)) => found(view, "unknown_venue", "venue"),
        QueryResult::Catalog(CatalogAnswer::Listing(view)) => found(view, "unknown_event", "listing"),
        QueryResult::Event(EventAnswer::Waitlist(view)) => found(view, "not_waitlisted", "waitlist entry"),
        QueryResult::Event(EventAnswer::Notices(notices)) => {
            Ok(Json(serde_json::json!({ "notices": notices })).into_response())
        }
        QueryResult::Account(AccountAnswer::ByEmail(_))
        | QueryResult::Account(AccountAnswer::EmailClaim(_))
        | QueryResult::Catalog(CatalogAnswer::Venues(_))
        | QueryResult::Catalog(CatalogAnswer::Search(_))
        | QueryResult::Orders(_) => Err(Problem::not_found("not_found", "not served over HTTP")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEventBody {
    event_id: u64,
    spec: EventSpec,
    /// Where the event's inventory leader should live; default: this node's region.
    home_region: Option<String>,
    /// Give the event a Raft group of its own (a big on-sale).
    #[serde(default)]
    dedicated_group: bool,
    /// What the catalog says about it (searchable in every region).
    listing: Option<catalog::ListingBody>,
    /// Create it as a draft: no holds, not searchable, until published.
    #[serde(default)]
    draft: bool,
}

async fn create_event(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateEventBody>,
) -> ApiResult {
    caller.require_staff()?;
    body.spec.validate()?;
    let event_id = EventId(body.event_id);
    let home_region = body
        .home_region
        .clone()
        .unwrap_or_else(|| state.router.region().to_owned());
    let listing = match body.listing {
        Some(listing) => Some(listing.into_listing(&state, &body.spec, home_region).await?),
        None => None,
    };
    let id = request_id(&headers, &caller)?;
    // Chosen here, on the node that takes the request, so that ticket codes are
    // unguessable while every replica derives the same ones from the log. A
    // retry under the same Idempotency-Key must propose the same command, so
    // with a key the salt is derived from it with the cluster secret.
    let ticket_salt: [u8; 16] = match (&state.auth, headers.contains_key("idempotency-key")) {
        (Some(keys), true) => {
            use sha2::Digest;
            let digest = sha2::Sha256::new()
                .chain_update(keys.derivation_secret())
                .chain_update(b"ticket-salt:")
                .chain_update(id.as_str().as_bytes())
                .chain_update(event_id.0.to_be_bytes())
                .finalize();
            digest[..16].try_into().expect("16 bytes")
        }
        _ => rand::random(),
    };
    let response = state
        .router
        .create_event(
            id,
            Command::Event(
                event_id,
                EventCommand::Create {
                    spec: body.spec,
                    ticket_salt,
                    draft: body.draft,
                },
            ),
            body.home_region,
            body.dedicated_group,
        )
        .await?;
    if response.is_ok()
        && let Some(listing) = listing
    {
        let status = if body.draft {
            booking::ListingStatus::Draft
        } else {
            booking::ListingStatus::OnSale
        };
        catalog::put_listing(&state, event_id, listing, status).await?;
    }
    render(response)
}

async fn get_event(
    State(state): State<AppState>,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    read_and_render(
        &state,
        &options,
        Query::Event(event_id(&raw_event)?, EventQuery::View),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BestBody {
    section: String,
    tier: Option<String>,
    quantity: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GaBody {
    area: String,
    quantity: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    /// Staff name the customer they act for; customers may omit it.
    holder: Option<String>,
    seats: Option<Vec<String>>,
    best: Option<BestBody>,
    ga: Option<GaBody>,
    ttl_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolderBody {
    holder: Option<String>,
}

async fn create_hold(
    State(state): State<AppState>,
    caller: Caller,
    limits::ClientIp(ip): limits::ClientIp,
    ApiPath(raw_event): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldBody>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let holder = caller.holder(body.holder.as_deref())?;
    state.limits.check(limits::Action::Hold, &caller, ip)?;
    let selection = match (body.seats, body.best, body.ga) {
        (Some(seats), None, None) => Selection::Seats(seats),
        (None, Some(best), None) => Selection::BestAvailable {
            section: best.section,
            tier: best.tier,
            quantity: best.quantity,
        },
        (None, None, Some(ga)) => Selection::GeneralAdmission {
            area: ga.area,
            quantity: ga.quantity,
        },
        _ => {
            return Err(Problem::invalid(
                "give exactly one of \"seats\", \"best\" or \"ga\"",
            ));
        }
    };
    let ttl_ms = match body.ttl_secs {
        Some(secs) => Some(
            secs.checked_mul(1000)
                .ok_or_else(|| Problem::invalid("ttl_secs is out of range"))?,
        ),
        None => None,
    };
    let command = Command::Event(
        event_id,
        EventCommand::Hold {
            holder,
            selection,
            ttl_ms,
        },
    );
    submit(&state, &caller, &headers, command).await
}

async fn get_hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_hold)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let query = Query::Event(
        event_id(&raw_event)?,
        EventQuery::Hold(HoldId(parse_id("hold_id", &raw_hold)?)),
    );
    require_caller(&caller)?;
    match read(&state, &options, query).await? {
        QueryResult::Event(EventAnswer::Hold(Some(view))) if caller.may_see(&view.holder) => {
            // The countdown a checkout page shows, from this node's clock.
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let mut body = json!(view);
            if view.status == booking::HoldStatus::Active {
                body["expires_in_ms"] = json!(view.expires_at_ms.saturating_sub(now_ms));
            }
            Ok(Json(body).into_response())
        }
        // Someone else's hold is reported like a missing one: ids are sequential.
        _ => Err(Problem::not_found("unknown_hold", "no such hold")),
    }
}

fn require_caller(caller: &Caller) -> Result<(), Problem> {
    match caller {
        Caller::Anonymous => Err(auth::login_required()),
        _ => Ok(()),
    }
}

/// The route of a hold command (`extend`, `release`, `confirm`): the same
/// input, a different command.
fn hold_route(make: fn(EventId, HoldId, CustomerId) -> Command) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>,
              caller: Caller,
              ApiPath((raw_event, raw_hold)): ApiPath<(String, String)>,
              headers: HeaderMap,
              body: OptionalJson<HolderBody>| async move {
            let event_id = event_id(&raw_event)?;
            let hold_id = HoldId(parse_id("hold_id", &raw_hold)?);
            let holder = caller.holder(body.0.and_then(|b| b.holder).as_deref())?;
            submit(&state, &caller, &headers, make(event_id, hold_id, holder)).await
        },
    )
}

/// Confirms a hold into an order without a payment: staff (a box-office
/// sale), or a customer whose hold costs nothing. Everyone else checks out.
async fn confirm_hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_hold)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: OptionalJson<HolderBody>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let hold_id = HoldId(parse_id("hold_id", &raw_hold)?);
    let holder = caller.holder(body.0.and_then(|b| b.holder).as_deref())?;
    if !caller.is_staff()
        && let QueryResult::Event(EventAnswer::Hold(Some(hold))) = state
            .router
            .query(Query::Event(event_id, EventQuery::Hold(hold_id)))
            .await?
        && hold.holder == holder
        && hold.total.amount_minor > 0
    {
        return Err(Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment_required",
            "this hold costs money: pay with POST .../checkout",
        ));
    }
    let command = Command::Event(event_id, EventCommand::ConfirmHold { hold_id, holder });
    submit(&state, &caller, &headers, command).await
}

async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_order)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let query = Query::Event(
        event_id(&raw_event)?,
        EventQuery::Order(OrderId(parse_id("order_id", &raw_order)?)),
    );
    require_caller(&caller)?;
    match read(&state, &options, query).await? {
        QueryResult::Event(EventAnswer::Order(Some(view))) if caller.may_see(&view.holder) => {
            Ok(Json(view).into_response())
        }
        _ => Err(Problem::not_found("unknown_order", "no such order")),
    }
}

async fn cancel_order(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_order)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: OptionalJson<HolderBody>,
) -> ApiResult {
    let command = Command::Event(
        event_id(&raw_event)?,
        EventCommand::CancelOrder {
            order_id: OrderId(parse_id("order_id", &raw_order)?),
            holder: caller.holder(body.0.and_then(|b| b.holder).as_deref())?,
        },
    );
    submit(&state, &caller, &headers, command).await
}

fn ticket_code(raw: &str) -> Result<TicketCode, Problem> {
    TicketCode::new(raw).map_err(|e| Problem::invalid(format!("ticket code: {e}")))
}

/// A ticket the caller may see: theirs (through its order) or any, for staff.
async fn visible_ticket(
    state: &AppState,
    caller: &Caller,
    options: &ReadOptions,
    event_id: EventId,
    code: TicketCode,
) -> Result<booking::TicketView, Problem> {
    require_caller(caller)?;
    let missing = || Problem::not_found("unknown_ticket", "no such ticket");
    let QueryResult::Event(EventAnswer::Ticket(Some(ticket))) =
        read(state, options, Query::Event(event_id, EventQuery::Ticket(code))).await?
    else {
        return Err(missing());
    };
    if caller.is_staff() {
        return Ok(ticket);
    }
    match read(
        state,
        options,
        Query::Event(event_id, EventQuery::Order(ticket.order_id)),
    )
    .await?
    {
        QueryResult::Event(EventAnswer::Order(Some(order))) if caller.may_see(&order.holder) => Ok(ticket),
        _ => Err(missing()),
    }
}

async fn get_ticket(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_code)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let ticket = visible_ticket(&state, &caller, &options, event_id, ticket_code(&raw_code)?).await?;
    let mut body = json!(ticket);
    if let Some(signer) = state.tickets.as_deref() {
        body["qr_payload"] = json!(signer.payload(event_id, &ticket.code));
    }
    Ok(Json(body).into_response())
}

/// The ticket's QR code as an SVG image.
async fn get_ticket_qr(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_code)): ApiPath<(String, String)>,
) -> ApiResult {
    let signer = signer(&state)?;
    let event_id = event_id(&raw_event)?;
    let options = ReadOptions::default();
    let ticket = visible_ticket(&state, &caller, &options, event_id, ticket_code(&raw_code)?).await?;
    let svg = tickets::qr_svg(&signer.payload(event_id, &ticket.code))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

fn signer(state: &AppState) -> Result<&TicketSigner, Problem> {
    state.tickets.as_deref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_disabled",
            "this node has no [auth] configured, so tickets are not signed",
        )
    })
}

async fn ticket_public_key(State(state): State<AppState>) -> ApiResult {
    let signer = signer(&state)?;
    Ok(Json(json!({
        "alg": "Ed25519",
        "public_key": signer.public_key(),
        "encoding": "base64url, no padding, 32 bytes",
        "payload_format": "BX1.{event_id}.{code}.{signature over 'BX1.{event_id}.{code}'}",
    }))
    .into_response())
}

async fn check_in(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_code)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    caller.require_staff()?;
    let command = Command::Event(
        event_id(&raw_event)?,
        EventCommand::CheckIn {
            code: ticket_code(&raw_code)?,
        },
    );
    submit(&state, &caller, &headers, command).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    payload: String,
}

/// Check-in from a scanned QR payload: the signature is checked first, so a
/// forged code never reaches the event's group.
async fn check_in_scanned(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ScanBody>,
) -> ApiResult {
    caller.require_staff()?;
    let (event_id, code) = signer(&state)?.verify(&body.payload)?;
    submit(
        &state,
        &caller,
        &headers,
        Command::Event(event_id, EventCommand::CheckIn { code }),
    )
    .await
}
