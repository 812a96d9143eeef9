//! The bookstore service: a REST API over SQLite, with its UI, docs and metrics.
//!
//! Layout: `domain` holds the book rules, `store` the SQL, `http` the routes and middleware,
//! `error` the one error type and its HTTP mapping; `config`, `telemetry` and `metrics` are
//! the wiring; `startup` builds the application for `main` and for the tests.

pub mod alert_log;
pub mod auth;
pub mod backups;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod healthcheck;
pub mod http;
pub mod metrics;
pub mod otlp;
pub mod secrets;
pub mod seed;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
