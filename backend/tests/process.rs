//! The built binary as a process: start-up, readiness, graceful shutdown on SIGTERM,
//! data kept across restarts, the sample catalogue, the health check sub-command, and the
//! metrics of a process of its own.

mod support;

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

#[tokio::test]
async fn the_binary_creates_its_database_becomes_ready_and_serves() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;
    assert!(db.exists(), "the file and its folder are created");
    for made in [&db, db.parent().unwrap()] {
        assert_eq!(mode(made) & 0o077, 0, "{} is its user's alone", made.display());
    }
    let (status, books) = get_json(&server.url("/books")).await;
    assert_eq!((status, books), (200, json!([])));
    let (status, health) = get_json(&server.url("/healthz")).await;
    assert_eq!((status, health), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish_then_exits_0_and_the_data_survives() {
    let (_dir, db) = temp_db();
    let mut server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;

    // A client that is slow to send its body keeps a request in flight.
    let body = json!({"title": "Slow but sure", "author": "A. Tortoise", "year": 1999}).to_string();
    let (first, rest) = body.as_bytes().split_at(10);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /books HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        support::OPERATOR,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.signal("TERM");
    // Once shutdown has begun, new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(server.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener stays open after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "it waits for the request in flight"
    );

    stream.write_all(rest).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the slow request completes: {answer}"
    );

    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "a graceful stop exits 0");
    let logs = server.drain_logs().join("\n");
    assert!(logs.contains("\"stopped\""), "{logs}");

    let server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;
    let (_, books) = get_json(&server.url("/books")).await;
    assert_eq!(
        books[0]["title"], "Slow but sure",
        "the book survives the restart"
    );
}

#[tokio::test]
async fn sigint_also_stops_the_server_cleanly() {
    let (_dir, db) = temp_db();
    let mut server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;
    server.signal("INT");
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
    // The last connection to close checkpoints the WAL into the database file.
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

#[tokio::test]
async fn with_a_shutdown_delay_it_serves_on_not_ready_after_sigterm_then_stops() {
    let (_dir, db) = temp_db();
    let mut server = Server::start(&db, &["--demo-data", "false", "--shutdown-delay", "3s"]);
    server.wait_ready().await;
    let signalled = Instant::now();
    server.signal("TERM");
    // Not ready at once, so balancers stop sending requests...
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = get_json(&server.url("/readyz")).await;
        if status == 503 {
            assert_eq!(body["detail"], "not ready: shutting down", "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {status} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...while every request that still comes, on a new connection too, is served.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let answer = fresh.get(server.url("/books")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        post_with(&server, support::OPERATOR).await,
        201,
        "writes are served during the delay"
    );
    // Then it stops as without a delay.
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    // (A lower bound only: the delay is a promise, not a speed.)
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "it served for the whole delay"
    );
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn a_new_database_gets_the_sample_catalogue_once() {
    let (_dir, db) = temp_db();
    let mut server = Server::start(&db, &[]);
    server.wait_ready().await;
    let response = reqwest::get(server.url("/books")).await.unwrap();
    assert_eq!(response.headers()["x-total-count"], "12");
    let client = support::client();
    let deleted = client.delete(server.url("/books/1")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(10));

    // Not brand new any more: no second helping, even with sample data on.
    let server = Server::start(&db, &[]);
    server.wait_ready().await;
    let response = reqwest::get(server.url("/books")).await.unwrap();
    assert_eq!(response.headers()["x-total-count"], "11");
}

#[tokio::test]
async fn the_healthcheck_subcommand_exits_0_only_when_the_server_answers() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;
    let healthy = Command::new(BINARY)
        .args(["healthcheck", "--addr", &server.addr.to_string()])
        .status()
        .unwrap();
    assert!(healthy.success());
    let unspecified = format!("0.0.0.0:{}", server.addr.port());
    let healthy = Command::new(BINARY)
        .arg("healthcheck")
        .env("BOOKSTORE_ADDR", unspecified)
        .status()
        .unwrap();
    assert!(
        healthy.success(),
        "BOOKSTORE_ADDR is read, and 0.0.0.0 means this host"
    );
    drop(server);

    let unhealthy = Command::new(BINARY)
        .args(["healthcheck", "--addr", "127.0.0.1:9", "--timeout", "2s"])
        .output()
        .unwrap();
    assert_eq!(unhealthy.status.code(), Some(1));
    assert!(!unhealthy.stderr.is_empty(), "it says why");
}

#[tokio::test]
async fn the_metrics_of_a_process_count_its_books_and_requests() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &[]);
    server.wait_ready().await;
    for _ in 0..3 {
        reqwest::get(server.url("/books/1")).await.unwrap();
    }
    reqwest::get(server.url("/no/such/thing")).await.unwrap();
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} in\n{text}"))
    };
    assert_eq!(value("bookstore_books"), 12.0);
    assert_eq!(
        value(r#"http_requests_total{method="GET",route="/books/{id}",status="200"}"#),
        3.0
    );
    assert_eq!(
        value(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    assert_eq!(
        value(r#"http_request_duration_seconds_count{method="GET",route="/books/{id}",status="200"}"#),
        3.0
    );
    assert_eq!(
        value(&format!(
            "bookstore_build_info{{version=\"{}\",database=\"sqlite\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_open_fds") > 0.0);
    assert!(value("process_start_time_seconds") > 1.7e9);
    assert_eq!(
        value("http_requests_in_flight"),
        1.0,
        "the scrape itself is in flight"
    );
}

#[tokio::test]
async fn request_logs_are_json_lines_with_the_route_and_request_id() {
    let (_dir, db) = temp_db();
    let server = Server::start_logging(
        &db,
        &["--demo-data", "false"],
        "info,bookstore=debug,tower_http=debug",
    );
    server.wait_ready().await;
    let client = support::client();
    client
        .get(server.url("/books/5"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    let entry = log_line(&server, |e| {
        e["span"]["request_id"] == "trace-me-42" && e["message"] == "finished processing request"
    });
    assert_eq!(entry["span"]["route"], "/books/{id}");
    assert_eq!(entry["status"], 404);
}

/// The next JSON log line that `wanted` accepts, within 5 s.
fn log_line(server: &Server, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let line = server
            .logs
            .recv_timeout(Duration::from_secs(5))
            .expect("a log line");
        let entry: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if wanted(&entry) {
            return entry;
        }
        assert!(Instant::now() < deadline, "no such log line");
    }
}

#[tokio::test]
async fn a_request_joins_the_callers_trace_returns_it_and_logs_its_trace_id() {
    let (_dir, db) = temp_db();
    // The default level: the request's span is not recorded, its trace id still is.
    let server = Server::start_logging(&db, &["--demo-data", "false"], "info");
    server.wait_ready().await;
    let client = support::client();
    let refused = |traceparent: Option<&str>| {
        let mut request = client
            .post(server.url("/books"))
            .bearer_auth("bks_not-a-token")
            .json(&serde_json::json!({"title": "T", "author": "A", "year": 2000}));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        request.send()
    };

    let answer = refused(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let parts = traceparent_parts(&answer);
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!(
        (parts[0].as_str(), parts[1].as_str(), parts[3].as_str()),
        ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    );
    assert!(
        parts[2].len() == 16 && parts[2] != "b7ad6b7169203331",
        "this server's own span: {parts:?}"
    );
    let entry = log_line(&server, |e| e["level"] == "WARN");
    assert_eq!(entry["trace_id"], "0af7651916cd43dd8448eb211c80319c", "{entry}");

    // Without one (or with one that does not parse), the request starts its own trace.
    for traceparent in [None, Some("00-NOT-A-TRACE-01")] {
        let answer = refused(traceparent).await.unwrap();
        let trace_id = traceparent_parts(&answer).swap_remove(1);
        assert_eq!(trace_id.len(), 32);
        assert_ne!(trace_id, "0af7651916cd43dd8448eb211c80319c");
        let entry = log_line(&server, |e| e["level"] == "WARN");
        assert_eq!(entry["trace_id"], trace_id.as_str(), "{entry}");
    }
}

#[tokio::test]
async fn check_database_says_ok_for_a_sound_file_and_fails_for_a_missing_one() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &[]);
    server.wait_ready().await;
    let url = format!("sqlite://{}", db.display());
    let sound = Command::new(BINARY)
        .args(["check-database", "--database-url", &url])
        .output()
        .unwrap();
    assert!(sound.status.success(), "{sound:?}");
    assert_eq!(String::from_utf8_lossy(&sound.stdout).trim(), "ok");
    drop(server);

    let missing = format!("sqlite://{}", db.with_file_name("nothing-here.db").display());
    let answer = Command::new(BINARY)
        .args(["check-database", "--database-url", &missing])
        .output()
        .unwrap();
    assert_eq!(answer.status.code(), Some(1));
    assert!(
        !db.with_file_name("nothing-here.db").exists(),
        "checking creates nothing"
    );
}

#[tokio::test]
async fn a_failed_request_is_logged_once() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "false", "--request-timeout", "300ms"]);
    server.wait_ready().await;
    // A stalled upload runs past the time limit: a 503.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /books HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Request-Id: log-me-once\r\n\
                 Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{{",
                support::OPERATOR
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    // Another request, so that every line about the first has been written.
    reqwest::get(server.url("/healthz")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines: Vec<String> = server
        .drain_logs()
        .into_iter()
        .filter(|line| line.contains("log-me-once"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("\"status\":503"), "{}", lines[0]);
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

#[tokio::test]
async fn token_commands_work_on_the_database_of_a_running_server() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;

    let (code, stdout, stderr) = token_command(&db, &["create", "--name", "deploy-bot"]);
    assert_eq!(code, 0, "{stderr}");
    let writer = stdout.strip_suffix('\n').expect("one line");
    assert!(
        !writer.contains('\n') && writer.starts_with("bks_"),
        "the token is stdout's only line: {stdout:?}"
    );
    assert!(stderr.contains("shown only this once"), "{stderr}");
    assert_eq!(post_with(&server, writer).await, 201);

    let (code, _, stderr) = token_command(&db, &["create", "--name", "deploy-bot"]);
    assert_eq!(code, 1, "a name in use: {stderr}");
    assert!(stderr.contains("deploy-bot"), "{stderr}");
    let (code, _, stderr) = token_command(&db, &["create", "--name", " "]);
    assert_eq!(code, 2, "{stderr}");

    let (code, stdout, _) = token_command(&db, &["create", "--name", "grafana", "--read-only"]);
    assert_eq!(code, 0);
    let reader = stdout.trim().to_owned();
    assert_eq!(post_with(&server, &reader).await, 403);

    let (code, table, _) = token_command(&db, &["list"]);
    assert_eq!(code, 0);
    for expected in ["NAME", "deploy-bot", "grafana", "write", "read", "active"] {
        assert!(table.contains(expected), "{expected} in\n{table}");
    }
    let (_, listed, _) = token_command(&db, &["list", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let bot = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "deploy-bot")
        .unwrap();
    assert_eq!(bot["scope"], "write");
    assert!(bot["last_used_at"].is_string(), "its use is recorded: {bot}");

    let (code, stdout, stderr) = token_command(&db, &["revoke", "deploy-bot"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("revoked"));
    assert_eq!(
        post_with(&server, writer).await,
        401,
        "refused from the next request on"
    );
    let (code, _, stderr) = token_command(&db, &["revoke", "deploy-bot"]);
    assert_eq!(code, 1, "no active token has that name now: {stderr}");
    let (_, table, _) = token_command(&db, &["list"]);
    assert!(table.contains("revoked"), "{table}");

    let logs = server.drain_logs().join("\n");
    let stored = database_bytes(&db);
    for secret in [writer, reader.as_str()] {
        let secret = &secret[4..];
        for shown in [&table, &logs, &stored, &listed.to_string()] {
            assert!(
                !shown.contains(secret),
                "a token is never shown again, logged or stored"
            );
        }
    }
}

#[tokio::test]
async fn the_first_start_without_credentials_logs_one_token_once() {
    let (_dir, db) = temp_db();
    let first = Server::start_without_operator(&db, &["--demo-data", "false"]);
    first.wait_ready().await;
    let logs = first.drain_logs();
    let pattern = regex::Regex::new("bks_[0-9a-f]{64}").unwrap();
    let lines: Vec<&String> = logs.iter().filter(|line| pattern.is_match(line)).collect();
    assert_eq!(lines.len(), 1, "{logs:#?}");
    assert!(
        lines[0].contains("Authorization: Bearer") && lines[0].contains("bookstore token create"),
        "{}",
        lines[0]
    );
    let token = pattern.find(lines[0]).unwrap().as_str().to_owned();
    assert_eq!(post_with(&first, &token).await, 201);
    assert_eq!(post_with(&first, "bks_guess").await, 401);
    drop(first);

    // Restarted: no new token, and the log says how writing works now.
    let again = Server::start_without_operator(&db, &["--demo-data", "false"]);
    again.wait_ready().await;
    let logs = again.drain_logs().join("\n");
    assert!(!pattern.is_match(&logs), "{logs}");
    assert!(logs.contains("changes need a credential"), "{logs}");
    assert_eq!(post_with(&again, &token).await, 201);
    let (_, table, _) = token_command(&db, &["list"]);
    assert_eq!(table.matches("first-token").count(), 1, "{table}");
    assert!(!database_bytes(&db).contains(&token[4..]));

    // Once it is revoked and no token can write, the log says how to make one.
    token_command(&db, &["revoke", "first-token"]);
    drop(again);
    let locked = Server::start_without_operator(&db, &["--demo-data", "false"]);
    locked.wait_ready().await;
    let logs = locked.drain_logs().join("\n");
    assert!(!pattern.is_match(&logs));
    assert!(
        logs.contains("nobody can change the catalogue") && logs.contains("bookstore token create"),
        "{logs}"
    );
}

/// A database file made by an earlier release (commit 57015c8, migration 1 only, three books,
/// one of them edited once), kept in tests/fixtures: today's binary migrates it and keeps every
/// book, ETags included.
#[tokio::test]
async fn a_database_from_an_earlier_release_is_migrated_and_keeps_its_books() {
    let (_dir, db) = temp_db();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bookstore-57015c8.db");
    std::fs::copy(&fixture, &db).unwrap();
    let server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;
    // The migrations are in the database file itself before the server is ready, not in the
    // write-ahead log (whose lookups would slow every read, and which a copy of the file
    // alone would lack).
    let wal = std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the migrations were checkpointed");
    let (status, books) = get_json(&server.url("/books")).await;
    assert_eq!(status, 200);
    let kept: Vec<(i64, &str, Option<&str>)> = books
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_i64().unwrap(),
                b["title"].as_str().unwrap(),
                b["genre"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (1, "Middlemarch", Some("Novel")),
            (2, "Ficciones", Some("Short stories")),
            (3, "Beloved", Some("Novel"))
        ]
    );
    let edited = reqwest::get(server.url("/books/2")).await.unwrap();
    assert_eq!(edited.headers()["etag"], "\"2.2\"", "its version survives");
    // The new tables work on it: a change with a credential, and a new book's id follows on.
    let created = support::client()
        .post(server.url("/books"))
        .json(&json!({"title": "After the upgrade", "author": "A. Migrator", "year": 2026}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.json::<Value>().await.unwrap()["id"], 4);
    // The indexes, the text index and the counts it never had were built from its books.
    for (query, total, ids) in [
        ("/books?genre=novel&sort=title", 2, vec![3, 1]),
        ("/books?q=ficc", 1, vec![2]),
        ("/books?q=migr", 1, vec![4]),
        ("/books?year_from=1800", 4, vec![1, 2, 3, 4]),
        ("/books", 4, vec![1, 2, 3, 4]),
    ] {
        let response = reqwest::get(server.url(query)).await.unwrap();
        assert_eq!(
            response.headers()["x-total-count"],
            total.to_string().as_str(),
            "{query}"
        );
        let found: Vec<i64> = response
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_i64().unwrap())
            .collect();
        assert_eq!(found, ids, "{query}");
    }
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

/// The ids of the books in the SQLite file at `path`.
async fn ids_in(path: &std::path::Path) -> Vec<i64> {
    use sqlx::{ConnectOptions, Connection};
    // Not read-only: a file left by a killed server has its latest books in its WAL.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    let ids = sqlx::query_scalar("SELECT id FROM books ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_holds_every_acknowledged_book_and_restores_into_a_new_place() {
    let (dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|n| {
            let (acknowledged, stop, url) = (acknowledged.clone(), stop.clone(), server.url("/books"));
            tokio::spawn(async move {
                let client = support::client();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let body =
                        json!({"title": format!("Backed up {n}-{i}"), "author": "Under Load", "year": 2000});
                    let response = client.post(&url).json(&body).send().await.unwrap();
                    if response.status() == 201 {
                        let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
                        acknowledged.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<i64> = acknowledged.lock().unwrap().clone();
    let copy = dir.path().join("backups").join("mid-load.db");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let (db2, copy2) = (db.clone(), copy.clone());
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || command_on(&db2, &["backup", copy2.to_str().unwrap()], None))
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("integrity check ok"), "{stdout}");
    assert!(before.len() > 10, "the load was running: {} writes", before.len());
    let saved = ids_in(&copy).await;
    let missing: Vec<_> = before.iter().filter(|id| !saved.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup began, missing from it: {missing:?}"
    );
    assert!(
        acknowledged.lock().unwrap().len() > before.len(),
        "the server kept writing during the backup"
    );
    let leftovers: Vec<_> = std::fs::read_dir(copy.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        [std::ffi::OsString::from("mid-load.db")],
        "no partial file is left"
    );

    // Restored into a new place, it serves exactly what it holds.
    assert_eq!(mode(&copy) & 0o077, 0, "the backup is its user's alone");
    let fresh = dir.path().join("restored").join("bookstore.db");
    let (code, stdout, stderr) = command_on(&fresh, &["restore", copy.to_str().unwrap()], None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        mode(&fresh) & 0o077,
        0,
        "the restored database is its user's alone"
    );
    assert!(
        stdout.contains(&format!("restored {} books", saved.len())),
        "{stdout}"
    );
    let restored = Server::start(&fresh, &["--demo-data", "false"]);
    restored.wait_ready().await;
    // Every page (how many books the load wrote depends on the machine's speed).
    let mut served: Vec<i64> = Vec::new();
    loop {
        let url = restored.url(&format!("/books?limit=1000&offset={}", served.len()));
        let (_, books) = get_json(&url).await;
        let page = books.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        served.extend(page.iter().map(|b| b["id"].as_i64().unwrap()));
    }
    assert_eq!(served, saved);
}

#[tokio::test]
async fn restore_refuses_a_database_in_use_and_a_broken_copy_and_keeps_what_it_replaces() {
    let (dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "true"]);
    server.wait_ready().await;
    let copy = dir.path().join("copy.db");
    assert_eq!(command_on(&db, &["backup", copy.to_str().unwrap()], None).0, 0);
    let (code, _, stderr) = command_on(&db, &["backup", copy.to_str().unwrap()], None);
    assert_eq!(code, 1, "a backup never overwrites: {stderr}");
    support::client()
        .post(server.url("/books"))
        .json(&json!({"title": "After the backup", "author": "Someone", "year": 2026}))
        .send()
        .await
        .unwrap();
    let (code, _, stderr) = command_on(&db, &["restore", copy.to_str().unwrap()], None);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("a server has") && stderr.contains("stop it first"),
        "{stderr}"
    );
    let (_, books) = get_json(&server.url("/books?q=after+the+backup")).await;
    assert_eq!(
        books.as_array().unwrap().len(),
        1,
        "the database in use is untouched"
    );
    drop(server);

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 65536]).unwrap();
    let truncated = dir.path().join("truncated.db");
    let bytes = std::fs::read(&copy).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for broken in [&garbage, &truncated, &dir.path().join("no-such-file.db")] {
        let (code, _, stderr) = command_on(&db, &["restore", broken.to_str().unwrap()], None);
        assert_eq!(code, 1, "{}: {stderr}", broken.display());
    }
    assert_eq!(
        ids_in(&db).await.len(),
        13,
        "still the twelve samples and the later book"
    );

    let (code, stdout, stderr) = command_on(&db, &["restore", copy.to_str().unwrap()], None);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("kept as"), "{stdout}");
    assert_eq!(ids_in(&db).await.len(), 12, "the backup's twelve");
    let kept: Vec<_> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        ids_in(&kept[0]).await.len(),
        13,
        "the replaced database is kept whole"
    );
}

#[tokio::test]
async fn a_backup_that_cannot_be_written_fails_loudly_and_leaves_nothing() {
    let (dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "true"]);
    server.wait_ready().await;
    // A full disk: the copy may grow to 8 KiB, the database is bigger.
    let full = dir.path().join("full.db");
    let (code, _, stderr) = command_on(&db, &["backup", full.to_str().unwrap()], Some("--fsize=8192"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("backup failed"), "{stderr}");
    // A read-only file system.
    let (code, _, stderr) = command_on(&db, &["backup", "/sys/kernel/bookstore.db"], None);
    assert_eq!(code, 1, "{stderr}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        [std::ffi::OsString::from("nested")],
        "no copy, whole or partial"
    );
    // PostgreSQL has its own tools.
    for args in [["backup", "x.db"], ["restore", "x.db"]] {
        let output = Command::new(support::binary())
            .args(args)
            .args(["--database-url", "postgres://u@127.0.0.1:1/db"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("pg_"));
    }
    let (status, _) = get_json(&server.url("/readyz")).await;
    assert_eq!(status, 200, "serving went on");
}

/// A file's permission bits.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode()
}

/// The value of an unlabelled series in the server's /metrics.
async fn metric(server: &Server, name: &str) -> Option<f64> {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map(|value| value.parse().unwrap())
}

/// The scheduled backups in `dir`, by name.
fn scheduled_backups(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn scheduled_backups_run_rotate_and_are_exported() {
    let (dir, db) = temp_db();
    let backups = dir.path().join("backups");
    let server = Server::start(
        &db,
        &[
            "--demo-data",
            "true",
            "--backup-dir",
            backups.to_str().unwrap(),
            "--backup-interval",
            "1s",
            "--backup-keep",
            "2",
        ],
    );
    server.wait_ready().await;
    let started = std::time::SystemTime::now();
    // The first is taken at once (the folder holds none), then one a second; two are kept.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut taken = 0;
    while taken < 4 {
        assert!(Instant::now() < deadline, "four backups in 20 s: {taken} so far");
        tokio::time::sleep(Duration::from_millis(100)).await;
        taken += server
            .drain_logs()
            .iter()
            .filter(|l| l.contains("scheduled backup done"))
            .count();
    }
    let names = scheduled_backups(&backups);
    assert_eq!(names.len(), 2, "the newest two are kept: {names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("bookstore-") && n.ends_with("Z.db")),
        "{names:?}"
    );
    for name in &names {
        assert_eq!(
            ids_in(&backups.join(name)).await.len(),
            12,
            "{name} holds the catalogue"
        );
        assert_eq!(mode(&backups.join(name)) & 0o077, 0, "{name} is its user's alone");
    }
    let last = metric(&server, "bookstore_backup_last_success_timestamp_seconds")
        .await
        .unwrap();
    let since_start = started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        last >= since_start,
        "the last success is recent: {last} vs {since_start}"
    );
    assert_eq!(
        metric(&server, "bookstore_backup_failures_total").await,
        Some(0.0)
    );
    assert_eq!(
        metric(&server, "bookstore_backup_interval_seconds").await,
        Some(1.0)
    );
    drop(server);

    // Restarted soon after, it does not take another at once: the newest is recent enough.
    let again = Server::start(
        &db,
        &[
            "--demo-data",
            "true",
            "--backup-dir",
            backups.to_str().unwrap(),
            "--backup-interval",
            "1h",
        ],
    );
    again.wait_ready().await;
    assert!(
        metric(&again, "bookstore_backup_last_success_timestamp_seconds")
            .await
            .unwrap()
            >= since_start
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(scheduled_backups(&backups), names, "no new backup on restart");
}

#[tokio::test]
async fn a_scheduled_backup_that_cannot_be_written_is_counted_and_serving_goes_on() {
    let (_dir, db) = temp_db();
    // A read-only file system: the folder cannot even be made.
    let server = Server::start(
        &db,
        &[
            "--demo-data",
            "false",
            "--backup-dir",
            "/sys/kernel/bookstore-backups",
            "--backup-interval",
            "1s",
        ],
    );
    server.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, "bookstore_backup_failures_total")
        .await
        .unwrap_or(0.0)
        < 1.0
    {
        assert!(Instant::now() < deadline, "the failure is counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&server, "bookstore_backup_last_success_timestamp_seconds").await,
        Some(0.0)
    );
    let logs = server.drain_logs().join("\n");
    assert!(
        logs.contains("scheduled backup failed") && logs.contains("\"level\":\"ERROR\""),
        "{logs}"
    );
    let created = support::client()
        .post(server.url("/books"))
        .json(&json!({"title": "Still served", "author": "A. Writer", "year": 2026}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(get_json(&server.url("/readyz")).await.0, 200);
}

#[test]
fn scheduled_backups_on_postgresql_are_refused_at_start_with_what_to_do() {
    let output = Command::new(support::binary())
        .args([
            "serve",
            "--database-url",
            "postgres://u@127.0.0.1:1/db",
            "--backup-dir",
            "/tmp/never",
        ])
        .env_remove("BOOKSTORE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("BOOKSTORE_BACKUP_DIR") && said.contains("pg_dump"),
        "{said}"
    );
}

/// The process's CPU time as the kernel reports it in /proc/PID/stat (utime + stime).
fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf only reads a constant.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[tokio::test]
async fn cpu_seconds_are_a_counter_with_sub_second_resolution_that_matches_the_kernel() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "true"]);
    server.wait_ready().await;
    let client = reqwest::Client::new();
    // A burst of work, well under a second of CPU in all.
    for i in 0..300 {
        client
            .get(server.url(&format!("/books?q=a{i}")))
            .send()
            .await
            .unwrap();
    }
    let text = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let kernel = proc_cpu_seconds(server.child.id());
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter\n"),
        "typed as a counter"
    );
    let exported: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("process_cpu_seconds_total "))
        .expect("the series")
        .parse()
        .unwrap();
    let series = text
        .lines()
        .filter(|l| l.starts_with("process_cpu_seconds_total"))
        .count();
    assert_eq!(series, 1, "one series");
    assert!(
        exported > 0.0 && exported.fract() != 0.0,
        "not whole seconds: {exported}"
    );
    // The kernel counts in ticks (10 ms); the exporter read it a moment earlier.
    assert!(
        (exported - kernel).abs() < 0.1,
        "exported {exported} s, the kernel says {kernel} s"
    );
}

/// A stand-in for an OpenTelemetry collector's OTLP/HTTP receiver (no collector binary exists
/// here): it answers every POST with `status` and hands on each request it got.
struct Collector {
    url: String,
    requests: std::sync::mpsc::Receiver<CollectedRequest>,
}

struct CollectedRequest {
    head: String,
    body: Value,
}

impl Collector {
    fn start(status: u16) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (send, requests) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let length = head
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|n| n.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if send.send(CollectedRequest { head, body }).is_err() {
                    break;
                }
            }
        });
        Self { url, requests }
    }

    /// Every span received within `wait`, with the request that carried it.
    fn spans(&self, wait: Duration) -> Vec<(String, Value, Value)> {
        let deadline = Instant::now() + wait;
        let mut spans = Vec::new();
        while let Ok(request) = self
            .requests
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            for resource in request.body["resourceSpans"].as_array().unwrap() {
                for scope in resource["scopeSpans"].as_array().unwrap() {
                    for span in scope["spans"].as_array().unwrap() {
                        spans.push((request.head.clone(), resource["resource"].clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    let found = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key);
    &found.unwrap_or_else(|| panic!("no attribute {key} in {span}"))["value"]
}

/// The fields of an answer's `traceparent`: version, trace id, span id, flags.
fn traceparent_parts(answer: &reqwest::Response) -> Vec<String> {
    answer.headers()["traceparent"]
        .to_str()
        .unwrap()
        .split('-')
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn with_an_otlp_endpoint_every_sampled_request_becomes_a_span_at_the_collector() {
    let collector = Collector::start(200);
    let (_dir, db) = temp_db();
    let server = Server::start_with_env(
        &db,
        &["--demo-data", "false"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "bookstore-under-test"),
        ],
    );
    server.wait_ready().await;
    let client = support::client();
    let joined = client
        .get(server.url("/books/5"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 404);
    let created = client
        .post(server.url("/books"))
        .json(&json!({"title": "Traced", "author": "A", "year": 2001}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created_trace = traceparent_parts(&created).swap_remove(1);
    // The caller decided not to sample this trace: it is not exported.
    let unsampled = client
        .get(server.url("/books"))
        .header(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-00",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unsampled.status(), 200);

    let mut spans = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while spans
        .iter()
        .filter(|(_, _, s): &&(String, Value, Value)| s["name"] != "GET /readyz")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "spans never reached the collector: {spans:?}"
        );
        spans.extend(collector.spans(Duration::from_millis(300)));
    }
    let (head, resource, span) = spans
        .iter()
        .find(|(_, _, s)| s["name"] == "GET /books/{id}")
        .unwrap();
    assert!(head.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let service = resource["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "service.name")
        .unwrap();
    assert_eq!(service["value"]["stringValue"], "bookstore-under-test");
    assert_eq!(span["traceId"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(span["parentSpanId"], "b7ad6b7169203331");
    assert_eq!(
        span["spanId"],
        traceparent_parts(&joined)[2].as_str(),
        "the span the answer named"
    );
    assert_eq!(span["kind"], 2, "a server span");
    assert_eq!(attribute(span, "http.request.method")["stringValue"], "GET");
    assert_eq!(attribute(span, "http.route")["stringValue"], "/books/{id}");
    assert_eq!(attribute(span, "url.path")["stringValue"], "/books/5");
    assert_eq!(attribute(span, "http.response.status_code")["intValue"], "404");
    assert_eq!(
        span["status"]["code"], 0,
        "a 404 is the client's, not an error of the server"
    );
    let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    assert!(
        start <= end && end <= now && now - start < 60_000_000_000,
        "{start} {end} {now}"
    );

    let (_, _, span) = spans.iter().find(|(_, _, s)| s["name"] == "POST /books").unwrap();
    assert_eq!(
        span["traceId"],
        created_trace.as_str(),
        "a trace the server started"
    );
    assert!(span.get("parentSpanId").is_none(), "{span}");
    assert_eq!(attribute(span, "http.response.status_code")["intValue"], "201");

    spans.extend(collector.spans(Duration::from_millis(500)));
    assert!(
        spans
            .iter()
            .all(|(_, _, s)| s["traceId"] != "11111111111111111111111111111111"),
        "an unsampled trace was exported"
    );
}

#[tokio::test]
async fn spans_still_queued_are_sent_when_the_server_stops() {
    let collector = Collector::start(200);
    let (_dir, db) = temp_db();
    // A batch would only leave after a minute: only the shutdown can send it.
    let mut server = Server::start_with_env(
        &db,
        &["--demo-data", "false"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ],
    );
    server.wait_ready().await;
    let answer = reqwest::get(server.url("/books?q=last")).await.unwrap();
    let span_id = traceparent_parts(&answer).swap_remove(2);
    assert!(
        collector.spans(Duration::from_millis(300)).is_empty(),
        "nothing is sent before the batch is due"
    );
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)).success());
    let spans = collector.spans(Duration::from_secs(2));
    assert!(
        spans.iter().any(|(_, _, s)| s["spanId"] == span_id.as_str()),
        "{spans:?}"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_failing_or_silent_costs_a_warning_and_nothing_else() {
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let failing = Collector::start(500);
    // Accepts connections (the kernel does, into the backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    for (endpoint, reason) in [
        (gone.as_str(), "cannot connect"),
        (failing.url.as_str(), "answered 500"),
        (silent_url.as_str(), "did not answer in time"),
    ] {
        let (_dir, db) = temp_db();
        let server = Server::start_with_env(
            &db,
            &["--demo-data", "false"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "300"),
            ],
        );
        server.wait_ready().await;
        let client = support::client();
        for i in 0..5 {
            let answer = client
                .post(server.url("/books"))
                .json(&json!({"title": format!("Book {i}"), "author": "A", "year": 2001}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 201, "serving goes on");
        }
        let entry = log_line(&server, |e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cannot export spans"))
        });
        assert_eq!(entry["level"], "WARN");
        assert!(entry["message"].as_str().unwrap().contains(reason), "{entry}");
        let (_, books) = get_json(&server.url("/books")).await;
        assert_eq!(books.as_array().unwrap().len(), 5, "{books}");
    }
}

#[test]
fn an_unusable_otlp_endpoint_stops_the_start_with_the_reason() {
    let (_dir, db) = temp_db();
    let output = Command::new(BINARY)
        .args(["serve", "--addr", "127.0.0.1:0", "--static-dir", ""])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .env("BOOKSTORE_ADMIN_TOKEN", support::OPERATOR)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4318")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(
        logs.contains("OTEL_EXPORTER_OTLP_ENDPOINT=https://collector.example:4318"),
        "{logs}"
    );
    assert!(logs.contains("https is not supported"), "{logs}");
}

/// `bookstore copy-database` between two SQLite files: every book with its id, version and
/// times, the highest id ever assigned (a deleted one is not handed out again), the target's
/// indexes, text index and counts made as the books arrive, and a target that holds books
/// refused unless `--overwrite`.
#[tokio::test]
async fn copy_database_keeps_ids_versions_times_and_the_id_floor() {
    let (dir, from) = temp_db();
    let to = dir.path().join("copy.db");
    let server = Server::start(&from, &["--demo-data", "false"]);
    server.wait_ready().await;
    let client = support::client();
    for title in ["Kindred", "Dawn", "Wild Seed"] {
        let body =
            json!({"title": title, "author": "Octavia E. Butler", "year": 1979, "genre": "Science fiction"});
        let created = client
            .post(server.url("/books"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let edited = client
        .patch(server.url("/books/2"))
        .json(&json!({"year": 1987}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    assert_eq!(
        client
            .delete(server.url("/books/3"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let (_, before) = get_json(&server.url("/books")).await;
    drop(server);

    let copy = |extra: &[&str]| {
        Command::new(support::binary())
            .args(["copy-database", "--from", &format!("sqlite://{}", from.display())])
            .args(["--to", &format!("sqlite://{}", to.display())])
            .args(extra)
            .output()
            .unwrap()
    };
    let done = copy(&[]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(String::from_utf8_lossy(&done.stdout).contains("copied 2 books"));
    let refused = copy(&[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--overwrite"));
    assert!(copy(&["--overwrite"]).status.success());

    let server = Server::start(&to, &["--demo-data", "false"]);
    server.wait_ready().await;
    let (_, after) = get_json(&server.url("/books")).await;
    assert_eq!(after, before, "the same books, ids and times");
    let etag = reqwest::get(server.url("/books/2")).await.unwrap().headers()["etag"].clone();
    assert_eq!(etag, "\"2.2\"", "versions are kept");
    let found = reqwest::get(server.url("/books?q=seed&genre=science%20fiction"))
        .await
        .unwrap();
    assert_eq!(
        found.headers()["x-total-count"],
        "0",
        "Wild Seed was deleted before the copy"
    );
    let found = reqwest::get(server.url("/books?q=kindr")).await.unwrap();
    assert_eq!(found.headers()["x-total-count"], "1");
    let created = client
        .post(server.url("/books"))
        .json(&json!({"title": "Fledgling", "author": "Octavia E. Butler", "year": 2005}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.json::<Value>().await.unwrap()["id"],
        4,
        "id 3 was used before the copy"
    );
}

/// The writer never copies the WAL into the database file itself (a commit that did would
/// hold up every write queued behind it); a connection of its own does, while writes go on.
#[tokio::test]
async fn the_wal_is_folded_into_the_database_file_while_the_server_writes() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "false"]);
    server.wait_ready().await;
    let size = || std::fs::metadata(&db).unwrap().len();
    let started = size();
    let client = support::client();
    for i in 0..200 {
        let body = json!({"title": format!("Folded {i}"), "author": "A. Checkpoint", "year": 2000});
        assert_eq!(
            client
                .post(server.url("/books"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while size() <= started {
        assert!(
            Instant::now() < deadline,
            "the database file never grew while the server ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
