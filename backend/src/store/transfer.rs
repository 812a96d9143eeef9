//! `bookstore copy-database`: every book from one database to another, either engine to
//! either engine, keeping ids, versions and timestamps, so that a deployment can move from
//! SQLite to PostgreSQL (or back) by copying its data and changing `DATABASE_URL`.
//!
//! The copy reads the source in one read transaction (a consistent snapshot, even while a
//! server keeps writing to it), writes the target in batches, and carries over the highest id
//! ever assigned, so an id deleted before the move is not handed out again after it. A target
//! that already holds books is refused unless `overwrite` is set.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Executor, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};

use super::sql::{Arg, Engine, Sql, Statement, book_columns};
use crate::domain::{Book, Timestamp, fold_case};

/// Books read and written per batch.
const BATCH: i64 = 1000;

/// What a copy did.
#[derive(Debug, PartialEq, Eq)]
pub struct Copied {
    pub books: i64,
    /// The highest id ever assigned, now the target's too.
    pub id_floor: i64,
}

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target already holds {0} books; pass --overwrite to replace them")]
    TargetNotEmpty(i64),
    #[error("the source and the target are the same database")]
    SameDatabase,
    #[error("{0}")]
    Database(#[from] sqlx::Error),
}

/// One side of a copy, migrated to this build's schema.
enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

pub async fn copy(from: &str, to: &str, overwrite: bool) -> Result<Copied, CopyError> {
    if from == to {
        return Err(CopyError::SameDatabase);
    }
    let source = Database::open(from, false).await?;
    let target = Database::open(to, true).await?;
    let existing = target.count().await?;
    if existing > 0 && !overwrite {
        return Err(CopyError::TargetNotEmpty(existing));
    }
    let copied = match (&source, &target) {
        (Database::Sqlite(s), Database::Sqlite(t)) => {
            let (mut s, mut t) = (s.acquire().await?, t.acquire().await?);
            copy_between(&mut *s, &mut *t, overwrite).await?
        }
        (Database::Sqlite(s), Database::Postgres(t)) => {
            let (mut s, mut t) = (s.acquire().await?, t.acquire().await?);
            copy_between(&mut *s, &mut *t, overwrite).await?
        }
        (Database::Postgres(s), Database::Sqlite(t)) => {
            let (mut s, mut t) = (s.acquire().await?, t.acquire().await?);
            copy_between(&mut *s, &mut *t, overwrite).await?
        }
        (Database::Postgres(s), Database::Postgres(t)) => {
            let (mut s, mut t) = (s.acquire().await?, t.acquire().await?);
            copy_between(&mut *s, &mut *t, overwrite).await?
        }
    };
    source.close().await;
    target.close().await;
    Ok(copied)
}

async fn copy_between(
    source: &mut impl Side,
    target: &mut impl Side,
    overwrite: bool,
) -> Result<Copied, sqlx::Error> {
    source.begin_snapshot().await?;
    target.begin_write().await?;
    if overwrite {
        target.clear().await?;
    }
    let mut books = 0;
    let mut after = 0;
    loop {
        let batch = source.read_after(after, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        target.write(&batch).await?;
        books += batch.len() as i64;
    }
    let id_floor = source.id_floor().await?;
    target.raise_id_floor(id_floor).await?;
    target.mark_created().await?;
    let written = target.count().await?;
    if written != books {
        return Err(sqlx::Error::Protocol(format!(
            "copied {books} books, but the target holds {written}"
        )));
    }
    target.commit().await?;
    source.commit().await?;
    Ok(Copied { books, id_floor })
}

impl Database {
    /// Opens the database at `url` and applies this build's migrations to it (a source made by
    /// an older build is read in the current schema). A SQLite source must exist.
    async fn open(url: &str, create: bool) -> Result<Self, sqlx::Error> {
        match Engine::of(url) {
            Some(Engine::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(create)
                    .busy_timeout(std::time::Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await?;
                sqlx::migrate!("./migrations").run(&pool).await?;
                Ok(Self::Sqlite(pool))
            }
            Some(Engine::Postgres) => {
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(PgConnectOptions::from_str(url)?)
                    .await?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                Ok(Self::Postgres(pool))
            }
            None => Err(sqlx::Error::Configuration(
                format!("not a sqlite:// or postgres:// URL: {url}").into(),
            )),
        }
    }

    async fn count(&self) -> Result<i64, sqlx::Error> {
        match self {
            Self::Sqlite(pool) => Sqlite::count_books(pool).await,
            Self::Postgres(pool) => Postgres::count_books(pool).await,
        }
    }

    async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// What a copy does with one side: the engines differ in how they take a snapshot or keep
/// other writers out, and in how they remember the highest id ever assigned.
trait Side {
    async fn begin_snapshot(&mut self) -> Result<(), sqlx::Error>;
    async fn begin_write(&mut self) -> Result<(), sqlx::Error>;
    async fn commit(&mut self) -> Result<(), sqlx::Error>;
    async fn read_after(&mut self, after: i64, limit: i64) -> Result<Vec<Book>, sqlx::Error>;
    async fn clear(&mut self) -> Result<(), sqlx::Error>;
    async fn write(&mut self, books: &[Book]) -> Result<(), sqlx::Error>;
    async fn count(&mut self) -> Result<i64, sqlx::Error>;
    /// The highest id ever assigned (deleted ones included).
    async fn id_floor(&mut self) -> Result<i64, sqlx::Error>;
    /// Makes sure new ids start above `floor`.
    async fn raise_id_floor(&mut self, floor: i64) -> Result<(), sqlx::Error>;
    /// Records that the database is not brand new, so no server seeds sample books into it.
    async fn mark_created(&mut self) -> Result<(), sqlx::Error>;
}

/// The statements both engines share: books by id, and books written with their ids.
fn read_after(after: i64, limit: i64) -> Statement {
    let mut statement = Statement::new(concat!("SELECT ", book_columns!(), " FROM books WHERE id > "));
    statement
        .bind(Arg::Int(after))
        .push(" ORDER BY id LIMIT ")
        .bind(Arg::Int(limit));
    statement
}

fn write(books: &[Book]) -> Statement {
    let mut statement = Statement::new(
        "INSERT INTO books (id, title, author, year, genre, created_at, updated_at, version, \
         title_key, author_key, genre_key) VALUES ",
    );
    for (i, book) in books.iter().enumerate() {
        statement.push(if i == 0 { "(" } else { ", (" });
        let values = [
            Arg::Int(book.id),
            Arg::Text(book.title.clone()),
            Arg::Text(book.author.clone()),
            Arg::Year(i32::try_from(book.year).unwrap_or(i32::MAX)),
            Arg::OptionalText(book.genre.clone()),
            Arg::Time(Timestamp::from_stored(book.created_at.clone())),
            Arg::Time(Timestamp::from_stored(book.updated_at.clone())),
            Arg::Int(book.version),
            Arg::Text(fold_case(&book.title)),
            Arg::Text(fold_case(&book.author)),
            Arg::OptionalText(book.genre.as_deref().map(fold_case)),
        ];
        for (j, value) in values.into_iter().enumerate() {
            statement.push(if j == 0 { "" } else { ", " }).bind(value);
        }
        statement.push(")");
    }
    statement
}

const COUNT: &str = "SELECT count(*) FROM books";

impl Side for SqliteConnection {
    async fn begin_snapshot(&mut self) -> Result<(), sqlx::Error> {
        self.execute("BEGIN").await.map(drop)
    }

    async fn begin_write(&mut self) -> Result<(), sqlx::Error> {
        self.execute("BEGIN IMMEDIATE").await.map(drop)
    }

    async fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.execute("COMMIT").await.map(drop)
    }

    async fn read_after(&mut self, after: i64, limit: i64) -> Result<Vec<Book>, sqlx::Error> {
        Sqlite::books(self, read_after(after, limit)).await
    }

    async fn clear(&mut self) -> Result<(), sqlx::Error> {
        self.execute("DELETE FROM books").await.map(drop)
    }

    async fn write(&mut self, books: &[Book]) -> Result<(), sqlx::Error> {
        Sqlite::execute(self, write(books)).await.map(drop)
    }

    async fn count(&mut self) -> Result<i64, sqlx::Error> {
        Sqlite::number(self, Statement::new(COUNT)).await
    }

    async fn id_floor(&mut self) -> Result<i64, sqlx::Error> {
        let statement = Statement::new(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'books'), 0), \
                        coalesce((SELECT max(id) FROM books), 0))",
        );
        Sqlite::number(self, statement).await
    }

    async fn raise_id_floor(&mut self, floor: i64) -> Result<(), sqlx::Error> {
        // AUTOINCREMENT keeps its high-water mark in sqlite_sequence (a row for `books` exists
        // once any book has been inserted).
        let current = self.id_floor().await?;
        if floor > current {
            self.execute("DELETE FROM sqlite_sequence WHERE name = 'books'")
                .await?;
            let mut statement = Statement::new("INSERT INTO sqlite_sequence (name, seq) VALUES ('books', ");
            statement.bind(Arg::Int(floor)).push(")");
            Sqlite::execute(self, statement).await?;
        }
        Ok(())
    }

    async fn mark_created(&mut self) -> Result<(), sqlx::Error> {
        // A SQLite database is brand new only until it is first migrated, which opening it did.
        Ok(())
    }
}

impl Side for PgConnection {
    async fn begin_snapshot(&mut self) -> Result<(), sqlx::Error> {
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map(drop)
    }

    async fn begin_write(&mut self) -> Result<(), sqlx::Error> {
        self.execute("BEGIN").await?;
        // No server may write while the copy runs in this transaction, and the copy may take
        // longer than a request's statement time limit.
        self.execute("SET LOCAL statement_timeout = 0").await?;
        self.execute("LOCK TABLE books IN EXCLUSIVE MODE").await.map(drop)
    }

    async fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.execute("COMMIT").await.map(drop)
    }

    async fn read_after(&mut self, after: i64, limit: i64) -> Result<Vec<Book>, sqlx::Error> {
        Postgres::books(self, read_after(after, limit)).await
    }

    async fn clear(&mut self) -> Result<(), sqlx::Error> {
        self.execute("DELETE FROM books").await.map(drop)
    }

    async fn write(&mut self, books: &[Book]) -> Result<(), sqlx::Error> {
        Postgres::execute(self, write(books)).await.map(drop)
    }

    async fn count(&mut self) -> Result<i64, sqlx::Error> {
        Postgres::number(self, Statement::new(COUNT)).await
    }

    async fn id_floor(&mut self) -> Result<i64, sqlx::Error> {
        let statement = Statement::new(
            "SELECT greatest(\
                coalesce(pg_sequence_last_value(pg_get_serial_sequence('books', 'id')::regclass), 0), \
                (SELECT coalesce(max(id), 0) FROM books))",
        );
        Postgres::number(self, statement).await
    }

    async fn raise_id_floor(&mut self, floor: i64) -> Result<(), sqlx::Error> {
        let floor = floor.max(self.id_floor().await?);
        if floor > 0 {
            let mut statement = Statement::new("SELECT setval(pg_get_serial_sequence('books', 'id'), ");
            statement.bind(Arg::Int(floor)).push(", true)");
            Postgres::number(self, statement).await?;
        }
        Ok(())
    }

    async fn mark_created(&mut self) -> Result<(), sqlx::Error> {
        self.execute(
            "INSERT INTO bookstore_meta (key, value) VALUES ('created', now()::text) ON CONFLICT (key) DO NOTHING",
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::Deadline;
    use crate::domain::{Author, NewBook, Precondition, Title, Year};
    use crate::store::{Durability, StoreConfig};

    fn config(url: &str) -> StoreConfig {
        StoreConfig {
            database_url: url.to_owned(),
            durability: Durability::Normal,
            max_connections: 2,
        }
    }

    #[tokio::test]
    async fn sqlite_to_sqlite_keeps_ids_versions_and_the_id_floor() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (
            format!("sqlite://{}", dir.path().join("a.db").display()),
            format!("sqlite://{}", dir.path().join("b.db").display()),
        );
        let store = crate::store::open(&config(&from)).await.unwrap().store;
        for title in ["One", "Two", "Three"] {
            let book = NewBook {
                title: Title::parse(title).unwrap(),
                author: Author::parse("A").unwrap(),
                year: Year::new(2000).unwrap(),
                genre: None,
            };
            store.create_book(book, None, &Deadline::none()).await.unwrap();
        }
        store
            .delete_book(3, Precondition::default(), &Deadline::none())
            .await
            .unwrap();
        store.close().await;

        let copied = copy(&from, &to, false).await.unwrap();
        assert_eq!(
            copied,
            Copied {
                books: 2,
                id_floor: 3
            }
        );
        assert!(matches!(
            copy(&from, &to, false).await,
            Err(CopyError::TargetNotEmpty(2))
        ));
        assert_eq!(copy(&from, &to, true).await.unwrap().books, 2);

        let store = crate::store::open(&config(&to)).await.unwrap().store;
        let book = NewBook {
            title: Title::parse("Four").unwrap(),
            author: Author::parse("A").unwrap(),
            year: Year::new(2000).unwrap(),
            genre: None,
        };
        let created = store.create_book(book, None, &Deadline::none()).await.unwrap();
        assert_eq!(created.book.id, 4, "id 3 was used before the copy: never again");
    }
}
