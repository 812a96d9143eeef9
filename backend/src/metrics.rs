//! The Prometheus metrics of the contract's table, and the recorder behind `/metrics`.
//!
//! HTTP metrics are recorded by the middleware in `http/observe.rs`; the gauges that
//! describe state (books, pool, process) are refreshed when Prometheus scrapes, so they cost
//! nothing between scrapes.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::{Engine, Store};

pub const REQUESTS_TOTAL: &str = "http_requests_total";
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";
pub const REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
pub const BOOKS: &str = "bookstore_books";
pub const POOL_CONNECTIONS: &str = "bookstore_db_pool_connections";
pub const BUILD_INFO: &str = "bookstore_build_info";
pub const REPLICAS_EXPECTED: &str = "bookstore_replicas_expected";
pub const AUTH_FAILURES: &str = "bookstore_auth_failures_total";
/// The `reason`s of [`AUTH_FAILURES`] (see `auth::Refusal`).
pub const AUTH_FAILURE_REASONS: [&str; 4] = ["missing", "invalid", "forbidden", "limited"];

/// Latency buckets, in seconds: fine-grained below 10 ms, where this service lives, and wide
/// enough above to see a timeout coming (the default request timeout is 10 s).
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histograms are compacted; without upkeep their memory grows between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder and the process collector. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl Metrics {
    /// Installs the process-wide recorder on first use (a process has one global recorder;
    /// tests that start many apps in one process share it) and starts its upkeep thread.
    pub fn install(engine: Engine, replicas_expected: Option<u32>) -> anyhow::Result<Self> {
        static INSTALLED: OnceLock<Result<Metrics, String>> = OnceLock::new();
        INSTALLED
            .get_or_init(|| {
                let handle = PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), &DURATION_BUCKETS)
                    .and_then(PrometheusBuilder::install_recorder)
                    .map_err(|e| e.to_string())?;
                let metrics = Self {
                    handle,
                    process: metrics_process::Collector::default(),
                };
                metrics.describe(engine, replicas_expected);
                let upkeep = metrics.handle.clone();
                std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(UPKEEP_EVERY);
                            upkeep.run_upkeep();
                        }
                    })
                    .map_err(|e| e.to_string())?;
                Ok(metrics)
            })
            .clone()
            .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))
    }

    fn describe(&self, engine: Engine, replicas_expected: Option<u32>) {
        describe_counter!(
            REQUESTS_TOTAL,
            "HTTP requests answered, by method, route template and status."
        );
        describe_histogram!(
            REQUEST_DURATION,
            metrics::Unit::Seconds,
            "Time to answer an HTTP request, by method, route template and status."
        );
        describe_gauge!(REQUESTS_IN_FLIGHT, "HTTP requests being answered now.");
        describe_gauge!(BOOKS, "Books stored.");
        describe_gauge!(
            POOL_CONNECTIONS,
            "Database connections, by state (idle or in_use)."
        );
        describe_gauge!(
            BUILD_INFO,
            "Always 1; the labels say which build is running and on which database engine."
        );
        describe_counter!(
            AUTH_FAILURES,
            "Requests refused for their credential, by reason: missing, invalid (unknown, expired or revoked), \
             forbidden (may not do this), limited (too many failures from the client)."
        );
        // Every reason from the start, at 0, so that rates and alerts see the first failure.
        for reason in AUTH_FAILURE_REASONS {
            counter!(AUTH_FAILURES, "reason" => reason).absolute(0);
        }
        self.process.describe();
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "database" => engine.name()).set(1.0);
        gauge!(REQUESTS_IN_FLIGHT).set(0.0);
        if let Some(replicas) = replicas_expected {
            describe_gauge!(
                REPLICAS_EXPECTED,
                "How many replicas of the backend the deployment runs (BOOKSTORE_REPLICAS_EXPECTED)."
            );
            gauge!(REPLICAS_EXPECTED).set(f64::from(replicas));
        }
    }

    /// The Prometheus text exposition, with the state gauges read just now.
    pub async fn render(&self, store: &Store) -> String {
        self.process.collect();
        if let Some(books) = store.book_count().await {
            gauge!(BOOKS).set(books as f64);
        }
        let pool = store.pool_use();
        gauge!(POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
        gauge!(POOL_CONNECTIONS, "state" => "in_use").set(f64::from(pool.in_use));
        self.handle.render()
    }
}
