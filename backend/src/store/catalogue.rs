//! What the API needs of the database: [`Catalogue`], the one trait both engines implement.
//! They differ in how they write (SQLite: one batching writer, the database's only one;
//! PostgreSQL: a transaction per change, any number of replicas) and in what they keep in
//! memory (SQLite: the books by id, which its single writer keeps exact); every read of a
//! listing is the same SQL on both (`sql.rs`, `listing.rs`).

use std::sync::Arc;

use time::OffsetDateTime;

use super::credentials::CredentialStore;
use super::statement::Engine;
use super::stored::{BookRef, Page};
use crate::deadline::Deadline;
use crate::domain::{Edit, IdempotencyKey, ListQuery, NewBook, Precondition};
use crate::error::{Error, Result};

/// The database behind the API; cloning shares it.
pub type Store = Arc<dyn Catalogue>;

#[async_trait::async_trait]
pub trait Catalogue: Send + Sync + 'static {
    fn engine(&self) -> Engine;

    async fn get_book(&self, id: i64) -> Result<Option<BookRef>>;

    /// A page of a listing, and how many books it matches.
    async fn list_books(&self, query: &ListQuery) -> Result<Page>;

    /// Creates a book; with an `Idempotency-Key`, at most once per key (a retry gets the
    /// original answer, a retry with another book a 422, one while the first runs a 409).
    async fn create_book(
        &self,
        book: NewBook,
        key: Option<IdempotencyKey>,
        deadline: &Deadline,
    ) -> Result<Created>;

    /// Applies `edit` to book `id` if `precondition` admits its current version; the read,
    /// the check and the write happen in one transaction. An edit that changes nothing
    /// writes nothing (the version stays).
    async fn update_book(
        &self,
        id: i64,
        precondition: Precondition,
        edit: Edit,
        deadline: &Deadline,
    ) -> Result<BookRef>;

    /// Deletes book `id` if `precondition` admits its current version.
    async fn delete_book(&self, id: i64, precondition: Precondition, deadline: &Deadline) -> Result<()>;

    /// `None` when the store can serve reads and commit writes now; otherwise which check
    /// failed, for `/readyz`.
    async fn not_ready(&self) -> Option<NotReady>;

    /// Books stored, for the gauge (`None` if the database cannot say right now).
    async fn book_count(&self) -> Option<i64>;

    /// The tokens and sessions kept in this database.
    fn credentials(&self) -> CredentialStore;

    fn pool_use(&self) -> PoolUse;

    /// The plans of the statements that answer a listing (for the tests that hold every
    /// listing to an index).
    async fn listing_plans(&self, query: &ListQuery) -> Result<Vec<Vec<String>>>;

    async fn close(&self);
}

/// The refusal (404 or 412) a change to book `id` would get for its existence or its
/// conditions alone; `Ok` if none. (For answering a request whose body is also wrong in the
/// order RFC 9110 asks.)
pub async fn check(store: &dyn Catalogue, id: i64, precondition: &Precondition) -> Result<()> {
    let book = store.get_book(id).await?.ok_or_else(|| not_found(id))?;
    if precondition.admits(book.id, book.version) {
        Ok(())
    } else {
        Err(Error::PreconditionFailed)
    }
}

/// Which readiness check failed, and why (the why is for the log only: it may hold the
/// database's own words).
#[derive(Debug, Clone)]
pub struct NotReady {
    pub check: &'static str,
    pub cause: String,
}

impl NotReady {
    /// The database does not answer.
    pub fn database(cause: impl ToString) -> Self {
        Self {
            check: "the database does not answer",
            cause: cause.to_string(),
        }
    }

    /// The database answers, but a write cannot commit.
    pub fn writes(cause: impl ToString) -> Self {
        Self {
            check: "a write cannot commit",
            cause: cause.to_string(),
        }
    }
}

/// Database connections by state, for the `bookstore_db_pool_connections` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub idle: u32,
    pub in_use: u32,
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

/// How long a client's `Idempotency-Key` is remembered, in seconds.
pub const KEY_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// Seconds since 1970.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}
