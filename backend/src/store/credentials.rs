//! Where credentials live: API tokens and browser sessions, in the same database as the
//! books (so that every replica on one PostgreSQL shares them, and a backup holds them).
//!
//! Only hashes are stored: a token or a session cookie cannot be read back out of the
//! database, its backups or its logs. What a credential allows is decided in `auth`; this
//! is the SQL behind it, written once for both engines.

use std::sync::Arc;

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::statement::{Arg, Engine};

/// An API token as stored (its hash is never read back out).
#[derive(Debug, Clone, PartialEq, Eq, sqlx_macros::FromRow)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub can_write: bool,
    /// Unix seconds, as every time below.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub hash: String,
    pub can_write: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A browser session as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx_macros::FromRow)]
pub struct SessionRecord {
    pub id_hash: String,
    /// The API token it was made from, or `None` for the operator token.
    pub token_id: Option<i64>,
    /// For a session made from the operator token: which one (a hash of its hash).
    pub operator_fingerprint: Option<String>,
    pub name: String,
    pub can_write: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A session found by its cookie, with what became of the token it was made from.
#[derive(Debug, Clone)]
pub struct FoundSession {
    pub session: SessionRecord,
    pub token_revoked: bool,
}

/// A session joined with its token's revocation.
#[derive(sqlx_macros::FromRow)]
pub struct SessionRow {
    #[sqlx(flatten)]
    session: SessionRecord,
    revoked_at: Option<i64>,
}

/// Why a token could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("a token named {0:?} exists already (revoke it first, or choose another name)")]
    NameTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl CreateError {
    /// A unique-index violation is the name (hashes of random tokens do not collide).
    fn of(error: sqlx::Error, name: &str) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::NameTaken(name.to_owned()),
            _ => Self::Database(error),
        }
    }
}

/// The credential tables of one database, whichever engine holds it.
pub type CredentialStore = Arc<dyn Credentials>;

/// What `auth` and the `token` commands do with credentials.
#[async_trait::async_trait]
pub trait Credentials: Send + Sync {
    /// The token whose hash this is, revoked or expired ones included.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, sqlx::Error>;
    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, CreateError>;
    /// Stores `token` only if the database has never held a token: at most one first-start
    /// token, however many replicas start together. `true` if it was stored.
    async fn create_first_token(&self, token: &NewToken) -> Result<bool, sqlx::Error>;
    /// Every token, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, sqlx::Error>;
    /// Revokes the active token named `name` and ends its sessions; `false` if there is none.
    async fn revoke_token(&self, name: &str, now: i64) -> Result<bool, sqlx::Error>;
    /// Records that token `id` was used at `now`.
    async fn touch_token(&self, id: i64, now: i64) -> Result<(), sqlx::Error>;
    /// Stores `session`, then ends the oldest sessions of the same token past the newest `keep`.
    async fn create_session(&self, session: &SessionRecord, keep: u32) -> Result<(), sqlx::Error>;
    async fn find_session(&self, id_hash: &str) -> Result<Option<FoundSession>, sqlx::Error>;
    async fn delete_session(&self, id_hash: &str) -> Result<(), sqlx::Error>;
    /// Deletes the sessions that expired before `now`; returns how many.
    async fn purge_sessions(&self, now: i64) -> Result<u64, sqlx::Error>;
    /// The buckets of failed credentials named `keys`: (key, allowance, updated_ms).
    async fn failure_buckets(&self, keys: [&str; 2]) -> Result<Vec<(String, i64, i64)>, sqlx::Error>;
    /// Spends one failure (1,000 thousandths) from bucket `key`, refilled since its last
    /// update at `per_minute` failures a minute up to `per_minute`; returns what is left.
    async fn spend_failure(&self, key: &str, per_minute: i64, now_ms: i64) -> Result<i64, sqlx::Error>;
    /// Deletes the buckets last changed before `before_ms`.
    async fn purge_failures(&self, before_ms: i64) -> Result<(), sqlx::Error>;
    /// Closes what `store::open_credentials` opened (a server's store closes its own).
    async fn close(&self);
}

/// The tables, read through one pool and changed through another (on SQLite, changes take
/// a connection of their own rather than the book writer's; on PostgreSQL both are the same
/// pool).
pub struct Tables<DB: Database> {
    pub engine: Engine,
    pub read: Pool<DB>,
    pub write: Pool<DB>,
}

const TOKEN_COLUMNS: &str = "id, name, can_write, created_at, expires_at, last_used_at, revoked_at";

// The bounds of `store::sql::Sql` again: what sqlx must do with the driver for the SQL
// below (Rust does not carry a trait's `where` clause to the code that uses the trait).
#[async_trait::async_trait]
impl<DB> Credentials for Tables<DB>
where
    DB: Database,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Arg: Encode<'q, DB> + Type<DB>,
    for<'r> TokenRecord: FromRow<'r, <DB as Database>::Row>,
    for<'r> SessionRow: FromRow<'r, <DB as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <DB as Database>::Row>,
    for<'r> (String, i64, i64): FromRow<'r, <DB as Database>::Row>,
{
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, sqlx::Error> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
        sqlx::query_as(&sql)
            .bind(Arg::Text(hash.to_owned()))
            .fetch_optional(&self.read)
            .await
    }

    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, CreateError> {
        let sql = format!(
            "INSERT INTO api_tokens (name, token_hash, can_write, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {TOKEN_COLUMNS}"
        );
        let mut query = sqlx::query_as(&sql);
        for arg in token_args(token) {
            query = query.bind(arg);
        }
        query
            .fetch_one(&self.write)
            .await
            .map_err(|error| CreateError::of(error, &token.name))
    }

    /// The check and the insert are one statement, in a transaction that (on PostgreSQL)
    /// first locks the table against other writers: replicas starting together store one
    /// first-start token between them.
    async fn create_first_token(&self, token: &NewToken) -> Result<bool, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        if let Some(lock) = self.engine.lock_table("api_tokens") {
            sqlx::query(&lock).execute(&mut *tx).await?;
        }
        let mut insert = sqlx::query_as(
            "INSERT INTO api_tokens (name, token_hash, can_write, created_at, expires_at) \
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM api_tokens) RETURNING id",
        );
        for arg in token_args(token) {
            insert = insert.bind(arg);
        }
        let stored: Option<(i64,)> = insert.fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(stored.is_some())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, sqlx::Error> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id");
        sqlx::query_as(&sql).fetch_all(&self.read).await
    }

    async fn revoke_token(&self, name: &str, now: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        let revoked: Option<(i64,)> = sqlx::query_as(
            "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(Arg::Int(now))
        .bind(Arg::Text(name.to_owned()))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id,)) = revoked {
            sqlx::query("DELETE FROM sessions WHERE token_id = $1")
                .bind(Arg::Int(id))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(revoked.is_some())
    }

    async fn touch_token(&self, id: i64, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(Arg::Int(now))
            .bind(Arg::Int(id))
            .execute(&self.write)
            .await
            .map(drop)
    }

    async fn create_session(&self, session: &SessionRecord, keep: u32) -> Result<(), sqlx::Error> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, token_id, operator_fingerprint, name, can_write, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Arg::Text(session.id_hash.clone()))
        .bind(Arg::OptionalInt(session.token_id))
        .bind(Arg::OptionalText(session.operator_fingerprint.clone()))
        .bind(Arg::Text(session.name.clone()))
        .bind(Arg::Bool(session.can_write))
        .bind(Arg::Int(session.created_at))
        .bind(Arg::Int(session.expires_at))
        .execute(&mut *tx)
        .await?;
        // An older session of the same token with `keep` newer ones (the new one among them)
        // ends. Sessions made in the same second are told apart by their id's hash.
        sqlx::query(
            "DELETE FROM sessions AS s WHERE token_id IS NOT DISTINCT FROM $1 \
             AND operator_fingerprint IS NOT DISTINCT FROM $2 AND id_hash <> $4 \
             AND $3 <= (SELECT count(*) FROM sessions n WHERE n.token_id IS NOT DISTINCT FROM $1 \
             AND n.operator_fingerprint IS NOT DISTINCT FROM $2 \
             AND (n.id_hash = $4 OR (n.created_at, n.id_hash) > (s.created_at, s.id_hash)))",
        )
        .bind(Arg::OptionalInt(session.token_id))
        .bind(Arg::OptionalText(session.operator_fingerprint.clone()))
        .bind(Arg::Int(i64::from(keep)))
        .bind(Arg::Text(session.id_hash.clone()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    async fn find_session(&self, id_hash: &str) -> Result<Option<FoundSession>, sqlx::Error> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT s.id_hash, s.token_id, s.operator_fingerprint, s.name, s.can_write, s.created_at, \
                    s.expires_at, t.revoked_at \
             FROM sessions s LEFT JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_hash = $1",
        )
        .bind(Arg::Text(id_hash.to_owned()))
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|row| FoundSession {
            session: row.session,
            token_revoked: row.revoked_at.is_some(),
        }))
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(Arg::Text(id_hash.to_owned()))
            .execute(&self.write)
            .await
            .map(drop)
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64, sqlx::Error> {
        let purged: Vec<(i64,)> =
            sqlx::query_as("DELETE FROM sessions WHERE expires_at <= $1 RETURNING expires_at")
                .bind(Arg::Int(now))
                .fetch_all(&self.write)
                .await?;
        Ok(purged.len() as u64)
    }

    async fn failure_buckets(&self, keys: [&str; 2]) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT client, allowance, updated_ms FROM failed_credentials WHERE client IN ($1, $2)",
        )
        .bind(Arg::Text(keys[0].to_owned()))
        .bind(Arg::Text(keys[1].to_owned()))
        .fetch_all(&self.read)
        .await
    }

    async fn spend_failure(&self, key: &str, per_minute: i64, now_ms: i64) -> Result<i64, sqlx::Error> {
        // One statement: replicas spending from one bucket at once each see the other's spend.
        let (left,): (i64,) = sqlx::query_as(
            "INSERT INTO failed_credentials (client, allowance, updated_ms) VALUES ($1, $2 * 1000 - 1000, $3) \
             ON CONFLICT (client) DO UPDATE SET updated_ms = $3, allowance = CASE \
             WHEN failed_credentials.allowance + ($3 - failed_credentials.updated_ms) * $2 / 60 > $2 * 1000 \
             THEN $2 * 1000 ELSE failed_credentials.allowance + ($3 - failed_credentials.updated_ms) * $2 / 60 \
             END - 1000 RETURNING allowance",
        )
        .bind(Arg::Text(key.to_owned()))
        .bind(Arg::Int(per_minute))
        .bind(Arg::Int(now_ms))
        .fetch_one(&self.write)
        .await?;
        Ok(left)
    }

    async fn purge_failures(&self, before_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM failed_credentials WHERE updated_ms < $1")
            .bind(Arg::Int(before_ms))
            .execute(&self.write)
            .await
            .map(drop)
    }

    async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// A new token's columns, in the order both inserts name them.
fn token_args(token: &NewToken) -> [Arg; 5] {
    [
        Arg::Text(token.name.clone()),
        Arg::Text(token.hash.clone()),
        Arg::Bool(token.can_write),
        Arg::Int(token.created_at),
        Arg::OptionalInt(token.expires_at),
    ]
}
