//! `/session`: how the browser UI signs in. `POST` exchanges a token for an `HttpOnly`
//! session cookie (so page scripts never keep the token), `GET` says who is signed in, and
//! `DELETE` signs out.

use axum::extract::{FromRequest, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::AppState;
use super::input::{Input, JsonInput, Peer};
use crate::auth::{self, Caller, Refusal, Via};
use crate::domain::{FieldError, JsonObject};
use crate::error::{Error, Result};
use crate::store::unix_now;

pub fn router() -> Router<AppState> {
    Router::new().route("/session", get(current).post(sign_in).delete(sign_out))
}

/// The body of `POST /session`.
#[derive(Debug)]
pub struct SignIn {
    /// An API token, or the operator token.
    pub token: String,
}

/// Longest token accepted, in characters (surrounding whitespace aside).
const TOKEN_MAX: usize = 512;

impl PartialSchema for SignIn {
    fn schema() -> RefOr<Schema> {
        let token = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(TOKEN_MAX))
            // Something besides whitespace, which is trimmed.
            .pattern(Some(r"\S"))
            .description(Some("An API token (`bks_…`), or the operator token"));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .property("token", token)
            .required("token")
            .examples([serde_json::json!({"token": "bks_0123…"})])
            .into()
    }
}

impl ToSchema for SignIn {}

impl JsonInput for SignIn {
    const MEDIA_TYPES: &'static [&'static str] = &["application/json"];

    fn from_object(object: &JsonObject) -> Result<Self, Vec<FieldError>> {
        let mut errors: Vec<FieldError> = object
            .names()
            .filter(|name| *name != "token")
            .map(|name| FieldError::new(name, "is not a known field"))
            .collect();
        if !object.repeated().is_empty() {
            errors.push(FieldError::new("token", "must be sent once"));
        }
        let token = match object.get("token").map(RawValue::get) {
            None => Err("is required"),
            Some(raw) => match serde_json::from_str::<String>(raw) {
                Ok(token) => {
                    // Tokens are ASCII: only ASCII whitespace around one (a pasted newline) is trimmed.
                    let token = token.trim_matches(|c: char| c.is_ascii_whitespace());
                    if (1..=TOKEN_MAX).contains(&token.chars().count()) {
                        Ok(token.to_owned())
                    } else {
                        Err("must be a token: a string of 1 to 512 characters")
                    }
                }
                _ => Err("must be a token: a string of 1 to 512 characters"),
            },
        };
        match token {
            Ok(token) if errors.is_empty() => Ok(Self { token }),
            Ok(_) => Err(errors),
            Err(message) => {
                errors.push(FieldError::new("token", message));
                Err(errors)
            }
        }
    }
}

/// Who is signed in.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"authenticated": true, "public_reads": true, "name": "alice", "scope": "write",
    "via": "session", "expires_at": "2026-11-26T07:00:00Z"}))]
pub struct SessionInfo {
    /// Whether the request carried a working credential.
    pub authenticated: bool,
    /// Whether reading the catalogue needs no credential.
    pub public_reads: bool,
    /// The token's name (`operator` for the operator token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `write` or `read` (a read-only token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
    /// `session` (the cookie) or `bearer` (the `Authorization` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'static str>,
    /// When the credential stops working (RFC 3339), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl SessionInfo {
    fn of(caller: Option<&Caller>, public_reads: bool) -> Self {
        let Some(caller) = caller else {
            return Self {
                authenticated: false,
                public_reads,
                name: None,
                scope: None,
                via: None,
                expires_at: None,
            };
        };
        Self {
            authenticated: true,
            public_reads,
            name: Some(caller.name.clone()),
            scope: Some(if caller.can_write { "write" } else { "read" }),
            via: Some(match caller.via {
                Via::Bearer => "bearer",
                Via::Session => "session",
            }),
            expires_at: caller.expires_at.map(rfc3339),
        }
    }
}

fn rfc3339(at: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Who is signed in: the session cookie's (or the `Authorization` header's) owner, or
/// `"authenticated": false`. A cookie that no longer works is cleared.
#[utoipa::path(get, path = "/session", tag = "session",
    security((), ("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Who is signed in, if anyone", body = SessionInfo),
        (status = 401, description = "The `Authorization` header's token is not valid",
            body = crate::error::Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"bookstore\"`"))),
        (status = 429, description = "An unknown credential from a client past the limit on failed credentials; wait `Retry-After` seconds (a valid token is never refused with this)",
            body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn current(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Result<Response> {
    let headers = &headers;
    let public_reads = state.auth.public_reads();
    let by_cookie = !headers.contains_key(AUTHORIZATION);
    let response = match state.auth.authenticate(peer, headers).await {
        Ok(caller) => Json(SessionInfo::of(caller.as_ref(), public_reads)).into_response(),
        Err(Error::Unauthorized { .. }) if by_cookie => {
            let mut response = Json(SessionInfo::of(None, public_reads)).into_response();
            let https = state.auth.https(peer, headers);
            response
                .headers_mut()
                .insert(SET_COOKIE, auth::cleared_cookie_header(https));
            response
        }
        Err(error) => return Err(error),
    };
    Ok(no_store(response))
}

/// Sign in: exchanges a token for a session cookie (`HttpOnly`, `SameSite=Strict`; over
/// HTTPS `Secure` and named `__Host-bookstore_session`) that lasts `BOOKSTORE_SESSION_TTL` (12 h by default), never longer than the
/// token. Page scripts need not keep the token afterwards. The session of a cookie sent
/// along ends: the new one replaces it.
#[utoipa::path(post, path = "/session", tag = "session",
    security(()),
    request_body(content = SignIn, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = SessionInfo,
            headers(("Set-Cookie" = String, description = "`bookstore_session=…; Path=/; Max-Age=…; HttpOnly; SameSite=Strict`; over HTTPS `__Host-bookstore_session=…; …; Secure`"))),
    ))]
pub async fn sign_in(State(state): State<AppState>, Peer(peer): Peer, request: Request) -> Result<Response> {
    let headers = request.headers().clone();
    // What needs no body is refused before the body is read. A page elsewhere must not sign
    // a browser in (as the attacker, say): a browser sends Origin with every POST; curl and
    // scripts send none.
    if headers.contains_key(ORIGIN) && !state.auth.same_origin(peer, &headers) {
        return Err(state.auth.refuse(Refusal::Forbidden(
            "signing in must be done from this site's own pages (its Origin header)".to_owned(),
        )));
    }
    // The body is read even from a client past the limit on failed credentials: a valid
    // token always signs in (an unknown one is then a 429). Reading it is bounded: 64 KiB,
    // parsed in linear time.
    let Input(SignIn { token }) = Input::from_request(request, &state).await?;
    let (id, caller) = state.auth.sign_in(peer, &headers, &token).await?;
    // The browser's previous session, if it sent one, ends: a sign-in replaces it rather
    // than leaving it alive beside the new one (whoever saw the old cookie keeps nothing).
    state.auth.sign_out(peer, &headers).await?;
    let max_age = caller.expires_at.map_or(0, |at| (at - unix_now()).max(0));
    let cookie = auth::session_cookie_header(&id, max_age, state.auth.https(peer, &headers));
    let mut response = Json(SessionInfo::of(Some(&caller), state.auth.public_reads())).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    Ok(no_store(response))
}

/// Sign out: ends the session and clears its cookie (204 whether or not there was one).
#[utoipa::path(delete, path = "/session", tag = "session",
    security(()),
    responses((status = 204, description = "Signed out; the cookie is cleared")))]
pub async fn sign_out(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Result<Response> {
    let cleared = state.auth.sign_out(peer, &headers).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(SET_COOKIE, cleared);
    Ok(no_store(response))
}
