//! Live availability over Server-Sent Events, the waitlist, reminders and
//! notification preferences.
//!
//! `GET /v1/events/{id}/live` streams an event's seat changes from this
//! node's own replica of the event's group (`raft_store::feed`), so every
//! region serves its seat maps locally. The stream opens with a `snapshot`
//! (every seat's status and every count, as of an applied index) unless the
//! client resumes with `Last-Event-ID` (header, or `?last_event_id=` for
//! clients that cannot set headers) and the node still has every change since
//! that id; then it replays those. After that, each `change` event is one
//! rule's effect, in log order, with its id `{group}.{index}.{ordinal}`.
//! A comment every `HEARTBEAT` keeps proxies from closing an idle stream.
//! A client that reads too slowly to keep up is disconnected (its channel
//! is bounded); it reconnects with its last id and resumes or resyncs.
//!
//! What it does not do: route a stream to another node. A node without a
//! replica of the event's group answers `421 not_replicated_here` naming
//! the nodes that have one.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use booking::{
    AccountCommand, AvailabilityChange, CatalogAnswer, CatalogQuery, Channel, Command, CustomerId,
    EventCommand, EventId, EventQuery, EventView, NotifyPreference, Rejection,
};
use booking::{Query, QueryResult};
use futures::Stream;
use raft_store::FeedHub;
use raft_store::feed::{FeedItem, Position, position_of};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::problem::Problem;
use crate::{ApiResult, AppState, ReadOptions, dto, event_id, read_and_render, render, request_id};

/// How often an idle stream gets a comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long before an event's start its reminder is due by default.
pub const DEFAULT_REMIND_BEFORE_SECS: u64 = 24 * 60 * 60;

#[derive(Deserialize, Default)]
pub(crate) struct LiveOptions {
    last_event_id: Option<String>,
}

/// Where a client stands: a change id or a snapshot id of `group`.
fn parse_position(text: &str) -> Option<(u64, Position)> {
    let mut parts = text.split('.');
    let group = parts.next()?.parse().ok()?;
    let index = parts.next()?.parse().ok()?;
    let ordinal = match parts.next() {
        Some(ordinal) => ordinal.parse().ok()?,
        None => u32::MAX,
    };
    parts.next().is_none().then_some((group, (index, ordinal)))
}

fn change_id(group: u64, change: &AvailabilityChange) -> String {
    format!("{group}.{}.{}", change.log_index, change.ordinal)
}

fn snapshot_event(group: u64, position: Position, view: &EventView) -> Event {
    let seats: Vec<_> = view
        .sections
        .iter()
        .flat_map(|section| &section.rows)
        .flat_map(|row| &row.seats)
        .map(|seat| json!({ "seat": seat.id, "status": dto::SeatStatus::from(seat.status) }))
        .collect();
    let body = json!({
        "event_id": view.event_id,
        "as_of_index": position.0,
        "status": view.status,
        "available": view.available,
        "held": view.held,
        "sold": view.sold,
        "tiers": view.tiers.iter().map(|t| json!({ "tier": t.name, "available": t.available })).collect::<Vec<_>>(),
        "areas": view.ga_areas.iter().map(|a| json!({ "area": a.name, "available": a.available })).collect::<Vec<_>>(),
        "seats": seats,
    });
    Event::default()
        .event("snapshot")
        .id(format!("{group}.{}", position.0))
        .data(body.to_string())
}

/// A change as the stream sends it, its time in `zone` (the venue's; UTC
/// without one).
fn change_event(group: u64, change: &AvailabilityChange, zone: Option<&str>) -> Event {
    let body = crate::respond::in_zone(dto::AvailabilityChange::from(change.clone()), zone);
    Event::default()
        .event("change")
        .id(change_id(group, change))
        .data(json!(body).to_string())
}

/// What the stream still has to send before following the channel.
struct Live {
    hub: FeedHub,
    state: raft_store::SharedState,
    group: u64,
    event: EventId,
    receiver: tokio::sync::broadcast::Receiver<FeedItem>,
    /// The venue's time zone, for the changes' times.
    zone: Option<String>,
    pending: std::collections::VecDeque<Event>,
    position: Position,
    closed: bool,
}

impl Live {
    /// A fresh snapshot, with the position it stands at. Called with no lock
    /// held; takes the state's read lock, under which the hub's applied index
    /// matches the state.
    fn resync(&mut self) -> Option<Event> {
        let state = self.state.read();
        let view = state.event_view(self.event)?;
        let position = (self.hub.applied(self.group), u32::MAX);
        drop(state);
        self.position = position;
        Some(snapshot_event(self.group, position, &view))
    }

    async fn next_event(&mut self) -> Option<Event> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        if self.closed {
            return None;
        }
        loop {
            match self.receiver.recv().await {
                Ok(FeedItem::Change(change)) => {
                    if position_of(&change) <= self.position {
                        continue;
                    }
                    self.position = position_of(&change);
                    self.hub.touch(self.event);
                    return Some(change_event(self.group, &change, self.zone.as_deref()));
                }
                Ok(FeedItem::Reset) => {
                    if let Some(snapshot) = self.resync() {
                        return Some(snapshot);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // Too slow: drop the client rather than buffer for it. It
                    // resumes (or resyncs) from its last id when it comes back.
                    tracing::info!(event = %self.event, missed, "live stream too slow; closing it");
                    self.closed = true;
                    return Some(
                        Event::default()
                            .event("overflow")
                            .data(json!({ "missed": missed }).to_string()),
                    );
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

pub(crate) async fn live(
    State(state): State<AppState>,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(options): ApiQuery<LiveOptions>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let event = event_id(&raw_event)?;
    let hub = state.feed.clone().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "live_disabled",
            "this node serves no live feeds",
        )
    })?;
    let group = match state.router.group_of(event).await? {
        Some(group) => group,
        None => return Err(Problem::from(Rejection::UnknownEvent)),
    };
    let Some(replica) = state.router.groups().get(group) else {
        let nodes: Vec<String> = state
            .router
            .with_local_map(|map| {
                map.replicas_of(group)
                    .filter_map(|(_, node)| map.nodes.get(&node).map(|n| n.http_addr.clone()))
                    .collect()
            })
            .unwrap_or_default();
        return Err(Problem::new(
            StatusCode::MISDIRECTED_REQUEST,
            "not_replicated_here",
            format!("this node has no replica of the event's group; ask one of {nodes:?}"),
        )
        .with("nodes", json!(nodes)));
    };
    let last_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or(options.last_event_id);
    let after = last_id
        .as_deref()
        .and_then(parse_position)
        .filter(|(id_group, _)| *id_group == group)
        .map(|(_, position)| position);

    // Subscribe and take the snapshot under one read lock of the state: see
    // `raft_store::feed`.
    let shared = replica.state.clone();
    let (subscription, snapshot) = {
        let guard = shared.read();
        let subscription = hub.subscribe(group, event, after);
        let snapshot = match subscription.backlog {
            Some(_) => None,
            None => Some(
                guard
                    .event_view(event)
                    .ok_or_else(|| Problem::from(Rejection::UnknownEvent))?,
            ),
        };
        (subscription, snapshot)
    };
    // Rendered outside the lock: a big seat map takes a while to serialise.
    let zone = crate::respond::venue_zone(&state, event);
    let pending = match snapshot {
        Some(view) => std::collections::VecDeque::from([snapshot_event(group, subscription.position, &view)]),
        None => subscription
            .backlog
            .iter()
            .flatten()
            .map(|change| change_event(group, change, zone.as_deref()))
            .collect(),
    };
    let live = Live {
        hub,
        state: shared,
        group,
        event,
        receiver: subscription.receiver,
        zone,
        pending,
        position: subscription.position,
        closed: false,
    };
    Ok(Sse::new(into_stream(live))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response())
}

fn into_stream(live: Live) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    futures::stream::unfold(live, |mut live| async move {
        let event = live.next_event().await?;
        Some((Ok(event), live))
    })
}

// ----- Waitlist ---------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinBody {
    holder: Option<String>,
    tier: Option<String>,
    quantity: u32,
}

pub(crate) async fn join_waitlist(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<JoinBody>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let customer = caller.holder(body.holder.as_deref())?;
    let command = Command::Event(
        event_id,
        EventCommand::JoinWaitlist {
            customer,
            tier: body.tier,
            quantity: body.quantity,
        },
    );
    crate::submit(&state, &caller, &headers, command).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HolderBody {
    /// Staff name the customer they act for; customers may omit it.
    pub(crate) holder: Option<String>,
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HolderQuery {
    holder: Option<String>,
}

/// Carries out an event command for the caller, or for the holder staff
/// name in an optional `{"holder"}` body.
async fn for_holder(
    state: &AppState,
    caller: &Caller,
    raw_event: &str,
    headers: &HeaderMap,
    body: OptionalJson<HolderBody>,
    make: impl FnOnce(EventId, CustomerId) -> Command,
) -> ApiResult {
    let event_id = event_id(raw_event)?;
    let customer = caller.holder(body.0.unwrap_or_default().holder.as_deref())?;
    // Boxed: the generic caller's future is otherwise too deep to lay out.
    Box::pin(crate::submit(state, caller, headers, make(event_id, customer))).await
}

pub(crate) async fn leave_waitlist(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    headers: HeaderMap,
    body: OptionalJson<HolderBody>,
) -> ApiResult {
    for_holder(
        &state,
        &caller,
        &raw_event,
        &headers,
        body,
        |event_id, customer| Command::Event(event_id, EventCommand::LeaveWaitlist { customer }),
    )
    .await
}

pub(crate) async fn get_waitlist(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(query): ApiQuery<HolderQuery>,
) -> ApiResult {
    read_for_holder(&state, &caller, &raw_event, query, EventQuery::Waitlist).await
}

/// Reads what `make` asks about the caller (or the holder staff name in
/// `?holder=`) in an event, linearizably.
async fn read_for_holder(
    state: &AppState,
    caller: &Caller,
    raw_event: &str,
    query: HolderQuery,
    make: fn(CustomerId) -> EventQuery,
) -> ApiResult {
    let event_id = event_id(raw_event)?;
    let customer = caller.holder(query.holder.as_deref())?;
    read_and_render(
        state,
        &ReadOptions::default(),
        Query::Event(event_id, make(customer)),
    )
    .await
}

// ----- Reminders and notices ------------------------------------------------------

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReminderBody {
    holder: Option<String>,
    channel: Option<dto::Channel>,
    /// How long before the event's start (default: a day).
    remind_before_secs: Option<u64>,
}

pub(crate) async fn subscribe_reminder(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    headers: HeaderMap,
    body: OptionalJson<ReminderBody>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let body = body.0.unwrap_or_default();
    let customer = caller.holder(body.holder.as_deref())?;
    let before_ms = body
        .remind_before_secs
        .unwrap_or(DEFAULT_REMIND_BEFORE_SECS)
        .checked_mul(1000)
        .ok_or_else(|| Problem::invalid_field("remind_before_secs", "out of range"))?;
    let listing = match state
        .router
        .query_local(Query::Catalog(CatalogQuery::Listing(event_id, 0)))
        .await?
    {
        QueryResult::Catalog(CatalogAnswer::Listing(Some(listing))) => listing,
        _ => {
            return Err(Problem::invalid(
                "the event has no listing with a start time to be reminded of",
            ));
        }
    };
    let command = Command::Event(
        event_id,
        EventCommand::SubscribeReminder {
            customer,
            channel: body.channel.map(Channel::from),
            remind_at_ms: listing.starts_at_ms.saturating_sub(before_ms),
        },
    );
    crate::submit(&state, &caller, &headers, command).await
}

pub(crate) async fn unsubscribe_reminder(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    headers: HeaderMap,
    body: OptionalJson<HolderBody>,
) -> ApiResult {
    for_holder(
        &state,
        &caller,
        &raw_event,
        &headers,
        body,
        |event_id, customer| Command::Event(event_id, EventCommand::UnsubscribeReminder { customer }),
    )
    .await
}

/// The caller's notices about an event, with their delivery state.
pub(crate) async fn notices(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_event): ApiPath<String>,
    ApiQuery(query): ApiQuery<HolderQuery>,
) -> ApiResult {
    read_for_holder(&state, &caller, &raw_event, query, EventQuery::Notices).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreferenceBody {
    channel: dto::Channel,
    webhook_url: Option<String>,
}

/// Sets how the calling customer is notified.
pub(crate) async fn set_notifications(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PreferenceBody>,
) -> ApiResult {
    let Caller::User { customer_id, .. } = &caller else {
        return Err(match caller {
            Caller::Anonymous => crate::auth::login_required(),
            _ => Problem::from(Rejection::NoAddress),
        });
    };
    let customer_id = customer_id.clone();
    let group = customer_id
        .account_group()
        .ok_or_else(|| Problem::from(Rejection::NoAddress))?;
    if let Some(url) = &body.webhook_url {
        crate::outbound::check_webhook_url(url, state.allow_private_webhooks)
            .map_err(|why| Problem::invalid_field("webhook_url", why))?;
    }
    let preference = NotifyPreference {
        channel: body.channel.into(),
        webhook_url: body.webhook_url,
    };
    preference.validate()?;
    let command = Command::Account(AccountCommand::SetNotifications {
        customer_id,
        preference,
    });
    render(
        state
            .router
            .submit_to_group(group, request_id(&headers, &caller)?, command)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_from_change_and_snapshot_ids() {
        assert_eq!(parse_position("3.17.2"), Some((3, (17, 2))));
        assert_eq!(parse_position("3.17"), Some((3, (17, u32::MAX))));
        for bad in ["", "3", "x.1.2", "3.1.2.4", "3.-1.0"] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_snapshot_lists_every_seat() {
        let mut state = booking::BookingState::new();
        let request = booking::Request {
            request_id: booking::RequestId::new("c").unwrap(),
            now_ms: 1,
            fingerprint: 0,
            command: Command::Event(
                EventId(1),
                EventCommand::Create {
                    spec: booking::EventSpec::demo_venue(),
                    ticket_salt: [0; 16],
                    draft: false,
                },
            ),
        };
        state.apply(1, &request).unwrap();
        let view = state.event_view(EventId(1)).unwrap();
        let event = snapshot_event(2, (9, u32::MAX), &view);
        let text = format!("{event:?}");
        assert!(text.contains("2.9"), "{text}");
    }
}
