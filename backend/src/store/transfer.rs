//! `bookstore copy-database`: every book from one database to another, either engine to
//! either engine, keeping ids, versions and timestamps, so that a deployment can move from
//! SQLite to PostgreSQL (or back) by copying its data and changing `DATABASE_URL`.
//!
//! The copy reads the source in one read transaction (a consistent snapshot, even while a
//! server keeps writing to it), writes the target in batches, and carries over the highest id
//! ever assigned, so an id deleted before the move is not handed out again after it. A target
//! that already holds books is refused unless `overwrite` is set. The target's triggers keep
//! its indexes, text index and counts as the books arrive.

use std::str::FromStr;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::sql::{KeyRow, Sql};
use super::statement::{Arg, Engine, PageRow, Statement, book_columns};
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

pub async fn copy(from: &str, to: &str, overwrite: bool) -> Result<Copied, CopyError> {
    if from == to {
        return Err(CopyError::SameDatabase);
    }
    let mut source = open(from, false).await?;
    let mut target = open(to, true).await?;
    let existing = target.number(Statement::new(COUNT)).await?;
    if existing > 0 && !overwrite {
        return Err(CopyError::TargetNotEmpty(existing));
    }
    let copied = copy_between(source.as_mut(), target.as_mut(), overwrite).await;
    source.close().await;
    target.close().await;
    Ok(copied?)
}

async fn copy_between(
    source: &mut dyn Side,
    target: &mut dyn Side,
    overwrite: bool,
) -> Result<Copied, sqlx::Error> {
    source.run(source.engine().begin_snapshot()).await?;
    target.run(target.engine().begin_copy()).await?;
    if overwrite {
        target.run(vec![Statement::new("DELETE FROM books")]).await?;
    }
    let mut books = 0;
    let mut after = 0;
    loop {
        let batch = source.books(read_after(after)).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        target.run(vec![write(&batch)]).await?;
        books += batch.len() as i64;
    }
    // Always raised, never lowered: the books just written (with their ids) do not move a
    // PostgreSQL sequence, and the target may have assigned higher ids before.
    let id_floor = source.number(source.engine().id_floor()).await?;
    let id_floor = id_floor.max(target.number(target.engine().id_floor()).await?);
    target.run(target.engine().raise_id_floor(id_floor)).await?;
    target.run(target.engine().mark_created()).await?;
    let written = target.number(Statement::new(COUNT)).await?;
    if written != books {
        return Err(sqlx::Error::Protocol(format!(
            "copied {books} books, but the target holds {written}"
        )));
    }
    target.run(vec![Statement::new("COMMIT")]).await?;
    source.run(vec![Statement::new("COMMIT")]).await?;
    Ok(Copied { books, id_floor })
}

/// The database at `url`, with this build's migrations applied (a source made by an older
/// build is read in the current schema). A SQLite source must exist.
async fn open(url: &str, create: bool) -> Result<Box<dyn Side>, sqlx::Error> {
    match Engine::named_by(url)? {
        Engine::Sqlite => {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(create)
                .busy_timeout(std::time::Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            sqlx_macros::migrate!("./migrations").run(&pool).await?;
            Ok(Box::new(Connection(pool.acquire().await?, pool)))
        }
        Engine::Postgres => {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(PgConnectOptions::from_str(url)?)
                .await?;
            sqlx_macros::migrate!("./migrations/postgres").run(&pool).await?;
            Ok(Box::new(Connection(pool.acquire().await?, pool)))
        }
    }
}

const COUNT: &str = "SELECT count(*) FROM books";

fn read_after(after: i64) -> Statement {
    Statement::with(
        concat!(
            "SELECT ",
            book_columns!(),
            " FROM books WHERE id > $1 ORDER BY id LIMIT $2"
        ),
        [Arg::Int(after), Arg::Int(BATCH)],
    )
}

/// Books written with their own ids, versions and times.
fn write(books: &[Book]) -> Statement {
    let mut statement = Statement::new(
        "INSERT INTO books (id, title, author, year, genre, created_at, updated_at, version, \
         title_key, author_key, genre_key) VALUES ",
    );
    for (i, book) in books.iter().enumerate() {
        statement.push(if i == 0 { "(" } else { ", (" });
        statement.bind_all([
            Arg::Int(book.id),
            Arg::Text(book.title.clone()),
            Arg::Text(book.author.clone()),
            Arg::Year(i32::try_from(book.year).expect("a stored year fits an i32")),
            Arg::OptionalText(book.genre.clone()),
            Arg::Time(Timestamp::from_stored(book.created_at.clone())),
            Arg::Time(Timestamp::from_stored(book.updated_at.clone())),
            Arg::Int(book.version),
            Arg::Text(fold_case(&book.title)),
            Arg::Text(fold_case(&book.author)),
            Arg::OptionalText(book.genre.as_deref().map(fold_case)),
        ]);
        statement.push(")");
    }
    statement
}

/// What differs between the engines in a copy.
impl Engine {
    /// A read transaction over one snapshot of the source.
    fn begin_snapshot(self) -> Vec<Statement> {
        vec![Statement::new(match self {
            Self::Sqlite => "BEGIN",
            Self::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })]
    }

    /// A write transaction on the target that no server may write beside (on PostgreSQL,
    /// and without a request's time limit: a copy takes longer).
    fn begin_copy(self) -> Vec<Statement> {
        match self {
            Self::Sqlite => vec![Statement::new("BEGIN IMMEDIATE")],
            Self::Postgres => [
                "BEGIN",
                "SET LOCAL statement_timeout = 0",
                "LOCK TABLE books IN EXCLUSIVE MODE",
            ]
            .map(Statement::new)
            .to_vec(),
        }
    }

    /// The highest id ever assigned, deleted ones included (AUTOINCREMENT keeps it in
    /// sqlite_sequence; PostgreSQL in the identity's sequence).
    fn id_floor(self) -> Statement {
        Statement::new(match self {
            Self::Sqlite => {
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'books'), 0), \
                            coalesce((SELECT max(id) FROM books), 0))"
            }
            Self::Postgres => {
                "SELECT greatest(coalesce(pg_sequence_last_value(pg_get_serial_sequence('books', 'id')::regclass), 0), \
                                 (SELECT coalesce(max(id), 0) FROM books))"
            }
        })
    }

    /// New ids start above `floor`.
    fn raise_id_floor(self, floor: i64) -> Vec<Statement> {
        let mut raise = Statement::new(match self {
            Self::Sqlite => "INSERT INTO sqlite_sequence (name, seq) VALUES ('books', ",
            Self::Postgres => "SELECT setval(pg_get_serial_sequence('books', 'id'), ",
        });
        raise.bind(Arg::Int(floor)).push(")");
        match self {
            Self::Sqlite => vec![
                Statement::new("DELETE FROM sqlite_sequence WHERE name = 'books'"),
                raise,
            ],
            Self::Postgres => vec![raise],
        }
    }

    /// Records that the database is not brand new, so no server seeds sample books into it
    /// (a SQLite database is brand new only until it is first migrated, which opening it did).
    fn mark_created(self) -> Vec<Statement> {
        match self {
            Self::Sqlite => Vec::new(),
            Self::Postgres => vec![Statement::new(
                "INSERT INTO bookstore_meta (key, value) VALUES ('created', now()::text) ON CONFLICT (key) DO NOTHING",
            )],
        }
    }
}

/// One side of a copy: a connection to run the statements on.
#[async_trait::async_trait]
trait Side: Send {
    fn engine(&self) -> Engine;
    async fn run(&mut self, statements: Vec<Statement>) -> Result<(), sqlx::Error>;
    async fn books(&mut self, statement: Statement) -> Result<Vec<Book>, sqlx::Error>;
    async fn number(&mut self, statement: Statement) -> Result<i64, sqlx::Error>;
    /// Closes the connection and its pool (the last SQLite connection folds the WAL in).
    async fn close(self: Box<Self>);
}

struct Connection<DB: Database>(PoolConnection<DB>, Pool<DB>);

// The statements run through `store::sql::Sql`, whose `where` clause Rust does not carry
// here: restated.
#[async_trait::async_trait]
impl<DB> Side for Connection<DB>
where
    DB: Sql,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Arg: Encode<'q, DB> + Type<DB>,
    for<'r> Book: FromRow<'r, <DB as Database>::Row>,
    for<'r> PageRow: FromRow<'r, <DB as Database>::Row>,
    for<'r> KeyRow: FromRow<'r, <DB as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <DB as Database>::Row>,
    for<'r> (i64, i64): FromRow<'r, <DB as Database>::Row>,
    for<'r> (i64, String): FromRow<'r, <DB as Database>::Row>,
{
    fn engine(&self) -> Engine {
        DB::ENGINE
    }

    async fn run(&mut self, statements: Vec<Statement>) -> Result<(), sqlx::Error> {
        for statement in statements {
            DB::execute(&mut *self.0, statement).await?;
        }
        Ok(())
    }

    async fn books(&mut self, statement: Statement) -> Result<Vec<Book>, sqlx::Error> {
        DB::rows(&mut *self.0, statement).await
    }

    async fn number(&mut self, statement: Statement) -> Result<i64, sqlx::Error> {
        DB::number(&mut *self.0, statement).await
    }

    async fn close(self: Box<Self>) {
        let Connection(conn, pool) = *self;
        drop(conn);
        pool.close().await;
    }
}
