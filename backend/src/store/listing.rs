//! Listings: which statements answer a page of the catalogue and its count, on either engine.
//!
//! Every listing is answered by the database from its indexes (the migrations keep a B-tree
//! for each filter and sort, a text index, and counts; docs/architecture.md explains the
//! design). This module only decides which statements to run, in which order, and what
//! their answers mean; `Sql::list_books` (`sql.rs`) runs them. That keeps the
//! decisions free of I/O, and the same on both engines.
//!
//! - **Filters** (author, genre, year range): one statement, the page read off the index of
//!   (filter, sort key, id), its count from the counts the database keeps (an author's, off
//!   the author's index). Where two indexes could lead, the planner chooses: PostgreSQL's from
//!   the statistics it keeps; SQLite keeps none, so the statement says (an author's index
//!   leads a genre's, and for a year range in another order the counts decide whether to walk
//!   the order's index testing the year or to read the range and sort it).
//! - **Search** (`q`): the text index finds the books (up to [`SORT_CAP`] + 1 of them,
//!   filtered), which are counted and sorted; past [`COUNT_CAP`] the count says "at least
//!   10,000". If there are more than `SORT_CAP`, the page is read by walking the order's
//!   index, testing each book's text: with that many matches, a page is found within
//!   `(offset + limit) * catalogue / SORT_CAP` books of the walk.

use super::statement::{Arg, Engine, PageJson, Statement, book_columns, escape_like, push_contains};
use super::stored::{Page, Total};
use crate::domain::{ListQuery, SortKey, SortValue, TextMatch};

/// A search's count stops here; past it the answer says "at least" this many.
pub const COUNT_CAP: i64 = 10_000;
/// A search's matches are sorted up to this many; past it the order's index is walked.
/// Twice the count's cap, so that a search just past the cap (a word in 1% of a million
/// books, and a few more added since) still costs one read of its matches.
const SORT_CAP: i64 = 2 * COUNT_CAP;

/// What to run next, and what to hand back.
#[derive(Debug)]
pub enum Step {
    /// Run it; hand its two numbers to [`Listing::counted`].
    Counts(Statement),
    /// Run it; hand the page to [`Listing::paged`].
    Page(Statement),
    /// Run it; hand its number to [`Listing::totalled`].
    Total(Statement),
    Done(Page),
}

/// One listing being answered.
pub struct Listing<'q> {
    query: &'q ListQuery,
    engine: Engine,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Filter,
    Search,
    /// A search past the cap: the page by walking the order.
    Walk,
}

impl<'q> Listing<'q> {
    pub fn new(query: &'q ListQuery, engine: Engine) -> Self {
        let phase = if query.q.is_some() {
            Phase::Search
        } else {
            Phase::Filter
        };
        Self { query, engine, phase }
    }

    pub fn start(&self) -> Step {
        match self.phase {
            Phase::Search => Step::Page(self.search_page()),
            _ if self.ranges_in_another_order() => Step::Counts(self.range_counts()),
            _ => Step::Page(self.filter_page(false)),
        }
    }

    /// The books in a year range, and in the set the range is drawn from (a genre, or all).
    pub fn counted(&self, in_range: i64, in_set: i64) -> Step {
        Step::Page(self.filter_page(self.walk_the_order(in_range, in_set)))
    }

    /// The page; an error if its JSON is not the books it should be.
    pub fn paged(&mut self, page: PageJson) -> serde_json::Result<Step> {
        let total = match (self.phase, page.total) {
            (Phase::Walk, _) => Total::at_least(COUNT_CAP),
            // Past the last book (or none at all), on an engine that hands over rows.
            (Phase::Filter, None) => return Ok(Step::Total(self.filter_count())),
            (Phase::Search, None) => return Ok(Step::Total(self.search_count())),
            (Phase::Search, Some(total)) if total > SORT_CAP => return Ok(self.walk()),
            (Phase::Search, Some(total)) => capped(total),
            (Phase::Filter, Some(total)) => Total::exact(total),
        };
        Ok(Step::Done(Page::of_json(page.books, total, self.query.sort)?))
    }

    pub fn totalled(&mut self, total: i64) -> serde_json::Result<Step> {
        self.paged(PageJson {
            total: Some(total),
            books: "[]".to_owned(),
        })
    }

    fn walk(&mut self) -> Step {
        self.phase = Phase::Walk;
        Step::Page(self.walk_page())
    }

    /// Whether the page is in another order than a year range it is filtered by, with
    /// nothing narrower (an author, a search) to read first: the one case where reading the
    /// range and walking the order can each cost many times the other, and the planner has no
    /// statistics to tell which.
    fn ranges_in_another_order(&self) -> bool {
        let q = self.query;
        !self.engine.keeps_statistics()
            && q.author.is_none()
            && (q.year_from.is_some() || q.year_to.is_some())
            && q.sort != SortKey::Year
    }

    /// Walking the order's index finds a page after about `(offset + limit) * in_set /
    /// in_range` books; reading the range and sorting it costs `in_range` fetched and sorted
    /// books, each about twice a step of the walk.
    fn walk_the_order(&self, in_range: i64, in_set: i64) -> bool {
        let skipped = if self.query.cursor.is_some() {
            0
        } else {
            self.query.offset
        };
        let walked = i128::from(skipped + self.query.limit) * i128::from(in_set);
        in_range > 0 && walked <= 2 * i128::from(in_range) * i128::from(in_range)
    }

    /// The books in the year range, and in its genre (or the whole catalogue).
    fn range_counts(&self) -> Statement {
        let mut st = Statement::new("SELECT (");
        self.push_kept_count(&mut st, true);
        st.push("), (");
        self.push_kept_count(&mut st, false);
        st.push(")");
        st
    }

    /// A page of a listing without `q`, with the listing's count on every row.
    /// `year_walk`: the year range may not lead (the order's index is walked instead).
    fn filter_page(&self, year_walk: bool) -> Statement {
        let mut st = Statement::new("SELECT (");
        self.push_count(&mut st);
        st.push(") AS total, ");
        st.push(&self.columns(" FROM books"));
        let mut clause = Clause::default();
        self.push_filters(&mut st, &mut clause, year_walk);
        self.push_cursor(&mut st, &mut clause, "books.");
        self.push_window(&mut st, "books.");
        st
    }

    /// The count of a listing without `q`: kept by the database, or an author's books
    /// counted off the author's index.
    fn push_count(&self, st: &mut Statement) {
        if self.query.author.is_some() {
            st.push("SELECT count(*) FROM books");
            self.push_filters(st, &mut Clause::default(), false);
        } else {
            let ranged = self.query.year_from.is_some() || self.query.year_to.is_some();
            self.push_kept_count(st, ranged);
        }
    }

    /// Books per genre ('' for all), within the year range if `ranged`, from the counts the
    /// database keeps.
    fn push_kept_count(&self, st: &mut Statement, ranged: bool) {
        let genre = self.query.genre.as_deref().map(crate::domain::fold_case);
        let table = if ranged {
            "genre_year_counts"
        } else {
            "genre_counts"
        };
        st.push(&format!(
            "SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM {table} WHERE genre_key = "
        ))
        .bind(Arg::Text(genre.unwrap_or_default()));
        if ranged {
            if let Some(from) = self.query.year_from {
                st.push(" AND year >= ").bind(year(from));
            }
            if let Some(to) = self.query.year_to {
                st.push(" AND year <= ").bind(year(to));
            }
        }
    }

    /// The books the text index finds for `q` and the other filters, at most one past
    /// [`SORT_CAP`]: a `WITH` clause.
    fn push_hits(&self, st: &mut Statement) {
        st.push(&format!(
            "WITH hits AS MATERIALIZED (SELECT books.id AS id, {} AS sort_key",
            self.sort_column("books.")
        ));
        match self.query.text_match().expect("a search has a q") {
            TextMatch::Substring(needle) => self.engine.push_substring_source(st, &needle),
            TextMatch::Prefix(needle) => {
                st.push(" FROM books WHERE ");
                push_starts_with(st, &needle);
            }
        }
        let mut clause = Clause(true);
        self.push_filters(st, &mut clause, false);
        st.push(&format!(" LIMIT {}) ", SORT_CAP + 1));
    }

    fn filter_count(&self) -> Statement {
        let mut st = Statement::new("SELECT (");
        self.push_count(&mut st);
        st.push(")");
        st
    }

    fn search_count(&self) -> Statement {
        let mut st = Statement::default();
        self.push_hits(&mut st);
        st.push("SELECT count(*) FROM hits");
        st
    }

    /// A page of a search's hits, sorted, with their number.
    fn search_page(&self) -> Statement {
        let mut st = Statement::default();
        self.push_hits(&mut st);
        st.push("SELECT (SELECT count(*) FROM hits) AS total, ");
        st.push(&format!(
            "{} FROM (SELECT id, sort_key FROM hits",
            self.page_columns()
        ));
        self.push_cursor(&mut st, &mut Clause::default(), "");
        self.push_window(&mut st, "");
        st
    }

    /// A page of a search that matches more than the cap: the order's index walked, each
    /// book's text tested.
    fn walk_page(&self) -> Statement {
        let mut st = Statement::new(&format!("SELECT CAST({} AS BIGINT) AS total, ", COUNT_CAP + 1));
        st.push(&self.columns(" FROM books WHERE "));
        let pattern = match self.query.text_match().expect("a search has a q") {
            TextMatch::Substring(needle) => format!("%{}%", escape_like(&needle)),
            TextMatch::Prefix(needle) => format!("{}%", escape_like(&needle)),
        };
        push_contains(&mut st, &pattern);
        let mut clause = Clause(true);
        self.push_filters(&mut st, &mut clause, false);
        self.push_cursor(&mut st, &mut clause, "books.");
        self.push_window(&mut st, "books.");
        st
    }

    /// `<the books> FROM (SELECT books.id AS id, <sort column> AS sort_key` + `from`: the
    /// page's books, read by id after their ids and keys are found in an index (which the
    /// rest of the statement, up to [`Self::push_window`], says).
    fn columns(&self, from: &str) -> String {
        format!(
            "{} FROM (SELECT books.id AS id, {} AS sort_key{from}",
            self.page_columns(),
            self.sort_column("books.")
        )
    }

    /// The page's books (`b`, in the window `page`): one JSON array in the listing's order,
    /// or their columns (ordered by [`Self::push_window`]), as the engine hands pages over.
    fn page_columns(&self) -> String {
        if self.engine.writes_pages() {
            format!("{} AS books", Engine::json_page(&self.page_order()))
        } else {
            book_columns!()
                .split(", ")
                .map(|column| format!("b.{column}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    fn page_order(&self) -> String {
        let direction = if self.query.descending { "DESC" } else { "ASC" };
        format!("page.sort_key {direction}, page.id {direction}")
    }

    /// The conditions of the filters other than `q`, after `clause`.
    fn push_filters(&self, st: &mut Statement, clause: &mut Clause, year_walk: bool) {
        let q = self.query;
        if let Some(author) = &q.author {
            clause.next(st).push("books.author_key = ").bind(text(author));
        }
        if let Some(genre) = &q.genre {
            // With an author, the author's index leads (an expression is no index's column),
            // where the planner cannot tell by itself that authors are the narrower.
            let hint = q.author.is_some() && !self.engine.keeps_statistics();
            let column = if hint {
                "books.genre_key || ''"
            } else {
                "books.genre_key"
            };
            clause.next(st).push(&format!("{column} = ")).bind(text(genre));
        }
        let year = if year_walk { "+books.year" } else { "books.year" };
        if let Some(from) = q.year_from {
            clause
                .next(st)
                .push(&format!("{year} >= "))
                .bind(self::year(from));
        }
        if let Some(to) = q.year_to {
            clause.next(st).push(&format!("{year} <= ")).bind(self::year(to));
        }
    }

    /// The keyset condition: past the cursor's book in the listing's order.
    fn push_cursor(&self, st: &mut Statement, clause: &mut Clause, table: &str) {
        let Some(cursor) = &self.query.cursor else { return };
        let beyond = if self.query.descending { "<" } else { ">" };
        let (key, id) = self.keys(table);
        let value = match &cursor.value {
            SortValue::Id => None,
            SortValue::Text(text) => Some(Arg::Text(text.clone())),
            SortValue::Year(n) => Some(year(*n)),
            SortValue::Time(at) => Some(Arg::Time(crate::domain::Timestamp::from_stored(at.clone()))),
        };
        let st = clause.next(st);
        match value {
            Some(value) if self.query.sort != SortKey::Id => {
                st.push(&format!("({key}, {id}) {beyond} ("))
                    .bind(value)
                    .push(", ")
                    .bind(Arg::Int(cursor.id))
                    .push(")");
            }
            _ => {
                st.push(&format!("{id} {beyond} ")).bind(Arg::Int(cursor.id));
            }
        }
    }

    /// `ORDER BY … LIMIT … OFFSET …) AS page JOIN books AS b …`: the page's window over the
    /// ordered ids, then the books themselves, in that order.
    fn push_window(&self, st: &mut Statement, table: &str) {
        let direction = if self.query.descending { "DESC" } else { "ASC" };
        let (key, id) = self.keys(table);
        if self.query.sort == SortKey::Id {
            st.push(&format!(" ORDER BY {id} {direction}"));
        } else {
            st.push(&format!(" ORDER BY {key} {direction}, {id} {direction}"));
        }
        st.push(" LIMIT ")
            .bind(Arg::Int(self.query.limit))
            .push(" OFFSET ")
            .bind(Arg::Int(self.query.offset));
        st.push(") AS page JOIN books AS b ON b.id = page.id");
        if !self.engine.writes_pages() {
            st.push(&format!(" ORDER BY {}", self.page_order()));
        }
    }

    /// The sort column and the id, in `table` (`books.`), or in the hits (`""`).
    fn keys(&self, table: &str) -> (String, String) {
        if table.is_empty() {
            ("sort_key".to_owned(), "id".to_owned())
        } else {
            (self.sort_column(table), format!("{table}id"))
        }
    }

    /// The column the listing is ordered by (ties, and the id sort, by id).
    fn sort_column(&self, table: &str) -> String {
        let column = match self.query.sort {
            SortKey::Id => "id",
            SortKey::Title => "title_key",
            SortKey::Author => "author_key",
            SortKey::Year => "year",
            SortKey::CreatedAt => "created_at",
        };
        format!("{table}{column}")
    }
}

/// `(title_key >= lo AND title_key < hi OR author_key >= lo AND author_key < hi)`: the books
/// whose title or author starts with `needle`, two ranges of their indexes.
fn push_starts_with(st: &mut Statement, needle: &str) {
    let lo = st.arg(Arg::Text(needle.to_owned()));
    match prefix_end(needle) {
        Some(end) => {
            let hi = st.arg(Arg::Text(end));
            st.push(&format!(
                "(books.title_key >= ${lo} AND books.title_key < ${hi} \
                 OR books.author_key >= ${lo} AND books.author_key < ${hi})"
            ));
        }
        None => {
            st.push(&format!(
                "(books.title_key >= ${lo} OR books.author_key >= ${lo})"
            ));
        }
    }
}

/// The first string after every string that starts with `prefix`, in code point order (which
/// is both engines' byte order of UTF-8): `prefix` with its last character moved on by one.
/// `None` if no string comes after them all.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A search's count: exact up to the cap, "at least the cap" past it.
fn capped(total: i64) -> Total {
    if total > COUNT_CAP {
        Total::at_least(COUNT_CAP)
    } else {
        Total::exact(total)
    }
}

fn text(value: &str) -> Arg {
    Arg::Text(crate::domain::fold_case(value))
}

fn year(value: i64) -> Arg {
    Arg::Year(i32::try_from(value).expect("a checked year (-5000 to 2100) fits an i32"))
}

/// Writes `WHERE` before the first condition and `AND` before the others.
#[derive(Default)]
struct Clause(bool);

impl Clause {
    fn next<'s>(&mut self, st: &'s mut Statement) -> &'s mut Statement {
        st.push(if self.0 { " AND " } else { " WHERE " });
        self.0 = true;
        st
    }
}
