//! The SQL both engines share, written once.
//!
//! sqlx takes `$1`-style placeholders on SQLite as on PostgreSQL, and the two schemas keep
//! the same tables and columns (only types differ: SQLite's times are RFC 3339 text,
//! PostgreSQL's `timestamptz`; [`Timestamp`] reads and writes both). So each statement is
//! one string here, and [`Sql`] runs it on either engine. What differs is named in one
//! place, [`Engine`]: how a row is locked for a change, how text is searched, how a plan is
//! explained.
//!
//! `Sql` is implemented by sqlx's own `Sqlite` and `Postgres` types (in each engine's
//! `dialect.rs`, with how they read and write [`Arg`] and [`Timestamp`]); the engines call
//! its methods with their pools and connections.

use std::future::Future;

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::listing::{Listing, Step};
use super::stored::{BookRef, Page, StoredBook};
use crate::domain::{Book, IdempotencyKey, ListQuery, NewBook, Timestamp};

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

    /// Whether the engine's planner keeps statistics of the data (PostgreSQL: autovacuum's
    /// `ANALYZE`) and so chooses between reading a range and walking an order by itself.
    /// SQLite keeps none unless asked; the listings add the hints statistics would give.
    pub(crate) fn keeps_statistics(self) -> bool {
        self == Self::Postgres
    }

    /// What a `SELECT` adds to lock the rows it reads until the transaction ends. SQLite's
    /// write transaction already excludes every other writer.
    fn lock_rows(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE",
        }
    }

    /// The statement that keeps other writers out of `table` until the transaction ends (a
    /// SQLite write transaction already does).
    pub(crate) fn lock_table(self, table: &str) -> Option<String> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some(format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")),
        }
    }

    /// `FROM … WHERE` of the books whose title or author contains `needle` (folded, three
    /// characters or more), through the engine's text index: FTS5's trigram table on
    /// SQLite, `pg_trgm`'s indexes on PostgreSQL (which serve `LIKE`).
    pub(crate) fn push_substring_source(self, st: &mut Statement, needle: &str) {
        match self {
            Self::Sqlite => {
                // One FTS5 phrase of the needle's trigrams, in order: the substring itself.
                let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
                st.push(" FROM books_text JOIN books ON books.id = books_text.rowid WHERE books_text MATCH ")
                    .bind(Arg::Text(phrase));
            }
            Self::Postgres => {
                st.push(" FROM books WHERE ");
                push_contains(st, &format!("%{}%", escape_like(needle)));
            }
        }
    }
}

/// `(title_key LIKE pattern OR author_key LIKE pattern)`, the wildcards of `pattern` being
/// `%` and `_` and its escape `\` (so both engines read it alike).
pub(crate) fn push_contains(st: &mut Statement, pattern: &str) {
    let n = st.arg(Arg::Text(pattern.to_owned()));
    st.push(&format!(
        "(books.title_key LIKE ${n} ESCAPE '\\' OR books.author_key LIKE ${n} ESCAPE '\\')"
    ));
}

/// `text` with LIKE's wildcards taken literally.
pub(crate) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A value bound to a statement. One type for every bound value, so that a statement built
/// piece by piece can bind them in a loop; each engine encodes each variant as the column's
/// own type (`dialect.rs`).
#[derive(Debug, Clone)]
pub enum Arg {
    Int(i64),
    OptionalInt(Option<i64>),
    /// A year: PostgreSQL's column is an `integer`.
    Year(i32),
    Bool(bool),
    Text(String),
    OptionalText(Option<String>),
    Time(Timestamp),
}

/// SQL and the values for its `$n` placeholders, built piece by piece.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Statement {
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Adds a value and its placeholder.
    pub fn bind(&mut self, value: Arg) -> &mut Self {
        let n = self.arg(value);
        self.sql.push_str(&format!("${n}"));
        self
    }

    /// Adds a value; returns its placeholder's number (for SQL that names it twice).
    pub fn arg(&mut self, value: Arg) -> usize {
        self.args.push(value);
        self.args.len()
    }
}

/// A book of a listing's page, with the number of books the listing matches.
#[derive(FromRow)]
pub struct PageRow {
    pub total: i64,
    #[sqlx(flatten)]
    pub book: Book,
}

/// An `Idempotency-Key` used earlier, and the answer it got.
#[derive(FromRow)]
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

/// The columns of a [`Book`], for `concat!`.
macro_rules! book_columns {
    () => {
        "id, title, author, year, genre, created_at, updated_at, version"
    };
}
pub(crate) use book_columns;

/// The statements both engines run, and the one thing each must say for itself (how a plan
/// is explained). The `where` clause lists what sqlx must be able to do with the driver:
/// run statements on a pool and on a connection, bind every [`Arg`], and read every row type
/// here. (Rust does not carry such clauses to users of the trait, so code generic over `Sql`
/// outside it states them again: see `credentials.rs`.)
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
{
    const ENGINE: Engine;

    /// The plan the engine chooses for `statement`, a line per step.
    fn explain(
        pool: &Pool<Self>,
        statement: &Statement,
    ) -> impl Future<Output = Result<Vec<String>, sqlx::Error>> + Send;

    fn books<'e, E>(
        executor: E,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<Book>, sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
    {
        async move {
            let mut query = sqlx::query_as::<Self, Book>(&statement.sql);
            for arg in statement.args {
                query = query.bind(arg);
            }
            query.fetch_all(executor).await
        }
    }

    fn page(
        pool: &Pool<Self>,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<PageRow>, sqlx::Error>> + Send {
        async move {
            let mut query = sqlx::query_as::<Self, PageRow>(&statement.sql);
            for arg in statement.args {
                query = query.bind(arg);
            }
            query.fetch_all(pool).await
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
        async move {
            let mut query = sqlx::query_as::<Self, (i64,)>(&statement.sql);
            for arg in statement.args {
                query = query.bind(arg);
            }
            let (n,) = query.fetch_one(executor).await?;
            Ok(n)
        }
    }

    /// The two numbers a statement answers.
    fn numbers(
        pool: &Pool<Self>,
        statement: Statement,
    ) -> impl Future<Output = Result<(i64, i64), sqlx::Error>> + Send {
        async move {
            let mut query = sqlx::query_as::<Self, (i64, i64)>(&statement.sql);
            for arg in statement.args {
                query = query.bind(arg);
            }
            query.fetch_one(pool).await
        }
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

    /// Runs a statement that returns a number per row it changed (`RETURNING id`); how many
    /// it changed.
    fn changed<'e, E>(
        executor: E,
        statement: Statement,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
    {
        async move {
            let mut query = sqlx::query_as::<Self, (i64,)>(&statement.sql);
            for arg in statement.args {
                query = query.bind(arg);
            }
            Ok(query.fetch_all(executor).await?.len() as u64)
        }
    }

    fn select_book<'e, E>(
        executor: E,
        id: i64,
    ) -> impl Future<Output = Result<Option<Book>, sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
    {
        async move {
            let mut statement =
                Statement::new(concat!("SELECT ", book_columns!(), " FROM books WHERE id = "));
            statement.bind(Arg::Int(id));
            Ok(Self::books(executor, statement).await?.pop())
        }
    }

    /// The row a change starts from, locked until the transaction ends: a second change to
    /// the same book, from any replica, waits, then reads the version this one wrote.
    fn select_for_change(
        conn: &mut Self::Connection,
        id: i64,
    ) -> impl Future<Output = Result<Option<Book>, sqlx::Error>> + Send {
        async move {
            let mut statement =
                Statement::new(concat!("SELECT ", book_columns!(), " FROM books WHERE id = "));
            statement.bind(Arg::Int(id)).push(Self::ENGINE.lock_rows());
            Ok(Self::books(conn, statement).await?.pop())
        }
    }

    /// Inserts books with one statement and returns them in the order given (ids are
    /// assigned in `VALUES` order; `RETURNING` promises no order).
    fn insert_books(
        conn: &mut Self::Connection,
        new: &[NewBook],
        now: &Timestamp,
    ) -> impl Future<Output = Result<Vec<Book>, sqlx::Error>> + Send {
        async move {
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
            let mut created = Self::books(conn, statement).await?;
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
        async move {
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
            Ok(Self::books(conn, statement).await?.pop())
        }
    }

    /// Deletes book `id` at version `version`; whether a row went.
    fn delete_book(
        conn: &mut Self::Connection,
        id: i64,
        version: i64,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send {
        async move {
            let mut statement = Statement::new("DELETE FROM books WHERE id = ");
            statement
                .bind(Arg::Int(id))
                .push(" AND version = ")
                .bind(Arg::Int(version));
            Ok(Self::changed(conn, statement.push(" RETURNING id").clone()).await? == 1)
        }
    }

    /// A page of a listing and its count; `listing.rs` says which statements answer it.
    fn list_books(
        pool: &Pool<Self>,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Page, sqlx::Error>> + Send {
        async move { Self::answer_listing(pool, query, None).await }
    }

    /// The plans of the statements that answer a listing, in the order they run (what the
    /// tests that hold every listing to an index read).
    fn listing_plans(
        pool: &Pool<Self>,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Vec<Vec<String>>, sqlx::Error>> + Send {
        async move {
            let mut plans = Vec::new();
            Self::answer_listing(pool, query, Some(&mut plans)).await?;
            Ok(plans)
        }
    }

    fn answer_listing(
        pool: &Pool<Self>,
        query: &ListQuery,
        mut plans: Option<&mut Vec<Vec<String>>>,
    ) -> impl Future<Output = Result<Page, sqlx::Error>> + Send {
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
                        let (in_range, in_set) = Self::numbers(pool, st).await?;
                        listing.counted(in_range, in_set)
                    }
                    Step::Page(st) => listing.paged(Self::page(pool, st).await?),
                    Step::Total(st) => listing.totalled(Self::number(pool, st).await?),
                    Step::Done(page) => return Ok(page),
                };
            }
        }
    }

    /// The number of books, from the counts the database keeps.
    fn count_books(pool: &Pool<Self>) -> impl Future<Output = Result<i64, sqlx::Error>> + Send {
        async move {
            let statement = Statement::new(
                "SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM genre_counts WHERE genre_key = ''",
            );
            Self::number(pool, statement).await
        }
    }

    /// The key's row, if it was used at or after `fresh_after` (unix seconds).
    fn select_key(
        conn: &mut Self::Connection,
        key: &IdempotencyKey,
        fresh_after: i64,
    ) -> impl Future<Output = Result<Option<KeyRow>, sqlx::Error>> + Send {
        async move {
            sqlx::query_as(
                "SELECT fingerprint, book_id, version, response FROM idempotency_keys \
                 WHERE scope = $1 AND key = $2 AND created_at >= $3",
            )
            .bind(Arg::Text(key.scope().to_owned()))
            .bind(Arg::Text(key.key().to_owned()))
            .bind(Arg::Int(fresh_after))
            .fetch_optional(conn)
            .await
        }
    }

    /// Records the answer to a create under its key (replacing an expired use of the key).
    fn insert_key(
        conn: &mut Self::Connection,
        key: &IdempotencyKey,
        fingerprint: &str,
        book: &StoredBook,
        at: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        async move {
            let response = String::from_utf8(book.json().to_vec()).expect("serde_json writes UTF-8");
            let mut statement = Statement::new(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, book_id, version, response, created_at) VALUES (",
            );
            for (i, value) in [
                Arg::Text(key.scope().to_owned()),
                Arg::Text(key.key().to_owned()),
                Arg::Text(fingerprint.to_owned()),
                Arg::Int(book.id),
                Arg::Int(book.version),
                Arg::Text(response),
                Arg::Int(at),
            ]
            .into_iter()
            .enumerate()
            {
                statement.push(if i == 0 { "" } else { ", " }).bind(value);
            }
            statement.push(
                ") ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
                 book_id = excluded.book_id, version = excluded.version, response = excluded.response, \
                 created_at = excluded.created_at",
            );
            Self::execute(conn, statement).await
        }
    }

    /// Forgets keys used before `before` (unix seconds); returns how many.
    fn purge_keys<'e, E>(executor: E, before: i64) -> impl Future<Output = Result<u64, sqlx::Error>> + Send
    where
        E: Executor<'e, Database = Self> + 'e,
    {
        async move {
            let mut statement = Statement::new("DELETE FROM idempotency_keys WHERE created_at < ");
            statement.bind(Arg::Int(before)).push(" RETURNING created_at");
            Self::changed(executor, statement).await
        }
    }
}

/// A book's fields as bound values, in the column order of [`Sql::insert_books`] and
/// [`Sql::update_book`], with `stamps` (the placeholders of the times) after the genre.
fn push_book(statement: &mut Statement, book: &NewBook, stamps: &str) {
    let genre = book.genre.as_ref().map(|g| g.as_str().to_owned());
    statement
        .bind(Arg::Text(book.title.as_str().to_owned()))
        .push(", ")
        .bind(Arg::Text(book.author.as_str().to_owned()))
        .push(", ")
        .bind(Arg::Year(book.year.get_i32()))
        .push(", ")
        .bind(Arg::OptionalText(genre.clone()))
        .push(&format!(", {stamps}, "))
        .bind(Arg::Text(crate::domain::fold_case(book.title.as_str())))
        .push(", ")
        .bind(Arg::Text(crate::domain::fold_case(book.author.as_str())))
        .push(", ")
        .bind(Arg::OptionalText(genre.as_deref().map(crate::domain::fold_case)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_taken_literally() {
        assert_eq!(escape_like("100%_done\\"), "100\\%\\_done\\\\");
        assert_eq!(escape_like("dune"), "dune");
    }

    #[test]
    fn placeholders_are_numbered_in_the_order_values_are_bound() {
        let mut statement = Statement::new("SELECT ");
        statement.bind(Arg::Int(1)).push(", ").bind(Arg::Text("a".into()));
        let n = statement.arg(Arg::Bool(true));
        assert_eq!((statement.sql.as_str(), n), ("SELECT $1, $2", 3));
    }
}
