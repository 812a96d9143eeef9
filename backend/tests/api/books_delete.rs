//! `DELETE /books/{id}`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, dune, header};

contract_test! {
    #[tokio::test]
    async fn deleting_a_book_gives_204_and_then_it_is_gone(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        let path = format!("/books/{}", book["id"]);
        let response = app.delete(&path).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(response.bytes().await.unwrap().is_empty());
        assert_problem(app.get(&path).await, StatusCode::NOT_FOUND).await;
        let response = app.delete(&path).await;
        assert_problem(response, StatusCode::NOT_FOUND).await;
    }
}

contract_test! {
    #[tokio::test]
    async fn delete_with_a_stale_if_match_gives_412_and_keeps_the_book(engine) {
        let app = TestApp::spawn(engine).await;
        let created = app.post_json("/books", &dune()).await;
        let stale = header(&created, "etag").to_owned();
        let path = format!("/books/{}", created.json::<Value>().await.unwrap()["id"]);
        let patched = app
            .send_raw("PATCH", &path, Some("application/json"), r#"{"year": 1970}"#)
            .await;
        let current = header(&patched, "etag").to_owned();

        let response = app.delete(&path).if_match(stale).await;
        assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
        assert_eq!(app.get(&path).await.status(), StatusCode::OK);

        let response = app.delete(&path).if_match(current).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
}

contract_test! {
    #[tokio::test]
    async fn deleting_with_a_bad_id_is_a_400(engine) {
        let app = TestApp::spawn(engine).await;
        let response = app.delete("/books/x").await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
}
