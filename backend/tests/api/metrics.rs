//! `/metrics`: the contract's metrics, labelled by route template.
//!
//! Every app has a recorder of its own, even with many apps in this one test process, so
//! these assert exact totals: another test's requests never show up here.

use reqwest::StatusCode;

use crate::helpers::{TestApp, dune, header};

contract_test! {
    #[tokio::test]
    async fn metrics_are_served_in_the_prometheus_text_format(engine) {
        let app = TestApp::spawn(engine).await;
        app.create(dune()).await;
        app.get("/books/1").await;
        let response = app.get("/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header(&response, "content-type").starts_with("text/plain"));
        let text = response.text().await.unwrap();
        for name in [
            "http_requests_total",
            "http_request_duration_seconds_bucket",
            "http_requests_in_flight",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
            "bookstore_books",
            "bookstore_db_pool_connections{state=\"idle\"}",
            "bookstore_db_pool_connections{state=\"in_use\"}",
            "bookstore_build_info{version=",
        ] {
            assert!(text.contains(name), "{name} is exported");
        }
        assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
        assert!(text.contains("# TYPE http_requests_total counter"));
    }
}

contract_test! {
    #[tokio::test]
    async fn requests_are_labelled_by_route_template_not_raw_path(engine) {
        let app = TestApp::spawn(engine).await;
        let book = app.create(dune()).await;
        app.get(&format!("/books/{}", book["id"])).await;
        app.get("/books/987654321").await;
        let text = app.get("/metrics").await.text().await.unwrap();
        for series in [
            r#"http_requests_total{method="GET",route="/books/{id}",status="200"} 1"#,
            r#"http_requests_total{method="GET",route="/books/{id}",status="404"} 1"#,
            r#"http_requests_total{method="POST",route="/books",status="201"} 1"#,
            r#"http_request_duration_seconds_count{method="POST",route="/books",status="201"} 1"#,
        ] {
            assert!(text.lines().any(|line| line == series), "{series} in\n{text}");
        }
        assert!(!text.contains("987654321"), "raw ids never become labels");
    }
}

contract_test! {
    #[tokio::test]
    async fn unknown_paths_and_methods_share_fixed_labels(engine) {
        let app = TestApp::spawn(engine).await;
        for i in 0..20 {
            app.get(&format!("/random-{i}-path")).await;
        }
        app.send_raw("BREW", "/books", None, "").await;
        let text = app.get("/metrics").await.text().await.unwrap();
        assert!(!text.contains("random-"), "unknown paths never become labels");
        let unmatched = r#"http_requests_total{method="GET",route="unmatched",status="404"} 20"#;
        assert!(text.lines().any(|line| line == unmatched), "{unmatched} in\n{text}");
        assert!(text.contains(r#"method="OTHER""#));
        assert!(!text.contains("BREW"));
    }
}
