//! `/openapi.json` and `/docs`.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, header};

contract_test! {
    #[tokio::test]
    async fn the_openapi_document_describes_every_endpoint_and_method(engine) {
        let app = TestApp::spawn(engine).await;
        let response = app.get("/openapi.json").await;
        assert_eq!(response.status(), StatusCode::OK);
        let doc: Value = response.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut operations = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
        let expected: BTreeSet<String> = [
            "GET /books",
            "POST /books",
            "GET /books/{id}",
            "PUT /books/{id}",
            "PATCH /books/{id}",
            "DELETE /books/{id}",
            "GET /session",
            "POST /session",
            "DELETE /session",
            "GET /healthz",
            "GET /readyz",
            "GET /metrics",
            "GET /openapi.json",
            "GET /docs",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(operations, expected);
    }
}

contract_test! {
    #[tokio::test]
    async fn the_documented_error_statuses_match_the_contract(engine) {
        let app = TestApp::spawn(engine).await;
        let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
        let statuses = |path: &str, method: &str| -> BTreeSet<String> {
            doc["paths"][path][method]["responses"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        let set = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
        // Reads are public by default; every change may be refused for its credential.
        assert_eq!(statuses("/books", "get"), set(&["200", "400", "503"]));
        assert_eq!(
            statuses("/books", "post"),
            set(&["201", "400", "401", "403", "409", "413", "415", "422", "429", "503"])
        );
        assert_eq!(
            statuses("/books/{id}", "get"),
            set(&["200", "304", "400", "404", "503"])
        );
        assert_eq!(
            statuses("/books/{id}", "put"),
            set(&["200", "400", "401", "403", "404", "412", "413", "415", "422", "429", "503"])
        );
        assert_eq!(
            statuses("/books/{id}", "patch"),
            set(&["200", "400", "401", "403", "404", "412", "413", "415", "422", "429", "503"])
        );
        assert_eq!(
            statuses("/books/{id}", "delete"),
            set(&["204", "400", "401", "403", "404", "412", "429", "503"])
        );
        assert_eq!(
            statuses("/session", "post"),
            set(&["200", "400", "401", "403", "413", "415", "422", "429", "503"])
        );
        let body = &doc["components"]["schemas"]["BookInput"];
        assert_eq!(body["additionalProperties"], false);
        assert_eq!(body["required"], serde_json::json!(["title", "author", "year"]));
    }
}

contract_test! {
    #[tokio::test]
    async fn the_document_declares_how_to_authenticate(engine) {
        // `/docs` offers *Authorize* for both schemes; changes need one of them, reads take
        // either or none, unless reads are closed.
        let app = TestApp::spawn(engine).await;
        let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["type"], "http");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["session"]["type"], "apiKey");
        assert_eq!(schemes["session"]["in"], "cookie");
        assert_eq!(schemes["session"]["name"], "bookstore_session");
        let required = serde_json::json!([{"bearer": []}, {"session": []}]);
        for (path, method) in [("/books", "post"), ("/books/{id}", "put"), ("/books/{id}", "patch"), ("/books/{id}", "delete")] {
            assert_eq!(doc["paths"][path][method]["security"], required, "{method} {path}");
            let unauthorized = &doc["paths"][path][method]["responses"]["401"];
            assert!(unauthorized["headers"]["WWW-Authenticate"].is_object(), "{method} {path}");
            assert!(doc["paths"][path][method]["responses"]["429"]["headers"]["Retry-After"].is_object());
        }
        let optional = serde_json::json!([{}, {"bearer": []}, {"session": []}]);
        assert_eq!(doc["paths"]["/books"]["get"]["security"], optional);

        let closed = TestApp::spawn_with(engine, |args| args.public_reads = false).await;
        let doc: Value = closed.get("/openapi.json").await.json().await.unwrap();
        assert_eq!(doc["paths"]["/books"]["get"]["security"], required);
        assert!(doc["paths"]["/books/{id}"]["get"]["responses"]["401"].is_object());
    }
}

contract_test! {
    #[tokio::test]
    async fn the_docs_page_works_without_the_internet(engine) {
        let app = TestApp::spawn(engine).await;
        let page = app.get("/docs").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(header(&page, "content-type").starts_with("text/html"));
        let html = page.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "it is Swagger UI");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external resources"
        );
        for file in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
            let response = app.get(&format!("/docs/{file}")).await;
            assert_eq!(response.status(), StatusCode::OK, "{file}");
        }
        let init = app
            .get("/docs/swagger-initializer.js")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            init.contains("/openapi.json"),
            "the docs load this API's document"
        );
        assert_eq!(app.get("/docs/").await.status(), StatusCode::OK);
        assert_eq!(app.get("/docs/nope.js").await.status(), StatusCode::NOT_FOUND);
    }
}
