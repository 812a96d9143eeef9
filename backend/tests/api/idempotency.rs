//! `POST /books` with an `Idempotency-Key`: a retry gets the original answer and creates
//! nothing; the key with another body is a 422; a retry while the first runs is a 409.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, dune, error_fields, header};

contract_test! {
    #[tokio::test]
    async fn the_same_key_and_body_twice_return_the_original_answer_and_create_one_book(engine) {
        let app = TestApp::spawn(engine).await;
        let first = app
            .post("/books", &dune())
            .header("idempotency-key", "add-dune-1")
            .await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let (location, etag) = (
            header(&first, "location").to_owned(),
            header(&first, "etag").to_owned(),
        );
        let original: Value = first.json().await.unwrap();

        // The book changes meanwhile; the retry still gets the answer the first request got.
        let changed = app.patch(&location, &json!({"year": 1966})).await;
        assert_eq!(changed.status(), StatusCode::OK);
        let retry = app
            .post("/books", &dune())
            .header("idempotency-key", "add-dune-1")
            .await;
        assert_eq!(retry.status(), StatusCode::CREATED);
        assert_eq!(header(&retry, "location"), location);
        assert_eq!(header(&retry, "etag"), etag);
        assert_eq!(retry.json::<Value>().await.unwrap(), original);

        let listing = app.get("/books").await;
        assert_eq!(header(&listing, "x-total-count"), "1", "one book, not two");
    }
}

contract_test! {
    #[tokio::test]
    async fn the_same_key_with_another_body_is_a_422_and_creates_nothing(engine) {
        let app = TestApp::spawn(engine).await;
        let first = app.post("/books", &dune()).header("idempotency-key", "k-1").await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let mut other = dune();
        other["title"] = json!("Dune Messiah");
        let reused = app.post("/books", &other).header("idempotency-key", "k-1").await;
        let problem = assert_problem(reused, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&problem), ["Idempotency-Key"]);
        assert_eq!(header(&app.get("/books").await, "x-total-count"), "1");

        // Only what the book is counts, not how the JSON was written.
        let same =
            json!({"year": 1965, "genre": "Science fiction", "author": "Frank Herbert", "title": " Dune "});
        let retry = app.post("/books", &same).header("idempotency-key", "k-1").await;
        assert_eq!(retry.status(), StatusCode::CREATED);
    }
}

// A key is free again as soon as an answer with it is out: a replay or a refusal must not
// leave it locked for a moment (on PostgreSQL, a transaction that is only dropped keeps its
// lock on the key until its connection is used again), or the next request is a 409. Many
// clients at once, so that the server is busy when each next request arrives.
contract_test! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_key_is_free_again_as_soon_as_its_answer_is_out(engine) {
        let app = std::sync::Arc::new(TestApp::spawn(engine).await);
        let clients = (0..16).map(|client| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut other = dune();
                other["title"] = json!("Dune Messiah");
                for round in 0..8 {
                    let key = format!("free-{client}-{round}");
                    let post = |body: &Value| app.post("/books", body).header("idempotency-key", key.as_str());
                    assert_eq!(post(&dune()).await.status(), StatusCode::CREATED, "{key}: the first");
                    assert_eq!(post(&dune()).await.status(), StatusCode::CREATED, "{key}: the replay");
                    let refused = post(&other).await.status();
                    assert_eq!(refused, StatusCode::UNPROCESSABLE_ENTITY, "{key}: after a replay");
                    let again = post(&other).await.status();
                    assert_eq!(again, StatusCode::UNPROCESSABLE_ENTITY, "{key}: after a refusal");
                }
            })
        });
        for client in clients.collect::<Vec<_>>() {
            client.await.expect("a client's requests");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn different_keys_create_different_books_and_requests_without_a_key_are_unaffected(engine) {
        let app = TestApp::spawn(engine).await;
        for key in ["a", "b"] {
            let response = app.post("/books", &dune()).header("idempotency-key", key).await;
            assert_eq!(response.status(), StatusCode::CREATED);
        }
        app.create(dune()).await;
        app.create(dune()).await;
        assert_eq!(header(&app.get("/books").await, "x-total-count"), "4");
    }
}

contract_test! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_with_one_key_create_one_book_and_the_others_wait_or_replay(engine) {
        let app = std::sync::Arc::new(TestApp::spawn(engine).await);
        let requests: Vec<_> = (0..16)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    let response = app
                        .post("/books", &dune())
                        .header("idempotency-key", "together")
                        .await;
                    let status = response.status();
                    let body: Value = response.json().await.unwrap();
                    (
                        status,
                        (status == StatusCode::CREATED).then(|| body["id"].clone()),
                    )
                })
            })
            .collect();
        let mut ids = Vec::new();
        for request in requests {
            let (status, id) = request.await.unwrap();
            assert!(
                status == StatusCode::CREATED || status == StatusCode::CONFLICT,
                "only 201 (created or replayed) or 409 (first still running): {status}"
            );
            ids.extend(id);
        }
        assert!(!ids.is_empty());
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "every 201 names the same book: {ids:?}"
        );
        assert_eq!(header(&app.get("/books").await, "x-total-count"), "1");
    }
}

contract_test! {
    #[tokio::test]
    async fn an_unusable_key_is_a_400(engine) {
        let app = TestApp::spawn(engine).await;
        let too_long = "k".repeat(256);
        for key in ["", "   ", too_long.as_str()] {
            let response = app.post("/books", &dune()).header("idempotency-key", key).await;
            let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
            assert_eq!(error_fields(&problem), ["Idempotency-Key"], "{key:?}");
        }
        let twice = app
            .post("/books", &dune())
            .header("idempotency-key", "one")
            .header("idempotency-key", "two")
            .await;
        assert_problem(twice, StatusCode::BAD_REQUEST).await;
        let longest = "k".repeat(255);
        let response = app
            .post("/books", &dune())
            .header("idempotency-key", &longest)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(header(&app.get("/books").await, "x-total-count"), "1");
    }
}
