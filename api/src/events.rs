//! Creating and reading events (their seat maps and rules).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use booking::{Command, EventAnswer, EventCommand, EventId, EventQuery, Query, QueryResult, RegionId};
use serde::Deserialize;

use crate::prices::Display;
use crate::{
    ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Caller, Problem, ReadOptions, catalog, dto, event_id,
    read, read_and_render, render, request_id,
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
    let home_region = body
        .home_region
        .clone()
        .unwrap_or_else(|| state.router.region().clone());
    let listing = match body.listing {
        Some(listing) => Some(listing.into_listing(&state, &spec, home_region).await?),
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

pub(crate) async fn get_event(
    State(state): State<AppState>,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let query = Query::Event(event_id(&raw_event)?, EventQuery::View);
    let display = Display::asked(&state, options.currency.as_deref()).await?;
    let Some(display) = display else {
        return read_and_render(&state, &options, query).await;
    };
    match read(&state, &options, query).await? {
        QueryResult::Event(EventAnswer::View(Some(view))) => {
            let mut event = dto::Event::from(view);
            display.event(&mut event)?;
            Ok(Json(event).into_response())
        }
        _ => Err(Problem::not_found("unknown_event", "no such event")),
    }
}
