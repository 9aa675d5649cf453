//! The client-facing HTTP API of one node (see `docs/http-api.md`).
//!
//! Handlers parse and validate input, turn it into a booking
//! [`Command`](booking::Command) or [`Query`](booking::Query), hand it to the
//! [`Router`], and render the answer. A rejected request never reaches the
//! state machine unless the rejection depends on state, and then the state
//! machine rejects it without effect.
//!
//! Where things are:
//! - `routes.rs`: the route table (method, path, access, handler) and the
//!   middleware; `openapi.rs` builds `/openapi.json` from the same table.
//! - `client.rs`: the HTTP client of this API (with its retry rule), for
//!   the admin command, the benchmarks, the demo and the tests.
//! - `dto.rs`: every JSON shape a client sends or receives, converted from
//!   and to the core's types; nothing else here serializes a core type.
//! - `respond.rs`: what handlers share (ids, request ids, submitting,
//!   reading, rendering an outcome).
//! - `problem.rs`: `application/problem+json`, and the status and code of
//!   every [`booking::Rejection`].
//! - one file per domain's handlers: `events.rs`, `bookings.rs` (holds and
//!   orders), `tickets.rs`, `payments.rs`, `accounts.rs`, `catalog.rs`,
//!   `live.rs` (seat maps, waitlist, reminders), `ops.rs` (health, cluster,
//!   admin).
//!
//! This crate does not decide where a request runs (the router does) and
//! does not know how anything is stored.

mod accounts;
pub mod auth;
mod bookings;
pub mod cache;
mod catalog;
pub mod client;
pub mod dto;
mod events;
mod extract;
pub mod freshness;
pub mod i18n;
pub mod limits;
mod live;
pub mod logins;
mod openapi;
mod ops;
pub mod outbound;
pub mod payments;
mod prices;
mod problem;
mod regions;
pub mod request_ids;
mod respond;
mod routes;
pub mod serve;
pub mod telemetry;
pub mod tickets;

use std::sync::Arc;

use router::Router;

pub use auth::{AuthKeys, Caller};
pub use extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
pub use openapi::openapi;
pub use problem::Problem;
pub(crate) use respond::{
    ApiResult, ReadOptions, applied_index, event_id, in_zone, parse_id, query_zone, read, read_and_render,
    render, request_id, require_caller, scoped_request_id, submit, venue_zone,
};
pub use routes::{Endpoint, app, endpoints};
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
    /// Rendered answers kept for identical requests (see `cache`).
    pub cache: Arc<cache::ReadCache>,
    /// Request metrics for `/metrics` (see `telemetry`).
    pub telemetry: Arc<telemetry::Telemetry>,
}

/// Sends a guest's one-time code to their address (the node's e-mail
/// channel: SMTP, or the log when no relay is configured), written in
/// `lang`, the language the request was answered in.
pub trait CodeSender: Send + Sync + 'static {
    fn send_code<'a>(
        &'a self,
        email: &'a str,
        code: &'a str,
        valid_for: std::time::Duration,
        lang: i18n::Lang,
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
