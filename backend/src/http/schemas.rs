//! The schemas of the book bodies (`POST`, `PUT` and `PATCH /books`), for the OpenAPI
//! document. They are written out by hand, because JSON Schema has no "trim" keyword: the
//! patterns below say "1 to 50 characters after removing invisible characters at either end"
//! with exactly the characters the domain trims (`domain::is_invisible`), so that a client or
//! fuzzer that trusts the schema is never surprised by the server. Tests check the patterns
//! against the domain rules.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::DEFAULT_IGNORABLE;

/// Unicode `White_Space` (what `char::is_whitespace` accepts) and the control characters
/// (`Cc`), as escapes that ECMA-262, Python and Rust regexes read alike.
const WHITESPACE_AND_CONTROLS: &str =
    r"\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The inside of a character class of exactly the characters the domain trims
/// (`domain::is_invisible`). Default-ignorable code points beyond U+FFFF are written as the
/// characters themselves: no escape for them is read alike by ECMA-262 (without the `u`
/// flag), Python and Rust.
fn invisible_class() -> String {
    let mut class = WHITESPACE_AND_CONTROLS.to_owned();
    for (low, high) in DEFAULT_IGNORABLE {
        let one = |c: char| {
            if u32::from(c) <= 0xffff {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        };
        class.push_str(&one(low));
        if high != low {
            class.push('-');
            class.push_str(&one(high));
        }
    }
    class
}

/// The control characters (`Cc`), which may not appear inside a text.
const CONTROLS: &str = r"\u0000-\u001f\u007f-\u009f";

/// 1 to 50 characters once invisible characters at either end are removed, and no control
/// character in between.
pub fn text_pattern() -> String {
    let class = invisible_class();
    let (blank, text, inner) = (
        format!("[{class}]"),
        format!("[^{class}]"),
        format!("[^{CONTROLS}]"),
    );
    format!(r"^{blank}*{text}(?:{inner}{{0,48}}{text})?{blank}*$")
}

/// Like [`text_pattern`], but blank is allowed too (a blank genre means no genre).
pub fn genre_pattern() -> String {
    let class = invisible_class();
    let (blank, text, inner) = (
        format!("[{class}]"),
        format!("[^{class}]"),
        format!("[^{CONTROLS}]"),
    );
    format!(r"^{blank}*(?:{text}(?:{inner}{{0,48}}{text})?)?{blank}*$")
}

fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(text_pattern()))
        .description(Some(description))
}

fn year() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(-5000))
        .maximum(Some(2100))
        .description(Some(
            "Year of publication, -5000 to 2100 (negative years are BCE)",
        ))
}

fn genre() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(genre_pattern()))
        .description(Some(
            "Optional; trimmed, at most 50 characters; null or blank means no genre",
        ))
}

/// An object of the four book fields and nothing else.
fn book_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .property("title", text("Trimmed, then 1 to 50 characters"))
        .property("author", text("Trimmed, then 1 to 50 characters"))
        .property("year", year())
        .property("genre", genre())
}

/// The body of `POST /books` and `PUT /books/{id}` (documentation only: the body is checked
/// by `domain::NewBook`).
pub struct BookInput;

impl PartialSchema for BookInput {
    fn schema() -> RefOr<Schema> {
        book_object()
            .required("title")
            .required("author")
            .required("year")
            .examples([serde_json::json!({
                "title": "Dune", "author": "Frank Herbert", "year": 1965, "genre": "Science fiction"
            })])
            .into()
    }
}

impl ToSchema for BookInput {}

/// The body of `PATCH /books/{id}`: any subset of the fields (documentation only: the body
/// is checked by `domain::BookPatch`).
pub struct BookPatchInput;

impl PartialSchema for BookPatchInput {
    fn schema() -> RefOr<Schema> {
        book_object()
            .examples([serde_json::json!({"genre": null})])
            .into()
    }
}

impl ToSchema for BookPatchInput {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Genre, Title};

    /// Strings around every edge of the rule: blank, 1 character, 49 to 51 characters, with
    /// whitespace (and look-alikes that are not whitespace) on the ends and in the middle.
    fn candidates() -> Vec<String> {
        let edges = [
            "",
            " ",
            "\t\n",
            "\u{3000}",
            "\u{85}",
            "\u{a0}\u{2028}",
            "\u{1c}",
            "\u{feff}",
            "\u{200b}",
            "\u{e0020}",
            "\u{fffc}",
        ];
        let mut out = Vec::new();
        for prefix in edges {
            for suffix in edges {
                for len in [0, 1, 2, 48, 49, 50, 51] {
                    for fill in ["a", "é", "📚", "a b", "a\nb", "a\0b", "a\u{85}b"] {
                        let body: String = fill.chars().cycle().take(len).collect();
                        out.push(format!("{prefix}{body}{suffix}"));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_text_pattern_accepts_exactly_what_the_domain_accepts() {
        let pattern = regex::Regex::new(&text_pattern()).unwrap();
        for candidate in candidates() {
            assert_eq!(
                pattern.is_match(&candidate),
                Title::parse(&candidate).is_ok(),
                "{candidate:?} ({} chars)",
                candidate.chars().count()
            );
        }
    }

    #[test]
    fn the_genre_pattern_accepts_exactly_what_the_domain_accepts() {
        let pattern = regex::Regex::new(&genre_pattern()).unwrap();
        for candidate in candidates() {
            assert_eq!(
                pattern.is_match(&candidate),
                Genre::parse(&candidate).is_ok(),
                "{candidate:?}"
            );
        }
    }

    #[test]
    fn the_class_holds_exactly_the_characters_the_domain_trims() {
        let class = regex::Regex::new(&format!("^[{}]$", invisible_class())).unwrap();
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            assert_eq!(
                class.is_match(&c.to_string()),
                crate::domain::is_invisible(c),
                "U+{:04X}",
                c as u32
            );
        }
    }
}
