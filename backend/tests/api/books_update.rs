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

#[tokio::test]
async fn put_replaces_every_field_and_changes_the_etag() {
    let app = TestApp::spawn().await;
    let (path, etag, book) = created(&app).await;
    let replacement = json!({"title": "Dune Messiah", "author": "Frank Herbert", "year": 1969});
    let response = app
        .client
        .put(app.url(&path))
        .json(&replacement)
        .send()
        .await
        .unwrap();
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

#[tokio::test]
async fn put_follows_the_same_body_rules_as_post() {
    let app = TestApp::spawn().await;
    let (path, _, _) = created(&app).await;
    let response = app
        .client
        .put(app.url(&path))
        .json(&json!({"title": "Only a title", "isbn": 1}))
        .send()
        .await
        .unwrap();
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

#[tokio::test]
async fn put_on_a_missing_book_is_a_404() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .put(app.url("/books/777"))
        .json(&dune())
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn if_match_with_a_stale_tag_gives_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (path, stale, _) = created(&app).await;
    let mut revised = dune();
    revised["year"] = json!(1966);
    let first = app
        .client
        .put(app.url(&path))
        .header("if-match", &stale)
        .json(&revised)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK, "the current tag is accepted");
    let current = header(&first, "etag").to_owned();

    let mut change = dune();
    change["title"] = json!("Lost update");
    let response = app
        .client
        .put(app.url(&path))
        .header("if-match", &stale)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    let response = app
        .client
        .patch(app.url(&path))
        .header("if-match", &stale)
        .json(&json!({"title": "Lost update"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    let weak = format!("W/{current}");
    let response = app
        .client
        .put(app.url(&path))
        .header("if-match", weak)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;

    let book = app.get(&path).await;
    assert_eq!(header(&book, "etag"), current);
    assert_eq!(book.json::<Value>().await.unwrap()["title"], "Dune");

    let response = app
        .client
        .put(app.url(&path))
        .header("if-match", "*")
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "`*` matches any current version"
    );
}

#[tokio::test]
async fn patch_changes_only_the_fields_it_names() {
    let app = TestApp::spawn().await;
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

#[tokio::test]
async fn patch_with_null_genre_clears_it_and_accepts_plain_json() {
    let app = TestApp::spawn().await;
    let (path, _, _) = created(&app).await;
    let response = app
        .send_raw("PATCH", &path, Some("application/json"), r#"{"genre": null}"#)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["genre"], Value::Null);
}

#[tokio::test]
async fn an_empty_patch_changes_nothing_but_the_version() {
    let app = TestApp::spawn().await;
    let (path, _, book) = created(&app).await;
    let response = app
        .send_raw("PATCH", &path, Some("application/merge-patch+json"), "{}")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let patched: Value = response.json().await.unwrap();
    for field in ["title", "author", "year", "genre", "created_at"] {
        assert_eq!(patched[field], book[field]);
    }
}

#[tokio::test]
async fn patch_cannot_clear_required_fields_and_lists_every_error() {
    let app = TestApp::spawn().await;
    let (path, _, _) = created(&app).await;
    let body = r#"{"title": null, "author": "", "year": "1966", "colour": "red"}"#;
    let response = app
        .send_raw("PATCH", &path, Some("application/merge-patch+json"), body)
        .await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(error_fields(&problem), ["title", "author", "year", "colour"]);
}

#[tokio::test]
async fn patch_needs_a_json_content_type_and_an_existing_book() {
    let app = TestApp::spawn().await;
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
