//! Middleware that watches every request: the HTTP metrics of the contract, the matched
//! route on the request's log span, and problem bodies for errors produced outside the
//! handlers.
//!
//! Metrics are labelled by the matched route template (`/books/{id}`), never the raw path,
//! and methods outside the standard set are folded into `OTHER`, so no client can create
//! new series. Requests that match no route share the single route label [`UNMATCHED`].

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge, histogram};

use crate::error::{Error, PROBLEM_JSON};
use crate::metrics::{REQUEST_DURATION, REQUESTS_IN_FLIGHT, REQUESTS_TOTAL};

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";
/// The route label of UI files served from the static folder.
pub const STATIC: &str = "static";

/// The route a request matched, handed from [`tag_route`] (inside the router) to
/// [`record_metrics`] (outside it) through the response.
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
struct InFlight;

impl InFlight {
    fn start() -> Self {
        gauge!(REQUESTS_IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(REQUESTS_IN_FLIGHT).decrement(1.0);
    }
}

/// Counts and times every request.
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let started = Instant::now();
    let in_flight = InFlight::start();
    let response = next.run(request).await;
    drop(in_flight);

    let route = match response.extensions().get::<RouteLabel>() {
        Some(RouteLabel(path)) => path.as_str().to_owned(),
        None if response.extensions().get::<StaticFile>().is_some() => STATIC.to_owned(),
        None => UNMATCHED.to_owned(),
    };
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_str().to_owned()),
    ];
    counter!(REQUESTS_TOTAL, &labels).increment(1);
    histogram!(REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Marks a response as a UI file (see [`record_metrics`]).
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

/// Gives error responses made outside the handlers (the router's 404 and 405, the timeout,
/// the static file server) the same problem+json body as every other error, keeping their
/// `Allow` header.
pub async fn problem_bodies(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) {
        return response;
    }
    let Some(error) = Error::from_status(status) else {
        return response;
    };
    let allow = response.headers().get(ALLOW).cloned();
    let extensions = response.extensions().clone();
    let mut problem = error.into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(ALLOW, allow);
    }
    problem.extensions_mut().extend(extensions);
    problem
}

fn is_problem(response: &Response) -> bool {
    response.headers().get(CONTENT_TYPE) == Some(&HeaderValue::from_static(PROBLEM_JSON))
}
