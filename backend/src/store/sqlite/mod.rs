//! The SQLite engine: the embedded default, for one backend process.
//!
//! SQLite allows many readers but one writer at a time. The engine keeps a read-only pool
//! sized for the machine, so reads run in parallel, and one write connection owned by the
//! [`writer`] task, so concurrent writers queue (and share commits) instead of failing with
//! `SQLITE_BUSY`. WAL mode lets readers and the writer proceed together; the busy timeout
//! covers other processes (a `sqlite3` shell, a backup) holding a lock for a moment.
//! `synchronous` is a setting ([`Durability`]): `FULL` (the default) makes an acknowledged
//! write survive power loss; `NORMAL` only a crash of the process.
//!
//! Listings are the shared SQL (`store/listing.rs`) over the database's indexes; the one
//! thing kept in memory is the [`cache`] of books by id, which the writer keeps exact. That
//! is why this process must be the database's only writer of books; several backends need
//! the PostgreSQL engine.

mod cache;
mod dialect;
mod writer;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::ValueEnum;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Executor, Sqlite, SqlitePool};

use cache::BookCache;
use writer::{Checkpointer, Op, Writer, Written};

use super::catalogue::{Catalogue, Created, NotReady, PoolUse};
use super::credentials::{CredentialStore, Tables};
use super::sql::Sql;
use super::statement::Engine;
use super::stored::{BookRef, Page, StoredBook};
use crate::backups::copy::ServerLock;
use crate::deadline::Deadline;
use crate::domain::{Edit, IdempotencyKey, ListQuery, NewBook, Precondition};
use crate::error::{Error, Result};

/// How long a statement waits for another process's lock before giving up with a 503.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a read waits for a pooled connection before giving up with a 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The write connection's page cache: small, since it writes what it has just read.
const WRITER_CACHE: &str = "-1024";
/// Each reader's page cache: small, because SQLite empties a reader's cache whenever another
/// connection has committed since its last read, so under writes a big cache is mostly
/// refilled and emptied again (at a million books with 100 writes a second, 8 MB made
/// searches a third slower than 256 KB, and filters no faster).
const READER_CACHE: &str = "-256";
/// The page cache while migrating: building an index or the text index of a big catalogue
/// in a 1 MB cache reads its pages over and over (a million books: 60 s instead of 10 s).
const MIGRATION_CACHE: &str = "-262144";

/// When SQLite calls a commit done (its `synchronous` setting, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    /// After the WAL is flushed to the disk at every commit: an acknowledged write survives
    /// power loss and OS crashes.
    Full,
    /// Before the flush: an acknowledged write survives a crash of the process, but power
    /// loss or an OS crash can lose the last commits.
    Normal,
}

pub struct SqliteStore {
    read: SqlitePool,
    writer: Writer,
    checkpointer: Checkpointer,
    cache: Arc<BookCache>,
    /// `Idempotency-Key`s whose first request is still running (a second one gets 409).
    /// This process is the database's only writer, so memory is the place for them.
    keys_in_flight: Arc<Mutex<HashSet<IdempotencyKey>>>,
    credentials: Arc<Tables<Sqlite>>,
    /// Held while the store lives, so that `bookstore restore` cannot replace the file under it.
    _lock: Option<ServerLock>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`, applies the embedded migrations
    /// and starts the writer. Returns the store and whether the database was brand new.
    pub async fn open(url: &str, durability: Durability) -> Result<(Self, bool), sqlx::Error> {
        let options = connect_options(url)?.synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        });
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let lock = if in_memory {
            None
        } else {
            create_parent_dir(options.get_filename())?;
            Some(ServerLock::hold(options.get_filename())?)
        };

        // The writer never checkpoints: the checkpointer does, off the write path.
        let write_options = options
            .clone()
            .pragma("cache_size", WRITER_CACHE)
            .pragma("wal_autocheckpoint", "0");
        let mut write = write_options.connect().await?;
        let fresh = write
            .fetch_optional("SELECT 1 FROM sqlite_master WHERE name = '_sqlx_migrations'")
            .await?
            .is_none();
        write
            .execute(format!("PRAGMA cache_size = {MIGRATION_CACHE}").as_str())
            .await?;
        sqlx_macros::migrate!("./migrations").run(&mut write).await?;
        // A migration that rebuilt indexes leaves them in the WAL (this connection never
        // checkpoints), where every read would look them up until the next checkpoint, and a
        // copy of the database file alone would lack them: folded in before serving.
        write.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        write
            .execute(format!("PRAGMA cache_size = {WRITER_CACHE}").as_str())
            .await?;

        let read = SqlitePoolOptions::new()
            .max_connections(read_pool_size())
            // A connection to a local file does not go stale: no round trip to check it
            // before every read.
            .test_before_acquire(false)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(600))
            .max_lifetime(None)
            // An in-memory database is shared through the cache, which a read-only
            // connection cannot open.
            .connect_with(
                options
                    .clone()
                    .read_only(!in_memory)
                    .pragma("cache_size", READER_CACHE),
            )
            .await?;

        // Credentials are changed through a connection of their own, not the book writer:
        // changes are rare (a sign-in, a token's last use at most once a minute), touch no
        // cached data, and wait for the writer's short commits like any other SQLite writer.
        let credential_writes = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(write_options.clone());
        Sqlite::purge_keys_while_open(credential_writes.clone());
        let cache = Arc::new(BookCache::new());
        let (committed, checkpoints) = tokio::sync::mpsc::channel(1);
        let store = Self {
            checkpointer: Checkpointer::spawn(options.clone().pragma("cache_size", "-256"), checkpoints),
            writer: Writer::spawn(write_options, write, cache.clone(), committed),
            credentials: Arc::new(Tables {
                engine: Engine::Sqlite,
                read: read.clone(),
                write: credential_writes,
            }),
            read,
            cache,
            keys_in_flight: Arc::default(),
            _lock: lock,
        };
        Ok((store, fresh))
    }
}

#[async_trait::async_trait]
impl Catalogue for SqliteStore {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    async fn get_book(&self, id: i64) -> Result<Option<BookRef>> {
        if let Some(book) = self.cache.book(id) {
            return Ok(Some(book));
        }
        let seen = self.cache.epoch();
        let Some(book) = Sqlite::select_book(&self.read, id).await? else {
            return Ok(None);
        };
        let book = StoredBook::of(&book);
        self.cache.fill(seen, &book);
        Ok(Some(book))
    }

    async fn list_books(&self, query: &ListQuery) -> Result<Page> {
        Ok(Sqlite::list_books(&self.read, query, None).await?)
    }

    async fn create_book(
        &self,
        book: NewBook,
        key: Option<IdempotencyKey>,
        deadline: &Deadline,
    ) -> Result<Created> {
        let _in_flight = match &key {
            Some(key) => Some(InFlight::claim(&self.keys_in_flight, key)?),
            None => None,
        };
        match self.writer.write(Op::Create { book, key }, deadline).await? {
            Written::Created(created) => Ok(created),
            other => Err(unexpected(&other)),
        }
    }

    async fn update_book(
        &self,
        id: i64,
        precondition: Precondition,
        edit: Edit,
        deadline: &Deadline,
    ) -> Result<BookRef> {
        let op = Op::Update {
            id,
            precondition,
            edit,
        };
        match self.writer.write(op, deadline).await? {
            Written::Updated(book) => Ok(book),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_book(&self, id: i64, precondition: Precondition, deadline: &Deadline) -> Result<()> {
        match self
            .writer
            .write(Op::Delete { id, precondition }, deadline)
            .await?
        {
            Written::Deleted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// `None` when the database answers and a write can commit.
    async fn not_ready(&self) -> Option<NotReady> {
        if let Err(error) = self.read.execute("SELECT count(*) FROM sqlite_master").await {
            return Some(NotReady::database(error));
        }
        self.writer.health.problem().map(NotReady::writes)
    }

    async fn book_count(&self) -> Option<i64> {
        Sqlite::count_books(&self.read).await.ok()
    }

    fn credentials(&self) -> CredentialStore {
        self.credentials.clone()
    }

    /// The read pool's connections plus the writer's one.
    fn pool_use(&self) -> PoolUse {
        let idle = u32::try_from(self.read.num_idle()).unwrap_or(u32::MAX);
        let reading = self.read.size().saturating_sub(idle);
        let writing = u32::from(self.writer.is_busy());
        PoolUse {
            idle: idle + 1 - writing,
            in_use: reading + writing,
        }
    }

    async fn listing_plans(&self, query: &ListQuery) -> Result<Vec<Vec<String>>> {
        let mut plans = Vec::new();
        Sqlite::list_books(&self.read, query, Some(&mut plans)).await?;
        Ok(plans)
    }

    /// Closes every connection, after the writes already queued; the checkpointer's last:
    /// the last connection to close checkpoints the WAL into the database file (and removes
    /// it), and read-only connections cannot.
    async fn close(&self) {
        self.credentials.write.close().await;
        self.read.close().await;
        self.writer.stop().await;
        self.checkpointer.finished().await;
    }
}

/// The credentials of the SQLite database at `url` on their own (the `token` commands): the
/// file must exist; it is migrated.
pub async fn credentials(url: &str) -> Result<Tables<Sqlite>, sqlx::Error> {
    let options = connect_options(url)?.create_if_missing(false);
    let mut conn = options.connect().await?;
    sqlx_macros::migrate!("./migrations").run(&mut conn).await?;
    conn.close().await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    Ok(Tables {
        engine: Engine::Sqlite,
        read: pool.clone(),
        write: pool,
    })
}

/// The options every connection shares.
fn connect_options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(BUSY_TIMEOUT)
        .pragma("temp_store", "memory"))
}

fn unexpected(written: &Written) -> Error {
    Error::Internal(format!("the writer answered a write with {written:?}").into())
}

/// A claimed `Idempotency-Key`, released when its request finishes (or is dropped).
struct InFlight {
    keys: Arc<Mutex<HashSet<IdempotencyKey>>>,
    key: IdempotencyKey,
}

impl InFlight {
    fn claim(keys: &Arc<Mutex<HashSet<IdempotencyKey>>>, key: &IdempotencyKey) -> Result<Self> {
        let mut claimed = keys.lock().unwrap_or_else(|e| e.into_inner());
        if !claimed.insert(key.clone()) {
            return Err(Error::key_in_progress());
        }
        Ok(Self {
            keys: keys.clone(),
            key: key.clone(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Two readers per core, at least two and at most eight: reads are short, so more
/// connections than that only add memory.
fn read_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores * 2).unwrap_or(8).clamp(2, 8)
}

fn create_parent_dir(file: &std::path::Path) -> Result<(), sqlx::Error> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(sqlx::Error::Io),
        _ => Ok(()),
    }
}
