//! The PostgreSQL engine: for any number of backend processes sharing one database.
//!
//! Nothing here answers from process memory: every read asks the database, so every answer
//! reflects every write acknowledged before the request arrived, whichever replica served
//! either. Conditions are decided by the database: a change locks the book's row (`FOR
//! UPDATE`), checks its version, and updates `WHERE id = $1 AND version = $2`, so two
//! replicas never both accept a change to the same version.
//!
//! Writes follow the outcome rules of the SQLite engine: a request that gave up before its
//! transaction began writes nothing; a transaction that fails before `COMMIT` is rolled
//! back (503, safe to retry); a connection lost during `COMMIT` leaves the outcome unknown,
//! and is answered so.

mod dialect;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, Transaction};

use super::catalogue::{Catalogue, Created, NotReady, PoolUse};
use super::credentials::{CredentialStore, Tables};
use super::sql::Sql;
use super::statement::Engine;
use super::stored::{BookRef, Page, StoredBook};
use crate::deadline::Deadline;
use crate::domain::{Edit, IdempotencyKey, ListQuery, NewBook, Precondition, Timestamp};
use crate::error::{Error, Result};

/// How long a request waits for a pooled connection (also: to connect) before a 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest any statement may run (a lock held elsewhere, a slow disk) before a 503.
const STATEMENT_TIMEOUT: &str = "5s";
/// How long start-up waits for the database to answer before giving up.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

pub struct PostgresStore {
    pool: PgPool,
    max_connections: u32,
    credentials: Arc<Tables<Postgres>>,
}

impl PostgresStore {
    /// Connects (waiting up to 30 s for the database), applies the migrations (once, however
    /// many replicas start together: sqlx holds an advisory lock), and returns the store and
    /// whether this process is the first to start on the database.
    pub async fn open(url: &str, max_connections: u32) -> Result<(Self, bool), sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            // No ping before every query (a round trip each): a connection that died with
            // the server fails its next query, which answers 503 (safe to retry), and is
            // dropped from the pool.
            .test_before_acquire(false)
            .connect_lazy_with(connect_options(url, "bookstore")?);
        wait_for_database(&pool).await?;
        migrate(&pool).await?;
        // Fresh: the first process to start on it, and nothing in it (a database filled by
        // copy-database or a restore is marked created, or at least holds books).
        let first = claim_creation(&pool).await? && Postgres::count_books(&pool).await? == 0;
        Postgres::purge_keys_while_open(pool.clone());
        let credentials = Arc::new(Tables {
            engine: Engine::Postgres,
            read: pool.clone(),
            write: pool.clone(),
        });
        let store = Self {
            pool,
            max_connections,
            credentials,
        };
        Ok((store, first))
    }

    /// A transaction for a write, if the request has not given up (once begun, the request
    /// waits for the outcome).
    async fn begin(&self, deadline: &Deadline) -> Result<Transaction<'static, Postgres>> {
        if !deadline.begin_commit() {
            return Err(Error::Timeout);
        }
        Ok(self.pool.begin().await?)
    }
}

#[async_trait::async_trait]
impl Catalogue for PostgresStore {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    async fn get_book(&self, id: i64) -> Result<Option<BookRef>> {
        Ok(Postgres::select_book(&self.pool, id)
            .await?
            .as_ref()
            .map(StoredBook::of))
    }

    async fn list_books(&self, query: &ListQuery) -> Result<Page> {
        Ok(Postgres::list_books(&self.pool, query, None).await?)
    }

    async fn create_book(
        &self,
        book: NewBook,
        key: Option<IdempotencyKey>,
        deadline: &Deadline,
    ) -> Result<Created> {
        let mut tx = self.begin(deadline).await?;
        let now = Timestamp::now();
        let created = async {
            Ok(match &key {
                // The key's lock, held to the end of the transaction on every replica, lets one
                // request with it in at a time.
                Some(key) if !try_lock_key(&mut tx, key).await? => return Err(Error::key_in_progress()),
                Some(key) => Postgres::create_with_key(&mut tx, &book, key, &now).await??,
                None => {
                    let created = Postgres::insert_books(&mut tx, std::slice::from_ref(&book), &now).await?;
                    Created::new(StoredBook::of(created.first().ok_or(sqlx::Error::RowNotFound)?))
                }
            })
        }
        .await;
        // Ended before the answer goes out, a replay and a refusal too: the key's lock must be
        // free when the client sends its next request with it.
        end(tx, created).await
    }

    async fn update_book(
        &self,
        id: i64,
        precondition: Precondition,
        edit: Edit,
        deadline: &Deadline,
    ) -> Result<BookRef> {
        let mut tx = self.begin(deadline).await?;
        let changed =
            async { Postgres::change_book(&mut tx, id, &precondition, edit, &Timestamp::now()).await? }.await;
        let (book, _written) = end(tx, changed).await?;
        Ok(StoredBook::of(&book))
    }

    async fn delete_book(&self, id: i64, precondition: Precondition, deadline: &Deadline) -> Result<()> {
        let mut tx = self.begin(deadline).await?;
        let removed = async { Postgres::remove_book(&mut tx, id, &precondition).await? }.await;
        end(tx, removed).await
    }

    /// `None` when the database answers and accepts writes.
    async fn not_ready(&self) -> Option<NotReady> {
        let writable = sqlx::query_scalar::<_, bool>("SELECT NOT pg_is_in_recovery()")
            .fetch_one(&self.pool)
            .await;
        match writable {
            Ok(true) => None,
            Ok(false) => Some(NotReady::writes("the database is a read-only standby")),
            Err(error) => Some(NotReady::database(error)),
        }
    }

    async fn book_count(&self) -> Option<i64> {
        Postgres::count_books(&self.pool).await.ok()
    }

    fn credentials(&self) -> CredentialStore {
        self.credentials.clone()
    }

    fn pool_use(&self) -> PoolUse {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        let open = self.pool.size();
        PoolUse {
            idle: idle + (self.max_connections - open.min(self.max_connections)),
            in_use: open.saturating_sub(idle),
        }
    }

    async fn listing_plans(&self, query: &ListQuery) -> Result<Vec<Vec<String>>> {
        let mut plans = Vec::new();
        Postgres::list_books(&self.pool, query, Some(&mut plans)).await?;
        Ok(plans)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The credentials of the PostgreSQL database at `url` on their own (the `token` commands):
/// one connection, and the migrations.
pub async fn credentials(url: &str) -> Result<Tables<Postgres>, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(connect_options(url, "bookstore token")?)
        .await?;
    migrate(&pool).await?;
    Ok(Tables {
        engine: Engine::Postgres,
        read: pool.clone(),
        write: pool,
    })
}

fn connect_options(url: &str, application: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name(application)
        .options([("statement_timeout", STATEMENT_TIMEOUT)]))
}

/// Applies the migrations. A migration that builds indexes or counts on a big catalogue may
/// run longer than the statement time limit, which is for requests: lifted while migrating.
async fn migrate(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await?;
    let migrated = sqlx_macros::migrate!("./migrations/postgres")
        .run(&mut *conn)
        .await;
    sqlx::query(&format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'"))
        .execute(&mut *conn)
        .await?;
    Ok(migrated?)
}

/// Takes the transaction-scoped advisory lock of an `Idempotency-Key`, if no other
/// transaction (on any replica) holds it: `false` means its first request is still running.
async fn try_lock_key(conn: &mut sqlx::PgConnection, key: &IdempotencyKey) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1 || E'\\n' || $2, 0))")
        .bind(key.scope())
        .bind(key.key())
        .fetch_one(conn)
        .await
}

/// Marks the database as created, if no replica has yet: `true` for the one that did.
async fn claim_creation(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let claimed: Option<String> = sqlx::query_scalar(
        "INSERT INTO bookstore_meta (key, value) VALUES ('created', now()::text) \
         ON CONFLICT (key) DO NOTHING RETURNING key",
    )
    .fetch_optional(pool)
    .await?;
    Ok(claimed.is_some())
}

/// Ends a transaction before its answer goes out: commits it if `outcome` is a success
/// (also when it wrote nothing, as for a replay), or rolls it back. A transaction that is
/// only dropped is rolled back when its connection is next used, and until then it keeps
/// its locks: an `Idempotency-Key`'s, a book's row. (A failed rollback changes no answer: as
/// for a dropped transaction, it is tried again when the connection is next used, or the
/// connection is broken and the server rolls back and frees the locks itself.)
async fn end<T>(tx: Transaction<'static, Postgres>, outcome: Result<T>) -> Result<T> {
    match outcome {
        Ok(value) => tx.commit().await.map_err(commit_error).map(|()| value),
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(
                    error = %rollback,
                    "a rollback failed (tried again at the connection's next use)"
                );
            }
            Err(error)
        }
    }
}

/// The error of a `COMMIT`: one the database reports for the commit itself rolled the
/// transaction back (nothing written); anything else (a lost connection, a server shutting
/// down mid-commit) may have come after the commit happened: the outcome is unknown.
fn commit_error(error: sqlx::Error) -> Error {
    match error {
        sqlx::Error::Database(db) if db.code().is_some_and(|code| rolled_back(&code)) => {
            Error::from(sqlx::Error::Database(db))
        }
        other => Error::OutcomeUnknown(other.to_string()),
    }
}

/// SQLSTATE classes a commit fails with only by rolling back: transaction rollback (40),
/// integrity constraint violation (23), invalid transaction state (25), insufficient
/// resources such as a full disk (53), a cancelled statement (57014: the statement timeout),
/// and data or syntax errors (22, 42).
fn rolled_back(code: &str) -> bool {
    ["40", "23", "25", "53", "22", "42"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == "57014"
}

/// Waits for the database to answer a connection, for a while: a backend started together
/// with its database (compose, a reboot) should not give up at once.
async fn wait_for_database(pool: &PgPool) -> Result<(), sqlx::Error> {
    let started = std::time::Instant::now();
    loop {
        match pool.acquire().await {
            Ok(mut conn) => return conn.ping().await,
            Err(error) if started.elapsed() < CONNECT_PATIENCE => {
                tracing::warn!(%error, "waiting for the database to accept connections");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    }
}
