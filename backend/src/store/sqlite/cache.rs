//! The books by id, in memory, in front of SQLite: what makes `GET /books/{id}` cost a map
//! lookup rather than a query.
//!
//! It is only a cache of the database's answers, and it stays exact because this process is
//! the database's only writer of books: after each committed batch the writer stores the new
//! versions of the books it changed and forgets the ones it deleted, before it answers
//! anyone. (Several processes need the PostgreSQL engine, which keeps no such cache: no
//! replica could know what another wrote.)
//!
//! Readers fill it on a miss. A reader notes the epoch *before* it queries and only stores
//! what it read if no change has been applied since (checked under the same lock the writer
//! applies under), so a slow reader can never put an old version back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::store::stored::BookRef;

/// Memory for cached books: enough for every book of a 20,000-book catalogue (about 250
/// bytes each), or for the busiest books of a bigger one.
const BOOKS_BYTES: u64 = 4 << 20;

/// What a committed write did to one book, for the cache.
#[derive(Clone)]
pub enum Change {
    /// A new book: nobody can have cached it, so there is nothing to learn. (New books are
    /// cached when first read, so a burst of creates does not crowd out the books in use.)
    Created,
    Updated(BookRef),
    Deleted(i64),
}

pub struct BookCache {
    books: Cache<i64, BookRef, BookWeight>,
    /// Moves on when an existing book changes or goes: a book read before that is suspect.
    epoch: AtomicU64,
    /// Serializes "check the epoch, then store" (readers) with "move the epoch, then
    /// store" (the writer).
    apply: Mutex<()>,
}

/// Where a reader started, so that it can tell whether its result may be cached.
#[derive(Clone, Copy)]
pub struct Epoch(u64);

impl BookCache {
    pub fn new() -> Self {
        Self {
            books: Cache::with_weighter(16_384, BOOKS_BYTES, BookWeight),
            epoch: AtomicU64::new(0),
            apply: Mutex::new(()),
        }
    }

    pub fn book(&self, id: i64) -> Option<BookRef> {
        self.books.get(&id)
    }

    pub fn epoch(&self) -> Epoch {
        Epoch(self.epoch.load(Ordering::Acquire))
    }

    /// Caches a book read from the database, unless a change was applied since `seen`.
    pub fn fill(&self, seen: Epoch, book: &BookRef) {
        let _apply = self.apply.lock().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) == seen.0 {
            self.books.insert(book.id, book.clone());
        }
    }

    /// Applies a committed batch. Called by the writer only, before it answers anyone.
    pub fn apply(&self, changes: &[Change]) {
        if changes.iter().all(|c| matches!(c, Change::Created)) {
            return;
        }
        let _apply = self.apply.lock().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for change in changes {
            match change {
                Change::Created => {}
                Change::Updated(stored) => self.books.insert(stored.id, stored.clone()),
                Change::Deleted(id) => {
                    self.books.remove(id);
                }
            }
        }
    }
}

#[derive(Clone)]
struct BookWeight;

impl Weighter<i64, BookRef> for BookWeight {
    fn weight(&self, _: &i64, book: &BookRef) -> u64 {
        book.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Book;
    use crate::store::StoredBook;

    fn book(id: i64, version: i64) -> BookRef {
        StoredBook::of(&Book {
            id,
            title: format!("Book {id}"),
            author: "A".into(),
            year: 2000,
            genre: None,
            created_at: "2026-11-25T10:00:00Z".into(),
            updated_at: "2026-11-25T10:00:00Z".into(),
            version,
        })
    }

    #[test]
    fn a_fill_that_raced_an_update_is_dropped() {
        let cache = BookCache::new();
        let seen = cache.epoch();
        cache.apply(&[Change::Updated(book(1, 2))]);
        cache.fill(seen, &book(1, 1));
        assert_eq!(
            cache.book(1).unwrap().version,
            2,
            "the old version does not come back"
        );
    }

    #[test]
    fn a_fill_that_raced_a_delete_is_dropped() {
        let cache = BookCache::new();
        let seen = cache.epoch();
        cache.apply(&[Change::Deleted(1)]);
        cache.fill(seen, &book(1, 1));
        assert!(cache.book(1).is_none());
    }

    #[test]
    fn creates_do_not_invalidate_reads_of_other_books() {
        let cache = BookCache::new();
        let seen = cache.epoch();
        cache.apply(&[Change::Created]);
        cache.fill(seen, &book(1, 1));
        assert!(cache.book(1).is_some());
    }
}
