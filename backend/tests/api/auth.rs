//! Authentication (`shared/spec/api.md`, *Authentication*): reads are public, every change
//! needs a credential that may write; API tokens, the operator token, browser sessions, and
//! the limit on failed credentials.

use std::time::Duration;

use bookstore::auth::commands;
use bookstore::config::TEST_OPERATOR_TOKEN;
use bookstore::store::credentials::NewToken;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, dune, header};

/// A new API token (the string a user would be shown once).
async fn token(app: &TestApp, name: &str, can_write: bool) -> String {
    let (token, _) = commands::create(&app.store.credentials(), name, can_write, None)
        .await
        .expect("a token is made");
    token
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Sends every kind of change to `book` (POST, PUT, PATCH, DELETE) with `prepare` applied
/// to each request, and returns the answers.
async fn every_change(
    app: &TestApp,
    book: &Value,
    prepare: impl Fn(RequestBuilder) -> RequestBuilder,
) -> Vec<(&'static str, Response)> {
    let path = app.url(&format!("/books/{}", book["id"]));
    let requests = [
        ("POST", app.anonymous.post(app.url("/books")).json(&dune())),
        (
            "PUT",
            app.anonymous
                .put(&path)
                .json(&json!({"title": "Changed", "author": "Someone Else", "year": 1999})),
        ),
        ("PATCH", app.anonymous.patch(&path).json(&json!({"year": 1966}))),
        ("DELETE", app.anonymous.delete(&path)),
    ];
    let mut answers = Vec::new();
    for (method, request) in requests {
        answers.push((method, prepare(request).send().await.expect("an answer")));
    }
    answers
}

/// Asserts that the catalogue still holds exactly `book`, unchanged.
async fn assert_untouched(app: &TestApp, book: &Value) {
    let books: Value = app.get("/books").await.json().await.unwrap();
    assert_eq!(books, json!([book]), "nothing changed");
}

async fn assert_unauthorized(response: Response, invalid: bool) -> Value {
    let challenge = header(&response, "www-authenticate").to_owned();
    let problem = assert_problem(response, StatusCode::UNAUTHORIZED).await;
    assert!(
        challenge.starts_with(r#"Bearer realm="bookstore""#),
        "{challenge}"
    );
    assert_eq!(
        challenge.contains(r#"error="invalid_token""#),
        invalid,
        "{challenge}"
    );
    problem
}

/// The value of the counter `bookstore_auth_failures_total{reason}` of this app.
async fn failures(app: &TestApp, reason: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let series = format!("bookstore_auth_failures_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0.0, |value| value.parse().expect("a number"))
}

/// The `name=value` part of a `Set-Cookie` answer, to send back as `Cookie`.
fn cookie_of(response: &Response) -> String {
    let set = header(response, "set-cookie");
    set.split(';').next().expect("a cookie").to_owned()
}

async fn sign_in(app: &TestApp, token: &str) -> Response {
    app.anonymous
        .post(app.url("/session"))
        .header("origin", app.origin())
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

contract_test! {
    #[tokio::test]
    async fn reading_needs_nothing_but_every_change_needs_a_credential(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        for path in ["/books", "/books/1", "/books?q=dune", "/healthz", "/readyz", "/metrics", "/openapi.json"] {
            let response = app.anonymous.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "GET {path} is public");
        }
        let before = failures(&app, "missing").await;
        for (method, response) in every_change(&app, &book, |r| r).await {
            let problem = assert_unauthorized(response, false).await;
            assert!(problem["detail"].as_str().unwrap().contains("Authorization: Bearer"), "{method}: {problem}");
        }
        assert_untouched(&app, &book).await;
        assert_eq!(failures(&app, "missing").await, before + 4.0, "each refusal is counted once");
    }
}

contract_test! {
    #[tokio::test]
    async fn a_wrong_or_malformed_credential_is_refused_and_changes_nothing(engine) {
        let app = TestApp::spawn_with(engine, |args| args.auth_failures_per_minute = 1000).await;
        let book = app.create(dune()).await;
        let guessed = format!("bks_{}", "0".repeat(64));
        for authorization in [
            bearer(&guessed),
            bearer("not-even-shaped-like-a-token"),
            bearer(&format!("{TEST_OPERATOR_TOKEN}x")),
            "Basic dXNlcjpwYXNz".to_owned(),
            "Bearer".to_owned(),
        ] {
            for (method, response) in every_change(&app, &book, |r| r.header("authorization", &authorization)).await {
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} with {authorization:?}");
                assert_unauthorized(response, true).await;
            }
        }
        assert_untouched(&app, &book).await;
    }
}

contract_test! {
    #[tokio::test]
    async fn a_read_only_token_reads_but_may_not_change_anything(engine) {
        let app = TestApp::spawn_with(engine, |args| args.public_reads = false).await;
        let book = app.create(dune()).await;
        let reader = token(&app, "dashboard", false).await;
        let read = app.anonymous.get(app.url("/books")).header("authorization", bearer(&reader)).send().await.unwrap();
        assert_eq!(read.status(), StatusCode::OK);
        let before = failures(&app, "forbidden").await;
        for (method, response) in every_change(&app, &book, |r| r.header("authorization", bearer(&reader))).await {
            let problem = assert_problem(response, StatusCode::FORBIDDEN).await;
            assert!(problem["detail"].as_str().unwrap().contains("read-only"), "{method}: {problem}");
        }
        assert_untouched(&app, &book).await;
        assert_eq!(failures(&app, "forbidden").await, before + 4.0);
    }
}

contract_test! {
    #[tokio::test]
    async fn a_valid_token_changes_the_catalogue_and_its_last_use_is_recorded(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        let writer = token(&app, "ci-script", true).await;
        assert!(writer.starts_with("bks_") && writer.len() == 4 + 64, "{writer}");
        let answers = every_change(&app, &book, |r| r.header("authorization", bearer(&writer))).await;
        let statuses: Vec<_> = answers.iter().map(|(m, r)| (*m, r.status().as_u16())).collect();
        assert_eq!(statuses, [("POST", 201), ("PUT", 200), ("PATCH", 200), ("DELETE", 204)]);
        // Written in the background, at most once a minute per token.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let tokens = app.store.credentials().list_tokens().await.unwrap();
            let used = tokens.iter().find(|t| t.name == "ci-script").unwrap().last_used_at;
            if used.is_some() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the token's last use is recorded");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn a_revoked_or_expired_token_fails_from_the_next_request(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        let writer = token(&app, "leaked", true).await;
        let patch = |token: &str| {
            app.anonymous
                .patch(app.url(&format!("/books/{}", book["id"])))
                .header("authorization", bearer(token))
                .json(&json!({"year": 1970}))
                .send()
        };
        assert_eq!(patch(&writer).await.unwrap().status(), StatusCode::OK);
        let store = app.store.credentials();
        assert!(store.revoke_token("leaked", bookstore::store::unix_now()).await.unwrap());
        let problem = assert_unauthorized(patch(&writer).await.unwrap(), true).await;
        assert!(problem["detail"].as_str().unwrap().contains("revoked"), "{problem}");

        let expired = "bks_".to_owned() + &"e".repeat(64);
        let now = bookstore::store::unix_now();
        store
            .create_token(&NewToken {
                name: "expired".to_owned(),
                hash: bookstore::auth::secret::hash(&expired),
                can_write: true,
                created_at: now - 7200,
                expires_at: Some(now - 3600),
            })
            .await
            .unwrap();
        let problem = assert_unauthorized(patch(&expired).await.unwrap(), true).await;
        assert!(problem["detail"].as_str().unwrap().contains("expired"), "{problem}");
        let current: Value = app.get(&format!("/books/{}", book["id"])).await.json().await.unwrap();
        assert_eq!(current["year"], 1970, "only the change made before the revocation");
    }
}

contract_test! {
    #[tokio::test]
    async fn a_token_name_is_taken_until_revoked_and_is_checked(engine) {
        let app = TestApp::spawn(engine).await;
        let store = app.store.credentials();
        token(&app, "deploy", true).await;
        let again = commands::create(&store, "deploy", true, None).await;
        assert!(matches!(again, Err(bookstore::store::credentials::CreateError::NameTaken(_))), "{again:?}");
        store.revoke_token("deploy", bookstore::store::unix_now()).await.unwrap();
        token(&app, "deploy", true).await;
        assert!(commands::token_name("").is_err());
        assert!(commands::token_name(&"x".repeat(65)).is_err());
        assert!(commands::token_name("tab\there").is_err());
        assert_eq!(commands::token_name("  ok name ").unwrap(), "ok name");
    }
}

contract_test! {
    #[tokio::test]
    async fn closed_reads_need_a_credential_but_health_metrics_and_docs_do_not(engine) {
        let app = TestApp::spawn_with(engine, |args| args.public_reads = false).await;
        app.create(dune()).await;
        for path in ["/books", "/books/1", "/books?q=dune"] {
            let response = app.anonymous.get(app.url(path)).send().await.unwrap();
            assert_unauthorized(response, false).await;
            assert_eq!(app.get(path).await.status(), StatusCode::OK, "with a credential: {path}");
        }
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/", "/session"] {
            let response = app.anonymous.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path} needs nothing");
        }
        let session: Value = app.anonymous.get(app.url("/session")).send().await.unwrap().json().await.unwrap();
        assert_eq!(session, json!({"authenticated": false, "public_reads": false}));
    }
}

#[tokio::test]
async fn a_token_is_stored_only_as_its_hash_and_never_listed() {
    let app = TestApp::spawn(crate::helpers::Engine::Sqlite).await;
    let secret = token(&app, "never-stored", true).await;
    let tokens = app.store.credentials().list_tokens().await.unwrap();
    let now = bookstore::store::unix_now();
    let listed = format!(
        "{}{}",
        commands::table(&tokens, now),
        commands::json(&tokens, now)
    );
    assert!(
        listed.contains("never-stored") && !listed.contains(&secret[4..]),
        "{listed}"
    );
    assert!(
        !listed.contains(&bookstore::auth::secret::hash(&secret)),
        "not even its hash is listed"
    );
    // Use it, sign in with it, then look for it in every file of the database.
    let book = app.create(dune()).await;
    every_change(&app, &book, |r| r.header("authorization", bearer(&secret))).await;
    assert_eq!(sign_in(&app, &secret).await.status(), StatusCode::OK);
    let needle = &secret[4..];
    let mut files = 0;
    for entry in std::fs::read_dir(app.data_dir()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        files += 1;
        assert!(
            !String::from_utf8_lossy(&bytes).contains(needle),
            "the token is not in the database"
        );
    }
    assert!(files >= 1);
}

contract_test! {
    #[tokio::test]
    async fn signing_in_exchanges_a_token_for_a_strict_http_only_cookie(engine) {
        let app = TestApp::spawn(engine).await;
        let writer = token(&app, "alice", true).await;
        let response = sign_in(&app, &writer).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "cache-control"), "no-store");
        let set = header(&response, "set-cookie").to_owned();
        for attribute in ["bookstore_session=", "Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=43200"] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        assert!(!set.contains("Secure"), "plain HTTP: {set}");
        assert!(!set.contains(&writer), "the cookie is not the token");
        let cookie = cookie_of(&response);
        let info: Value = response.json().await.unwrap();
        assert_eq!((&info["authenticated"], &info["name"], &info["scope"], &info["via"]),
            (&json!(true), &json!("alice"), &json!("write"), &json!("session")));
        assert!(info["expires_at"].is_string());

        let current: Value = app.anonymous.get(app.url("/session")).header("cookie", &cookie)
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(current["name"], "alice");
        let created = app.anonymous.post(app.url("/books")).header("cookie", &cookie)
            .header("origin", app.origin()).json(&dune()).send().await.unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);

        let refused = sign_in(&app, "bks_wrong").await;
        assert_unauthorized(refused, true).await;
        let empty = app.anonymous.post(app.url("/session")).json(&json!({"token": ""})).send().await.unwrap();
        assert_problem(empty, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

contract_test! {
    #[tokio::test]
    async fn a_cookie_change_from_another_site_is_refused(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        let cookie = cookie_of(&sign_in(&app, TEST_OPERATOR_TOKEN).await);
        for origin in [None, Some("http://evil.example"), Some("null"), Some(&*format!("https://{}.evil.example", app.addr.ip()))] {
            for (method, response) in every_change(&app, &book, |r| {
                let r = r.header("cookie", &cookie);
                match origin { Some(origin) => r.header("origin", origin), None => r }
            }).await {
                let problem = assert_problem(response, StatusCode::FORBIDDEN).await;
                assert!(problem["detail"].as_str().unwrap().contains("Origin"), "{method} from {origin:?}: {problem}");
            }
        }
        assert_untouched(&app, &book).await;
        // Nor may another site sign a browser in.
        let forged = app.anonymous.post(app.url("/session")).header("origin", "http://evil.example")
            .json(&json!({"token": TEST_OPERATOR_TOKEN})).send().await.unwrap();
        assert_problem(forged, StatusCode::FORBIDDEN).await;
        // A bearer token is not a cookie a browser sends by itself: no Origin is needed.
        let scripted = app.client.patch(app.url(&format!("/books/{}", book["id"])))
            .json(&json!({"year": 1966})).send().await.unwrap();
        assert_eq!(scripted.status(), StatusCode::OK);
    }
}

contract_test! {
    #[tokio::test]
    async fn a_session_expires_and_signing_out_ends_it(engine) {
        let app = TestApp::spawn_with(engine, |args| args.session_ttl = std::time::Duration::from_secs(1)).await;
        let short = cookie_of(&sign_in(&app, TEST_OPERATOR_TOKEN).await);
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let response = app.anonymous.post(app.url("/books")).header("cookie", &short)
            .header("origin", app.origin()).json(&dune()).send().await.unwrap();
        assert!(header(&response, "set-cookie").contains("Max-Age=0"), "the dead cookie is cleared");
        let problem = assert_unauthorized(response, true).await;
        assert!(problem["detail"].as_str().unwrap().contains("expired"), "{problem}");
        let current = app.anonymous.get(app.url("/session")).header("cookie", &short).send().await.unwrap();
        assert!(header(&current, "set-cookie").contains("Max-Age=0"));
        assert_eq!(current.json::<Value>().await.unwrap()["authenticated"], false);
    }
}

contract_test! {
    #[tokio::test]
    async fn signing_out_or_revoking_the_token_ends_a_session(engine) {
        let app = TestApp::spawn(engine).await;
        let writer = token(&app, "bob", true).await;
        let change = |cookie: String| {
            app.anonymous.post(app.url("/books")).header("cookie", cookie)
                .header("origin", app.origin()).json(&dune()).send()
        };
        let first = cookie_of(&sign_in(&app, &writer).await);
        let out = app.anonymous.delete(app.url("/session")).header("cookie", &first).send().await.unwrap();
        assert_eq!(out.status(), StatusCode::NO_CONTENT);
        assert!(header(&out, "set-cookie").contains("Max-Age=0"));
        assert_unauthorized(change(first).await.unwrap(), true).await;

        let second = cookie_of(&sign_in(&app, &writer).await);
        assert_eq!(change(second.clone()).await.unwrap().status(), StatusCode::CREATED);
        app.store.credentials().revoke_token("bob", bookstore::store::unix_now()).await.unwrap();
        // Revoking deletes the token's sessions.
        assert_unauthorized(change(second).await.unwrap(), true).await;
        assert_unauthorized(sign_in(&app, &writer).await, true).await;
    }
}

contract_test! {
    #[tokio::test]
    async fn signing_in_again_ends_the_browsers_previous_session(engine) {
        let app = TestApp::spawn(engine).await;
        let writer = token(&app, "carol", true).await;
        let first = cookie_of(&sign_in(&app, &writer).await);
        let again = app.anonymous.post(app.url("/session")).header("origin", app.origin())
            .header("cookie", &first).json(&json!({ "token": writer })).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        let second = cookie_of(&again);
        assert_ne!(first, second, "a new session, not the old one extended");
        let who = |cookie: String| async {
            app.anonymous.get(app.url("/session")).header("cookie", cookie).send().await.unwrap()
                .json::<Value>().await.unwrap()["authenticated"].clone()
        };
        assert_eq!(who(first).await, json!(false), "the previous session has ended");
        assert_eq!(who(second).await, json!(true));
    }
}

contract_test! {
    #[tokio::test]
    async fn a_read_only_session_may_not_change_anything(engine) {
        let app = TestApp::spawn(engine).await;
        let reader = token(&app, "viewer", false).await;
        let cookie = cookie_of(&sign_in(&app, &reader).await);
        let response = app.anonymous.post(app.url("/books")).header("cookie", cookie)
            .header("origin", app.origin()).json(&dune()).send().await.unwrap();
        assert_problem(response, StatusCode::FORBIDDEN).await;
    }
}

contract_test! {
    #[tokio::test]
    async fn a_token_has_at_most_sixteen_live_sessions_and_the_oldest_ends_first(engine) {
        let app = TestApp::spawn(engine).await;
        let user = token(&app, "many-browsers", true).await;
        let works = |cookie: String| {
            let request = app.anonymous.post(app.url("/books")).header("cookie", cookie)
                .header("origin", app.origin()).json(&dune());
            async move { request.send().await.unwrap().status() == StatusCode::CREATED }
        };
        let oldest = cookie_of(&sign_in(&app, &user).await);
        // A second later (sessions are ordered by their creation time, in seconds).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut newer = Vec::new();
        for _ in 0..16 {
            newer.push(cookie_of(&sign_in(&app, &user).await));
        }
        assert!(!works(oldest).await, "the seventeenth sign-in ended the oldest session");
        for cookie in newer {
            assert!(works(cookie).await, "the newest sixteen live on");
        }
        // Another token's sessions are its own.
        let other = cookie_of(&sign_in(&app, &token(&app, "elsewhere", true).await).await);
        assert!(works(other).await);
    }
}

contract_test! {
    #[tokio::test]
    async fn behind_a_trusted_https_proxy_the_cookie_is_secure_and_the_forwarded_host_is_the_site(engine) {
        let app = TestApp::spawn_with(engine, |args| args.trusted_proxies = vec!["127.0.0.1".to_owned()]).await;
        let proxied = |request: RequestBuilder| {
            request.header("x-forwarded-proto", "https").header("x-forwarded-host", "books.example")
                .header("x-forwarded-for", "203.0.113.9")
        };
        let response = proxied(app.anonymous.post(app.url("/session")))
            .header("origin", "https://books.example").json(&json!({"token": TEST_OPERATOR_TOKEN}))
            .send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let set = header(&response, "set-cookie");
        assert!(set.starts_with("__Host-bookstore_session=") && set.ends_with("; Secure"), "{set}");
        assert!(set.contains("; Path=/;") && !set.contains("Domain"), "{set}");
        let cookie = cookie_of(&response);
        let created = proxied(app.anonymous.post(app.url("/books"))).header("cookie", &cookie)
            .header("origin", "https://books.example").json(&dune()).send().await.unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let elsewhere = proxied(app.anonymous.post(app.url("/books"))).header("cookie", &cookie)
            .header("origin", app.origin()).json(&dune()).send().await.unwrap();
        assert_problem(elsewhere, StatusCode::FORBIDDEN).await;
        // Over HTTPS a cookie without the prefix (one planted over plain HTTP) is no session.
        let unprefixed = cookie.replacen("__Host-", "", 1);
        let planted = proxied(app.anonymous.post(app.url("/books"))).header("cookie", &unprefixed)
            .header("origin", "https://books.example").json(&dune()).send().await.unwrap();
        assert_problem(planted, StatusCode::UNAUTHORIZED).await;
        // Signing out clears the prefixed cookie, and ends the session.
        let out = proxied(app.anonymous.delete(app.url("/session"))).header("cookie", &cookie)
            .header("origin", "https://books.example").send().await.unwrap();
        assert_eq!(out.status(), StatusCode::NO_CONTENT);
        let cleared = header(&out, "set-cookie");
        assert!(cleared.starts_with("__Host-bookstore_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
        assert!(cleared.ends_with("; Secure"), "{cleared}");
        let after = proxied(app.anonymous.post(app.url("/books"))).header("cookie", &cookie)
            .header("origin", "https://books.example").json(&dune()).send().await.unwrap();
        assert_problem(after, StatusCode::UNAUTHORIZED).await;
    }
}

/// Sends a wrong token from the client that `forwarded_for` claims to be.
async fn guess(app: &TestApp, forwarded_for: &str) -> Response {
    app.anonymous
        .post(app.url("/books"))
        .header("authorization", bearer(&format!("bks_{}", "1".repeat(64))))
        .header("x-forwarded-for", forwarded_for)
        .json(&dune())
        .send()
        .await
        .unwrap()
}

contract_test! {
    #[tokio::test]
    async fn failed_credentials_are_limited_per_client_and_counted(engine) {
        let app = TestApp::spawn_with(engine, |args| args.auth_failures_per_minute = 3).await;
        let (invalid, limited) = (failures(&app, "invalid").await, failures(&app, "limited").await);
        for _ in 0..3 {
            assert_eq!(guess(&app, "198.51.100.1").await.status(), StatusCode::UNAUTHORIZED);
        }
        // Untrusted X-Forwarded-For is ignored: every guess counts against 127.0.0.1.
        let response = guess(&app, "198.51.100.2").await;
        let wait: u64 = header(&response, "retry-after").parse().expect("seconds");
        assert!((1..=60).contains(&wait), "Retry-After: {wait}");
        let problem = assert_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
        assert!(problem["detail"].is_string());
        // While limited, a valid credential from that client (a colleague behind the same
        // NAT) is still served: the limit never locks out anyone who has a credential.
        let good = app.post_json("/books", &dune()).await;
        assert_eq!(good.status(), StatusCode::CREATED);
        let reader = token(&app, "colleague", false).await;
        let session = sign_in(&app, &reader).await;
        assert_eq!(session.status(), StatusCode::OK, "signing in with a valid token too");
        assert_eq!(guess(&app, "198.51.100.2").await.status(), StatusCode::TOO_MANY_REQUESTS, "guesses still wait");
        // Missing credentials are no guesses, and reads need none.
        assert_eq!(app.anonymous.get(app.url("/books")).send().await.unwrap().status(), StatusCode::OK);
        assert_eq!(failures(&app, "invalid").await, invalid + 3.0);
        assert_eq!(failures(&app, "limited").await, limited + 2.0);
    }
}

/// A sign-in whose body is not even JSON, from `origin`.
async fn garbled_sign_in(app: &TestApp, origin: &str) -> Response {
    app.anonymous
        .post(app.url("/session"))
        .header("origin", origin)
        .header("content-type", "application/json")
        .body("{\"token\": ")
        .send()
        .await
        .unwrap()
}

contract_test! {
    #[tokio::test]
    async fn another_site_is_refused_before_its_sign_in_body_is_read(engine) {
        let app = TestApp::spawn(engine).await;
        assert_problem(garbled_sign_in(&app, "http://evil.example").await, StatusCode::FORBIDDEN).await;
        assert_problem(garbled_sign_in(&app, &app.origin()).await, StatusCode::BAD_REQUEST).await;
    }
}

contract_test! {
    #[tokio::test]
    async fn guesses_from_many_clients_meet_a_global_limit_that_never_refuses_a_valid_credential(engine) {
        // Three failures a minute per client, 150 for everyone: 150 clients guess once each.
        let app = TestApp::spawn_with(engine, |args| {
            args.auth_failures_per_minute = 3;
            args.trusted_proxies = vec!["127.0.0.0/8".to_owned()];
        }).await;
        for n in 0..150 {
            let client = format!("198.51.{}.{}", 100 + n / 250, 1 + n % 250);
            assert_eq!(guess(&app, &client).await.status(), StatusCode::UNAUTHORIZED, "guess {n}");
        }
        // The global bucket regains 2.5 failures a second while the guesses run: a few more
        // new clients may get their 401 before it is empty; never thirty.
        let mut refused = None;
        for n in 0..30 {
            let response = guess(&app, &format!("203.0.113.{}", 1 + n)).await;
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                refused = Some(response);
                break;
            }
        }
        assert_problem(refused.expect("a new client refused by the global limit"), StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(app.post_json("/books", &dune()).await.status(), StatusCode::CREATED);
        let reader = token(&app, "still-welcome", false).await;
        assert_eq!(sign_in(&app, &reader).await.status(), StatusCode::OK);
    }
}

contract_test! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_guesses_are_each_counted_once(engine) {
        let app = std::sync::Arc::new(TestApp::spawn_with(engine, |args| args.auth_failures_per_minute = 10).await);
        let guesses: Vec<_> = (0..40)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { guess(&app, "198.51.100.1").await.status() })
            })
            .collect();
        let mut answered = Vec::new();
        for guess in guesses {
            answered.push(guess.await.unwrap());
        }
        let unauthorized = answered.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
        assert_eq!(unauthorized, 10, "ten guesses a minute, however many arrive at once: {answered:?}");
        assert!(answered.iter().all(|s| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)));
    }
}

contract_test! {
    #[tokio::test]
    async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(engine) {
        let app = TestApp::spawn_with(engine, |args| {
            args.auth_failures_per_minute = 3;
            args.trusted_proxies = vec!["127.0.0.0/8".to_owned()];
        }).await;
        for _ in 0..3 {
            assert_eq!(guess(&app, "198.51.100.1").await.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(guess(&app, "198.51.100.1").await.status(), StatusCode::TOO_MANY_REQUESTS);
        // A client cannot escape by prepending addresses: the proxy's own entry is the last.
        assert_eq!(guess(&app, "10.9.9.9, 198.51.100.1").await.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(guess(&app, "198.51.100.2").await.status(), StatusCode::UNAUTHORIZED, "another client");
        // The proxy's own requests (no X-Forwarded-For) are yet another client.
        assert_eq!(app.post_json("/books", &dune()).await.status(), StatusCode::CREATED);
    }
}

contract_test! {
    #[tokio::test]
    async fn an_idempotency_key_belongs_to_the_credential_that_sent_it(engine) {
        let app = TestApp::spawn(engine).await;
        let other = token(&app, "other-client", true).await;
        let key = "shared-key-0001";
        let first = app.post("/books", &dune()).header("idempotency-key", key).await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let theirs = app.anonymous.post(app.url("/books")).header("authorization", bearer(&other))
            .header("idempotency-key", key).json(&dune()).send().await.unwrap();
        assert_eq!(theirs.status(), StatusCode::CREATED);
        let (a, b): (Value, Value) = (first.json().await.unwrap(), theirs.json().await.unwrap());
        assert_ne!(a["id"], b["id"], "another credential's key is another key");
        let replay = app.post("/books", &dune()).header("idempotency-key", key).await;
        assert_eq!(replay.json::<Value>().await.unwrap()["id"], a["id"]);
    }
}

contract_test! {
    #[tokio::test]
    async fn with_no_operator_token_the_first_start_makes_one_token_only_once(engine) {
        let app = TestApp::spawn_with(engine, |args| args.admin_token = None).await;
        let tokens = app.store.credentials().list_tokens().await.unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!((tokens[0].name.as_str(), tokens[0].can_write), ("first-token", true));
        assert_unauthorized(app.post_json("/books", &dune()).await, true).await;
        // Another start (or another replica) on the same database makes none.
        let mut args = bookstore::config::ServeArgs::for_tests("unused");
        args.admin_token = None;
        let metrics = bookstore::metrics::Metrics::new(app.store.engine(), None).unwrap();
        let again = bookstore::auth::Auth::new(app.store.credentials(), args.auth().unwrap(), metrics);
        again.announce().await.unwrap();
        assert_eq!(app.store.credentials().list_tokens().await.unwrap().len(), 1);
    }
}
