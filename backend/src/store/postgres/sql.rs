//! The SQL of the PostgreSQL engine: one small function per statement.

use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::{Book, IdempotencyKey, ListQuery, NewBook, SortKey, SortValue, fold_case};
use crate::store::stored::{BookRef, StoredBook};

/// The columns of a [`Row`].
macro_rules! columns {
    () => {
        "id, title, author, year, genre, created_at, updated_at, version"
    };
}

/// A book as PostgreSQL stores it.
#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    title: String,
    author: String,
    year: i32,
    genre: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
}

impl From<Row> for Book {
    /// With the timestamps in the form the API returns (and the SQLite engine stores): RFC
    /// 3339, UTC, whole seconds. (Formatted here rather than by `to_char`, which costs the
    /// database a tenth of a primary-key lookup.)
    fn from(row: Row) -> Self {
        let stamp = |at: OffsetDateTime| {
            at.to_offset(time::UtcOffset::UTC)
                .replace_nanosecond(0)
                .expect("zero nanoseconds is a valid time")
                .format(&Rfc3339)
                .expect("a time PostgreSQL stores formats as RFC 3339")
        };
        Book {
            id: row.id,
            title: row.title,
            author: row.author,
            year: i64::from(row.year),
            genre: row.genre,
            created_at: stamp(row.created_at),
            updated_at: stamp(row.updated_at),
            version: row.version,
        }
    }
}

pub async fn select(pool: &PgPool, id: i64) -> Result<Option<Book>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(concat!("SELECT ", columns!(), " FROM books WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Book::from))
}

/// The row a change starts from, locked until the transaction ends: a second change to the
/// same book, from any replica, waits, then reads the version this one wrote.
pub async fn select_for_change(conn: &mut PgConnection, id: i64) -> Result<Option<Book>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM books WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Book::from))
}

/// A page of a listing, in the listing's order (ties broken by id).
pub async fn select_page(pool: &PgPool, query: &ListQuery) -> Result<Vec<Book>, sqlx::Error> {
    let rows: Vec<Row> = page_sql("", query).build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(Book::from).collect())
}

/// The plan PostgreSQL chooses for a page of a listing, as `EXPLAIN` prints it: a line per
/// node.
pub async fn page_plan(pool: &PgPool, query: &ListQuery) -> Result<Vec<String>, sqlx::Error> {
    page_sql("EXPLAIN ", query)
        .build_query_scalar()
        .fetch_all(pool)
        .await
}

/// The statement that reads a page, after `prefix`.
fn page_sql<'q>(prefix: &str, query: &'q ListQuery) -> QueryBuilder<'q, Postgres> {
    let mut select = QueryBuilder::new(format!(concat!("{}SELECT ", columns!(), " FROM books"), prefix));
    push_filters(&mut select, query);
    if let Some(after) = &query.after {
        // A row comparison, which the (key, id) indexes serve directly.
        select.push(if query.is_unfiltered() { " WHERE " } else { " AND " });
        let beyond = if query.descending { "<" } else { ">" };
        match (sort_column(query.sort), &after.value) {
            (Some(column), SortValue::Text(text)) => {
                select.push(format_args!("({column}, id) {beyond} ("));
                select.push_bind(text.clone());
            }
            (Some("created_at"), SortValue::Number(seconds)) => {
                select.push(format_args!("(created_at, id) {beyond} (to_timestamp("));
                select.push_bind(*seconds as f64);
                select.push(")");
            }
            (Some(column), SortValue::Number(n)) => {
                select.push(format_args!("({column}, id) {beyond} ("));
                select.push_bind(i32::try_from(*n).unwrap_or(if *n < 0 { i32::MIN } else { i32::MAX }));
            }
            // The id sort (a cursor is read for its own sort only).
            _ => {
                select.push(format_args!("(id) {beyond} ("));
            }
        }
        if query.sort != SortKey::Id {
            select.push(", ");
        }
        select.push_bind(after.id);
        select.push(")");
    }
    let direction = if query.descending { "DESC" } else { "ASC" };
    let column = sort_column(query.sort);
    select.push(" ORDER BY ");
    if let Some(column) = column {
        select.push(format_args!("{column} {direction}, "));
    }
    select.push(format_args!("id {direction} LIMIT "));
    select.push_bind(query.limit);
    select.push(" OFFSET ");
    select.push_bind(query.offset);
    select
}

/// The column a sort key orders by (ties, and the id sort, by `id`).
fn sort_column(sort: SortKey) -> Option<&'static str> {
    match sort {
        SortKey::Id => None,
        SortKey::Title => Some("title_key"),
        SortKey::Author => Some("author_key"),
        SortKey::Year => Some("year"),
        SortKey::CreatedAt => Some("created_at"),
    }
}

/// The number of books a listing matches, over all its pages.
pub async fn count(pool: &PgPool, query: &ListQuery) -> Result<i64, sqlx::Error> {
    let mut count = QueryBuilder::new("SELECT count(*) FROM books");
    push_filters(&mut count, query);
    count.build_query_scalar().fetch_one(pool).await
}

fn push_filters(sql: &mut QueryBuilder<'_, Postgres>, query: &ListQuery) {
    let mut first = true;
    let mut clause = |sql: &mut QueryBuilder<'_, Postgres>| {
        sql.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    if let Some(q) = &query.q {
        let pattern = format!("%{}%", escape_like(&fold_case(q)));
        clause(sql);
        sql.push("(title_key LIKE ");
        sql.push_bind(pattern.clone());
        sql.push(" OR author_key LIKE ");
        sql.push_bind(pattern);
        sql.push(")");
    }
    if let Some(author) = &query.author {
        clause(sql);
        sql.push("author_key = ");
        sql.push_bind(fold_case(author));
    }
    if let Some(genre) = &query.genre {
        clause(sql);
        sql.push("genre_key = ");
        sql.push_bind(fold_case(genre));
    }
    if let Some(from) = query.year_from {
        clause(sql);
        sql.push("year >= ");
        sql.push_bind(i32::try_from(from).unwrap_or(i32::MIN));
    }
    if let Some(to) = query.year_to {
        clause(sql);
        sql.push("year <= ");
        sql.push_bind(i32::try_from(to).unwrap_or(i32::MAX));
    }
}

/// `text` with LIKE's wildcards taken literally (the default escape character is `\`).
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

pub async fn insert(conn: &mut PgConnection, book: &NewBook, now: &str) -> Result<Book, sqlx::Error> {
    let row: Row = sqlx::query_as(concat!(
        "INSERT INTO books (title, author, year, genre, created_at, updated_at, title_key, author_key, genre_key) \
         VALUES ($1, $2, $3, $4, $5::timestamptz, $5::timestamptz, $6, $7, $8) RETURNING ",
        columns!()
    ))
    .bind(book.title.as_str())
    .bind(book.author.as_str())
    .bind(year(book))
    .bind(book.genre.as_ref().map(|g| g.as_str()))
    .bind(now)
    .bind(fold_case(book.title.as_str()))
    .bind(fold_case(book.author.as_str()))
    .bind(book.genre.as_ref().map(|g| fold_case(g.as_str())))
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// Replaces the fields of book `id`, but only at version `version` (read, and locked, in the
/// same transaction): the database, not any replica's memory, decides a conflict.
pub async fn update(
    conn: &mut PgConnection,
    id: i64,
    version: i64,
    book: &NewBook,
    now: &str,
) -> Result<Option<Book>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(concat!(
        "UPDATE books SET title = $1, author = $2, year = $3, genre = $4, updated_at = $5::timestamptz, \
         title_key = $6, author_key = $7, genre_key = $8, version = version + 1 \
         WHERE id = $9 AND version = $10 RETURNING ",
        columns!()
    ))
    .bind(book.title.as_str())
    .bind(book.author.as_str())
    .bind(year(book))
    .bind(book.genre.as_ref().map(|g| g.as_str()))
    .bind(now)
    .bind(fold_case(book.title.as_str()))
    .bind(fold_case(book.author.as_str()))
    .bind(book.genre.as_ref().map(|g| fold_case(g.as_str())))
    .bind(id)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Book::from))
}

/// Deletes book `id` at version `version`; whether a row went.
pub async fn delete(conn: &mut PgConnection, id: i64, version: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM books WHERE id = $1 AND version = $2")
        .bind(id)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

fn year(book: &NewBook) -> i32 {
    i32::try_from(book.year.get()).expect("a valid year (-5000 to 2100) fits an i32")
}

/// Takes the transaction-scoped advisory lock of an `Idempotency-Key`, if no other
/// transaction (on any replica) holds it: `false` means its first request is still running.
pub async fn try_lock_key(conn: &mut PgConnection, key: &IdempotencyKey) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1 || E'\\n' || $2, 0))")
        .bind(key.scope())
        .bind(key.key())
        .fetch_one(conn)
        .await
}

/// An `Idempotency-Key` used earlier, and the answer it got.
#[derive(sqlx::FromRow)]
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

/// The key's row, if it was used within its lifetime.
pub async fn select_key(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
    lifetime_secs: i64,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fingerprint, book_id, version, response FROM idempotency_keys \
         WHERE scope = $1 AND key = $2 AND created_at >= now() - make_interval(secs => $3)",
    )
    .bind(key.scope())
    .bind(key.key())
    .bind(lifetime_secs as f64)
    .fetch_optional(conn)
    .await
}

/// Records the answer to a create under its key (replacing an expired use of the key).
pub async fn insert_key(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
    fingerprint: &str,
    book: &StoredBook,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, book_id, version, response) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
         book_id = EXCLUDED.book_id, version = EXCLUDED.version, response = EXCLUDED.response, \
         created_at = now()",
    )
    .bind(key.scope())
    .bind(key.key())
    .bind(fingerprint)
    .bind(book.id)
    .bind(book.version)
    .bind(std::str::from_utf8(&book.json()).expect("serde_json writes UTF-8"))
    .execute(conn)
    .await
    .map(drop)
}

/// Forgets keys older than their lifetime; returns how many.
pub async fn purge_keys(pool: &PgPool, lifetime_secs: i64) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)")
        .bind(lifetime_secs as f64)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
}

/// Marks the database as created, if no replica has yet: `true` for the one that did.
pub async fn claim_creation(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let claimed: Option<String> = sqlx::query_scalar(
        "INSERT INTO bookstore_meta (key, value) VALUES ('created', now()::text) \
         ON CONFLICT (key) DO NOTHING RETURNING key",
    )
    .fetch_optional(pool)
    .await?;
    Ok(claimed.is_some())
}

pub async fn count_all(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM books")
        .fetch_one(pool)
        .await
}

/// Whether this server accepts writes (a standby in recovery does not).
pub async fn writable(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT NOT pg_is_in_recovery()")
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_taken_literally() {
        assert_eq!(escape_like("100%_done\\"), "100\\%\\_done\\\\");
        assert_eq!(escape_like("dune"), "dune");
    }
}
