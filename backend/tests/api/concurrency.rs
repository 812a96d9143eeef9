//! Concurrent clients: writers queue instead of failing, and `If-Match` lets one win.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, dune, header};

contract_test! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sixty_four_parallel_creates_all_succeed_with_unique_ids(engine) {
        let app = std::sync::Arc::new(TestApp::spawn(engine).await);
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move {
                    let body = json!({"title": format!("Book {i}"), "author": "A", "year": 2000});
                    let response = app.post_json("/books", &body).await;
                    assert_eq!(response.status(), StatusCode::CREATED);
                    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
                })
            })
            .collect();
        let mut ids = Vec::new();
        for writer in writers {
            ids.push(writer.await.expect("every writer succeeds"));
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 64, "ids are unique");
        let response = app.get("/books?limit=1").await;
        assert_eq!(header(&response, "x-total-count"), "64");
    }
}

contract_test! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_many_writers_with_the_same_if_match_exactly_one_wins(engine) {
        let app = std::sync::Arc::new(TestApp::spawn(engine).await);
        let created = app.post_json("/books", &dune()).await;
        let etag = header(&created, "etag").to_owned();
        let path = format!("/books/{}", created.json::<Value>().await.unwrap()["id"]);
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let (app, etag, path) = (app.clone(), etag.clone(), path.clone());
                tokio::spawn(async move {
                    app.patch(&path, &json!({"year": 1900 + i}))
                        .if_match(etag)
                        .await
                        .status()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for writer in writers {
            statuses.push(writer.await.unwrap());
        }
        let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let lost = statuses
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count();
        assert_eq!((won, lost), (1, 15), "{statuses:?}");
    }
}

contract_test! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reads_and_writes_interleave_without_errors(engine) {
        let app = std::sync::Arc::new(TestApp::spawn(engine).await);
        let first = app.create(dune()).await;
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let app = app.clone();
                let id = first["id"].clone();
                tokio::spawn(async move {
                    let response = if i % 3 == 0 {
                        app.create_titled(&format!("Book {i}")).await;
                        return StatusCode::CREATED;
                    } else if i % 3 == 1 {
                        app.get(&format!("/books/{id}")).await
                    } else {
                        app.get("/books?q=book&sort=title").await
                    };
                    response.status()
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_success());
        }
    }
}
