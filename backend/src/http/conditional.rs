//! Conditional requests (RFC 9110 §13): `ETag` on every book, `If-None-Match` for cheap
//! re-reads (304), and `If-Match` so that a client only changes the version it has seen (412).
//!
//! A book's tag is `"<id>.<version>"`, a strong validator: the version changes with every
//! write, and responses that carry a tag are never compressed (see `http/mod.rs`), so the
//! same tag always means the same bytes.

use axum::extract::FromRequestParts;
use axum::http::header::{IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use crate::error::Error;
use crate::store::StoredBook;

pub fn etag(book: &StoredBook) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}.{}\"", book.id, book.version))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0.0\""))
}

/// Whether `If-None-Match` names the book's current tag (weak comparison), so the client's
/// copy is current and the answer is 304.
pub fn none_match_hits(headers: &HeaderMap, book: &StoredBook) -> bool {
    let current = format!("{}.{}", book.id, book.version);
    list_values(headers, IF_NONE_MATCH)
        .any(|tag| tag == "*" || opaque(tag.strip_prefix("W/").unwrap_or(tag)) == Some(current.as_str()))
}

/// The `If-Match` header, read as the versions of the book the client will accept.
#[derive(Debug, Clone, Default)]
pub struct IfMatch(Option<Vec<String>>);

impl IfMatch {
    /// `None`: no condition (no header, or `*`, which any existing book meets).
    /// `Some(versions)`: only these versions of book `id` may be changed; a tag for another
    /// book, a weak tag (never usable with `If-Match`) or a malformed one matches nothing.
    pub fn expected_versions(&self, id: i64) -> Option<Vec<i64>> {
        let tags = self.0.as_ref()?;
        if tags.iter().any(|tag| tag == "*") {
            return None;
        }
        let versions = tags
            .iter()
            .filter_map(|tag| opaque(tag))
            .filter_map(|tag| tag.split_once('.'))
            .filter(|(book, _)| book.parse() == Ok(id))
            .filter_map(|(_, version)| version.parse().ok())
            .collect();
        Some(versions)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let tags: Vec<String> = list_values(&parts.headers, IF_MATCH).map(str::to_owned).collect();
        let present = parts.headers.contains_key(IF_MATCH);
        Ok(Self(present.then_some(tags)))
    }
}

/// The comma-separated members of every instance of a list header.
fn list_values(headers: &HeaderMap, name: axum::http::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
}

/// The inside of a strong tag `"…"`; `None` for weak or malformed tags.
fn opaque(tag: &str) -> Option<&str> {
    tag.strip_prefix('"')?.strip_suffix('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(id: i64, version: i64) -> std::sync::Arc<StoredBook> {
        StoredBook::of(&crate::domain::Book {
            id,
            title: "Dune".into(),
            author: "Frank Herbert".into(),
            year: 1965,
            genre: None,
            created_at: String::new(),
            updated_at: String::new(),
            version,
        })
    }

    fn if_match(value: &str) -> IfMatch {
        IfMatch(Some(value.split(',').map(|s| s.trim().to_owned()).collect()))
    }

    fn with(name: axum::http::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_tag_names_the_book_and_its_version() {
        assert_eq!(etag(&book(7, 3)), "\"7.3\"");
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        let current = book(7, 3);
        assert!(none_match_hits(&with(IF_NONE_MATCH, "\"7.3\""), &current));
        assert!(none_match_hits(
            &with(IF_NONE_MATCH, "\"1.1\", W/\"7.3\""),
            &current
        ));
        assert!(none_match_hits(&with(IF_NONE_MATCH, "*"), &current));
        assert!(!none_match_hits(&with(IF_NONE_MATCH, "\"7.2\""), &current));
        assert!(!none_match_hits(&HeaderMap::new(), &current));
    }

    #[test]
    fn if_match_accepts_strong_tags_of_this_book_only() {
        assert_eq!(
            if_match("\"7.3\", \"7.4\"").expected_versions(7),
            Some(vec![3, 4])
        );
        assert_eq!(if_match("W/\"7.3\"").expected_versions(7), Some(vec![]));
        assert_eq!(if_match("\"8.3\"").expected_versions(7), Some(vec![]));
        assert_eq!(if_match("garbage").expected_versions(7), Some(vec![]));
        assert_eq!(if_match("*").expected_versions(7), None);
        assert_eq!(IfMatch::default().expected_versions(7), None);
    }
}
