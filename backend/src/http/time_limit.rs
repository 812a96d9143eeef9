//! The per-request time limit (`--request-timeout`), with the honest-answer rule of
//! [`crate::deadline`]: past the limit, a request is answered 503 "safe to retry" only if no
//! write of it has begun committing; otherwise it waits for the commit's outcome.

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::deadline::Deadline;
use crate::error::Error;

pub async fn limit(limit: Duration, mut request: Request, next: Next) -> Response {
    let deadline = Deadline::default();
    request.extensions_mut().insert(deadline.clone());
    let answer = next.run(request);
    tokio::pin!(answer);
    match tokio::time::timeout(limit, &mut answer).await {
        Ok(response) => response,
        Err(_) if deadline.give_up() => Error::Timeout.into_response(),
        Err(_) => answer.await,
    }
}
