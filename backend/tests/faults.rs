//! Faults injected for real into the built binary: a full disk (a file-size limit on the
//! process), a database locked by another connection, a book stored in a form the backend
//! cannot read, clients that are slow, silent or idle, more clients than the connection cap,
//! and a flood of distinct searches. Each test names the behaviour the
//! contract promises under that fault.

mod support;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, SqliteConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::Server;

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bookstore.db");
    (dir, db)
}

fn book(title: &str) -> Value {
    json!({"title": title, "author": "Fault Injector", "year": 2001})
}

async fn post(client: &Client, server: &Server, body: &Value) -> reqwest::Response {
    client
        .post(server.url("/books"))
        .json(body)
        .send()
        .await
        .expect("answered")
}

/// Every title in the catalogue.
async fn titles(server: &Server) -> Vec<String> {
    let books: Vec<Value> = reqwest::get(server.url("/books?limit=1000"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    books
        .iter()
        .map(|b| b["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn status_of(url: &str) -> (StatusCode, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls `check` every 50 ms until it is true or `within` passes.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The exit status of `bookstore healthcheck` against `server` (what the image's health check runs).
fn healthcheck(server: &Server) -> Option<i32> {
    std::process::Command::new(support::binary())
        .args(["healthcheck", "--addr", &server.addr.to_string()])
        .output()
        .expect("the binary runs")
        .status
        .code()
}

async fn connect(db: &Path) -> SqliteConnection {
    SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))
        .unwrap()
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_full_disk_fails_writes_as_safe_to_retry_and_the_writer_recovers_without_a_restart() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;
    let client = support::client();
    assert_eq!(
        post(&client, &server, &book("Before the disk filled"))
            .await
            .status(),
        201
    );

    // No file may hold more than a page: a commit cannot write its pages to the WAL (nor a
    // checkpoint into the database file). (A full disk with room left inside the WAL file
    // would still take writes that fit there, as a real one does.)
    server.limit_file_size(Some(4096));
    let refused = post(&client, &server, &book("Written to a full disk")).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused.headers()["retry-after"],
        "1",
        "nothing was written: safe to retry"
    );
    let (status, problem) = status_of(&server.url("/readyz")).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready while no write can commit"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("a write cannot commit"), "{problem}");
    assert!(
        !detail.contains("disk") && !detail.contains("full") && !detail.contains("error"),
        "the database's own words stay in the log: {problem}"
    );
    assert_eq!(
        status_of(&server.url("/healthz")).await.0,
        StatusCode::OK,
        "alive all the same"
    );
    assert_eq!(
        healthcheck(&server),
        Some(1),
        "the container health check sees it"
    );
    for _ in 0..3 {
        let again = post(&client, &server, &book("Written to a full disk")).await;
        assert_eq!(
            again.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "every write fails honestly, none with a 500"
        );
    }
    assert_eq!(titles(&server).await, ["Before the disk filled"], "reads go on");

    // Space again: the writer's probe notices by itself, with no write needed.
    server.limit_file_size(None);
    eventually(
        Duration::from_secs(10),
        "readiness after the disk has space",
        || async { status_of(&server.url("/readyz")).await.0 == StatusCode::OK },
    )
    .await;
    assert_eq!(healthcheck(&server), Some(0));
    assert_eq!(
        post(&client, &server, &book("After the disk had space"))
            .await
            .status(),
        201
    );
    let patch = client
        .patch(server.url("/books/1"))
        .json(&json!({"year": 2002}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    assert_eq!(
        client
            .delete(server.url("/books/2"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(titles(&server).await, ["Before the disk filled"]);
}

#[tokio::test]
async fn a_write_that_timed_out_waiting_is_never_committed_and_one_that_began_is_awaited() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "false", "--request-timeout", "1s"]);
    server.wait_ready().await;
    let client = support::client();

    // Another program takes the write lock for 3 s.
    let mut other = connect(&db).await;
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    let first = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/books"));
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .json(&book("Began committing"))
                .send()
                .await
                .unwrap();
            (
                response.status(),
                response.headers().get("retry-after").cloned(),
                started.elapsed(),
            )
        }
    });
    // The writer has taken the first write and waits for the lock; these queue behind it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued: Vec<_> = (0..3)
        .map(|i| {
            let (client, url) = (client.clone(), server.url("/books"));
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&book(&format!("Queued {i}")))
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.headers().get("retry-after").cloned())
            })
        })
        .collect();
    for answer in queued {
        let (status, retry_after) = answer.await.unwrap();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "past the time limit, still queued"
        );
        assert_eq!(retry_after.unwrap(), "1", "answered as safe to retry");
    }
    tokio::time::sleep(Duration::from_millis(2700)).await;
    other.execute("ROLLBACK").await.unwrap();

    let (status, retry_after, took) = first.await.unwrap();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a write that began committing is answered with its outcome"
    );
    assert!(retry_after.is_none());
    assert!(
        took > Duration::from_secs(2),
        "it waited past the 1 s limit for the lock: {took:?}"
    );
    // The writer is free again: the queued writes were skipped, not committed late.
    assert_eq!(post(&client, &server, &book("Afterwards")).await.status(), 201);
    assert_eq!(titles(&server).await, ["Began committing", "Afterwards"]);
}

#[tokio::test]
async fn a_book_stored_in_a_form_the_backend_cannot_read_fails_only_the_requests_that_touch_it() {
    let (_dir, db) = temp_db();
    // A database made by the binary, then a row made unreadable behind its back.
    let server = Server::start(&db, &["--demo-data", "true"]);
    server.wait_ready().await;
    drop(server);
    let mut conn = connect(&db).await;
    conn.execute("UPDATE books SET created_at = x'00ff' WHERE id = 3")
        .await
        .unwrap();

    let server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;
    let client = support::client();
    let broken = client.get(server.url("/books/3")).send().await.unwrap();
    assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let problem: Value = broken.json().await.unwrap();
    assert!(
        !problem["detail"].as_str().unwrap().contains("created_at"),
        "no internals in the answer: {problem}"
    );
    let listing = client.get(server.url("/books?limit=2")).send().await.unwrap();
    assert_eq!(listing.status(), StatusCode::OK, "a page without it is served");
    assert_eq!(
        client.get(server.url("/books/4")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&client, &server, &book("Meanwhile")).await.status(),
        201,
        "writes go on"
    );
    assert_eq!(status_of(&server.url("/readyz")).await.0, StatusCode::OK);

    conn.execute("UPDATE books SET created_at = '2026-11-25T10:00:00Z' WHERE id = 3")
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(
        client.get(server.url("/books/3")).send().await.unwrap().status(),
        StatusCode::OK,
        "mended, it is served again"
    );
    assert_eq!(titles(&server).await.len(), 13);
}

/// Opens `n` connections that each send the start of a request head and no more.
async fn slow_heads(server: &Server, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /books HTTP/1.1\r\nHost: slow\r\n")
            .await
            .unwrap();
        streams.push(stream);
    }
    streams
}

/// Whether the server has closed `stream` (a read sees the end, or a reset).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An answer (a timeout response, if any) followed by the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn two_hundred_slow_request_heads_are_closed_on_time_while_others_are_served() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "true", "--header-timeout", "1s"]);
    server.wait_ready().await;
    let opened = Instant::now();
    let mut slow = slow_heads(&server, 200).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();

    // Meanwhile, ordinary clients are answered as usual.
    let client = support::client();
    for _ in 0..20 {
        let response = client.get(server.url("/books?limit=5")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    for stream in slow.iter_mut() {
        assert!(
            closed_by_server(stream, Duration::from_secs(5)).await,
            "a slow head was kept open"
        );
    }
    assert!(
        closed_by_server(&mut silent, Duration::from_secs(5)).await,
        "a silent connection was kept open"
    );
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed before the limit: {took:?}"
    );
    assert_eq!(
        client.get(server.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--header-timeout", "1s", "--idle-timeout", "3s"]);
    server.wait_ready().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: idle\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let answered = Instant::now();
    // Past the header timeout, an idle connection (nothing sent since) is still open...
    assert!(
        !closed_by_server(&mut stream, Duration::from_millis(1800)).await,
        "closed at the header timeout"
    );
    // ...and closed once the idle timeout has passed.
    assert!(
        closed_by_server(&mut stream, Duration::from_secs(4)).await,
        "idle connection kept open"
    );
    assert!(answered.elapsed() >= Duration::from_millis(2900));
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_to_be_accepted_rather_than_fail() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--max-connections", "20", "--header-timeout", "2s"]);
    server.wait_ready().await;
    let hogs = slow_heads(&server, 20).await;
    let started = Instant::now();
    let client = Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let response = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("served once a slot frees");
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "answered at once although every slot was taken: {:?}",
        started.elapsed()
    );
    drop(hogs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_distinct_searches_keep_memory_bounded() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "true"]);
    server.wait_ready().await;
    let client = support::client();
    let workers: Vec<_> = (0..16)
        .map(|worker| {
            let (client, base) = (client.clone(), server.url("/books"));
            tokio::spawn(async move {
                for i in (worker..100_000).step_by(16) {
                    // Each a different search matching nothing, with a long term: many keys.
                    let q = format!("{i:0>8}-{}", "z".repeat(150));
                    let response = client.get(format!("{base}?q={q}")).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.headers()["x-total-count"], "0");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let peak_kb = server.status_kb("VmHWM");
    assert!(
        peak_kb < 64 * 1024,
        "peak RSS {} MB after 100,000 searches",
        peak_kb / 1024
    );
}
