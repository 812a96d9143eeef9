//! The PostgreSQL engine: for any number of backend processes sharing one database.
//!
//! Nothing here answers from process memory: every read asks the database, so every answer
//! reflects every write acknowledged before the request arrived, whichever replica served
//! either. Listings are served by indexes (trigram indexes for `q`, one per sort order), and
//! conditions are decided by the database: a change locks the book's row (`FOR UPDATE`),
//! checks its version, and updates `WHERE id = $1 AND version = $2`, so two replicas never
//! both accept a change to the same version.
//!
//! Writes follow the outcome rules of the SQLite engine: a request that gave up before its
//! transaction began writes nothing; a transaction that fails before `COMMIT` is rolled
//! back (503, safe to retry); a connection lost during `COMMIT` leaves the outcome unknown,
//! and is answered so.

pub mod credentials;
mod sql;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, Transaction};

use super::stored::{BookRef, Page, StoredBook};
use super::{Created, PoolUse, not_found, now};
use crate::deadline::Deadline;
use crate::domain::{After, Edit, IdempotencyKey, ListQuery, NewBook, Precondition};
use crate::error::{Error, Result};

/// How long a request waits for a pooled connection (also: to connect) before a 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest any statement may run (a lock held elsewhere, a slow disk) before a 503.
const STATEMENT_TIMEOUT: &str = "5s";
/// How long a client's `Idempotency-Key` is remembered.
const KEY_LIFETIME_SECS: i64 = 24 * 60 * 60;
/// How often this replica deletes forgotten keys (any replica may; deleting twice is harmless).
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How long start-up waits for the database to answer before giving up.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    max_connections: u32,
}

impl PostgresStore {
    /// Connects (waiting up to 30 s for the database), applies the migrations (once, however
    /// many replicas start together: sqlx holds an advisory lock), and returns the store and
    /// whether this process is the first to start on the database.
    pub async fn open(url: &str, max_connections: u32) -> Result<(Self, bool), sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("bookstore")
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            // No ping before every query (a round trip each): a connection that died with
            // the server fails its next query, which answers 503 (safe to retry), and is
            // dropped from the pool.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        wait_for_database(&pool).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        // Fresh: the first process to start on it, and nothing in it (a database filled by
        // copy-database or a restore is marked created, or at least holds books).
        let first = sql::claim_creation(&pool).await? && sql::count_all(&pool).await? == 0;
        let purger = pool.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PURGE_EVERY).await;
                if purger.is_closed() {
                    return;
                }
                if let Err(error) = sql::purge_keys(&purger, KEY_LIFETIME_SECS).await {
                    tracing::warn!(%error, "purging old idempotency keys failed");
                }
            }
        });
        Ok((
            Self {
                pool,
                max_connections,
            },
            first,
        ))
    }

    pub async fn get_book(&self, id: i64) -> Result<Option<BookRef>> {
        Ok(sql::select(&self.pool, id).await?.as_ref().map(StoredBook::of))
    }

    pub async fn list_books(&self, query: &ListQuery) -> Result<Page> {
        let books = sql::select_page(&self.pool, query).await?;
        // A first page that is not full holds every match: no need to count them.
        let complete = query.offset == 0 && query.after.is_none() && (books.len() as i64) < query.limit;
        let total = if complete {
            books.len() as i64
        } else {
            sql::count(&self.pool, query).await?
        };
        let last = books.last().map(|book| After::of(book, query.sort));
        Ok(Page::of_books(&books, total).ending_at(last))
    }

    /// The plan PostgreSQL chooses for a listing's page (`EXPLAIN`, a line per node): what
    /// the test that holds every filtered, sorted listing to an index reads.
    pub async fn listing_plan(&self, query: &ListQuery) -> Result<Vec<String>> {
        Ok(sql::page_plan(&self.pool, query).await?)
    }

    /// The connection pool, for tests that set up data in bulk.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn create_book(
        &self,
        book: NewBook,
        key: Option<IdempotencyKey>,
        deadline: &Deadline,
    ) -> Result<Created> {
        let mut tx = self.begin(deadline).await?;
        if let Some(key) = &key {
            if !sql::try_lock_key(&mut tx, key).await? {
                return Err(Error::key_in_progress());
            }
            if let Some(earlier) = sql::select_key(&mut tx, key, KEY_LIFETIME_SECS).await? {
                return if earlier.fingerprint == book.fingerprint() {
                    Ok(Created::replayed(earlier.response()))
                } else {
                    Err(Error::key_reused())
                };
            }
        }
        let now = now();
        let created = StoredBook::of(&sql::insert(&mut tx, &book, &now).await?);
        if let Some(key) = &key {
            sql::insert_key(&mut tx, key, &book.fingerprint(), &created).await?;
        }
        commit(tx).await?;
        Ok(Created::new(created))
    }

    pub async fn update_book(
        &self,
        id: i64,
        precondition: Precondition,
        edit: Edit,
        deadline: &Deadline,
    ) -> Result<BookRef> {
        let mut tx = self.begin(deadline).await?;
        let current = sql::select_for_change(&mut tx, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if !precondition.admits(current.id, current.version) {
            return Err(Error::PreconditionFailed);
        }
        let next = edit.apply_to(&current).map_err(Error::invalid_fields)?;
        if next.matches(&current) {
            // Nothing changes, so nothing is written: the version stays.
            return Ok(StoredBook::of(&current));
        }
        let updated = sql::update(&mut tx, id, current.version, &next, &now())
            .await?
            .ok_or(Error::PreconditionFailed)?;
        commit(tx).await?;
        Ok(StoredBook::of(&updated))
    }

    pub async fn delete_book(&self, id: i64, precondition: Precondition, deadline: &Deadline) -> Result<()> {
        let mut tx = self.begin(deadline).await?;
        let current = sql::select_for_change(&mut tx, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if !precondition.admits(current.id, current.version) {
            return Err(Error::PreconditionFailed);
        }
        if !sql::delete(&mut tx, id, current.version).await? {
            return Err(Error::PreconditionFailed);
        }
        commit(tx).await
    }

    /// 404 or 412 if a change to book `id` under `precondition` would be refused for that
    /// reason alone.
    pub async fn check(&self, id: i64, precondition: &Precondition) -> Result<()> {
        let book = self.get_book(id).await?.ok_or_else(|| not_found(id))?;
        if precondition.admits(book.id, book.version) {
            Ok(())
        } else {
            Err(Error::PreconditionFailed)
        }
    }

    /// A transaction for a write, if the request has not given up (once begun, the request
    /// waits for the outcome).
    async fn begin(&self, deadline: &Deadline) -> Result<Transaction<'static, Postgres>> {
        if !deadline.begin_commit() {
            return Err(Error::Timeout);
        }
        Ok(self.pool.begin().await?)
    }

    /// `None` when the database answers and accepts writes; otherwise what is not ready.
    pub async fn not_ready(&self) -> Option<String> {
        match sql::writable(&self.pool).await {
            Ok(true) => None,
            Ok(false) => Some("the database is a read-only standby; writes cannot commit".to_owned()),
            Err(error) => Some(format!("the database does not answer: {error}")),
        }
    }

    /// Books stored (asked of the database, for the gauge).
    pub async fn book_count(&self) -> Option<i64> {
        sql::count_all(&self.pool).await.ok()
    }

    pub fn credentials(&self) -> credentials::PgCredentials {
        credentials::PgCredentials::new(self.pool.clone())
    }

    pub fn pool_use(&self) -> PoolUse {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        let open = self.pool.size();
        PoolUse {
            idle: idle + (self.max_connections - open.min(self.max_connections)),
            in_use: open.saturating_sub(idle),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Commits, telling apart a transaction the database refused (rolled back: nothing
/// written) from a commit interrupted by a lost connection or a shutting-down server, which
/// may have committed before the interruption was noticed (the outcome is unknown).
async fn commit(tx: Transaction<'static, Postgres>) -> Result<()> {
    tx.commit().await.map_err(outcome)
}

/// The error of a `COMMIT`: one the database reports for the commit itself rolled the
/// transaction back; anything else (a lost connection, a server shutting down mid-commit)
/// leaves the outcome unknown.
fn outcome(error: sqlx::Error) -> Error {
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
