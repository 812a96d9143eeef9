//! Where the data lives: one facade over the two database engines, chosen by the database
//! URL's scheme.
//!
//! - [`sqlite`] (`sqlite://PATH`): the embedded default, for one backend process: a
//!   batching writer, and a cache and search index the writer keeps exact.
//! - [`postgres`] (`postgres://…`): for any number of backend processes on one database;
//!   nothing is answered from process memory.
//!
//! Handlers see only [`Store`]; each engine keeps its SQL, its connections and its
//! in-memory views (if any) in its own folder.

pub mod credentials;
pub mod postgres;
mod seed;
pub mod sqlite;
mod stored;
pub mod transfer;

use std::sync::Arc;

use clap::ValueEnum;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use sqlite::OrdersState;
pub use stored::{BookRef, Page, StoredBook};

use crate::deadline::Deadline;
use crate::domain::{Edit, IdempotencyKey, ListQuery, NewBook, Precondition};
use crate::error::{Error, Result};
use postgres::PostgresStore;
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
    /// SQLite only.
    pub durability: Durability,
    /// PostgreSQL only: the connection pool's size.
    pub max_connections: u32,
}

/// Which engine a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn of(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
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
    Postgres(PostgresStore),
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
        let url = &config.database_url;
        let (store, fresh) = match Engine::of(url) {
            Some(Engine::Sqlite) => {
                let (store, fresh) = SqliteStore::open(url, config.durability).await?;
                (Store::Sqlite(store), fresh)
            }
            Some(Engine::Postgres) => {
                let (store, fresh) = PostgresStore::open(url, config.max_connections).await?;
                (Store::Postgres(store), fresh)
            }
            None => {
                return Err(sqlx::Error::Configuration(
                    "the database URL must start with sqlite:// or postgres://".into(),
                ));
            }
        };
        Ok(Opened { store, fresh })
    }

    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(_) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }

    pub async fn get_book(&self, id: i64) -> Result<Option<BookRef>> {
        match self {
            Self::Sqlite(store) => store.get_book(id).await,
            Self::Postgres(store) => store.get_book(id).await,
        }
    }

    pub async fn list_books(&self, query: &ListQuery) -> Result<Arc<Page>> {
        match self {
            Self::Sqlite(store) => store.list_books(query).await,
            Self::Postgres(store) => store.list_books(query).await.map(Arc::new),
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
            Self::Postgres(store) => store.create_book(book, key, deadline).await,
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
            Self::Postgres(store) => store.update_book(id, precondition, edit, deadline).await,
        }
    }

    /// Deletes book `id` if `precondition` admits its current version.
    pub async fn delete_book(&self, id: i64, precondition: Precondition, deadline: &Deadline) -> Result<()> {
        match self {
            Self::Sqlite(store) => store.delete_book(id, precondition, deadline).await,
            Self::Postgres(store) => store.delete_book(id, precondition, deadline).await,
        }
    }

    /// The refusal (404 or 412) a change to book `id` would get for its existence or its
    /// conditions alone; `Ok` if none.
    pub async fn check(&self, id: i64, precondition: &Precondition) -> Result<()> {
        match self {
            Self::Sqlite(store) => store.check(id, precondition).await,
            Self::Postgres(store) => store.check(id, precondition).await,
        }
    }

    /// `None` when the store can serve reads and commit writes now; otherwise what is not
    /// ready, for `/readyz`.
    pub async fn not_ready(&self) -> Option<String> {
        match self {
            Self::Sqlite(store) => store.not_ready().await,
            Self::Postgres(store) => store.not_ready().await,
        }
    }

    /// Books stored, for the gauge (`None` if the database cannot say right now).
    pub async fn book_count(&self) -> Option<i64> {
        match self {
            Self::Sqlite(store) => Some(store.book_count()),
            Self::Postgres(store) => store.book_count().await,
        }
    }

    /// The tokens and sessions kept in this database.
    pub fn credentials(&self) -> credentials::CredentialStore {
        match self {
            Self::Sqlite(store) => credentials::CredentialStore::Sqlite(store.credentials()),
            Self::Postgres(store) => credentials::CredentialStore::Postgres(store.credentials()),
        }
    }

    pub fn pool_use(&self) -> PoolUse {
        match self {
            Self::Sqlite(store) => store.pool_use(),
            Self::Postgres(store) => store.pool_use(),
        }
    }

    /// How many listing orders are built, and whether more are being built (SQLite, which
    /// builds each the first time a listing needs it and scans meanwhile). `None` on
    /// PostgreSQL, whose indexes are always there.
    pub fn listing_orders(&self) -> Option<OrdersState> {
        match self {
            Self::Sqlite(store) => Some(store.listing_orders()),
            Self::Postgres(_) => None,
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }
}

/// The current time as stored and returned: RFC 3339, UTC, whole seconds.
pub fn now() -> String {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds is a valid time");
    now.format(&Rfc3339)
        .expect("a UTC time in the years SQLite and this process live in formats as RFC 3339")
}

/// Seconds since 1970.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}
