//! A book and the rules its fields obey (the table in `shared/spec/api.md`).
//!
//! Input arrives as a JSON object; [`NewBook::from_json`] and [`BookPatch::from_json`] check
//! every field and report every broken rule at once, so a client can fix them all in one go.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use validator::{ValidateLength, ValidateRange};

use super::FieldError;
use super::json::JsonObject;

/// Longest title, author or genre, counted in Unicode scalar values after trimming.
pub const TEXT_MAX_CHARS: u64 = 50;
pub const YEAR_MIN: i64 = -5000;
pub const YEAR_MAX: i64 = 2100;

const TEXT_RULE: &str = "must be 1 to 50 characters";
/// Control characters (NUL, line breaks, tabs...) have no place in one line of text, and
/// PostgreSQL cannot store NUL at all: refused on both engines alike.
pub const CONTROL_RULE: &str = "must not contain control characters (such as line breaks or NUL)";
const GENRE_RULE: &str = "must be at most 50 characters, or null";
const YEAR_RULE: &str = "must be an integer from -5000 to 2100";
const REQUIRED: &str = "is required";
const UNKNOWN: &str = "is not a known field";
const REPEATED: &str = "is given more than once";

/// The fields a client may send, in the order errors are reported.
const FIELDS: [&str; 4] = ["title", "author", "year", "genre"];

/// The ranges of Unicode's `Default_Ignorable_Code_Point` property (DerivedCoreProperties.txt):
/// zero-width spaces and joiners, the byte-order mark, soft hyphens, variation selectors,
/// bidi controls, Hangul fillers, tag characters.
pub const DEFAULT_IGNORABLE: [(char, char); 17] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether a character shows nothing: whitespace (Unicode `White_Space`, what `str::trim`
/// removes), a control character (`Cc`) or a default-ignorable code point. Text is trimmed of
/// these at both ends, so a title made only of them (a lone zero-width space, say) is blank.
/// The browser (`frontend/js/validate.js`) and the OpenAPI patterns (`http/openapi.rs`) use
/// the same set.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || DEFAULT_IGNORABLE
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&c))
}

/// `raw` without invisible characters at either end.
pub fn trim(raw: &str) -> &str {
    raw.trim_matches(is_invisible)
}

/// Trims `raw`, refuses control characters inside it, and checks its length in characters
/// (not bytes); `rule` names what a wrong length breaks.
fn trimmed_text(raw: &str, rule: &'static str) -> Result<String, &'static str> {
    let trimmed = trim(raw);
    if trimmed.chars().any(char::is_control) {
        return Err(CONTROL_RULE);
    }
    trimmed
        .validate_length(Some(1), Some(TEXT_MAX_CHARS), None)
        .then(|| trimmed.to_owned())
        .ok_or(rule)
}

/// A JSON string's value, or `None` for any other kind of value.
fn json_string(raw: &RawValue) -> Option<String> {
    raw.get()
        .starts_with('"')
        .then(|| serde_json::from_str(raw.get()).ok())
        .flatten()
}

macro_rules! required_text {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Trims invisible characters from the ends, then requires 1 to 50 characters.
            pub fn parse(raw: &str) -> Result<Self, &'static str> {
                trimmed_text(raw, TEXT_RULE).map(Self)
            }

            fn from_json(value: &RawValue) -> Result<Self, &'static str> {
                json_string(value).ok_or(TEXT_RULE).and_then(|s| Self::parse(&s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

required_text!(
    /// A book's title: trimmed, 1 to 50 characters.
    Title
);
required_text!(
    /// A book's author: trimmed, 1 to 50 characters.
    Author
);

/// A book's genre: trimmed, 1 to 50 characters. "No genre" is `Option::None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genre(String);

impl Genre {
    /// A blank genre (nothing visible) means "no genre" and becomes `None`.
    pub fn parse(raw: &str) -> Result<Option<Self>, &'static str> {
        if trim(raw).is_empty() {
            return Ok(None);
        }
        trimmed_text(raw, GENRE_RULE).map(|g| Some(Self(g)))
    }

    fn from_json(value: &RawValue) -> Result<Option<Self>, &'static str> {
        if value.get() == "null" {
            return Ok(None);
        }
        json_string(value).ok_or(GENRE_RULE).and_then(|s| Self::parse(&s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A publication year from -5000 to 2100 (negative years are BCE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Year(i64);

impl Year {
    pub fn new(year: i64) -> Result<Self, &'static str> {
        year.validate_range(Some(YEAR_MIN), Some(YEAR_MAX), None, None)
            .then_some(Self(year))
            .ok_or(YEAR_RULE)
    }

    /// As PostgreSQL's `integer` column holds it.
    pub fn get_i32(self) -> i32 {
        i32::try_from(self.0).expect("a valid year (-5000 to 2100) fits an i32")
    }

    /// Accepts a JSON number with no fractional part (`1965`, `1965.0` or `1.965e3`, as JSON
    /// Schema's `integer` does), however large its exponent (`1e309` is simply out of range);
    /// a string such as `"1965"` is rejected.
    fn from_json(value: &RawValue) -> Result<Self, &'static str> {
        let text = value.get();
        if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Err(YEAR_RULE);
        }
        let year = text.parse::<i64>().ok().or_else(|| {
            // The text is a valid JSON number, so Rust's float syntax reads it (to infinity,
            // if it overflows).
            text.parse::<f64>()
                .ok()
                .filter(|f| f.fract() == 0.0 && f.abs() <= 1e6)
                .map(|f| f as i64)
        });
        year.ok_or(YEAR_RULE).and_then(Self::new)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A complete, valid set of client-supplied fields: the body of `POST` and `PUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBook {
    pub title: Title,
    pub author: Author,
    pub year: Year,
    pub genre: Option<Genre>,
}

impl NewBook {
    /// Checks a `POST`/`PUT` body: all of `title`, `author`, `year`; optional `genre`;
    /// nothing else, and nothing twice.
    pub fn from_json(object: &JsonObject) -> Result<Self, Vec<FieldError>> {
        let mut errors = Errors::for_object(object);
        let title = errors.required(object, "title", Title::from_json);
        let author = errors.required(object, "author", Author::from_json);
        let year = errors.required(object, "year", Year::from_json);
        let genre = errors.optional(object, "genre", Genre::from_json);
        match (title, author, year) {
            (Some(title), Some(author), Some(year)) if errors.is_empty() => Ok(Self {
                title,
                author,
                year,
                genre: genre.flatten(),
            }),
            _ => Err(errors.into_sorted()),
        }
    }

    /// Whether `book` already holds exactly these fields (so writing them changes nothing).
    pub fn matches(&self, book: &Book) -> bool {
        self.title.as_str() == book.title
            && self.author.as_str() == book.author
            && self.year.get() == book.year
            && self.genre.as_ref().map(Genre::as_str) == book.genre.as_deref()
    }

    /// A stable digest of the fields, to tell whether a retried request carries the same
    /// book (idempotent creation): hex SHA-256 of their JSON.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!([
            self.title.as_str(),
            self.author.as_str(),
            self.year.get(),
            self.genre.as_ref().map(Genre::as_str),
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A JSON merge patch (RFC 7396) of a book: `None` leaves a field as it is, and
/// `genre: Some(None)` clears the genre.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookPatch {
    pub title: Option<Title>,
    pub author: Option<Author>,
    pub year: Option<Year>,
    pub genre: Option<Option<Genre>>,
}

impl BookPatch {
    /// Checks a `PATCH` body: any subset of the fields; `title`, `author` and `year` cannot
    /// be cleared with `null`.
    pub fn from_json(object: &JsonObject) -> Result<Self, Vec<FieldError>> {
        let mut errors = Errors::for_object(object);
        let patch = Self {
            title: errors.optional(object, "title", Title::from_json),
            author: errors.optional(object, "author", Author::from_json),
            year: errors.optional(object, "year", Year::from_json),
            genre: errors.optional(object, "genre", Genre::from_json),
        };
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors.into_sorted())
        }
    }

    /// The book as it will be after the patch.
    ///
    /// Fields the patch leaves alone are re-checked, so a row edited outside the API into
    /// something invalid is reported rather than carried along.
    pub fn apply_to(self, current: &Book) -> Result<NewBook, Vec<FieldError>> {
        let mut errors = Errors::default();
        let title = self
            .title
            .or_else(|| errors.stored("title", Title::parse(&current.title)));
        let author = self
            .author
            .or_else(|| errors.stored("author", Author::parse(&current.author)));
        let year = self
            .year
            .or_else(|| errors.stored("year", Year::new(current.year)));
        let genre = match self.genre {
            Some(genre) => genre,
            None => errors
                .stored("genre", Genre::parse(current.genre.as_deref().unwrap_or("")))
                .flatten(),
        };
        match (title, author, year) {
            (Some(title), Some(author), Some(year)) if errors.is_empty() => Ok(NewBook {
                title,
                author,
                year,
                genre,
            }),
            _ => Err(errors.into_sorted()),
        }
    }
}

/// A change to an existing book: data, so that it can be queued, logged and applied by any
/// engine inside the transaction that reads the current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// `PUT`: every field replaced.
    Replace(NewBook),
    /// `PATCH`: the fields the patch names.
    Patch(BookPatch),
}

impl Edit {
    /// The book after the edit, or the fields it would break.
    pub fn apply_to(self, current: &Book) -> Result<NewBook, Vec<FieldError>> {
        match self {
            Self::Replace(book) => Ok(book),
            Self::Patch(patch) => patch.apply_to(current),
        }
    }
}

/// Collects every broken rule of one body before giving up.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    /// Starts with one error per field the contract does not know, and per name sent twice.
    fn for_object(object: &JsonObject) -> Self {
        let mut errors: Vec<FieldError> = Vec::new();
        // In linear time: a body of thousands of distinct unknown names is cheap to refuse.
        let mut unknown = std::collections::HashSet::new();
        for name in object.names() {
            if !FIELDS.contains(&name) && unknown.insert(name) {
                errors.push(FieldError::new(name, UNKNOWN));
            }
        }
        for name in object.repeated() {
            if FIELDS.contains(&name) {
                errors.push(FieldError::new(name, REPEATED));
            }
        }
        Self(errors)
    }

    fn required<T>(
        &mut self,
        object: &JsonObject,
        field: &str,
        parse: impl FnOnce(&RawValue) -> Result<T, &'static str>,
    ) -> Option<T> {
        match object.get(field) {
            None => {
                self.0.push(FieldError::new(field, REQUIRED));
                None
            }
            Some(value) => self.record(field, parse(value)),
        }
    }

    fn optional<T>(
        &mut self,
        object: &JsonObject,
        field: &str,
        parse: impl FnOnce(&RawValue) -> Result<T, &'static str>,
    ) -> Option<T> {
        object
            .get(field)
            .and_then(|value| self.record(field, parse(value)))
    }

    fn stored<T>(&mut self, field: &str, parsed: Result<T, &'static str>) -> Option<T> {
        self.record(field, parsed)
    }

    /// Records a broken rule (one message per field: a repeated name already has one).
    fn record<T>(&mut self, field: &str, parsed: Result<T, &'static str>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(message) => {
                if !self.0.iter().any(|e| e.field == field) {
                    self.0.push(FieldError::new(field, message));
                }
                None
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Contract fields first, in contract order, then unknown fields by name.
    fn into_sorted(mut self) -> Vec<FieldError> {
        self.0.sort_by_key(|e| {
            let rank = FIELDS.iter().position(|f| *f == e.field);
            (rank.unwrap_or(FIELDS.len()), e.field.clone())
        });
        self.0
    }
}

/// A stored book, as the API returns it (both engines' rows read into it in
/// `store/statement.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 42, "title": "Dune", "author": "Frank Herbert", "year": 1965,
    "genre": "Science fiction",
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"
}))]
pub struct Book {
    /// Assigned by the server; never reused.
    #[schema(minimum = 1)]
    pub id: i64,
    #[schema(min_length = 1, max_length = 50)]
    pub title: String,
    #[schema(min_length = 1, max_length = 50)]
    pub author: String,
    #[schema(minimum = -5000, maximum = 2100)]
    pub year: i64,
    #[schema(min_length = 1, max_length = 50)]
    pub genre: Option<String>,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Bumped by every change; the `ETag` is derived from it.
    #[serde(skip)]
    #[schema(ignore)]
    pub version: i64,
}

/// A time as the API writes it: RFC 3339, UTC, whole seconds. (Each engine's `dialect.rs`
/// says how its database stores one: SQLite as this text, PostgreSQL as `timestamptz`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp(String);

impl Timestamp {
    pub fn now() -> Self {
        Self::of(OffsetDateTime::now_utc())
    }

    pub fn of(at: OffsetDateTime) -> Self {
        let at = at
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .expect("zero nanoseconds is a valid time");
        Self(
            at.format(&Rfc3339)
                .expect("a time a database or this process holds formats as RFC 3339"),
        )
    }

    /// Text already in this form (as SQLite stores it, or a cursor carries it).
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parse(&self) -> Result<OffsetDateTime, time::error::Parse> {
        OffsetDateTime::parse(&self.0, &Rfc3339)
    }
}

impl From<Timestamp> for String {
    fn from(stamp: Timestamp) -> Self {
        stamp.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: serde_json::Value) -> JsonObject {
        JsonObject::try_from(value).expect("an object")
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_title_is_trimmed() {
        assert_eq!(Title::parse("  Dune \n").unwrap().as_str(), "Dune");
    }

    #[test]
    fn an_empty_or_blank_title_is_rejected() {
        assert!(Title::parse("").is_err());
        assert!(Title::parse(" \t\n ").is_err());
    }

    #[test]
    fn title_length_counts_characters_not_bytes() {
        let fifty_accents = "é".repeat(50);
        assert_eq!(fifty_accents.len(), 100);
        assert!(Title::parse(&fifty_accents).is_ok());
        assert!(Title::parse(&"é".repeat(51)).is_err());
        assert!(Author::parse(&"📚".repeat(50)).is_ok());
        assert!(Author::parse(&"📚".repeat(51)).is_err());
    }

    #[test]
    fn length_is_measured_after_trimming() {
        let padded = format!("   {}   ", "a".repeat(50));
        assert_eq!(Title::parse(&padded).unwrap().as_str(), "a".repeat(50));
    }

    #[test]
    fn text_with_nothing_visible_is_blank() {
        for blank in [
            "\u{200b}",
            "\u{feff}\u{200d}",
            " \u{2060} ",
            "\0",
            "\u{3164}",
            "\u{e0041}\u{e007f}",
        ] {
            assert!(Title::parse(blank).is_err(), "{blank:?}");
            assert_eq!(Genre::parse(blank).unwrap(), None, "{blank:?}");
        }
        assert_eq!(Title::parse("\u{200b}Dune\u{feff}").unwrap().as_str(), "Dune");
        assert_eq!(
            Title::parse("Zero\u{200b}width").unwrap().as_str(),
            "Zero\u{200b}width"
        );
    }

    #[test]
    fn hostile_text_is_kept_verbatim() {
        for raw in ["<img src=x onerror=alert(1)>", "'; DROP TABLE books; --", "%_\\"] {
            assert_eq!(Title::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn control_characters_inside_the_text_are_refused() {
        for raw in ["a\0b", "line\nbreak", "tab\there", "esc\u{1b}[0m", "c1\u{85}x"] {
            assert_eq!(Title::parse(raw), Err(CONTROL_RULE), "{raw:?}");
            assert_eq!(Genre::parse(raw), Err(CONTROL_RULE), "{raw:?}");
        }
        assert_eq!(
            Title::parse("\tDune\n").unwrap().as_str(),
            "Dune",
            "at the ends they are trimmed"
        );
    }

    #[test]
    fn year_bounds_are_inclusive() {
        assert!(Year::new(-5000).is_ok());
        assert!(Year::new(2100).is_ok());
        assert!(Year::new(-5001).is_err());
        assert!(Year::new(2101).is_err());
    }

    #[test]
    fn a_year_must_be_a_json_integer() {
        assert_eq!(Year::from_json(&raw("1965")).unwrap().get(), 1965);
        assert_eq!(Year::from_json(&raw("1965.0")).unwrap().get(), 1965);
        assert_eq!(Year::from_json(&raw("1.965e3")).unwrap().get(), 1965);
        assert_eq!(Year::from_json(&raw("-0")).unwrap().get(), 0);
        assert!(Year::from_json(&raw("\"1965\"")).is_err());
        assert!(Year::from_json(&raw("1965.5")).is_err());
        assert!(Year::from_json(&raw("true")).is_err());
        assert!(Year::from_json(&raw("1e300")).is_err());
        assert!(
            Year::from_json(&raw("1e309")).is_err(),
            "beyond f64: out of range, not unreadable"
        );
        assert!(Year::from_json(&raw("-1e309")).is_err());
    }

    #[test]
    fn a_blank_genre_becomes_none() {
        assert_eq!(Genre::parse("   ").unwrap(), None);
        assert_eq!(Genre::parse("").unwrap(), None);
        assert_eq!(Genre::from_json(&raw("null")).unwrap(), None);
        assert_eq!(Genre::parse(" Poetry ").unwrap().unwrap().as_str(), "Poetry");
        assert!(Genre::parse(&"x".repeat(51)).is_err());
    }

    #[test]
    fn a_complete_body_is_accepted() {
        let book = NewBook::from_json(&object(json!({
            "title": " Dune ", "author": "Frank Herbert", "year": 1965, "genre": null
        })))
        .unwrap();
        assert_eq!(book.title.as_str(), "Dune");
        assert_eq!(book.genre, None);
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let errors = NewBook::from_json(&object(json!({
            "title": "", "year": "1965", "genre": 7, "isbn": "x", "id": 3
        })))
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            ["title", "author", "year", "genre", "id", "isbn"]
        );
        assert_eq!(errors[1].message, "is required");
        assert_eq!(errors[4].message, "is not a known field");
    }

    #[test]
    fn a_field_given_twice_is_rejected_not_silently_overwritten() {
        let body = br#"{"title": "Dune", "author": "A", "year": 1965, "title": "Other"}"#;
        let errors = NewBook::from_json(&JsonObject::parse(body).unwrap()).unwrap_err();
        assert_eq!(errors, [FieldError::new("title", "is given more than once")]);
        let twice_unknown = br#"{"title": "T", "author": "A", "year": 1, "x": 1, "x": 2}"#;
        let errors = NewBook::from_json(&JsonObject::parse(twice_unknown).unwrap()).unwrap_err();
        assert_eq!(fields(&errors), ["x"]);
    }

    #[test]
    fn a_year_too_large_for_any_number_type_is_a_field_error() {
        let body = br#"{"title": "T", "author": "A", "year": 1e309}"#;
        let errors = NewBook::from_json(&JsonObject::parse(body).unwrap()).unwrap_err();
        assert_eq!(errors, [FieldError::new("year", YEAR_RULE)]);
    }

    #[test]
    fn the_fingerprint_is_the_same_for_the_same_fields_only() {
        let a = NewBook::from_json(&object(json!({"title": " Dune", "author": "F", "year": 1965}))).unwrap();
        let b = NewBook::from_json(&object(json!({"year": 1965, "author": "F", "title": "Dune "}))).unwrap();
        let c = NewBook::from_json(&object(json!({"title": "Dune", "author": "F", "year": 1966}))).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn a_patch_may_clear_the_genre_but_not_the_title() {
        let patch = BookPatch::from_json(&object(json!({"genre": null}))).unwrap();
        assert_eq!(patch.genre, Some(None));
        let errors = BookPatch::from_json(&object(json!({"title": null}))).unwrap_err();
        assert_eq!(fields(&errors), ["title"]);
    }

    #[test]
    fn a_patch_changes_only_the_fields_it_names() {
        let current = Book {
            id: 1,
            title: "Dune".into(),
            author: "Frank Herbert".into(),
            year: 1965,
            genre: Some("Science fiction".into()),
            created_at: "2026-11-25T10:00:00Z".into(),
            updated_at: "2026-11-25T10:00:00Z".into(),
            version: 1,
        };
        let patch = BookPatch::from_json(&object(json!({"year": 1966}))).unwrap();
        let next = patch.apply_to(&current).unwrap();
        assert_eq!(next.title.as_str(), "Dune");
        assert_eq!(next.year.get(), 1966);
        assert_eq!(next.genre.unwrap().as_str(), "Science fiction");
    }
}
