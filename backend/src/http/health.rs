//! Liveness (`/healthz`), readiness (`/readyz`) and the Prometheus scrape (`/metrics`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::error::{Error, Problem, Result};
use crate::store::NotReady;

/// A readiness probe that cannot get an answer this fast treats the database as down.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Status {
    /// Always `ok`.
    pub status: &'static str,
}

/// Liveness: the process is up and serving. Touches nothing else.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "database": "sqlite"}))]
pub struct Readiness {
    /// Always `ok`.
    pub status: &'static str,
    /// The engine: `sqlite` or `postgres`.
    pub database: &'static str,
}

/// Readiness: the database answers, and a write could commit now. What orchestrators, load
/// balancers and health checks use.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Not ready; `detail` names the check that failed (the database does not \
            answer, or a write cannot commit); why is in the server's log",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>> {
    if state.stopping.load(Ordering::Relaxed) {
        return Err(Error::NotReady("shutting down".to_owned()));
    }
    let problem = match tokio::time::timeout(READY_TIMEOUT, state.store.not_ready()).await {
        Ok(None) => {
            return Ok(Json(Readiness {
                status: "ok",
                database: state.store.engine().name(),
            }));
        }
        Ok(Some(problem)) => problem,
        Err(_) => NotReady::database("no answer within 2 s"),
    };
    // The database's own words stay in the log: they can name hosts, users and files.
    tracing::warn!(check = problem.check, cause = %problem.cause, "not ready");
    Err(Error::NotReady(problem.check.to_owned()))
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in the Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(&state.store).await;
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}
