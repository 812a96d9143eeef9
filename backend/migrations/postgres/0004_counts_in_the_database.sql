-- X-Total-Count from counts the database keeps, in the same transaction as every change
-- (the SQLite engine's 0004 keeps the same ones): books per genre, and per genre and year
-- ('' stands for every genre: no genre is empty). A count is the sum of its rows.
--
-- Every insert would otherwise update the same row ('' , the total) and wait for the
-- transaction before it to commit: writers would queue on one row lock. So each count is
-- spread over 32 rows (`shard`, the book's id modulo 32): consecutive books, which concurrent
-- writers insert, land on different rows, and a count reads 32 rows instead of one.
--
-- The table is locked against writers while the counts are made, so none is missed or
-- counted twice by a replica still running the previous release.
LOCK TABLE books IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE genre_counts (
    genre_key TEXT     COLLATE "C" NOT NULL,
    shard     SMALLINT NOT NULL,
    n         BIGINT   NOT NULL,
    PRIMARY KEY (genre_key, shard)
);

CREATE TABLE genre_year_counts (
    genre_key TEXT     COLLATE "C" NOT NULL,
    year      INTEGER  NOT NULL,
    shard     SMALLINT NOT NULL,
    n         BIGINT   NOT NULL,
    PRIMARY KEY (genre_key, year, shard)
);

-- Adds `delta` to the counts of a book in `book_genre` (NULL: none) and `book_year`. The rows are
-- written in key order, so that two transactions never wait for each other in a circle.
CREATE FUNCTION count_book(book_genre TEXT, book_year INTEGER, book_shard SMALLINT, delta BIGINT) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO genre_counts AS c (genre_key, shard, n)
        SELECT key, book_shard, delta FROM unnest(ARRAY['', book_genre]) AS key WHERE key IS NOT NULL ORDER BY key
        ON CONFLICT (genre_key, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    INSERT INTO genre_year_counts AS c (genre_key, year, shard, n)
        SELECT key, book_year, book_shard, delta FROM unnest(ARRAY['', book_genre]) AS key WHERE key IS NOT NULL ORDER BY key
        ON CONFLICT (genre_key, year, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
$$;

CREATE FUNCTION count_books() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM count_book(OLD.genre_key, OLD.year, (OLD.id % 32)::smallint, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM count_book(NEW.genre_key, NEW.year, (NEW.id % 32)::smallint, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER books_counted AFTER INSERT OR DELETE ON books
    FOR EACH ROW EXECUTE FUNCTION count_books();
CREATE TRIGGER books_moved AFTER UPDATE OF genre_key, year ON books
    FOR EACH ROW WHEN (OLD.genre_key IS DISTINCT FROM NEW.genre_key OR OLD.year IS DISTINCT FROM NEW.year)
    EXECUTE FUNCTION count_books();

INSERT INTO genre_counts (genre_key, shard, n)
    SELECT '', id % 32, count(*) FROM books GROUP BY id % 32;
INSERT INTO genre_counts (genre_key, shard, n)
    SELECT genre_key, id % 32, count(*) FROM books WHERE genre_key IS NOT NULL GROUP BY genre_key, id % 32;
INSERT INTO genre_year_counts (genre_key, year, shard, n)
    SELECT '', year, id % 32, count(*) FROM books GROUP BY year, id % 32;
INSERT INTO genre_year_counts (genre_key, year, shard, n)
    SELECT genre_key, year, id % 32, count(*) FROM books WHERE genre_key IS NOT NULL
    GROUP BY genre_key, year, id % 32;

-- Idempotency keys' time in unix seconds, as the SQLite engine keeps it, so that both engines
-- share one statement for each use of a key.
ALTER TABLE idempotency_keys
    ALTER COLUMN created_at DROP DEFAULT,
    ALTER COLUMN created_at TYPE BIGINT USING extract(epoch FROM created_at)::bigint;
