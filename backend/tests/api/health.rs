//! `/healthz` and `/readyz`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

contract_test! {
    #[tokio::test]
    async fn healthz_says_ok(engine) {
        let app = TestApp::spawn(engine).await;
        let response = app.get("/healthz").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    }
}

contract_test! {
    #[tokio::test]
    async fn readyz_is_200_when_the_database_answers_and_writes_can_commit(engine) {
        let app = TestApp::spawn(engine).await;
        let response = app.get("/readyz").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": "ok", "database": engine.name()}));
    }
}
