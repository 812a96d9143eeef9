-- The catalogue.
--
-- AUTOINCREMENT (rather than plain rowid reuse) is what makes "an id is never reused" hold
-- even after the newest book is deleted.
-- The *_key columns hold the case-folded text (folded in Rust, because SQLite's lower()
-- only folds ASCII): they back case-insensitive sorting, exact filters and search.
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
CREATE INDEX books_by_genre      ON books (genre_key);
CREATE INDEX books_by_created_at ON books (created_at);

-- Substring search (`q`) over title and author. The trigram tokenizer turns "contains"
-- into an index lookup instead of a scan; it needs at least 3 characters, so shorter
-- searches fall back to instr() over the keys.
CREATE VIRTUAL TABLE books_search USING fts5 (
    title_key, author_key,
    content = 'books', content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1'
);

CREATE TRIGGER books_search_insert AFTER INSERT ON books BEGIN
    INSERT INTO books_search (rowid, title_key, author_key)
    VALUES (new.id, new.title_key, new.author_key);
END;

CREATE TRIGGER books_search_delete AFTER DELETE ON books BEGIN
    INSERT INTO books_search (books_search, rowid, title_key, author_key)
    VALUES ('delete', old.id, old.title_key, old.author_key);
END;

CREATE TRIGGER books_search_update AFTER UPDATE OF title_key, author_key ON books BEGIN
    INSERT INTO books_search (books_search, rowid, title_key, author_key)
    VALUES ('delete', old.id, old.title_key, old.author_key);
    INSERT INTO books_search (rowid, title_key, author_key)
    VALUES (new.id, new.title_key, new.author_key);
END;
