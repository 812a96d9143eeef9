//! The in-memory index behind listings: every book's case-folded keys, year and creation
//! time, and every listing order kept ready, so that a page costs what the page needs and not
//! what the catalogue holds. Listings never touch SQLite except to read the page's books.
//!
//! - **Slots.** Each book lives in a slot (a number), in chunks of [`CHUNK`] slots whose title
//!   and author keys are packed into one string: a substring search (`q`) over a million
//!   books is one SIMD scan of a few tens of megabytes. A removed book's slot is reused.
//! - **Orders.** For each sort key (id, title, author, year, created_at) the slots of every
//!   book in that order ([`Order`]), and the same within each author and within each genre:
//!   the "composite indexes" of this engine, fifteen in all. A filtered, sorted page walks the
//!   smallest of them that covers the exact filters, testing the other filters as it goes,
//!   and stops when the page is full: its cost is `(offset + limit) / selectivity`, not the
//!   catalogue's size. A year range sorted by year is a contiguous stretch of the year order.
//!   Each order is built the first time a listing needs it (the id order of all books also
//!   when a change must find a book's slot), so that memory and writes pay only for the
//!   orders a deployment's listings use.
//! - **Searches.** The books a `q` matches are found once by a scan of the packed keys, then
//!   kept by the writer as a bit per slot ([`SEARCHES_KEPT`] searches at most), so that a
//!   search's page walks its order testing bits, not text.
//! - **Counts.** `X-Total-Count` without a `q` and without both `author` and `genre` is read
//!   off the orders (an order's length, or the width of a year range in the year order).
//!   The others are counted once and then kept exact by the writer, which adjusts every
//!   remembered count as it applies each change ([`COUNTS_KEPT`] filters at most).
//! - **Cursors.** A page may start after a given book (`after`, a keyset cursor): the walk
//!   starts at that key's place in the order, so deep pages cost what the first page costs.
//!
//! The writer loads the slots at start-up before it takes any write, then applies every
//! committed change here, as it does to the cache. An order asked for is built on a thread of
//! its own, from a snapshot of the slots (sorting a million titles takes a few hundred
//! milliseconds, and neither readiness nor the writer should wait for it); until then the
//! listings that need it are answered by a scan of every book, which is exact but costs what
//! the catalogue holds. Changes applied meanwhile are noted and replayed into the new orders
//! when they are installed.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};
use std::time::Instant;

use memchr::memmem;
use tokio::sync::watch;

use super::order::Order;
use super::writer::Change;
use crate::domain::{After, Book, ListQuery, SortKey, SortValue, fold_case};

/// Slots per chunk: small enough that rewriting one after an edit is cheap, large enough
/// that a scan is a few long runs.
const CHUNK: usize = 1024;
/// Counts of `q` (or author-and-genre) filters the writer keeps exact. Each write costs a
/// test of the changed book against each of them.
const COUNTS_KEPT: usize = 4096;
/// Searches (`q`) whose matching books the writer keeps, a bit per slot (125 KB each for a
/// million books): a walk tests a bit instead of searching the book's text.
const SEARCHES_KEPT: usize = 64;
/// An author or genre with more books than this keeps its own five orders; one with fewer
/// keeps only the list of its books, which a page sorts (a few hundred books at most, well
/// under a millisecond), saving most of the orders' memory and writes for most authors.
#[cfg(not(test))]
const GROUP_ORDERED_AT: usize = 256;
/// (Lower in tests, so that groups cross it both ways while their catalogues change.)
#[cfg(test)]
const GROUP_ORDERED_AT: usize = 64;
/// A book without a genre.
const NO_GENRE: u32 = u32::MAX;

const KEYS: [SortKey; 5] = [
    SortKey::Id,
    SortKey::Title,
    SortKey::Author,
    SortKey::Year,
    SortKey::CreatedAt,
];

pub struct SearchIndex {
    index: Arc<RwLock<Option<Index>>>,
    loaded: watch::Sender<bool>,
    /// The orders built so far.
    built: Arc<watch::Sender<Parts>>,
    /// Whether a thread is building orders (there is one at most).
    building: Arc<AtomicBool>,
}

/// One book's keys, as the index takes them (borrowed where they can be, as when loading).
pub struct Entry<'a> {
    pub id: i64,
    pub title_key: Cow<'a, str>,
    pub author_key: Cow<'a, str>,
    pub genre_key: Option<Cow<'a, str>>,
    pub year: i64,
    /// `created_at` as seconds since 1970 (see [`sortable_timestamp`]).
    pub created: u32,
}

impl Entry<'static> {
    pub fn of(book: &Book) -> Self {
        Self {
            id: book.id,
            title_key: Cow::Owned(fold_case(&book.title)),
            author_key: Cow::Owned(fold_case(&book.author)),
            genre_key: book.genre.as_deref().map(|g| Cow::Owned(fold_case(g))),
            year: book.year,
            created: sortable_timestamp(&book.created_at),
        }
    }
}

/// A page of matching ids, the number of matches in all, and where the next page starts.
#[derive(Debug, PartialEq, Eq)]
pub struct Hits {
    pub ids: Vec<i64>,
    pub total: i64,
    /// The last book of the page, as a cursor for the next (none on an empty page).
    pub last: Option<After>,
}

impl Hits {
    fn none() -> Self {
        Self {
            ids: Vec::new(),
            total: 0,
            last: None,
        }
    }
}

/// The state of the listing orders, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrdersState {
    /// How many of the fifteen orders are built.
    pub built: u32,
    /// Whether some are being built (listings that need them scan meanwhile).
    pub building: bool,
}

/// One round of building: the orders asked for, from a snapshot of the slots.
struct Round {
    parts: Parts,
    snapshot: Slots,
    generation: u64,
}

impl SearchIndex {
    pub fn loading() -> Self {
        Self {
            index: Arc::new(RwLock::new(None)),
            loaded: watch::Sender::new(false),
            built: Arc::new(watch::Sender::new(Parts::default())),
            building: Arc::new(AtomicBool::new(false)),
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, Option<Index>> {
        write(&self.index)
    }

    /// Installs the loaded index: listings waiting for it go on. Its orders are built as
    /// listings ask for them.
    pub fn install(&self, mut index: Index) {
        {
            let mut installed = self.write();
            index.generation = installed.as_ref().map_or(0, |old| old.generation + 1);
            *installed = Some(index);
        }
        self.loaded.send_replace(true);
        self.built.send_replace(Parts::default());
    }

    /// Applies committed changes. The writer only writes once the index is installed, so
    /// there is always an index to apply them to.
    pub fn apply(&self, changes: &[Change]) {
        let wanted = self.write().as_mut().is_some_and(|index| {
            changes.iter().for_each(|change| index.apply(change));
            index.wants_orders()
        });
        if wanted {
            self.build_wanted_orders();
        }
    }

    /// The requested page, once the index is loaded (waiting for it at start-up; the
    /// request's own time limit bounds the wait).
    pub async fn page(&self, query: &ListQuery) -> Hits {
        let mut loaded = self.loaded.subscribe();
        // The sender lives as long as `self`, so the wait only ends with the index loaded.
        let _ = loaded.wait_for(|ready| *ready).await;
        self.try_page(query)
            .expect("the index is installed before `loaded` turns true")
    }

    /// The page now, or `None` while the index loads.
    pub fn try_page(&self, query: &ListQuery) -> Option<Hits> {
        let (hits, wanted) = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            let index = index.as_ref()?;
            (index.page(query), index.wants_orders())
        };
        if wanted {
            self.build_wanted_orders();
        }
        Some(hits)
    }

    pub fn orders_state(&self) -> OrdersState {
        OrdersState {
            built: self.built.borrow().count(),
            building: self.building.load(AtomicOrdering::Acquire),
        }
    }

    /// Starts a thread that builds the orders asked for, unless one runs (it builds them).
    fn build_wanted_orders(&self) {
        if self.building.swap(true, AtomicOrdering::AcqRel) {
            return;
        }
        let (index, built, building) = (self.index.clone(), self.built.clone(), self.building.clone());
        let job = move || {
            while let Some(round) = begin_round(&index, &building) {
                let started = Instant::now();
                let orders = Orders::build(&round.snapshot, round.parts);
                finish_round(&index, &built, round, orders, started);
            }
        };
        if let Err(error) = std::thread::Builder::new()
            .name("listing-orders".into())
            .spawn(job)
        {
            // Listings stay exact without the orders, only dearer; the next one tries again.
            tracing::error!(%error, "could not start building the listing orders");
            self.building.store(false, AtomicOrdering::Release);
        }
    }
}

fn write(index: &RwLock<Option<Index>>) -> RwLockWriteGuard<'_, Option<Index>> {
    index.write().unwrap_or_else(|e| e.into_inner())
}

/// Takes the orders asked for and a snapshot to build them from, and notes the changes made
/// from now on for replay; `None` (and no longer building) when none are asked for. Both
/// under the write lock, so that a listing asking for an order after the builder looked
/// finds it gone and starts another.
fn begin_round(index: &RwLock<Option<Index>>, building: &AtomicBool) -> Option<Round> {
    let mut installed = write(index);
    let round = installed.as_mut().and_then(Index::begin_round);
    if round.is_none() {
        building.store(false, AtomicOrdering::Release);
    }
    round
}

/// Installs the orders built in a round, unless the index they were built for was replaced
/// meanwhile.
fn finish_round(
    index: &RwLock<Option<Index>>,
    built: &watch::Sender<Parts>,
    round: Round,
    orders: Orders,
    started: Instant,
) {
    let mut installed = write(index);
    if let Some(index) = installed.as_mut().filter(|i| i.generation == round.generation) {
        let replayed = index.install_orders(orders, &round.snapshot);
        tracing::info!(
            books = index.slots.live,
            orders = round.parts.count(),
            replayed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "listing orders ready"
        );
        built.send_replace(index.orders.built());
    }
}

/// Every book's keys in slots, with the orders over them built so far. Build one with
/// `Default` and [`Index::push`].
#[derive(Default)]
pub struct Index {
    slots: Slots,
    authors: Names,
    genres: Names,
    orders: Orders,
    /// Orders a listing needed that are not built (listings set it under the read lock).
    wanted: AtomicU16,
    /// Slots changed while orders are being built (from a snapshot), to replay.
    pending: Option<Vec<u32>>,
    counts: Mutex<HashMap<Filter, i64>>,
    /// The books (slots) each remembered `q` matches, kept by the writer.
    searches: Mutex<HashMap<String, Arc<Bits>>>,
    /// The highest id ever added.
    newest: i64,
    generation: u64,
}

/// Interned author or genre keys (a filter compares numbers, not strings), and how many books
/// have each.
#[derive(Default)]
struct Names {
    ids: HashMap<Box<str>, u32>,
    books: Vec<u32>,
}

impl Names {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.ids.len()).expect("fewer than 4 billion names");
        self.ids.insert(name.into(), id);
        self.books.push(0);
        id
    }

    fn find(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// Counts a book in (`true`) or out of name `id` (none for [`NO_GENRE`]).
    fn count(&mut self, id: u32, book_in: bool) {
        if let Some(books) = self.books.get_mut(id as usize) {
            *books = if book_in {
                *books + 1
            } else {
                books.saturating_sub(1)
            };
        }
    }

    fn books(&self, id: u32) -> u32 {
        self.books.get(id as usize).copied().unwrap_or(0)
    }
}

/// A set of slots, a bit each.
#[derive(Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn has(&self, slot: u32) -> bool {
        self.0
            .get(slot as usize / 64)
            .is_some_and(|word| word & (1 << (slot % 64)) != 0)
    }

    fn set(&mut self, slot: u32, on: bool) {
        let word = slot as usize / 64;
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let bit = 1 << (slot % 64);
        if on {
            self.0[word] |= bit;
        } else {
            self.0[word] &= !bit;
        }
    }

    fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(w, word)| {
            let mut rest = *word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros();
                    rest &= rest - 1;
                    (w * 64) as u32 + bit
                })
            })
        })
    }
}

/// A book's keys as stored in a slot.
#[derive(Clone, Copy)]
struct Keys<'a> {
    id: i64,
    title: &'a str,
    author: &'a str,
    author_name: u32,
    genre_name: u32,
    year: i16,
    created: u32,
}

/// The same, owned: an old version kept while a change is applied.
struct OwnedKeys {
    title: String,
    author: String,
    author_name: u32,
    genre_name: u32,
    year: i16,
}

/// Up to [`CHUNK`] slots. Slot `i`'s title and author keys are `text[fields[2i]..fields[2i+1]]`
/// and `text[fields[2i+1]..fields[2i+2]]`; a free slot has empty keys and `live[i]` false.
#[derive(Default, Clone)]
struct Chunk {
    ids: Vec<i64>,
    live: Vec<bool>,
    /// Years fit 16 bits (-5000 to 2100): the index is kept small, it holds every book.
    years: Vec<i16>,
    /// `created_at` as seconds since 1970.
    created: Vec<u32>,
    authors: Vec<u32>,
    genres: Vec<u32>,
    fields: Vec<u32>,
    text: String,
}

impl Chunk {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn title(&self, i: usize) -> &str {
        &self.text[self.fields[2 * i] as usize..self.fields[2 * i + 1] as usize]
    }

    fn author(&self, i: usize) -> &str {
        &self.text[self.fields[2 * i + 1] as usize..self.fields[2 * i + 2] as usize]
    }

    fn push(&mut self, keys: &Keys) {
        if self.fields.is_empty() {
            self.fields.push(0);
        }
        self.ids.push(keys.id);
        self.live.push(true);
        self.years.push(keys.year);
        self.created.push(keys.created);
        self.authors.push(keys.author_name);
        self.genres.push(keys.genre_name);
        for text in [keys.title, keys.author] {
            self.text.push_str(text);
            self.fields.push(offset(self.text.len()));
        }
    }

    fn shrink(&mut self) {
        self.ids.shrink_to_fit();
        self.live.shrink_to_fit();
        self.years.shrink_to_fit();
        self.created.shrink_to_fit();
        self.authors.shrink_to_fit();
        self.genres.shrink_to_fit();
        self.fields.shrink_to_fit();
        self.text.shrink_to_fit();
    }

    /// Puts `keys` in slot `i` (or frees it, for `None`).
    fn set(&mut self, i: usize, keys: Option<&Keys>) {
        let (start, end) = (self.fields[2 * i] as usize, self.fields[2 * i + 2] as usize);
        let (title, author) = keys.map_or(("", ""), |k| (k.title, k.author));
        self.text.replace_range(start..end, &format!("{title}{author}"));
        let grown = (title.len() + author.len()) as i64 - (end - start) as i64;
        self.fields[2 * i + 1] = offset(start + title.len());
        for field in &mut self.fields[2 * i + 2..] {
            *field = offset((i64::from(*field) + grown) as usize);
        }
        self.live[i] = keys.is_some();
        if let Some(keys) = keys {
            self.ids[i] = keys.id;
            self.years[i] = keys.year;
            self.created[i] = keys.created;
            self.authors[i] = keys.author_name;
            self.genres[i] = keys.genre_name;
        }
    }

    fn keys(&self, i: usize) -> Keys<'_> {
        Keys {
            id: self.ids[i],
            title: self.title(i),
            author: self.author(i),
            author_name: self.authors[i],
            genre_name: self.genres[i],
            year: self.years[i],
            created: self.created[i],
        }
    }
}

fn offset(at: usize) -> u32 {
    u32::try_from(at).expect("a chunk's text is far below 4 GiB")
}

/// The slots. Chunks are shared with the snapshot the orders are built from, and copied on
/// their first change meanwhile.
#[derive(Default, Clone)]
struct Slots {
    chunks: Vec<Arc<Chunk>>,
    free: Vec<u32>,
    live: usize,
}

impl Slots {
    fn at(&self, slot: u32) -> (&Chunk, usize) {
        let slot = slot as usize;
        (&self.chunks[slot / CHUNK], slot % CHUNK)
    }

    fn keys(&self, slot: u32) -> Keys<'_> {
        let (chunk, i) = self.at(slot);
        chunk.keys(i)
    }

    fn id(&self, slot: u32) -> i64 {
        let (chunk, i) = self.at(slot);
        chunk.ids[i]
    }

    /// Puts a new book in a free slot, or a new one; returns its slot.
    fn add(&mut self, keys: &Keys) -> u32 {
        self.live += 1;
        if let Some(slot) = self.free.pop() {
            self.set(slot, Some(keys));
            return slot;
        }
        if self.chunks.last().is_none_or(|c| c.len() >= CHUNK) {
            self.chunks.push(Arc::new(Chunk::default()));
        }
        let last = self.chunks.len() - 1;
        let chunk = Arc::make_mut(&mut self.chunks[last]);
        chunk.push(keys);
        if chunk.len() == CHUNK {
            // Full: it grows no more, so it gives back what doubling left spare (up to half
            // of its text).
            chunk.shrink();
        }
        u32::try_from(last * CHUNK + chunk.len() - 1).expect("fewer than 4 billion books")
    }

    fn set(&mut self, slot: u32, keys: Option<&Keys>) {
        let slot_index = slot as usize;
        Arc::make_mut(&mut self.chunks[slot_index / CHUNK]).set(slot_index % CHUNK, keys);
    }

    fn remove(&mut self, slot: u32) {
        self.set(slot, None);
        self.free.push(slot);
        self.live -= 1;
    }

    /// Every book's slot, in slot order.
    fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk
                .live
                .iter()
                .enumerate()
                .filter(|(_, live)| **live)
                .map(move |(i, _)| (c * CHUNK + i) as u32)
        })
    }

    /// The listing order of two slots: the sort key, then the id.
    fn compare(&self, key: SortKey, a: u32, b: u32) -> Ordering {
        let (x, y) = (self.keys(a), self.keys(b));
        let by_key = match key {
            SortKey::Id => Ordering::Equal,
            SortKey::Title => x.title.as_bytes().cmp(y.title.as_bytes()),
            SortKey::Author => x.author.as_bytes().cmp(y.author.as_bytes()),
            SortKey::Year => x.year.cmp(&y.year),
            SortKey::CreatedAt => x.created.cmp(&y.created),
        };
        by_key.then(x.id.cmp(&y.id))
    }

    /// A slot's place relative to a cursor, in the listing order of `key`.
    fn compare_to(&self, key: SortKey, slot: u32, after: &After) -> Ordering {
        let k = self.keys(slot);
        let by_key = match (key, &after.value) {
            (SortKey::Title, SortValue::Text(text)) => k.title.as_bytes().cmp(text.as_bytes()),
            (SortKey::Author, SortValue::Text(text)) => k.author.as_bytes().cmp(text.as_bytes()),
            (SortKey::Year, SortValue::Number(n)) => i64::from(k.year).cmp(n),
            (SortKey::CreatedAt, SortValue::Number(n)) => i64::from(k.created).cmp(n),
            // A cursor is read for its own sort only (see `ListQuery`).
            _ => Ordering::Equal,
        };
        by_key.then(k.id.cmp(&after.id))
    }

    /// The cursor that continues a listing after this slot.
    fn cursor(&self, key: SortKey, slot: u32) -> After {
        let k = self.keys(slot);
        let value = match key {
            SortKey::Id => SortValue::Id,
            SortKey::Title => SortValue::Text(k.title.to_owned()),
            SortKey::Author => SortValue::Text(k.author.to_owned()),
            SortKey::Year => SortValue::Number(i64::from(k.year)),
            SortKey::CreatedAt => SortValue::Number(i64::from(k.created)),
        };
        After { id: k.id, value }
    }
}

/// Which books a set of orders covers: every book, or each author's, or each genre's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Within {
    All = 0,
    Authors = 1,
    Genres = 2,
}

/// A set of the fifteen orders (five sort keys, each within all books, authors and genres),
/// a bit each: those built, those asked for.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Parts(u16);

impl Parts {
    #[cfg(test)]
    const EVERY: Self = Self((1 << 15) - 1);

    fn of(key: SortKey, within: Within) -> Self {
        Self(1 << (key_index(key) * 3 + within as usize))
    }

    fn has(self, key: SortKey, within: Within) -> bool {
        self.0 & Self::of(key, within).0 != 0
    }

    fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn count(self) -> u32 {
        self.0.count_ones()
    }
}

fn key_index(key: SortKey) -> usize {
    KEYS.iter().position(|k| *k == key).unwrap_or(0)
}

/// The books of one author or genre in one key's order: their own order once there are
/// many of them, else just their slots (sorted when a page needs them).
enum Group {
    Few(Vec<u32>),
    Many(Order),
}

impl Default for Group {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

impl Group {
    fn insert(&mut self, slots: &Slots, key: SortKey, slot: u32) {
        match self {
            Self::Many(order) => order.insert(slot, |a, b| slots.compare(key, a, b)),
            Self::Few(members) => {
                members.push(slot);
                if members.len() > GROUP_ORDERED_AT {
                    *self = Self::Many(sorted(slots, key, members));
                }
            }
        }
    }

    fn remove(&mut self, slots: &Slots, key: SortKey, slot: u32) {
        match self {
            Self::Many(order) => {
                order.remove(slot, |a, b| slots.compare(key, a, b));
            }
            Self::Few(members) => {
                if let Some(at) = members.iter().position(|s| *s == slot) {
                    members.swap_remove(at);
                }
            }
        }
    }

    /// The group's order: its own, or made now from its few books.
    fn order(&self, slots: &Slots, key: SortKey) -> Cow<'_, Order> {
        match self {
            Self::Many(order) => Cow::Borrowed(order),
            Self::Few(members) => Cow::Owned(sorted(slots, key, members)),
        }
    }
}

/// A few books in one key's order.
fn sorted(slots: &Slots, key: SortKey, members: &[u32]) -> Order {
    let mut members = members.to_vec();
    members.sort_unstable_by(|a, b| slots.compare(key, *a, *b));
    let mut order = Order::default();
    members.into_iter().for_each(|slot| order.push_back(slot));
    order
}

/// One sort key's orders: of every book, and within each author and each genre (indexed by
/// the interned name). Each is built the first time a listing needs it.
#[derive(Default)]
struct KeyOrders {
    all: Option<Order>,
    authors: Option<Vec<Group>>,
    genres: Option<Vec<Group>>,
}

impl KeyOrders {
    fn built(&self, key: SortKey) -> Parts {
        [
            (self.all.is_some(), Within::All),
            (self.authors.is_some(), Within::Authors),
            (self.genres.is_some(), Within::Genres),
        ]
        .into_iter()
        .filter(|(built, _)| *built)
        .fold(Parts::default(), |parts, (_, within)| {
            parts.with(Parts::of(key, within))
        })
    }

    fn insert(&mut self, slots: &Slots, key: SortKey, slot: u32) {
        let k = slots.keys(slot);
        if let Some(all) = &mut self.all {
            all.insert(slot, |a, b| slots.compare(key, a, b));
        }
        if let Some(authors) = &mut self.authors {
            group(authors, k.author_name).insert(slots, key, slot);
        }
        if let Some(genres) = &mut self.genres
            && k.genre_name != NO_GENRE
        {
            group(genres, k.genre_name).insert(slots, key, slot);
        }
    }

    fn remove(&mut self, slots: &Slots, key: SortKey, slot: u32) {
        let k = slots.keys(slot);
        if let Some(all) = &mut self.all {
            all.remove(slot, |a, b| slots.compare(key, a, b));
        }
        if let Some(authors) = &mut self.authors {
            group(authors, k.author_name).remove(slots, key, slot);
        }
        if let Some(genres) = &mut self.genres
            && k.genre_name != NO_GENRE
        {
            group(genres, k.genre_name).remove(slots, key, slot);
        }
    }

    /// Sorts the books once by `key` and deals them out to the orders asked for: every
    /// book's, and each author's and genre's (an order for those with many books, which then
    /// needs no sorting of its own; the list of their books for the others).
    fn build(slots: &Slots, live: &[u32], sizes: &Sizes, key: SortKey, parts: Parts) -> Self {
        let sorted: Vec<u32> = match key {
            SortKey::Id => sort_by(live, |s| slots.id(s)),
            SortKey::Year => sort_by(live, |s| (slots.keys(s).year, slots.id(s))),
            SortKey::CreatedAt => sort_by(live, |s| (slots.keys(s).created, slots.id(s))),
            SortKey::Title | SortKey::Author => sort_text(slots, live, key),
        };
        let groups = |within: Within, sizes: &[u32]| -> Option<Vec<Group>> {
            parts.has(key, within).then(|| {
                sizes
                    .iter()
                    .map(|n| match *n as usize {
                        n if n > GROUP_ORDERED_AT => Group::Many(Order::default()),
                        n => Group::Few(Vec::with_capacity(n)),
                    })
                    .collect()
            })
        };
        let mut built = Self {
            all: parts.has(key, Within::All).then(Order::default),
            authors: groups(Within::Authors, &sizes.authors),
            genres: groups(Within::Genres, &sizes.genres),
        };
        let deal = |group: &mut Group, slot: u32| match group {
            Group::Many(order) => order.push_back(slot),
            Group::Few(members) => members.push(slot),
        };
        for slot in sorted {
            let k = slots.keys(slot);
            if let Some(all) = &mut built.all {
                all.push_back(slot);
            }
            if let Some(authors) = &mut built.authors {
                deal(&mut authors[k.author_name as usize], slot);
            }
            if let Some(genres) = &mut built.genres
                && k.genre_name != NO_GENRE
            {
                deal(&mut genres[k.genre_name as usize], slot);
            }
        }
        for groups in [&mut built.authors, &mut built.genres].into_iter().flatten() {
            for group in groups {
                if let Group::Many(order) = group {
                    order.shrink();
                }
            }
        }
        built
    }
}

/// How many books each author and each genre has, by interned name.
struct Sizes {
    authors: Vec<u32>,
    genres: Vec<u32>,
}

impl Sizes {
    fn of(slots: &Slots, live: &[u32]) -> Self {
        let mut sizes = Self {
            authors: Vec::new(),
            genres: Vec::new(),
        };
        let count = |sizes: &mut Vec<u32>, name: u32| {
            let name = name as usize;
            if sizes.len() <= name {
                sizes.resize(name + 1, 0);
            }
            sizes[name] += 1;
        };
        for slot in live {
            let k = slots.keys(*slot);
            count(&mut sizes.authors, k.author_name);
            if k.genre_name != NO_GENRE {
                count(&mut sizes.genres, k.genre_name);
            }
        }
        sizes
    }
}

/// Every order built so far, by sort key.
#[derive(Default)]
struct Orders {
    by: [KeyOrders; 5],
}

impl Orders {
    fn of(&self, key: SortKey) -> &KeyOrders {
        &self.by[key_index(key)]
    }

    fn built(&self) -> Parts {
        KEYS.iter().fold(Parts::default(), |parts, key| {
            parts.with(self.of(*key).built(*key))
        })
    }

    /// Builds the orders asked for, the keys shared between two threads.
    fn build(slots: &Slots, parts: Parts) -> Self {
        let live: Vec<u32> = slots.live_slots().collect();
        let sizes = Sizes::of(slots, &live);
        let keys: Vec<SortKey> = KEYS
            .into_iter()
            .filter(|key| {
                [Within::All, Within::Authors, Within::Genres]
                    .iter()
                    .any(|w| parts.has(*key, *w))
            })
            .collect();
        let one = |key: &SortKey| (*key, KeyOrders::build(slots, &live, &sizes, *key, parts));
        let (theirs, mine) = keys.split_at(keys.len() / 2);
        let built: Vec<(SortKey, KeyOrders)> = std::thread::scope(|scope| {
            let other =
                (!theirs.is_empty()).then(|| scope.spawn(|| theirs.iter().map(one).collect::<Vec<_>>()));
            let mut built: Vec<_> = mine.iter().map(one).collect();
            if let Some(other) = other {
                built.extend(other.join().expect("sorting does not panic"));
            }
            built
        });
        let mut orders = Self::default();
        for (key, key_orders) in built {
            orders.by[key_index(key)] = key_orders;
        }
        orders
    }

    /// Takes in the orders of `built` (which this set lacks).
    fn merge(&mut self, built: Self) {
        for (mine, new) in self.by.iter_mut().zip(built.by) {
            mine.all = mine.all.take().or(new.all);
            mine.authors = mine.authors.take().or(new.authors);
            mine.genres = mine.genres.take().or(new.genres);
        }
    }

    fn insert(&mut self, slots: &Slots, slot: u32) {
        for key in KEYS {
            self.by[key_index(key)].insert(slots, key, slot);
        }
    }

    fn remove(&mut self, slots: &Slots, slot: u32) {
        for key in KEYS {
            self.by[key_index(key)].remove(slots, key, slot);
        }
    }

    /// The order by `key` of the books of `source`, if built.
    fn order<'s>(&'s self, slots: &Slots, source: Source, key: SortKey) -> Option<Cow<'s, Order>> {
        let of = self.of(key);
        let member = |groups: &'s Option<Vec<Group>>, name: u32| {
            groups.as_ref().map(|groups| match groups.get(name as usize) {
                Some(group) => group.order(slots, key),
                None => Cow::Owned(Order::default()),
            })
        };
        match source {
            Source::All => of.all.as_ref().map(Cow::Borrowed),
            Source::Author(name) => member(&of.authors, name),
            Source::Genre(name) => member(&of.genres, name),
        }
    }
}

/// The books a page walks: all, or one author's, or one genre's.
#[derive(Clone, Copy, Debug)]
enum Source {
    All,
    Author(u32),
    Genre(u32),
}

impl Source {
    fn within(self) -> Within {
        match self {
            Self::All => Within::All,
            Self::Author(_) => Within::Authors,
            Self::Genre(_) => Within::Genres,
        }
    }
}

/// The books of one author or genre, made on first use.
fn group(groups: &mut Vec<Group>, name: u32) -> &mut Group {
    let name = name as usize;
    if groups.len() <= name {
        groups.resize_with(name + 1, Group::default);
    }
    &mut groups[name]
}

/// Slots sorted by a key read once per slot (not once per comparison); as they are, if they
/// are in order already (as by id or creation time, until books are deleted and their slots
/// reused), which needs no room to sort in.
fn sort_by<K: Ord + Copy>(live: &[u32], key: impl Fn(u32) -> K) -> Vec<u32> {
    if live.is_sorted_by_key(|s| key(*s)) {
        return live.to_vec();
    }
    let mut keyed: Vec<(K, u32)> = live.iter().map(|s| (key(*s), *s)).collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, s)| s).collect()
}

/// Slots sorted by a text key, then by id: a radix sort on eight bytes of the text at a
/// time, which sorts integers in a flat array and reads each text once per eight bytes of
/// common prefix, instead of chasing two texts through the chunks at every comparison.
fn sort_text(slots: &Slots, live: &[u32], key: SortKey) -> Vec<u32> {
    let text = |s: u32| {
        let k = slots.keys(s);
        if key == SortKey::Title { k.title } else { k.author }
    };
    let mut keyed: Vec<(u64, u32)> = live.iter().map(|s| (eight_bytes(text(*s), 0), *s)).collect();
    sort_text_run(slots, &mut keyed, 0, &text);
    keyed.into_iter().map(|(_, s)| s).collect()
}

/// Sorts slots whose texts agree on their first `depth` bytes; `keyed` holds the next eight.
fn sort_text_run<'s>(slots: &Slots, keyed: &mut [(u64, u32)], depth: usize, text: &impl Fn(u32) -> &'s str) {
    keyed.sort_unstable_by_key(|(bytes, _)| *bytes);
    let mut start = 0;
    while start < keyed.len() {
        let bytes = keyed[start].0;
        let end = start + keyed[start..].partition_point(|(b, _)| *b == bytes);
        let run = &mut keyed[start..end];
        if run.len() > 1 {
            if run.iter().all(|(_, s)| text(*s).len() <= depth + 8) {
                // The same text throughout: by id.
                run.sort_unstable_by_key(|(_, s)| slots.id(*s));
            } else {
                for (bytes, s) in run.iter_mut() {
                    *bytes = eight_bytes(text(*s), depth + 8);
                }
                sort_text_run(slots, run, depth + 8, text);
            }
        }
        start = end;
    }
}

/// Bytes `from..from + 8` of `text`, big-endian, zero-padded: integers that order as the bytes
/// do (stored text holds no NUL, so padding sorts a shorter text first, as byte order does).
fn eight_bytes(text: &str, from: usize) -> u64 {
    let mut bytes = [0u8; 8];
    if let Some(rest) = text.as_bytes().get(from..) {
        let n = rest.len().min(8);
        bytes[..n].copy_from_slice(&rest[..n]);
    }
    u64::from_be_bytes(bytes)
}

/// A listing's filters with names resolved: what a book must have to be listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Filter {
    /// The case-folded `q`.
    q: Option<String>,
    author: Option<u32>,
    genre: Option<u32>,
    year_from: i16,
    year_to: i16,
}

impl Filter {
    /// `None` when an author or genre no book has is asked for: nothing matches.
    fn resolve(query: &ListQuery, authors: &Names, genres: &Names) -> Option<Self> {
        let name = |names: &Names, value: &Option<String>| match value {
            Some(value) => names.find(&fold_case(value)).map(Some),
            None => Some(None),
        };
        let clamp = |year: i64| i16::try_from(year).unwrap_or(if year < 0 { i16::MIN } else { i16::MAX });
        Some(Self {
            q: query.q.as_deref().map(fold_case),
            author: name(authors, &query.author)?,
            genre: name(genres, &query.genre)?,
            year_from: query.year_from.map_or(i16::MIN, clamp),
            year_to: query.year_to.map_or(i16::MAX, clamp),
        })
    }

    fn has_years(&self) -> bool {
        self.year_from != i16::MIN || self.year_to != i16::MAX
    }

    fn is_empty(&self) -> bool {
        self.q.is_none() && self.author.is_none() && self.genre.is_none() && !self.has_years()
    }

    /// Whether a book with these keys is listed.
    fn admits(&self, k: &Keys) -> bool {
        self.author.is_none_or(|a| k.author_name == a)
            && self.genre.is_none_or(|g| k.genre_name == g)
            && (self.year_from..=self.year_to).contains(&k.year)
            && self
                .q
                .as_deref()
                .is_none_or(|q| k.title.contains(q) || k.author.contains(q))
    }

    fn admits_old(&self, k: &OwnedKeys) -> bool {
        self.admits(&Keys {
            id: 0,
            title: &k.title,
            author: &k.author,
            author_name: k.author_name,
            genre_name: k.genre_name,
            year: k.year,
            created: 0,
        })
    }
}

/// An RFC 3339 timestamp as seconds since 1970, which sorts as the stored strings do (they
/// are all UTC, whole seconds); anything unreadable as 0.
pub fn sortable_timestamp(stamp: &str) -> u32 {
    stored_timestamp(stamp)
        .or_else(|| {
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .ok()
                .and_then(|t| u32::try_from(t.unix_timestamp()).ok())
        })
        .unwrap_or(0)
}

/// The form every stored timestamp has, `YYYY-MM-DDTHH:MM:SSZ`, read without a parser: loading
/// the index reads one per book.
fn stored_timestamp(stamp: &str) -> Option<u32> {
    let b = stamp.as_bytes();
    let shape = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u32::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

impl Index {
    /// Adds a book (at load: no orders yet).
    pub fn push(&mut self, entry: &Entry) {
        let keys = self.keys_of(entry);
        self.count(keys.author_name, keys.genre_name, true);
        self.slots.add(&keys);
        self.newest = self.newest.max(entry.id);
    }

    /// Counts a book in or out of its author's and genre's.
    fn count(&mut self, author: u32, genre: u32, book_in: bool) {
        self.authors.count(author, book_in);
        if genre != NO_GENRE {
            self.genres.count(genre, book_in);
        }
    }

    /// Whether a listing needed orders that are not built.
    fn wants_orders(&self) -> bool {
        !Parts(self.wanted.load(AtomicOrdering::Relaxed))
            .without(self.orders.built())
            .is_empty()
    }

    /// Asks for orders to be built.
    fn want(&self, parts: Parts) {
        self.wanted.fetch_or(parts.0, AtomicOrdering::Relaxed);
    }

    /// Starts a round of building the orders asked for (see [`begin_round`]).
    fn begin_round(&mut self) -> Option<Round> {
        let parts = Parts(std::mem::take(self.wanted.get_mut())).without(self.orders.built());
        if parts.is_empty() {
            return None;
        }
        self.pending = Some(Vec::new());
        Some(Round {
            parts,
            snapshot: self.slots.clone(),
            generation: self.generation,
        })
    }

    fn keys_of<'e>(&mut self, entry: &'e Entry) -> Keys<'e> {
        Keys {
            id: entry.id,
            title: &entry.title_key,
            author: &entry.author_key,
            author_name: self.authors.intern(&entry.author_key),
            genre_name: entry
                .genre_key
                .as_deref()
                .map_or(NO_GENRE, |g| self.genres.intern(g)),
            year: i16::try_from(entry.year).unwrap_or(if entry.year < 0 { i16::MIN } else { i16::MAX }),
            created: entry.created,
        }
    }

    /// Takes the orders built from `snapshot` and replays into them the changes made since:
    /// first every changed slot leaves the orders as the snapshot had it (the orders were
    /// sorted by the snapshot's keys), then goes back in as it is now. Returns how many
    /// slots were replayed.
    fn install_orders(&mut self, mut orders: Orders, snapshot: &Slots) -> usize {
        let mut changed = self.pending.take().unwrap_or_default();
        changed.sort_unstable();
        changed.dedup();
        for slot in &changed {
            if is_live(snapshot, *slot) {
                orders.remove(snapshot, *slot);
            }
        }
        for slot in &changed {
            if is_live(&self.slots, *slot) {
                orders.insert(&self.slots, *slot);
            }
        }
        self.orders.merge(orders);
        changed.len()
    }

    fn apply(&mut self, change: &Change) {
        let (id, entry) = match change {
            Change::Created(book) | Change::Updated(book, _) => (book.id, Some(Entry::of(book))),
            Change::Deleted(id) => (*id, None),
        };
        let slot = self.slot_of(id);
        let old = slot.map(|slot| {
            let k = self.slots.keys(slot);
            OwnedKeys {
                title: k.title.to_owned(),
                author: k.author.to_owned(),
                author_name: k.author_name,
                genre_name: k.genre_name,
                year: k.year,
            }
        });
        if let Some(slot) = slot {
            self.orders.remove(&self.slots, slot);
        }
        if let Some(old) = &old {
            self.count(old.author_name, old.genre_name, false);
        }
        let new = entry.as_ref().map(|entry| self.keys_of(entry));
        if let Some(new) = &new {
            self.count(new.author_name, new.genre_name, true);
        }
        let slot = match (slot, &new) {
            (Some(slot), Some(keys)) => {
                self.slots.set(slot, Some(keys));
                Some(slot)
            }
            (Some(slot), None) => {
                self.slots.remove(slot);
                Some(slot)
            }
            (None, Some(keys)) => {
                self.newest = self.newest.max(keys.id);
                Some(self.slots.add(keys))
            }
            (None, None) => None,
        };
        let Some(slot) = slot else { return };
        if new.is_some() {
            self.orders.insert(&self.slots, slot);
        }
        if let Some(pending) = self.pending.as_mut() {
            pending.push(slot);
        }
        let searches = self.searches.get_mut().unwrap_or_else(|e| e.into_inner());
        for (q, bits) in searches.iter_mut() {
            let matches = new
                .as_ref()
                .is_some_and(|k| k.title.contains(q.as_str()) || k.author.contains(q.as_str()));
            // No reader holds it: they only do under the read lock.
            Arc::make_mut(bits).set(slot, matches);
        }
        let counts = self.counts.get_mut().unwrap_or_else(|e| e.into_inner());
        for (filter, count) in counts.iter_mut() {
            let was = old.as_ref().is_some_and(|k| filter.admits_old(k));
            let is = new.as_ref().is_some_and(|k| filter.admits(k));
            *count += i64::from(is) - i64::from(was);
        }
    }

    /// The slot of book `id`: found in the id order, or (until that is built, which this
    /// asks for) by a scan of the slots.
    fn slot_of(&self, id: i64) -> Option<u32> {
        if id > self.newest {
            // A new book (ids only grow): nothing to find.
            return None;
        }
        match &self.orders.of(SortKey::Id).all {
            Some(order) => {
                let at = order.partition_point(|s| self.slots.id(s) < id);
                order.forward(at).next().filter(|s| self.slots.id(*s) == id)
            }
            None => {
                self.want(Parts::of(SortKey::Id, Within::All));
                self.slots.live_slots().find(|s| self.slots.id(*s) == id)
            }
        }
    }

    /// A page: walked along the orders it needs once they are built; until then (asking for
    /// them) by a scan.
    fn page(&self, query: &ListQuery) -> Hits {
        let Some(filter) = Filter::resolve(query, &self.authors, &self.genres) else {
            return Hits::none();
        };
        let (source, rest) = self.source(&filter);
        self.walk(query, &filter, source, rest).unwrap_or_else(|| {
            let mut needed = Parts::of(query.sort, source.within());
            if filter.has_years() {
                needed = needed.with(Parts::of(SortKey::Year, source.within()));
            }
            self.want(needed);
            self.scan(query, &filter)
        })
    }

    /// The books to walk for a filter: all, or one author's or genre's, whichever are fewest;
    /// and the filter the walk must still test.
    fn source(&self, filter: &Filter) -> (Source, Filter) {
        let (mut source, mut rest) = (Source::All, filter.clone());
        if let Some(author) = filter.author {
            source = Source::Author(author);
            rest.author = None;
        }
        if let Some(genre) = filter.genre
            && filter
                .author
                .is_none_or(|author| self.genres.books(genre) < self.authors.books(author))
        {
            (source, rest) = (Source::Genre(genre), filter.clone());
            rest.genre = None;
        }
        (source, rest)
    }

    /// A page read off the orders: the order of the source's books, walked from the page's
    /// start, testing the remaining filters, until the page is full. `None` if an order it
    /// needs is not built.
    fn walk(&self, query: &ListQuery, filter: &Filter, source: Source, rest: Filter) -> Option<Hits> {
        let slots = &self.slots;
        let order = self.orders.order(slots, source, query.sort)?;
        // A year range is a stretch of the year order: its width is its count, and sorted
        // by year it is all the walk covers.
        let (year_low, year_high) = if filter.has_years() {
            let years = self.orders.order(slots, source, SortKey::Year)?;
            let low = years.partition_point(|s| slots.keys(s).year < filter.year_from);
            // (An empty range when year_from is after year_to.)
            (
                low,
                years
                    .partition_point(|s| slots.keys(s).year <= filter.year_to)
                    .max(low),
            )
        } else {
            (0, order.len())
        };
        let not_years = Filter {
            year_from: i16::MIN,
            year_to: i16::MAX,
            ..rest.clone()
        };
        let total = if not_years.is_empty() {
            (year_high - year_low) as i64
        } else {
            match self.remembered_count(filter) {
                Some(total) => total,
                None => self.count_and_remember(filter, &order),
            }
        };
        let (low, high, tested) = if query.sort == SortKey::Year {
            (year_low, year_high, not_years)
        } else {
            (0, order.len(), rest)
        };

        // Where the page starts: after the cursor, or at the range's near end.
        let start = match &query.after {
            Some(after) if query.descending => {
                order.partition_point(|s| slots.compare_to(query.sort, s, after).is_lt())
            }
            Some(after) => order.partition_point(|s| slots.compare_to(query.sort, s, after).is_le()),
            None if query.descending => high,
            None => low,
        }
        .clamp(low, high);
        let limit = usize::try_from(query.limit).unwrap_or(0);
        let skip = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let picked: Vec<u32> = if tested.is_empty() {
            // Every book of the range is listed: skip to the page by rank.
            if query.descending {
                let from = start.saturating_sub(skip).max(low);
                order.backward(from).take(limit.min(from - low)).collect()
            } else {
                let from = start.saturating_add(skip).min(high);
                order.forward(from).take(limit.min(high - from)).collect()
            }
        } else {
            // A `q` is a bit per book (kept for it); the other filters are read off the book.
            let searched = tested.q.as_deref().map(|q| self.searched(q));
            let others = Filter {
                q: None,
                ..tested.clone()
            };
            let others = (!others.is_empty()).then_some(others);
            let admits = |s: &u32| {
                searched.as_ref().is_none_or(|bits| bits.has(*s))
                    && others.as_ref().is_none_or(|f| f.admits(&slots.keys(*s)))
            };
            if query.descending {
                order
                    .backward(start)
                    .take(start - low)
                    .filter(admits)
                    .skip(skip)
                    .take(limit)
                    .collect()
            } else {
                order
                    .forward(start)
                    .take(high - start)
                    .filter(admits)
                    .skip(skip)
                    .take(limit)
                    .collect()
            }
        };
        Some(self.hits(query, &picked, total))
    }

    fn hits(&self, query: &ListQuery, picked: &[u32], total: i64) -> Hits {
        Hits {
            ids: picked.iter().map(|s| self.slots.id(*s)).collect(),
            total,
            last: picked.last().map(|s| self.slots.cursor(query.sort, *s)),
        }
    }

    fn remembered_count(&self, filter: &Filter) -> Option<i64> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(filter).copied()
    }

    /// Counts a filter's books (a scan when there is a `q`, else a walk of the smallest
    /// group, `source`) and remembers the count, which the writer keeps exact from then on.
    /// Called under the index's read lock, so no change can come between the count and the
    /// note.
    fn count_and_remember(&self, filter: &Filter, source: &Order) -> i64 {
        let total = if let Some(q) = filter.q.as_deref() {
            let others = Filter {
                q: None,
                ..filter.clone()
            };
            self.searched(q)
                .slots()
                .filter(|s| others.admits(&self.slots.keys(*s)))
                .count() as i64
        } else {
            source
                .forward(0)
                .filter(|s| filter.admits(&self.slots.keys(*s)))
                .count() as i64
        };
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= COUNTS_KEPT
            && let Some(evicted) = counts.keys().next().cloned()
        {
            counts.remove(&evicted);
        }
        counts.insert(filter.clone(), total);
        total
    }

    /// The books whose title or author contains `q` (case-folded): remembered, or found by a
    /// scan of the packed keys and remembered. Called under the index's read lock, as
    /// [`Index::count_and_remember`] is.
    fn searched(&self, q: &str) -> Arc<Bits> {
        if let Some(bits) = self.searches.lock().unwrap_or_else(|e| e.into_inner()).get(q) {
            return bits.clone();
        }
        let only_q = Filter {
            q: Some(q.to_owned()),
            author: None,
            genre: None,
            year_from: i16::MIN,
            year_to: i16::MAX,
        };
        let mut bits = Bits::default();
        self.matches(&only_q)
            .into_iter()
            .for_each(|slot| bits.set(slot, true));
        let bits = Arc::new(bits);
        let mut searches = self.searches.lock().unwrap_or_else(|e| e.into_inner());
        if searches.len() >= SEARCHES_KEPT
            && let Some(evicted) = searches.keys().next().cloned()
        {
            searches.remove(&evicted);
        }
        searches.insert(q.to_owned(), bits.clone());
        bits
    }

    /// Every matching slot, in slot order: one pass over the packed keys.
    fn matches(&self, filter: &Filter) -> Vec<u32> {
        let finder = filter.q.as_deref().map(memmem::Finder::new);
        let mut found = Vec::new();
        for (c, chunk) in self.slots.chunks.iter().enumerate() {
            let base = (c * CHUNK) as u32;
            let mut take = |i: usize| {
                if chunk.live[i] && filter.admits(&chunk.keys(i)) {
                    found.push(base + i as u32);
                }
            };
            match (&finder, filter.q.as_deref()) {
                (Some(finder), Some(needle)) => scan(chunk, finder, needle, &mut take),
                _ => (0..chunk.len()).for_each(&mut take),
            }
        }
        found
    }

    /// A page without the orders: every match, then the first `offset + limit` of them in
    /// the listing's order. Exact, and what a `q` that matches few books costs anyway.
    fn scan(&self, query: &ListQuery, filter: &Filter) -> Hits {
        let slots = &self.slots;
        let mut matches = self.matches(filter);
        let total = matches.len() as i64;
        if let Some(after) = &query.after {
            matches.retain(|s| {
                let place = slots.compare_to(query.sort, *s, after);
                if query.descending {
                    place.is_lt()
                } else {
                    place.is_gt()
                }
            });
        }
        let by = |a: &u32, b: &u32| {
            let ordering = slots.compare(query.sort, *a, *b);
            if query.descending {
                ordering.reverse()
            } else {
                ordering
            }
        };
        let start = usize::try_from(query.offset)
            .unwrap_or(usize::MAX)
            .min(matches.len());
        let end = start
            .saturating_add(usize::try_from(query.limit).unwrap_or(0))
            .min(matches.len());
        // Only the first `end` matter: partition around them, then sort those.
        if end > 0 && end < matches.len() {
            matches.select_nth_unstable_by(end - 1, by);
            matches.truncate(end);
        }
        matches.sort_unstable_by(by);
        let picked = matches.get(start..end).unwrap_or_default();
        self.hits(query, picked, total)
    }
}

fn is_live(slots: &Slots, slot: u32) -> bool {
    let slot = slot as usize;
    slots
        .chunks
        .get(slot / CHUNK)
        .is_some_and(|c| c.live.get(slot % CHUNK).copied().unwrap_or(false))
}

/// Calls `take(i)` for every slot of `chunk` whose title or author contains `needle` (and
/// possibly for others: `take` tests the whole filter).
fn scan(chunk: &Chunk, finder: &memmem::Finder<'_>, needle: &str, take: &mut impl FnMut(usize)) {
    let text = chunk.text.as_bytes();
    let mut from = 0;
    let mut slot = 0;
    while let Some(found) = finder.find(&text[from..]) {
        let at = from + found;
        // The slot whose keys hold position `at`.
        while slot + 1 < chunk.len() && chunk.fields[2 * (slot + 1)] as usize <= at {
            slot += 1;
        }
        // A hit across one book's author and the next one's title is tested like any.
        take(slot);
        from = chunk.fields[2 * slot + 2] as usize;
        slot += 1;
        if slot >= chunk.len() || needle.is_empty() {
            break;
        }
    }
}

#[cfg(test)]
impl SearchIndex {
    /// Installs an index of these entries (in id order).
    pub fn finish_loading<'a>(&self, entries: impl IntoIterator<Item = Entry<'a>>) {
        let mut index = Index::default();
        entries.into_iter().for_each(|entry| index.push(&entry));
        self.install(index);
    }

    /// The page as the scan (the path without orders) gives it, for comparison.
    pub fn scanned_page(&self, query: &ListQuery) -> Hits {
        self.walked_and_scanned(query).expect("installed").1
    }

    /// The page by the orders (if built) and by the scan, under one read lock (so that no
    /// change comes between them); `None` while the index loads.
    pub fn walked_and_scanned(&self, query: &ListQuery) -> Option<(Hits, Hits)> {
        let index = self.index.read().unwrap();
        let index = index.as_ref()?;
        let walked = index.page(query);
        let scanned = match Filter::resolve(query, &index.authors, &index.genres) {
            Some(filter) => index.scan(query, &filter),
            None => Hits::none(),
        };
        Some((walked, scanned))
    }

    /// Asks for every order, as if listings had needed each (built on a thread).
    pub fn want_every_order(&self) {
        if let Some(index) = self.write().as_ref() {
            index.want(Parts::EVERY);
        }
        self.build_wanted_orders();
    }

    /// Asks for every order and waits until all are built.
    pub async fn every_order(&self) {
        self.want_every_order();
        let _ = self
            .built
            .subscribe()
            .wait_for(|built| *built == Parts::EVERY)
            .await;
    }

    /// Asks for every order and takes their snapshot now, on this thread (no builder thread
    /// starts meanwhile); the job returned builds and installs them.
    fn build_by_hand(&self) -> impl FnOnce() + '_ {
        self.building.store(true, AtomicOrdering::Release);
        self.write().as_ref().expect("installed").want(Parts::EVERY);
        let round = begin_round(&self.index, &self.building).expect("orders asked for");
        move || {
            let orders = Orders::build(&round.snapshot, round.parts);
            finish_round(&self.index, &self.built, round, orders, Instant::now());
            self.building.store(false, AtomicOrdering::Release);
        }
    }

    fn built(&self) -> Parts {
        *self.built.borrow()
    }

    /// How many authors have their own orders (by id).
    pub fn authors_with_orders(&self) -> usize {
        let index = self.index.read().unwrap();
        let orders = index.as_ref().unwrap().orders.of(SortKey::Id);
        orders
            .authors
            .iter()
            .flatten()
            .filter(|g| matches!(g, Group::Many(_)))
            .count()
    }

    /// Whether every order built holds exactly its books, in order (a consistency check).
    pub fn check_orders(&self) {
        let index = self.index.read().unwrap();
        let index = index.as_ref().unwrap();
        let slots = &index.slots;
        for key in KEYS {
            let orders = index.orders.of(key);
            // (an order, and which field names its members and the name: none for all books)
            type Set<'a> = (Cow<'a, Order>, Option<(bool, u32)>);
            let mut sets: Vec<Set<'_>> = Vec::new();
            sets.extend(orders.all.as_ref().map(|all| (Cow::Borrowed(all), None)));
            for (groups, by_author) in [(&orders.authors, true), (&orders.genres, false)] {
                for (name, group) in groups.iter().flatten().enumerate() {
                    sets.push((group.order(slots, key), Some((by_author, name as u32))));
                }
            }
            let member = |set: Option<(bool, u32)>, k: &Keys| match set {
                None => true,
                Some((true, name)) => k.author_name == name,
                Some((false, name)) => k.genre_name == name,
            };
            for (order, set) in sets {
                let got: Vec<u32> = order.forward(0).collect();
                let mut expected: Vec<u32> = slots
                    .live_slots()
                    .filter(|s| member(set, &slots.keys(*s)))
                    .collect();
                expected.sort_by(|a, b| slots.compare(key, *a, *b));
                assert_eq!(got, expected, "{key:?} {set:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::StoredBook;

    fn book(id: i64, title: &str) -> Book {
        Book {
            id,
            title: title.to_owned(),
            author: "Some Author".to_owned(),
            year: 2000,
            genre: None,
            created_at: "2026-11-25T10:00:00Z".to_owned(),
            updated_at: "2026-11-25T10:00:00Z".to_owned(),
            version: 1,
        }
    }

    fn created(id: i64, title: &str) -> Change {
        Change::Created(Arc::new(book(id, title)))
    }

    fn search(index: &SearchIndex, q: &str) -> Vec<i64> {
        let query = ListQuery {
            q: Some(q.to_owned()),
            ..ListQuery::default()
        };
        index.try_page(&query).expect("ready").ids
    }

    #[test]
    fn stored_timestamps_are_read_as_the_full_parser_reads_them() {
        for stamp in [
            "1970-01-01T00:00:00Z",
            "2026-11-25T10:00:00Z",
            "2000-02-29T23:59:59Z",
            "2100-12-31T12:34:56Z",
        ] {
            let parsed =
                time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).unwrap();
            assert_eq!(
                stored_timestamp(stamp),
                u32::try_from(parsed.unix_timestamp()).ok(),
                "{stamp}"
            );
        }
        assert_eq!(
            stored_timestamp("2026-11-25T10:00:00+01:00"),
            None,
            "another form: the full parser's job"
        );
        assert_eq!(
            sortable_timestamp("2026-11-25T10:00:00+01:00"),
            sortable_timestamp("2026-11-25T09:00:00Z")
        );
        assert_eq!(sortable_timestamp("garbage"), 0);
    }

    #[tokio::test]
    async fn listings_wait_for_the_index_to_load() {
        let index = std::sync::Arc::new(SearchIndex::loading());
        assert!(
            index.try_page(&ListQuery::default()).is_none(),
            "no answers while loading"
        );
        let waiting = tokio::spawn({
            let index = index.clone();
            async move { index.page(&ListQuery::default()).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        index.finish_loading([Entry::of(&book(1, "One"))]);
        index.apply(&[created(2, "Two")]);
        let hits = waiting.await.unwrap();
        assert!(hits.ids.starts_with(&[1]), "{hits:?}");
    }

    #[tokio::test]
    async fn a_hit_across_the_title_and_author_does_not_count() {
        let index = SearchIndex::loading();
        index.finish_loading([Entry::of(&book(1, "Dune")), Entry::of(&book(2, "Other"))]);
        for ordered in [false, true] {
            if ordered {
                index.every_order().await;
            }
            // The keys are stored as "dune" + "some author": "dunesome" spans both.
            assert!(search(&index, "dunesome").is_empty());
            // And "some author" + "other" spans two books.
            assert!(search(&index, "authorother").is_empty());
            assert_eq!(search(&index, "dune"), vec![1]);
            assert_eq!(search(&index, "some a"), vec![1, 2]);
        }
    }

    #[tokio::test]
    async fn many_chunks_survive_edits_and_deletions() {
        let index = SearchIndex::loading();
        index.finish_loading((1..=3000).map(|id| Entry::of(&book(id, &format!("Book {id}")))));
        index.every_order().await;
        let renamed = book(1500, "Renamed");
        let updated = Change::Updated(Arc::new(renamed.clone()), StoredBook::of(&renamed));
        index.apply(&[
            Change::Deleted(10),
            Change::Deleted(2048),
            updated,
            created(3001, "New"),
        ]);
        let all = index
            .try_page(&ListQuery {
                limit: 1000,
                offset: 2000,
                ..ListQuery::default()
            })
            .unwrap();
        assert_eq!(all.total, 2999);
        assert_eq!(
            all.ids.last(),
            Some(&3001),
            "the new book took a freed slot, and lists last"
        );
        assert_eq!(search(&index, "renamed"), vec![1500]);
        assert!(search(&index, "book 2048").is_empty());
        assert_eq!(search(&index, "book 2047"), vec![2047]);
        index.check_orders();
    }

    /// A small random number generator (a 64-bit LCG): the tests need no statistics.
    struct Dice(u64);

    impl Dice {
        fn roll(&mut self, sides: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % sides
        }
    }

    fn random_book(dice: &mut Dice, id: i64) -> Book {
        let words = ["dune", "émile", "river", "Straße", "a%b", "silver", "x"];
        Book {
            id,
            title: format!("{} {}", words[dice.roll(7) as usize], dice.roll(50)),
            // A quarter by one author (who has many books); the rest among forty, who start
            // with few and cross GROUP_ORDERED_AT as books are added.
            author: match dice.roll(4) {
                0 => "Author 0".to_owned(),
                _ => format!("Author {}", 1 + dice.roll(40)),
            },
            year: 1990 + dice.roll(20) as i64,
            genre: [None, Some("Fiction"), Some("Poetry"), Some("fiction")][dice.roll(4) as usize]
                .map(str::to_owned),
            created_at: format!("2026-11-{:02}T10:00:00Z", 1 + dice.roll(28)),
            updated_at: "2026-11-25T10:00:00Z".to_owned(),
            version: 1,
        }
    }

    /// Random creates, edits and deletes against ids 1..=`top`.
    fn random_changes(dice: &mut Dice, next_id: &mut i64, count: usize) -> Vec<Change> {
        (0..count)
            .map(|_| match dice.roll(3) {
                0 => {
                    *next_id += 1;
                    Change::Created(Arc::new(random_book(dice, *next_id)))
                }
                1 => {
                    let id = 1 + dice.roll(*next_id as u64) as i64;
                    let book = random_book(dice, id);
                    Change::Updated(Arc::new(book.clone()), StoredBook::of(&book))
                }
                _ => Change::Deleted(1 + dice.roll(*next_id as u64) as i64),
            })
            .collect()
    }

    fn random_query(dice: &mut Dice) -> ListQuery {
        let sort = KEYS[dice.roll(5) as usize];
        ListQuery {
            limit: [1, 7, 20, 1000][dice.roll(4) as usize],
            offset: [0, 0, 3, 50, 400][dice.roll(5) as usize],
            q: [None, None, Some("dune"), Some("e"), Some("9"), Some("author 1")][dice.roll(6) as usize]
                .map(str::to_owned),
            author: [None, None, Some("AUTHOR 3"), Some("author 0"), Some("nobody")][dice.roll(5) as usize]
                .map(str::to_owned),
            genre: [None, Some("FICTION"), Some("poetry")][dice.roll(3) as usize].map(str::to_owned),
            year_from: [None, Some(1995), Some(2010)][dice.roll(3) as usize],
            year_to: [None, Some(2003)][dice.roll(2) as usize],
            sort,
            descending: dice.roll(2) == 1,
            after: None,
        }
    }

    /// Every page the orders give, and the one after it by cursor, is the page the scan
    /// gives; the count too. The scan is the reference here (the store's tests hold it to SQL).
    fn assert_walks_match_scans(index: &SearchIndex, dice: &mut Dice, queries: usize) {
        for _ in 0..queries {
            let query = random_query(dice);
            let walked = index.try_page(&query).unwrap();
            assert_eq!(walked, index.scanned_page(&query), "{query:?}");
            let next = ListQuery {
                offset: 0,
                after: walked.last,
                ..query
            };
            assert_eq!(
                index.try_page(&next).unwrap(),
                index.scanned_page(&next),
                "{next:?}"
            );
        }
    }

    /// An index of books 1..=`books`, random.
    fn random_index(dice: &mut Dice, books: i64) -> Index {
        let mut index = Index::default();
        for id in 1..=books {
            index.push(&Entry::of(&random_book(dice, id)));
        }
        index
    }

    #[tokio::test]
    async fn an_order_is_built_the_first_time_a_listing_needs_it() {
        let mut dice = Dice(3);
        let mut next_id = 2000;
        let index = SearchIndex::loading();
        index.install(random_index(&mut dice, next_id));
        let none = OrdersState {
            built: 0,
            building: false,
        };
        assert_eq!(index.orders_state(), none);
        let created: Vec<Change> = (0..50)
            .map(|_| {
                next_id += 1;
                Change::Created(Arc::new(random_book(&mut dice, next_id)))
            })
            .collect();
        index.apply(&created);
        assert_eq!(index.orders_state(), none, "new books need no order");

        // The first listing by title within a genre is the scan's, and asks for that order.
        let mut built = index.built.subscribe();
        let by_title = ListQuery {
            genre: Some("fiction".into()),
            sort: SortKey::Title,
            ..ListQuery::default()
        };
        assert_eq!(index.try_page(&by_title).unwrap(), index.scanned_page(&by_title));
        let _ = built.wait_for(|parts| !parts.is_empty()).await;
        assert_eq!(index.built(), Parts::of(SortKey::Title, Within::Genres));
        // A year range needs the year order too.
        let in_years = ListQuery {
            year_from: Some(1995),
            ..by_title.clone()
        };
        assert_eq!(index.try_page(&in_years).unwrap(), index.scanned_page(&in_years));
        let _ = built
            .wait_for(|parts| parts.has(SortKey::Year, Within::Genres))
            .await;
        // An edit finds its book by the id order.
        let edited = random_book(&mut dice, 7);
        index.apply(&[Change::Updated(Arc::new(edited.clone()), StoredBook::of(&edited))]);
        let _ = built.wait_for(|parts| parts.has(SortKey::Id, Within::All)).await;
        assert_eq!(
            index.built().count(),
            3,
            "only the orders needed: {:?}",
            index.built()
        );

        index.check_orders();
        for query in [by_title, in_years] {
            let (walked, scanned) = index.walked_and_scanned(&query).unwrap();
            assert_eq!(walked, scanned);
        }
    }

    #[test]
    fn changes_made_while_the_orders_are_built_are_replayed_into_them() {
        let mut dice = Dice(7);
        let mut next_id = 5000;
        let index = SearchIndex::loading();
        index.install(random_index(&mut dice, next_id));
        let build = index.build_by_hand();
        // Changes land between the snapshot and the orders' installation: listings meanwhile
        // come from the scan, and stay exact.
        index.apply(&random_changes(&mut dice, &mut next_id, 3000));
        let query = ListQuery {
            genre: Some("fiction".into()),
            sort: SortKey::Title,
            ..ListQuery::default()
        };
        assert_eq!(index.try_page(&query).unwrap(), index.scanned_page(&query));
        build();
        index.check_orders();
        assert_walks_match_scans(&index, &mut dice, 400);
    }

    #[test]
    fn the_orders_and_the_kept_counts_follow_every_change() {
        let mut dice = Dice(11);
        let mut next_id = 3000;
        let index = SearchIndex::loading();
        index.install(random_index(&mut dice, next_id));
        index.build_by_hand()();
        let ordered_authors = index.authors_with_orders();
        for _ in 0..20 {
            // Counts remembered by these listings must be kept exact by the next changes.
            assert_walks_match_scans(&index, &mut dice, 50);
            index.apply(&random_changes(&mut dice, &mut next_id, 200));
        }
        assert!(
            index.authors_with_orders() > ordered_authors,
            "authors grew past GROUP_ORDERED_AT ({ordered_authors} had orders at first)"
        );
        index.check_orders();
        assert_walks_match_scans(&index, &mut dice, 200);
    }
}
