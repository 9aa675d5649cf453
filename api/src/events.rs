//! Creating and reading events (their seat maps and rules).

use axum::extract::State;
use axum::http::HeaderMap;
use booking::{Command, EventAnswer, EventCommand, EventId, EventQuery, Query, QueryResult, RegionId};
use serde::Deserialize;

use crate::cache;
use crate::freshness::{self, Level, Plan, Served};
use crate::prices::Display;
use crate::{
    ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Caller, Problem, ReadOptions, applied_index, catalog,
    dto, event_id, render, request_id,
};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateEventBody {
    event_id: u64,
    spec: dto::EventSpec,
    /// Where the event's inventory leader should live; default: this node's region.
    home_region: Option<RegionId>,
    /// Give the event a Raft group of its own (a big on-sale).
    #[serde(default)]
    dedicated_group: bool,
    /// What the event's voters must survive: `node` (default: all at home,
    /// fast writes) or `region` (spread over three regions, on a group of its
    /// own: a write pays a WAN round trip, and the sale goes on when its home
    /// region is lost).
    survive: Option<booking::Survive>,
    /// What the catalog says about it (searchable in every region).
    listing: Option<catalog::ListingBody>,
    /// Create it as a draft: no holds, not searchable, until published.
    #[serde(default)]
    draft: bool,
}

pub(crate) async fn create_event(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateEventBody>,
) -> ApiResult {
    caller.require_staff()?;
    let spec = booking::EventSpec::from(body.spec);
    spec.validate()?;
    let event_id = EventId(body.event_id);
    // Home: where the organiser says, else the region that homes the venue's
    // country, else this node's region.
    let venue_region = match (&body.home_region, &body.listing) {
        (None, Some(listing)) => catalog::venue_country(&state, listing.venue_id)
            .await?
            .and_then(|country| crate::regions::of_country(&state, &country)),
        _ => None,
    };
    let home_region = body
        .home_region
        .clone()
        .or(venue_region)
        .unwrap_or_else(|| state.router.region().clone());
    let listing = match body.listing {
        Some(listing) => Some(listing.into_listing(&state, &spec, home_region.clone()).await?),
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
                    spec,
                    ticket_salt,
                    draft: body.draft,
                },
            ),
            Some(home_region),
            match body.survive {
                Some(booking::Survive::Region) => Some(booking::Survive::Region),
                _ => body.dedicated_group.then_some(booking::Survive::Node),
            },
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

pub(crate) async fn get_event(
    State(state): State<AppState>,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let event = event_id(&raw_event)?;
    let query = Query::Event(event, EventQuery::View);
    let level = Level::asked(&options, Level::Linearizable)?;
    let plan = freshness::plan(&state, level, &query)?;
    let currency = options.currency;
    // A `bounded` seat map from a replica in this region is kept by time; a
    // `local` one from this node's replica, by index (see `cache`); one read
    // through the leader is not kept. The keys' indexes are read before
    // anything the answer is made of.
    match plan {
        Plan::Here(replica, now) if matches!(level, Level::Bounded { .. }) => {
            match stamped_key(&state, replica.group_id, event, currency.as_deref()) {
                Some(key) => stamped_seat_map(&state, replica, now, level, key, event, currency).await,
                None => answer_seat_map(&state, Plan::Here(replica, now), None, event, currency).await,
            }
        }
        Plan::Neighbour(nodes, group, level @ Level::Bounded { .. }) => {
            let Some(key) = stamped_key(&state, group, event, currency.as_deref()) else {
                return answer_seat_map(
                    &state,
                    Plan::Neighbour(nodes, group, level),
                    None,
                    event,
                    currency,
                )
                .await;
            };
            borrowed_seat_map(state, Lenders { nodes, group, level }, key, event, currency).await
        }
        Plan::Here(..) => {
            let key = seat_map_key(&state, event, currency.as_deref());
            answer_seat_map(&state, plan, key, event, currency).await
        }
        _ => answer_seat_map(&state, plan, None, event, currency).await,
    }
}

/// Answers a seat-map read the way `plan` says, from the read cache when
/// `key` is there, keeping the answer under `key`.
async fn answer_seat_map(
    state: &AppState,
    plan: Plan,
    key: Option<cache::Key>,
    event: EventId,
    currency: Option<String>,
) -> ApiResult {
    let query = Query::Event(event, EventQuery::View);
    let (answer, freshness) = match freshness::answer_unless_cached(state, plan, query, key.as_ref()).await? {
        Served::Cached(response) => return Ok(response),
        Served::Answer(answer, freshness) => (answer, freshness),
    };
    let body = seat_map_body(state, answer, event, currency.as_deref()).await?;
    if let Some(key) = key {
        state.cache.put(key, body.clone());
    }
    Ok(freshness.respond(cache::json_response(body)))
}

/// The seat map in `answer`, in the venue's time zone and with display
/// prices in the asked (or this region's) currency, serialized.
async fn seat_map_body(
    state: &AppState,
    answer: QueryResult,
    event: EventId,
    currency: Option<&str>,
) -> Result<axum::body::Bytes, Problem> {
    let QueryResult::Event(EventAnswer::View(Some(view))) = answer else {
        return Err(Problem::not_found("unknown_event", "no such event"));
    };
    let display = Display::asked(state, currency).await?;
    let zone = crate::venue_zone(state, event);
    let mut event = crate::in_zone(dto::Event::from(view), zone.as_deref());
    if let Some(display) = &display {
        display.event(&mut event)?;
    }
    Ok(cache::to_body(&event))
}

/// A `bounded` seat map from this node's own replica: the stamped answer
/// serves while it is within the bound and either the replica has applied
/// nothing since (it is exact) or it is younger than `cache::REFRESH_AFTER`;
/// otherwise it is rendered afresh and kept.
async fn stamped_seat_map(
    state: &AppState,
    replica: transport::replicas::GroupReplica,
    now: freshness::Freshness,
    level: Level,
    key: cache::Key,
    event: EventId,
    currency: Option<String>,
) -> ApiResult {
    let max_staleness_ms = bound(level);
    let now_ms = transport::wall_clock_ms();
    let exact = |stamp: &cache::Stamp| stamp.index.is_some() && stamp.index == now.index;
    let usable = |stamp: &cache::Stamp| {
        exact(stamp) || (stamp.staleness_ms(now_ms) <= max_staleness_ms && stamp.age() < cache::REFRESH_AFTER)
    };
    if let Some((body, stamp)) = state.cache.get_stamped(&key, usable) {
        // An exact answer is as fresh as the replica is now.
        let shown = if exact(&stamp) {
            now
        } else {
            freshness::of_stamp(level, &stamp)
        };
        return Ok(shown.respond(cache::json_response(body)));
    }
    let (node, index, closed_ms) = (now.served_by, now.index, now.closed_ms);
    let plan = Plan::Here(replica, now);
    let (answer, freshness) = freshness::answer(state, plan, Query::Event(event, EventQuery::View)).await?;
    let body = seat_map_body(state, answer, event, currency.as_deref()).await?;
    if let (Some(node), Some(closed_ms)) = (node, closed_ms) {
        state.cache.put_stamped(key, body.clone(), node, index, closed_ms);
    }
    Ok(freshness.respond(cache::json_response(body)))
}

/// The replicas in this node's region that a seat map may be borrowed from.
struct Lenders {
    nodes: Vec<u64>,
    group: booking::GroupId,
    level: Level,
}

/// A `bounded` seat-map read on a node with no replica of the event's
/// group: a borrowed answer still within the bound serves (and, once it is
/// older than `cache::REFRESH_AFTER`, a newer one is borrowed behind it);
/// otherwise one is borrowed now.
async fn borrowed_seat_map(
    state: AppState,
    lenders: Lenders,
    key: cache::Key,
    event: EventId,
    currency: Option<String>,
) -> ApiResult {
    let (max_staleness_ms, now_ms) = (bound(lenders.level), transport::wall_clock_ms());
    let within = |stamp: &cache::Stamp| stamp.staleness_ms(now_ms) <= max_staleness_ms;
    if let Some((body, stamp)) = state.cache.get_stamped(&key, within) {
        let freshness = freshness::of_stamp(lenders.level, &stamp);
        if stamp.claim_refresh() {
            let state = state.clone();
            tokio::spawn(async move {
                // A failed refresh leaves the old answer to age out of its bound.
                let _ = borrow_seat_map(&state, lenders, key, event, currency.as_deref()).await;
                stamp.refresh_done();
            });
        }
        return Ok(freshness.respond(cache::json_response(body)));
    }
    let (body, freshness) = borrow_seat_map(&state, lenders, key, event, currency.as_deref()).await?;
    Ok(freshness.respond(cache::json_response(body)))
}

/// Reads the seat map from a lender (or, as `freshness::answer` falls back,
/// the leader) and keeps it under `key` if a lender answered.
async fn borrow_seat_map(
    state: &AppState,
    lenders: Lenders,
    key: cache::Key,
    event: EventId,
    currency: Option<&str>,
) -> Result<(axum::body::Bytes, freshness::Freshness), Problem> {
    let plan = Plan::Neighbour(lenders.nodes, lenders.group, lenders.level);
    let (answer, freshness) = freshness::answer(state, plan, Query::Event(event, EventQuery::View)).await?;
    let body = seat_map_body(state, answer, event, currency).await?;
    if let (Some(node), Some(closed_ms)) = (freshness.served_by, freshness.closed_ms) {
        state
            .cache
            .put_stamped(key, body.clone(), node, freshness.index, closed_ms);
    }
    Ok((body, freshness))
}

/// The staleness bound of a read kept by time (only `bounded` reads are).
fn bound(level: Level) -> u64 {
    match level {
        Level::Bounded { max_staleness_ms, .. } => max_staleness_ms,
        Level::Linearizable | Level::Local => unreachable!("only bounded reads are kept by time"),
    }
}

/// The key of a seat map kept by time: its index is in its stamp, not in
/// the key (see `seat_map_key_at`).
fn stamped_key(
    state: &AppState,
    group: booking::GroupId,
    event: EventId,
    currency: Option<&str>,
) -> Option<cache::Key> {
    seat_map_key_at(state, "seat-map-stamped", group, 0, event, currency)
}

/// What a local seat map is rendered from: the event group's applied index
/// on this node, and the metadata group's (rates and the region table decide
/// the display prices). Read before the query runs (see `cache`).
fn seat_map_key(state: &AppState, event: EventId, currency: Option<&str>) -> Option<cache::Key> {
    let group = state
        .router
        .with_local_map(|map| map.placements.get(&event).copied())
        .flatten()?;
    seat_map_key_at(
        state,
        "seat-map",
        group,
        applied_index(state, group)?,
        event,
        currency,
    )
}

/// A seat map's key: the event and the asked currency, the event group's
/// index `applied`, and the metadata group's on this node (rates and the
/// region table decide the display prices).
fn seat_map_key_at(
    state: &AppState,
    kind: &'static str,
    group: booking::GroupId,
    applied: u64,
    event: EventId,
    currency: Option<&str>,
) -> Option<cache::Key> {
    Some(cache::Key {
        kind,
        group,
        applied,
        also: (booking::META_GROUP, applied_index(state, booking::META_GROUP)?),
        request: format!("{}|{}", event.0, currency.unwrap_or("")),
    })
}
