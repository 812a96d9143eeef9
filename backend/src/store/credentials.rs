//! Where credentials live: API tokens and browser sessions, in the same database as the
//! books (so that every replica on one PostgreSQL shares them, and a backup holds them).
//!
//! Only hashes are stored: a token or a session cookie cannot be read back out of the
//! database, its backups or its logs. What a credential allows is decided in `auth`; this
//! is the SQL behind it, one small function per statement, in each engine's folder.

use super::Engine;
use super::postgres::credentials::PgCredentials;
use super::sqlite::credentials::SqliteCredentials;

/// An API token as stored (its hash is never read back out).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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

/// A session joined with its token's revocation, as both engines read it.
#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    #[sqlx(flatten)]
    session: SessionRecord,
    revoked_at: Option<i64>,
}

impl From<SessionRow> for FoundSession {
    fn from(row: SessionRow) -> Self {
        Self {
            session: row.session,
            token_revoked: row.revoked_at.is_some(),
        }
    }
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
    pub(crate) fn of(error: sqlx::Error, name: &str) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::NameTaken(name.to_owned()),
            _ => Self::Database(error),
        }
    }
}

/// The credential tables of one database.
#[derive(Clone)]
pub enum CredentialStore {
    Sqlite(SqliteCredentials),
    Postgres(PgCredentials),
}

impl CredentialStore {
    /// Opens the credentials of the database at `url` on their own, for the `token` commands
    /// (which may run while a server uses the database). Migrates it; a SQLite file must
    /// exist already (the server creates it), so that a mistyped path is not a new database.
    pub async fn open(url: &str) -> Result<Self, sqlx::Error> {
        match Engine::of(url) {
            Some(Engine::Sqlite) => Ok(Self::Sqlite(SqliteCredentials::open(url).await?)),
            Some(Engine::Postgres) => Ok(Self::Postgres(PgCredentials::open(url).await?)),
            None => Err(sqlx::Error::Configuration(
                "the database URL must start with sqlite:// or postgres://".into(),
            )),
        }
    }

    /// The token whose hash this is, revoked or expired ones included.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, sqlx::Error> {
        match self {
            Self::Sqlite(store) => store.token_by_hash(hash).await,
            Self::Postgres(store) => store.token_by_hash(hash).await,
        }
    }

    pub async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, CreateError> {
        match self {
            Self::Sqlite(store) => store.create_token(token).await,
            Self::Postgres(store) => store.create_token(token).await,
        }
    }

    /// Stores `token` only if the database has never held a token: at most one first-start
    /// token, however many replicas start together. `true` if it was stored.
    pub async fn create_first_token(&self, token: &NewToken) -> Result<bool, sqlx::Error> {
        match self {
            Self::Sqlite(store) => store.create_first_token(token).await,
            Self::Postgres(store) => store.create_first_token(token).await,
        }
    }

    /// Every token, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, sqlx::Error> {
        match self {
            Self::Sqlite(store) => store.list_tokens().await,
            Self::Postgres(store) => store.list_tokens().await,
        }
    }

    /// Revokes the active token named `name` and ends its sessions; `false` if there is none.
    pub async fn revoke_token(&self, name: &str, now: i64) -> Result<bool, sqlx::Error> {
        match self {
            Self::Sqlite(store) => store.revoke_token(name, now).await,
            Self::Postgres(store) => store.revoke_token(name, now).await,
        }
    }

    /// Records that token `id` was used at `now`.
    pub async fn touch_token(&self, id: i64, now: i64) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(store) => store.touch_token(id, now).await,
            Self::Postgres(store) => store.touch_token(id, now).await,
        }
    }

    pub async fn create_session(&self, session: &SessionRecord) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(store) => store.create_session(session).await,
            Self::Postgres(store) => store.create_session(session).await,
        }
    }

    pub async fn find_session(&self, id_hash: &str) -> Result<Option<FoundSession>, sqlx::Error> {
        match self {
            Self::Sqlite(store) => store.find_session(id_hash).await,
            Self::Postgres(store) => store.find_session(id_hash).await,
        }
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(store) => store.delete_session(id_hash).await,
            Self::Postgres(store) => store.delete_session(id_hash).await,
        }
    }

    /// Deletes the sessions that expired before `now`; returns how many.
    pub async fn purge_sessions(&self, now: i64) -> Result<u64, sqlx::Error> {
        match self {
            Self::Sqlite(store) => store.purge_sessions(now).await,
            Self::Postgres(store) => store.purge_sessions(now).await,
        }
    }

    /// Closes what [`Self::open`] opened.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }
}
