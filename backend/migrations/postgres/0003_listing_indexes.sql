-- Listings filtered by author or genre and sorted another way: one index per (filter, sort
-- key, id), so that PostgreSQL reads such a page straight off an index, however few books
-- match, instead of fetching every match and sorting them (0001 has (author_key, id) and
-- (genre_key, id), which serve the id sort, and (author_key, id) the author sort).
-- Checked by EXPLAIN in backend/tests/api/books_list.rs (`listing_plans`).
--
-- Seven more indexes make each write a little dearer; docs/benchmarks.md measures it. On a
-- big catalogue this migration takes a while (about 10 s per million books here): replicas
-- wait for it at start-up.
CREATE INDEX books_genre_title    ON books (genre_key, title_key, id);
CREATE INDEX books_genre_author   ON books (genre_key, author_key, id);
CREATE INDEX books_genre_year     ON books (genre_key, year, id);
CREATE INDEX books_genre_created  ON books (genre_key, created_at, id);
CREATE INDEX books_author_title   ON books (author_key, title_key, id);
CREATE INDEX books_author_year    ON books (author_key, year, id);
CREATE INDEX books_author_created ON books (author_key, created_at, id);
