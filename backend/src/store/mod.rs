//! Where the SQL lives: the SQLite database behind the API.
//!
//! SQLite allows many readers but one writer at a time. The store keeps a read-only pool
//! sized for the machine, so reads run in parallel, and one write connection owned by the
//! [`writer`] task, so concurrent writers queue (and share commits) instead of failing with
//! `SQLITE_BUSY`. WAL mode lets readers and the writer proceed together; with
//! `synchronous = NORMAL` a committed write survives a crash of the process (only an OS
//! crash or power loss can lose the last commits); the busy timeout covers other processes
//! (a `sqlite3` shell, a backup) holding a lock for a moment.
//!
//! Because every write goes through the writer, it also keeps the [`cache`] of books and
//! listing pages exact. The cache assumes this process is the database's only writer.

mod books;
mod cache;
mod seed;
mod stored;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Executor, SqlitePool};

pub use books::{Page, not_found};
use cache::{BookCache, Change};
pub use stored::{BookRef, Stored};
pub use writer::ChangeFn;
use writer::{Op, Writer};

use crate::domain::{ListQuery, NewBook};
use crate::error::{Error, Result};

/// How long a statement waits for another process's lock before giving up with a 503.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a read waits for a pooled connection before giving up with a 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Database connections by state, for the `bookstore_db_pool_connections` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub idle: u32,
    pub in_use: u32,
}

#[derive(Clone)]
pub struct Store {
    read: SqlitePool,
    writer: Arc<Writer>,
    shared: Arc<Shared>,
}

/// What the readers and the writer share.
pub struct Shared {
    cache: BookCache,
    /// The number of books, kept in step by the writer, so that neither the gauge nor the
    /// total of an unfiltered listing has to count rows.
    books: AtomicI64,
}

impl Shared {
    /// Applies a committed batch: the book count and the cache.
    fn apply(&self, changes: &[Change]) {
        let delta: i64 = changes
            .iter()
            .map(|c| match c {
                Change::Created(_) => 1,
                Change::Updated(_) => 0,
                Change::Deleted(_) => -1,
            })
            .sum();
        self.books.fetch_add(delta, Ordering::Relaxed);
        self.cache.apply(changes);
    }
}

/// What opening the database found.
pub struct Opened {
    pub store: Store,
    /// The database had never been migrated: it is brand new.
    pub fresh: bool,
}

impl Store {
    /// Opens (creating if missing) the database at `url`, applies the embedded migrations,
    /// counts the books and starts the writer.
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

        let mut write = options.connect().await?;
        let fresh = write
            .fetch_optional("SELECT 1 FROM sqlite_master WHERE name = '_sqlx_migrations'")
            .await?
            .is_none();
        sqlx::migrate!("./migrations").run(&mut write).await?;

        let read = SqlitePoolOptions::new()
            .max_connections(read_pool_size())
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(600))
            .max_lifetime(None)
            // An in-memory database is shared through the cache, which a read-only
            // connection cannot open.
            .connect_with(options.read_only(!in_memory))
            .await?;

        let shared = Arc::new(Shared {
            cache: BookCache::new(),
            books: AtomicI64::new(books::count(&read).await?),
        });
        let writer = Arc::new(Writer::spawn(write, shared.clone()));
        Ok(Opened {
            store: Store { read, writer, shared },
            fresh,
        })
    }

    pub async fn get_book(&self, id: i64) -> Result<Option<BookRef>> {
        if let Some(book) = self.shared.cache.book(id) {
            return Ok(Some(book));
        }
        let seen = self.shared.cache.item_epoch();
        let Some(book) = books::select(&self.read, id).await? else {
            return Ok(None);
        };
        let book = Arc::new(Stored::new(book));
        self.shared.cache.fill_book(seen, book.clone());
        Ok(Some(book))
    }

    pub async fn list_books(&self, query: &ListQuery) -> Result<Arc<Page>> {
        let seen = self.shared.cache.list_epoch();
        if let Some(page) = self.shared.cache.page(seen, query) {
            return Ok(page);
        }
        let total = query.is_unfiltered().then(|| self.book_count());
        let page = Arc::new(books::select_page(&self.read, query, total).await?);
        self.shared.cache.fill_page(seen, query.clone(), page.clone());
        Ok(page)
    }

    pub async fn create_book(&self, book: NewBook) -> Result<BookRef> {
        let written = self.writer.write(Op::Create(book)).await?;
        written.ok_or_else(|| Error::Internal("a create wrote no book".into()))
    }

    /// Replaces a book with `change(current)`, but only if its version is one of
    /// `expected` (when given). The read, the check and the write happen in one
    /// transaction, so no other write can slip in between.
    pub async fn update_book(
        &self,
        id: i64,
        expected: Option<Vec<i64>>,
        change: ChangeFn,
    ) -> Result<BookRef> {
        let written = self.writer.write(Op::Update { id, expected, change }).await?;
        written.ok_or_else(|| Error::Internal("an update wrote no book".into()))
    }

    /// Deletes a book, if its version is one of `expected` (when given).
    pub async fn delete_book(&self, id: i64, expected: Option<Vec<i64>>) -> Result<()> {
        self.writer.write(Op::Delete { id, expected }).await.map(drop)
    }

    /// Whether the database answers a query (for `/readyz`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.read
            .execute("SELECT count(*) FROM sqlite_master")
            .await
            .map(drop)
    }

    pub fn book_count(&self) -> i64 {
        self.shared.books.load(Ordering::Relaxed)
    }

    /// The read pool's connections plus the writer's one.
    pub fn pool_use(&self) -> PoolUse {
        let idle = u32::try_from(self.read.num_idle()).unwrap_or(u32::MAX);
        let reading = self.read.size().saturating_sub(idle);
        let writing = u32::from(self.writer.is_busy());
        PoolUse {
            idle: idle + 1 - writing,
            in_use: reading + writing,
        }
    }

    /// Closes every connection, the writer's last, after the writes already queued: the
    /// last connection to close checkpoints the WAL into the database file, and read-only
    /// connections cannot.
    pub async fn close(&self) {
        self.read.close().await;
        self.writer.stop().await;
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
