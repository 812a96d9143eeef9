-- The catalogue.
--
-- AUTOINCREMENT (rather than plain rowid reuse) is what makes "an id is never reused" hold
-- even after the newest book is deleted.
-- The *_key columns hold the case-folded text (folded in Rust, because SQLite's lower()
-- only folds ASCII), for case-insensitive sorting and filtering.
--
-- No secondary indexes: listings are answered by the backend's in-memory search index
-- (backend/src/store/search.rs), which holds these keys for every book; SQL only lists
-- while that index loads at start-up. Every index here would make each insert dearer.
CREATE TABLE books (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT    NOT NULL,
    author      TEXT    NOT NULL,
    year        INTEGER NOT NULL,
    genre       TEXT,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    title_key   TEXT    NOT NULL,
    author_key  TEXT    NOT NULL,
    genre_key   TEXT
);
