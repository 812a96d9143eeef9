//! The database commands against a real file, some while a server uses it: `check-database`,
//! `token`, the first start's token, `copy-database`, and the WAL folded in under writes.

use super::*;

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
