//! Errors as RFC 9457 `application/problem+json` with a stable `code`.
//!
//! Every error a client can see is built here, so the set of codes and their
//! HTTP statuses is written down in exactly one place (and in docs/http-api.md).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use booking::Rejection;
use router::RouteError;
use serde_json::{Map, Value, json};

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
    /// Seconds for a `Retry-After` header (rate limits).
    pub retry_after: Option<u64>,
    /// Values the translated detail names (`{seats}`), besides `extra`.
    pub params: Vec<(&'static str, String)>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
            params: Vec::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 422 `invalid_request` naming the field at fault (`"field"` in the body).
    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::invalid(format!("{field}: {detail}")).with("field", json!(field))
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// A command answered with a success of the wrong kind: a bug, not the client's fault.
    pub fn unexpected(success: &booking::Success) -> Self {
        Self::internal(format!("unexpected answer {success:?}"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
}

/// Members of a problem document that a translated detail may name.
const KNOWN_PARAMS: &[&str] = &[
    "seats",
    "limit",
    "current",
    "position",
    "payment_id",
    "retry_after_secs",
    "field",
];

/// The values a rejection's translated detail names, by template name.
fn rejection_params(rejection: &Rejection) -> Vec<(&'static str, String)> {
    let utc = |ms: u64| crate::dto::local_time(ms, "UTC").unwrap_or_else(|| ms.to_string());
    match rejection {
        Rejection::UnknownSeat { seat } => vec![("seat", seat.clone())],
        Rejection::UnknownSection { section } => vec![("section", section.clone())],
        Rejection::UnknownTier { tier } => vec![("tier", tier.clone())],
        Rejection::UnknownArea { area } => vec![("area", area.clone())],
        Rejection::SeatUnavailable { seats } => vec![("seats", seats.join(", "))],
        Rejection::NotEnoughSeats { requested } => vec![("requested", requested.to_string())],
        Rejection::CustomerLimit { limit, current } => {
            vec![("limit", limit.to_string()), ("current", current.to_string())]
        }
        Rejection::AlreadyCheckedIn {
            first_checked_in_at_ms,
        } => vec![("first_checked_in_at", utc(*first_checked_in_at_ms))],
        Rejection::UnknownRegion { region } => vec![("region", region.clone())],
        Rejection::NotEnoughNodes { needed, available } => {
            vec![
                ("needed", needed.to_string()),
                ("available", available.to_string()),
            ]
        }
        Rejection::NodeExists { node_id } | Rejection::NodeDraining { node_id } => {
            vec![("node_id", node_id.to_string())]
        }
        Rejection::NodeHasReplicas { node_id, replicas } => {
            vec![
                ("node_id", node_id.to_string()),
                ("replicas", replicas.to_string()),
            ]
        }
        Rejection::TooManyHolds { limit } => vec![("limit", limit.to_string())],
        Rejection::SalesNotOpen { opens_at_ms } => vec![("opens_at", utc(*opens_at_ms))],
        Rejection::SalesClosed { closed_at_ms } => vec![("closed_at", utc(*closed_at_ms))],
        Rejection::PaymentInProgress { payment_id } => vec![("payment_id", payment_id.to_string())],
        Rejection::AlreadyWaitlisted { position } => vec![("position", position.to_string())],
        Rejection::FxRateMissing { from, to } => vec![("from", from.clone()), ("to", to.clone())],
        _ => Vec::new(),
    }
}

fn title(code: &str) -> String {
    let mut words = code.replace('_', " ").replace("json", "JSON");
    if let Some(first) = words.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    words
}

/// A member of the problem document as text for a translated detail.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => Some(items.iter().filter_map(as_text).collect::<Vec<_>>().join(", ")),
        _ => None,
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let lang = crate::i18n::current();
        let mut params = self.params;
        for (key, value) in &self.extra {
            if let (Some(key), Some(text)) = (KNOWN_PARAMS.iter().find(|k| **k == key), as_text(value)) {
                params.push((*key, text));
            }
        }
        let (title, detail, detail_en) = match crate::i18n::problem_text(self.code, lang, &params) {
            Some((title, detail)) => (title.to_owned(), detail, Some(self.detail)),
            None => (title(self.code), self.detail, None),
        };
        let mut body = json!({
            "type": format!("https://boxoffice.dev/problems/{}", self.code),
            "title": title,
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": detail,
        });
        if let Value::Object(map) = &mut body {
            if let Some(english) = detail_en {
                map.insert("detail_en".to_owned(), Value::String(english));
            }
            map.extend(self.extra);
            if let Some(id) = crate::request_ids::current() {
                map.insert("request_id".to_owned(), Value::String(id));
            }
        }
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<Rejection> for Problem {
    fn from(rejection: Rejection) -> Self {
        let code = rejection.code();
        let status = match &rejection {
            Rejection::InvalidRequest(_)
            | Rejection::InvalidSpec(_)
            | Rejection::UnknownSeat { .. }
            | Rejection::UnknownSection { .. }
            | Rejection::UnknownTier { .. }
            | Rejection::UnknownArea { .. }
            | Rejection::UnknownRegion { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::MapNotInitialised | Rejection::NoGroupAvailable => StatusCode::SERVICE_UNAVAILABLE,
            // The cluster as it is cannot do it until an operator adds
            // nodes: the request conflicts with its state, no retry helps.
            Rejection::NotEnoughNodes { .. }
            | Rejection::MapInitialised
            | Rejection::NodeExists { .. }
            | Rejection::NodeDraining { .. }
            | Rejection::NodeHasReplicas { .. } => StatusCode::CONFLICT,
            Rejection::UnknownNode { .. }
            | Rejection::UnknownGroup { .. }
            | Rejection::UnknownReplica { .. } => StatusCode::NOT_FOUND,
            Rejection::UnknownEvent
            | Rejection::UnknownHold
            | Rejection::UnknownOrder
            | Rejection::UnknownTicket => StatusCode::NOT_FOUND,
            Rejection::HoldExpired => StatusCode::GONE,
            Rejection::WrongHolder => StatusCode::FORBIDDEN,
            Rejection::EventExists
            | Rejection::SeatUnavailable { .. }
            | Rejection::NotEnoughSeats { .. }
            | Rejection::CustomerLimit { .. }
            | Rejection::HoldNotActive
            | Rejection::ExtensionUsed
            | Rejection::OrderNotActive
            | Rejection::OrderCheckedIn
            | Rejection::AlreadyCheckedIn { .. }
            | Rejection::TicketVoid
            | Rejection::IdempotencyKeyReused
            | Rejection::EmailTaken
            | Rejection::AccountExists
            | Rejection::EventCancelled
            | Rejection::EventNotOnSale
            | Rejection::TooManyHolds { .. }
            | Rejection::SalesNotOpen { .. }
            | Rejection::SalesClosed { .. }
            | Rejection::PaymentInProgress { .. }
            | Rejection::PaymentNotRefundable => StatusCode::CONFLICT,
            Rejection::UnknownAccount | Rejection::UnknownPayment | Rejection::UnknownVenue => {
                StatusCode::NOT_FOUND
            }
            Rejection::SessionInvalid => StatusCode::UNAUTHORIZED,
            Rejection::AlreadyWaitlisted { .. } | Rejection::PlacesAvailable => StatusCode::CONFLICT,
            Rejection::NotWaitlisted | Rejection::UnknownNotice | Rejection::NotSubscribed => {
                StatusCode::NOT_FOUND
            }
            Rejection::NoAddress => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::CodeInvalid => StatusCode::UNAUTHORIZED,
            Rejection::FxRateMissing { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let mut problem = Problem::new(status, code, rejection.to_string());
        problem.params = rejection_params(&rejection);
        match &rejection {
            Rejection::SeatUnavailable { seats } => problem = problem.with("seats", json!(seats)),
            Rejection::AlreadyCheckedIn {
                first_checked_in_at_ms,
            } => problem = problem.with("first_checked_in_at_ms", json!(first_checked_in_at_ms)),
            Rejection::PaymentInProgress { payment_id } => {
                problem = problem.with("payment_id", json!(payment_id))
            }
            Rejection::AlreadyWaitlisted { position } => problem = problem.with("position", json!(position)),
            Rejection::SalesNotOpen { opens_at_ms } => {
                problem = problem.with("opens_at_ms", json!(opens_at_ms))
            }
            Rejection::SalesClosed { closed_at_ms } => {
                problem = problem.with("closed_at_ms", json!(closed_at_ms))
            }
            Rejection::CustomerLimit { limit, current } => {
                problem = problem
                    .with("limit", json!(limit))
                    .with("current", json!(current))
            }
            _ => {}
        }
        problem
    }
}

impl From<RouteError> for Problem {
    fn from(error: RouteError) -> Self {
        match error {
            RouteError::Unavailable { reason } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("no leader could be reached ({reason}); nothing was changed, retry later"),
            ),
            RouteError::OutcomeUnknown { request_id, reason } => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "outcome_unknown",
                format!(
                    "the request may or may not have been applied ({reason}); retry with the same Idempotency-Key to learn its outcome"
                ),
            )
            // The id the write is known by inside the cluster (a client's
            // key is scoped to the caller, so this is not the key itself).
            .with("write_id", json!(request_id.as_str())),
        }
    }
}
