//! Building and running the application: one function used by `main` and by every test.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::backups::Schedule;
use crate::config::ServeArgs;
use crate::http::{self, AppState, Docs, HttpConfig, Services};
use crate::metrics::Metrics;
use crate::otlp::{OtlpConfig, Spans};
use crate::server::{self, ConnectionLimits};
use crate::store::{self, Engine, Store};

/// How long a stopping server waits for its last spans to be exported.
const EXPORT_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    store: Store,
    limits: ConnectionLimits,
    shutdown_timeout: Duration,
    shutdown_delay: Duration,
    /// Shared with `/readyz`: set when the shutdown delay begins.
    stopping: Arc<AtomicBool>,
    /// Scheduled backups, stopped with the application.
    backups: Option<AbortOnDrop>,
    /// The span exporter, which sends what is left once the server has stopped.
    exporter: Option<tokio::task::JoinHandle<()>>,
}

/// A background task that ends when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Application {
    /// Opens the database (migrating it, and seeding a brand-new one if asked), builds the
    /// router and binds the listener. Port 0 picks a free port (see [`Self::local_addr`]).
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        let config = args.store()?;
        let backups = match (&args.backup_dir, Engine::of(&config.database_url)) {
            (None, _) => None,
            (Some(dir), Some(Engine::Sqlite)) => {
                let schedule = Schedule {
                    dir: dir.clone(),
                    every: args.backup_interval,
                    keep: args.backup_keep as usize,
                };
                Some((schedule, config.database_url.clone()))
            }
            (Some(_), _) => anyhow::bail!(
                "BOOKSTORE_BACKUP_DIR: scheduled backups copy SQLite files; on PostgreSQL, back up with pg_dump \
                 (docs/scaling.md#backups-on-postgresql) and unset it"
            ),
        };
        let opened = store::open(&config)
            .await
            .with_context(|| format!("cannot open the database {}", redacted(&config.database_url)))?;
        let store = opened.store;
        if opened.fresh && args.demo_data {
            let added = crate::seed::seed_demo_catalogue(store.as_ref())
                .await
                .context("cannot add the sample books")?;
            tracing::info!(books = added, "new database: added the sample catalogue");
        }
        tracing::info!(database = %redacted(&config.database_url), engine = store.engine().name(), "database open");
        if let Some((schedule, _)) = &backups {
            tracing::info!(dir = %schedule.dir.display(), every = ?schedule.every, keep = schedule.keep,
                "scheduled backups on");
        }
        let metrics = Metrics::new(store.engine(), args.replicas_expected)?;
        let auth = Auth::new(store.credentials(), args.auth()?, metrics.clone());
        auth.announce()
            .await
            .context("cannot read or make the API tokens")?;
        let state = AppState::from(Services {
            store: store.clone(),
            auth,
            metrics: metrics.clone(),
            docs: Docs::build(args.public_reads),
            stopping: Arc::default(),
        });
        let stopping = state.stopping.clone();
        let (spans, exporter) = match OtlpConfig::from_env().context("cannot export spans (OTLP)")? {
            Some(otlp) => {
                tracing::info!(endpoint = %otlp.endpoint(), "exporting request spans (OTLP/HTTP)");
                let (spans, task) = Spans::start(otlp);
                (Some(spans), Some(task))
            }
            None => (None, None),
        };
        let config = HttpConfig {
            static_dir: args.static_dir(),
            cors_origins: args.cors_origins(),
            request_timeout: args.request_timeout,
            spans,
        };
        if let Some(dir) = &config.static_dir {
            tracing::info!(dir = %dir.display(), "serving the UI");
        }
        let router = http::router(state, &config);
        let backups = backups.map(|(schedule, url)| AbortOnDrop(schedule.spawn(url, &metrics)));
        let listener = TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        Ok(Self {
            listener,
            router,
            store,
            limits: args.connection_limits(),
            shutdown_timeout: args.shutdown_timeout,
            shutdown_delay: args.shutdown_delay,
            stopping,
            backups,
            exporter,
        })
    }

    /// The store the application uses (tests reach behind the API with it).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then goes on serving for the shutdown delay with
    /// `/readyz` answering 503 (while the proxies in front notice), stops accepting
    /// connections, lets requests in progress finish (for at most the shutdown timeout), and
    /// closes the database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "listening");
        let backups = self.backups;
        let (delay, stopping) = (self.shutdown_delay, self.stopping.clone());
        let shutdown = async move {
            shutdown.await;
            stopping.store(true, Ordering::Relaxed);
            if !delay.is_zero() {
                tracing::info!(
                    ?delay,
                    "stopping: not ready, still serving while the proxies in front notice"
                );
                tokio::time::sleep(delay).await;
            }
            tracing::info!("shutting down: finishing requests in progress");
        };
        let drained = server::serve(
            self.listener,
            self.router,
            self.limits,
            shutdown,
            self.shutdown_timeout,
        )
        .await;
        if !drained {
            tracing::warn!(
                timeout = ?self.shutdown_timeout,
                "requests still in progress at the shutdown deadline were cut off"
            );
        }
        // No new backup starts once serving has stopped (one in progress leaves only a hidden
        // partial file, removed at the next start).
        drop(backups);
        // The router, and with it the queue's last sender, is gone: the exporter sends what
        // is left and ends (or is given up on, if the collector does not answer).
        if let Some(exporter) = self.exporter {
            let _ = tokio::time::timeout(EXPORT_AT_SHUTDOWN, exporter).await;
        }
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// A database URL fit for a log line: without its password.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Completes on SIGTERM (what `docker stop` sends) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
