//! The SQL of the SQLite engine: one small function per statement.

use std::borrow::Cow;

use sqlx::{Executor, QueryBuilder, SqliteConnection, SqlitePool};

use super::search::{Entry, Index, sortable_timestamp};
use crate::domain::{Book, IdempotencyKey, NewBook, fold_case};
use crate::store::stored::{BookRef, StoredBook};
use crate::store::unix_now;

/// The columns of a [`Book`], as a macro so that `concat!` can build each query at compile time.
macro_rules! columns {
    () => {
        "id, title, author, year, genre, created_at, updated_at, version"
    };
}

pub async fn select(pool: &SqlitePool, id: i64) -> Result<Option<Book>, sqlx::Error> {
    let sql = concat!("SELECT ", columns!(), " FROM books WHERE id = ?");
    sqlx::query_as(sql).bind(id).fetch_optional(pool).await
}

/// The given books, in the given order (ids that no longer exist are left out).
pub async fn select_many(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<Book>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = QueryBuilder::new(concat!("SELECT ", columns!(), " FROM books WHERE id IN ("));
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    sql.push(")");
    let mut found: Vec<Book> = sql.build_query_as().fetch_all(pool).await?;
    found.sort_by_key(|book| ids.iter().position(|id| *id == book.id));
    Ok(found)
}

/// Ids covered by one query while loading the index.
const LOAD_CHUNK: i64 = 8192;

/// The search index of every book, in id order.
///
/// Rows are read in chunks of ids, each chunk as one JSON array that SQLite builds: handing
/// a million rows over one at a time costs far more than SQLite's work of reading them, and
/// a JSON array carries any text safely. One connection reads the next chunk while this
/// task indexes the last. (The writer loads the index before it takes any write, so the
/// chunks need no common snapshot.)
pub async fn load_index(pool: &SqlitePool) -> Result<Index, sqlx::Error> {
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM books")
        .fetch_one(pool)
        .await?;
    let (chunks, mut received) = tokio::sync::mpsc::channel::<Result<String, sqlx::Error>>(2);
    let reader = pool.clone();
    tokio::spawn(async move {
        let mut conn = match reader.acquire().await {
            Ok(conn) => conn,
            Err(error) => {
                let _ = chunks.send(Err(error)).await;
                return;
            }
        };
        let mut from = 0;
        while from < newest.unwrap_or(0) {
            let chunk = sqlx::query_scalar(
                "SELECT json_group_array(json_array(id, title_key, author_key, genre_key, year, created_at)) \
                 FROM (SELECT id, title_key, author_key, genre_key, year, created_at FROM books \
                       WHERE id > ? AND id <= ? ORDER BY id)",
            )
            .bind(from)
            .bind(from + LOAD_CHUNK)
            .fetch_one(&mut *conn)
            .await;
            if chunks.send(chunk).await.is_err() {
                return;
            }
            from += LOAD_CHUNK;
        }
    });
    let mut index = Index::default();
    while let Some(chunk) = received.recv().await {
        let chunk = chunk?;
        let rows: Vec<LoadRow<'_>> =
            serde_json::from_str(&chunk).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        for row in rows {
            index.push(&Entry {
                id: row.0,
                title_key: row.1,
                author_key: row.2,
                genre_key: row.3,
                year: row.4,
                created: sortable_timestamp(&row.5),
            });
        }
    }
    Ok(index)
}

/// One book as the index loader reads it (text borrowed from the chunk where it can be).
#[derive(serde::Deserialize)]
struct LoadRow<'a>(
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    i64,
    #[serde(borrow)] Cow<'a, str>,
);

pub async fn count(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM books")
        .fetch_one(pool)
        .await
}

/// Inserts several books with one statement and returns them in the order given.
///
/// Writing many rows per statement is what lets a batch of creates cost one round trip to
/// SQLite instead of one each. Callers keep the number of rows to a few sizes (see the
/// writer), so that each size's statement is prepared once and then reused.
pub async fn insert_many<'a>(
    conn: &mut SqliteConnection,
    new: &'a [NewBook],
    now: &'a str,
) -> Result<Vec<Book>, sqlx::Error> {
    let mut sql = QueryBuilder::new(
        "INSERT INTO books (title, author, year, genre, created_at, updated_at, title_key, author_key, genre_key) ",
    );
    sql.push_values(new, |mut row, book| {
        row.push_bind(book.title.as_str())
            .push_bind(book.author.as_str())
            .push_bind(book.year.get())
            .push_bind(book.genre.as_ref().map(|g| g.as_str()))
            .push_bind(now)
            .push_bind(now)
            .push_bind(fold_case(book.title.as_str()))
            .push_bind(fold_case(book.author.as_str()))
            .push_bind(book.genre.as_ref().map(|g| fold_case(g.as_str())));
    });
    sql.push(concat!(" RETURNING ", columns!()));
    let mut created: Vec<Book> = sql.build_query_as().fetch_all(conn).await?;
    // RETURNING gives rows in no promised order; ids are assigned in VALUES order.
    created.sort_unstable_by_key(|book| book.id);
    Ok(created)
}

pub async fn update(
    conn: &mut SqliteConnection,
    id: i64,
    book: &NewBook,
    now: &str,
) -> Result<Book, sqlx::Error> {
    let sql = concat!(
        "UPDATE books SET title = ?, author = ?, year = ?, genre = ?, updated_at = ?, \
         title_key = ?, author_key = ?, genre_key = ?, version = version + 1 \
         WHERE id = ? RETURNING ",
        columns!()
    );
    sqlx::query_as(sql)
        .bind(book.title.as_str())
        .bind(book.author.as_str())
        .bind(book.year.get())
        .bind(book.genre.as_ref().map(|g| g.as_str()))
        .bind(now)
        .bind(fold_case(book.title.as_str()))
        .bind(fold_case(book.author.as_str()))
        .bind(book.genre.as_ref().map(|g| fold_case(g.as_str())))
        .bind(id)
        .fetch_one(conn)
        .await
}

pub async fn delete(conn: &mut SqliteConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM books WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await
        .map(drop)
}

/// The row a change starts from, read inside the writer's transaction.
pub async fn select_for_change(conn: &mut SqliteConnection, id: i64) -> Result<Option<Book>, sqlx::Error> {
    let sql = concat!("SELECT ", columns!(), " FROM books WHERE id = ?");
    sqlx::query_as(sql).bind(id).fetch_optional(conn).await
}

/// Runs one statement that returns nothing (transaction control).
pub async fn execute(conn: &mut SqliteConnection, statement: &str) -> Result<(), sqlx::Error> {
    conn.execute(statement).await.map(drop)
}

/// A one-row write that proves a commit can succeed (the writer's health check).
pub async fn probe(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    execute(conn, "BEGIN IMMEDIATE").await?;
    let written = sqlx::query("INSERT OR REPLACE INTO writer_probe (id, at) VALUES (1, ?)")
        .bind(unix_now())
        .execute(&mut *conn)
        .await;
    match written {
        Ok(_) => execute(conn, "COMMIT").await,
        Err(error) => {
            let _ = execute(conn, "ROLLBACK").await;
            Err(error)
        }
    }
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

/// The key's row, if it was used at or after `fresh_after` (unix seconds).
pub async fn select_key(
    conn: &mut SqliteConnection,
    key: &IdempotencyKey,
    fresh_after: i64,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fingerprint, book_id, version, response FROM idempotency_keys \
         WHERE scope = ? AND key = ? AND created_at >= ?",
    )
    .bind(key.scope())
    .bind(key.key())
    .bind(fresh_after)
    .fetch_optional(conn)
    .await
}

/// Records the answer to a create under its key (replacing an expired use of the key).
pub async fn insert_key(
    conn: &mut SqliteConnection,
    key: &IdempotencyKey,
    fingerprint: &str,
    book: &StoredBook,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO idempotency_keys \
         (scope, key, fingerprint, book_id, version, response, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key.scope())
    .bind(key.key())
    .bind(fingerprint)
    .bind(book.id)
    .bind(book.version)
    .bind(std::str::from_utf8(&book.json()).unwrap_or_default())
    .bind(at)
    .execute(conn)
    .await
    .map(drop)
}

/// Forgets keys used before `before` (unix seconds); returns how many.
pub async fn purge_keys(conn: &mut SqliteConnection, before: i64) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
        .bind(before)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
}

/// Listings in SQL: the reference the search index is tested against (the index answers
/// every listing in production).
#[cfg(test)]
pub mod reference {
    use sqlx::{QueryBuilder, Sqlite, SqlitePool};

    use crate::domain::{After, ListQuery, SortKey, SortValue, fold_case};
    use crate::store::stored::Page;

    pub async fn select_page(
        pool: &SqlitePool,
        query: &ListQuery,
        total: Option<i64>,
    ) -> Result<Page, sqlx::Error> {
        let mut select = QueryBuilder::new(concat!("SELECT ", columns!(), " FROM books"));
        push_filters(&mut select, query);
        let direction = if query.descending { "DESC" } else { "ASC" };
        let column = match query.sort {
            SortKey::Id => None,
            SortKey::Title => Some("title_key"),
            SortKey::Author => Some("author_key"),
            SortKey::Year => Some("year"),
            SortKey::CreatedAt => Some("created_at"),
        };
        if let Some(after) = &query.after {
            select.push(if query.is_unfiltered() { " WHERE " } else { " AND " });
            let beyond = if query.descending { "<" } else { ">" };
            match (column, &after.value) {
                (Some(column), SortValue::Text(text)) => {
                    select.push(format_args!("({column}, id) {beyond} ("));
                    select.push_bind(text.clone()).push(", ");
                }
                (Some("created_at"), SortValue::Number(seconds)) => {
                    let stamp = time::OffsetDateTime::from_unix_timestamp(*seconds)
                        .ok()
                        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                        .unwrap_or_default();
                    select.push(format_args!("(created_at, id) {beyond} ("));
                    select.push_bind(stamp).push(", ");
                }
                (Some(column), SortValue::Number(n)) => {
                    select.push(format_args!("({column}, id) {beyond} ("));
                    select.push_bind(*n).push(", ");
                }
                _ => {
                    select.push(format_args!("(id) {beyond} ("));
                }
            }
            select.push_bind(after.id).push(")");
        }
        select.push(" ORDER BY ");
        if let Some(column) = column {
            select.push(format_args!("{column} {direction}, "));
        }
        select.push(format_args!("id {direction} LIMIT "));
        select.push_bind(query.limit);
        select.push(" OFFSET ");
        select.push_bind(query.offset);
        let books = select.build_query_as().fetch_all(pool).await?;

        let total = match total {
            Some(total) => total,
            None => {
                let mut count = QueryBuilder::new("SELECT count(*) FROM books");
                push_filters(&mut count, query);
                count.build_query_scalar().fetch_one(pool).await?
            }
        };
        let last = books.last().map(|book| After::of(book, query.sort));
        Ok(Page::of_books(&books, total).ending_at(last))
    }

    fn push_filters(sql: &mut QueryBuilder<'_, Sqlite>, query: &ListQuery) {
        let mut clause = Clause::new();
        if let Some(q) = &query.q {
            let needle = fold_case(q);
            clause.next(sql).push("(instr(title_key, ");
            sql.push_bind(needle.clone()).push(") > 0 OR instr(author_key, ");
            sql.push_bind(needle).push(") > 0)");
        }
        if let Some(author) = &query.author {
            clause.next(sql).push("author_key = ");
            sql.push_bind(fold_case(author));
        }
        if let Some(genre) = &query.genre {
            clause.next(sql).push("genre_key = ");
            sql.push_bind(fold_case(genre));
        }
        if let Some(from) = query.year_from {
            clause.next(sql).push("year >= ");
            sql.push_bind(from);
        }
        if let Some(to) = query.year_to {
            clause.next(sql).push("year <= ");
            sql.push_bind(to);
        }
    }

    /// Writes `WHERE` before the first condition and `AND` before the others.
    struct Clause(bool);

    impl Clause {
        fn new() -> Self {
            Self(false)
        }

        fn next<'a, 'q>(
            &mut self,
            sql: &'a mut QueryBuilder<'q, Sqlite>,
        ) -> &'a mut QueryBuilder<'q, Sqlite> {
            sql.push(if self.0 { " AND " } else { " WHERE " });
            self.0 = true;
            sql
        }
    }
}
