//! A request for a page of the catalogue: filters, sort order and the page window.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::FieldError;
use super::book::{Book, YEAR_MAX, YEAR_MIN};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
/// Longest `q`, `author` or `genre` filter, in characters. Stored values are at most 50
/// characters, so a longer filter could never match; the bound keeps search work small.
pub const MAX_FILTER_CHARS: usize = 200;
/// Deepest page by offset. Past it a page is reached by its cursor (the `next` link), which
/// costs what a first page costs at any depth, where an offset costs the rows it skips.
pub const MAX_OFFSET: i64 = 10_000;
/// A `q` shorter than this (once folded) matches the start of a title or author; from this
/// length on, anywhere in them. A trigram index finds substrings of three characters or more;
/// a shorter one could only be found by reading every book.
pub const SUBSTRING_CHARS: usize = 3;

const SORT_RULE: &str = "must be one of id, title, author, year, created_at, each optionally prefixed with -";
const OFFSET_RULE: &str =
    "must be an integer from 0 to 10000; past that, follow the `next` link (its cursor)";
const CURSOR_RULE: &str = "must be the cursor of a `next` link, unchanged";
/// Longest cursor: base64 of a sort name, an id and a case-folded title or author (at most 50
/// characters, each at most 3 folded characters of 4 bytes).
const MAX_CURSOR_CHARS: usize = 1000;

/// The column a listing is ordered by; ties are always broken by `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    Id,
    Title,
    Author,
    Year,
    CreatedAt,
}

impl SortKey {
    const ALL: [(&'static str, SortKey); 5] = [
        ("id", SortKey::Id),
        ("title", SortKey::Title),
        ("author", SortKey::Author),
        ("year", SortKey::Year),
        ("created_at", SortKey::CreatedAt),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, key)| *key == self)
            .map_or("id", |(name, _)| name)
    }
}

/// A valid listing request. Text filters are trimmed; an empty filter is no filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListQuery {
    pub limit: i64,
    /// At most [`MAX_OFFSET`].
    pub offset: i64,
    /// Case-insensitive: a substring of the title or the author, or for one or two
    /// characters, their start (see [`ListQuery::text_match`]).
    pub q: Option<String>,
    /// Case-insensitive exact author.
    pub author: Option<String>,
    /// Case-insensitive exact genre.
    pub genre: Option<String>,
    pub year_from: Option<i64>,
    pub year_to: Option<i64>,
    pub sort: SortKey,
    pub descending: bool,
    /// Keyset pagination: the page starts after this book of the same listing, however far
    /// in that is (the `next` link carries it).
    pub cursor: Option<Cursor>,
}

/// What `q` matches, in case-folded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMatch {
    /// Anywhere in the title or the author (three characters or more).
    Substring(String),
    /// The start of the title or the author (one or two characters).
    Prefix(String),
}

/// Where a keyset page starts: just after the book with this id and this sort value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub id: i64,
    pub value: SortValue,
}

/// A book's value of the sort key, as listings compare it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SortValue {
    /// Sorting by id: the id is the whole key.
    Id,
    /// The case-folded title or author ([`fold_case`]), compared byte by byte.
    Text(String),
    Year(i64),
    /// `created_at`, RFC 3339 as the API writes it.
    Time(String),
}

impl Cursor {
    /// Where `book` stands in a listing sorted by `sort`.
    pub fn after(book: &Book, sort: SortKey) -> Self {
        let value = match sort {
            SortKey::Id => SortValue::Id,
            SortKey::Title => SortValue::Text(fold_case(&book.title)),
            SortKey::Author => SortValue::Text(fold_case(&book.author)),
            SortKey::Year => SortValue::Year(book.year),
            SortKey::CreatedAt => SortValue::Time(book.created_at.clone()),
        };
        Self { id: book.id, value }
    }

    /// The opaque form a `next` link carries: base64 of the sort, the id and the value, so
    /// that a client treats it as a token rather than something to edit.
    fn encode(&self, sort: &str) -> String {
        let value = match &self.value {
            SortValue::Id => String::new(),
            SortValue::Text(text) | SortValue::Time(text) => text.clone(),
            SortValue::Year(year) => year.to_string(),
        };
        URL_SAFE_NO_PAD.encode(format!("{sort}\n{}\n{value}", self.id))
    }

    /// Reads a cursor made by [`Cursor::encode`] for a listing sorted by `sort`.
    fn decode(text: &str, sort: SortKey, sort_name: &str) -> Result<Self, String> {
        if text.len() > MAX_CURSOR_CHARS {
            return Err(CURSOR_RULE.into());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| CURSOR_RULE)?;
        let plain = String::from_utf8(bytes).map_err(|_| CURSOR_RULE)?;
        let mut parts = plain.splitn(3, '\n');
        let (made_for, id, value) = (parts.next(), parts.next(), parts.next().ok_or(CURSOR_RULE)?);
        if made_for != Some(sort_name) {
            return Err(format!(
                "belongs to another sort order; send it with sort={}",
                made_for.unwrap_or("")
            ));
        }
        let id = id.and_then(|id| i64::from_str(id).ok()).ok_or(CURSOR_RULE)?;
        let value = match sort {
            SortKey::Id if value.is_empty() => SortValue::Id,
            SortKey::Title | SortKey::Author if !value.chars().any(char::is_control) => {
                SortValue::Text(value.to_owned())
            }
            SortKey::Year => SortValue::Year(year(value).map_err(|_| CURSOR_RULE)?),
            // Checked here, so that the database is never handed a time it cannot read.
            SortKey::CreatedAt
                if time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
                    .is_ok() =>
            {
                SortValue::Time(value.to_owned())
            }
            _ => return Err(CURSOR_RULE.into()),
        };
        Ok(Self { id, value })
    }
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
            q: None,
            author: None,
            genre: None,
            year_from: None,
            year_to: None,
            sort: SortKey::Id,
            descending: false,
            cursor: None,
        }
    }
}

impl ListQuery {
    /// Parses decoded query-string pairs. Unknown parameters are ignored (cache busters and
    /// tracking tags are common); a known parameter given twice or with a bad value is an
    /// error, and every such error is reported.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, Vec<FieldError>>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut query = Self::default();
        let mut errors = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let mut cursor = None;
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            let known = matches!(
                key,
                "limit"
                    | "offset"
                    | "q"
                    | "author"
                    | "genre"
                    | "year_from"
                    | "year_to"
                    | "sort"
                    | "cursor"
                    | "after"
            );
            if !known {
                continue;
            }
            if seen.iter().any(|k| k == key) {
                errors.push(FieldError::new(key, "must be given only once"));
                continue;
            }
            seen.push(key.to_owned());
            match key {
                // Read once the sort is known (it may come later in the query string).
                "cursor" => cursor = Some(value.to_owned()),
                // The keyset parameter of earlier releases: a link made by one of them is
                // refused rather than silently read as the first page.
                "after" => errors.push(FieldError::new(
                    "after",
                    "is no longer read: follow the `next` link again (it carries `cursor` now)",
                )),
                _ => {
                    if let Err(message) = query.set(key, value) {
                        errors.push(FieldError::new(key, message));
                    }
                }
            }
        }
        if let Some(cursor) = cursor {
            if query.offset > 0 {
                errors.push(FieldError::new(
                    "cursor",
                    "cannot be combined with offset: a cursor already says where the page starts",
                ));
            } else {
                match Cursor::decode(&cursor, query.sort, &query.sort_name()) {
                    Ok(cursor) => query.cursor = Some(cursor),
                    Err(message) => errors.push(FieldError::new("cursor", message)),
                }
            }
        }
        if errors.is_empty() { Ok(query) } else { Err(errors) }
    }

    /// The sort as the `sort` parameter spells it.
    pub fn sort_name(&self) -> String {
        format!("{}{}", if self.descending { "-" } else { "" }, self.sort.name())
    }

    /// What `q` matches, folded as stored keys are (`None` without a `q`).
    pub fn text_match(&self) -> Option<TextMatch> {
        let needle = fold_case(self.q.as_deref()?);
        Some(if needle.chars().count() >= SUBSTRING_CHARS {
            TextMatch::Substring(needle)
        } else {
            TextMatch::Prefix(needle)
        })
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), &'static str> {
        match key {
            "limit" => self.limit = integer_in(value, 1, MAX_LIMIT, "must be an integer from 1 to 1000")?,
            "offset" => self.offset = integer_in(value, 0, MAX_OFFSET, OFFSET_RULE)?,
            "year_from" => self.year_from = Some(year(value)?),
            "year_to" => self.year_to = Some(year(value)?),
            "q" => self.q = filter(value)?,
            "author" => self.author = filter(value)?,
            "genre" => self.genre = filter(value)?,
            "sort" => {
                let (descending, name) = match value.strip_prefix('-') {
                    Some(name) => (true, name),
                    None => (false, value),
                };
                self.sort = SortKey::ALL
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, key)| *key)
                    .ok_or(SORT_RULE)?;
                self.descending = descending;
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the listing is the whole catalogue (so its total is the number of books).
    pub fn is_unfiltered(&self) -> bool {
        self.q.is_none()
            && self.author.is_none()
            && self.genre.is_none()
            && self.year_from.is_none()
            && self.year_to.is_none()
    }

    /// The query string of the same listing at another offset, for `Link` headers.
    pub fn query_string_at(&self, offset: i64) -> String {
        self.query_string(&[("offset", offset.to_string())])
    }

    /// The query string of the same listing's page after `cursor` (a keyset `next` link).
    pub fn query_string_after(&self, cursor: &Cursor) -> String {
        self.query_string(&[("cursor", cursor.encode(&self.sort_name()))])
    }

    fn query_string(&self, start: &[(&str, String)]) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.append_pair("limit", &self.limit.to_string());
        for (name, value) in start {
            out.append_pair(name, value);
        }
        for (name, value) in [("q", &self.q), ("author", &self.author), ("genre", &self.genre)] {
            if let Some(value) = value {
                out.append_pair(name, value);
            }
        }
        for (name, value) in [("year_from", self.year_from), ("year_to", self.year_to)] {
            if let Some(value) = value {
                out.append_pair(name, &value.to_string());
            }
        }
        if self.sort != SortKey::Id || self.descending {
            out.append_pair("sort", &self.sort_name());
        }
        out.finish()
    }
}

/// The case-folded form used for case-insensitive matching and sorting, on both the stored
/// values and the filters, so that `é` matches `É` (SQLite's own `lower()` only folds ASCII).
pub fn fold_case(text: &str) -> String {
    text.to_lowercase()
}

fn integer_in(value: &str, min: i64, max: i64, rule: &'static str) -> Result<i64, &'static str> {
    i64::from_str(value)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or(rule)
}

fn year(value: &str) -> Result<i64, &'static str> {
    integer_in(value, YEAR_MIN, YEAR_MAX, "must be an integer from -5000 to 2100")
}

/// A text filter as sent: at most 200 characters, none of them a control character (stored
/// text holds none, so such a filter could match nothing); then trimmed of invisible
/// characters as stored text is. (Checked before trimming, so that the OpenAPI document can
/// state the rule exactly: `maxLength` and a pattern.)
fn filter(value: &str) -> Result<Option<String>, &'static str> {
    if value.chars().count() > MAX_FILTER_CHARS {
        return Err("must be at most 200 characters");
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    let trimmed = super::book::trim(value);
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ListQuery, Vec<FieldError>> {
        ListQuery::from_pairs(pairs.iter().copied())
    }

    fn cursor(sort: &str, id: i64, value: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{sort}\n{id}\n{value}"))
    }

    #[test]
    fn no_parameters_give_the_first_hundred_by_id() {
        let query = parse(&[]).unwrap();
        assert_eq!(query, ListQuery::default());
        assert_eq!((query.limit, query.offset), (100, 0));
        assert!(query.is_unfiltered());
    }

    #[test]
    fn limit_must_be_from_1_to_1000() {
        assert_eq!(parse(&[("limit", "1000")]).unwrap().limit, 1000);
        for bad in ["0", "1001", "-1", "ten", "", "1.5"] {
            let errors = parse(&[("limit", bad)]).unwrap_err();
            assert_eq!(errors[0].field, "limit", "limit={bad}");
        }
    }

    #[test]
    fn offset_goes_from_0_to_10000_and_past_that_points_to_the_cursor() {
        assert_eq!(parse(&[("offset", "40")]).unwrap().offset, 40);
        assert_eq!(parse(&[("offset", "10000")]).unwrap().offset, 10_000);
        assert!(parse(&[("offset", "-1")]).is_err());
        let errors = parse(&[("offset", "10001")]).unwrap_err();
        assert!(errors[0].message.contains("cursor"), "{errors:?}");
    }

    #[test]
    fn sort_takes_a_known_column_and_an_optional_minus() {
        let query = parse(&[("sort", "-title")]).unwrap();
        assert_eq!((query.sort, query.descending), (SortKey::Title, true));
        assert_eq!(parse(&[("sort", "created_at")]).unwrap().sort, SortKey::CreatedAt);
        assert!(parse(&[("sort", "price")]).is_err());
        assert!(parse(&[("sort", "--id")]).is_err());
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        let errors = parse(&[("limit", "x"), ("year_from", "1e3"), ("sort", "?")]).unwrap_err();
        let names: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["limit", "year_from", "sort"]);
    }

    #[test]
    fn blank_filters_are_no_filters_and_long_ones_are_rejected() {
        let query = parse(&[("q", "  "), ("author", ""), ("genre", "\u{200b}")]).unwrap();
        assert!(query.is_unfiltered());
        assert_eq!(parse(&[("q", " dune ")]).unwrap().q.as_deref(), Some("dune"));
        assert!(parse(&[("q", &"x".repeat(201))]).is_err());
    }

    #[test]
    fn a_filter_with_control_characters_is_rejected() {
        for key in ["q", "author", "genre"] {
            assert!(parse(&[(key, "a\0b")]).is_err(), "{key}");
        }
    }

    #[test]
    fn a_repeated_parameter_is_rejected_and_unknown_ones_ignored() {
        assert!(parse(&[("q", "a"), ("q", "b")]).is_err());
        assert!(parse(&[("_", "1700000000")]).is_ok());
    }

    #[test]
    fn q_of_one_or_two_characters_matches_a_start_and_longer_anywhere() {
        let of = |q: &str| parse(&[("q", q)]).unwrap().text_match().unwrap();
        assert_eq!(of("DU"), TextMatch::Prefix("du".into()));
        assert_eq!(of("é"), TextMatch::Prefix("é".into()));
        assert_eq!(of("Dun"), TextMatch::Substring("dun".into()));
        // Counted once folded: `İ` folds to two characters.
        assert_eq!(of("İs"), TextMatch::Substring("i\u{307}s".into()));
        assert_eq!(parse(&[]).unwrap().text_match(), None);
    }

    #[test]
    fn a_cursor_is_read_for_its_own_sort_only() {
        let query = parse(&[("cursor", &cursor("-title", 42, "the dune")), ("sort", "-title")]).unwrap();
        let after = query.cursor.clone().unwrap();
        assert_eq!(
            after,
            Cursor {
                id: 42,
                value: SortValue::Text("the dune".into())
            }
        );
        assert_eq!(after.encode("-title"), cursor("-title", 42, "the dune"));
        assert_eq!(
            parse(&[("cursor", &cursor("id", 7, ""))])
                .unwrap()
                .cursor
                .unwrap()
                .value,
            SortValue::Id
        );
        assert_eq!(
            parse(&[("cursor", &cursor("year", 7, "1999")), ("sort", "year")])
                .unwrap()
                .cursor
                .unwrap()
                .value,
            SortValue::Year(1999)
        );
        for (text, sort) in [
            (cursor("title", 1, "x"), "-title"),
            (cursor("year", 1, "x"), "year"),
            (cursor("year", 1, "99999"), "year"),
            (cursor("id", 0, "x").replace('A', "!"), "id"),
            (cursor("id", 1, "x"), "id"),
            (cursor("created_at", 1, "yesterday"), "created_at"),
            ("nonsense".to_owned(), "id"),
            ("aWQKMQ".to_owned(), "id"),
        ] {
            let errors = parse(&[("cursor", &text), ("sort", sort)]).unwrap_err();
            assert_eq!(errors[0].field, "cursor", "{text} with sort={sort}");
        }
        let errors = parse(&[("cursor", &cursor("id", 7, "")), ("offset", "20")]).unwrap_err();
        assert!(errors[0].message.contains("offset"), "{errors:?}");
    }

    #[test]
    fn the_keyset_parameter_of_earlier_releases_is_refused() {
        let errors = parse(&[("after", "id:7")]).unwrap_err();
        assert_eq!(errors[0].field, "after");
    }

    #[test]
    fn the_query_string_round_trips() {
        let query = parse(&[
            ("q", "a&b"),
            ("year_to", "1990"),
            ("sort", "-year"),
            ("limit", "5"),
        ])
        .unwrap();
        let again = query.query_string_at(query.offset);
        let reparsed = ListQuery::from_pairs(form_urlencoded::parse(again.as_bytes())).unwrap();
        assert_eq!(reparsed, query);
        let after = Cursor {
            id: 9,
            value: SortValue::Year(1984),
        };
        let next = query.query_string_after(&after);
        let reparsed = ListQuery::from_pairs(form_urlencoded::parse(next.as_bytes())).unwrap();
        assert_eq!(reparsed.cursor, Some(after));
    }
}
