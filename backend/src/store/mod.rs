//! Where the data lives. The database answers: every listing is SQL over its indexes, every
//! count is kept in it, and the SQL is written once for both engines (`sql.rs`,
//! `listing.rs`, `credentials.rs`), which differ only where [`Catalogue`] says.
//!
//! - [`sqlite`] (`sqlite://PATH`): the embedded default, for one backend process: a
//!   batching writer, and the books by id in memory (which that writer keeps exact).
//! - [`postgres`] (`postgres://…`): for any number of backend processes on one database;
//!   nothing is answered from process memory.

mod catalogue;
pub mod credentials;
mod listing;
pub mod postgres;
mod sql;
pub mod sqlite;
mod statement;
mod stored;
pub mod transfer;

use std::sync::Arc;

pub use catalogue::{
    Catalogue, Created, KEY_LIFETIME_SECS, NotReady, PoolUse, Store, check, not_found, unix_now,
};
pub use credentials::CredentialStore;
pub use listing::COUNT_CAP;
pub use sqlite::Durability;
pub use statement::Engine;
pub use stored::{BookRef, Page, StoredBook, Total};

/// What opening a database needs.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub database_url: String,
    /// SQLite only.
    pub durability: Durability,
    /// PostgreSQL only: the connection pool's size.
    pub max_connections: u32,
}

/// What opening the database found.
pub struct Opened {
    pub store: Store,
    /// The database had never been migrated: it is brand new.
    pub fresh: bool,
}

/// Opens the database `config.database_url` names, migrating it.
pub async fn open(config: &StoreConfig) -> Result<Opened, sqlx::Error> {
    let url = &config.database_url;
    let (store, fresh): (Store, bool) = match Engine::named_by(url)? {
        Engine::Sqlite => {
            let (store, fresh) = sqlite::SqliteStore::open(url, config.durability).await?;
            (Arc::new(store), fresh)
        }
        Engine::Postgres => {
            let (store, fresh) = postgres::PostgresStore::open(url, config.max_connections).await?;
            (Arc::new(store), fresh)
        }
    };
    Ok(Opened { store, fresh })
}

/// Opens the credentials of the database at `url` on their own, for the `token` commands
/// (which may run while a server uses the database). Migrates it; a SQLite file must exist
/// already (the server creates it), so that a mistyped path is not a new database.
pub async fn open_credentials(url: &str) -> Result<CredentialStore, sqlx::Error> {
    Ok(match Engine::named_by(url)? {
        Engine::Sqlite => Arc::new(sqlite::credentials(url).await?),
        Engine::Postgres => Arc::new(postgres::credentials(url).await?),
    })
}
