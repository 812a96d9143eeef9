//! Extractors that turn raw requests into checked domain values, or into the contract's
//! errors: 415 for a body that is not JSON, 413 past 64 KiB, 400 for malformed JSON or a bad
//! path, query or header, 422 for JSON that breaks the book rules.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, Request};
use axum::http::header::{CONTENT_TYPE, IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode};

use axum::response::Response;

use super::AppState;
use crate::auth::Caller;
use crate::deadline::Deadline;
use crate::domain::{BookPatch, FieldError, JsonObject, ListQuery, NewBook, NotAnObject, Precondition, Tags};
use crate::error::Error;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A request body the domain knows how to check.
pub trait JsonInput: Sized {
    /// Accepted `Content-Type` values (without parameters).
    const MEDIA_TYPES: &'static [&'static str];
    fn from_object(object: &JsonObject) -> Result<Self, Vec<FieldError>>;
}

impl JsonInput for NewBook {
    const MEDIA_TYPES: &'static [&'static str] = &["application/json"];
    fn from_object(object: &JsonObject) -> Result<Self, Vec<FieldError>> {
        NewBook::from_json(object)
    }
}

impl JsonInput for BookPatch {
    const MEDIA_TYPES: &'static [&'static str] = &["application/merge-patch+json", "application/json"];
    fn from_object(object: &JsonObject) -> Result<Self, Vec<FieldError>> {
        BookPatch::from_json(object)
    }
}

/// A checked JSON body.
pub struct Input<T>(pub T);

impl<S, T> FromRequest<S> for Input<T>
where
    S: Send + Sync,
    T: JsonInput,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if !has_media_type(req.headers(), T::MEDIA_TYPES) {
            return Err(Error::UnsupportedMediaType(format!(
                "the body must be JSON, sent with Content-Type: {}",
                T::MEDIA_TYPES.join(" or ")
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest {
                    detail: "the request body could not be read".to_owned(),
                    errors: Vec::new(),
                }
            }
        })?;
        let object = JsonObject::parse(&bytes).map_err(|wrong| match wrong {
            NotAnObject::Malformed(why) => Error::BadRequest {
                detail: format!("the body is not valid JSON: {why}"),
                errors: Vec::new(),
            },
            NotAnObject::WrongShape => Error::Unprocessable {
                detail: "the body must be a JSON object".to_owned(),
                errors: Vec::new(),
            },
        })?;
        T::from_object(&object).map(Input).map_err(Error::invalid_fields)
    }
}

fn has_media_type(headers: &HeaderMap, accepted: &[&str]) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    accepted.iter().any(|media| essence.eq_ignore_ascii_case(media))
}

/// The `{id}` of `/books/{id}`: a positive integer written the one way (`13`, never `+13`
/// or `0013`, which would name the same book under another URL), or a 400.
#[derive(Debug, Clone, Copy)]
pub struct BookId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for BookId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let invalid = || Error::BadRequest {
            detail: "the book id in the path must be a positive integer".to_owned(),
            errors: vec![FieldError::new("id", "must be a positive integer")],
        };
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid())?;
        parse_id(&raw).map(BookId).ok_or_else(invalid)
    }
}

/// A positive integer in canonical decimal: digits only, no leading zero.
fn parse_id(raw: &str) -> Option<i64> {
    let canonical = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
    canonical.then(|| raw.parse().ok()).flatten()
}

/// The `If-Match` and `If-None-Match` headers of a change.
impl<S: Send + Sync> FromRequestParts<S> for Precondition {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Precondition {
            if_match: tags(&parts.headers, IF_MATCH),
            if_none_match: tags(&parts.headers, IF_NONE_MATCH),
        })
    }
}

/// The tags of a conditional header, if it was sent.
pub fn tags(headers: &HeaderMap, name: HeaderName) -> Option<Tags> {
    headers
        .contains_key(&name)
        .then(|| Tags::parse(headers.get_all(&name).iter().filter_map(|v| v.to_str().ok())))
}

/// The address the request came from (the connection's peer; loopback for requests made
/// without one, as in tests that call the router directly).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Peer(crate::auth::peer(&parts.extensions)))
    }
}

/// The request's [`Deadline`], as the time-limit middleware made it (none outside it).
impl<S: Send + Sync> FromRequestParts<S> for Deadline {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts.extensions.get::<Deadline>().cloned().unwrap_or_default())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .unwrap_or(RawQuery(None));
        let raw = raw.unwrap_or_default();
        ListQuery::from_pairs(form_urlencoded::parse(raw.as_bytes())).map_err(Error::invalid_query)
    }
}

/// The caller of a change to the catalogue, admitted by `Auth::admit`. Handlers take it
/// first, so a refused change is answered before anything else of it is read.
pub struct Writer(pub Caller);

impl FromRequestParts<AppState> for Writer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let peer = crate::auth::peer(&parts.extensions);
        state.auth.admit(peer, &parts.headers, true).await.map(Writer)
    }
}

/// A read of the catalogue: anyone's when reads are public, otherwise it needs a credential.
pub struct Reader;

impl FromRequestParts<AppState> for Reader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if state.auth.public_reads() {
            return Ok(Reader);
        }
        let peer = crate::auth::peer(&parts.extensions);
        state
            .auth
            .admit(peer, &parts.headers, false)
            .await
            .map(|_| Reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        headers
    }

    #[test]
    fn ids_are_canonical_positive_integers() {
        assert_eq!(parse_id("13"), Some(13));
        assert_eq!(parse_id("9223372036854775807"), Some(i64::MAX));
        for other in [
            "+13",
            "0013",
            "0",
            "-1",
            "",
            "1e3",
            "13 ",
            "9223372036854775808",
            "١٣",
        ] {
            assert_eq!(parse_id(other), None, "{other:?}");
        }
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        let json = NewBook::MEDIA_TYPES;
        assert!(has_media_type(&headers("application/json"), json));
        assert!(has_media_type(&headers("Application/JSON; charset=utf-8"), json));
        assert!(!has_media_type(&headers("text/plain"), json));
        assert!(!has_media_type(&HeaderMap::new(), json));
        assert!(!has_media_type(&headers("application/merge-patch+json"), json));
        assert!(has_media_type(
            &headers("application/merge-patch+json"),
            BookPatch::MEDIA_TYPES
        ));
    }
}
