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
//! Because every write goes through the writer, it also keeps the [`cache`] of books and
//! listing pages and the [`search`] index exact. That is why this process must be the
//! database's only writer; several backends need the PostgreSQL engine.

pub mod backup;
mod cache;
pub mod credentials;
mod order;
mod search;
pub(crate) mod sql;
mod writer;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Executor, SqlitePool};

use cache::BookCache;
use credentials::SqliteCredentials;
pub use search::OrdersState;
use search::SearchIndex;
use writer::{Change, Op, Writer, Written};

use super::stored::{BookRef, Page, StoredBook};
use super::{Created, Durability, PoolUse, not_found};
use crate::deadline::Deadline;
use crate::domain::{Edit, IdempotencyKey, ListQuery, NewBook, Precondition};
use crate::error::{Error, Result};

/// How long a statement waits for another process's lock before giving up with a 503.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a read waits for a pooled connection before giving up with a 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    writer: Arc<Writer>,
    shared: Arc<Shared>,
    /// `Idempotency-Key`s whose first request is still running (a second one gets 409).
    /// This process is the database's only writer, so memory is the place for them.
    keys_in_flight: Arc<Mutex<HashSet<IdempotencyKey>>>,
    credentials: SqliteCredentials,
    /// Held while the store lives, so that `bookstore restore` cannot replace the file under it.
    _lock: Option<Arc<backup::ServerLock>>,
}

/// What the readers and the writer share.
pub struct Shared {
    cache: BookCache,
    search: SearchIndex,
    /// The number of books, kept in step by the writer, so that neither the gauge nor the
    /// total of an unfiltered listing has to count rows.
    books: AtomicI64,
}

impl Shared {
    /// Applies a committed batch: the book count, the search index and the cache.
    fn apply(&self, changes: &[Change]) {
        let delta: i64 = changes
            .iter()
            .map(|c| match c {
                Change::Created(_) => 1,
                Change::Updated(..) => 0,
                Change::Deleted(_) => -1,
            })
            .sum();
        self.books.fetch_add(delta, Ordering::Relaxed);
        self.search.apply(changes);
        self.cache.apply(changes);
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`, applies the embedded migrations,
    /// counts the books and starts the writer, which loads the search index. Returns the
    /// store and whether the database was brand new.
    pub async fn open(url: &str, durability: Durability) -> Result<(Self, bool), sqlx::Error> {
        let options = connect_options(url)?.synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        });
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            create_parent_dir(options.get_filename())?;
        }
        let lock = if in_memory {
            None
        } else {
            Some(Arc::new(backup::ServerLock::hold(options.get_filename())?))
        };

        let write_options = options.clone().pragma("cache_size", "-1024");
        let credential_options = write_options.clone();
        let mut write = write_options.connect().await?;
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
            // Readers keep a small page cache each (256 KB): the hot data (books, pages,
            // search keys) is cached above SQLite, once, rather than in every connection, and
            // a page SQLite does not hold is a read from the operating system's cache.
            .connect_with(options.read_only(!in_memory).pragma("cache_size", "-256"))
            .await?;

        let shared = Arc::new(Shared {
            cache: BookCache::new(),
            search: SearchIndex::loading(),
            books: AtomicI64::new(sql::count(&read).await?),
        });
        let writer = Arc::new(Writer::spawn(write_options, write, read.clone(), shared.clone()));
        let credentials = SqliteCredentials::new(read.clone(), credential_options);
        let store = Self {
            read,
            writer,
            shared,
            keys_in_flight: Arc::default(),
            credentials,
            _lock: lock,
        };
        Ok((store, fresh))
    }

    pub async fn get_book(&self, id: i64) -> Result<Option<BookRef>> {
        if let Some(book) = self.shared.cache.book(id) {
            return Ok(Some(book));
        }
        let seen = self.shared.cache.item_epoch();
        let Some(book) = sql::select(&self.read, id).await? else {
            return Ok(None);
        };
        let book = StoredBook::of(&book);
        self.shared.cache.fill_books(seen, std::slice::from_ref(&book));
        Ok(Some(book))
    }

    pub async fn list_books(&self, query: &ListQuery) -> Result<Arc<Page>> {
        let seen = self.shared.cache.list_epoch();
        if let Some(page) = self.shared.cache.page(seen, query) {
            return Ok(page);
        }
        let hits = self.shared.search.page(query).await;
        let page =
            Arc::new(Page::of_stored(&self.books_by_ids(&hits.ids).await?, hits.total).ending_at(hits.last));
        self.shared.cache.fill_page(seen, query.clone(), page.clone());
        Ok(page)
    }

    /// Books by id, in that order, from the cache where possible; the others are read and
    /// cached (pages are retired by every write, the books on them only when they change).
    async fn books_by_ids(&self, ids: &[i64]) -> Result<Vec<BookRef>> {
        let seen = self.shared.cache.item_epoch();
        let cached: Vec<Option<BookRef>> = ids.iter().map(|id| self.shared.cache.book(*id)).collect();
        let missing: Vec<i64> = ids
            .iter()
            .zip(&cached)
            .filter(|(_, c)| c.is_none())
            .map(|(id, _)| *id)
            .collect();
        let fetched: Vec<BookRef> = sql::select_many(&self.read, &missing)
            .await?
            .iter()
            .map(StoredBook::of)
            .collect();
        self.shared.cache.fill_books(seen, &fetched);
        let mut fetched = fetched.into_iter().peekable();
        let mut out = Vec::with_capacity(ids.len());
        for (id, cached) in ids.iter().zip(cached) {
            match cached {
                Some(book) => out.push(book),
                None => out.extend(fetched.next_if(|b| b.id == *id)),
            }
        }
        Ok(out)
    }

    pub async fn create_book(
        &self,
        book: NewBook,
        key: Option<IdempotencyKey>,
        deadline: &Deadline,
    ) -> Result<Created> {
        let _in_flight = match &key {
            Some(key) => Some(InFlight::claim(&self.keys_in_flight, key)?),
            None => None,
        };
        let key = key.map(|key| {
            let fingerprint = book.fingerprint();
            (key, fingerprint)
        });
        match self.writer.write(Op::Create { book, key }, deadline).await? {
            Written::Created(created) => Ok(created),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn update_book(
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

    pub async fn delete_book(&self, id: i64, precondition: Precondition, deadline: &Deadline) -> Result<()> {
        match self
            .writer
            .write(Op::Delete { id, precondition }, deadline)
            .await?
        {
            Written::Deleted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// 404 or 412 if a change to book `id` under `precondition` would be refused for that
    /// reason (read outside the writer: for answering a request whose body is also wrong in
    /// the order RFC 9110 asks).
    pub async fn check(&self, id: i64, precondition: &Precondition) -> Result<()> {
        let book = self.get_book(id).await?.ok_or_else(|| not_found(id))?;
        if precondition.admits(book.id, book.version) {
            Ok(())
        } else {
            Err(Error::PreconditionFailed)
        }
    }

    /// `None` when the database answers, the search index is loaded and a write can commit;
    /// otherwise what is not ready.
    pub async fn not_ready(&self) -> Option<String> {
        if let Err(error) = self.read.execute("SELECT count(*) FROM sqlite_master").await {
            return Some(format!("the database does not answer: {error}"));
        }
        self.writer
            .health
            .problem()
            .map(|problem| format!("writer: {problem}"))
    }

    pub fn credentials(&self) -> SqliteCredentials {
        self.credentials.clone()
    }

    pub fn book_count(&self) -> i64 {
        self.shared.books.load(Ordering::Relaxed)
    }

    /// How many listing orders are built, and whether more are being built.
    pub fn listing_orders(&self) -> OrdersState {
        self.shared.search.orders_state()
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
        self.credentials.close().await;
        self.read.close().await;
        self.writer.stop().await;
    }

    /// SQLite's own consistency check of the database at `url`: `["ok"]` when all is well,
    /// else the problems found. Opens the file without creating it, and only reads.
    pub async fn integrity_check(url: &str) -> Result<Vec<String>, sqlx::Error> {
        let mut conn = connect_options(url)?.create_if_missing(false).connect().await?;
        let problems = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await?;
        conn.close().await?;
        Ok(problems)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Author, BookPatch, Genre, SortKey, Title, Year};

    fn new_book(title: &str, author: &str, year: i64, genre: Option<&str>) -> NewBook {
        NewBook {
            title: Title::parse(title).unwrap(),
            author: Author::parse(author).unwrap(),
            year: Year::new(year).unwrap(),
            genre: genre.map(|g| Genre::parse(g).unwrap().unwrap()),
        }
    }

    /// The index must answer every listing, filtered or not, exactly as SQL does (SQL being
    /// the reference).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_search_index_answers_every_listing_as_sql_does() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SqliteStore::open(
            &format!("sqlite://{}", dir.path().join("t.db").display()),
            Durability::Normal,
        )
        .await
        .unwrap();
        let titles = [
            "Dune",
            "Émile",
            "ÉCOLE des femmes",
            "Straße",
            "naïve café",
            "100% \"Quoted\"",
            "a%b_c\\d",
        ];
        let authors = [
            "Frank Herbert",
            "Jane Austen",
            "jane austen",
            "Molière",
            "Ângela",
            "Anon",
        ];
        let genres = [None, Some("Fiction"), Some("fiction"), Some("Poetry")];
        let mut queries = Vec::new();
        for q in [
            None,
            Some("dune"),
            Some("É"),
            Some("e"),
            Some("\""),
            Some("%"),
            Some("%b_"),
            Some("zzz"),
            Some("austen"),
        ] {
            for (author, genre) in [(None, None), (Some("JANE AUSTEN"), None), (None, Some("FICTION"))] {
                for (sort, descending) in [
                    (SortKey::Id, false),
                    (SortKey::Id, true),
                    (SortKey::Title, true),
                    (SortKey::Author, false),
                    (SortKey::Year, true),
                    (SortKey::CreatedAt, false),
                ] {
                    for (limit, offset, year_from) in
                        [(20, 0, None), (7, 31, Some(-100)), (1000, 0, Some(1990))]
                    {
                        queries.push(ListQuery {
                            limit,
                            offset,
                            q: q.map(str::to_owned),
                            author: author.map(str::to_owned),
                            genre: genre.map(str::to_owned),
                            year_from,
                            year_to: year_from.map(|y| y + 1500),
                            sort,
                            descending,
                            after: None,
                        });
                    }
                }
            }
        }
        // While the writes below go on, and the orders are built meanwhile (from a snapshot,
        // the writes made since replayed into them), every page the orders give is the page
        // the scan gives at the same moment.
        store.shared.search.want_every_order();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checker = tokio::spawn({
            let (store, queries, stop) = (store.clone(), queries.clone(), stop.clone());
            async move {
                let mut checked = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for query in &queries {
                        if let Some((walked, scanned)) = store.shared.search.walked_and_scanned(query) {
                            assert_eq!(walked, scanned, "{query:?}");
                            checked += 1;
                        }
                    }
                    tokio::task::yield_now().await;
                }
                checked
            }
        });
        let writes: Vec<_> = (0..2600)
            .map(|i| {
                let store = store.clone();
                let book = new_book(
                    &format!("{} {}", titles[i % titles.len()], i / 7),
                    authors[i % authors.len()],
                    -3000 + (i as i64 * 37) % 5000,
                    genres[i % genres.len()],
                );
                tokio::spawn(async move { store.create_book(book, None, &Deadline::none()).await.unwrap() })
            })
            .collect();
        for write in writes {
            write.await.unwrap();
        }
        for id in [5, 1024, 1025, 2000] {
            store
                .delete_book(id, Precondition::default(), &Deadline::none())
                .await
                .unwrap();
        }
        for id in [7, 1500] {
            let patch = BookPatch {
                title: Some(Title::parse("Renamed dune").unwrap()),
                ..BookPatch::default()
            };
            store
                .update_book(id, Precondition::default(), Edit::Patch(patch), &Deadline::none())
                .await
                .unwrap();
        }

        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(checker.await.unwrap() > 0);
        store.shared.search.every_order().await;
        store.shared.search.check_orders();
        for query in &queries {
            // The orders' walk, the scan (the path while orders are built) and, from the
            // page's last book, the next page by cursor.
            let walked = store.shared.search.page(query).await;
            let scanned = store.shared.search.scanned_page(query);
            assert_eq!(walked, scanned, "{query:?}");
            let sql = sql::reference::select_page(&store.read, query, None)
                .await
                .unwrap();
            let from_index = Page::of_stored(&store.books_by_ids(&walked.ids).await.unwrap(), walked.total);
            assert_eq!(from_index.total, sql.total, "{query:?}");
            assert_eq!(from_index.json, sql.json, "{query:?}");
            assert_eq!(walked.last, sql.last, "{query:?}");

            let next = ListQuery {
                offset: 0,
                after: walked.last.clone(),
                ..query.clone()
            };
            let walked = store.shared.search.page(&next).await;
            assert_eq!(walked, store.shared.search.scanned_page(&next), "{next:?}");
            let sql = sql::reference::select_page(&store.read, &next, None)
                .await
                .unwrap();
            let from_index = Page::of_stored(&store.books_by_ids(&walked.ids).await.unwrap(), walked.total);
            assert_eq!(
                (from_index.total, &from_index.json),
                (sql.total, &sql.json),
                "{next:?}"
            );
        }
    }
}
