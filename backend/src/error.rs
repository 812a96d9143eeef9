//! The one error type of the application, and the one place that turns an error into an
//! HTTP response: an RFC 9457 `application/problem+json` body.
//!
//! Handlers, extractors and the store return [`Error`] and use `?`; nothing else decides
//! status codes. Details of server-side failures are logged, never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// What a 401 answers (RFC 6750): which scheme and realm to authenticate with, and, when a
/// credential was sent, that it did not work.
const BEARER_CHALLENGE: &str = "Bearer realm=\"bookstore\"";
const INVALID_TOKEN_CHALLENGE: &str = "Bearer realm=\"bookstore\", error=\"invalid_token\"";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed JSON, or bad query parameters (each listed in `errors`).
    #[error("bad request: {detail}")]
    BadRequest { detail: String, errors: Vec<FieldError> },
    #[error("not found: {0}")]
    NotFound(String),
    /// The path exists but not with this method; the `Allow` header is set by the router.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No credential, or one that is unknown, expired or revoked (`invalid`).
    #[error("unauthorized: {detail}")]
    Unauthorized { detail: String, invalid: bool },
    /// A valid credential that may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The client presented too many bad credentials; it may try again in `retry_after`
    /// seconds.
    #[error("too many failed credentials")]
    TooManyRequests { retry_after: u64 },
    /// `If-Match` named a version that is no longer current.
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// JSON of the wrong shape, or fields that break the rules (each listed in `errors`).
    #[error("unprocessable: {detail}")]
    Unprocessable { detail: String, errors: Vec<FieldError> },
    /// The request conflicts with another still in progress (the same `Idempotency-Key`).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request took longer than the configured time limit, and nothing was written.
    #[error("request timed out")]
    Timeout,
    /// The database cannot be reached or is busy, and nothing was written: the request is
    /// safe to retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// `/readyz`: what is not ready (named in the answer: it is about the service, not a
    /// request's data).
    #[error("not ready: {0}")]
    NotReady(String),
    /// The database failed while committing this write: it may or may not have been
    /// written, so the answer must not say "safe to retry".
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A 422 for field rule violations, with a detail that counts them.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        Self::Unprocessable {
            detail: count_fields(errors.len()),
            errors,
        }
    }

    /// A 400 for bad query parameters.
    pub fn invalid_query(errors: Vec<FieldError>) -> Self {
        let n = errors.len();
        let detail = if n == 1 {
            "1 query parameter is invalid".to_owned()
        } else {
            format!("{n} query parameters are invalid")
        };
        Self::BadRequest { detail, errors }
    }

    /// A 422 for an `Idempotency-Key` already used with a different body.
    pub fn key_reused() -> Self {
        Self::Unprocessable {
            detail:
                "this Idempotency-Key was already used with a different body; use a new key for a new book"
                    .to_owned(),
            errors: vec![FieldError::new(
                "Idempotency-Key",
                "was already used with a different body",
            )],
        }
    }

    /// A 409 for an `Idempotency-Key` whose first request is still running.
    pub fn key_in_progress() -> Self {
        Self::Conflict(
            "a request with this Idempotency-Key is still in progress; retry it once that one has been answered"
                .to_owned(),
        )
    }

    /// The problem a bare status code stands for, used to give responses produced outside
    /// the handlers (the router's 404/405, the body-limit layer, the file server) the same
    /// body.
    pub fn from_status(status: StatusCode) -> Option<Self> {
        Some(match status {
            StatusCode::NOT_FOUND => Self::NotFound("no such route".to_owned()),
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::UnsupportedMediaType("expected application/json".to_owned())
            }
            _ => return None,
        })
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Timeout | Self::Unavailable(_) | Self::OutcomeUnknown(_) | Self::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::BadRequest { detail, .. } | Self::Unprocessable { detail, .. } => detail.clone(),
            Self::NotFound(what) | Self::Forbidden(what) | Self::Unauthorized { detail: what, .. } => what.clone(),
            Self::TooManyRequests { retry_after } => format!(
                "too many failed credentials from this client; try again in {retry_after} s"
            ),
            Self::MethodNotAllowed => "this path does not support this method; see the Allow header".into(),
            Self::PreconditionFailed => {
                "the book has changed since it was read (If-Match does not match its ETag); fetch it again"
                    .into()
            }
            Self::PayloadTooLarge => "the request body is larger than 64 KiB".into(),
            Self::UnsupportedMediaType(expected) => expected.clone(),
            Self::Conflict(what) => what.clone(),
            Self::Timeout => "the request took too long and nothing was changed; it is safe to retry".into(),
            Self::Unavailable(_) => "the database is unavailable and nothing was changed; it is safe to retry".into(),
            Self::NotReady(what) => format!("not ready: {what}"),
            Self::OutcomeUnknown(_) => "the database failed while saving this change, so it may or may not have been \
                saved: read the data again before retrying (a POST retried with the same Idempotency-Key is safe)"
                .into(),
            Self::Internal(_) => "an unexpected error occurred; it has been logged".into(),
        }
    }

    /// The same error again, for answering several requests that one failure affected.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Unavailable(reason) => Self::Unavailable(reason.clone()),
            Self::OutcomeUnknown(reason) => Self::OutcomeUnknown(reason.clone()),
            Self::NotFound(what) => Self::NotFound(what.clone()),
            Self::PreconditionFailed => Self::PreconditionFailed,
            Self::Unprocessable { detail, errors } => Self::Unprocessable {
                detail: detail.clone(),
                errors: errors.clone(),
            },
            other => Self::Internal(other.to_string().into()),
        }
    }

    fn errors(self) -> Option<Vec<FieldError>> {
        match self {
            Self::BadRequest { errors, .. } | Self::Unprocessable { errors, .. } => Some(errors),
            _ => None,
        }
    }
}

fn count_fields(n: usize) -> String {
    if n == 1 {
        "1 field is invalid".to_owned()
    } else {
        format!("{n} fields are invalid")
    }
}

/// Database failures that mean "try again later" become 503 (safe to retry: the statement
/// failed, so a write's transaction was rolled back); anything else is a bug (500).
impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let transient = match &error {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::WorkerCrashed | E::Tls(_) => true,
            E::Database(db) => {
                if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                    sqlite_is_transient(sqlite)
                } else {
                    db.code().is_some_and(|code| postgres_is_transient(&code))
                }
            }
            _ => false,
        };
        if transient {
            Self::Unavailable(error.to_string())
        } else {
            Self::Internal(Box::new(error))
        }
    }
}

/// SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
/// (primary result codes, the low byte of extended codes).
fn sqlite_is_transient(error: &sqlx::sqlite::SqliteError) -> bool {
    use sqlx::error::DatabaseError;
    error
        .code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

/// PostgreSQL's SQLSTATEs that mean the server, not the request, is the problem: connection
/// exceptions (08), insufficient resources such as a full disk (53), operator intervention
/// such as a shutdown (57P01-57P03) or a cancelled statement (57014, the statement timeout),
/// a transaction rollback for serialization or deadlock (40001, 40P01), a lock not available
/// (55P03), and a read-only server (25006, a standby).
pub fn postgres_is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01" | "55P03" | "25006"
        )
}

/// The RFC 9457 problem document every error response carries.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "about:blank", "title": "Unprocessable Content", "status": 422,
    "detail": "2 fields are invalid",
    "errors": [{"field": "title", "message": "must be 1 to 50 characters"},
               {"field": "year", "message": "must be an integer from -5000 to 2100"}]
}))]
pub struct Problem {
    /// Always `about:blank`: the status code says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status code's reason phrase.
    pub title: &'static str,
    pub status: u16,
    /// What went wrong with this request, for humans.
    pub detail: String,
    /// Every invalid field or query parameter (400 and 422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        // What went wrong on the server side travels with the response, for the request
        // logger (`http/observe.rs`), which knows the route and the request id; the client
        // gets only the generic detail.
        let cause = match &self {
            Self::Internal(source) => Some(ServerFault(source.to_string())),
            Self::Unavailable(reason) | Self::OutcomeUnknown(reason) => Some(ServerFault(reason.clone())),
            Self::Timeout => Some(ServerFault(
                "the request time limit passed before its work began".to_owned(),
            )),
            _ => None,
        };
        // Only an answer after which nothing was (or will be) written invites a retry.
        let safe_to_retry = matches!(self, Self::Timeout | Self::Unavailable(_) | Self::NotReady(_));
        let challenge = match &self {
            Self::Unauthorized { invalid: false, .. } => Some(HeaderValue::from_static(BEARER_CHALLENGE)),
            Self::Unauthorized { invalid: true, .. } => {
                Some(HeaderValue::from_static(INVALID_TOKEN_CHALLENGE))
            }
            _ => None,
        };
        let retry_after = match &self {
            Self::TooManyRequests { retry_after } => Some(HeaderValue::from(*retry_after)),
            _ if safe_to_retry => Some(HeaderValue::from_static("1")),
            _ => None,
        };
        let problem = Problem {
            kind: "about:blank",
            title: reason_phrase(status),
            status: status.as_u16(),
            detail: self.detail(),
            errors: self.errors(),
        };
        let body = serde_json::to_vec(&problem).expect("a problem (strings and numbers) always serializes");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(retry_after) = retry_after {
            headers.insert(header::RETRY_AFTER, retry_after);
        }
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(cause) = cause {
            response.extensions_mut().insert(cause);
        }
        response
    }
}

/// The server-side cause of a 5xx answer, for the logs only.
#[derive(Debug, Clone)]
pub struct ServerFault(pub String);

/// RFC 9110's reason phrases, which renamed two that the `http` crate still spells the
/// older way.
fn reason_phrase(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNPROCESSABLE_ENTITY => "Unprocessable Content",
        StatusCode::PAYLOAD_TOO_LARGE => "Content Too Large",
        other => other.canonical_reason().unwrap_or("Error"),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_counts_invalid_fields() {
        let one = Error::invalid_fields(vec![FieldError::new("title", "x")]);
        assert_eq!(one.detail(), "1 field is invalid");
        let two = Error::invalid_fields(vec![FieldError::new("a", "x"), FieldError::new("b", "y")]);
        assert_eq!(two.detail(), "2 fields are invalid");
    }

    #[test]
    fn a_busy_database_is_a_retryable_503_and_other_failures_a_500() {
        assert_eq!(
            Error::from(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Error::from(sqlx::Error::RowNotFound).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn only_answers_after_which_nothing_was_written_say_retry() {
        for (error, retry) in [
            (Error::Timeout, true),
            (Error::Unavailable("busy".into()), true),
            (Error::OutcomeUnknown("fsync".into()), false),
        ] {
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers().contains_key(header::RETRY_AFTER), retry);
        }
    }

    #[test]
    fn internal_details_are_not_sent_to_the_client() {
        let error = Error::Internal("secret path /etc/x".into());
        assert!(!error.detail().contains("secret"));
    }
}
