//! Backups of a SQLite database: `bookstore backup` and `bookstore restore` ([`copy`]), and
//! the scheduled ones of `bookstore serve` ([`schedule`]). (On PostgreSQL, `pg_dump` and
//! `pg_restore` do this.)

pub mod copy;
mod schedule;

pub use schedule::Schedule;
