//! Books and pages as the store hands them out: their JSON, made once, plus what HTTP needs
//! to know about them (the id and version behind the `ETag`). Cached books are kept in this
//! form only: a few hundred bytes each, rather than the struct, its strings and the JSON.

use std::sync::Arc;

use axum::body::Bytes;

use crate::domain::{After, Book};

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

/// A page of a listing: the books as a JSON array, and the number matching in all.
#[derive(Debug)]
pub struct Page {
    pub json: Bytes,
    pub total: i64,
    /// Books on the page.
    pub len: usize,
    /// The last book's place in the listing (a cursor for the next page), if any.
    pub last: Option<After>,
}

impl Page {
    pub fn of_books(books: &[Book], total: i64) -> Self {
        Self {
            json: to_json(books),
            total,
            len: books.len(),
            last: None,
        }
    }

    /// The same page, knowing where its last book stands in the listing.
    pub fn ending_at(self, last: Option<After>) -> Self {
        Self { last, ..self }
    }

    /// A page made of books already in JSON form (cached ones), without serializing again.
    pub fn of_stored(books: &[BookRef], total: i64) -> Self {
        let mut json = Vec::with_capacity(2 + books.iter().map(|b| b.json.len() + 1).sum::<usize>());
        json.push(b'[');
        for (i, book) in books.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(&book.json);
        }
        json.push(b']');
        Self {
            json: Bytes::from(json),
            total,
            len: books.len(),
            last: None,
        }
    }

    pub fn weight(&self) -> u64 {
        (self.json.len() + 128) as u64
    }
}

/// Serialized and boxed to its exact size: cached values live long, and a growable buffer
/// keeps up to twice the bytes it holds.
fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Bytes {
    let json = serde_json::to_vec(value).expect("books (strings and integers) always serialize");
    Bytes::from(json.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_stored_books_is_the_same_json_as_a_page_of_books() {
        let books: Vec<Book> = (1..=3)
            .map(|id| Book {
                id,
                title: format!("Book \"{id}\""),
                author: "A".into(),
                year: 2000,
                genre: None,
                created_at: "2026-11-25T10:00:00Z".into(),
                updated_at: "2026-11-25T10:00:00Z".into(),
                version: 1,
            })
            .collect();
        let stored: Vec<BookRef> = books.iter().map(StoredBook::of).collect();
        assert_eq!(Page::of_stored(&stored, 3).json, Page::of_books(&books, 3).json);
        assert_eq!(&Page::of_stored(&[], 0).json[..], b"[]");
    }
}
