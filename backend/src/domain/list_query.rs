//! A request for a page of the catalogue: filters, sort order and the page window.

use std::str::FromStr;

use super::FieldError;
use super::book::{YEAR_MAX, YEAR_MIN};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
/// Longest `q`, `author` or `genre` filter, in characters. Stored values are at most 50
/// characters, so a longer filter could never match; the bound keeps search work small.
pub const MAX_FILTER_CHARS: usize = 200;

const SORT_RULE: &str = "must be one of id, title, author, year, created_at, each optionally prefixed with -";
const AFTER_RULE: &str = "must be a cursor from a `next` link: SORT:ID, or SORT:ID:KEY";
/// Longest cursor: a sort name, an id and a case-folded title or author (at most 50
/// characters, each at most 3 folded characters of 4 bytes).
const MAX_AFTER_CHARS: usize = 700;

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
    pub offset: i64,
    /// Case-insensitive substring of the title or the author.
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
    pub after: Option<After>,
}

/// Where a keyset page starts: just after the book with this id and this sort value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct After {
    pub id: i64,
    pub value: SortValue,
}

impl After {
    /// Where `book` stands in a listing sorted by `sort`.
    pub fn of(book: &super::Book, sort: SortKey) -> Self {
        let value = match sort {
            SortKey::Id => SortValue::Id,
            SortKey::Title => SortValue::Text(fold_case(&book.title)),
            SortKey::Author => SortValue::Text(fold_case(&book.author)),
            SortKey::Year => SortValue::Number(book.year),
            SortKey::CreatedAt => SortValue::Number(
                time::OffsetDateTime::parse(&book.created_at, &time::format_description::well_known::Rfc3339)
                    .map_or(0, |t| t.unix_timestamp()),
            ),
        };
        Self { id: book.id, value }
    }
}

/// A book's value of the sort key, as listings compare it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SortValue {
    /// Sorting by id: the id is the whole key.
    Id,
    /// The case-folded title or author ([`fold_case`]), compared byte by byte.
    Text(String),
    /// The year, or `created_at` as seconds since 1970.
    Number(i64),
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
            after: None,
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
        let mut after = None;
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            let known = matches!(
                key,
                "limit" | "offset" | "q" | "author" | "genre" | "year_from" | "year_to" | "sort" | "after"
            );
            if !known {
                continue;
            }
            if seen.iter().any(|k| k == key) {
                errors.push(FieldError::new(key, "must be given only once"));
                continue;
            }
            seen.push(key.to_owned());
            if key == "after" {
                // Read once the sort is known (it may come later in the query string).
                after = Some(value.to_owned());
            } else if let Err(message) = query.set(key, value) {
                errors.push(FieldError::new(key, message));
            }
        }
        if let Some(after) = after {
            match query.cursor(&after) {
                Ok(cursor) => query.after = Some(cursor),
                Err(message) => errors.push(FieldError::new("after", message)),
            }
        }
        if errors.is_empty() { Ok(query) } else { Err(errors) }
    }

    /// The sort as the `sort` parameter spells it.
    pub fn sort_name(&self) -> String {
        format!("{}{}", if self.descending { "-" } else { "" }, self.sort.name())
    }

    /// Reads a cursor made by [`ListQuery::cursor_string`] for this listing's sort.
    fn cursor(&self, text: &str) -> Result<After, String> {
        if self.offset > 0 {
            return Err("cannot be combined with offset: a cursor already says where the page starts".into());
        }
        if text.chars().count() > MAX_AFTER_CHARS {
            return Err(AFTER_RULE.into());
        }
        let mut parts = text.splitn(3, ':');
        let (sort, id, value) = (parts.next(), parts.next(), parts.next());
        let id = id.and_then(|id| i64::from_str(id).ok()).ok_or(AFTER_RULE)?;
        if sort != Some(self.sort_name().as_str()) {
            return Err(format!(
                "belongs to another sort order; send it with sort={}",
                sort.unwrap_or("")
            ));
        }
        let value = match (self.sort, value) {
            (SortKey::Id, None) => SortValue::Id,
            (SortKey::Title | SortKey::Author, Some(text)) if !text.chars().any(char::is_control) => {
                SortValue::Text(text.to_owned())
            }
            (SortKey::Year, Some(number)) => {
                SortValue::Number(i64::from_str(number).map_err(|_| AFTER_RULE)?)
            }
            // Seconds since 1970, from year 1 to year 9999 (what a timestamp can hold).
            (SortKey::CreatedAt, Some(number)) => SortValue::Number(
                i64::from_str(number)
                    .ok()
                    .filter(|n| (-62_135_596_800..=253_402_300_799).contains(n))
                    .ok_or(AFTER_RULE)?,
            ),
            _ => return Err(AFTER_RULE.into()),
        };
        Ok(After { id, value })
    }

    /// The `after` parameter that continues this listing after `after`.
    pub fn cursor_string(&self, after: &After) -> String {
        match &after.value {
            SortValue::Id => format!("{}:{}", self.sort_name(), after.id),
            SortValue::Text(text) => format!("{}:{}:{text}", self.sort_name(), after.id),
            SortValue::Number(n) => format!("{}:{}:{n}", self.sort_name(), after.id),
        }
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), &'static str> {
        match key {
            "limit" => self.limit = integer_in(value, 1, MAX_LIMIT, "must be an integer from 1 to 1000")?,
            "offset" => self.offset = integer_in(value, 0, i64::MAX, "must be an integer of at least 0")?,
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

    /// The query string of the same listing's page after `after` (a keyset `next` link).
    pub fn query_string_after(&self, after: &After) -> String {
        self.query_string(&[("after", self.cursor_string(after))])
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
    fn offset_must_not_be_negative() {
        assert_eq!(parse(&[("offset", "40")]).unwrap().offset, 40);
        assert!(parse(&[("offset", "-1")]).is_err());
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
    fn a_cursor_is_read_for_its_own_sort_only() {
        let query = parse(&[("after", "-title:42:the dune"), ("sort", "-title")]).unwrap();
        let after = query.after.clone().unwrap();
        assert_eq!(
            after,
            After {
                id: 42,
                value: SortValue::Text("the dune".into())
            }
        );
        assert_eq!(query.cursor_string(&after), "-title:42:the dune");
        assert_eq!(
            parse(&[("after", "id:7")]).unwrap().after.unwrap().value,
            SortValue::Id
        );
        assert_eq!(
            parse(&[("after", "year:7:1999"), ("sort", "year")])
                .unwrap()
                .after
                .unwrap()
                .value,
            SortValue::Number(1999)
        );
        for (after, sort) in [
            ("title:1:x", "-title"),
            ("year:1:x", "year"),
            ("id:x", "id"),
            ("id:1:x", "id"),
            ("title:1", "title"),
            ("created_at:1:99999999999999", "created_at"),
            ("nonsense", "id"),
        ] {
            let errors = parse(&[("after", after), ("sort", sort)]).unwrap_err();
            assert_eq!(errors[0].field, "after", "{after} with sort={sort}");
        }
        let errors = parse(&[("after", "id:7"), ("offset", "20")]).unwrap_err();
        assert!(errors[0].message.contains("offset"), "{errors:?}");
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
        let after = After {
            id: 9,
            value: SortValue::Number(1984),
        };
        let next = query.query_string_after(&after);
        let reparsed = ListQuery::from_pairs(form_urlencoded::parse(next.as_bytes())).unwrap();
        assert_eq!(reparsed.after, Some(after));
    }
}
