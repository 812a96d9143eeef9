//! Errors outside the book rules: unknown routes, wrong methods, an unavailable database.

use reqwest::StatusCode;

use crate::helpers::{TestApp, assert_problem, dune, header};

contract_test! {
    #[tokio::test]
    async fn an_unknown_route_is_a_404_problem(engine) {
        let app = TestApp::spawn(engine).await;
        for path in ["/nope", "/books/1/extra", "/api/books", "/BOOKS"] {
            assert_problem(app.get(path).await, StatusCode::NOT_FOUND).await;
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn a_wrong_method_is_a_405_with_allow(engine) {
        let app = TestApp::spawn(engine).await;
        let cases = [
            ("PUT", "/books", "GET,HEAD,POST"),
            ("DELETE", "/books", "GET,HEAD,POST"),
            ("POST", "/books/1", "GET,HEAD,PUT,PATCH,DELETE"),
            ("POST", "/healthz", "GET,HEAD"),
            ("DELETE", "/metrics", "GET,HEAD"),
        ];
        for (method, path, allow) in cases {
            let response = app.send_raw(method, path, None, "").await;
            let mut allowed: Vec<_> = header(&response, "allow")
                .split(',')
                .map(str::trim)
                .map(str::to_owned)
                .collect();
            allowed.sort();
            let mut expected: Vec<_> = allow.split(',').map(str::to_owned).collect();
            expected.sort();
            assert_eq!(allowed, expected, "{method} {path}");
            assert_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn an_unavailable_database_is_a_503_that_is_safe_to_retry(engine) {
        let app = TestApp::spawn(engine).await;
        app.create(dune()).await;
        app.store.close().await;
        // Requests that need the database (answers already in the cache are still served).
        let needs_database = [
            app.get("/books?q=dune").await,
            app.get("/books/999").await,
            app.post_json("/books", &dune()).await,
        ];
        for response in needs_database {
            assert_eq!(header(&response, "retry-after"), "1");
            assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
        }
        assert_problem(app.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(
            app.get("/healthz").await.status(),
            StatusCode::OK,
            "liveness does not touch the database"
        );
    }
}

contract_test! {
    #[tokio::test]
    async fn a_request_past_the_time_limit_is_a_503(engine) {
        use std::time::Duration;
        use tokio::io::AsyncWriteExt;
        // A client that sends half a body and stalls keeps its request open past the limit.
        let app = TestApp::spawn_with(engine, |args| args.request_timeout = Duration::from_millis(300)).await;
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let body = dune().to_string();
        let head = format!(
            "POST /books HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            bookstore::config::TEST_OPERATOR_TOKEN,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body.as_bytes()[..5]).await.unwrap();
        let answer = crate::helpers::read_response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
    }
}

contract_test! {
    #[tokio::test]
    async fn every_response_names_its_request_id(engine) {
        let app = TestApp::spawn(engine).await;
        let first = header(&app.get("/healthz").await, "x-request-id").to_owned();
        let second = header(&app.get("/healthz").await, "x-request-id").to_owned();
        assert!(
            !first.is_empty() && first != second,
            "generated ids differ: {first} {second}"
        );
        let response = app
            .client
            .get(app.url("/nope"))
            .header("x-request-id", "abc-123")
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&response, "x-request-id"),
            "abc-123",
            "a caller's id is kept"
        );
    }
}

contract_test! {
    #[tokio::test]
    async fn every_answer_carries_its_request_id_trace_and_nosniff(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        let answers = [
            app.get(&format!("/books/{}", book["id"])).await,
            app.get("/books?limit=1").await,
            app.get("/books/987654").await,
            app.get("/no-such-path").await,
            app.send_raw("BREW", "/books", None, "").await,
            app.anonymous.post(app.url("/books")).json(&dune()).send().await.unwrap(),
        ];
        for response in &answers {
            let what = format!("{} {}", response.status(), response.url().path());
            assert!(!header(response, "x-request-id").is_empty(), "{what}");
            assert_eq!(header(response, "traceparent").len(), 55, "{what}");
            assert_eq!(header(response, "x-content-type-options"), "nosniff", "{what}");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn a_request_id_that_is_too_long_or_odd_is_replaced_not_echoed(engine) {
        let app = TestApp::spawn(engine).await;
        let long = "x".repeat(8000);
        for sent in [long.as_str(), "has spaces", "quote\"d", "<script>"] {
            let response = app
                .client
                .get(app.url("/healthz"))
                .header("x-request-id", sent)
                .send()
                .await
                .unwrap();
            let echoed = header(&response, "x-request-id");
            assert_ne!(echoed, sent);
            assert!(!echoed.is_empty() && echoed.len() <= 64, "{echoed}");
        }
        let longest = "a".repeat(64);
        let response = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", &longest)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&response, "x-request-id"), longest);
    }
}
