//! Black-box tests of the HTTP contract (`shared/spec/api.md`): each test starts the real
//! application on a free port with its own fresh database and talks to it over HTTP.
//!
//! Every test runs on both engines: `NAME::sqlite` on a new SQLite file, and `NAME::postgres`
//! on a new database of the PostgreSQL server `BOOKSTORE_TEST_POSTGRES` names. The PostgreSQL
//! runs are marked ignored, so that a plain `cargo test` reports them as not run rather than
//! passed; `scripts/test.sh postgres` starts a server and runs them with `--include-ignored`.

/// A test of the contract, run once per database engine. The body gets the engine as
/// `$engine` and starts the app with it.
macro_rules! contract_test {
    ($(#[doc = $doc:literal])* #[$test:meta] async fn $name:ident($engine:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[$test]
            async fn sqlite() {
                let $engine = crate::helpers::Engine::Sqlite;
                $body
            }

            #[$test]
            #[ignore = "needs a PostgreSQL server: BOOKSTORE_TEST_POSTGRES (scripts/test.sh postgres sets it)"]
            async fn postgres() {
                let $engine = crate::helpers::Engine::Postgres;
                $body
            }
        }
    };
}

mod helpers;

mod auth;
mod books_create;
mod books_delete;
mod books_list;
mod books_read;
mod books_update;
mod concurrency;
mod docs;
mod errors;
mod health;
mod idempotency;
mod listings;
mod metrics;
