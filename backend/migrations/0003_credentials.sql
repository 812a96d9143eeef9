-- Credentials: API tokens (stored only as a SHA-256 hash of the token, which is shown once
-- when created) and browser sessions (stored only as a hash of the session cookie's value).
-- Times are unix seconds.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    can_write    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
-- A name is taken while its token is in use; a revoked token's name may be used again.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- A session made from an API token (`token_id`) ends when that token is revoked; one made
-- from the operator token (`operator_fingerprint`, a hash of its hash) ends when the
-- operator token changes. `expires_at` is never later than the token's own expiry.
CREATE TABLE sessions (
    id_hash              TEXT    PRIMARY KEY,
    token_id             INTEGER REFERENCES api_tokens (id),
    operator_fingerprint TEXT,
    name                 TEXT    NOT NULL,
    can_write            INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires_at);
