//! The client-facing HTTP API of one node (see `docs/http-api.md`).
//!
//! Handlers parse and validate input, turn it into a booking [`Command`] or a
//! [`Query`], hand it to the [`Router`], and render the answer. A rejected
//! request never reaches the state machine unless the rejection depends on
//! state, and then the state machine rejects it without effect.
//!
//! This crate does not decide where a request runs (the router does) and
//! does not know how anything is stored.

mod extract;
mod ops;
mod problem;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router as HttpRouter};
use booking::{
    Command, CustomerId, EventId, EventSpec, HoldId, OrderId, RequestId, Response, Selection, Success,
    TicketCode,
};
use raft_store::{Query, QueryResult};
use router::Router;
use serde::Deserialize;
use serde_json::json;

pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use problem::Problem;

/// The largest request body accepted: a stadium's seat map fits, a runaway upload does not.
pub const MAX_BODY_BYTES: usize = 8 << 20;

#[derive(Clone)]
pub struct AppState {
    pub router: Arc<Router>,
    pub wal_stats: Arc<raft_store::WalStats>,
    /// The bearer token of `/v1/admin/*`; `None` disables the admin API.
    pub admin_token: Option<Arc<str>>,
}

pub fn app(state: AppState) -> HttpRouter {
    HttpRouter::new()
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/v1/cluster", get(ops::cluster))
        .route("/v1/admin/cluster", get(ops::admin_cluster))
        .route("/v1/admin/groups", post(ops::create_group))
        .route(
            "/v1/admin/groups/{group_id}/transfer-leader",
            post(ops::transfer_leader),
        )
        .route("/v1/admin/events/{event_id}/placement", post(ops::place_event))
        .route("/v1/admin/nodes", post(ops::add_node))
        .route("/v1/admin/nodes/{node_id}/remove", post(ops::remove_node))
        .route("/v1/events", post(create_event))
        .route("/v1/events/{event_id}", get(get_event))
        .route("/v1/events/{event_id}/holds", post(create_hold))
        .route("/v1/events/{event_id}/holds/{hold_id}", get(get_hold))
        .route(
            "/v1/events/{event_id}/holds/{hold_id}/extend",
            hold_route(|event_id, hold_id, holder| Command::ExtendHold {
                event_id,
                hold_id,
                holder,
            }),
        )
        .route(
            "/v1/events/{event_id}/holds/{hold_id}/release",
            hold_route(|event_id, hold_id, holder| Command::ReleaseHold {
                event_id,
                hold_id,
                holder,
            }),
        )
        .route(
            "/v1/events/{event_id}/holds/{hold_id}/confirm",
            hold_route(|event_id, hold_id, holder| Command::ConfirmHold {
                event_id,
                hold_id,
                holder,
            }),
        )
        .route("/v1/events/{event_id}/orders/{order_id}", get(get_order))
        .route(
            "/v1/events/{event_id}/orders/{order_id}/cancel",
            post(cancel_order),
        )
        .route("/v1/events/{event_id}/tickets/{code}", get(get_ticket))
        .route("/v1/events/{event_id}/tickets/{code}/check-in", post(check_in))
        .fallback(|| async { Problem::not_found("not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

type ApiResult = Result<HttpResponse, Problem>;

fn parse_id(kind: &'static str, raw: &str) -> Result<u64, Problem> {
    raw.parse::<u64>()
        .map_err(|_| Problem::invalid(format!("{kind} must be a non-negative integer, got {raw:?}")))
}

fn event_id(raw: &str) -> Result<EventId, Problem> {
    parse_id("event_id", raw).map(EventId)
}

fn customer(raw: &str) -> Result<CustomerId, Problem> {
    CustomerId::new(raw).map_err(|e| Problem::invalid(format!("holder: {e}")))
}

/// The request id of a write: the client's `Idempotency-Key`, or a fresh one.
fn request_id(headers: &HeaderMap) -> Result<RequestId, Problem> {
    match headers.get("idempotency-key") {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| Problem::invalid("Idempotency-Key must be printable ASCII"))?;
            RequestId::new(text).map_err(|e| Problem::invalid(format!("Idempotency-Key: {e}")))
        }
        None => RequestId::new(&uuid::Uuid::new_v4().to_string())
            .map_err(|e| Problem::invalid(format!("generated request id: {e}"))),
    }
}

/// Sends a write through the router and renders its outcome.
async fn submit(state: &AppState, headers: &HeaderMap, command: Command) -> ApiResult {
    let id = request_id(headers)?;
    let response: Response = state.router.submit(id, command).await?;
    render(response)
}

/// Renders a write's outcome: its success body or its rejection's problem.
fn render(response: Response) -> ApiResult {
    let success = response?;
    let (status, body) = match success {
        Success::EventCreated { event_id, capacity } => (
            StatusCode::CREATED,
            json!({ "event_id": event_id, "capacity": capacity }),
        ),
        Success::Held(hold) => (StatusCode::CREATED, json!(hold)),
        Success::Extended(hold) => (StatusCode::OK, json!(hold)),
        Success::Released { hold_id } => (StatusCode::OK, json!({ "hold_id": hold_id })),
        Success::Confirmed(order) => (StatusCode::CREATED, json!(order)),
        Success::Cancelled(order) => (StatusCode::OK, json!(order)),
        Success::CheckedIn { code, at_ms } => {
            (StatusCode::OK, json!({ "code": code, "checked_in_at_ms": at_ms }))
        }
        Success::Ticked => (StatusCode::OK, json!({})),
        Success::MapInitialised { epoch, groups } => {
            (StatusCode::OK, json!({ "map_epoch": epoch, "groups": groups }))
        }
        Success::Placed {
            event_id,
            group_id,
            epoch,
        } => (
            StatusCode::OK,
            json!({ "event_id": event_id, "group_id": group_id, "map_epoch": epoch }),
        ),
        Success::GroupCreated { group_id, epoch } => (
            StatusCode::CREATED,
            json!({ "group_id": group_id, "map_epoch": epoch }),
        ),
        Success::LearnerAdded {
            group_id,
            replica_id,
            epoch,
        } => (
            StatusCode::OK,
            json!({ "group_id": group_id, "replica_id": replica_id, "map_epoch": epoch }),
        ),
        Success::MapChanged { epoch } => (StatusCode::OK, json!({ "map_epoch": epoch })),
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
        QueryResult::Event(view) => found(view, "unknown_event", "event"),
        QueryResult::Hold(view) => found(view, "unknown_hold", "hold"),
        QueryResult::Order(view) => found(view, "unknown_order", "order"),
        QueryResult::Ticket(view) => found(view, "unknown_ticket", "ticket"),
        QueryResult::ClusterMap(map) => Ok(Json(map).into_response()),
        QueryResult::Placement(group) => found(group, "unknown_event", "event"),
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
}

async fn create_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateEventBody>,
) -> ApiResult {
    body.spec.validate()?;
    // Chosen here, on the node that takes the request, so that ticket codes are
    // unguessable while every replica derives the same ones from the log.
    let ticket_salt: [u8; 16] = rand::random();
    let id = request_id(&headers)?;
    let response = state
        .router
        .create_event(
            id,
            EventId(body.event_id),
            body.spec,
            ticket_salt,
            body.home_region,
            body.dedicated_group,
        )
        .await?;
    render(response)
}

async fn get_event(
    State(state): State<AppState>,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    read_and_render(&state, &options, Query::Event(event_id(&raw_event)?)).await
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
    holder: String,
    seats: Option<Vec<String>>,
    best: Option<BestBody>,
    ga: Option<GaBody>,
    ttl_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolderBody {
    holder: String,
}

async fn create_hold(
    State(state): State<AppState>,
    ApiPath(raw_event): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldBody>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let holder = customer(&body.holder)?;
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
    let command = Command::Hold {
        event_id,
        holder,
        selection,
        ttl_ms,
    };
    submit(&state, &headers, command).await
}

async fn get_hold(
    State(state): State<AppState>,
    ApiPath((raw_event, raw_hold)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let query = Query::Hold(event_id(&raw_event)?, HoldId(parse_id("hold_id", &raw_hold)?));
    read_and_render(&state, &options, query).await
}

/// The route of a hold command (`extend`, `release`, `confirm`): the same
/// input, a different command.
fn hold_route(make: fn(EventId, HoldId, CustomerId) -> Command) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>,
              ApiPath((raw_event, raw_hold)): ApiPath<(String, String)>,
              headers: HeaderMap,
              ApiJson(body): ApiJson<HolderBody>| async move {
            let event_id = event_id(&raw_event)?;
            let hold_id = HoldId(parse_id("hold_id", &raw_hold)?);
            let holder = customer(&body.holder)?;
            submit(&state, &headers, make(event_id, hold_id, holder)).await
        },
    )
}

async fn get_order(
    State(state): State<AppState>,
    ApiPath((raw_event, raw_order)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let query = Query::Order(event_id(&raw_event)?, OrderId(parse_id("order_id", &raw_order)?));
    read_and_render(&state, &options, query).await
}

async fn cancel_order(
    State(state): State<AppState>,
    ApiPath((raw_event, raw_order)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HolderBody>,
) -> ApiResult {
    let command = Command::CancelOrder {
        event_id: event_id(&raw_event)?,
        order_id: OrderId(parse_id("order_id", &raw_order)?),
        holder: customer(&body.holder)?,
    };
    submit(&state, &headers, command).await
}

fn ticket_code(raw: &str) -> Result<TicketCode, Problem> {
    TicketCode::new(raw).map_err(|e| Problem::invalid(format!("ticket code: {e}")))
}

async fn get_ticket(
    State(state): State<AppState>,
    ApiPath((raw_event, raw_code)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let query = Query::Ticket(event_id(&raw_event)?, ticket_code(&raw_code)?);
    read_and_render(&state, &options, query).await
}

async fn check_in(
    State(state): State<AppState>,
    ApiPath((raw_event, raw_code)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let command = Command::CheckIn {
        event_id: event_id(&raw_event)?,
        code: ticket_code(&raw_code)?,
    };
    submit(&state, &headers, command).await
}
