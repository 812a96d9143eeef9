//! The in-memory index behind listings: the case-folded keys, year and creation time of
//! every book, packed so that a substring search (`q`) over a 100,000-book catalogue is one
//! SIMD scan of a few megabytes, and filters and sorts never touch SQLite.
//!
//! Why not SQL: `q` is a substring search, which no B-tree index serves, and an FTS5 trigram
//! index is slow exactly where it matters (common trigrams, broad terms, counting every
//! match for `X-Total-Count`) and made every insert several times dearer. A scan of packed
//! keys costs well under a millisecond whatever the term.
//!
//! Books are kept in id order, in chunks of at most [`CHUNK`] books; each chunk keeps its
//! keys in one string. A new book (always the highest id) is appended; changing or removing
//! a book rebuilds its chunk only. The writer loads the index at start-up before it takes
//! any write (so nothing changes while it loads), and then applies every committed change
//! here, as it does to the cache. Listings wait for the load ([`SearchIndex::page`]).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::RwLock;

use memchr::memmem;
use tokio::sync::watch;

use super::writer::Change;
use crate::domain::{Book, ListQuery, SortKey, fold_case};

/// Books per chunk: small enough that rebuilding one after an edit is cheap, large enough
/// that a scan is a few long runs.
const CHUNK: usize = 1024;

pub struct SearchIndex {
    index: RwLock<Option<Index>>,
    loaded: watch::Sender<bool>,
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

/// A page of matching ids and the number of matches in all.
#[derive(Debug, PartialEq, Eq)]
pub struct Hits {
    pub ids: Vec<i64>,
    pub total: i64,
}

impl SearchIndex {
    pub fn loading() -> Self {
        Self {
            index: RwLock::new(None),
            loaded: watch::Sender::new(false),
        }
    }

    /// Installs the loaded index; listings waiting for it go on.
    pub fn install(&self, index: Index) {
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Some(index);
        self.loaded.send_replace(true);
    }

    /// Applies committed changes. The writer only writes once the index is installed, so
    /// there is always an index to apply them to.
    pub fn apply(&self, changes: &[Change]) {
        if let Some(index) = self.index.write().unwrap_or_else(|e| e.into_inner()).as_mut() {
            changes.iter().for_each(|change| index.apply(change));
        }
    }

    /// The ids of the requested page and the total, once the index is loaded (waiting for
    /// it at start-up; the request's own time limit bounds the wait).
    pub async fn page(&self, query: &ListQuery) -> Hits {
        let mut loaded = self.loaded.subscribe();
        // The sender lives as long as `self`, so the wait only ends with the index loaded.
        let _ = loaded.wait_for(|ready| *ready).await;
        self.try_page(query)
            .expect("the index is installed before `loaded` turns true")
    }

    /// The page now, or `None` while the index loads.
    pub fn try_page(&self, query: &ListQuery) -> Option<Hits> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index.as_ref().map(|index| index.page(query))
    }
}

/// The packed keys of every book. Build one with `Default` and [`Index::push`], in id order.
#[derive(Default)]
pub struct Index {
    chunks: Vec<Chunk>,
}

/// Up to [`CHUNK`] books in id order. Book `i`'s title, author and genre keys are
/// `text[fields[3i]..fields[3i+1]]`, `[fields[3i+1]..fields[3i+2]]`, `[fields[3i+2]..fields[3i+3]]`.
#[derive(Default, Clone)]
struct Chunk {
    ids: Vec<i64>,
    /// Years fit 16 bits (-5000 to 2100): the index is kept small, it holds every book.
    years: Vec<i16>,
    /// `created_at` as seconds since 1970.
    created: Vec<u32>,
    has_genre: Vec<bool>,
    fields: Vec<u32>,
    text: String,
}

impl Chunk {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn field(&self, i: usize, f: usize) -> &str {
        &self.text[self.fields[3 * i + f] as usize..self.fields[3 * i + f + 1] as usize]
    }

    fn title(&self, i: usize) -> &str {
        self.field(i, 0)
    }

    fn author(&self, i: usize) -> &str {
        self.field(i, 1)
    }

    fn genre(&self, i: usize) -> Option<&str> {
        self.has_genre[i].then(|| self.field(i, 2))
    }

    fn push(&mut self, entry: &Entry) {
        if self.fields.is_empty() {
            self.fields.push(0);
        }
        self.ids.push(entry.id);
        self.years
            .push(i16::try_from(entry.year).unwrap_or(if entry.year < 0 { i16::MIN } else { i16::MAX }));
        self.created.push(entry.created);
        self.has_genre.push(entry.genre_key.is_some());
        for text in [
            &*entry.title_key,
            &*entry.author_key,
            entry.genre_key.as_deref().unwrap_or(""),
        ] {
            self.text.push_str(text);
            self.fields
                .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
        }
    }

    /// The same chunk with `entry` put in its place (or without book `id`, for `None`).
    /// Gives back the spare capacity of a chunk that will not grow again.
    fn shrink(&mut self) {
        self.ids.shrink_to_fit();
        self.years.shrink_to_fit();
        self.created.shrink_to_fit();
        self.has_genre.shrink_to_fit();
        self.fields.shrink_to_fit();
        self.text.shrink_to_fit();
    }

    fn rebuilt(&self, id: i64, entry: Option<&Entry>) -> Chunk {
        let mut next = Chunk::default();
        let mut placed = false;
        for i in 0..self.len() {
            if let Some(entry) = entry.filter(|e| !placed && e.id < self.ids[i]) {
                next.push(entry);
                placed = true;
            }
            if self.ids[i] != id {
                next.push(&self.entry(i));
            }
        }
        if let Some(entry) = entry.filter(|_| !placed) {
            next.push(entry);
        }
        next.shrink();
        next
    }

    fn entry(&self, i: usize) -> Entry<'_> {
        Entry {
            id: self.ids[i],
            title_key: Cow::Borrowed(self.title(i)),
            author_key: Cow::Borrowed(self.author(i)),
            genre_key: self.genre(i).map(Cow::Borrowed),
            year: i64::from(self.years[i]),
            created: self.created[i],
        }
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
    /// Adds a book; books must come in id order (as `ORDER BY id` gives them).
    pub fn push(&mut self, entry: &Entry) {
        self.upsert(entry);
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::Created(book) | Change::Updated(book, _) => self.upsert(&Entry::of(book)),
            Change::Deleted(id) => self.remove(*id),
        }
    }

    /// The chunk that holds (or would hold) book `id`.
    fn chunk_for(&self, id: i64) -> usize {
        let after = self
            .chunks
            .partition_point(|c| c.ids.first().is_some_and(|first| *first <= id));
        after.saturating_sub(1)
    }

    fn upsert(&mut self, entry: &Entry) {
        let newest = self.chunks.last().and_then(|c| c.ids.last()).copied();
        if newest.is_none_or(|newest| entry.id > newest) {
            if self.chunks.last().is_none_or(|c| c.len() >= CHUNK) {
                self.chunks.push(Chunk::default());
            }
            if let Some(last) = self.chunks.last_mut() {
                last.push(entry);
                if last.len() == CHUNK {
                    last.shrink();
                }
            }
            return;
        }
        let at = self.chunk_for(entry.id);
        let rebuilt = self.chunks[at].rebuilt(entry.id, Some(entry));
        if rebuilt.len() > CHUNK {
            // An old id inserted into a full chunk (rare: ids are never reused): split it.
            let (mut left, mut right) = (Chunk::default(), Chunk::default());
            for i in 0..rebuilt.len() {
                let half = if i < rebuilt.len() / 2 {
                    &mut left
                } else {
                    &mut right
                };
                half.push(&rebuilt.entry(i));
            }
            self.chunks.splice(at..=at, [left, right]);
        } else {
            self.chunks[at] = rebuilt;
        }
    }

    fn remove(&mut self, id: i64) {
        let at = self.chunk_for(id);
        if self
            .chunks
            .get(at)
            .is_none_or(|c| c.ids.binary_search(&id).is_err())
        {
            return;
        }
        let rebuilt = self.chunks[at].rebuilt(id, None);
        if rebuilt.len() == 0 {
            self.chunks.remove(at);
        } else {
            self.chunks[at] = rebuilt;
        }
    }

    fn page(&self, query: &ListQuery) -> Hits {
        if query.is_unfiltered() && query.sort == SortKey::Id {
            return self.page_by_id(query);
        }
        let needle = query.q.as_deref().map(fold_case);
        let author = query.author.as_deref().map(fold_case);
        let genre = query.genre.as_deref().map(fold_case);
        let finder = needle.as_deref().map(memmem::Finder::new);
        let keep = |chunk: &Chunk, i: usize| {
            author.as_deref().is_none_or(|a| chunk.author(i) == a)
                && genre.as_deref().is_none_or(|g| chunk.genre(i) == Some(g))
                && query
                    .year_from
                    .is_none_or(|from| i64::from(chunk.years[i]) >= from)
                && query.year_to.is_none_or(|to| i64::from(chunk.years[i]) <= to)
        };

        let mut matches: Vec<(u32, u32)> = Vec::new();
        for (c, chunk) in self.chunks.iter().enumerate() {
            let mut take = |i: usize| {
                if keep(chunk, i) {
                    matches.push((c as u32, i as u32));
                }
            };
            match (&finder, needle.as_deref()) {
                (Some(finder), Some(needle)) => scan(chunk, finder, needle, &mut take),
                _ => (0..chunk.len()).for_each(&mut take),
            }
        }

        let total = matches.len() as i64;
        let order = |a: &(u32, u32), b: &(u32, u32)| self.compare(query.sort, *a, *b);
        let start = usize::try_from(query.offset)
            .unwrap_or(usize::MAX)
            .min(matches.len());
        let end = start
            .saturating_add(usize::try_from(query.limit).unwrap_or(0))
            .min(matches.len());
        let picked: Vec<(u32, u32)> = if query.sort == SortKey::Id {
            // Already in id order.
            if query.descending {
                matches
                    .iter()
                    .rev()
                    .skip(start)
                    .take(end - start)
                    .copied()
                    .collect()
            } else {
                matches[start..end].to_vec()
            }
        } else {
            let by = |a: &(u32, u32), b: &(u32, u32)| {
                let ordering = order(a, b);
                if query.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            };
            // Only the first `end` matter: partition around them, then sort those.
            if end > 0 && end < matches.len() {
                matches.select_nth_unstable_by(end - 1, by);
                matches.truncate(end);
            }
            matches.sort_unstable_by(by);
            matches.get(start..end).map(<[_]>::to_vec).unwrap_or_default()
        };
        let ids = picked
            .iter()
            .map(|(c, i)| self.chunks[*c as usize].ids[*i as usize])
            .collect();
        Hits { ids, total }
    }

    /// The whole catalogue in id order (the default listing): the ids are already in that
    /// order, so the page is read off without collecting every book first.
    fn page_by_id(&self, query: &ListQuery) -> Hits {
        let total = self.chunks.iter().map(Chunk::len).sum::<usize>();
        let skip = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let take = usize::try_from(query.limit).unwrap_or(0);
        let ids = self.chunks.iter().flat_map(|chunk| chunk.ids.iter().copied());
        let ids = if query.descending {
            ids.rev().skip(skip).take(take).collect()
        } else {
            ids.skip(skip).take(take).collect()
        };
        Hits {
            ids,
            total: total as i64,
        }
    }

    /// The listing order: the sort key, then the id.
    fn compare(&self, sort: SortKey, (ac, ai): (u32, u32), (bc, bi): (u32, u32)) -> Ordering {
        let (a, b) = (&self.chunks[ac as usize], &self.chunks[bc as usize]);
        let (ai, bi) = (ai as usize, bi as usize);
        let by_key = match sort {
            SortKey::Id => Ordering::Equal,
            SortKey::Title => a.title(ai).as_bytes().cmp(b.title(bi).as_bytes()),
            SortKey::Author => a.author(ai).as_bytes().cmp(b.author(bi).as_bytes()),
            SortKey::Year => a.years[ai].cmp(&b.years[bi]),
            SortKey::CreatedAt => a.created[ai].cmp(&b.created[bi]),
        };
        by_key.then(a.ids[ai].cmp(&b.ids[bi]))
    }
}

/// Calls `take(i)` for every book of `chunk` whose title or author contains `needle`.
fn scan(chunk: &Chunk, finder: &memmem::Finder<'_>, needle: &str, take: &mut impl FnMut(usize)) {
    let text = chunk.text.as_bytes();
    let mut from = 0;
    let mut book = 0;
    while let Some(found) = finder.find(&text[from..]) {
        let at = from + found;
        // The book whose keys hold position `at`.
        while book + 1 < chunk.len() && chunk.fields[3 * (book + 1)] as usize <= at {
            book += 1;
        }
        let genre_start = chunk.fields[3 * book + 2] as usize;
        let inside = at + needle.len() <= genre_start && {
            let author_start = chunk.fields[3 * book + 1] as usize;
            at + needle.len() <= author_start || at >= author_start
        };
        // A hit across the title/author boundary or in the genre may hide a real one.
        if inside || chunk.title(book).contains(needle) || chunk.author(book).contains(needle) {
            take(book);
        }
        from = chunk.fields[3 * book + 3] as usize;
        book += 1;
        if book >= chunk.len() {
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

    #[test]
    fn a_hit_across_the_title_and_author_does_not_count() {
        let index = SearchIndex::loading();
        index.finish_loading([Entry::of(&book(1, "Dune"))]);
        // The keys are stored as "dune" + "some author": "dunesome" spans both.
        assert!(search(&index, "dunesome").is_empty());
        assert_eq!(search(&index, "dune"), vec![1]);
        assert_eq!(search(&index, "some a"), vec![1]);
    }

    #[test]
    fn many_chunks_survive_edits_and_deletions() {
        let index = SearchIndex::loading();
        index.finish_loading((1..=3000).map(|id| Entry::of(&book(id, &format!("Book {id}")))));
        let renamed = book(1500, "Renamed");
        let updated = Change::Updated(Arc::new(renamed.clone()), StoredBook::of(&renamed));
        index.apply(&[Change::Deleted(10), Change::Deleted(2048), updated]);
        let all = index
            .try_page(&ListQuery {
                limit: 1000,
                offset: 2000,
                ..ListQuery::default()
            })
            .unwrap();
        assert_eq!(all.total, 2998);
        assert_eq!(search(&index, "renamed"), vec![1500]);
        assert!(search(&index, "book 2048").is_empty());
        assert_eq!(search(&index, "book 2047"), vec![2047]);
    }
}
