//! Black-box tests of the HTTP contract (`shared/spec/api.md`): each test starts the real
//! application on a free port with its own fresh SQLite file and talks to it over HTTP.

mod helpers;

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
mod metrics;
