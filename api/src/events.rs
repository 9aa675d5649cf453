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

#[derive(Deserialize)]
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
    // A seat map from this node's own replica is cached (`cache`); one read
    // through the leader is not, since it answers for the leader's index.
    // The key's indexes are read before anything the answer is made of.
    let key = match &plan {
        Plan::Here(..) => seat_map_key(&state, event, options.currency.as_deref()),
        _ => None,
    };
    let (answer, freshness) = match freshness::answer_unless_cached(&state, plan, query, key.as_ref()).await?
    {
        Served::Cached(response) => return Ok(response),
        Served::Answer(answer, freshness) => (answer, freshness),
    };
    let display = Display::asked(&state, options.currency.as_deref()).await?;
    let zone = crate::venue_zone(&state, event);
    match answer {
        QueryResult::Event(EventAnswer::View(Some(view))) => {
            let mut event = crate::in_zone(dto::Event::from(view), zone.as_deref());
            if let Some(display) = &display {
                display.event(&mut event)?;
            }
            Ok(freshness.respond(cached(&state, key, &event)))
        }
        _ => Err(Problem::not_found("unknown_event", "no such event")),
    }
}

/// What a local seat map is rendered from: the event group's applied index
/// on this node, and the metadata group's (rates and the region table decide
/// the display prices). Read before the query runs (see `cache`).
fn seat_map_key(state: &AppState, event: EventId, currency: Option<&str>) -> Option<cache::Key> {
    let group = state
        .router
        .with_local_map(|map| map.placements.get(&event).copied())
        .flatten()?;
    Some(cache::Key {
        kind: "seat-map",
        group,
        applied: applied_index(state, group)?,
        also: (booking::META_GROUP, applied_index(state, booking::META_GROUP)?),
        request: format!("{}|{}", event.0, currency.unwrap_or("")),
    })
}

/// Serializes `event`, keeping it under `key` when there is one.
fn cached(state: &AppState, key: Option<cache::Key>, event: &dto::Event) -> axum::response::Response {
    let body = cache::to_body(event);
    if let Some(key) = key {
        state.cache.put(key, body.clone());
    }
    cache::json_response(body)
}
