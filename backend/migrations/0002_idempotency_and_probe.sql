-- Idempotent creation and the writer's health probe.
--
-- idempotency_keys: the answer to each POST /books sent with an Idempotency-Key, so that a
-- retry with the same key (in the same scope: the credential that sent it) gets the same
-- answer instead of a second book. Kept 24 hours (created_at is in unix seconds); the
-- writer deletes older rows.
CREATE TABLE idempotency_keys (
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    book_id     INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    response    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;

-- One row the writer rewrites to find out whether a commit can succeed again after one
-- failed (a full disk, say), while no other write is waiting.
CREATE TABLE writer_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
