//! The built binary as a process of its own, by concern: its life (start-up, signals,
//! shutdown, upgrades), what it tells operators (metrics, logs, traces), its database
//! commands, and its backups. The helpers here are shared by more than one of them.

#[path = "../support/mod.rs"]
mod support;

mod backups;
mod commands;
mod lifecycle;
mod observability;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{BINARY, Server};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("bookstore.db");
    (dir, db)
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Runs `bookstore token ARGS` on the database file `db`: (exit code, stdout, stderr).
fn token_command(db: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    command_on(db, &[&["token"], args].concat(), None)
}

async fn post_with(server: &Server, token: &str) -> u16 {
    reqwest::Client::new()
        .post(server.url("/books"))
        .bearer_auth(token)
        .json(&json!({"title": "Tokened", "author": "A. Writer", "year": 2020}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every file of the folder holding `db` (the database, its WAL, its shared memory).
fn database_bytes(db: &std::path::Path) -> String {
    std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|entry| String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap()).into_owned())
        .collect()
}

/// A file's permission bits.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode()
}

/// Runs `bookstore ARGS --database-url sqlite://DB`, optionally under `prlimit` options:
/// (exit code, stdout, stderr).
fn command_on(db: &std::path::Path, args: &[&str], prlimit: Option<&str>) -> (i32, String, String) {
    let mut command = match prlimit {
        Some(limit) => {
            let mut command = Command::new("prlimit");
            command.arg(limit).arg(support::binary());
            command
        }
        None => Command::new(support::binary()),
    };
    let output = command
        .args(args)
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .expect("the binary runs");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}
