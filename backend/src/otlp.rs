//! Optional export of request spans over OTLP/HTTP (JSON encoding), to an OpenTelemetry
//! collector, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set. Off by default, and then free: no queue, no task, one `None` checked per request.
//!
//! One span per request (kind SERVER), in the trace of its `traceparent` (see `http::trace`),
//! named `METHOD route` with the stable HTTP semantic conventions' attributes. Spans wait in a
//! bounded queue and leave in batches (at most [`MAX_BATCH`], at least every
//! `OTEL_BSP_SCHEDULE_DELAY` ms, default 5000); a full queue drops spans rather than slow
//! requests down, and a failed export is logged and dropped, never retried: traces are worth
//! having, not worth a request. At shutdown the queue is flushed.
//!
//! Plain `http://` only: the collector is expected next to the service (a sidecar or the
//! compose network), and it carries TLS onwards.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::http::trace::TraceContext;

/// Spans sent in one request to the collector (the OpenTelemetry SDKs' default).
pub const MAX_BATCH: usize = 512;
/// Spans waiting for export; past this, new ones are dropped (the SDKs' default).
const QUEUE: usize = 2048;

/// Where and how to export, from the standard `OTEL_*` variables.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    endpoint: Endpoint,
    service_name: String,
    delay: Duration,
    timeout: Duration,
}

#[derive(Debug, Clone)]
struct Endpoint {
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

impl OtlpConfig {
    /// `None` unless an endpoint is set (or when `OTEL_SDK_DISABLED=true`).
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|value| !value.trim().is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Self>> {
        if var("OTEL_SDK_DISABLED").is_some_and(|value| value.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let (name, url, signal_path) = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url, false),
            (None, Some(url)) => ("OTEL_EXPORTER_OTLP_ENDPOINT", url, true),
            (None, None) => return Ok(None),
        };
        let endpoint = Endpoint::parse(url.trim(), signal_path).with_context(|| format!("{name}={url}"))?;
        let millis = |name: &str, default: u64| -> anyhow::Result<Duration> {
            match var(name) {
                None => Ok(Duration::from_millis(default)),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                    _ => bail!("{name}={value}: expected a number of milliseconds above 0"),
                },
            }
        };
        Ok(Some(Self {
            endpoint,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| "bookstore".to_owned()),
            delay: millis("OTEL_BSP_SCHEDULE_DELAY", 5000)?,
            timeout: millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
        }))
    }

    pub fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }
}

impl Endpoint {
    /// `http://HOST[:PORT][/PATH]`; the base endpoint gets `/v1/traces` appended, as the
    /// OTLP exporter specification says.
    fn parse(url: &str, signal_path: bool) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().context("not a URL")?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => bail!(
                "https is not supported: export to a collector next to the service over http://, and let it carry TLS onwards"
            ),
            _ => bail!("expected http://HOST:PORT"),
        }
        let authority = uri.authority().context("no host")?;
        if uri.query().is_some() || authority.as_str().contains('@') {
            bail!("expected http://HOST:PORT[/PATH], without credentials or a query");
        }
        let path = uri.path();
        let path = if signal_path {
            format!("{}/v1/traces", path.trim_end_matches('/'))
        } else if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        };
        Ok(Self {
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path,
        })
    }
}

/// One request, as it becomes a span.
#[derive(Debug, Clone)]
pub struct RequestSpan {
    pub trace: TraceContext,
    pub method: &'static str,
    pub route: String,
    pub path: String,
    pub status: u16,
    pub start: SystemTime,
    pub duration: Duration,
}

/// The sending end of the export queue. Cloning shares it; once every clone is gone (the
/// server has stopped), the exporter sends what is left and ends.
#[derive(Clone)]
pub struct Spans {
    queue: mpsc::Sender<RequestSpan>,
    dropped: Arc<AtomicU64>,
}

impl Spans {
    /// Starts the exporter task.
    pub fn start(config: OtlpConfig) -> (Self, JoinHandle<()>) {
        let (queue, pending) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(export_loop(config, pending, dropped.clone()));
        (Self { queue, dropped }, task)
    }

    /// Queues a finished request's span, or drops it if the queue is full.
    pub fn record(&self, span: RequestSpan) {
        if self.queue.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn export_loop(config: OtlpConfig, mut pending: mpsc::Receiver<RequestSpan>, dropped: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let Some(first) = pending.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + config.delay;
        let mut closed = false;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, pending.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let count = batch.len();
        let body = encode(&config, batch.drain(..));
        match tokio::time::timeout(config.timeout, post(&config.endpoint, body)).await {
            Ok(Ok(())) => tracing::debug!(spans = count, "exported spans"),
            Ok(Err(error)) => {
                tracing::warn!(spans = count, endpoint = %config.endpoint, "cannot export spans: {error:#}")
            }
            Err(_) => tracing::warn!(spans = count, endpoint = %config.endpoint, timeout = ?config.timeout,
                "cannot export spans: the collector did not answer in time"),
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(spans = lost, "dropped spans: the export queue was full");
        }
        if closed {
            return;
        }
    }
}

/// An OTLP `ExportTraceServiceRequest`, in its JSON encoding (ids in hex, 64-bit integers as
/// strings).
fn encode(config: &OtlpConfig, spans: impl Iterator<Item = RequestSpan>) -> Vec<u8> {
    let string = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    let spans: Vec<Value> = spans
        .map(|span| {
            let start = span.start.duration_since(UNIX_EPOCH).unwrap_or_default();
            let end = start + span.duration;
            let mut encoded = json!({
                "traceId": span.trace.trace_id.to_string(),
                "spanId": span.trace.span_id.to_string(),
                "name": format!("{} {}", span.method, span.route),
                "kind": 2,
                "startTimeUnixNano": start.as_nanos().to_string(),
                "endTimeUnixNano": end.as_nanos().to_string(),
                "attributes": [
                    string("http.request.method", span.method),
                    string("http.route", &span.route),
                    string("url.path", &span.path),
                    json!({"key": "http.response.status_code", "value": {"intValue": span.status.to_string()}}),
                ],
                // Server errors are errors; 4xx are the client's (the conventions' rule for
                // server spans): left unset.
                "status": {"code": if span.status >= 500 { 2 } else { 0 }},
            });
            if let Some(parent) = span.trace.parent {
                encoded["parentSpanId"] = Value::String(parent.to_string());
            }
            encoded
        })
        .collect();
    let request = json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                string("service.name", &config.service_name),
                string("service.version", env!("CARGO_PKG_VERSION")),
            ]},
            "scopeSpans": [{
                "scope": {"name": "bookstore", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans,
            }],
        }],
    });
    serde_json::to_vec(&request).expect("JSON values serialize")
}

/// One POST on a fresh connection: a batch leaves at most every few seconds. The connection
/// is driven here, not in a task of its own, so that a time-out (dropping this future) closes
/// it too.
async fn post(endpoint: &Endpoint, body: Vec<u8>) -> anyhow::Result<()> {
    let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .context("cannot connect")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let request = Request::post(endpoint.path.as_str())
        .header(HOST, endpoint.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body))?;
    let mut exchange = std::pin::pin!(sender.send_request(request));
    let mut connection = std::pin::pin!(connection);
    let answer = tokio::select! {
        biased;
        answer = &mut exchange => answer,
        // The connection ended (closed by the collector, or failed): the exchange has its
        // answer, or the reason there is none.
        _ = &mut connection => exchange.await,
    };
    let answer = answer?;
    if !answer.status().is_success() {
        bail!("the collector answered {}", answer.status());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Option<OtlpConfig>> {
        OtlpConfig::from_vars(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        assert!(config(&[]).unwrap().is_none());
        assert!(
            config(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_SDK_DISABLED", "true")
            ])
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_traces_endpoint_is_taken_as_is() {
        let base = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(base.endpoint(), "http://collector:4318/v1/traces");
        let prefixed = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/otlp/")])
            .unwrap()
            .unwrap();
        assert_eq!(prefixed.endpoint(), "http://collector:4318/otlp/v1/traces");
        let exact = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:1"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector/custom"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(exact.endpoint(), "http://collector/custom");
        assert_eq!(exact.endpoint.port, 80);
        assert_eq!(exact.delay, Duration::from_secs(5));
        assert_eq!(exact.service_name, "bookstore");
    }

    #[test]
    fn unusable_settings_are_refused_with_the_reason() {
        for (name, value, reason) in [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector:4318",
                "https is not supported",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "collector:4318",
                "expected http://",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://user:pw@collector",
                "without credentials",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url", "not a URL"),
        ] {
            let error = format!("{:#}", config(&[(name, value)]).unwrap_err());
            assert!(error.contains(reason), "{value}: {error}");
        }
        let error = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("OTEL_BSP_SCHEDULE_DELAY=soon"), "{error}");
    }
}
