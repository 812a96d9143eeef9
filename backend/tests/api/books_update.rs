//! `PUT` and `PATCH /books/{id}`: replacement, merge patch, and `If-Match`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, dune, error_fields, header};

async fn created(app: &TestApp) -> (String, String, Value) {
    let response = app.post_json("/books", &dune()).await;
    let etag = header(&response, "etag").to_owned();
    let book: Value = response.json().await.unwrap();
    (format!("/books/{}", book["id"]), etag, book)
}

contract_test! {
    #[tokio::test]
    async fn put_replaces_every_field_and_changes_the_etag(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, etag, book) = created(&app).await;
        let replacement = json!({"title": "Dune Messiah", "author": "Frank Herbert", "year": 1969});
        let response = app.put(&path, &replacement).await;
        assert_eq!(response.status(), StatusCode::OK);
        let new_tag = header(&response, "etag").to_owned();
        assert_ne!(new_tag, etag);
        let replaced: Value = response.json().await.unwrap();
        assert_eq!(replaced["id"], book["id"]);
        assert_eq!(replaced["title"], "Dune Messiah");
        assert_eq!(replaced["year"], 1969);
        assert_eq!(
            replaced["genre"],
            Value::Null,
            "a field left out of a PUT is cleared"
        );
        assert_eq!(replaced["created_at"], book["created_at"]);

        let fetched = app.get(&path).await;
        assert_eq!(header(&fetched, "etag"), new_tag);
        assert_eq!(fetched.json::<Value>().await.unwrap(), replaced);
    }
}

contract_test! {
    #[tokio::test]
    async fn put_follows_the_same_body_rules_as_post(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, _, _) = created(&app).await;
        let response = app.put(&path, &json!({"title": "Only a title", "isbn": 1})).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&problem), ["author", "year", "isbn"]);
        let response = app
            .send_raw("PUT", &path, Some("text/plain"), dune().to_string())
            .await;
        assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        let response = app
            .send_raw("PUT", &path, Some("application/json"), "{oops")
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
        let unchanged: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(unchanged["title"], "Dune", "a rejected write changes nothing");
    }
}

contract_test! {
    #[tokio::test]
    async fn put_on_a_missing_book_is_a_404(engine) {
        let app = TestApp::spawn(engine).await;
        let response = app.put("/books/777", &dune()).await;
        assert_problem(response, StatusCode::NOT_FOUND).await;
    }
}

contract_test! {
    #[tokio::test]
    async fn if_match_with_a_stale_tag_gives_412_and_changes_nothing(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, stale, _) = created(&app).await;
        let mut revised = dune();
        revised["year"] = json!(1966);
        let first = app.put(&path, &revised).if_match(&stale).await;
        assert_eq!(first.status(), StatusCode::OK, "the current tag is accepted");
        let current = header(&first, "etag").to_owned();

        let mut change = dune();
        change["title"] = json!("Lost update");
        let response = app.put(&path, &change).if_match(&stale).await;
        assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
        let response = app
            .patch(&path, &json!({"title": "Lost update"}))
            .if_match(&stale)
            .await;
        assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
        let weak = format!("W/{current}");
        let response = app.put(&path, &change).if_match(weak).await;
        assert_problem(response, StatusCode::PRECONDITION_FAILED).await;

        let book = app.get(&path).await;
        assert_eq!(header(&book, "etag"), current);
        assert_eq!(book.json::<Value>().await.unwrap()["title"], "Dune");

        let response = app.put(&path, &change).if_match("*").await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "`*` matches any current version"
        );
    }
}

contract_test! {
    #[tokio::test]
    async fn patch_changes_only_the_fields_it_names(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, _, book) = created(&app).await;
        let response = app
            .send_raw(
                "PATCH",
                &path,
                Some("application/merge-patch+json"),
                r#"{"year": 1966, "title": "  Dune (revised) "}"#,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let patched: Value = response.json().await.unwrap();
        assert_eq!(patched["year"], 1966);
        assert_eq!(patched["title"], "Dune (revised)");
        assert_eq!(patched["author"], book["author"]);
        assert_eq!(patched["genre"], book["genre"]);
    }
}

contract_test! {
    #[tokio::test]
    async fn patch_with_null_genre_clears_it_and_accepts_plain_json(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, _, _) = created(&app).await;
        let response = app
            .send_raw("PATCH", &path, Some("application/json"), r#"{"genre": null}"#)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap()["genre"], Value::Null);
    }
}

contract_test! {
    #[tokio::test]
    async fn an_empty_patch_changes_nothing_not_even_the_version(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, etag, book) = created(&app).await;
        let response = app
            .send_raw("PATCH", &path, Some("application/merge-patch+json"), "{}")
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "etag"),
            etag,
            "every other client's tag stays valid"
        );
        let patched: Value = response.json().await.unwrap();
        assert_eq!(patched, book, "updated_at too");
    }
}

contract_test! {
    #[tokio::test]
    async fn a_change_to_what_the_book_already_is_keeps_its_version(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, etag, book) = created(&app).await;
        let same = app.put(&path, &dune()).if_match(&etag).await;
        assert_eq!(same.status(), StatusCode::OK);
        assert_eq!(header(&same, "etag"), etag);
        let patched = app.patch(&path, &json!({"year": 1965, "title": " Dune "})).await;
        assert_eq!(header(&patched, "etag"), etag);
        assert_eq!(patched.json::<Value>().await.unwrap(), book);
    }
}

contract_test! {
    #[tokio::test]
    async fn an_if_match_tag_spelled_another_way_does_not_match(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, etag, _) = created(&app).await;
        assert_eq!(etag, "\"1.1\"");
        for spelled in [
            "\"01.1\"",
            "\"1.+1\"",
            "\"01.+1\"",
            "\"+1.1\"",
            "\"1.01\"",
            "\"1.1 \"",
        ] {
            let response = app.patch(&path, &json!({"year": 1999})).if_match(spelled).await;
            assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
        }
        assert_eq!(header(&app.get(&path).await, "etag"), etag, "nothing changed");
    }
}

contract_test! {
    #[tokio::test]
    async fn a_failed_condition_is_reported_before_anything_wrong_with_the_body(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, stale, _) = created(&app).await;
        app.patch(&path, &json!({"year": 1970})).await;
        let invalid = json!({"title": "", "year": "x"});
        assert_problem(
            app.put(&path, &invalid).if_match(&stale).await,
            StatusCode::PRECONDITION_FAILED,
        )
        .await;
        assert_problem(
            app.patch(&path, &invalid).if_match(&stale).await,
            StatusCode::PRECONDITION_FAILED,
        )
        .await;
        let malformed = app
            .client
            .put(app.url(&path))
            .header("if-match", &stale)
            .header("content-type", "application/json")
            .body("{oops")
            .send()
            .await
            .unwrap();
        assert_problem(malformed, StatusCode::PRECONDITION_FAILED).await;
        // With the condition met (or none), the body's own problem is the answer; a missing
        // book is a 404 before either.
        assert_problem(app.put(&path, &invalid).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_problem(
            app.put("/books/999", &invalid).if_match(&stale).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
}

contract_test! {
    #[tokio::test]
    async fn if_none_match_naming_the_current_version_refuses_a_change(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, etag, _) = created(&app).await;
        let star = app
            .put(&path, &json!({"title": "T", "author": "A", "year": 1}))
            .header("if-none-match", "*")
            .await;
        assert_problem(star, StatusCode::PRECONDITION_FAILED).await;
        let current = app
            .patch(&path, &json!({"year": 1}))
            .header("if-none-match", &etag)
            .await;
        assert_problem(current, StatusCode::PRECONDITION_FAILED).await;
        let deleted = app.delete(&path).header("if-none-match", "*").await;
        assert_problem(deleted, StatusCode::PRECONDITION_FAILED).await;
        let other = app
            .patch(&path, &json!({"year": 1}))
            .header("if-none-match", "\"1.7\"")
            .await;
        assert_eq!(
            other.status(),
            StatusCode::OK,
            "a tag of another version does not refuse it"
        );
    }
}

contract_test! {
    #[tokio::test]
    async fn patch_cannot_clear_required_fields_and_lists_every_error(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, _, _) = created(&app).await;
        let body = r#"{"title": null, "author": "", "year": "1966", "colour": "red"}"#;
        let response = app
            .send_raw("PATCH", &path, Some("application/merge-patch+json"), body)
            .await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&problem), ["title", "author", "year", "colour"]);
    }
}

contract_test! {
    #[tokio::test]
    async fn patch_needs_a_json_content_type_and_an_existing_book(engine) {
        let app = TestApp::spawn(engine).await;
        let (path, _, _) = created(&app).await;
        let response = app
            .send_raw("PATCH", &path, Some("text/plain"), r#"{"year": 1}"#)
            .await;
        assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        let response = app
            .send_raw(
                "PATCH",
                "/books/999",
                Some("application/merge-patch+json"),
                r#"{"year": 1}"#,
            )
            .await;
        assert_problem(response, StatusCode::NOT_FOUND).await;
    }
}
