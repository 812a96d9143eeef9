//! Command line and environment: every setting is a flag of `bookstore serve` with an
//! environment variable as fallback (names from the contract), and a default that runs on a
//! laptop with no set-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::secret::OperatorToken;
use crate::auth::{AuthConfig, TrustedProxies};
use crate::server::ConnectionLimits;
use crate::store::{Durability, StoreConfig};

#[derive(Debug, Parser)]
#[command(
    name = "bookstore",
    version,
    about = "The bookstore REST API, its UI and its metrics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings for `serve`, which is also what runs when no sub-command is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up: boxing would buy nothing
pub enum Command {
    /// Serve the API, the UI, the docs and the metrics (the default).
    Serve(ServeArgs),
    /// Exit 0 if the server on --addr answers /readyz with 200 (it is ready: its database
    /// answers and a write could commit), else 1. For container health checks: the runtime
    /// image has no shell and no curl.
    Healthcheck(HealthcheckArgs),
    /// Run SQLite's integrity check on the database and print the result; exit 0 only if it
    /// is `ok`. Safe while the server runs (it only reads).
    CheckDatabase(CheckDatabaseArgs),
    /// Copy every book (ids, versions and timestamps kept) from one database to another,
    /// SQLite or PostgreSQL either way: how to move a deployment between engines. The source
    /// may be in use; no server should use the target meanwhile.
    CopyDatabase(CopyDatabaseArgs),
    /// Make the secrets a container deployment needs, as files in --dir, unless they exist:
    /// the operator token (--admin-token), the PostgreSQL password and the backend's database
    /// URL (--database-url), the monitoring secrets (--monitoring-dir). Prints what it made,
    /// never the secrets themselves.
    InitSecrets(InitSecretsArgs),
    /// Read a password on standard input and print a Prometheus/Alertmanager web config
    /// (`--web.config.file`) that lets the user `bookstore` in with it (a bcrypt hash): for
    /// deployments that keep their secrets elsewhere (deploy/swarm/secrets.sh).
    WebConfig,
    /// Manage API tokens (`create`, `list`, `revoke`) in the database, while a server runs on
    /// it or not.
    Token(TokenArgs),
    /// Write a consistent copy of the SQLite database to DEST while the server keeps serving:
    /// checked with SQLite's integrity check, and named DEST only once complete. PostgreSQL:
    /// use pg_dump (exit 2).
    Backup(BackupArgs),
    /// Receive Alertmanager's notifications (webhook) and log each as a JSON line: the
    /// stack's default receiver, until a real integration replaces it.
    AlertLog(AlertLogArgs),
    /// Replace the SQLite database with a checked copy of SRC (the replaced file is kept as
    /// DB.before-restore-TIME). Refused while a server has the database open. PostgreSQL: use
    /// pg_restore (exit 2).
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct AlertLogArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9095")]
    pub addr: SocketAddr,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (a new file).
    pub dest: PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore.
    pub src: PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token and print it: the token is the only line on stdout, and is shown
    /// only this once (only its hash is stored).
    Create(TokenCreateArgs),
    /// List the tokens: name, scope, created, last used, expiry and state; never the tokens.
    List(TokenListArgs),
    /// Revoke the active token NAME: it fails from the next request on (a running server
    /// included), and the browser sessions made with it end.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// A name for the token, unique among the active ones (1 to 64 characters): who or what
    /// uses it.
    #[arg(long)]
    pub name: String,
    /// The token may read but not change anything (for BOOKSTORE_PUBLIC_READS=false).
    #[arg(long)]
    pub read_only: bool,
    /// The token stops working after this long (for example `90d`); default: never.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires_in: Option<Duration>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The name of the token to revoke.
    pub name: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct InitSecretsArgs {
    /// The folder to keep them in.
    #[arg(long)]
    pub dir: PathBuf,
    /// The backend's database URL, with `{password}` where the PostgreSQL password goes.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Keep the PostgreSQL password in this folder (one only the database container mounts)
    /// rather than in --dir; one an earlier release kept in --dir is moved here.
    #[arg(long)]
    pub postgres_dir: Option<PathBuf>,
    /// The PostgreSQL password to use instead of a random one (first start only).
    #[arg(long, env = "POSTGRES_PASSWORD", hide_env_values = true)]
    pub postgres_password: Option<String>,
    /// Also make the operator token file (`admin-token`): BOOKSTORE_ADMIN_TOKEN when set
    /// (which then replaces the file's token), else a random token on the first start.
    #[arg(long)]
    pub admin_token: bool,
    /// The operator token to write (BOOKSTORE_ADMIN_TOKEN, from `.env` in compose).
    #[arg(long, env = "BOOKSTORE_ADMIN_TOKEN", hide = true, hide_env_values = true)]
    pub chosen_admin_token: Option<String>,
    /// Also make the monitoring secrets in this folder (one only the monitoring containers
    /// mount): the password of Prometheus and Alertmanager (user `bookstore`), their web
    /// config with its bcrypt hash, and Grafana's admin password.
    #[arg(long)]
    pub monitoring_dir: Option<PathBuf>,
    /// Grafana's admin password to use instead of a random one (first start only).
    #[arg(long, env = "GRAFANA_ADMIN_PASSWORD", hide = true, hide_env_values = true)]
    pub grafana_password: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CopyDatabaseArgs {
    /// The database to copy from (`sqlite://…` or `postgres://…`).
    #[arg(long)]
    pub from: String,
    /// The database to copy to (created or migrated as needed).
    #[arg(long)]
    pub to: String,
    /// Replace the books the target already holds (without it, a non-empty target is refused).
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckDatabaseArgs {
    /// The database to check (SQLite only; it is not created if missing).
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Which database: `DATABASE_URL`, or a file holding it (`DATABASE_URL_FILE`, for Docker
/// secrets: a PostgreSQL URL carries a password).
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://PATH` (the file and its folder are created if missing) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`. Default: sqlite://data/bookstore.db.
    /// (`--help` never prints its value: it may hold a password.)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// A file whose content is the database URL; it wins over DATABASE_URL (which the
    /// container image sets to its SQLite default).
    #[arg(long, env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
}

/// The operator token of [`ServeArgs::for_tests`].
pub const TEST_OPERATOR_TOKEN: &str = "test-operator-token-for-the-tests";

/// The database when nothing says otherwise.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/bookstore.db";

impl DatabaseArgs {
    /// The URL: from the file if one is given, else the flag or variable, else the default.
    pub fn url(&self) -> anyhow::Result<String> {
        match (&self.database_url_file, &self.database_url) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("cannot read DATABASE_URL_FILE {}: {e}", file.display()))?;
                let url = text.trim();
                anyhow::ensure!(!url.is_empty(), "DATABASE_URL_FILE {} is empty", file.display());
                Ok(url.to_owned())
            }
            (None, Some(url)) => Ok(url.clone()),
            (None, None) => Ok(DEFAULT_DATABASE_URL.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BOOKSTORE_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// PostgreSQL only: the most connections this process opens to the database (default:
    /// four per core, from 4 to 32).
    #[arg(long, env = "BOOKSTORE_DB_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub db_max_connections: Option<u32>,

    /// Folder of UI files served at `/`; default `frontend` if it exists; empty turns it off.
    #[arg(long, env = "BOOKSTORE_STATIC_DIR")]
    pub static_dir: Option<String>,

    /// Seed a sample catalogue into a brand-new database.
    #[arg(long, env = "BOOKSTORE_DEMO_DATA", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub demo_data: bool,

    /// Log format: `pretty` (human-readable lines) or `json` (one object per line).
    #[arg(long, env = "BOOKSTORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Comma-separated origins allowed to call the API from a browser (CORS); empty allows
    /// only same-origin pages, such as the UI this server or nginx serves.
    #[arg(
        long,
        env = "BOOKSTORE_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,

    /// Time limit per request (for example `10s` or `500ms`); past it the answer is a 503.
    #[arg(long, env = "BOOKSTORE_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// On SIGTERM or SIGINT, how long requests in progress may take to finish.
    #[arg(long, env = "BOOKSTORE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// On SIGTERM or SIGINT, how long to go on serving first, with /readyz answering 503, so
    /// that the proxies in front stop sending new requests before the listener closes.
    #[arg(long, env = "BOOKSTORE_SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// How long a client may take to send a request's head (from connecting, or from its
    /// first byte after an idle spell) before the connection is closed.
    #[arg(long, env = "BOOKSTORE_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// How long a keep-alive connection may sit idle between requests before it is closed.
    /// Keep it longer than the keep-alive time of any proxy in front (nginx's is 30 s).
    #[arg(long, env = "BOOKSTORE_IDLE_TIMEOUT", default_value = "75s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Most connections open at once; at the cap, new clients wait to be accepted.
    #[arg(long, env = "BOOKSTORE_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// How many replicas of this backend the deployment runs, exported as
    /// `bookstore_replicas_expected` so that an alert can tell when fewer are up. Unset: not
    /// exported.
    #[arg(long, env = "BOOKSTORE_REPLICAS_EXPECTED", value_parser = clap::value_parser!(u32).range(1..))]
    pub replicas_expected: Option<u32>,

    /// SQLite: take a backup into this folder every BOOKSTORE_BACKUP_INTERVAL (as `bookstore
    /// backup` does, while serving) and keep the newest BOOKSTORE_BACKUP_KEEP. Unset: none.
    #[arg(long, env = "BOOKSTORE_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// How often the scheduled backup runs.
    #[arg(long, env = "BOOKSTORE_BACKUP_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub backup_interval: Duration,

    /// How many scheduled backups to keep (the oldest are deleted).
    #[arg(long, env = "BOOKSTORE_BACKUP_KEEP", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..))]
    pub backup_keep: u32,

    /// The operator token, accepted for every change (16 to 512 visible characters; prefer
    /// BOOKSTORE_ADMIN_TOKEN_FILE, which keeps it out of the environment).
    #[arg(long, env = "BOOKSTORE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// A file holding the operator token (Docker secrets); it wins over BOOKSTORE_ADMIN_TOKEN.
    #[arg(long, env = "BOOKSTORE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Whether anyone may read the catalogue; `false`: reading needs a token (or a session)
    /// too. Changes always do.
    #[arg(long, env = "BOOKSTORE_PUBLIC_READS", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub public_reads: bool,

    /// Comma-separated addresses, networks (such as 10.0.0.0/8) or host names (looked up
    /// every 10 s) of the proxies in front: only their X-Forwarded-For (who the client is),
    /// X-Forwarded-Proto and X-Forwarded-Host are believed. Empty: the client is whoever connects.
    #[arg(
        long,
        env = "BOOKSTORE_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,

    /// How long a browser session lasts after signing in (never longer than its token).
    #[arg(long, env = "BOOKSTORE_SESSION_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,

    /// Unknown credentials one client may present per minute; past that it is refused (429)
    /// until it waits.
    #[arg(long, env = "BOOKSTORE_AUTH_FAILURES_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failures_per_minute: u32,

    /// SQLite only: `full` makes every acknowledged write survive power loss (the WAL is
    /// flushed to disk at each commit); `normal` only a crash of the process, for more writes
    /// per second on slow disks.
    #[arg(long, env = "BOOKSTORE_SQLITE_SYNCHRONOUS", value_enum, default_value_t = Durability::Full)]
    pub sqlite_synchronous: Durability,
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// Address of the server to check (an unspecified address such as 0.0.0.0 means this host).
    #[arg(long, env = "BOOKSTORE_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,

    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl ServeArgs {
    /// The UI folder to serve, if any: the flag or variable when given (empty means none),
    /// else `frontend` when it exists in the working directory.
    pub fn static_dir(&self) -> Option<PathBuf> {
        match self.static_dir.as_deref() {
            Some("") => None,
            Some(dir) => Some(PathBuf::from(dir)),
            None => Some(PathBuf::from("frontend")).filter(|dir| dir.is_dir()),
        }
    }

    pub fn store(&self) -> anyhow::Result<StoreConfig> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sized = u32::try_from(cores * 4).unwrap_or(32).clamp(4, 32);
        Ok(StoreConfig {
            database_url: self.database.url()?,
            durability: self.sqlite_synchronous,
            max_connections: self.db_max_connections.unwrap_or(sized),
        })
    }

    /// The credential settings: the operator token (from its file, else the variable; empty
    /// means none) checked for strength, and the trusted proxies parsed.
    pub fn auth(&self) -> anyhow::Result<AuthConfig> {
        let secret = match (&self.admin_token_file, &self.admin_token) {
            (Some(file), _) => Some(std::fs::read_to_string(file).map_err(|e| {
                anyhow::anyhow!("cannot read BOOKSTORE_ADMIN_TOKEN_FILE {}: {e}", file.display())
            })?),
            (None, token) => token.clone(),
        };
        let operator = secret
            .filter(|secret| !secret.trim().is_empty())
            .map(|secret| OperatorToken::new(&secret))
            .transpose()
            .map_err(|e| anyhow::anyhow!("BOOKSTORE_ADMIN_TOKEN: {e}"))?;
        let proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("BOOKSTORE_TRUSTED_PROXIES: {e}"))?;
        Ok(AuthConfig {
            operator,
            public_reads: self.public_reads,
            proxies,
            session_ttl: self.session_ttl,
            failures_per_minute: self.auth_failures_per_minute,
            cors_origins: self.cors_origins(),
        })
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        }
    }

    /// The allowed CORS origins, without empty entries.
    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_origins
            .iter()
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect()
    }

    /// Settings for tests and embedding: an ephemeral port on loopback, the given database,
    /// no UI, no sample data, and [`TEST_OPERATOR_TOKEN`] as the operator token.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: DatabaseArgs {
                database_url: Some(database_url.into()),
                database_url_file: None,
            },
            db_max_connections: Some(4),
            static_dir: Some(String::new()),
            demo_data: false,
            log_format: LogFormat::Pretty,
            cors_origins: Vec::new(),
            request_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 1024,
            replicas_expected: None,
            backup_dir: None,
            backup_interval: Duration::from_secs(3600),
            backup_keep: 24,
            admin_token: Some(TEST_OPERATOR_TOKEN.to_owned()),
            admin_token_file: None,
            public_reads: true,
            trusted_proxies: Vec::new(),
            session_ttl: Duration::from_secs(12 * 60 * 60),
            auth_failures_per_minute: 10,
            // Tests make thousands of throwaway databases; the flush buys them nothing.
            sqlite_synchronous: Durability::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("bookstore").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn the_defaults_run_on_a_laptop() {
        let cli = parse(&[]);
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.addr.to_string(), "127.0.0.1:8000");
        assert_eq!(cli.serve.database.url().unwrap(), "sqlite://data/bookstore.db");
        assert!(cli.serve.demo_data);
        assert_eq!(cli.serve.request_timeout, Duration::from_secs(10));
        assert!(cli.serve.cors_origins().is_empty());
        assert_eq!(
            cli.serve.sqlite_synchronous,
            Durability::Full,
            "acknowledged writes survive power loss"
        );
        assert_eq!(cli.serve.max_connections, 1024);
    }

    #[test]
    fn flags_are_read_for_serve_and_healthcheck() {
        let cli = parse(&["serve", "--demo-data", "false", "--request-timeout", "250ms"]);
        let Some(Command::Serve(serve)) = cli.command else {
            panic!("not serve")
        };
        assert!(!serve.demo_data);
        assert_eq!(serve.request_timeout, Duration::from_millis(250));

        let cli = parse(&["healthcheck", "--addr", "0.0.0.0:9000"]);
        let Some(Command::Healthcheck(check)) = cli.command else {
            panic!("not healthcheck")
        };
        assert_eq!(check.addr.port(), 9000);
    }

    #[test]
    fn the_database_url_can_come_from_a_file_which_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://u:secret@db:5432/books\n").unwrap();
        let cli = parse(&["--database-url-file", file.to_str().unwrap()]);
        assert_eq!(
            cli.serve.database.url().unwrap(),
            "postgres://u:secret@db:5432/books"
        );
        // The container image sets DATABASE_URL to its SQLite default; a secret file given
        // on top of it is what the operator meant.
        let both = parse(&[
            "--database-url",
            "sqlite://x",
            "--database-url-file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(
            both.serve.database.url().unwrap(),
            "postgres://u:secret@db:5432/books"
        );
        let missing = parse(&["--database-url-file", "/nonexistent/url"]);
        assert!(missing.serve.database.url().is_err());
    }

    #[test]
    fn the_operator_token_comes_from_its_file_and_must_be_strong() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-token");
        std::fs::write(&file, "a-long-enough-operator-token\n").unwrap();
        let cli = parse(&[
            "--admin-token",
            "ignored-because-the-file-wins",
            "--admin-token-file",
            file.to_str().unwrap(),
        ]);
        let auth = cli.serve.auth().unwrap();
        assert!(auth.operator.unwrap().matches("a-long-enough-operator-token"));
        assert!(parse(&[]).serve.auth().unwrap().operator.is_none());
        assert!(
            parse(&["--admin-token", ""])
                .serve
                .auth()
                .unwrap()
                .operator
                .is_none()
        );
        assert!(parse(&["--admin-token", "short"]).serve.auth().is_err());
        assert!(
            parse(&["--trusted-proxies", "10.0.0.0/8,10.0.0.0/33"])
                .serve
                .auth()
                .is_err()
        );
        let defaults = parse(&[]).serve;
        assert!(defaults.public_reads);
        assert_eq!(defaults.session_ttl, Duration::from_secs(12 * 3600));
        assert_eq!(defaults.auth_failures_per_minute, 10);
    }

    #[test]
    fn cors_origins_are_split_on_commas() {
        let cli = parse(&["--cors-origins", "http://a.example, http://b.example,"]);
        assert_eq!(cli.serve.cors_origins(), ["http://a.example", "http://b.example"]);
    }

    #[test]
    fn an_empty_static_dir_turns_the_ui_off() {
        let cli = parse(&["--static-dir", ""]);
        assert_eq!(cli.serve.static_dir(), None);
        let cli = parse(&["--static-dir", "/srv/ui"]);
        assert_eq!(cli.serve.static_dir(), Some(PathBuf::from("/srv/ui")));
    }
}
