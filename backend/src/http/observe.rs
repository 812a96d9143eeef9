//! Middleware that watches every request: the HTTP metrics of the contract, the matched
//! route on the request's log span, cheap and bounded request ids, problem bodies for
//! errors produced outside the handlers, and the request's span when spans are exported
//! (`crate::otlp`).
//!
//! Metrics are labelled by the matched route template (`/books/{id}`), never the raw path,
//! and methods outside the standard set are folded into `OTHER`, so no client can create
//! new series. Requests that match no route share the single route label [`UNMATCHED`].

use std::time::{Instant, SystemTime};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::Gauge;

use crate::error::{Error, PROBLEM_JSON, ServerFault};
use crate::metrics::Metrics;
use crate::otlp::{RequestSpan, Spans};

use super::trace::{self, TRACEPARENT, TraceContext};

pub const X_REQUEST_ID: &str = "x-request-id";

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";
/// The route label of UI files served from the static folder.
pub const STATIC: &str = "static";

/// The route a request matched, handed from [`tag_route`] (inside the router) to
/// [`observe`] (outside it) through the response.
#[derive(Clone)]
pub struct RouteLabel(pub MatchedPath);

/// Runs inside the router, where the matched route is known: puts it on the log span and
/// on the response.
pub async fn tag_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    if let Some(path) = &matched {
        tracing::Span::current().record("route", path.as_str());
    }
    let mut response = next.run(request).await;
    if let Some(path) = matched {
        response.extensions_mut().insert(RouteLabel(path));
    }
    response
}

/// Keeps the in-flight gauge right even when a client disconnects and the request future
/// is dropped half-way.
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn start(gauge: &'a Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What [`observe`] needs: the request ids to hand out, the application's metrics, and
/// where spans go when they are exported.
#[derive(Clone)]
pub struct Observer {
    pub ids: RequestIds,
    pub metrics: Metrics,
    pub spans: Option<Spans>,
}

/// The outermost middleware, one layer doing what every request needs (a layer each cost a
/// boxed future and a clone of its state per request: docs/profiling.md). It gives the
/// request its id and its trace (`traceparent`), both echoed on the answer with
/// `X-Content-Type-Options: nosniff`; counts and times it; logs it if it failed on the
/// server's side (with its route and request id); gives error responses made outside the
/// handlers (the router's 404 and 405, the timeout, the static file server) the same
/// problem+json body as every other error; and queues the request's span for export when
/// that is on.
pub async fn observe(
    State(Observer { ids, metrics, spans }): State<Observer>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = ids.assign(&mut request);
    let trace = TraceContext::from_header(request.headers().get(TRACEPARENT).map(HeaderValue::as_bytes));
    request.extensions_mut().insert(trace);
    let method = method_label(request.method());
    // Only when spans are exported, and the trace is sampled: the request's own span.
    let traced = spans
        .as_ref()
        .filter(|_| trace.sampled)
        .map(|_| (request.uri().path().to_owned(), SystemTime::now()));
    let started = Instant::now();
    let in_flight = InFlight::start(metrics.in_flight());
    let mut response = problem_body(trace::in_scope(trace, next.run(request)).await);
    drop(in_flight);
    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID, request_id.clone());
    headers.insert(TRACEPARENT, trace.header_value());
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let request_id = request_id.to_str().ok();

    let route = match response.extensions().get::<RouteLabel>() {
        Some(RouteLabel(path)) => path.as_str(),
        None if response.extensions().get::<StaticFile>().is_some() => STATIC,
        None => UNMATCHED,
    };
    let elapsed = started.elapsed();
    let status = response.status();
    let (requests, duration) = metrics.requests(method, route, status);
    requests.increment(1);
    duration.record(elapsed.as_secs_f64());
    if let (Some(spans), Some((path, start))) = (&spans, traced) {
        spans.record(RequestSpan {
            trace,
            method,
            route: route.to_owned(),
            path,
            status: status.as_u16(),
            start,
            duration: elapsed,
        });
    }
    if let Some(ServerFault(cause)) = response.extensions().get::<ServerFault>() {
        let request_id = request_id.unwrap_or_default();
        let ms = elapsed.as_secs_f64() * 1000.0;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(
                method,
                route,
                status = status.as_u16(),
                request_id,
                ms,
                cause,
                "request failed"
            );
        } else {
            tracing::error!(
                method,
                route,
                status = status.as_u16(),
                request_id,
                ms,
                cause,
                "request failed"
            );
        }
    }
    response
}

/// Marks a response as a UI file (see [`observe`]).
#[derive(Clone, Copy)]
pub struct StaticFile;

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn problem_body(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) {
        return response;
    }
    let Some(error) = Error::from_status(status) else {
        return response;
    };
    // Keep the original headers (Allow, security headers, CORS), swap in the problem.
    let (mut parts, _) = response.into_parts();
    let (problem, body) = error.into_response().into_parts();
    parts.status = problem.status;
    parts.headers.remove(CONTENT_LENGTH);
    for (name, value) in &problem.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}

fn is_problem(response: &Response) -> bool {
    response.headers().get(CONTENT_TYPE) == Some(&HeaderValue::from_static(PROBLEM_JSON))
}

/// Longest request id kept from a caller.
const MAX_REQUEST_ID: usize = 64;

fn plausible(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Request ids for requests that arrive without one: a per-process random prefix and a
/// counter. Unique enough to find a request in the logs, and far cheaper than a UUID (which
/// asks the kernel for randomness on every request).
#[derive(Clone)]
pub struct RequestIds {
    prefix: u32,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        Self {
            prefix: hasher.finish() as u32,
            next: Default::default(),
        }
    }

    /// Keeps the caller's `X-Request-Id` if it is a plausible id (1 to 64 letters, digits and
    /// `.`, `_`, `:`, `-`), and otherwise gives the request one: an id is echoed in the
    /// response and written to the logs, so it must not be anything a client cares to send.
    fn assign(&self, request: &mut Request) -> HeaderValue {
        match request.headers().get(X_REQUEST_ID) {
            Some(id) if plausible(id.as_bytes()) => id.clone(),
            _ => {
                let id = self.next();
                request.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        }
    }

    /// `PREFIX-N`: the prefix in 8 hex digits, the counter in as few as it needs (written
    /// without formatting machinery: most requests come without an id).
    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let digits = (64 - n.leading_zeros() as usize).div_ceil(4).max(1);
        let mut text = [b'-'; 8 + 1 + 16];
        trace::put_hex(&mut text[..8], u128::from(self.prefix));
        trace::put_hex(&mut text[9..9 + digits], u128::from(n));
        HeaderValue::from_bytes(&text[..9 + digits]).expect("hex digits and a dash")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_differ() {
        let ids = RequestIds::new();
        assert_ne!(ids.next(), ids.next());
    }

    #[test]
    fn a_request_id_is_the_prefix_and_the_counter_in_hex() {
        let ids = RequestIds {
            prefix: 0xab,
            next: Default::default(),
        };
        ids.next.store(0x1f, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(ids.next(), "000000ab-1f");
        ids.next.store(0, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(ids.next(), "000000ab-0");
        ids.next.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(ids.next(), "000000ab-ffffffffffffffff");
    }
}
