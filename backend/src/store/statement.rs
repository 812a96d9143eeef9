//! The pieces every statement is made of, on either engine: SQL and its bound values
//! ([`Statement`], [`Arg`]), the row of a listing's page, and what differs between the
//! engines' SQL ([`Engine`]): how a row is locked for a change, how text is searched, and
//! whether the planner keeps statistics.

use crate::domain::{Book, Timestamp};

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

    /// The engine `url` names, or the error that says which URLs are understood.
    pub fn named_by(url: &str) -> Result<Self, sqlx::Error> {
        Self::of(url).ok_or_else(|| {
            sqlx::Error::Configuration("the database URL must start with sqlite:// or postgres://".into())
        })
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
    pub(crate) fn lock_rows(self) -> &'static str {
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

    /// Whether the database writes a page's JSON itself ([`Self::json_page`]) rather than
    /// handing over a row per book. SQLite's driver runs each connection on a thread of its
    /// own and sends every row across, each column copied: one row for the page makes a
    /// listing a third cheaper (docs/benchmarks.md). PostgreSQL's rows come decoded from one
    /// buffer, and writing JSON would cost its server more than it saves here.
    pub(crate) fn writes_pages(self) -> bool {
        self == Self::Sqlite
    }

    /// The page's books (`b`) as the API's JSON array, ordered by `order`: an aggregate that
    /// writes, field by field, exactly what `Book` serializes to. (`json_object` writes a
    /// book in one call: a listing was about a tenth faster than with a dozen `||` per book.)
    pub(crate) fn json_page(order: &str) -> String {
        format!(
            "json_group_array(json_object('id', b.id, 'title', b.title, 'author', b.author, \
             'year', b.year, 'genre', b.genre, 'created_at', b.created_at, \
             'updated_at', b.updated_at) ORDER BY {order})"
        )
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

    /// A whole statement: `sql` with placeholders `$1`, `$2`, … for `args`, in order.
    pub fn with(sql: &str, args: impl IntoIterator<Item = Arg>) -> Self {
        Self {
            sql: sql.to_owned(),
            args: args.into_iter().collect(),
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

    /// Adds values and their placeholders, separated by commas.
    pub fn bind_all(&mut self, values: impl IntoIterator<Item = Arg>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self
    }

    /// Adds a value; returns its placeholder's number (for SQL that names it twice).
    pub fn arg(&mut self, value: Arg) -> usize {
        self.args.push(value);
        self.args.len()
    }
}

/// A book of a listing's page, with the number of books the listing matches: how an engine
/// that hands pages over as rows answers (see [`Engine::writes_pages`]).
#[derive(sqlx_macros::FromRow)]
pub struct PageRow {
    pub total: i64,
    #[sqlx(flatten)]
    pub book: Book,
}

/// A listing's page: its books as the API's JSON array, in the listing's order, and the
/// number of books the listing matches (unknown if a page of rows came back empty).
pub struct PageJson {
    pub total: Option<i64>,
    pub books: String,
}

impl PageJson {
    pub fn of_rows(rows: Vec<PageRow>) -> Self {
        let total = rows.first().map(|row| row.total);
        let books: Vec<Book> = rows.into_iter().map(|row| row.book).collect();
        let books = serde_json::to_string(&books).expect("books (strings and integers) always serialize");
        Self { total, books }
    }
}

/// The columns of a [`Book`], for `concat!`.
macro_rules! book_columns {
    () => {
        "id, title, author, year, genre, created_at, updated_at, version"
    };
}
pub(crate) use book_columns;

/// A [`Book`] from a row of either engine that holds [`book_columns!`]: PostgreSQL's year is
/// an `integer`, and each engine stores a time its own way (its `dialect.rs`).
macro_rules! book_from_row {
    ($row:ty) => {
        impl<'r> sqlx::FromRow<'r, $row> for Book {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::Row;
                Ok(Self {
                    id: row.try_get("id")?,
                    title: row.try_get("title")?,
                    author: row.try_get("author")?,
                    year: row.try_get::<i32, _>("year")?.into(),
                    genre: row.try_get("genre")?,
                    created_at: row.try_get::<Timestamp, _>("created_at")?.into(),
                    updated_at: row.try_get::<Timestamp, _>("updated_at")?.into(),
                    version: row.try_get("version")?,
                })
            }
        }
    };
}
book_from_row!(sqlx::sqlite::SqliteRow);
book_from_row!(sqlx::postgres::PgRow);

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
        statement.bind_all([Arg::Int(1), Arg::Text("a".into())]);
        let n = statement.arg(Arg::Bool(true));
        assert_eq!((statement.sql.as_str(), n), ("SELECT $1, $2", 3));
    }
}
