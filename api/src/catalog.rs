//! Catalog routes (venues, event listings, search) and a customer's orders.
//!
//! The catalog lives in the metadata group, which every node replicates.
//! Search and venue lists are answered from this node's own replica: fast,
//! available in every region even when others are cut off, and possibly a
//! little behind (every answer says how far: `as_of_index`, the replica's
//! applied log index). A single listing or venue is read linearizably unless
//! `?consistency=local` is given, like every other read.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::collections::BTreeMap;

use booking::{
    CatalogAnswer, CatalogCommand, CatalogQuery, CatalogSuccess, Command, Currency, EventCommand, EventId,
    EventSuccess, ListingStatus, META_GROUP, NewListing, NewVenue, Rate, RegionId, Rejection, Search,
    Success,
};
use booking::{Query, QueryResult};
use serde::Deserialize;

use crate::auth::Caller;
use crate::cache;
use crate::freshness::{self, Level, Plan, Served};
use crate::prices::Display;
use crate::{
    ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Problem, ReadOptions, dto, event_id, parse_id, read,
    render, request_id,
};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The applied index of this node's metadata replica: how fresh a local answer is.
fn as_of_index(state: &AppState) -> Option<u64> {
    crate::applied_index(state, META_GROUP)
}

/// Answers a metadata-group query from this node's replica.
async fn local(state: &AppState, query: Query) -> Result<QueryResult, Problem> {
    Ok(state.router.query_local(query).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FxRatesBody {
    /// The currency the rates are from.
    base: String,
    /// Per quote currency, what one `base` buys: a decimal string (`"157.43"`).
    rates: BTreeMap<String, String>,
    /// When the rates were observed; default: now.
    as_of_ms: Option<u64>,
}

/// Sets exchange rates (operators): one `base` buys `rates[quote]`.
pub(crate) async fn put_fx_rates(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<FxRatesBody>,
) -> ApiResult {
    caller.require_operator()?;
    let base = Currency::new(&body.base).map_err(|e| Problem::invalid_field("base", e.to_string()))?;
    let mut rates = Vec::with_capacity(body.rates.len());
    for (quote, rate) in &body.rates {
        let field = format!("rates.{quote}");
        let quote = Currency::new(quote).map_err(|e| Problem::invalid_field(&field, e.to_string()))?;
        let rate = Rate::parse(rate).map_err(|e| Problem::invalid_field(&field, e.to_string()))?;
        rates.push((quote, rate));
    }
    let command = Command::Catalog(CatalogCommand::SetFxRates {
        base,
        rates,
        as_of_ms: body.as_of_ms.unwrap_or_else(now_ms),
    });
    render(
        state
            .router
            .submit_to_group(META_GROUP, request_id(&headers, &caller)?, command)
            .await?,
    )
}

/// Every exchange rate, from this node's replica.
pub(crate) async fn get_fx_rates(State(state): State<AppState>) -> ApiResult {
    let QueryResult::Catalog(CatalogAnswer::FxRates(rates)) =
        local(&state, Query::Catalog(CatalogQuery::FxRates)).await?
    else {
        return Err(Problem::internal("unexpected answer to a rate list"));
    };
    let rates: Vec<dto::FxRate> = rates.into_iter().map(dto::FxRate::from).collect();
    Ok(Json(dto::FxRates {
        rates,
        as_of_index: as_of_index(&state),
    })
    .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VenueBody {
    name: String,
    address: String,
    city: String,
    country: String,
    time_zone: String,
}

pub(crate) async fn create_venue(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<VenueBody>,
) -> ApiResult {
    caller.require_staff()?;
    let venue = NewVenue {
        name: body.name,
        address: body.address,
        city: body.city,
        country: body.country,
        time_zone: body.time_zone,
    };
    venue.validate()?;
    if !dto::is_known_zone(&venue.time_zone) {
        return Err(Problem::invalid_field(
            "time_zone",
            format!("{:?} is not a time zone of the IANA database", venue.time_zone),
        ));
    }
    let command = Command::Catalog(CatalogCommand::CreateVenue { venue });
    match state
        .router
        .submit_to_group(META_GROUP, request_id(&headers, &caller)?, command)
        .await??
    {
        Success::Catalog(CatalogSuccess::VenueCreated(view)) => {
            Ok((StatusCode::CREATED, Json(dto::Venue::from(view))).into_response())
        }
        other => Err(Problem::unexpected(&other)),
    }
}

pub(crate) async fn get_venue(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let venue_id = parse_id("venue_id", &raw)?;
    match read(&state, &options, Query::Catalog(CatalogQuery::Venue(venue_id))).await? {
        QueryResult::Catalog(CatalogAnswer::Venue(Some(view))) => {
            Ok(Json(dto::Venue::from(view)).into_response())
        }
        _ => Err(Problem::from(Rejection::UnknownVenue)),
    }
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

fn check_limit(limit: Option<u32>) -> Result<u32, Problem> {
    match limit {
        None => Ok(20),
        Some(n) if (1..=booking::catalog::MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Problem::invalid_field("limit", "must be 1..=100")),
    }
}

pub(crate) async fn list_venues(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult {
    let limit = check_limit(page.limit)?;
    let after = match page.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse()
            .map_err(|_| Problem::invalid_field("cursor", "not a cursor from a previous page"))?,
    };
    let QueryResult::Catalog(CatalogAnswer::Venues(venues)) =
        local(&state, Query::Catalog(CatalogQuery::Venues { after, limit })).await?
    else {
        return Err(Problem::internal("unexpected answer to a venue list"));
    };
    let next = (venues.len() == limit as usize)
        .then(|| venues.last().map(|v| v.venue_id.to_string()))
        .flatten();
    let venues: Vec<dto::Venue> = venues.into_iter().map(dto::Venue::from).collect();
    Ok(Json(dto::VenuePage {
        venues,
        next_cursor: next,
        as_of_index: as_of_index(&state),
    })
    .into_response())
}

/// What `POST /v1/events` may say about the event besides its seat map.
#[derive(Deserialize, Clone, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListingBody {
    #[serde(default)]
    description: String,
    category: String,
    #[serde(default)]
    performers: Vec<String>,
    pub(crate) venue_id: u64,
    starts_at_ms: u64,
    ends_at_ms: u64,
}

impl ListingBody {
    /// The listing of an event named `name`, checked before anything is written.
    pub(crate) async fn into_listing(
        self,
        state: &AppState,
        spec: &booking::EventSpec,
        home_region: RegionId,
    ) -> Result<NewListing, Problem> {
        let listing = NewListing {
            name: spec.name.clone(),
            description: self.description,
            category: self.category,
            performers: self.performers,
            venue_id: self.venue_id,
            starts_at_ms: self.starts_at_ms,
            ends_at_ms: self.ends_at_ms,
            home_region,
            currency: spec.currency,
        };
        listing.validate()?;
        // Linearizable: a venue created a moment ago through another node counts.
        let known = matches!(
            state
                .router
                .query(Query::Catalog(CatalogQuery::Venue(listing.venue_id)))
                .await?,
            QueryResult::Catalog(CatalogAnswer::Venue(Some(_)))
        );
        if !known {
            return Err(Problem::from(Rejection::UnknownVenue));
        }
        Ok(listing)
    }
}

/// The country of venue `venue_id` (`None`: no such venue), read through
/// the leader so that a venue created a moment ago elsewhere counts.
pub(crate) async fn venue_country(state: &AppState, venue_id: u64) -> Result<Option<String>, Problem> {
    match state
        .router
        .query(Query::Catalog(CatalogQuery::Venue(venue_id)))
        .await?
    {
        QueryResult::Catalog(CatalogAnswer::Venue(venue)) => Ok(venue.map(|v| v.country)),
        _ => Err(Problem::internal("unexpected answer to a venue query")),
    }
}

/// Writes an event's listing (after the event exists).
pub(crate) async fn put_listing(
    state: &AppState,
    event_id: EventId,
    listing: NewListing,
    status: ListingStatus,
) -> Result<(), Problem> {
    let id = booking::RequestId::new(&format!("listing/{}/{}", event_id.0, uuid::Uuid::new_v4()))?;
    let command = Command::Catalog(CatalogCommand::PutListing {
        event_id,
        listing,
        status,
    });
    state.router.submit_to_group(META_GROUP, id, command).await??;
    Ok(())
}

/// Makes an event's listing follow its lifecycle; an event without a
/// listing is fine. One request id per event and status, so a repeat is one write.
pub(crate) async fn set_listing_status(
    state: &AppState,
    event_id: EventId,
    status: ListingStatus,
) -> Result<(), Problem> {
    let id = booking::RequestId::new(&format!("listing-status/{}/{status:?}", event_id.0))?;
    match state
        .router
        .submit_to_group(
            META_GROUP,
            id,
            Command::Catalog(CatalogCommand::SetListingStatus { event_id, status }),
        )
        .await?
    {
        Ok(_) | Err(Rejection::UnknownEvent) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// `POST /v1/events/{e}/publish` (staff): a draft goes on sale.
pub(crate) async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult {
    caller.require_staff()?;
    let event_id = event_id(&raw)?;
    let command = Command::Event(event_id, EventCommand::Publish);
    match state
        .router
        .submit(request_id(&headers, &caller)?, command)
        .await??
    {
        Success::Event(EventSuccess::Published { event_id, at_ms }) => {
            set_listing_status(&state, event_id, ListingStatus::OnSale).await?;
            let zone = crate::respond::venue_zone(&state, event_id);
            let at = dto::time_in(at_ms, zone.as_deref());
            Ok(Json(dto::Published {
                event_id,
                published_at_ms: at_ms,
                published_at: at,
            })
            .into_response())
        }
        other => Err(Problem::unexpected(&other)),
    }
}

pub(crate) async fn get_listing(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let event_id = event_id(&raw)?;
    match read(
        &state,
        &options,
        Query::Catalog(CatalogQuery::Listing(event_id, now_ms())),
    )
    .await?
    {
        QueryResult::Catalog(CatalogAnswer::Listing(Some(view))) => {
            let display = Display::asked(&state, options.currency.as_deref()).await?;
            Ok(Json(priced(&state, display.as_ref(), dto::Listing::from(view))?).into_response())
        }
        _ => Err(Problem::not_found("unknown_event", "no listing for this event")),
    }
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    city: Option<String>,
    category: Option<String>,
    from_ms: Option<u64>,
    to_ms: Option<u64>,
    cursor: Option<String>,
    limit: Option<u32>,
    /// Default `bounded`: this node's replica answers when within the bound.
    consistency: Option<String>,
    max_staleness_ms: Option<u64>,
    fallback: Option<String>,
    /// Show prices also in this currency (default: the region's).
    currency: Option<String>,
}

/// `listing` with its "from" price, charged and displayed.
fn priced(
    state: &AppState,
    display: Option<&Display>,
    mut listing: dto::Listing,
) -> Result<dto::Listing, Problem> {
    listing.price_from = crate::prices::lowest_price(state, listing.event_id);
    if let Some(display) = display {
        display.listing(&mut listing)?;
    }
    Ok(listing)
}

fn parse_cursor(cursor: &str) -> Result<(u64, EventId), Problem> {
    let bad = || Problem::invalid_field("cursor", "not a cursor from a previous page");
    let (start, event) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((
        start.parse().map_err(|_| bad())?,
        EventId(event.parse().map_err(|_| bad())?),
    ))
}

/// `GET /v1/events`: search the listings, one page at a time.
pub(crate) async fn search(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult {
    let limit = check_limit(query.limit)?;
    let level = Level::asked(
        &ReadOptions {
            consistency: query.consistency.clone(),
            max_staleness_ms: query.max_staleness_ms,
            fallback: query.fallback.clone(),
            currency: None,
        },
        Level::Bounded {
            max_staleness_ms: crate::freshness::DEFAULT_MAX_STALENESS_MS,
            fallback_to_leader: true,
        },
    )?;
    if let (Some(from), Some(to)) = (query.from_ms, query.to_ms)
        && from >= to
    {
        return Err(Problem::invalid_field("to_ms", "must be after from_ms"));
    }
    for (field, value) in [
        ("q", &query.q),
        ("city", &query.city),
        ("category", &query.category),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.len() > booking::catalog::MAX_SHORT)
        {
            return Err(Problem::invalid_field(field, "is too long"));
        }
    }
    let search = Search {
        text: query.q.filter(|q| !q.trim().is_empty()),
        city: query.city,
        category: query.category,
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        after: query.cursor.as_deref().map(parse_cursor).transpose()?,
        limit,
        // Whole seconds, so that one second's identical searches share one
        // answer (a listing shows `ended` up to a second late).
        now_ms: now_ms() / 1000 * 1000,
    };
    // Checked before the cache is asked: a bad currency is an error, cached or not.
    let display = Display::asked(&state, query.currency.as_deref()).await?;
    let request = format!(
        "{}|{}",
        serde_json::to_string(&search).unwrap_or_default(),
        query.currency.as_deref().unwrap_or("")
    );
    let query = Query::Catalog(CatalogQuery::Search(search));
    let plan = freshness::plan(&state, level, &query)?;
    // From this node's replica, the index is read before the query runs:
    // the answer reflects it or a later one, so the cached answer is never
    // older than its key (`cache`). The leader's answers are not cached.
    let applied = match &plan {
        Plan::Here(..) => as_of_index(&state),
        _ => None,
    };
    let key = applied.map(|applied| cache::Key {
        kind: "search",
        group: META_GROUP,
        applied,
        also: (0, 0),
        request,
    });
    let (answer, freshness) = match freshness::answer_unless_cached(&state, plan, query, key.as_ref()).await?
    {
        Served::Cached(response) => return Ok(response),
        Served::Answer(answer, freshness) => (answer, freshness),
    };
    let QueryResult::Catalog(CatalogAnswer::Search(page)) = answer else {
        return Err(Problem::internal("unexpected answer to a search"));
    };
    let next = page.next.map(|(start, event)| format!("{start}.{}", event.0));
    let events = page
        .events
        .into_iter()
        .map(|view| priced(&state, display.as_ref(), dto::Listing::from(view)))
        .collect::<Result<Vec<_>, _>>()?;
    let body = cache::to_body(&dto::ListingPage {
        events,
        next_cursor: next,
        as_of_index: applied,
    });
    if let Some(key) = key {
        state.cache.put(key, body.clone());
    }
    Ok(freshness.respond(cache::json_response(body)))
}

/// `GET /v1/me/orders`: the caller's orders in every group, newest first.
pub(crate) async fn my_orders(State(state): State<AppState>, caller: Caller) -> ApiResult {
    let Some(customer) = caller.customer_id().cloned() else {
        return match caller {
            Caller::Anonymous => Err(crate::auth::login_required()),
            _ => Err(Problem::forbidden("staff have no orders of their own")),
        };
    };
    let groups: Vec<u64> = state
        .router
        .with_local_map(|map| {
            map.groups
                .iter()
                .filter(|&(&id, group)| id != META_GROUP && group.events > 0)
                .map(|(&id, _)| id)
                .collect()
        })
        .unwrap_or_default();
    let mut asks = tokio::task::JoinSet::new();
    for group in groups {
        let router = state.router.clone();
        let customer = customer.clone();
        asks.spawn(async move { router.query_group(group, Query::Orders(customer)).await });
    }
    let mut orders = Vec::new();
    while let Some(answer) = asks.join_next().await {
        let answer = answer.map_err(|e| Problem::internal(e.to_string()))?;
        if let QueryResult::Orders(found) = answer? {
            orders.extend(found);
        }
    }
    orders.sort_by(|a, b| {
        b.created_at_ms
            .cmp(&a.created_at_ms)
            .then(b.order_id.cmp(&a.order_id))
    });
    let shown: Vec<dto::Order> = orders
        .into_iter()
        .map(|order| {
            let zone = crate::venue_zone(&state, order.event_id);
            crate::in_zone(dto::Order::from(order), zone.as_deref())
        })
        .collect();
    Ok(Json(dto::Orders { orders: shown }).into_response())
}
