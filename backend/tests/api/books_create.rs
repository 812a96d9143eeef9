//! `POST /books`: the field rules, the body rules, and what a created book looks like.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, dune, error_fields, header};

contract_test! {
    #[tokio::test]
    async fn creating_a_valid_book_returns_201_with_its_location_and_etag(engine) {
        let app = TestApp::spawn(engine).await;
        let response = app.post_json("/books", &dune()).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let location = header(&response, "location").to_owned();
        let etag = header(&response, "etag").to_owned();
        let book: Value = response.json().await.unwrap();
        assert_eq!(location, format!("/books/{}", book["id"]));
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "a strong tag: {etag}"
        );
        assert_eq!(book["title"], "Dune");
        assert_eq!(book["author"], "Frank Herbert");
        assert_eq!(book["year"], 1965);
        assert_eq!(book["genre"], "Science fiction");
        assert!(book["id"].as_i64().unwrap() >= 1);

        let fetched: Value = app.get(&location).await.json().await.unwrap();
        assert_eq!(fetched, book);
    }
}

contract_test! {
    #[tokio::test]
    async fn timestamps_are_set_by_the_server_in_rfc3339_utc(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        for field in ["created_at", "updated_at"] {
            let stamp = book[field].as_str().unwrap();
            assert!(stamp.ends_with('Z'), "{stamp}");
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("{field} = {stamp}: {e}"));
        }
        assert_eq!(book["created_at"], book["updated_at"]);
    }
}

contract_test! {
    #[tokio::test]
    async fn clients_cannot_set_the_id_or_the_timestamps(engine) {
        let app = TestApp::spawn(engine).await;
        let mut body = dune();
        body["id"] = json!(99);
        body["created_at"] = json!("2000-01-01T00:00:00Z");
        let problem = assert_problem(
            app.post_json("/books", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error_fields(&problem), ["created_at", "id"]);
        assert_eq!(problem["errors"][0]["message"], "is not a known field");
    }
}

contract_test! {
    #[tokio::test]
    async fn surrounding_whitespace_is_trimmed(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app
            .create(json!({"title": "  Dune\t", "author": "\n Frank Herbert ", "year": 1965, "genre": "  SF  "}))
            .await;
        assert_eq!(book["title"], "Dune");
        assert_eq!(book["author"], "Frank Herbert");
        assert_eq!(book["genre"], "SF");
    }
}

contract_test! {
    #[tokio::test]
    async fn a_missing_null_or_blank_genre_is_stored_as_null(engine) {
        let app = TestApp::spawn(engine).await;
        for genre in [None, Some(Value::Null), Some(json!("   ")), Some(json!(""))] {
            let mut body = json!({"title": "T", "author": "A", "year": 1});
            if let Some(genre) = genre {
                body["genre"] = genre;
            }
            let book = app.create(body.clone()).await;
            assert_eq!(book["genre"], Value::Null, "for {body}");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn every_invalid_field_is_listed_at_once(engine) {
        let app = TestApp::spawn(engine).await;
        let body = json!({"title": "", "author": "x".repeat(51), "year": 2101, "genre": "g".repeat(51)});
        let problem = assert_problem(
            app.post_json("/books", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error_fields(&problem), ["title", "author", "year", "genre"]);
        assert_eq!(problem["detail"], "4 fields are invalid");
        assert_eq!(problem["title"], "Unprocessable Content");
        assert_eq!(problem["errors"][0]["message"], "must be 1 to 50 characters");
        assert_eq!(
            problem["errors"][2]["message"],
            "must be an integer from -5000 to 2100"
        );
    }
}

contract_test! {
    #[tokio::test]
    async fn required_fields_are_reported_when_missing(engine) {
        let app = TestApp::spawn(engine).await;
        let problem = assert_problem(
            app.post_json("/books", &json!({})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error_fields(&problem), ["title", "author", "year"]);
        assert!(
            problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["message"] == "is required")
        );
    }
}

contract_test! {
    #[tokio::test]
    async fn title_and_author_lengths_count_characters_after_trimming(engine) {
        let app = TestApp::spawn(engine).await;
        let accents = "é".repeat(50);
        let emoji = "📚".repeat(50);
        let book = app
            .create(json!({"title": format!("  {accents}  "), "author": emoji, "year": 1}))
            .await;
        assert_eq!(book["title"], accents);
        assert_eq!(book["author"], emoji);

        for (field, value) in [
            ("title", "é".repeat(51)),
            ("author", "📚".repeat(51)),
            ("title", " \t ".to_owned()),
        ] {
            let mut body = json!({"title": "T", "author": "A", "year": 1});
            body[field] = json!(value);
            let problem = assert_problem(
                app.post_json("/books", &body).await,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
            assert_eq!(error_fields(&problem), [field], "{field} = {value:?}");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn the_year_must_be_an_integer_from_minus_5000_to_2100(engine) {
        let app = TestApp::spawn(engine).await;
        for year in [-5000, 0, 2100] {
            let book = app
                .create(json!({"title": "T", "author": "A", "year": year}))
                .await;
            assert_eq!(book["year"], year);
        }
        for year in [
            json!(-5001),
            json!(2101),
            json!("1965"),
            json!(1965.5),
            json!(null),
            json!(true),
            json!([1965]),
        ] {
            let body = json!({"title": "T", "author": "A", "year": year});
            let problem = assert_problem(
                app.post_json("/books", &body).await,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
            assert_eq!(error_fields(&problem), ["year"], "year = {year}");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn wrongly_typed_text_fields_are_rejected(engine) {
        let app = TestApp::spawn(engine).await;
        let body = json!({"title": 5, "author": ["A"], "year": 1, "genre": {"name": "x"}});
        let problem = assert_problem(
            app.post_json("/books", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error_fields(&problem), ["title", "author", "genre"]);
    }
}

contract_test! {
    #[tokio::test]
    async fn hostile_text_is_stored_and_returned_verbatim(engine) {
        let app = TestApp::spawn(engine).await;
        for title in [
            "<img src=x onerror=alert(1)>",
            "'; DROP TABLE books; --",
            "Robert\"); DELETE FROM books;--",
            "📚 Ünïcödé — 書",
            "%_\\ like wildcards",
            "{{7*7}} ${7*7}",
        ] {
            let book = app
                .create(json!({"title": title, "author": "A", "year": 1}))
                .await;
            assert_eq!(book["title"], title);
            let fetched: Value = app
                .get(&format!("/books/{}", book["id"]))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(fetched["title"], title);
        }
        let all: Value = app.get("/books").await.json().await.unwrap();
        assert_eq!(all.as_array().unwrap().len(), 6, "the table is intact");
    }
}

contract_test! {
    #[tokio::test]
    async fn control_characters_inside_a_text_are_a_422_not_a_500(engine) {
        let app = TestApp::spawn(engine).await;
        for title in ["nul\u{0}byte", "line\nbreak", "red\u{1b}[0m!"] {
            let response = app.post_json("/books", &json!({"title": title, "author": "A", "year": 1})).await;
            let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(error_fields(&problem), ["title"]);
            assert_eq!(problem["errors"][0]["message"], "must not contain control characters (such as line breaks or NUL)");
        }
        let search = app.get("/books?q=a%00b").await;
        assert_problem(search, StatusCode::BAD_REQUEST).await;
    }
}

contract_test! {
    #[tokio::test]
    async fn malformed_json_is_a_400(engine) {
        let app = TestApp::spawn(engine).await;
        for body in ["{", "{\"title\": }", "", "nul", "{\"title\": \"a\",}"] {
            let response = app
                .send_raw("POST", "/books", Some("application/json"), body)
                .await;
            let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
            assert!(
                problem["detail"].as_str().unwrap().contains("not valid JSON"),
                "{body:?}"
            );
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn json_that_is_not_an_object_is_a_422(engine) {
        let app = TestApp::spawn(engine).await;
        for body in ["[]", "\"Dune\"", "42", "null"] {
            let response = app
                .send_raw("POST", "/books", Some("application/json"), body)
                .await;
            assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn a_body_not_sent_as_json_is_a_415(engine) {
        let app = TestApp::spawn(engine).await;
        let json = dune().to_string();
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let response = app.send_raw("POST", "/books", content_type, json.clone()).await;
            assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        }
        let response = app
            .send_raw("POST", "/books", Some("application/json; charset=utf-8"), json)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}

contract_test! {
    #[tokio::test]
    async fn a_body_of_64_kib_is_read_and_one_byte_more_is_a_413(engine) {
        let app = TestApp::spawn(engine).await;
        let json = dune().to_string();
        let exactly = format!("{json}{}", " ".repeat(64 * 1024 - json.len()));
        assert_eq!(exactly.len(), 65536);
        let response = app
            .send_raw("POST", "/books", Some("application/json"), exactly.clone())
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);

        let over = format!("{exactly} ");
        let problem = assert_problem(
            app.send_raw("POST", "/books", Some("application/json"), over)
                .await,
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
        assert_eq!(problem["title"], "Content Too Large");
    }
}

contract_test! {
    #[tokio::test]
    async fn a_10_mb_body_is_refused_and_nothing_breaks(engine) {
        let app = TestApp::spawn(engine).await;
        let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
        match app
            .client
            .post(app.url("/books"))
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
        {
            Ok(response) => assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await,
            // The server may answer 413 and close before the client finishes sending.
            Err(error) => {
                assert!(error.is_request() || error.is_body(), "{error}");
                json!(null)
            }
        };
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
        assert_eq!(
            app.post_json("/books", &dune()).await.status(),
            StatusCode::CREATED
        );
    }
}

contract_test! {
    #[tokio::test]
    async fn ids_are_never_reused(engine) {
        let app = TestApp::spawn(engine).await;
        let first = app.create_titled("one").await;
        let second = app.create_titled("two").await;
        let response = app.delete(&format!("/books/{}", second["id"])).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let third = app.create_titled("three").await;
        assert!(
            third["id"].as_i64() > second["id"].as_i64(),
            "{first} {second} {third}"
        );
    }
}

contract_test! {
    #[tokio::test]
    async fn a_field_given_twice_is_a_422_naming_it_not_the_last_one_winning(engine) {
        let app = TestApp::spawn(engine).await;
        let body = r#"{"title": "Dune", "author": "Frank Herbert", "year": 1965, "title": "Something else"}"#;
        let response = app
            .send_raw("POST", "/books", Some("application/json"), body)
            .await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&problem), ["title"]);
        assert_eq!(problem["errors"][0]["message"], "is given more than once");
        assert_eq!(header(&app.get("/books").await, "x-total-count"), "0");
    }
}

contract_test! {
    #[tokio::test]
    async fn a_year_beyond_any_number_type_is_a_field_error_not_a_malformed_body(engine) {
        let app = TestApp::spawn(engine).await;
        for year in ["1e309", "-1e309", "123456789012345678901234567890"] {
            let body = format!(r#"{{"title": "T", "author": "A", "year": {year}}}"#);
            let response = app
                .send_raw("POST", "/books", Some("application/json"), body)
                .await;
            let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(error_fields(&problem), ["year"], "{year}");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn a_text_with_no_visible_character_is_blank(engine) {
        let app = TestApp::spawn(engine).await;
        for blank in ["\u{200b}", "\u{feff}", "\u{200d}\u{2060}", " \u{3164} ", "\u{0}"] {
            let response = app
                .post_json("/books", &json!({"title": blank, "author": "A", "year": 1}))
                .await;
            let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(error_fields(&problem), ["title"], "{blank:?}");
            let response = app
                .post_json(
                    "/books",
                    &json!({"title": "T", "author": "A", "year": 1, "genre": blank}),
                )
                .await;
            assert_eq!(
                response.status(),
                StatusCode::CREATED,
                "a blank genre is no genre"
            );
            assert_eq!(response.json::<Value>().await.unwrap()["genre"], Value::Null);
        }
        let trimmed = app
            .create(json!({"title": "\u{200b}Dune\u{200b}", "author": "A", "year": 1}))
            .await;
        assert_eq!(
            trimmed["title"], "Dune",
            "invisible characters at the ends are trimmed"
        );
    }
}
