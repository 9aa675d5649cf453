//! The HTTP client of this API, for the tools that drive a cluster from
//! outside: the admin command, the benchmarks, the demo and the chaos tests.
//!
//! It knows the API's retry rule. A `503` (`unavailable`, `too_busy`, a read's
//! `request_timeout`: nothing was done) or a refused connection is not an
//! answer: the request goes again to the next node, pausing a little longer
//! each time, until a definitive answer arrives or the retry budget is spent.
//! A `504` (`outcome_unknown`: a write may have taken effect) or a connection
//! lost mid-request is retried only when repeating is safe: for a read, or
//! for a write with an `Idempotency-Key`, which goes with every try. Then a
//! write whose first try took effect reports its original outcome instead of
//! acting twice; this is how a client resolves "outcome unknown" after a
//! leader dies. Without a key such a write's answer is "no answer".
//!
//! Answers keep their status and JSON body; [`Answer::reply`] splits them
//! into a typed success (usually one of [`crate::dto`]) or a [`ProblemBody`].

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Default time a request keeps being retried: longer than an election takes.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);
/// Default time one try may wait for its answer.
pub const DEFAULT_TRY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before the first retry; doubles up to [`RETRY_PAUSE_MAX`].
pub const RETRY_PAUSE_MIN: Duration = Duration::from_millis(20);
pub const RETRY_PAUSE_MAX: Duration = Duration::from_millis(500);

/// A rejection as the API renders it (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemBody {
    pub status: u16,
    pub code: String,
    pub detail: String,
    /// The whole body, for the fields some problems add (`seats`, `limit`…).
    pub body: Value,
}

impl fmt::Display for ProblemBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

/// A definitive answer: the success body, or the rejection.
pub type Reply<T> = Result<T, ProblemBody>;

/// One answer, with how it was reached.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    /// The body as JSON; `null` when it was empty or not JSON.
    pub body: Value,
    /// The body as sent, for answers that are not JSON (SVG, text).
    pub text: String,
    /// Tries before this answer that got none (0: the first try answered).
    pub retries: u32,
    /// The node index that answered.
    pub node: usize,
    /// Every header of the answer (the read-freshness ones, for example).
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// A header's value as a number (`Boxoffice-Staleness-Ms`, ...).
    pub fn header_number(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }

    /// The problem's stable code, or `""` for a success.
    pub fn code(&self) -> &str {
        self.body.get("code").and_then(Value::as_str).unwrap_or("")
    }

    /// The rejection, if this answer is one.
    pub fn problem(&self) -> Option<ProblemBody> {
        if self.status.is_success() {
            return None;
        }
        let text = |field: &str| {
            self.body
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Some(ProblemBody {
            status: self.status.as_u16(),
            code: text("code"),
            detail: text("detail"),
            body: self.body.clone(),
        })
    }

    /// A success parsed as `T`, or the rejection; a success body that is not
    /// a `T` is an error.
    pub fn reply<T: DeserializeOwned>(self) -> Result<Reply<T>, ClientError> {
        if let Some(problem) = self.problem() {
            return Ok(Err(problem));
        }
        serde_json::from_value(self.body.clone())
            .map(Ok)
            .map_err(|e| ClientError::Unexpected(format!("{} with body {}: {e}", self.status, self.body)))
    }

    /// The body of a success, or an error naming the rejection.
    pub fn success(self) -> Result<Value, ClientError> {
        match self.problem() {
            None => Ok(self.body),
            Some(problem) => Err(ClientError::Rejected(problem)),
        }
    }
}

/// Why a request has no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Every try failed, or answered 503/504, until the budget was spent.
    #[error("no definitive answer after {tries} tries in {budget:?}; last: {last}")]
    NoAnswer {
        tries: u32,
        budget: Duration,
        last: String,
    },
    /// A definitive answer, but a rejection where a success was required.
    #[error("rejected: {0}")]
    Rejected(ProblemBody),
    /// A success whose body is not what the route documents.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// A client for a cluster reachable at `urls` (any node answers any route;
/// node-specific calls name the node's index in `urls`).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    token: Option<String>,
    retry_budget: Duration,
    pauses: (Duration, Duration),
}

impl Client {
    pub fn new(urls: Vec<String>) -> Result<Self, ClientError> {
        transport::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TRY_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Self::with_http(http, urls)
    }

    /// A client over a `reqwest` client built elsewhere (a benchmark sizes
    /// its connection pool to its load).
    pub fn with_http(http: reqwest::Client, urls: Vec<String>) -> Result<Self, ClientError> {
        if urls.is_empty() {
            return Err(ClientError::Build(
                "a client needs at least one node URL".to_owned(),
            ));
        }
        Ok(Client {
            http,
            urls,
            token: None,
            retry_budget: DEFAULT_RETRY_BUDGET,
            pauses: (RETRY_PAUSE_MIN, RETRY_PAUSE_MAX),
        })
    }

    /// The same client pausing `min` before its first retry, doubling up to `max`.
    pub fn with_retry_pauses(mut self, min: Duration, max: Duration) -> Self {
        self.pauses = (min, max.max(min));
        self
    }

    /// The same client sending `token` as its bearer token (or none).
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    /// The same client with another retry budget.
    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = budget;
        self
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request for `path` (which starts with `/`), first to node 0.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            path: path.to_owned(),
            body: None,
            key: None,
            first: 0,
            rotate: true,
            retry: true,
            budget: self.retry_budget,
            try_timeout: None,
            token: self.token.clone(),
            headers: Vec::new(),
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::POST, path)
    }
}

/// One request being described; [`RequestBuilder::send`] runs it.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder<'a> {
    client: &'a Client,
    method: Method,
    path: String,
    body: Option<Body>,
    key: Option<String>,
    first: usize,
    rotate: bool,
    retry: bool,
    budget: Duration,
    try_timeout: Option<Duration>,
    token: Option<String>,
    headers: Vec<(String, String)>,
}

impl<'a> RequestBuilder<'a> {
    pub fn json(mut self, body: &impl serde::Serialize) -> Self {
        self.body = Some(Body::Json(serde_json::to_value(body).unwrap_or(Value::Null)));
        self
    }

    /// A body sent exactly as given (a test of malformed input), with this
    /// `Content-Type` if any.
    pub fn raw_body(mut self, content_type: Option<&str>, bytes: Vec<u8>) -> Self {
        self.body = Some(Body::Raw {
            content_type: content_type.map(str::to_owned),
            bytes,
        });
        self
    }

    /// The `Idempotency-Key`: sent with every try, so retries are safe.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    /// Starts at node `index` (of the client's URLs, wrapping around).
    pub fn to(mut self, index: usize) -> Self {
        self.first = index;
        self
    }

    /// Retries stay on the first node (a local read, a node's own status).
    pub fn pinned(mut self) -> Self {
        self.rotate = false;
        self
    }

    /// One try, whatever it answers (a 503 is then an answer too).
    pub fn once(mut self) -> Self {
        self.retry = false;
        self
    }

    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// How long one try may wait (default [`DEFAULT_TRY_TIMEOUT`]).
    pub fn try_timeout(mut self, timeout: Duration) -> Self {
        self.try_timeout = Some(timeout);
        self
    }

    /// Another bearer token for this request only (or none).
    pub fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the request under the retry rule of the module doc.
    pub async fn send(self) -> Result<Answer, ClientError> {
        let urls = &self.client.urls;
        // Whether a try that may have taken effect can be repeated.
        let repeatable = self.method == Method::GET || self.key.is_some();
        let deadline = Instant::now() + self.budget;
        let (mut pause, pause_max) = self.client.pauses;
        let mut node = self.first % urls.len();
        let mut tries = 0u32;
        loop {
            tries += 1;
            let no_answer = |last: String| ClientError::NoAnswer {
                tries,
                budget: self.budget,
                last: format!("{} {}: {last}", self.method, self.path),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut timeout = self.try_timeout.unwrap_or(DEFAULT_TRY_TIMEOUT);
            if self.retry {
                timeout = timeout.min(remaining.max(Duration::from_millis(1)));
            }
            let url = format!("{}{}", urls[node], self.path);
            let last = match self.try_once(&url, timeout).await {
                Try::Answered(mut answer) => {
                    let status = answer.status;
                    let not_an_answer = status == StatusCode::SERVICE_UNAVAILABLE
                        || (repeatable && status == StatusCode::GATEWAY_TIMEOUT);
                    if !self.retry || !not_an_answer {
                        answer.retries = tries - 1;
                        answer.node = node;
                        return Ok(answer);
                    }
                    format!("{url}: {status} {}", answer.text)
                }
                Try::NotSent(why) => why,
                Try::Lost(why) if repeatable => why,
                Try::Lost(why) => {
                    return Err(no_answer(format!(
                        "{why} (not repeated: a write without an Idempotency-Key might act twice)"
                    )));
                }
            };
            let now = Instant::now();
            if !self.retry || now >= deadline {
                return Err(no_answer(last));
            }
            if self.rotate {
                node = (node + 1) % urls.len();
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(pause_max);
        }
    }

    async fn try_once(&self, url: &str, timeout: Duration) -> Try {
        let mut request = self
            .client
            .http
            .request(self.method.clone(), url)
            .timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = &self.key {
            request = request.header("Idempotency-Key", key);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        match &self.body {
            None => {}
            Some(Body::Json(value)) => request = request.json(value),
            Some(Body::Raw { content_type, bytes }) => {
                if let Some(content_type) = content_type {
                    request = request.header(reqwest::header::CONTENT_TYPE, content_type);
                }
                request = request.body(bytes.clone());
            }
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) if err.is_connect() => return Try::NotSent(format!("{url}: {err}")),
            Err(err) => return Try::Lost(format!("{url}: {err}")),
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let headers = response.headers().clone();
        match response.text().await {
            Ok(text) => Try::Answered(Answer {
                status,
                content_type,
                headers,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
                retries: 0,
                node: 0,
            }),
            Err(err) => Try::Lost(format!("{url}: {status}, then reading the body: {err}")),
        }
    }
}

enum Body {
    Json(Value),
    Raw {
        content_type: Option<String>,
        bytes: Vec<u8>,
    },
}

/// What one try got.
enum Try {
    Answered(Answer),
    /// The connection was refused: nothing reached the node.
    NotSent(String),
    /// The request may have reached the node, but no answer came back.
    Lost(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: Value) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: Some("application/json".to_owned()),
            text: body.to_string(),
            body,
            retries: 0,
            node: 0,
            headers: reqwest::header::HeaderMap::new(),
        }
    }

    #[test]
    fn a_problem_is_split_from_a_success() {
        let rejected = answer(
            409,
            serde_json::json!({ "code": "seat_unavailable", "detail": "taken", "seats": ["A-1-1"] }),
        );
        assert_eq!(rejected.code(), "seat_unavailable");
        let problem = rejected.reply::<Value>().unwrap().unwrap_err();
        assert_eq!(problem.status, 409);
        assert_eq!(problem.body["seats"][0], "A-1-1");

        let held = answer(201, serde_json::json!({ "hold_id": 3 }));
        assert!(held.problem().is_none());
        assert_eq!(held.reply::<Value>().unwrap().unwrap()["hold_id"], 3);
    }

    #[test]
    fn a_success_of_the_wrong_shape_is_an_error() {
        #[derive(serde::Deserialize, Debug)]
        struct Created {
            #[allow(dead_code, reason = "only the parse is tested")]
            event_id: u64,
        }
        let odd = answer(201, serde_json::json!({ "event": "x" }));
        assert!(matches!(odd.reply::<Created>(), Err(ClientError::Unexpected(_))));
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_unless_asked_once() {
        // Port 9 (discard) on loopback: nothing listens, so the connection is refused.
        let client = Client::new(vec!["http://127.0.0.1:9".to_owned()])
            .unwrap()
            .with_retry_budget(Duration::from_secs(2));
        // A refused connection reached nobody, so even a keyless write is
        // tried again until the budget is spent.
        match client.post("/v1/events").send().await {
            Err(ClientError::NoAnswer { tries, .. }) => assert!(tries > 1, "tried {tries} times"),
            other => panic!("expected no answer, got {other:?}"),
        }
        match client.post("/v1/events").once().send().await {
            Err(ClientError::NoAnswer { tries, .. }) => assert_eq!(tries, 1),
            other => panic!("expected no answer, got {other:?}"),
        }
    }

    /// A node on loopback that answers each connection with the next of
    /// `answers` (a status line and body; `None`: close without answering),
    /// and counts the connections it saw.
    async fn scripted_node(
        answers: Vec<Option<(u16, &'static str)>>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            for answer in answers.into_iter().chain(std::iter::repeat(None)).take(64) {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                if let Some((status, body)) = answer {
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(body.as_bytes()).await;
                }
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn unavailable_is_retried_and_the_next_answer_returned() {
        let (url, seen) = scripted_node(vec![
            Some((503, r#"{"code":"unavailable"}"#)),
            Some((201, r#"{"hold_id":7}"#)),
        ])
        .await;
        let client = Client::new(vec![url]).unwrap();
        let answer = client.post("/v1/events/1/holds").send().await.unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.retries, 1);
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn outcome_unknown_is_repeated_only_with_a_key() {
        let script = || vec![Some((504, r#"{"code":"outcome_unknown"}"#)), Some((200, "{}"))];
        let (url, seen) = scripted_node(script()).await;
        let client = Client::new(vec![url]).unwrap();
        let answer = client.post("/v1/x").send().await.unwrap();
        assert_eq!(
            answer.status,
            StatusCode::GATEWAY_TIMEOUT,
            "without a key the 504 is the answer"
        );
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);

        let (url, seen) = scripted_node(script()).await;
        let client = Client::new(vec![url]).unwrap();
        let answer = client.post("/v1/x").key("k1").send().await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_lost_answer_is_repeated_only_with_a_key() {
        let (url, seen) = scripted_node(vec![None, Some((200, "{}"))]).await;
        let client = Client::new(vec![url]).unwrap();
        assert!(matches!(
            client.post("/v1/x").send().await,
            Err(ClientError::NoAnswer { tries: 1, .. })
        ));
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);

        let (url, seen) = scripted_node(vec![None, Some((200, "{}"))]).await;
        let client = Client::new(vec![url]).unwrap();
        let answer = client.post("/v1/x").key("k2").send().await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
