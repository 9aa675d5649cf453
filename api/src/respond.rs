//! What every handler shares: parsing ids, the request id of a write,
//! sending a command or a query through the router, and turning the core's
//! answers into HTTP answers (through the shapes of [`crate::dto`]).

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use booking::{
    AccountAnswer, AccountSuccess, CatalogAnswer, CatalogSuccess, Command, EventAnswer, EventId,
    EventSuccess, MapSuccess, Query, QueryResult, Rejection, RequestId, Response, Success,
};
use serde::Deserialize;
use serde_json::json;

use crate::freshness::Level;
use crate::{AppState, Caller, Problem, auth, dto};

pub(crate) type ApiResult = Result<HttpResponse, Problem>;

pub(crate) fn parse_id(kind: &'static str, raw: &str) -> Result<u64, Problem> {
    raw.parse::<u64>()
        .map_err(|_| Problem::invalid(format!("{kind} must be a non-negative integer, got {raw:?}")))
}

pub(crate) fn event_id(raw: &str) -> Result<EventId, Problem> {
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
pub(crate) async fn submit(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    command: Command,
) -> ApiResult {
    let id = request_id(headers, caller)?;
    let event = command.event_id();
    let response: Response = state.router.submit(id, command).await?;
    // Only a success shows times; a rejection needs no zone. An account's
    // times are in its home region's zone.
    let zone = match (&response, event) {
        (Ok(_), Some(event)) => venue_zone(state, event),
        (
            Ok(Success::Account(
                AccountSuccess::Registered(account)
                | AccountSuccess::Updated(account)
                | AccountSuccess::GuestVerified(account),
            )),
            None,
        ) => crate::regions::zone_of(state, &account.region),
        _ => None,
    };
    render_in(response, zone.as_deref())
}

/// The IANA time zone of event `event_id`'s venue, from this node's replica
/// of the catalog (`None`: no listing, or no catalog replica yet).
pub(crate) fn venue_zone(state: &AppState, event_id: EventId) -> Option<String> {
    state
        .router
        .groups()
        .get(booking::META_GROUP)?
        .state
        .read()
        .venue_zone(event_id)
}

/// The venue zone of the event a query is about, if it is about one.
pub(crate) fn query_zone(state: &AppState, query: &Query) -> Option<String> {
    venue_zone(state, query.event_id()?)
}

/// `value` with its times in `zone` (left in UTC without one).
pub(crate) fn in_zone<T: dto::Zoned>(mut value: T, zone: Option<&str>) -> T {
    if let Some(zone) = zone {
        value.set_zone(zone);
    }
    value
}

/// Renders a write's outcome: its success body or its rejection's problem.
pub(crate) fn render(response: Response) -> ApiResult {
    render_in(response, None)
}

/// [`render`], showing times in `zone` (the event's venue's).
pub(crate) fn render_in(response: Response, z: Option<&str>) -> ApiResult {
    let success = response?;
    let (status, body) = match success {
        Success::Event(EventSuccess::PaymentStarted(payment)) => (
            StatusCode::ACCEPTED,
            json!(in_zone(dto::Payment::from(payment), z)),
        ),
        Success::Event(EventSuccess::PaymentUpdated(payment)) => {
            (StatusCode::OK, json!(in_zone(dto::Payment::from(payment), z)))
        }
        Success::Event(EventSuccess::Published { event_id, at_ms }) => (
            StatusCode::OK,
            json!(dto::Published {
                event_id,
                published_at_ms: at_ms,
                published_at: dto::time_in(at_ms, z),
            }),
        ),
        Success::Event(EventSuccess::Cancelled {
            event_id,
            orders_cancelled,
            refunds,
        }) => (
            StatusCode::OK,
            json!(dto::EventCancelled {
                event_id,
                orders_cancelled,
                refunds,
            }),
        ),
        Success::Event(EventSuccess::Created { event_id, capacity }) => (
            StatusCode::CREATED,
            json!(dto::EventCreated { event_id, capacity }),
        ),
        Success::Event(EventSuccess::Held(hold)) => {
            (StatusCode::CREATED, json!(in_zone(dto::Hold::from(hold), z)))
        }
        Success::Event(EventSuccess::Extended(hold)) => {
            (StatusCode::OK, json!(in_zone(dto::Hold::from(hold), z)))
        }
        Success::Event(EventSuccess::Released { hold_id }) => {
            (StatusCode::OK, json!(dto::Released { hold_id }))
        }
        Success::Event(EventSuccess::Confirmed(order)) => {
            (StatusCode::CREATED, json!(in_zone(dto::Order::from(order), z)))
        }
        Success::Event(EventSuccess::OrderCancelled(order)) => {
            (StatusCode::OK, json!(in_zone(dto::Order::from(order), z)))
        }
        Success::Event(EventSuccess::CheckedIn { code, at_ms }) => (
            StatusCode::OK,
            json!(dto::CheckedIn {
                code,
                checked_in_at_ms: at_ms,
            }),
        ),
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
        Success::Catalog(CatalogSuccess::VenueCreated(venue)) => {
            (StatusCode::CREATED, json!(dto::Venue::from(venue)))
        }
        Success::Catalog(CatalogSuccess::Listed(listing)) => {
            (StatusCode::OK, json!(dto::Listing::from(listing)))
        }
        Success::Catalog(CatalogSuccess::FxRatesSet { base, count }) => {
            (StatusCode::OK, json!(dto::FxRatesSet { base, count }))
        }
        Success::Account(AccountSuccess::EmailClaimed { claim, fresh }) => (
            StatusCode::OK,
            json!({ "customer_id": claim.customer_id, "region": claim.region, "fresh": fresh }),
        ),
        Success::Account(AccountSuccess::Registered(account)) => (
            StatusCode::CREATED,
            json!(in_zone(dto::Account::from(account), z)),
        ),
        Success::Account(AccountSuccess::Updated(account)) => {
            (StatusCode::OK, json!(in_zone(dto::Account::from(account), z)))
        }
        Success::Account(AccountSuccess::SessionStarted(grant))
        | Success::Account(AccountSuccess::SessionRotated(grant)) => (
            StatusCode::OK,
            json!({
                "session_id": grant.session_id,
                "customer_id": grant.customer_id,
                "role": dto::Role::from(grant.role),
                "region": grant.region,
                "generation": grant.generation,
                "expires_at_ms": grant.expires_at_ms,
            }),
        ),
        Success::Account(AccountSuccess::SessionRevoked { session_id })
        | Success::Account(AccountSuccess::SessionEnded { session_id }) => {
            (StatusCode::OK, json!({ "session_id": session_id }))
        }
        Success::Event(EventSuccess::ReminderSet(notice)) => {
            (StatusCode::CREATED, json!(in_zone(dto::Notice::from(notice), z)))
        }
        Success::Event(EventSuccess::ReminderCancelled { event_id })
        | Success::Event(EventSuccess::LeftWaitlist { event_id }) => {
            (StatusCode::OK, json!(dto::EventRef { event_id }))
        }
        Success::Event(EventSuccess::Waitlisted(view)) => (
            StatusCode::CREATED,
            json!(in_zone(dto::WaitlistEntry::from(view), z)),
        ),
        Success::Event(EventSuccess::WaitlistOffered { hold }) => (
            StatusCode::OK,
            json!({ "hold": hold.map(|h| in_zone(dto::Hold::from(h), z)) }),
        ),
        Success::Event(EventSuccess::NoticeUpdated(notice)) => {
            (StatusCode::OK, json!(in_zone(dto::Notice::from(notice), z)))
        }
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
        Success::Account(AccountSuccess::GuestVerified(account)) => {
            (StatusCode::OK, json!(in_zone(dto::Account::from(account), z)))
        }
    };
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReadOptions {
    /// `linearizable`, `bounded` or `local` (see `freshness`).
    pub(crate) consistency: Option<String>,
    /// With `consistency=bounded`: how far behind the leader an answer may be.
    pub(crate) max_staleness_ms: Option<u64>,
    /// With `consistency=bounded`: `leader` (default) or `none`.
    pub(crate) fallback: Option<String>,
    /// Show prices also in this currency (`?currency=JPY`).
    pub(crate) currency: Option<String>,
}

/// The log index this node's replica of `group` has applied (`None`: it
/// hosts none, or it has applied nothing yet).
pub(crate) fn applied_index(state: &AppState, group: booking::GroupId) -> Option<u64> {
    state.router.groups().get(group)?.applied_index()
}

/// Runs a read: linearizable through the leader by default, or at the
/// level `?consistency=` asks for (see `freshness`).
pub(crate) async fn read(
    state: &AppState,
    options: &ReadOptions,
    query: Query,
) -> Result<QueryResult, Problem> {
    let level = Level::asked(options, Level::Linearizable)?;
    Ok(crate::freshness::read(state, level, query).await?.0)
}

pub(crate) fn found<T: serde::Serialize>(value: Option<T>, code: &'static str, what: &str) -> ApiResult {
    match value {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(Problem::not_found(code, format!("no such {what}"))),
    }
}

/// Reads `query` and renders its answer, or the matching `unknown_*` problem.
pub(crate) async fn read_and_render(state: &AppState, options: &ReadOptions, query: Query) -> ApiResult {
    let zone = query_zone(state, &query);
    let z = zone.as_deref();
    match read(state, options, query).await? {
        QueryResult::Event(EventAnswer::View(view)) => found(
            view.map(|v| in_zone(dto::Event::from(v), z)),
            "unknown_event",
            "event",
        ),
        QueryResult::Event(EventAnswer::Hold(view)) => found(
            view.map(|v| in_zone(dto::Hold::from(v), z)),
            "unknown_hold",
            "hold",
        ),
        QueryResult::Event(EventAnswer::Order(view)) => found(
            view.map(|v| in_zone(dto::Order::from(v), z)),
            "unknown_order",
            "order",
        ),
        QueryResult::Event(EventAnswer::Ticket(view)) => found(
            view.map(|v| in_zone(dto::Ticket::from(v), z)),
            "unknown_ticket",
            "ticket",
        ),
        QueryResult::Account(AccountAnswer::Account(view)) => found(
            view.map(|v| crate::regions::account(state, v)),
            "unknown_account",
            "account",
        ),
        QueryResult::Event(EventAnswer::Payment(view)) => found(
            view.map(|v| in_zone(dto::Payment::from(v), z)),
            "unknown_payment",
            "payment",
        ),
        QueryResult::Catalog(CatalogAnswer::Venue(view)) => {
            found(view.map(dto::Venue::from), "unknown_venue", "venue")
        }
        QueryResult::Catalog(CatalogAnswer::Listing(view)) => {
            found(view.map(dto::Listing::from), "unknown_event", "listing")
        }
        QueryResult::Event(EventAnswer::Waitlist(view)) => found(
            view.map(|v| in_zone(dto::WaitlistEntry::from(v), z)),
            "not_waitlisted",
            "waitlist entry",
        ),
        QueryResult::Event(EventAnswer::Notices(notices)) => Ok(Json(dto::Notices {
            notices: notices
                .into_iter()
                .map(|n| in_zone(dto::Notice::from(n), z))
                .collect(),
        })
        .into_response()),
        QueryResult::Map(_)
        | QueryResult::Account(AccountAnswer::ByEmail(_))
        | QueryResult::Account(AccountAnswer::EmailClaim(_))
        | QueryResult::Catalog(CatalogAnswer::Venues(_))
        | QueryResult::Catalog(CatalogAnswer::Search(_))
        | QueryResult::Catalog(CatalogAnswer::FxRates(_))
        // Pages and seat reads have routes of their own (`bookings`).
        | QueryResult::Event(EventAnswer::Holds(_) | EventAnswer::Orders(_) | EventAnswer::Seats(_))
        | QueryResult::Orders(_) => Err(Problem::not_found("not_found", "not served over HTTP")),
    }
}

pub(crate) fn require_caller(caller: &Caller) -> Result<(), Problem> {
    match caller {
        Caller::Anonymous => Err(auth::login_required()),
        _ => Ok(()),
    }
}
