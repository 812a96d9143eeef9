//! An in-memory cache of books and listing pages in front of SQLite.
//!
//! Only this process writes the database (every write goes through the store's writer), so
//! the writer can keep the cache exact: after each committed batch it stores the new
//! versions of the books it changed, forgets the ones it deleted, and moves the listing epoch
//! on, which retires every cached page at once.
//!
//! Readers fill the cache on a miss. A reader notes the epoch *before* it queries and only
//! stores what it read if no write has been applied since (checked under the same lock the
//! writer applies under), so a slow reader can never put an old version back.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::writer::Change;
use crate::domain::ListQuery;
use crate::store::stored::{BookRef, Page};

/// Memory for cached books and for cached pages: together well under the service's memory
/// budget, and enough for every book of a 10,000-book catalogue (about 250 bytes each), or
/// for the books of the first pages of a big catalogue's busiest listings. (Listings fill it
/// too: a write retires every cached page, not the books on them.)
const BOOKS_BYTES: u64 = 4 << 20;
const PAGES_BYTES: u64 = 2 << 20;

pub struct BookCache {
    books: Cache<i64, BookRef, BookWeight>,
    pages: Cache<(u64, ListQuery), Arc<Page>, PageWeight>,
    /// Moves on when an existing book changes or goes: a book read before that is suspect.
    item_epoch: AtomicU64,
    /// Moves on with every committed write: any page read before that is suspect.
    list_epoch: AtomicU64,
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
            pages: Cache::with_weighter(1024, PAGES_BYTES, PageWeight),
            item_epoch: AtomicU64::new(0),
            list_epoch: AtomicU64::new(0),
            apply: Mutex::new(()),
        }
    }

    pub fn book(&self, id: i64) -> Option<BookRef> {
        self.books.get(&id)
    }

    pub fn item_epoch(&self) -> Epoch {
        Epoch(self.item_epoch.load(Ordering::Acquire))
    }

    /// Caches books read from the database, unless a change was applied since `seen`.
    pub fn fill_books(&self, seen: Epoch, books: &[BookRef]) {
        if books.is_empty() {
            return;
        }
        let _apply = self.apply.lock().unwrap_or_else(|e| e.into_inner());
        if self.item_epoch.load(Ordering::Acquire) == seen.0 {
            for book in books {
                self.books.insert(book.id, book.clone());
            }
        }
    }

    pub fn list_epoch(&self) -> Epoch {
        Epoch(self.list_epoch.load(Ordering::Acquire))
    }

    pub fn page(&self, epoch: Epoch, query: &ListQuery) -> Option<Arc<Page>> {
        self.pages.get(&(epoch.0, query.clone()))
    }

    /// Caches a page read from the database under the epoch it was read in. Once a write
    /// moves the epoch on, nobody asks for it again and it ages out.
    pub fn fill_page(&self, seen: Epoch, query: ListQuery, page: Arc<Page>) {
        let _apply = self.apply.lock().unwrap_or_else(|e| e.into_inner());
        if self.list_epoch.load(Ordering::Acquire) == seen.0 {
            self.pages.insert((seen.0, query), page);
        }
    }

    /// Applies a committed batch. Called by the writer only, before it answers anyone.
    pub fn apply(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let _apply = self.apply.lock().unwrap_or_else(|e| e.into_inner());
        if changes.iter().any(|c| !matches!(c, Change::Created(_))) {
            self.item_epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.list_epoch.fetch_add(1, Ordering::AcqRel);
        for change in changes {
            match change {
                // Nobody can have cached a book that did not exist; new books are cached
                // when first read, so a burst of creates does not crowd out the books in use.
                Change::Created(_) => {}
                Change::Updated(_, stored) => self.books.insert(stored.id, stored.clone()),
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

#[derive(Clone)]
struct PageWeight;

/// A page costs its JSON and its key, which holds the query's text filters (up to 200
/// characters each): counting only the JSON would let a stream of distinct searches that
/// match nothing (two bytes of JSON each) fill the budget with tens of thousands of keys.
impl Weighter<(u64, ListQuery), Arc<Page>> for PageWeight {
    fn weight(&self, (_, query): &(u64, ListQuery), page: &Arc<Page>) -> u64 {
        let text = [&query.q, &query.author, &query.genre]
            .iter()
            .map(|filter| filter.as_ref().map_or(0, |s| s.capacity() + 32))
            .sum::<usize>();
        page.weight() + (std::mem::size_of::<(u64, ListQuery)>() + text) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Book;
    use crate::store::StoredBook;

    fn book(id: i64, version: i64) -> BookRef {
        StoredBook::of(&full(id, version))
    }

    fn full(id: i64, version: i64) -> Book {
        Book {
            id,
            title: format!("Book {id}"),
            author: "A".into(),
            year: 2000,
            genre: None,
            created_at: String::new(),
            updated_at: String::new(),
            version,
        }
    }

    #[test]
    fn a_fill_that_raced_an_update_is_dropped() {
        let cache = BookCache::new();
        let seen = cache.item_epoch();
        cache.apply(&[Change::Updated(Arc::new(full(1, 2)), book(1, 2))]);
        cache.fill_books(seen, &[book(1, 1)]);
        assert_eq!(
            cache.book(1).unwrap().version,
            2,
            "the old version does not come back"
        );
    }

    #[test]
    fn a_fill_that_raced_a_delete_is_dropped() {
        let cache = BookCache::new();
        let seen = cache.item_epoch();
        cache.apply(&[Change::Deleted(1)]);
        cache.fill_books(seen, &[book(1, 1)]);
        assert!(cache.book(1).is_none());
    }

    #[test]
    fn creates_do_not_invalidate_reads_of_other_books() {
        let cache = BookCache::new();
        let seen = cache.item_epoch();
        cache.apply(&[Change::Created(Arc::new(full(2, 1)))]);
        cache.fill_books(seen, &[book(1, 1)]);
        assert!(cache.book(1).is_some());
    }

    #[test]
    fn a_page_weighs_its_key_too() {
        let empty = Arc::new(Page::of_books(&[], 0));
        let query = ListQuery {
            q: Some("x".repeat(200)),
            ..ListQuery::default()
        };
        assert!(PageWeight.weight(&(0, query), &empty) > 300);
    }

    #[test]
    fn any_write_retires_every_cached_page() {
        let cache = BookCache::new();
        let query = ListQuery::default();
        let page = Arc::new(Page::of_books(&[], 0));
        let epoch = cache.list_epoch();
        cache.fill_page(epoch, query.clone(), page);
        assert!(cache.page(cache.list_epoch(), &query).is_some());
        cache.apply(&[Change::Created(Arc::new(full(1, 1)))]);
        assert!(cache.page(cache.list_epoch(), &query).is_none());

        let stale = cache.list_epoch();
        cache.apply(&[Change::Created(Arc::new(full(2, 1)))]);
        cache.fill_page(stale, query.clone(), Arc::new(Page::of_books(&[], 0)));
        assert!(
            cache.page(stale, &query).is_none(),
            "a page read before a write is not kept"
        );
    }
}
