//! The Prometheus metrics of the contract's table, and the recorder behind `/metrics`.
//!
//! HTTP metrics are recorded by the middleware in `http/observe.rs`; the gauges that
//! describe state (books, pool, process) are refreshed when Prometheus scrapes, so they cost
//! nothing between scrapes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::store::{Engine, Store};

pub const REQUESTS_TOTAL: &str = "http_requests_total";
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";
pub const REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
pub const BOOKS: &str = "bookstore_books";
pub const POOL_CONNECTIONS: &str = "bookstore_db_pool_connections";
pub const BUILD_INFO: &str = "bookstore_build_info";
pub const REPLICAS_EXPECTED: &str = "bookstore_replicas_expected";
pub const AUTH_FAILURES: &str = "bookstore_auth_failures_total";
pub const BACKUP_LAST_SUCCESS: &str = "bookstore_backup_last_success_timestamp_seconds";
pub const BACKUP_FAILURES: &str = "bookstore_backup_failures_total";
pub const BACKUP_INTERVAL: &str = "bookstore_backup_interval_seconds";
/// The `reason`s of [`AUTH_FAILURES`] (see `auth::Refusal`).
pub const AUTH_FAILURE_REASONS: [&str; 4] = ["missing", "invalid", "forbidden", "limited"];

/// Latency buckets, in seconds: fine-grained below 10 ms, where this service lives, and wide
/// enough above to see a timeout coming (the default request timeout is 10 s).
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histograms are compacted; without upkeep their memory grows between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The counter and histogram of one (method, route, status) of [`REQUESTS_TOTAL`] and
/// [`REQUEST_DURATION`].
pub type RequestSeries = (Counter, Histogram);
/// The series by (method, status), then by route: looked up with the route as a `&str`,
/// so that finding a request's series allocates nothing.
type SeriesByRoute = HashMap<(&'static str, u16), HashMap<String, RequestSeries>>;

/// One application's metrics: its own recorder (never the process-wide one, so two
/// applications in one process, as in the API tests, never count each other's requests), the
/// process collector, and the handles the request path uses, looked up once. Cloning shares
/// them.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    recorder: PrometheusRecorder,
    process: metrics_process::Collector,
    in_flight: Gauge,
    /// The label sets are few and fixed, and building a key per request is not free.
    requests: RwLock<SeriesByRoute>,
    auth_failures: Vec<(&'static str, Counter)>,
}

impl Metrics {
    /// The metrics of one application, with its upkeep task (which ends with the runtime, or
    /// once the metrics are dropped).
    pub fn new(engine: Engine, replicas_expected: Option<u32>) -> anyhow::Result<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), &DURATION_BUCKETS)
            .map_err(|e| anyhow::anyhow!("cannot make the metrics recorder: {e}"))?
            .build_recorder();
        let (in_flight, auth_failures) = metrics::with_local_recorder(&recorder, || {
            // Every reason from the start, at 0, so that rates and alerts see the first failure.
            let auth_failures = AUTH_FAILURE_REASONS
                .iter()
                .map(|&reason| (reason, counter!(AUTH_FAILURES, "reason" => reason)))
                .collect::<Vec<_>>();
            (gauge!(REQUESTS_IN_FLIGHT), auth_failures)
        });
        for (_, counter) in &auth_failures {
            counter.absolute(0);
        }
        in_flight.set(0.0);
        let metrics = Self(Arc::new(Inner {
            recorder,
            process: metrics_process::Collector::default(),
            in_flight,
            requests: RwLock::default(),
            auth_failures,
        }));
        metrics.record(|| metrics.describe(engine, replicas_expected));
        let upkeep = Arc::downgrade(&metrics.0);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(inner) = upkeep.upgrade() else { break };
                inner.recorder.handle().run_upkeep();
            }
        });
        Ok(metrics)
    }

    /// Runs `f` with this application's recorder as the one the `metrics` macros use: a
    /// handle made inside records into it for as long as it is kept.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.0.recorder, f)
    }

    /// [`REQUESTS_IN_FLIGHT`].
    pub fn in_flight(&self) -> &Gauge {
        &self.0.in_flight
    }

    /// The series of one (method, route, status).
    pub fn requests(&self, method: &'static str, route: &str, status: StatusCode) -> RequestSeries {
        let key = (method, status.as_u16());
        if let Some(found) = self
            .0
            .requests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .and_then(|routes| routes.get(route))
        {
            return found.clone();
        }
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.as_str().to_owned()),
        ];
        let made = self.record(|| {
            (
                counter!(REQUESTS_TOTAL, &labels),
                histogram!(REQUEST_DURATION, &labels),
            )
        });
        self.0
            .requests
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .entry(route.to_owned())
            .or_insert(made)
            .clone()
    }

    /// Counts a request refused for its credential, by `reason` (one of
    /// [`AUTH_FAILURE_REASONS`]).
    pub fn auth_failure(&self, reason: &str) {
        if let Some((_, counter)) = self.0.auth_failures.iter().find(|(known, _)| *known == reason) {
            counter.increment(1);
        }
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
        self.0.process.describe();
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "database" => engine.name()).set(1.0);
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
        let books = store.book_count().await;
        let pool = store.pool_use();
        self.record(|| {
            self.0.process.collect();
            if let Some(books) = books {
                gauge!(BOOKS).set(books as f64);
            }
            gauge!(POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
            gauge!(POOL_CONNECTIONS, "state" => "in_use").set(f64::from(pool.in_use));
        });
        with_exact_cpu(&self.0.recorder.handle().render(), cpu_seconds())
    }
}

const CPU_SECONDS: &str = "process_cpu_seconds_total";

/// The exposition with `process_cpu_seconds_total` as Prometheus' client libraries give it: a
/// counter in seconds with sub-second resolution. (`metrics` counters hold whole numbers, so
/// the collector's own line, which would be a staircase of whole seconds, is replaced.)
fn with_exact_cpu(rendered: &str, seconds: Option<f64>) -> String {
    let mut out: String = rendered
        .lines()
        .filter(|line| {
            let name = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
                .unwrap_or(line);
            !(name.starts_with(CPU_SECONDS) && name[CPU_SECONDS.len()..].starts_with([' ', '{']))
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    if let Some(seconds) = seconds {
        out.push_str(&format!(
            "# HELP {CPU_SECONDS} Total user and system CPU time spent in seconds.\n\
             # TYPE {CPU_SECONDS} counter\n{CPU_SECONDS} {seconds}\n"
        ));
    }
    out
}

/// User plus system CPU time of this process so far (microsecond resolution).
fn cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_counter_is_replaced_by_one_with_sub_second_resolution() {
        let rendered = "# HELP process_cpu_seconds_total whole seconds\n# TYPE process_cpu_seconds_total counter\n\
            process_cpu_seconds_total 3\nprocess_cpu_seconds_totally_else 1\nbookstore_books 5\n";
        let out = with_exact_cpu(rendered, Some(3.25));
        assert!(
            !out.contains("whole seconds") && !out.contains("total 3\n"),
            "{out}"
        );
        assert!(
            out.contains("process_cpu_seconds_totally_else 1\nbookstore_books 5\n"),
            "{out}"
        );
        assert!(
            out.ends_with("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.25\n"),
            "{out}"
        );
        let now = cpu_seconds().unwrap();
        assert!(now > 0.0 && now.fract() != 0.0, "{now}");
    }
}
