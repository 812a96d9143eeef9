//! Conditional requests (RFC 9110 §13) in HTTP terms: the `ETag` of every book, and
//! `If-None-Match` on reads for cheap re-reads (304). Changes carry their conditions to the
//! store as a [`crate::domain::Precondition`], which is evaluated in the transaction.
//!
//! A book's tag is `"<id>.<version>"`, a strong validator: the version changes with every
//! write, and responses that carry a tag are never compressed (see `http/mod.rs`), so the
//! same tag always means the same bytes.

use axum::http::header::IF_NONE_MATCH;
use axum::http::{HeaderMap, HeaderValue};

use super::input::tags;
use crate::domain::tag_of;
use crate::store::StoredBook;

pub fn etag(book: &StoredBook) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", tag_of(book.id, book.version)))
        .expect("digits, a dot and quotes are a valid header value")
}

/// Whether `If-None-Match` names the book's current tag (weak comparison), so the client's
/// copy is current and the answer is 304.
pub fn none_match_hits(headers: &HeaderMap, book: &StoredBook) -> bool {
    tags(headers, IF_NONE_MATCH).is_some_and(|tags| tags.match_weak(&tag_of(book.id, book.version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(id: i64, version: i64) -> std::sync::Arc<StoredBook> {
        StoredBook::from_parts(id, version, b"{}".to_vec())
    }

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_tag_names_the_book_and_its_version() {
        assert_eq!(etag(&book(7, 3)), "\"7.3\"");
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        let current = book(7, 3);
        assert!(none_match_hits(&with("\"7.3\""), &current));
        assert!(none_match_hits(&with("\"1.1\", W/\"7.3\""), &current));
        assert!(none_match_hits(&with("*"), &current));
        assert!(!none_match_hits(&with("\"7.2\""), &current));
        assert!(!none_match_hits(&with("\"07.3\""), &current));
        assert!(!none_match_hits(&HeaderMap::new(), &current));
    }
}
