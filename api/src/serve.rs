//! The HTTP/1.1 server loop: connection limits and timeouts around the app.
//!
//! `axum::serve` has no header-read or idle timeout and no connection cap, so
//! a client that opens connections and never finishes its headers (slowloris)
//! keeps each one forever. This loop serves the same app with four bounds:
//!
//! - **max_connections**: a connection beyond the cap is answered at once
//!   with `503 too_many_connections` and closed; nothing is queued.
//! - **header_read_timeout**: from the moment a connection is accepted, or
//!   from the first byte of a later request, its head must be complete within
//!   this time, or the connection is closed.
//! - **idle_timeout**: a keep-alive connection with no request in flight and
//!   no byte received for this long is closed.
//! - **request_timeout**: a handler that has not produced its response head
//!   within this time is answered for it: `504 outcome_unknown` for a write
//!   (it may have taken effect; retry with the same `Idempotency-Key`) and
//!   `503 request_timeout` for a read. A streamed body (`/live`) is not timed
//!   once its head is out, and `/v1/admin/*` (membership changes wait for
//!   replicas to catch up) is bounded by its own steps instead.
//!
//! A watchdog per connection enforces the two connection timeouts from what
//! the connection did: bytes read (counted by the I/O wrapper) and requests
//! in flight (counted from the handler's start until the response body ends
//! or is dropped). Shutdown stops accepting, asks every connection to finish
//! its current request, and gives them [`SHUTDOWN_GRACE`] before closing.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::Problem;

/// How long connections may finish their requests once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often a connection's watchdog looks at it.
const WATCHDOG_TICK: Duration = Duration::from_millis(250);

/// The server's bounds (the node config's `[http]` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// What one connection did, as its watchdog sees it. Times are milliseconds
/// since the connection was accepted.
struct Activity {
    started: Instant,
    /// Requests whose response has not ended yet.
    in_flight: AtomicUsize,
    /// When the current request head began (its first byte), `u64::MAX` if
    /// no head is being read.
    head_started: AtomicU64,
    /// When the connection last became idle (accepted, or a response ended).
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            // A fresh connection is waiting for its first head.
            head_started: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.now();
            let _ = self
                .head_started
                .compare_exchange(u64::MAX, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(u64::MAX, Ordering::Release);
    }

    fn response_ended(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Why the connection should be closed now, if it should.
    fn expired(&self, limits: &ServeLimits) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.now();
        let head = self.head_started.load(Ordering::Acquire);
        if head != u64::MAX {
            (now.saturating_sub(head) > limits.header_read_timeout.as_millis() as u64)
                .then_some("request head not complete in time")
        } else {
            let idle = self.idle_since.load(Ordering::Acquire);
            (now.saturating_sub(idle) > limits.idle_timeout.as_millis() as u64).then_some("idle")
        }
    }
}

/// A TCP stream that tells its connection's [`Activity`] when bytes arrive.
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A response body that tells the connection's [`Activity`] when it ends
/// (fully sent, or dropped because the client went away).
struct Guarded {
    inner: Body,
    activity: Option<Arc<Activity>>,
}

impl Guarded {
    fn finish(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.response_ended();
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.finish();
    }
}

impl http_body::Body for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The answer for a request whose handler ran out of time.
fn timed_out(method: &Method, limit: Duration) -> Response {
    let secs = limit.as_secs_f64();
    if method == Method::GET || method == Method::HEAD {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("no answer within {secs} s; nothing was changed, try again"),
        )
        .into_response()
    } else {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "outcome_unknown",
            format!(
                "no answer within {secs} s; the request may or may not have taken effect: \
                 send it again with the same Idempotency-Key to learn its outcome"
            ),
        )
        .into_response()
    }
}

/// The answer of a request whose handler panicked (a bug): a read may be
/// retried; a write may or may not have taken effect.
fn panicked(method: &Method) -> Response {
    let detail = if method == Method::GET || method == Method::HEAD {
        "the server failed on this request; nothing was changed"
    } else {
        "the server failed on this request, which may or may not have taken effect: \
         send it again with the same Idempotency-Key to learn its outcome"
    };
    Problem::internal(detail).into_response()
}

/// Serves `app` on `listener` until `shutdown` resolves, within `limits`.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Tells every connection that shutdown began.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%remote, cap = limits.max_connections, "connection refused: at the connection cap");
            tokio::spawn(refuse(stream));
            continue;
        };
        let connection = serve_connection(stream, remote, app.clone(), limits, stop_rx.clone());
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    let _ = stop_tx.send(true);
    // Wait for the connections to drain: every one holds a permit.
    let everything = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        SHUTDOWN_GRACE + Duration::from_secs(1),
        permits.acquire_many(everything),
    )
    .await;
    Ok(())
}

/// Answers a connection beyond the cap and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Too many connections",
        "status": 503,
        "code": "too_many_connections",
        "detail": "this node is at its connection limit; retry shortly or use another node",
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: axum::Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    let io = TokioIo::new(Tracked {
        stream,
        activity: activity.clone(),
    });
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        let app = app.clone();
        let activity = service_activity.clone();
        activity.request_started();
        request.extensions_mut().insert(ConnectInfo(remote));
        let method = request.method().clone();
        let timed = !request.uri().path().starts_with("/v1/admin/");
        async move {
            let request = request.map(Body::new);
            let path = request.uri().path().to_owned();
            // A handler that panics answers 500 instead of dropping the connection.
            let handled = {
                use futures::FutureExt;
                let method = method.clone();
                std::panic::AssertUnwindSafe(app.oneshot(request))
                    .catch_unwind()
                    .map(move |outcome| match outcome {
                        Ok(answered) => answered.unwrap_or_else(|never| match never {}),
                        Err(_) => {
                            tracing::error!(%method, path, "a handler panicked");
                            panicked(&method)
                        }
                    })
            };
            let response = if timed {
                match tokio::time::timeout(limits.request_timeout, handled).await {
                    Ok(answered) => answered,
                    Err(_) => {
                        tracing::warn!(%method, "request timed out after {:?}", limits.request_timeout);
                        timed_out(&method, limits.request_timeout)
                    }
                }
            } else {
                handled.await
            };
            let response = response.map(|body| {
                Body::new(Guarded {
                    inner: body,
                    activity: Some(activity),
                })
            });
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut watchdog = tokio::time::interval(WATCHDOG_TICK);
    let mut stopping: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = watchdog.tick() => {
                if let Some(deadline) = stopping {
                    if tokio::time::Instant::now() >= deadline {
                        return;
                    }
                } else if let Some(why) = activity.expired(&limits) {
                    tracing::debug!(%remote, why, "closing connection");
                    return;
                }
            }
            changed = stop.changed(), if stopping.is_none() => {
                if changed.is_err() || *stop.borrow() {
                    connection.as_mut().graceful_shutdown();
                    stopping = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServeLimits {
        ServeLimits {
            header_read_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_secs(1),
            max_connections: 2,
        }
    }

    #[test]
    fn a_fresh_connection_must_send_its_head_in_time() {
        let activity = Activity::new();
        assert_eq!(activity.expired(&limits()), None);
        std::thread::sleep(Duration::from_millis(150));
        assert!(activity.expired(&limits()).is_some());
    }

    #[test]
    fn a_request_in_flight_is_never_cut_and_idle_time_counts_after_it() {
        let activity = Activity::new();
        activity.request_started();
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(activity.expired(&limits()), None, "a request is in flight");
        activity.response_ended();
        // Idle now: within the idle timeout, not yet expired.
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(activity.expired(&limits()), None);
        // A byte of the next head starts the header clock.
        activity.read_some();
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(
            activity.expired(&limits()),
            Some("request head not complete in time")
        );
    }

    #[test]
    fn an_idle_keep_alive_connection_expires() {
        let activity = Activity::new();
        activity.request_started();
        activity.response_ended();
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(activity.expired(&limits()), Some("idle"));
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
        let app = axum::Router::new()
            .route(
                "/boom",
                axum::routing::get(
                    |axum::extract::RawQuery(query): axum::extract::RawQuery| async move {
                        // Panics on a request without a query string, like a bug would.
                        query.expect("a bug")
                    },
                ),
            )
            .route("/fine", axum::routing::get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, limits(), async move {
            let _ = stopped.await;
        }));
        let client = crate::client::Client::new(vec![url]).unwrap();
        let boom = client.get("/boom").once().send().await.unwrap();
        assert_eq!(boom.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(boom.code(), "internal");
        let fine = client.get("/fine").once().send().await.unwrap();
        assert_eq!(fine.text, "ok");
        let _ = stop.send(());
        let _ = server.await;
    }
}
