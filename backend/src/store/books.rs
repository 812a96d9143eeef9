//! The SQL for books: one small function per operation.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Store;
use crate::domain::{Book, FieldError, ListQuery, NewBook, SortKey, fold_case};
use crate::error::{Error, Result};

/// The columns of a [`Book`], as a macro so that `concat!` can build each query at compile time.
macro_rules! columns {
    () => {
        "id, title, author, year, genre, created_at, updated_at, version"
    };
}

/// Searches shorter than this cannot use the trigram index (see the migration).
const TRIGRAM: usize = 3;

/// A page of a listing and the number of books matching it in all.
pub struct Page {
    pub books: Vec<Book>,
    pub total: i64,
}

impl Store {
    pub async fn get_book(&self, id: i64) -> Result<Option<Book>> {
        let sql = concat!("SELECT ", columns!(), " FROM books WHERE id = ?");
        Ok(sqlx::query_as(sql).bind(id).fetch_optional(self.read()).await?)
    }

    pub async fn list_books(&self, query: &ListQuery) -> Result<Page> {
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
        select.push(" ORDER BY ");
        if let Some(column) = column {
            select.push(format_args!("{column} {direction}, "));
        }
        select.push(format_args!("id {direction} LIMIT "));
        select.push_bind(query.limit);
        select.push(" OFFSET ");
        select.push_bind(query.offset);
        let books = select.build_query_as().fetch_all(self.read()).await?;

        let total = if query.is_unfiltered() {
            self.book_count()
        } else {
            let mut count = QueryBuilder::new("SELECT count(*) FROM books");
            push_filters(&mut count, query);
            count.build_query_scalar().fetch_one(self.read()).await?
        };
        Ok(Page { books, total })
    }

    pub async fn create_book(&self, book: &NewBook) -> Result<Book> {
        let now = now();
        let sql = concat!(
            "INSERT INTO books (title, author, year, genre, created_at, updated_at, \
             title_key, author_key, genre_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            columns!()
        );
        let created = bind_fields(sqlx::query_as(sql), book, &now)
            .fetch_one(self.write())
            .await?;
        self.count_changed(1);
        Ok(created)
    }

    /// Replaces a book with `change(current)`, but only if its version is one of
    /// `expected` (when given): the read, the check and the write happen in one transaction
    /// on the single writer connection, so no other write can slip in between.
    pub async fn update_book(
        &self,
        id: i64,
        expected: Option<&[i64]>,
        change: impl FnOnce(&Book) -> Result<NewBook, Vec<FieldError>>,
    ) -> Result<Book> {
        let mut tx = self.write().begin().await?;
        let current = current_version(&mut tx, id, expected).await?;
        let next = change(&current).map_err(Error::invalid_fields)?;
        let sql = concat!(
            "UPDATE books SET title = ?, author = ?, year = ?, genre = ?, updated_at = ?, \
             title_key = ?, author_key = ?, genre_key = ?, version = version + 1 \
             WHERE id = ? RETURNING ",
            columns!()
        );
        let now = now();
        let updated = sqlx::query_as(sql)
            .bind(next.title.as_str())
            .bind(next.author.as_str())
            .bind(next.year.get())
            .bind(next.genre.as_ref().map(|g| g.as_str()))
            .bind(&now)
            .bind(fold_case(next.title.as_str()))
            .bind(fold_case(next.author.as_str()))
            .bind(next.genre.as_ref().map(|g| fold_case(g.as_str())))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Deletes a book, if its version is one of `expected` (when given).
    pub async fn delete_book(&self, id: i64, expected: Option<&[i64]>) -> Result<()> {
        let mut tx = self.write().begin().await?;
        current_version(&mut tx, id, expected).await?;
        sqlx::query("DELETE FROM books WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.count_changed(-1);
        Ok(())
    }
}

/// The current row, or 404, or 412 if its version is not one the client expected.
async fn current_version(conn: &mut SqliteConnection, id: i64, expected: Option<&[i64]>) -> Result<Book> {
    let sql = concat!("SELECT ", columns!(), " FROM books WHERE id = ?");
    let current: Book = sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| not_found(id))?;
    match expected {
        Some(versions) if !versions.contains(&current.version) => Err(Error::PreconditionFailed),
        _ => Ok(current),
    }
}

pub fn not_found(id: i64) -> Error {
    Error::NotFound(format!("there is no book with id {id}"))
}

fn bind_fields<'q, O>(
    query: sqlx::query::QueryAs<'q, Sqlite, O, sqlx::sqlite::SqliteArguments<'q>>,
    book: &'q NewBook,
    now: &str,
) -> sqlx::query::QueryAs<'q, Sqlite, O, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(book.title.as_str())
        .bind(book.author.as_str())
        .bind(book.year.get())
        .bind(book.genre.as_ref().map(|g| g.as_str()))
        .bind(now.to_owned())
        .bind(now.to_owned())
        .bind(fold_case(book.title.as_str()))
        .bind(fold_case(book.author.as_str()))
        .bind(book.genre.as_ref().map(|g| fold_case(g.as_str())))
}

fn push_filters(sql: &mut QueryBuilder<'_, Sqlite>, query: &ListQuery) {
    let mut clause = Clause::new();
    if let Some(q) = &query.q {
        let needle = fold_case(q);
        // FTS5 reads its query up to a NUL byte, so such a needle takes the scan.
        if needle.chars().count() >= TRIGRAM && !needle.contains('\0') {
            clause
                .next(sql)
                .push("id IN (SELECT rowid FROM books_search WHERE books_search MATCH ");
            sql.push_bind(format!("\"{}\"", needle.replace('"', "\"\"")))
                .push(")");
        } else {
            clause.next(sql).push("(instr(title_key, ");
            sql.push_bind(needle.clone()).push(") > 0 OR instr(author_key, ");
            sql.push_bind(needle).push(") > 0)");
        }
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

    fn next<'a, 'q>(&mut self, sql: &'a mut QueryBuilder<'q, Sqlite>) -> &'a mut QueryBuilder<'q, Sqlite> {
        sql.push(if self.0 { " AND " } else { " WHERE " });
        self.0 = true;
        sql
    }
}

/// The current time as stored and returned: RFC 3339, UTC, whole seconds.
fn now() -> String {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    now.format(&Rfc3339).unwrap_or_default()
}
