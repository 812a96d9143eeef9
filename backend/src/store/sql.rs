//! The SQL both engines share, written once.
//!
//! sqlx takes `$1`-style placeholders on SQLite as on PostgreSQL, and the two schemas keep
//! the same tables and columns (only types differ: SQLite's times are RFC 3339 text,
//! PostgreSQL's `timestamptz`; `Timestamp` reads and writes both). So each statement is one
//! string here, and [`Sql`] runs it on either engine. What differs is named in
//! `statement.rs` ([`Engine`]) and in each engine's `dialect.rs`.
//!
//! `Sql` is implemented by sqlx's own `Sqlite` and `Postgres` types; the engines call its
//! methods with their pools and connections.

use std::future::Future;

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::catalogue::{Created, KEY_LIFETIME_SECS, not_found, unix_now};
use super::listing::{Listing, Step};
use super::statement::{Arg, Engine, PageJson, PageRow, Statement, book_columns};
use super::stored::{BookRef, Page, StoredBook};
use crate::domain::{Book, Edit, IdempotencyKey, ListQuery, NewBook, Precondition, Timestamp, fold_case};
use crate::error::{Error, Result};

/// An `Idempotency-Key` used earlier, and the answer it got.
#[derive(sqlx_macros::FromRow)]
pub struct KeyRow {
    pub fingerprint: String,
    book_id: i64,
    version: i64,
    response: String,
}

impl KeyRow {
    /// The book as the original answer carried it.
    pub fn response(self) -> BookRef {
        StoredBook::from_parts(self.book_id, self.version, self.response.into_bytes())
    }
}

/// The statements both engines run, and the one thing each must say for itself (how a plan
/// is explained). The `where` clause lists what sqlx must be able to do with the driver:
/// run statements on a pool and on a connection, bind every [`Arg`], and read every row type
/// here. (Rust does not carry such clauses to users of the trait, so generic code outside it
/// states them again: see `credentials.rs`.) Its methods return `Send` futures by name, so
/// that callers need not prove it through those clauses.
pub trait Sql: Database
where
    for<'c> &'c mut <Self as Database>::Connection: Executor<'c, Database = Self>,
    for<'q> <Self as Database>::Arguments<'q>: IntoArguments<'q, Self>,
    for<'q> Arg: Encode<'q, Self> + Type<Self>,
    for<'r> Book: FromRow<'r, <Self as Database>::Row>,
    for<'r> PageRow: FromRow<'r, <Self as Database>::Row>,
    for<'r> KeyRow: FromRow<'r, <Self as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <Self as Database>::Row>,
    for<'r> (i64, i64): FromRow<'r, <Self as Database>::Row>,
    for<'r> (i64, String): FromRow<'r, <Self as Database>::Row>,
{
    const ENGINE: Engine;

    /// The plan the engine chooses for `statement`, a line per step.
    fn explain(
        pool: &Pool<Self>,
        statement: &Statement,
    ) -> impl Future<Output = Result<Vec<String>, sqlx::Error>> + Send;

    /// The rows a statement answers.
    fn rows<'e, E, R>(
        executor: E,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<R>, sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
        R: for<'r> FromRow<'r, <Self as Database>::Row> + Send + Unpin + 'e,
    {
        async move {
            let mut query = sqlx::query_as::<Self, R>(&statement.sql);
            for arg in statement.args {
                query = query.bind(arg);
            }
            query.fetch_all(executor).await
        }
    }

    /// The one row a statement answers.
    fn row<'e, E, R>(executor: E, statement: Statement) -> impl Future<Output = Result<R, sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
        R: for<'r> FromRow<'r, <Self as Database>::Row> + Send + Unpin + 'e,
    {
        async move {
            let rows: Vec<R> = Self::rows(executor, statement).await?;
            rows.into_iter()
                .next()
                .ok_or_else(|| sqlx::Error::Protocol("a statement that answers a row answered none".into()))
        }
    }

    /// The one number a statement answers.
    fn number<'e, E>(
        executor: E,
        statement: Statement,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
    {
        async move { Self::row(executor, statement).await.map(|(n,): (i64,)| n) }
    }

    /// Runs a statement that returns no rows.
    fn execute<'e, E>(
        executor: E,
        statement: Statement,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
    {
        async move {
            let mut query = sqlx::query::<Self>(&statement.sql);
            for arg in statement.args {
                query = query.bind(arg);
            }
            query.execute(executor).await.map(drop)
        }
    }

    fn select_book<'e, E>(
        executor: E,
        id: i64,
    ) -> impl Future<Output = Result<Option<Book>, sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
    {
        let statement = by_id(id, "");
        async move { Ok(Self::rows(executor, statement).await?.pop()) }
    }

    /// The row a change starts from, locked until the transaction ends: a second change to
    /// the same book, from any replica, waits, then reads the version this one wrote.
    fn select_for_change(
        conn: &mut Self::Connection,
        id: i64,
    ) -> impl Future<Output = Result<Option<Book>, sqlx::Error>> + Send {
        let statement = by_id(id, Self::ENGINE.lock_rows());
        async move { Ok(Self::rows(conn, statement).await?.pop()) }
    }

    /// Inserts books with one statement and returns them in the order given (ids are
    /// assigned in `VALUES` order; `RETURNING` promises no order).
    fn insert_books(
        conn: &mut Self::Connection,
        new: &[NewBook],
        now: &Timestamp,
    ) -> impl Future<Output = Result<Vec<Book>, sqlx::Error>> + Send {
        let mut statement = Statement::new(
            "INSERT INTO books (title, author, year, genre, created_at, updated_at, title_key, author_key, genre_key) VALUES ",
        );
        for (i, book) in new.iter().enumerate() {
            statement.push(if i == 0 { "(" } else { ", (" });
            let stamp = statement.arg(Arg::Time(now.clone()));
            push_book(&mut statement, book, &format!("${stamp}, ${stamp}"));
            statement.push(")");
        }
        statement.push(concat!(" RETURNING ", book_columns!()));
        async move {
            let mut created: Vec<Book> = Self::rows(conn, statement).await?;
            created.sort_unstable_by_key(|book| book.id);
            Ok(created)
        }
    }

    /// Replaces the fields of book `id`, but only at version `version` (read, and locked, in
    /// the same transaction): the database, not any process's memory, decides a conflict.
    fn update_book(
        conn: &mut Self::Connection,
        id: i64,
        version: i64,
        book: &NewBook,
        now: &Timestamp,
    ) -> impl Future<Output = Result<Option<Book>, sqlx::Error>> + Send {
        let mut statement = Statement::new(
            "UPDATE books SET (title, author, year, genre, updated_at, title_key, author_key, genre_key) = (",
        );
        let stamp = statement.arg(Arg::Time(now.clone()));
        push_book(&mut statement, book, &format!("${stamp}"));
        statement
            .push("), version = version + 1 WHERE id = ")
            .bind(Arg::Int(id));
        statement.push(" AND version = ").bind(Arg::Int(version));
        statement.push(concat!(" RETURNING ", book_columns!()));
        async move { Ok(Self::rows(conn, statement).await?.pop()) }
    }

    /// Deletes book `id` at version `version`; whether a row went.
    fn delete_book(
        conn: &mut Self::Connection,
        id: i64,
        version: i64,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send {
        let statement = Statement::with(
            "DELETE FROM books WHERE id = $1 AND version = $2 RETURNING id",
            [Arg::Int(id), Arg::Int(version)],
        );
        async move { Ok(Self::rows::<_, (i64,)>(conn, statement).await?.len() == 1) }
    }

    /// The current row of a change, or the refusal: 404 if there is no such book, 412 if
    /// `precondition` does not admit its version. (Refusals are the inner error: the
    /// transaction goes on, or is dropped, as its owner decides.)
    fn current(
        conn: &mut Self::Connection,
        id: i64,
        precondition: &Precondition,
    ) -> impl Future<Output = Result<Result<Book>, sqlx::Error>> + Send {
        let admitted = move |book: &Book| precondition.admits(book.id, book.version);
        async move {
            Ok(match Self::select_for_change(conn, id).await? {
                None => Err(not_found(id)),
                Some(book) if !admitted(&book) => Err(Error::PreconditionFailed),
                Some(book) => Ok(book),
            })
        }
    }

    /// Applies `edit` to book `id` in the caller's transaction: the book after it, and
    /// whether it was written (an edit that changes nothing is not, so the version and every
    /// client's ETag stay), or the refusal (404, 412, 422).
    fn change_book(
        conn: &mut Self::Connection,
        id: i64,
        precondition: &Precondition,
        edit: Edit,
        now: &Timestamp,
    ) -> impl Future<Output = Result<Result<(Book, bool)>, sqlx::Error>> + Send {
        async move {
            let current = match Self::current(&mut *conn, id, precondition).await? {
                Ok(current) => current,
                Err(refused) => return Ok(Err(refused)),
            };
            let next = match edit.apply_to(&current) {
                Ok(next) => next,
                Err(errors) => return Ok(Err(Error::invalid_fields(errors))),
            };
            if next.matches(&current) {
                return Ok(Ok((current, false)));
            }
            let updated = Self::update_book(conn, id, current.version, &next, now).await?;
            Ok(updated.map(|book| (book, true)).ok_or(Error::PreconditionFailed))
        }
    }

    /// Deletes book `id` in the caller's transaction, or says why not (404, 412).
    fn remove_book(
        conn: &mut Self::Connection,
        id: i64,
        precondition: &Precondition,
    ) -> impl Future<Output = Result<Result<()>, sqlx::Error>> + Send {
        async move {
            let current = match Self::current(&mut *conn, id, precondition).await? {
                Ok(current) => current,
                Err(refused) => return Ok(Err(refused)),
            };
            let deleted = Self::delete_book(conn, id, current.version).await?;
            Ok(deleted.then_some(()).ok_or(Error::PreconditionFailed))
        }
    }

    /// Creates a book under an `Idempotency-Key` in the caller's transaction (which holds
    /// the key: no other request with it runs meanwhile): the original answer if the key was
    /// used for the same book within its lifetime, a 422 if for another, else the new book
    /// and the key's record of it.
    fn create_with_key(
        conn: &mut Self::Connection,
        book: &NewBook,
        key: &IdempotencyKey,
        now: &Timestamp,
    ) -> impl Future<Output = Result<Result<Created>, sqlx::Error>> + Send {
        async move {
            let fingerprint = book.fingerprint();
            if let Some(earlier) = Self::select_key(&mut *conn, key, unix_now() - KEY_LIFETIME_SECS).await? {
                return Ok(if earlier.fingerprint == fingerprint {
                    Ok(Created::replayed(earlier.response()))
                } else {
                    Err(Error::key_reused())
                });
            }
            let created = Self::insert_books(&mut *conn, std::slice::from_ref(book), now).await?;
            let created = StoredBook::of(created.first().ok_or(sqlx::Error::RowNotFound)?);
            Self::insert_key(conn, key, &fingerprint, &created, unix_now()).await?;
            Ok(Ok(Created::new(created)))
        }
    }

    /// A page of a listing and its count; `listing.rs` says which statements answer it.
    /// With `plans`, also what the engine plans for each (for the tests that hold every
    /// listing to an index).
    fn list_books<'a>(
        pool: &'a Pool<Self>,
        query: &'a ListQuery,
        mut plans: Option<&'a mut Vec<Vec<String>>>,
    ) -> impl Future<Output = Result<Page, sqlx::Error>> + Send + 'a {
        async move {
            let mut listing = Listing::new(query, Self::ENGINE);
            let mut step = listing.start();
            loop {
                if let (Some(plans), Step::Counts(st) | Step::Page(st) | Step::Total(st)) =
                    (&mut plans, &step)
                {
                    plans.push(Self::explain(pool, st).await?);
                }
                step = match step {
                    Step::Counts(st) => {
                        let counts: Vec<(i64, i64)> = Self::rows(pool, st).await?;
                        let (in_range, in_set) = counts.first().copied().unwrap_or_default();
                        listing.counted(in_range, in_set)
                    }
                    Step::Page(st) => {
                        let page = if Self::ENGINE.writes_pages() {
                            let (total, books): (i64, String) = Self::row(pool, st).await?;
                            PageJson {
                                total: Some(total),
                                books,
                            }
                        } else {
                            PageJson::of_rows(Self::rows(pool, st).await?)
                        };
                        listing.paged(page).map_err(undecodable)?
                    }
                    Step::Total(st) => listing
                        .totalled(Self::number(pool, st).await?)
                        .map_err(undecodable)?,
                    Step::Done(page) => return Ok(page),
                };
            }
        }
    }

    /// The number of books, from the counts the database keeps.
    fn count_books(pool: &Pool<Self>) -> impl Future<Output = Result<i64, sqlx::Error>> + Send {
        Self::number(
            pool,
            Statement::new(
                "SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM genre_counts WHERE genre_key = ''",
            ),
        )
    }

    /// The key's row, if it was used at or after `fresh_after` (unix seconds).
    fn select_key(
        conn: &mut Self::Connection,
        key: &IdempotencyKey,
        fresh_after: i64,
    ) -> impl Future<Output = Result<Option<KeyRow>, sqlx::Error>> + Send {
        let statement = Statement::with(
            "SELECT fingerprint, book_id, version, response FROM idempotency_keys \
             WHERE scope = $1 AND key = $2 AND created_at >= $3",
            [
                Arg::Text(key.scope().to_owned()),
                Arg::Text(key.key().to_owned()),
                Arg::Int(fresh_after),
            ],
        );
        async move { Ok(Self::rows(conn, statement).await?.pop()) }
    }

    /// Records the answer to a create under its key (replacing an expired use of the key).
    fn insert_key(
        conn: &mut Self::Connection,
        key: &IdempotencyKey,
        fingerprint: &str,
        book: &StoredBook,
        at: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        let response = String::from_utf8(book.json().to_vec()).expect("serde_json writes UTF-8");
        let mut statement = Statement::new(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, book_id, version, response, created_at) VALUES (",
        );
        statement.bind_all([
            Arg::Text(key.scope().to_owned()),
            Arg::Text(key.key().to_owned()),
            Arg::Text(fingerprint.to_owned()),
            Arg::Int(book.id),
            Arg::Int(book.version),
            Arg::Text(response),
            Arg::Int(at),
        ]);
        statement.push(
            ") ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
             book_id = excluded.book_id, version = excluded.version, response = excluded.response, \
             created_at = excluded.created_at",
        );
        Self::execute(conn, statement)
    }

    /// Deletes forgotten `Idempotency-Key`s every ten minutes, for as long as `pool` is open
    /// (any process may; deleting twice is harmless).
    fn purge_keys_while_open(pool: Pool<Self>) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(600)).await;
                if pool.is_closed() {
                    return;
                }
                match Self::purge_keys(&pool, unix_now() - KEY_LIFETIME_SECS).await {
                    Ok(purged) => tracing::debug!(purged, "forgot idempotency keys older than 24 hours"),
                    Err(error) => tracing::warn!(%error, "purging old idempotency keys failed"),
                }
            }
        });
    }

    /// Forgets keys used before `before` (unix seconds); returns how many.
    fn purge_keys<'e, E>(executor: E, before: i64) -> impl Future<Output = Result<u64, sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
    {
        let statement = Statement::with(
            "DELETE FROM idempotency_keys WHERE created_at < $1 RETURNING created_at",
            [Arg::Int(before)],
        );
        async move { Ok(Self::rows::<_, (i64,)>(executor, statement).await?.len() as u64) }
    }
}

/// Book `id`, with `suffix` (a lock) after.
fn by_id(id: i64, suffix: &str) -> Statement {
    let sql = concat!("SELECT ", book_columns!(), " FROM books WHERE id = $1");
    Statement::with(&format!("{sql}{suffix}"), [Arg::Int(id)])
}

/// A book's fields as bound values, in the column order of [`Sql::insert_books`] and
/// [`Sql::update_book`], with `stamps` (the placeholders of the times) after the genre.
fn push_book(statement: &mut Statement, book: &NewBook, stamps: &str) {
    let genre = book.genre.as_ref().map(|g| g.as_str().to_owned());
    statement.bind_all([
        Arg::Text(book.title.as_str().to_owned()),
        Arg::Text(book.author.as_str().to_owned()),
        Arg::Year(book.year.get_i32()),
        Arg::OptionalText(genre.clone()),
    ]);
    statement.push(&format!(", {stamps}, "));
    statement.bind_all([
        Arg::Text(fold_case(book.title.as_str())),
        Arg::Text(fold_case(book.author.as_str())),
        Arg::OptionalText(genre.as_deref().map(fold_case)),
    ]);
}

/// A page the database wrote that is not the JSON it should be.
fn undecodable(error: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}
