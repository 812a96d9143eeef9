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
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            let known = matches!(
                key,
                "limit" | "offset" | "q" | "author" | "genre" | "year_from" | "year_to" | "sort"
            );
            if !known {
                continue;
            }
            if seen.iter().any(|k| k == key) {
                errors.push(FieldError::new(key, "must be given only once"));
                continue;
            }
            seen.push(key.to_owned());
            if let Err(message) = query.set(key, value) {
                errors.push(FieldError::new(key, message));
            }
        }
        if errors.is_empty() { Ok(query) } else { Err(errors) }
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
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.append_pair("limit", &self.limit.to_string());
        out.append_pair("offset", &offset.to_string());
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
            let sign = if self.descending { "-" } else { "" };
            out.append_pair("sort", &format!("{sign}{}", self.sort.name()));
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
    }
}
