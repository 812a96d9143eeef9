-- The catalogue.
--
-- AUTOINCREMENT (rather than plain rowid reuse) is what makes "an id is never reused" hold
-- even after the newest book is deleted.
-- The *_key columns hold the case-folded text (folded in Rust, because SQLite's lower()
-- only folds ASCII): they back case-insensitive sorting and filtering. Substring search is
-- served by the backend's in-memory index (backend/src/store/search.rs), not by SQL.
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

CREATE INDEX books_by_title      ON books (title_key);
CREATE INDEX books_by_author     ON books (author_key);
CREATE INDEX books_by_year       ON books (year);
CREATE INDEX books_by_created_at ON books (created_at);
