//! Where the SQL lives: the SQLite database behind the API.
//!
//! SQLite allows many readers but one writer at a time, so the store keeps two pools: a
//! read-only pool sized for the machine, so that reads run in parallel, and a pool of one
//! connection for writes, so that concurrent writers queue in the pool (in arrival order)
//! instead of failing with `SQLITE_BUSY`. WAL mode lets readers and the writer proceed
//! together; `synchronous = NORMAL` keeps every committed write across a process crash (only
//! an OS crash or power loss can lose the last transactions), and the busy timeout covers
//! other processes (a `sqlite3` shell, a backup) holding a lock for a moment.

mod books;
pub use books::not_found;
mod seed;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, SqlitePool};

/// How long a statement waits for another process's lock before giving up with a 503.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a pooled connection before giving up with a 503. Writers
/// queue here: one write takes well under a millisecond, so thousands can wait their turn.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections and counts over the two pools, for the `bookstore_db_pool_connections` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub idle: u32,
    pub in_use: u32,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    read: SqlitePool,
    write: SqlitePool,
    /// The number of books, kept in step by every insert and delete, so neither the gauge
    /// nor the total of an unfiltered listing has to count rows.
    books: AtomicI64,
}

/// What opening the database found.
pub struct Opened {
    pub store: Store,
    /// The database had never been migrated: it is brand new.
    pub fresh: bool,
}

impl Store {
    /// Opens (creating if missing) the database at `url`, applies the embedded migrations
    /// and counts the books.
    pub async fn open(url: &str) -> Result<Opened, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("temp_store", "memory");
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            create_parent_dir(options.get_filename())?;
        }

        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;

        let fresh = write
            .fetch_optional("SELECT 1 FROM sqlite_master WHERE name = '_sqlx_migrations'")
            .await?
            .is_none();
        sqlx::migrate!("./migrations").run(&write).await?;

        // An in-memory database exists once per connection: reads must share the writer.
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(read_pool_size())
                .min_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .idle_timeout(Duration::from_secs(600))
                .max_lifetime(None)
                .connect_with(options.read_only(true))
                .await?
        };

        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM books")
            .fetch_one(&read)
            .await?;
        let store = Store {
            inner: Arc::new(Inner {
                read,
                write,
                books: AtomicI64::new(count),
            }),
        };
        Ok(Opened { store, fresh })
    }

    /// Whether the database answers a query (for `/readyz`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.inner.read.execute("SELECT 1").await.map(drop)
    }

    pub fn book_count(&self) -> i64 {
        self.inner.books.load(Ordering::Relaxed)
    }

    pub fn pool_use(&self) -> PoolUse {
        [&self.inner.read, &self.inner.write]
            .into_iter()
            .fold(PoolUse { idle: 0, in_use: 0 }, |acc, pool| {
                let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
                PoolUse {
                    idle: acc.idle + idle,
                    in_use: acc.in_use + pool.size().saturating_sub(idle),
                }
            })
    }

    /// Closes every connection after the queries in progress finish. The last connection
    /// to close checkpoints the WAL into the database file.
    pub async fn close(&self) {
        self.inner.read.close().await;
        self.inner.write.close().await;
    }

    fn read(&self) -> &SqlitePool {
        &self.inner.read
    }

    fn write(&self) -> &SqlitePool {
        &self.inner.write
    }

    fn count_changed(&self, by: i64) {
        self.inner.books.fetch_add(by, Ordering::Relaxed);
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
