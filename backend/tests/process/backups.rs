//! `backup` and `restore`, and the scheduled backups of `serve`: consistent under writes,
//! refused when unsafe, loud when they fail.

use super::*;

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
