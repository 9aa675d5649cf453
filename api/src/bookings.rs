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

// ----- Staff views ----------------------------------------------------------

/// `?status=&holder=&cursor=&limit=` of a staff list, with the read's
/// consistency (`linearizable` unless asked otherwise).
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
    holder: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 500; default 100.
    limit: Option<u32>,
    consistency: Option<String>,
    max_staleness_ms: Option<u64>,
    fallback: Option<String>,
}

impl ListQuery {
    /// The filter, its status read as the API spells it (`Api`) and given
    /// to the core as `Core`.
    fn filter<Api, Core>(&self) -> Result<booking::ListFilter<Core>, Problem>
    where
        Api: serde::de::DeserializeOwned + Into<Core>,
    {
        let status = self
            .status
            .as_deref()
            .map(|raw| {
                serde_json::from_value::<Api>(serde_json::Value::String(raw.to_owned()))
                    .map(Into::into)
                    .map_err(|_| Problem::invalid_field("status", format!("no status {raw:?}")))
            })
            .transpose()?;
        let holder = self
            .holder
            .as_deref()
            .map(|raw| CustomerId::new(raw).map_err(|e| Problem::invalid_field("holder", e.to_string())))
            .transpose()?;
        let after = self
            .cursor
            .as_deref()
            .map(|raw| parse_id("cursor", raw))
            .transpose()?;
        let limit = self.limit.unwrap_or(100);
        if !(1..=booking::MAX_PAGE).contains(&limit) {
            return Err(Problem::invalid_field(
                "limit",
                format!("must be 1 to {}", booking::MAX_PAGE),
            ));
        }
        Ok(booking::ListFilter {
            after,
            limit,
            status,
            holder,
        })
    }

    fn read_options(&self) -> ReadOptions {
        ReadOptions {
            consistency: self.consistency.clone(),
            max_staleness_ms: self.max_staleness_ms,
            fallback: self.fallback.clone(),
            currency: None,
        }
    }
}

/// The cursor of the page after one that ended at `last`, if it was full.
fn next_cursor(listed: usize, limit: u32, last: Option<u64>) -> Option<String> {
    (listed == limit as usize)
        .then(|| last.map(|id| id.to_string()))
        .flatten()
}

/// Reads a staff list (`query`) of the event, with the venue's zone for
/// the times.
async fn staff_list(
    state: &AppState,
    raw_event: &str,
    list: &ListQuery,
    query: EventQuery,
) -> Result<(EventAnswer, Option<String>), Problem> {
    let query = Query::Event(event_id(raw_event)?, query);
    let zone = query_zone(state, &query);
    match read(state, &list.read_options(), query).await? {
        QueryResult::Event(answer) => Ok((answer, zone)),
        _ => Err(Problem::internal("unexpected answer to a staff list")),
    }
}

/// `GET /v1/events/{event_id}/holds`: a page of the event's holds (staff).
pub(crate) async fn list_holds(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(list): ApiQuery<ListQuery>,
) -> ApiResult {
    caller.require_staff()?;
    let filter = list.filter::<dto::HoldStatus, _>()?;
    let limit = filter.limit;
    let (EventAnswer::Holds(views), zone) =
        staff_list(&state, &raw_event, &list, EventQuery::Holds(filter)).await?
    else {
        return Err(Problem::internal("unexpected answer to a hold list"));
    };
    let next_cursor = next_cursor(views.len(), limit, views.last().map(|v| v.hold_id.0));
    let holds = views
        .into_iter()
        .map(|v| in_zone(dto::Hold::from(v), zone.as_deref()))
        .collect();
    Ok(Json(dto::HoldPage { holds, next_cursor }).into_response())
}

/// `GET /v1/events/{event_id}/orders`: a page of the event's orders (staff).
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(list): ApiQuery<ListQuery>,
) -> ApiResult {
    caller.require_staff()?;
    let filter = list.filter::<dto::OrderStatus, _>()?;
    let limit = filter.limit;
    let (EventAnswer::Orders(views), zone) =
        staff_list(&state, &raw_event, &list, EventQuery::Orders(filter)).await?
    else {
        return Err(Problem::internal("unexpected answer to an order list"));
    };
    let next_cursor = next_cursor(views.len(), limit, views.last().map(|v| v.order_id.0));
    let orders = views
        .into_iter()
        .map(|v| in_zone(dto::Order::from(v), zone.as_deref()))
        .collect();
    Ok(Json(dto::OrderPage { orders, next_cursor }).into_response())
}

/// `?ids=A-1-1,A-1-2` of a seat read, with the read's consistency.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeatsQuery {
    ids: Option<String>,
    consistency: Option<String>,
    max_staleness_ms: Option<u64>,
    fallback: Option<String>,
}

/// `GET /v1/events/{event_id}/seats?ids=…`: only the seats asked about,
/// instead of the whole map. Anyone sees each seat's status; staff also see
/// the hold or order that has it and its holder.
pub(crate) async fn seats(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(asked): ApiQuery<SeatsQuery>,
) -> ApiResult {
    let ids: Vec<String> = asked
        .ids
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() || ids.len() > booking::MAX_SEATS_PER_READ {
        return Err(Problem::invalid_field(
            "ids",
            format!("name 1 to {} seats, comma-separated", booking::MAX_SEATS_PER_READ),
        ));
    }
    let options = ReadOptions {
        consistency: asked.consistency,
        max_staleness_ms: asked.max_staleness_ms,
        fallback: asked.fallback,
        currency: None,
    };
    let query = Query::Event(event_id(&raw_event)?, EventQuery::Seats(ids.clone()));
    let QueryResult::Event(EventAnswer::Seats(found)) = read(&state, &options, query).await? else {
        return Err(Problem::internal("unexpected answer to a seat read"));
    };
    if found.iter().all(Option::is_none) && !event_exists(&state, &raw_event).await? {
        return Err(Problem::not_found("unknown_event", "no such event"));
    }
    let staff = caller.is_staff();
    let mut seats = Vec::with_capacity(found.len());
    for (id, detail) in ids.into_iter().zip(found) {
        let detail =
            detail.ok_or_else(|| Problem::from(booking::Rejection::UnknownSeat { seat: id.clone() }))?;
        seats.push(dto::SeatState {
            seat: detail.seat,
            status: detail.status.into(),
            hold_id: staff.then_some(detail.hold_id).flatten(),
            order_id: staff.then_some(detail.order_id).flatten(),
            holder: staff.then_some(detail.holder).flatten(),
        });
    }
    Ok(Json(dto::Seats { seats }).into_response())
}

/// Whether the event exists, from this node's view of the map.
async fn event_exists(state: &AppState, raw_event: &str) -> Result<bool, Problem> {
    let query = Query::Event(event_id(raw_event)?, EventQuery::View);
    Ok(matches!(
        read(state, &ReadOptions::default(), query).await?,
        QueryResult::Event(EventAnswer::View(Some(_)))
    ))
}
