//! Where the data lives: one facade over the two database engines.
//!
//! - [`sqlite`]: the embedded default, for one backend process: a batching writer, and a
//!   cache and search index the writer keeps exact.
//!
//! Handlers see only [`Store`]; each engine keeps its SQL, its connections and its
//! in-memory views in its own folder.

mod seed;
pub mod sqlite;
mod stored;

use std::sync::Arc;

use clap::ValueEnum;

pub use stored::{BookRef, Page, StoredBook};

use crate::deadline::Deadline;
use crate::domain::{Edit, IdempotencyKey, ListQuery, NewBook, Precondition};
use crate::error::{Error, Result};
use sqlite::SqliteStore;

/// Database connections by state, for the `bookstore_db_pool_connections` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub idle: u32,
    pub in_use: u32,
}

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

/// What opening a database needs.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub database_url: String,
    pub durability: Durability,
}

/// A book created by `POST /books`, or the original answer to a retry with the same
/// `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct Created {
    pub book: BookRef,
    pub replayed: bool,
}

impl Created {
    pub fn new(book: BookRef) -> Self {
        Self {
            book,
            replayed: false,
        }
    }

    pub fn replayed(book: BookRef) -> Self {
        Self { book, replayed: true }
    }
}

pub fn not_found(id: i64) -> Error {
    Error::NotFound(format!("there is no book with id {id}"))
}

/// The database behind the API.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
}

/// What opening the database found.
pub struct Opened {
    pub store: Store,
    /// The database had never been migrated: it is brand new.
    pub fresh: bool,
}

impl Store {
    /// Opens the database `config.database_url` names, migrating it.
    pub async fn open(config: &StoreConfig) -> Result<Opened, sqlx::Error> {
        let (store, fresh) = SqliteStore::open(&config.database_url, config.durability).await?;
        Ok(Opened {
            store: Store::Sqlite(store),
            fresh,
        })
    }

    /// `sqlite` or `postgres`, for the build-info metric.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
        }
    }

    pub async fn get_book(&self, id: i64) -> Result<Option<BookRef>> {
        match self {
            Self::Sqlite(store) => store.get_book(id).await,
        }
    }

    pub async fn list_books(&self, query: &ListQuery) -> Result<Arc<Page>> {
        match self {
            Self::Sqlite(store) => store.list_books(query).await,
        }
    }

    /// Creates a book; with an `Idempotency-Key`, at most once per key (a retry gets the
    /// original answer, a retry with another book a 422, one while the first runs a 409).
    pub async fn create_book(
        &self,
        book: NewBook,
        key: Option<IdempotencyKey>,
        deadline: &Deadline,
    ) -> Result<Created> {
        match self {
            Self::Sqlite(store) => store.create_book(book, key, deadline).await,
        }
    }

    /// Applies `edit` to book `id` if `precondition` admits its current version; the read,
    /// the check and the write happen in one transaction. An edit that changes nothing
    /// writes nothing (the version stays).
    pub async fn update_book(
        &self,
        id: i64,
        precondition: Precondition,
        edit: Edit,
        deadline: &Deadline,
    ) -> Result<BookRef> {
        match self {
            Self::Sqlite(store) => store.update_book(id, precondition, edit, deadline).await,
        }
    }

    /// Deletes book `id` if `precondition` admits its current version.
    pub async fn delete_book(&self, id: i64, precondition: Precondition, deadline: &Deadline) -> Result<()> {
        match self {
            Self::Sqlite(store) => store.delete_book(id, precondition, deadline).await,
        }
    }

    /// The refusal (404 or 412) a change to book `id` would get for its existence or its
    /// conditions alone; `Ok` if none.
    pub async fn check(&self, id: i64, precondition: &Precondition) -> Result<()> {
        match self {
            Self::Sqlite(store) => store.check(id, precondition).await,
        }
    }

    /// `None` when the store can serve reads and commit writes now; otherwise what is not
    /// ready, for `/readyz`.
    pub async fn not_ready(&self) -> Option<String> {
        match self {
            Self::Sqlite(store) => store.not_ready().await,
        }
    }

    /// Whether the in-memory search index has loaded (always, for engines without one).
    pub fn search_ready(&self) -> bool {
        match self {
            Self::Sqlite(store) => store.search_ready(),
        }
    }

    pub fn book_count(&self) -> i64 {
        match self {
            Self::Sqlite(store) => store.book_count(),
        }
    }

    pub fn pool_use(&self) -> PoolUse {
        match self {
            Self::Sqlite(store) => store.pool_use(),
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
        }
    }
}
