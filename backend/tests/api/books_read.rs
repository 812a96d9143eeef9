//! `GET /books/{id}`: the book, its `ETag`, `If-None-Match`, and ids that are not ids.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, dune, header};

contract_test! {
    #[tokio::test]
    async fn an_existing_book_is_returned_with_an_etag(engine) {
        let app = TestApp::spawn(engine).await;
        let created = app.post_json("/books", &dune()).await;
        let created_tag = header(&created, "etag").to_owned();
        let book: Value = created.json().await.unwrap();

        let response = app.get(&format!("/books/{}", book["id"])).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), "application/json");
        assert_eq!(header(&response, "etag"), created_tag);
        assert_eq!(response.json::<Value>().await.unwrap(), book);
    }
}

contract_test! {
    #[tokio::test]
    async fn a_missing_book_is_a_404(engine) {
        let app = TestApp::spawn(engine).await;
        let problem = assert_problem(app.get("/books/12345").await, StatusCode::NOT_FOUND).await;
        assert!(problem["detail"].as_str().unwrap().contains("12345"));
    }
}

contract_test! {
    #[tokio::test]
    async fn an_id_that_is_not_a_positive_integer_is_a_400(engine) {
        let app = TestApp::spawn(engine).await;
        for id in [
            "abc",
            "0",
            "-1",
            "1.5",
            "99999999999999999999",
            "1e3",
            "%00",
            "%F0%9F%93%9A",
        ] {
            let problem = assert_problem(app.get(&format!("/books/{id}")).await, StatusCode::BAD_REQUEST).await;
            assert_eq!(problem["errors"][0]["field"], "id", "id = {id}");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn if_none_match_with_the_current_tag_gives_304(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        let path = format!("/books/{}", book["id"]);
        let etag = header(&app.get(&path).await, "etag").to_owned();

        let response = app
            .client
            .get(app.url(&path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&response, "etag"), etag);
        assert!(response.bytes().await.unwrap().is_empty());

        // A list of tags, a weak form of the tag, and `*` all match.
        for value in [format!("\"0.0\", {etag}"), format!("W/{etag}"), "*".to_owned()] {
            let response = app
                .client
                .get(app.url(&path))
                .header("if-none-match", value)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn if_none_match_with_an_old_tag_gives_the_book(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        let path = format!("/books/{}", book["id"]);
        let old = header(&app.get(&path).await, "etag").to_owned();
        let patched = app
            .send_raw(
                "PATCH",
                &path,
                Some("application/merge-patch+json"),
                r#"{"year": 1966}"#,
            )
            .await;
        assert_eq!(patched.status(), StatusCode::OK);

        let response = app
            .client
            .get(app.url(&path))
            .header("if-none-match", &old)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_ne!(header(&response, "etag"), old);
        assert_eq!(response.json::<Value>().await.unwrap()["year"], 1966);
    }
}

contract_test! {
    #[tokio::test]
    async fn an_id_written_another_way_is_a_400_not_another_url_for_the_book(engine) {
        let app = TestApp::spawn(engine).await;
        for _ in 0..13 {
            app.create(dune()).await;
        }
        assert_eq!(app.get("/books/13").await.status(), StatusCode::OK);
        for path in [
            "/books/+13",
            "/books/0013",
            "/books/13.0",
            "/books/1e1",
            "/books/0",
        ] {
            assert_problem(app.get(path).await, StatusCode::BAD_REQUEST).await;
        }
    }
}
