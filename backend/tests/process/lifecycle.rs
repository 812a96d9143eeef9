//! Start-up, readiness, signals and graceful shutdown, the sample catalogue, the health
//! check sub-command, an earlier release's database, and what `--help` may print.

use super::*;

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

/// `--help` shows which variables each command reads, but never the values of those that
/// may hold a secret (a PostgreSQL URL carries its password).
#[test]
fn help_never_prints_a_secret_from_the_environment() {
    for command in [
        &["--help"][..],
        &["serve", "--help"],
        &["backup", "--help"],
        &["token", "list", "--help"],
    ] {
        let output = Command::new(support::binary())
            .args(command)
            .env(
                "DATABASE_URL",
                "postgres://bookstore:hunter2-the-password@db/bookstore",
            )
            .env("POSTGRES_PASSWORD", "hunter2-the-password")
            .env("BOOKSTORE_ADMIN_TOKEN", "hunter2-the-password")
            .output()
            .unwrap();
        assert!(output.status.success(), "{command:?}: {output:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("DATABASE_URL"), "{command:?}: {help}");
        assert!(!help.contains("hunter2"), "{command:?} printed a secret: {help}");
    }
}
