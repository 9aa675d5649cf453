//! The route table: every endpoint with its method, path, access and
//! handler. The router and `/openapi.json` are both built from it.

use axum::Router as HttpRouter;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response as HttpResponse;
use axum::routing::{MethodRouter, get, post, put};
use booking::{Command, EventCommand};
use utoipa::openapi::{Ref, RefOr, schema::Schema};

use crate::{
    Access, AppState, MAX_BODY_BYTES, Problem, accounts, bookings, catalog, dto, events, live, openapi, ops,
    payments, regions, request_ids, tickets,
};

/// One route: how it is served and how it is documented.
pub struct Endpoint {
    pub method: axum::http::Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// The status of a success.
    pub ok: u16,
    /// The JSON body it takes, and whether it must be there.
    pub body: Option<(Doc, bool)>,
    /// The JSON body of a success, when it is one of the API's types.
    pub answer: Option<Doc>,
    /// Its query parameters.
    pub query: Option<QueryDoc>,
    handler: MethodRouter<AppState>,
}

/// The schemas a route's document refers to, by name.
pub type Components = Vec<(String, RefOr<Schema>)>;

/// A type's place in the document: a reference to it, with it and every
/// schema it refers to added to `components`.
pub type Doc = fn(&mut Components) -> RefOr<Schema>;

/// A route's query parameters, from the struct they are read into.
pub type QueryDoc = fn() -> Vec<utoipa::openapi::path::Parameter>;

pub fn query<T: utoipa::IntoParams>() -> Vec<utoipa::openapi::path::Parameter> {
    T::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query))
}

pub fn doc<T: utoipa::ToSchema>(components: &mut Components) -> RefOr<Schema> {
    components.push((T::name().into_owned(), T::schema()));
    T::schemas(components);
    Ref::from_schema_name(T::name()).into()
}

impl Endpoint {
    /// Takes a required JSON body of `doc`'s type.
    fn takes(mut self, doc: Doc) -> Self {
        self.body = Some((doc, true));
        self
    }

    /// Takes a JSON body of `doc`'s type, or none.
    fn may_take(mut self, doc: Doc) -> Self {
        self.body = Some((doc, false));
        self
    }

    /// Reads the query parameters of `doc`'s type.
    fn asks(mut self, doc: QueryDoc) -> Self {
        self.query = Some(doc);
        self
    }

    /// Answers a success with `doc`'s type.
    fn gives(mut self, doc: Doc) -> Self {
        self.answer = Some(doc);
        self
    }
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
        body: None,
        answer: None,
        query: None,
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
            "/livez",
            Public,
            200,
            "The process serves HTTP (restart it if this fails)",
            get(ops::livez),
        ),
        e(
            Method::GET,
            "/readyz",
            Public,
            200,
            "This node can serve its share: its replicas are led and caught up, its clock agrees",
            get(ops::readyz),
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
            get(openapi::openapi_json),
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
        )
        .takes(doc::<ops::CreateGroupBody>),
        e(
            Method::POST,
            "/v1/admin/groups/{group_id}/transfer-leader",
            AdminToken,
            200,
            "Hand a group's leadership to another node",
            post(ops::transfer_leader),
        )
        .takes(doc::<ops::TransferBody>),
        e(
            Method::POST,
            "/v1/admin/events/{event_id}/placement",
            AdminToken,
            200,
            "Place an event on a group",
            post(ops::place_event),
        )
        .takes(doc::<ops::PlaceEventBody>),
        e(
            Method::POST,
            "/v1/admin/nodes",
            AdminToken,
            200,
            "Add a node",
            post(ops::add_node),
        )
        .takes(doc::<ops::AddNodeBody>),
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
        )
        .takes(doc::<accounts::CreateUserBody>)
        .gives(doc::<dto::Account>),
        e(
            Method::POST,
            "/v1/admin/users/{customer_id}/role",
            Operator,
            200,
            "Change an account's role",
            post(accounts::set_role),
        )
        .takes(doc::<accounts::RoleBody>)
        .gives(doc::<dto::Account>),
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
        )
        .takes(doc::<accounts::RegisterBody>)
        .gives(doc::<dto::Tokens>),
        e(
            Method::POST,
            "/v1/auth/login",
            Public,
            200,
            "Log in",
            post(accounts::login),
        )
        .takes(doc::<accounts::LoginBody>)
        .gives(doc::<dto::Tokens>),
        e(
            Method::POST,
            "/v1/auth/refresh",
            Public,
            200,
            "Rotate a refresh token",
            post(accounts::refresh),
        )
        .takes(doc::<accounts::RefreshBody>)
        .gives(doc::<dto::Tokens>),
        e(
            Method::POST,
            "/v1/auth/logout",
            Public,
            204,
            "End a session",
            post(accounts::logout),
        )
        .takes(doc::<accounts::RefreshBody>),
        e(
            Method::POST,
            "/v1/auth/guest",
            Public,
            202,
            "Send a guest a one-time code by e-mail",
            post(accounts::guest),
        )
        .takes(doc::<accounts::GuestBody>)
        .gives(doc::<dto::GuestChallenge>),
        e(
            Method::POST,
            "/v1/auth/guest/verify",
            Public,
            200,
            "A guest token for the code from the e-mail",
            post(accounts::guest_verify),
        )
        .takes(doc::<accounts::GuestVerifyBody>)
        .gives(doc::<dto::Tokens>),
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
            get(tickets::ticket_public_key),
        ),
        e(
            Method::POST,
            "/v1/check-in",
            Staff,
            200,
            "Admit a scanned ticket",
            post(tickets::check_in_scanned),
        )
        .takes(doc::<tickets::ScanBody>)
        .gives(doc::<dto::CheckedIn>),
        e(
            Method::POST,
            "/v1/events",
            Staff,
            201,
            "Create an event",
            post(events::create_event),
        )
        .takes(doc::<events::CreateEventBody>)
        .gives(doc::<dto::EventCreated>),
        e(
            Method::GET,
            "/v1/events",
            Public,
            200,
            "Search event listings",
            get(catalog::search),
        )
        .asks(query::<catalog::SearchQuery>)
        .gives(doc::<dto::ListingPage>),
        e(
            Method::POST,
            "/v1/events/{event_id}/publish",
            Staff,
            200,
            "Put a draft event on sale",
            post(catalog::publish),
        )
        .gives(doc::<dto::Published>),
        e(
            Method::GET,
            "/v1/fx-rates",
            Public,
            200,
            "Exchange rates used for display prices",
            get(catalog::get_fx_rates),
        )
        .gives(doc::<dto::FxRates>),
        e(
            Method::PUT,
            "/v1/admin/fx-rates",
            Operator,
            200,
            "Set exchange rates from one base currency",
            put(catalog::put_fx_rates),
        )
        .takes(doc::<catalog::FxRatesBody>)
        .gives(doc::<dto::FxRatesSet>),
        e(
            Method::GET,
            "/v1/regions",
            Public,
            200,
            "The region table: each region's name, currency, language, time zone and endpoint",
            get(regions::list),
        ),
        e(
            Method::PUT,
            "/v1/admin/regions/{region_id}",
            Operator,
            200,
            "Describe a region (its default currency, language, time zone and endpoint)",
            put(regions::put),
        )
        .takes(doc::<regions::RegionBody>),
        e(
            Method::POST,
            "/v1/venues",
            Staff,
            201,
            "Add a venue",
            post(catalog::create_venue),
        )
        .takes(doc::<catalog::VenueBody>)
        .gives(doc::<dto::Venue>),
        e(
            Method::GET,
            "/v1/venues",
            Public,
            200,
            "List venues",
            get(catalog::list_venues),
        )
        .asks(query::<catalog::PageQuery>)
        .gives(doc::<dto::VenuePage>),
        e(
            Method::GET,
            "/v1/venues/{venue_id}",
            Public,
            200,
            "A venue",
            get(catalog::get_venue),
        )
        .asks(query::<crate::respond::ReadOptions>)
        .gives(doc::<dto::Venue>),
        e(
            Method::GET,
            "/v1/events/{event_id}/listing",
            Public,
            200,
            "An event's listing",
            get(catalog::get_listing),
        )
        .asks(query::<crate::respond::ReadOptions>)
        .gives(doc::<dto::Listing>),
        e(
            Method::GET,
            "/v1/me/orders",
            Customer,
            200,
            "The caller's orders, newest first",
            get(catalog::my_orders),
        )
        .gives(doc::<dto::Orders>),
        e(
            Method::GET,
            "/v1/events/{event_id}",
            Public,
            200,
            "An event's seat map and counts",
            get(events::get_event),
        )
        .asks(query::<crate::respond::ReadOptions>)
        .gives(doc::<dto::Event>),
        e(
            Method::POST,
            "/v1/events/{event_id}/cancel",
            Staff,
            200,
            "Cancel an event and refund it",
            post(payments::cancel_event),
        )
        .gives(doc::<dto::EventCancelled>),
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
        )
        .takes(doc::<live::JoinBody>)
        .gives(doc::<dto::WaitlistEntry>),
        e(
            Method::GET,
            "/v1/events/{event_id}/waitlist",
            Customer,
            200,
            "The caller's place on the waitlist",
            get(live::get_waitlist),
        )
        .asks(query::<live::HolderQuery>)
        .gives(doc::<dto::WaitlistEntry>),
        e(
            Method::POST,
            "/v1/events/{event_id}/waitlist/leave",
            Customer,
            200,
            "Leave the waitlist",
            post(live::leave_waitlist),
        )
        .may_take(doc::<live::HolderBody>)
        .gives(doc::<dto::EventRef>),
        e(
            Method::POST,
            "/v1/events/{event_id}/reminders",
            Customer,
            201,
            "Be reminded before the event starts",
            post(live::subscribe_reminder),
        )
        .may_take(doc::<live::ReminderBody>)
        .gives(doc::<dto::Notice>),
        e(
            Method::POST,
            "/v1/events/{event_id}/reminders/cancel",
            Customer,
            200,
            "Stop the reminder",
            post(live::unsubscribe_reminder),
        )
        .may_take(doc::<live::HolderBody>)
        .gives(doc::<dto::EventRef>),
        e(
            Method::GET,
            "/v1/events/{event_id}/notices",
            Customer,
            200,
            "The caller's notifications about the event and their delivery",
            get(live::notices),
        )
        .asks(query::<live::HolderQuery>)
        .gives(doc::<dto::Notices>),
        e(
            Method::PUT,
            "/v1/me/notifications",
            Customer,
            200,
            "Choose how notifications reach you (email, webhook, log)",
            put(live::set_notifications),
        )
        .takes(doc::<live::PreferenceBody>)
        .gives(doc::<dto::Account>),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds",
            Customer,
            201,
            "Hold seats or places",
            post(bookings::create_hold),
        )
        .takes(doc::<bookings::HoldBody>)
        .gives(doc::<dto::Hold>),
        e(
            Method::GET,
            "/v1/events/{event_id}/holds",
            Staff,
            200,
            "A page of the event's holds, filtered by status and holder",
            get(bookings::list_holds),
        )
        .asks(query::<bookings::ListQuery>)
        .gives(doc::<dto::HoldPage>),
        e(
            Method::GET,
            "/v1/events/{event_id}/orders",
            Staff,
            200,
            "A page of the event's orders, filtered by status and holder",
            get(bookings::list_orders),
        )
        .asks(query::<bookings::ListQuery>)
        .gives(doc::<dto::OrderPage>),
        e(
            Method::GET,
            "/v1/events/{event_id}/seats",
            Public,
            200,
            "Only the seats asked about (staff also see who has each)",
            get(bookings::seats),
        )
        .asks(query::<bookings::SeatsQuery>)
        .gives(doc::<dto::Seats>),
        e(
            Method::GET,
            "/v1/events/{event_id}/holds/{hold_id}",
            Customer,
            200,
            "A hold with its countdown",
            get(bookings::get_hold),
        )
        .asks(query::<crate::respond::ReadOptions>)
        .gives(doc::<dto::Hold>),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds/{hold_id}/extend",
            Customer,
            200,
            "Extend a hold once",
            bookings::hold_route(|event_id, hold_id, holder| {
                Command::Event(event_id, EventCommand::ExtendHold { hold_id, holder })
            }),
        )
        .may_take(doc::<live::HolderBody>)
        .gives(doc::<dto::Hold>),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds/{hold_id}/release",
            Customer,
            200,
            "Release a hold",
            bookings::hold_route(|event_id, hold_id, holder| {
                Command::Event(event_id, EventCommand::ReleaseHold { hold_id, holder })
            }),
        )
        .may_take(doc::<live::HolderBody>)
        .gives(doc::<dto::Released>),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds/{hold_id}/confirm",
            Customer,
            201,
            "Confirm a free hold, or any hold as staff",
            post(bookings::confirm_hold),
        )
        .may_take(doc::<live::HolderBody>)
        .gives(doc::<dto::Order>),
        e(
            Method::POST,
            "/v1/events/{event_id}/holds/{hold_id}/checkout",
            Customer,
            202,
            "Pay for a hold",
            post(payments::checkout),
        )
        .may_take(doc::<payments::CheckoutBody>)
        .gives(doc::<dto::Payment>),
        e(
            Method::GET,
            "/v1/events/{event_id}/payments/{payment_id}",
            Customer,
            200,
            "A payment and its history",
            get(payments::get_payment),
        )
        .gives(doc::<dto::Payment>),
        e(
            Method::POST,
            "/v1/payments/webhook",
            Provider,
            200,
            "The provider's signed answer",
            post(payments::webhook),
        )
        .takes(doc::<payments::WebhookBody>),
        e(
            Method::GET,
            "/v1/events/{event_id}/orders/{order_id}",
            Customer,
            200,
            "An order",
            get(bookings::get_order),
        )
        .asks(query::<crate::respond::ReadOptions>)
        .gives(doc::<dto::Order>),
        e(
            Method::POST,
            "/v1/events/{event_id}/orders/{order_id}/cancel",
            Customer,
            200,
            "Cancel an order (refunded if paid)",
            post(bookings::cancel_order),
        )
        .may_take(doc::<live::HolderBody>)
        .gives(doc::<dto::Order>),
        e(
            Method::GET,
            "/v1/events/{event_id}/tickets/{code}",
            Customer,
            200,
            "A ticket with its signed QR payload",
            get(tickets::get_ticket),
        )
        .asks(query::<crate::respond::ReadOptions>)
        .gives(doc::<dto::Ticket>),
        e(
            Method::GET,
            "/v1/events/{event_id}/tickets/{code}/qr.svg",
            Customer,
            200,
            "A ticket's QR code as SVG",
            get(tickets::get_ticket_qr),
        ),
        e(
            Method::POST,
            "/v1/events/{event_id}/tickets/{code}/check-in",
            Staff,
            200,
            "Admit a ticket by code",
            post(tickets::check_in),
        )
        .gives(doc::<dto::CheckedIn>),
    ]
}

pub fn app(state: AppState) -> HttpRouter {
    let mut router = HttpRouter::new();
    for endpoint in endpoints() {
        // Each route counts its own answers under its template.
        let counted = endpoint.handler.route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), endpoint.path),
            crate::telemetry::middleware,
        ));
        router = router.route(endpoint.path, counted);
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::i18n::middleware,
        ))
        .layer(axum::middleware::from_fn(request_ids::middleware))
        .layer(axum::middleware::from_fn(security_headers))
        // A span per request for the logs (at debug: free when off), with
        // credentials marked sensitive so that no layer prints them.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::DEBUG))
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::DEBUG))
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(
            tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer::new([
                axum::http::header::AUTHORIZATION,
                axum::http::header::COOKIE,
                axum::http::HeaderName::from_static(crate::payments::SIGNATURE_HEADER),
            ]),
        )
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
