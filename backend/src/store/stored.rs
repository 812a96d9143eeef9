//! Books and pages as the store hands them out: their JSON, made once, plus what HTTP needs
//! to know about them (the id and version behind the `ETag`, the count and the cursor of a
//! page). Cached books are kept in this form only: a few hundred bytes each, rather than the
//! struct, its strings and the JSON.

use std::sync::Arc;

use axum::body::Bytes;

use serde_json::value::RawValue;

use crate::domain::{Book, Cursor, SortKey};

/// A book as the store hands it out.
pub type BookRef = Arc<StoredBook>;

#[derive(Debug)]
pub struct StoredBook {
    pub id: i64,
    pub version: i64,
    json: Bytes,
}

impl StoredBook {
    pub fn of(book: &Book) -> BookRef {
        Arc::new(Self {
            id: book.id,
            version: book.version,
            json: to_json(book),
        })
    }

    /// A book already in its JSON form (an answer kept for an idempotent retry).
    pub fn from_parts(id: i64, version: i64, json: Vec<u8>) -> BookRef {
        Arc::new(Self {
            id,
            version,
            json: Bytes::from(json.into_boxed_slice()),
        })
    }

    /// The book as the API returns it.
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }

    /// Roughly what the cached book costs in memory, allocator overhead included.
    pub fn weight(&self) -> u64 {
        (self.json.len() + 96) as u64
    }
}

/// A page of a listing: the books as a JSON array, and how many match in all.
#[derive(Debug)]
pub struct Page {
    pub json: Bytes,
    pub total: Total,
    /// Books on the page.
    pub len: usize,
    /// The last book's place in the listing (a cursor for the next page), if any.
    pub last: Option<Cursor>,
}

/// How many books a listing matches: exactly, or (a search past the count's cap) at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    pub at_least: bool,
}

impl Total {
    pub fn exact(count: i64) -> Self {
        Self {
            count,
            at_least: false,
        }
    }

    pub fn at_least(count: i64) -> Self {
        Self {
            count,
            at_least: true,
        }
    }
}

impl Page {
    /// A page the database wrote: `books` is a JSON array of books, in the listing's order.
    /// Its last book gives the cursor of the next page.
    pub fn of_json(books: String, total: Total, sort: SortKey) -> serde_json::Result<Self> {
        let (len, last) = {
            let items: Vec<&RawValue> = serde_json::from_str(&books)?;
            let last = items.last().map(|last| serde_json::from_str::<Book>(last.get()));
            (items.len(), last.transpose()?)
        };
        Ok(Self {
            json: Bytes::from(books.into_bytes().into_boxed_slice()),
            total,
            len,
            last: last.map(|book| Cursor::after(&book, sort)),
        })
    }
}

/// Serialized and boxed to its exact size: cached values live long, and a growable buffer
/// keeps up to twice the bytes it holds.
fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Bytes {
    let json = serde_json::to_vec(value).expect("books (strings and integers) always serialize");
    Bytes::from(json.into_boxed_slice())
}
