//! The tests' view of the API: [`api::client::Client`] (and its retry rule, which every
//! chaos test relies on) addressed by node id, with the calls and the few answer fields
//! the tests check.
//!
//! Answers are split in two: a success ([`Ok`]) or a business rejection ([`Problem`]),
//! both definitive; only a spent budget or an unexpected body is an `anyhow` error.
//!
//! What it does not do: it never invents keys (callers choose them, so a test can retry
//! on purpose) and it parses only the fields the tests check, ignoring the rest.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, anyhow};
use api::client::{Client, RequestBuilder};
use node::launcher::{GroupHealth, Health, LocalCluster};
use region_config::NodeId;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Admin calls (membership changes) wait for replicas to move.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);

pub use api::client::{DEFAULT_RETRY_BUDGET, ProblemBody as Problem, Reply};

/// Which replica answers a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// The leader, after confirming its leadership; any node may be asked.
    Linearizable,
    /// The asked node's own replica; only that node may answer.
    Local,
}

/// A hold or order id as it appears in JSON (number or string) and in paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(from = "IdOnTheWire")]
pub struct WireId(String);

#[derive(Deserialize)]
#[serde(untagged)]
enum IdOnTheWire {
    Number(u64),
    Text(String),
}

impl From<IdOnTheWire> for WireId {
    fn from(id: IdOnTheWire) -> Self {
        match id {
            IdOnTheWire::Number(number) => Self(number.to_string()),
            IdOnTheWire::Text(text) => Self(text),
        }
    }
}

impl fmt::Display for WireId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `201` answer of `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Created {
    pub event_id: u64,
    pub capacity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HoldView {
    pub hold_id: WireId,
    pub event_id: u64,
    pub holder: String,
    pub seats: Vec<String>,
    pub status: String,
    #[serde(default)]
    pub order_id: Option<WireId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderView {
    pub order_id: WireId,
    pub event_id: u64,
    pub holder: String,
    pub hold_id: WireId,
    pub status: String,
    pub tickets: Vec<TicketView>,
}

impl OrderView {
    /// The seats of this order's tickets, sorted.
    pub fn seats(&self) -> Vec<String> {
        let mut seats: Vec<String> = self.tickets.iter().filter_map(|t| t.seat.clone()).collect();
        seats.sort();
        seats
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TicketView {
    pub code: String,
    #[serde(default)]
    pub seat: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EventView {
    pub event_id: u64,
    pub capacity: u64,
    pub available: u64,
    pub held: u64,
    pub sold: u64,
    pub sections: Vec<SectionView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SectionView {
    pub name: String,
    pub rows: Vec<RowView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RowView {
    pub name: String,
    pub seats: Vec<SeatView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SeatView {
    pub id: String,
    pub status: String,
}

impl EventView {
    /// Every seat in seat-map order.
    pub fn seats(&self) -> impl Iterator<Item = &SeatView> {
        self.sections.iter().flat_map(|s| &s.rows).flat_map(|r| &r.seats)
    }

    /// Ids of the seats whose status is `status`.
    pub fn seat_ids_with_status(&self, status: &str) -> Vec<String> {
        self.seats()
            .filter(|s| s.status == status)
            .map(|s| s.id.clone())
            .collect()
    }
}

/// An HTTP client for a cluster whose nodes are numbered 1..=n, node `i` at `urls[i - 1]`
/// (the order of [`node::launcher::LocalCluster::http_urls`]).
#[derive(Debug, Clone)]
pub struct ApiClient {
    client: Client,
}

impl ApiClient {
    /// A client calling with the local operator token, so the harness books on
    /// behalf of the holders it names.
    pub fn new(urls: Vec<String>) -> anyhow::Result<Self> {
        let client = Client::new(urls)?.with_token(Some(node::launcher::LOCAL_ADMIN_TOKEN));
        Ok(Self { client })
    }

    /// The same client calling as `token` (an access token), or anonymously.
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.client = self.client.with_token(token);
        self
    }

    /// The same client with another retry budget.
    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.client = self.client.with_retry_budget(budget);
        self
    }

    /// A client for every node of `cluster`.
    pub fn for_cluster(cluster: &LocalCluster) -> anyhow::Result<Self> {
        Self::new(cluster.http_urls())
    }

    pub fn urls(&self) -> &[String] {
        self.client.urls()
    }

    /// A request to node `node` (1-based).
    fn at(&self, method: Method, node: NodeId, path: &str) -> RequestBuilder<'_> {
        let index = usize::try_from(node).unwrap_or(0).saturating_sub(1);
        self.client.request(method, path).to(index)
    }

    /// A request to node `first` that, with `rotate`, may move on to the other nodes.
    fn build(
        &self,
        method: Method,
        first: NodeId,
        rotate: bool,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> RequestBuilder<'_> {
        let mut request = self.at(method, first, path);
        if !rotate {
            request = request.pinned();
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.key(key);
        }
        request
    }

    /// Sends a request until a definitive answer (see [`api::client`]), first to node
    /// `first`. `rotate` lets retries move on to the other nodes; without it only
    /// `first` is asked.
    /// Returns the status and the JSON body (`null` when empty).
    pub async fn send_until_definitive(
        &self,
        method: Method,
        first: NodeId,
        rotate: bool,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let answer = self.build(method, first, rotate, path, body, key).send().await?;
        Ok((answer.status, answer.body))
    }

    /// Sends a request and splits the answer into the expected success or a problem.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        node: NodeId,
        rotate: bool,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Reply<T>> {
        let answer = self
            .build(method.clone(), node, rotate, path, body, key)
            .send()
            .await?;
        answer.reply().with_context(|| format!("{method} {path}"))
    }

    fn read_path(path: String, consistency: Consistency) -> (String, bool) {
        match consistency {
            Consistency::Linearizable => (path, true),
            Consistency::Local => (format!("{path}?consistency=local"), false),
        }
    }

    /// Node `node`'s replica of `group` as its `/health` reports it.
    pub async fn group_health(&self, node: NodeId, group: u64) -> anyhow::Result<GroupHealth> {
        let health = self.health(node).await?;
        health
            .group(group)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("node {node} runs no replica of group {group}"))
    }

    /// `GET /health` of node `node`, once, without retries.
    pub async fn health(&self, node: NodeId) -> anyhow::Result<Health> {
        let answer = self.at(Method::GET, node, "/health").once().send().await?;
        anyhow::ensure!(
            answer.status.is_success(),
            "GET /health of node {node}: {}",
            answer.status
        );
        serde_json::from_value(answer.body)
            .with_context(|| format!("GET /health of node {node}: unexpected body"))
    }

    pub async fn create_event(
        &self,
        node: NodeId,
        event_id: u64,
        spec: &booking::EventSpec,
        key: &str,
    ) -> anyhow::Result<Reply<Created>> {
        let body = json!({ "event_id": event_id, "spec": api::dto::EventSpec::from(spec.clone()) });
        self.call(Method::POST, node, true, "/v1/events", Some(&body), Some(key))
            .await
    }

    /// Creates an event with extra body fields (`home_region`, `dedicated_group`).
    pub async fn create_event_with(
        &self,
        node: NodeId,
        event_id: u64,
        spec: &booking::EventSpec,
        key: &str,
        extra: Value,
    ) -> anyhow::Result<Reply<Created>> {
        let mut body = json!({ "event_id": event_id, "spec": api::dto::EventSpec::from(spec.clone()) });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        self.call(Method::POST, node, true, "/v1/events", Some(&body), Some(key))
            .await
    }

    /// `GET /v1/cluster` of node `node`: the map and that node's replicas.
    pub async fn cluster(&self, node: NodeId) -> anyhow::Result<Value> {
        let (status, body) = self
            .send_until_definitive(Method::GET, node, false, "/v1/cluster", None, None)
            .await?;
        anyhow::ensure!(status.is_success(), "GET /v1/cluster: {status} {body}");
        Ok(body)
    }

    /// One GET-like call to node `node` without retries, for non-JSON answers:
    /// the status, the content type and the body as text.
    pub async fn raw(
        &self,
        method: Method,
        node: NodeId,
        path: &str,
    ) -> anyhow::Result<(StatusCode, Option<String>, String)> {
        let answer = self.at(method, node, path).once().send().await?;
        Ok((answer.status, answer.content_type, answer.text))
    }

    /// One POST of a JSON body to node `node` without a bearer token or
    /// retries, with one extra header (a provider's webhook signature).
    pub async fn raw_post(
        &self,
        node: NodeId,
        path: &str,
        body: &Value,
        header: Option<(&str, &str)>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self.at(Method::POST, node, path).once().token(None).json(body);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let answer = request.send().await?;
        Ok((answer.status, answer.body))
    }

    /// One admin call to node `node` with `token` (no retries: admin calls are
    /// asked of a particular node). Returns the status and the JSON body.
    pub async fn admin(
        &self,
        method: Method,
        node: NodeId,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        // Membership changes move replicas and may take a while.
        let mut request = self
            .at(method, node, path)
            .once()
            .token(token)
            .try_timeout(ADMIN_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await?;
        Ok((answer.status, answer.body))
    }

    pub async fn hold_seats(
        &self,
        node: NodeId,
        event_id: u64,
        holder: &str,
        seats: &[String],
        key: &str,
    ) -> anyhow::Result<Reply<HoldView>> {
        let body = json!({ "holder": holder, "seats": seats });
        let path = format!("/v1/events/{event_id}/holds");
        self.call(Method::POST, node, true, &path, Some(&body), Some(key))
            .await
    }

    pub async fn release(
        &self,
        node: NodeId,
        event_id: u64,
        hold_id: &WireId,
        holder: &str,
        key: &str,
    ) -> anyhow::Result<Reply<Value>> {
        let body = json!({ "holder": holder });
        let path = format!("/v1/events/{event_id}/holds/{hold_id}/release");
        self.call(Method::POST, node, true, &path, Some(&body), Some(key))
            .await
    }

    pub async fn confirm(
        &self,
        node: NodeId,
        event_id: u64,
        hold_id: &WireId,
        holder: &str,
        key: &str,
    ) -> anyhow::Result<Reply<OrderView>> {
        let body = json!({ "holder": holder });
        let path = format!("/v1/events/{event_id}/holds/{hold_id}/confirm");
        self.call(Method::POST, node, true, &path, Some(&body), Some(key))
            .await
    }

    pub async fn cancel(
        &self,
        node: NodeId,
        event_id: u64,
        order_id: &WireId,
        holder: &str,
        key: &str,
    ) -> anyhow::Result<Reply<OrderView>> {
        let body = json!({ "holder": holder });
        let path = format!("/v1/events/{event_id}/orders/{order_id}/cancel");
        self.call(Method::POST, node, true, &path, Some(&body), Some(key))
            .await
    }

    pub async fn check_in(
        &self,
        node: NodeId,
        event_id: u64,
        code: &str,
        key: &str,
    ) -> anyhow::Result<Reply<Value>> {
        let path = format!("/v1/events/{event_id}/tickets/{code}/check-in");
        self.call(Method::POST, node, true, &path, None, Some(key)).await
    }

    pub async fn get_hold(
        &self,
        node: NodeId,
        event_id: u64,
        hold_id: &WireId,
        consistency: Consistency,
    ) -> anyhow::Result<Reply<Value>> {
        let (path, rotate) = Self::read_path(format!("/v1/events/{event_id}/holds/{hold_id}"), consistency);
        let reply: Reply<Value> = self.call(Method::GET, node, rotate, &path, None, None).await?;
        Ok(reply.map(crate::checks::without_countdown))
    }

    pub async fn get_order(
        &self,
        node: NodeId,
        event_id: u64,
        order_id: &WireId,
        consistency: Consistency,
    ) -> anyhow::Result<Reply<OrderView>> {
        let (path, rotate) = Self::read_path(format!("/v1/events/{event_id}/orders/{order_id}"), consistency);
        self.call(Method::GET, node, rotate, &path, None, None).await
    }

    /// An order exactly as the API renders it, for comparing replicas.
    pub async fn get_order_json(
        &self,
        node: NodeId,
        event_id: u64,
        order_id: &WireId,
        consistency: Consistency,
    ) -> anyhow::Result<Reply<Value>> {
        let (path, rotate) = Self::read_path(format!("/v1/events/{event_id}/orders/{order_id}"), consistency);
        self.call(Method::GET, node, rotate, &path, None, None).await
    }

    pub async fn event_view(
        &self,
        node: NodeId,
        event_id: u64,
        consistency: Consistency,
    ) -> anyhow::Result<Reply<EventView>> {
        let (path, rotate) = Self::read_path(format!("/v1/events/{event_id}"), consistency);
        self.call(Method::GET, node, rotate, &path, None, None).await
    }

    /// An event view exactly as the API renders it, for comparing replicas.
    pub async fn event_view_json(
        &self,
        node: NodeId,
        event_id: u64,
        consistency: Consistency,
    ) -> anyhow::Result<Reply<Value>> {
        let (path, rotate) = Self::read_path(format!("/v1/events/{event_id}"), consistency);
        self.call(Method::GET, node, rotate, &path, None, None).await
    }
}

/// Unwraps a reply that the test expects to succeed.
pub fn expect_ok<T>(reply: Reply<T>, what: &str) -> anyhow::Result<T> {
    reply.map_err(|problem| anyhow!("{what} was rejected: {problem}"))
}
