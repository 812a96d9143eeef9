//! `bookstore alert-log`: the stack's default Alertmanager receiver. Alertmanager posts each
//! notification (firing or resolved) to `POST /alerts` as its webhook JSON; this writes one
//! JSON line per notification to stdout (`docker compose logs alert-log`) and keeps the last
//! hundred for `GET /alerts`, so that a fresh clone sees its alerts arrive somewhere without
//! any secret, and the failure drill can prove delivery. Replace it with a real integration
//! (docs/monitoring.md#sending-alerts-somewhere) to notify people.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Notifications kept for `GET /alerts`.
const KEEP: usize = 100;

/// What Alertmanager sends (the parts worth keeping).
#[derive(Debug, Deserialize)]
struct Webhook {
    status: String,
    #[serde(default)]
    receiver: String,
    #[serde(default)]
    alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Deserialize)]
struct WebhookAlert {
    status: String,
    #[serde(default)]
    labels: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    annotations: serde_json::Map<String, serde_json::Value>,
    #[serde(default, rename = "startsAt")]
    starts_at: String,
    #[serde(default, rename = "endsAt")]
    ends_at: String,
}

/// One notification as logged and listed.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub received_at: String,
    pub status: String,
    pub receiver: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub alertname: String,
    pub status: String,
    pub labels: serde_json::Map<String, serde_json::Value>,
    pub summary: String,
    pub description: String,
    pub runbook_url: String,
    pub starts_at: String,
    pub ends_at: String,
}

type Log = Arc<Mutex<VecDeque<Notification>>>;

pub fn router() -> Router {
    let log: Log = Arc::default();
    Router::new()
        .route("/alerts", post(receive).get(list))
        // `bookstore healthcheck --addr …` asks /readyz.
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(1 << 20))
        .with_state(log)
}

/// Serves the receiver on `addr` until `shutdown` completes.
pub async fn run(
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("alert-log: receiving Alertmanager notifications on http://{addr}/alerts");
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn receive(State(log): State<Log>, Json(webhook): Json<Webhook>) -> StatusCode {
    let text = |map: &serde_json::Map<String, serde_json::Value>, key: &str| {
        map.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let notification = Notification {
        received_at: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        status: webhook.status,
        receiver: webhook.receiver,
        alerts: webhook
            .alerts
            .into_iter()
            .map(|alert| Alert {
                alertname: text(&alert.labels, "alertname"),
                status: alert.status,
                summary: text(&alert.annotations, "summary"),
                description: text(&alert.annotations, "description"),
                runbook_url: text(&alert.annotations, "runbook_url"),
                labels: alert.labels,
                starts_at: alert.starts_at,
                ends_at: alert.ends_at,
            })
            .collect(),
    };
    if let Ok(line) = serde_json::to_string(&notification) {
        println!("{line}");
    }
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    if log.len() == KEEP {
        log.pop_front();
    }
    log.push_back(notification);
    StatusCode::OK
}

async fn list(State(log): State<Log>) -> Json<Vec<Notification>> {
    Json(
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect(),
    )
}
