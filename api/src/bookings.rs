//! Holds and orders: taking places, extending, releasing and confirming a
//! hold, reading and cancelling an order.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, post};
use booking::{
    Command, CustomerId, EventAnswer, EventCommand, EventId, EventQuery, HoldId, OrderId, Query, QueryResult,
    Selection,
};
use serde::Deserialize;

use crate::live::HolderBody;
use crate::prices::Display;
use crate::{
    ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Caller, OptionalJson, Problem, ReadOptions, dto,
    event_id, in_zone, limits, parse_id, query_zone, read, require_caller, submit,
};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BestBody {
    section: String,
    tier: Option<String>,
    quantity: u32,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GaBody {
    area: String,
    quantity: u32,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldBody {
    /// Staff name the customer they act for; customers may omit it.
    holder: Option<String>,
    seats: Option<Vec<String>>,
    best: Option<BestBody>,
    ga: Option<GaBody>,
    ttl_secs: Option<u64>,
}

pub(crate) async fn create_hold(
    State(state): State<AppState>,
    caller: Caller,
    limits::ClientIp(ip): limits::ClientIp,
    ApiPath(raw_event): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldBody>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let holder = caller.holder(body.holder.as_deref())?;
    state.limits.check(limits::Action::Hold, &caller, ip)?;
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
    let command = Command::Event(
        event_id,
        EventCommand::Hold {
            holder,
            selection,
            ttl_ms,
        },
    );
    submit(&state, &caller, &headers, command).await
}

pub(crate) async fn get_hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_hold)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let query = Query::Event(
        event_id(&raw_event)?,
        EventQuery::Hold(HoldId(parse_id("hold_id", &raw_hold)?)),
    );
    require_caller(&caller)?;
    let display = Display::asked(&state, options.currency.as_deref()).await?;
    let zone = query_zone(&state, &query);
    match read(&state, &options, query).await? {
        QueryResult::Event(EventAnswer::Hold(Some(view))) if caller.may_see(&view.holder) => {
            // The countdown a checkout page shows, from this node's clock.
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let mut hold = in_zone(dto::Hold::from(view), zone.as_deref());
            if hold.status == dto::HoldStatus::Active {
                hold.expires_in_ms = Some(hold.expires_at_ms.saturating_sub(now_ms));
            }
            if let Some(display) = &display {
                display.hold(&mut hold)?;
            }
            Ok(Json(hold).into_response())
        }
        // Someone else's hold is reported like a missing one: ids are sequential.
        _ => Err(Problem::not_found("unknown_hold", "no such hold")),
    }
}

/// The route of a hold command (`extend`, `release`, `confirm`): the same
/// input, a different command.
pub(crate) fn hold_route(make: fn(EventId, HoldId, CustomerId) -> Command) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>,
              caller: Caller,
              ApiPath((raw_event, raw_hold)): ApiPath<(String, String)>,
              headers: HeaderMap,
              body: OptionalJson<HolderBody>| async move {
            let event_id = event_id(&raw_event)?;
            let hold_id = HoldId(parse_id("hold_id", &raw_hold)?);
            let holder = caller.holder(body.0.and_then(|b| b.holder).as_deref())?;
            submit(&state, &caller, &headers, make(event_id, hold_id, holder)).await
        },
    )
}

/// Confirms a hold into an order without a payment: staff (a box-office
/// sale), or a customer whose hold costs nothing. Everyone else checks out.
pub(crate) async fn confirm_hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_hold)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: OptionalJson<HolderBody>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let hold_id = HoldId(parse_id("hold_id", &raw_hold)?);
    let holder = caller.holder(body.0.and_then(|b| b.holder).as_deref())?;
    if !caller.is_staff()
        && let QueryResult::Event(EventAnswer::Hold(Some(hold))) = state
            .router
            .query(Query::Event(event_id, EventQuery::Hold(hold_id)))
            .await?
        && hold.holder == holder
        && hold.total.amount_minor > 0
    {
        return Err(Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment_required",
            "this hold costs money: pay with POST .../checkout",
        ));
    }
    let command = Command::Event(event_id, EventCommand::ConfirmHold { hold_id, holder });
    submit(&state, &caller, &headers, command).await
}

pub(crate) async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_order)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let query = Query::Event(
        event_id(&raw_event)?,
        EventQuery::Order(OrderId(parse_id("order_id", &raw_order)?)),
    );
    require_caller(&caller)?;
    let display = Display::asked(&state, options.currency.as_deref()).await?;
    let zone = query_zone(&state, &query);
    match read(&state, &options, query).await? {
        QueryResult::Event(EventAnswer::Order(Some(view))) if caller.may_see(&view.holder) => {
            let mut order = in_zone(dto::Order::from(view), zone.as_deref());
            if let Some(display) = &display {
                display.order(&mut order)?;
            }
            Ok(Json(order).into_response())
        }
        _ => Err(Problem::not_found("unknown_order", "no such order")),
    }
}

pub(crate) async fn cancel_order(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_order)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: OptionalJson<HolderBody>,
) -> ApiResult {
    let command = Command::Event(
        event_id(&raw_event)?,
        EventCommand::CancelOrder {
            order_id: OrderId(parse_id("order_id", &raw_order)?),
            holder: caller.holder(body.0.and_then(|b| b.holder).as_deref())?,
        },
    );
    submit(&state, &caller, &headers, command).await
}
