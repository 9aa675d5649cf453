//! The region table: each region's name, default currency, language and time
//! zone, and its public endpoint.
//!
//! It lives in the cluster map (`booking::RegionInfo`), so every node answers
//! from its own replica with no network hop, and all of them agree. A region
//! that has nodes but no description is shown plain (its id, euros, English,
//! UTC) and marked `described: false`, so an operator sees what to fill in.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use booking::{Command, Currency, MapCommand, RegionId, RegionInfo, Rejection};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Caller;
use crate::{ApiJson, ApiPath, ApiResult, AppState, Problem, render, request_id};

#[derive(Serialize)]
struct RegionView {
    id: RegionId,
    name: String,
    currency: Currency,
    locale: String,
    time_zone: String,
    http_endpoint: Option<String>,
    /// Countries whose venues' events are homed here by default.
    countries: Vec<String>,
    /// Nodes of the cluster in this region.
    nodes: usize,
    /// Whether an operator or a node's config described the region (if not,
    /// the rest of the entry is the plain default).
    described: bool,
}

/// The region table, from this node's replica of the cluster map.
pub(crate) async fn list(State(state): State<AppState>) -> ApiResult {
    let Some((regions, epoch)) = state.router.with_local_map(|map| {
        let mut nodes: BTreeMap<&RegionId, usize> = BTreeMap::new();
        for node in map.nodes.values() {
            *nodes.entry(&node.region).or_default() += 1;
        }
        for region in map.regions.keys() {
            nodes.entry(region).or_default();
        }
        let views: Vec<RegionView> = nodes
            .into_iter()
            .map(|(id, count)| {
                let described = map.regions.get(id);
                let info = described.cloned().unwrap_or_else(|| RegionInfo::plain(id));
                RegionView {
                    id: id.clone(),
                    name: info.name,
                    currency: info.currency,
                    locale: info.locale,
                    time_zone: info.time_zone,
                    http_endpoint: info.http_endpoint,
                    countries: info.countries,
                    nodes: count,
                    described: described.is_some(),
                }
            })
            .collect();
        (views, map.epoch())
    }) else {
        return Err(Rejection::MapNotInitialised.into());
    };
    Ok(Json(json!({
        "this_region": state.router.region(),
        "regions": regions,
        "map_epoch": epoch,
    }))
    .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegionBody {
    name: String,
    currency: String,
    locale: String,
    time_zone: String,
    #[serde(default)]
    http_endpoint: Option<String>,
    #[serde(default)]
    countries: Vec<String>,
}

/// Describes a region, or replaces its description (operators).
pub(crate) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(raw_region): ApiPath<String>,
    ApiJson(body): ApiJson<RegionBody>,
) -> ApiResult {
    caller.require_operator()?;
    let region =
        RegionId::new(&raw_region).map_err(|e| Problem::invalid_field("region_id", e.to_string()))?;
    let currency =
        Currency::new(&body.currency).map_err(|e| Problem::invalid_field("currency", e.to_string()))?;
    let info = RegionInfo {
        name: body.name,
        currency,
        locale: body.locale,
        time_zone: body.time_zone,
        http_endpoint: body.http_endpoint,
        countries: body.countries,
    };
    // Checked here too, so that a bad entry is refused before it is
    // replicated, not only by the state machine.
    info.validate()?;
    if !crate::dto::is_known_zone(&info.time_zone) {
        return Err(Problem::invalid_field(
            "time_zone",
            format!("{:?} is not a time zone of the IANA database", info.time_zone),
        ));
    }
    let command = Command::Map(MapCommand::SetRegion { region, info });
    render(
        state
            .router
            .submit(request_id(&headers, &caller)?, command)
            .await?,
    )
}

/// The region that homes events at venues in `country`, from the region table.
pub(crate) fn of_country(state: &AppState, country: &str) -> Option<RegionId> {
    state
        .router
        .with_local_map(|map| map.region_of_country(country).cloned())
        .flatten()
}

/// The IANA time zone of `region`, from the region table (`None`: not
/// described yet).
pub(crate) fn zone_of(state: &AppState, region: &RegionId) -> Option<String> {
    state
        .router
        .with_local_map(|map| map.regions.get(region).map(|info| info.time_zone.clone()))
        .flatten()
}

/// An account as clients see it, its times in its home region's zone.
pub(crate) fn account(state: &AppState, view: booking::AccountView) -> crate::dto::Account {
    let zone = zone_of(state, &view.region);
    crate::respond::in_zone(crate::dto::Account::from(view), zone.as_deref())
}

/// The currency this node's region shows prices in when a request names none.
pub(crate) fn local_currency(state: &AppState) -> Option<Currency> {
    let region = state.router.region().clone();
    state
        .router
        .with_local_map(|map| map.regions.get(&region).map(|info| info.currency))
        .flatten()
}

/// The default locale of this node's region (`None`: not described yet).
pub(crate) fn local_locale(state: &AppState) -> Option<String> {
    let region = state.router.region().clone();
    state
        .router
        .with_local_map(|map| map.regions.get(&region).map(|info| info.locale.clone()))
        .flatten()
}
