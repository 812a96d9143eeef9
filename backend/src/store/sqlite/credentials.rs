//! API tokens and sessions in the SQLite file.
//!
//! Lookups use the read pool (in parallel, like every read); changes go through a pool of
//! one read-write connection of their own, not the book writer: they are rare (a sign-in, a
//! token's last use at most once a minute), touch no cached data, and wait for the book
//! writer's short commits like any other SQLite writer (the busy timeout). The `token`
//! commands write through their own connection, from another process: SQLite serialises
//! them with the server's, and the server reads their result at its next lookup.

use std::time::Duration;

use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{ConnectOptions, SqlitePool};

use crate::store::credentials::{
    CreateError, FoundSession, NewToken, SessionRecord, SessionRow, TokenRecord,
};

/// The columns of a [`TokenRecord`].
macro_rules! token_columns {
    () => {
        "id, name, can_write, created_at, expires_at, last_used_at, revoked_at"
    };
}

#[derive(Clone)]
pub struct SqliteCredentials {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteCredentials {
    /// With the server's read pool, and a write connection opened when first needed.
    pub(super) fn new(read: SqlitePool, options: sqlx::sqlite::SqliteConnectOptions) -> Self {
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        Self { read, write }
    }

    /// On their own (the `token` commands): the file must exist; it is migrated.
    pub async fn open(url: &str) -> Result<Self, sqlx::Error> {
        let options = super::connect_options(url)?.create_if_missing(false);
        let mut conn = options.connect().await?;
        sqlx::migrate!("./migrations").run(&mut conn).await?;
        drop(conn);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Self {
            read: pool.clone(),
            write: pool,
        })
    }

    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE token_hash = ?"
        ))
        .bind(hash)
        .fetch_optional(&self.read)
        .await
    }

    pub async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, CreateError> {
        sqlx::query_as(concat!(
            "INSERT INTO api_tokens (name, token_hash, can_write, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING ",
            token_columns!()
        ))
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.can_write)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(&self.write)
        .await
        .map_err(|error| CreateError::of(error, &token.name))
    }

    /// One statement: SQLite runs it as one write transaction, so "no token yet" cannot
    /// change between the check and the insert.
    pub async fn create_first_token(&self, token: &NewToken) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO api_tokens (name, token_hash, can_write, created_at, expires_at) \
             SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM api_tokens)",
        )
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.can_write)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens ORDER BY id"
        ))
        .fetch_all(&self.read)
        .await
    }

    pub async fn revoke_token(&self, name: &str, now: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        let revoked: Option<i64> = sqlx::query_scalar(
            "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = revoked {
            sqlx::query("DELETE FROM sessions WHERE token_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(revoked.is_some())
    }

    pub async fn touch_token(&self, id: i64, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub async fn create_session(&self, session: &SessionRecord) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, token_id, operator_fingerprint, name, can_write, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&session.id_hash)
        .bind(session.token_id)
        .bind(&session.operator_fingerprint)
        .bind(&session.name)
        .bind(session.can_write)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn find_session(&self, id_hash: &str) -> Result<Option<FoundSession>, sqlx::Error> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT s.id_hash, s.token_id, s.operator_fingerprint, s.name, s.can_write, s.created_at, \
                    s.expires_at, t.revoked_at \
             FROM sessions s LEFT JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_hash = ?",
        )
        .bind(id_hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(FoundSession::from))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub async fn purge_sessions(&self, now: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// Closes the write connection (the read pool belongs to the store).
    pub async fn close(&self) {
        self.write.close().await;
    }
}
