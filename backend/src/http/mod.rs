//! Where HTTP lives: the routes of each resource, merged into one router, wrapped in the
//! middleware every request goes through.

mod books;
mod conditional;
mod health;
mod input;
mod observe;
mod openapi;
mod schemas;
mod session;
mod time_limit;
pub mod trace;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, ETAG};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state, map_response};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use input::BODY_LIMIT;
pub use openapi::Docs;

use crate::auth::Auth;
use crate::metrics::Metrics;
use crate::store::Store;

/// What every handler can reach: one shared allocation, so that handing it to a request is
/// one reference count, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl From<Services> for AppState {
    fn from(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The application's services, shared by every request through [`AppState`].
pub struct Services {
    pub store: Store,
    pub auth: Auth,
    pub metrics: Metrics,
    pub docs: Docs,
    /// Set once the process is told to stop: `/readyz` then answers 503 while requests are
    /// still served (for the shutdown delay).
    pub stopping: Arc<AtomicBool>,
}

/// The HTTP settings that shape the router.
#[derive(Clone)]
pub struct HttpConfig {
    pub static_dir: Option<PathBuf>,
    pub cors_origins: Vec<String>,
    pub request_timeout: Duration,
    /// Where request spans go, when OTLP export is on.
    pub spans: Option<crate::otlp::Spans>,
}

/// Responses smaller than this are not worth compressing.
const COMPRESS_ABOVE: u64 = 1024;

/// The UI's Content-Security-Policy when this server serves it (nginx sets the same one in
/// the container stack): scripts, styles and data only from this origin, and no framing.
const UI_CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
    base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

pub fn router(state: AppState, config: &HttpConfig) -> Router {
    let routes = Router::new()
        .merge(books::router())
        .merge(session::router())
        .merge(health::router())
        .merge(openapi::router())
        .route_layer(from_fn(observe::tag_route));
    let routes = match &config.static_dir {
        Some(dir) => routes.fallback_service(static_files(dir.clone())),
        None => routes,
    };

    let cors = (!config.cors_origins.is_empty()).then(|| cors(&config.cors_origins));
    let limit = config.request_timeout;
    let observer = observe::Observer {
        ids: observe::RequestIds::new(),
        metrics: state.metrics.clone(),
        spans: config.spans.clone(),
    };
    let middleware = ServiceBuilder::new()
        .layer(from_fn_with_state(observer, observe::observe))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                // Failures are logged once, by `observe`, with the route and the cause.
                .on_failure(()),
        )
        .option_layer(cors)
        .layer(CompressionLayer::new().compress_when(SizeAbove::new(COMPRESS_ABOVE).and(NoValidator)))
        .layer(from_fn(move |request, next| {
            time_limit::limit(limit, request, next)
        }))
        .layer(DefaultBodyLimit::max(BODY_LIMIT));

    routes.layer(middleware).with_state(state)
}

/// One span per request, carrying its id; `tag_route` fills in the matched route.
///
/// The span is at DEBUG level: formatting a span per request costs the service a sixth of
/// its throughput, and at the default INFO level the lines it would enrich are the failures,
/// which `observe` logs with the route and request id anyway. `RUST_LOG=bookstore=debug,
/// tower_http=debug` shows every request with its span.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    tracing::debug_span!(
        "request",
        method = request.method().as_str(),
        path = request.uri().path(),
        route = tracing::field::Empty,
        request_id,
    )
}

/// Responses with an `ETag` stay uncompressed, so their strong tag always names the same
/// bytes (compressed bytes would need a different tag).
#[derive(Clone, Copy)]
struct NoValidator;

impl Predicate for NoValidator {
    fn should_compress<B: http_body::Body>(&self, response: &axum::http::Response<B>) -> bool {
        !response.headers().contains_key(ETAG)
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            books::IDEMPOTENCY_KEY,
            trace::TRACEPARENT,
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::LINK,
            books::X_TOTAL_COUNT,
            books::X_TOTAL_COUNT_RELATION,
            trace::TRACEPARENT,
        ])
        .max_age(Duration::from_secs(600))
}

/// The UI folder, for `cargo run` without nginx. Files are revalidated on every load
/// (`no-cache`), so an edited file shows up on the next reload.
fn static_files(dir: PathBuf) -> Router {
    Router::new()
        .fallback_service(ServeDir::new(dir).append_index_html_on_directories(true))
        .layer(map_response(mark_static))
}

async fn mark_static(mut response: Response) -> Response {
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        response.extensions_mut().insert(observe::StaticFile);
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(UI_CSP));
        headers.insert(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}
