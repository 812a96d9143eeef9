-- Listings answered by the database: the same design as PostgreSQL's (migrations/postgres/).
--
-- Until now the backend answered every listing from an index it kept in its own memory,
-- which no other process could share. From here on:
--
-- * each filter and sort is served by a B-tree that matches it (ties broken by id), the same
--   twelve PostgreSQL has (0001 and 0003 there);
-- * `q` is served by an FTS5 table with the trigram tokenizer over the folded keys (a
--   substring of three or more characters), kept in step by the triggers below;
-- * X-Total-Count comes from counts kept in the same transaction as every change: books per
--   genre, and per genre and year ('' stands for every genre: no genre is empty). `shard`
--   is always 0 here: SQLite has one writer, so no counter row is ever contended (PostgreSQL
--   spreads them, see its 0004).
--
-- On an existing database this builds every index and the text index once (about a minute
-- per million books: docs/benchmarks.md measures it); the backend raises SQLite's page
-- cache while it migrates.

CREATE INDEX books_title          ON books (title_key, id);
CREATE INDEX books_author         ON books (author_key, id);
CREATE INDEX books_genre          ON books (genre_key, id);
CREATE INDEX books_year           ON books (year, id);
CREATE INDEX books_created        ON books (created_at, id);
CREATE INDEX books_genre_title    ON books (genre_key, title_key, id);
CREATE INDEX books_genre_author   ON books (genre_key, author_key, id);
CREATE INDEX books_genre_year     ON books (genre_key, year, id);
CREATE INDEX books_genre_created  ON books (genre_key, created_at, id);
CREATE INDEX books_author_title   ON books (author_key, title_key, id);
CREATE INDEX books_author_year    ON books (author_key, year, id);
CREATE INDEX books_author_created ON books (author_key, created_at, id);

-- The keys are folded by the backend, so the tokenizer compares them exactly.
CREATE VIRTUAL TABLE books_text USING fts5 (
    title_key, author_key,
    content = 'books', content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1',
    columnsize = 0
);
-- Built in one pass, then merged into one segment: a search reads one posting list per
-- trigram rather than one per segment the build left (at a million books, 180 cold searches
-- a second become 285). New books add small segments, which FTS5 merges as they come.
INSERT INTO books_text (books_text) VALUES ('rebuild');
INSERT INTO books_text (books_text) VALUES ('optimize');

CREATE TABLE genre_counts (
    genre_key TEXT    NOT NULL,
    shard     INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (genre_key, shard)
) WITHOUT ROWID;

CREATE TABLE genre_year_counts (
    genre_key TEXT    NOT NULL,
    year      INTEGER NOT NULL,
    shard     INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (genre_key, year, shard)
) WITHOUT ROWID;

INSERT INTO genre_counts (genre_key, shard, n)
    SELECT '', 0, count(*) FROM books;
INSERT INTO genre_counts (genre_key, shard, n)
    SELECT genre_key, 0, count(*) FROM books WHERE genre_key IS NOT NULL GROUP BY genre_key;
INSERT INTO genre_year_counts (genre_key, year, shard, n)
    SELECT '', year, 0, count(*) FROM books GROUP BY year;
INSERT INTO genre_year_counts (genre_key, year, shard, n)
    SELECT genre_key, year, 0, count(*) FROM books WHERE genre_key IS NOT NULL GROUP BY genre_key, year;

CREATE TRIGGER books_added AFTER INSERT ON books BEGIN
    INSERT INTO books_text (rowid, title_key, author_key) VALUES (new.id, new.title_key, new.author_key);
    INSERT INTO genre_counts (genre_key, shard, n)
        SELECT key, 0, 1 FROM (SELECT '' AS key UNION ALL SELECT new.genre_key) WHERE key IS NOT NULL
        ON CONFLICT (genre_key, shard) DO UPDATE SET n = n + excluded.n;
    INSERT INTO genre_year_counts (genre_key, year, shard, n)
        SELECT key, new.year, 0, 1 FROM (SELECT '' AS key UNION ALL SELECT new.genre_key) WHERE key IS NOT NULL
        ON CONFLICT (genre_key, year, shard) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER books_removed AFTER DELETE ON books BEGIN
    INSERT INTO books_text (books_text, rowid, title_key, author_key)
        VALUES ('delete', old.id, old.title_key, old.author_key);
    INSERT INTO genre_counts (genre_key, shard, n)
        SELECT key, 0, -1 FROM (SELECT '' AS key UNION ALL SELECT old.genre_key) WHERE key IS NOT NULL
        ON CONFLICT (genre_key, shard) DO UPDATE SET n = n + excluded.n;
    INSERT INTO genre_year_counts (genre_key, year, shard, n)
        SELECT key, old.year, 0, -1 FROM (SELECT '' AS key UNION ALL SELECT old.genre_key) WHERE key IS NOT NULL
        ON CONFLICT (genre_key, year, shard) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER books_retitled AFTER UPDATE OF title_key, author_key ON books
    WHEN old.title_key IS NOT new.title_key OR old.author_key IS NOT new.author_key
BEGIN
    INSERT INTO books_text (books_text, rowid, title_key, author_key)
        VALUES ('delete', old.id, old.title_key, old.author_key);
    INSERT INTO books_text (rowid, title_key, author_key) VALUES (new.id, new.title_key, new.author_key);
END;

-- Moving a book to another genre or year: out of the old counts, into the new (a key that
-- both loses and gains the book is left alone).
CREATE TRIGGER books_moved AFTER UPDATE OF genre_key, year ON books
    WHEN old.genre_key IS NOT new.genre_key OR old.year IS NOT new.year
BEGIN
    INSERT INTO genre_counts (genre_key, shard, n)
        SELECT key, 0, sum(delta) FROM (SELECT old.genre_key AS key, -1 AS delta UNION ALL SELECT new.genre_key, 1)
        WHERE key IS NOT NULL GROUP BY key HAVING sum(delta) <> 0
        ON CONFLICT (genre_key, shard) DO UPDATE SET n = n + excluded.n;
    INSERT INTO genre_year_counts (genre_key, year, shard, n)
        SELECT key, year, 0, sum(delta) FROM (
            SELECT '' AS key, old.year AS year, -1 AS delta UNION ALL SELECT '', new.year, 1
            UNION ALL SELECT old.genre_key, old.year, -1 UNION ALL SELECT new.genre_key, new.year, 1)
        WHERE key IS NOT NULL GROUP BY key, year HAVING sum(delta) <> 0
        ON CONFLICT (genre_key, year, shard) DO UPDATE SET n = n + excluded.n;
END;
