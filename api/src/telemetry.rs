//! Request metrics, made with `prometheus-client` and served in `/metrics`
//! beside the figures read from the replicas and the store (`ops::metrics`).
//!
//! Every answer of a matched route is counted by route template (the path as
//! the router declares it, `/v1/events/{event_id}/holds`, so that ids do not
//! make a series each), method and status, and its time to the response
//! head goes into a latency histogram by route and method. A request that no
//! route matches is not counted (its path would be a label clients choose).
//! Each route's layer carries its template from the route table, so the
//! labels are static strings.
//! Label values come only from the route table and the status code, so the
//! number of series is bounded by the routes, whatever clients send.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

// Labels borrow the route table's own strings: counting an answer allocates
// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Answered {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Route {
    route: &'static str,
    method: &'static str,
}

/// 100 µs to ~6.5 s, doubling: a cached read, a hold in one region, one
/// across a WAN, and a request that waited out a failover all fall in
/// buckets of their own.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

type LatencyFamily = Family<Route, Histogram, fn() -> Histogram>;

/// This node's request metrics.
pub struct Telemetry {
    registry: Registry,
    answered: Family<Answered, Counter>,
    latency: LatencyFamily,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::default();
        let answered = Family::<Answered, Counter>::default();
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        registry.register(
            "boxoffice_http_requests",
            "HTTP answers by route template, method and status",
            answered.clone(),
        );
        registry.register(
            "boxoffice_http_request_duration_seconds",
            "Time from a request's arrival to its answer's head, by route template and method",
            latency.clone(),
        );
        Telemetry {
            registry,
            answered,
            latency,
        }
    }
}

impl Telemetry {
    /// Counts one answer.
    pub fn observe(&self, route: &'static str, method: &'static str, status: u16, took: Duration) {
        self.latency
            .get_or_create(&Route { route, method })
            .observe(took.as_secs_f64());
        self.answered
            .get_or_create(&Answered {
                route,
                method,
                status,
            })
            .inc();
    }

    /// The metrics in Prometheus' text format (0.0.4).
    pub fn encode(&self, out: &mut String) {
        prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
            .expect("writing to a String cannot fail");
    }
}

/// Counts every answer of one route, `route` being its template (see the
/// module doc). Installed as a layer of each route (`routes::app`).
pub(crate) async fn middleware(
    State((state, route)): State<(AppState, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_name(request.method());
    let response = next.run(request).await;
    state
        .telemetry
        .observe(route, method, response.status().as_u16(), started.elapsed());
    response
}

/// The method as a label; one the route table does not use is `other`
/// (axum answers it 405 before any handler runs).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_route_template_and_timed() {
        let telemetry = Telemetry::default();
        for _ in 0..3 {
            telemetry.observe(
                "/v1/events/{event_id}/holds",
                "POST",
                201,
                Duration::from_millis(2),
            );
        }
        telemetry.observe(
            "/v1/events/{event_id}/holds",
            "POST",
            409,
            Duration::from_millis(1),
        );
        let mut text = String::new();
        telemetry.encode(&mut text);
        let line = |prefix: &str, having: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix) && l.contains(having))
                .unwrap_or_else(|| panic!("no {prefix}..{having} in\n{text}"))
                .to_owned()
        };
        let created = line("boxoffice_http_requests_total{", "status=\"201\"");
        assert!(
            created.contains("route=\"/v1/events/{event_id}/holds\""),
            "{created}"
        );
        assert!(created.contains("method=\"POST\""), "{created}");
        assert!(created.ends_with(" 3"), "{created}");
        assert!(
            line("boxoffice_http_requests_total{", "status=\"409\"").ends_with(" 1"),
            "{text}"
        );
        assert!(
            line("boxoffice_http_request_duration_seconds_count{", "").ends_with(" 4"),
            "{text}"
        );
        // 1 ms falls under the 1.6 ms bucket, 2 ms under 3.2 ms.
        let bucket = |le: &str| {
            line(
                "boxoffice_http_request_duration_seconds_bucket{",
                &format!("le=\"{le}\""),
            )
        };
        assert!(bucket("0.0008").ends_with(" 0"), "{text}");
        assert!(bucket("0.0016").ends_with(" 1"), "{text}");
        assert!(bucket("0.0032").ends_with(" 4"), "{text}");
        assert!(
            text.contains("# TYPE boxoffice_http_requests_total counter"),
            "{text}"
        );
    }
}
