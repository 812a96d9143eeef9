-- The trigram indexes' pending lists, kept small (256 kB, not PostgreSQL's 4 MB default).
--
-- A GIN index adds new entries to a pending list, unsorted, that vacuum (or an insert that
-- finds the list over its limit) merges into the index. Every search reads the whole list,
-- and the planner counts it: measured on 100,000 books just written, a 4 MB list made it
-- read every book for a selective `q` (a sequential scan), where the index answers once the
-- list is merged. How a search ran then depended on when autovacuum last came by. At
-- 256 kB a search reads at most that, whatever autovacuum does, and writes still batch
-- their index entries. The price, measured with random 32-character titles (the worst
-- case: every trigram new): 5,000 single-row inserts took 0.21 ms each, against 0.05 ms
-- with the default and 0.65 ms with no pending list at all (fastupdate off).
ALTER INDEX books_title_trgm SET (gin_pending_list_limit = 256);
ALTER INDEX books_author_trgm SET (gin_pending_list_limit = 256);
