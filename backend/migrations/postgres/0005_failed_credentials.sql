-- The limit on guessing credentials (backend/src/auth/limiter.rs), kept in the database so
-- that every replica shares one count: a token bucket per client address (an IPv4 address
-- or an IPv6 /64), and one for all clients together (client '*'). `allowance` is in
-- thousandths of a failure, `updated_ms` in unix milliseconds. Rows that have refilled are
-- deleted with the expired sessions.
CREATE TABLE failed_credentials (
    client     TEXT   PRIMARY KEY,
    allowance  BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
