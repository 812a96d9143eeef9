//! API tokens and sessions in PostgreSQL, shared by every replica: a token revoked or a
//! session made through one is seen by all at their next lookup.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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
pub struct PgCredentials {
    pool: PgPool,
}

impl PgCredentials {
    /// With the server's pool.
    pub(super) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// On their own (the `token` commands): one connection, and the migrations (once,
    /// however many processes start together: sqlx holds an advisory lock).
    pub async fn open(url: &str) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?.application_name("bookstore token");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, CreateError> {
        sqlx::query_as(concat!(
            "INSERT INTO api_tokens (name, token_hash, can_write, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING ",
            token_columns!()
        ))
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.can_write)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| CreateError::of(error, &token.name))
    }

    /// The table is locked against other writers for the check and the insert, so replicas
    /// starting together store one first-start token between them.
    pub async fn create_first_token(&self, token: &NewToken) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE api_tokens IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO api_tokens (name, token_hash, can_write, created_at, expires_at) \
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM api_tokens)",
        )
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.can_write)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn revoke_token(&self, name: &str, now: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let revoked: Option<i64> = sqlx::query_scalar(
            "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = revoked {
            sqlx::query("DELETE FROM sessions WHERE token_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(revoked.is_some())
    }

    pub async fn touch_token(&self, id: i64, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn create_session(&self, session: &SessionRecord) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, token_id, operator_fingerprint, name, can_write, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.id_hash)
        .bind(session.token_id)
        .bind(&session.operator_fingerprint)
        .bind(&session.name)
        .bind(session.can_write)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn find_session(&self, id_hash: &str) -> Result<Option<FoundSession>, sqlx::Error> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT s.id_hash, s.token_id, s.operator_fingerprint, s.name, s.can_write, s.created_at, \
                    s.expires_at, t.revoked_at \
             FROM sessions s LEFT JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(FoundSession::from))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn purge_sessions(&self, now: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Closes the connections (only the `token` commands close their own: the server's
    /// pool belongs to its store).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
