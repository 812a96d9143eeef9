//! The OpenAPI 3.1 document (`/openapi.json`) and the interactive docs (`/docs`), served from
//! the binary: Swagger UI's files are embedded at build time, so the docs work offline. The
//! book bodies' schemas are in `schemas.rs`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;

use super::AppState;
use super::schemas::{BookInput, BookPatchInput};
use crate::domain::{Book, FieldError};
use crate::error::{Error, PROBLEM_JSON, Problem};
use crate::http::health::{Readiness, Status};
use crate::http::session::{SessionInfo, SignIn};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bookstore API",
        description = "A small bookstore REST API. Errors are RFC 9457 problem documents \
            (`application/problem+json`); every invalid field is listed in `errors`. \
            Books carry an `ETag`: send it in `If-Match` on `PUT`, `PATCH` and `DELETE` to \
            change only the version you have seen (a stale tag gives 412), or in \
            `If-None-Match` on `GET` to get 304 when nothing changed. Every path answers \
            405, with an `Allow` header, to methods it does not support.",
    ),
    paths(
        super::books::list_books,
        super::books::create_book,
        super::books::get_book,
        super::books::replace_book,
        super::books::patch_book,
        super::books::delete_book,
        super::session::current,
        super::session::sign_in,
        super::session::sign_out,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
        docs,
    ),
    components(schemas(Book, BookInput, BookPatchInput, Problem, FieldError, Status, Readiness, SignIn, SessionInfo)),
    tags(
        (name = "books", description = "The catalogue. Changes need a credential: an API token \
            (`Authorization: Bearer bks_…`; press *Authorize* to send one from this page) or a \
            signed-in browser session."),
        (name = "session", description = "Signing the browser UI in and out"),
        (name = "operations", description = "Health, readiness, metrics and documentation"),
    ),
)]
pub struct ApiDoc;

/// Adds what the operations share, each from one table: the problem answers ([`problems`]),
/// so that each handler's attribute lists only what succeeds and a rule such as "a 503 with
/// `Retry-After` is safe to retry" is written once; and the credentials each takes
/// ([`security`]), with their schemes. Applied when the server starts, because whether
/// reading needs a credential is a setting.
struct Shared {
    public_reads: bool,
}

impl Modify for Shared {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("bks_ token")
                    .description(Some(
                        "An API token (`bookstore token create --name NAME` prints one) or the operator \
                         token, sent as `Authorization: Bearer <token>`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The browser session `POST /session` sets (over HTTPS named \
                 `__Host-bookstore_session`). Changes made with it must come from this site's own \
                 pages (`Origin`).",
            ))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (Method::Get, item.get.as_mut()),
                (Method::Post, item.post.as_mut()),
                (Method::Put, item.put.as_mut()),
                (Method::Patch, item.patch.as_mut()),
                (Method::Delete, item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let guarded = needs_credential(path, method, self.public_reads);
                let mut answers = problems(path, method);
                if guarded {
                    answers.extend(credential_problems(method));
                }
                for (status, description) in answers {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| problem(status, description));
                }
                if path.starts_with("/books") {
                    let mut accepted = vec![
                        SecurityRequirement::new(BEARER, Vec::<String>::new()),
                        SecurityRequirement::new(SESSION, Vec::<String>::new()),
                    ];
                    if !guarded {
                        // Optional: anyone may, and a credential changes nothing.
                        accepted.insert(0, SecurityRequirement::default());
                    }
                    operation.security = Some(accepted);
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// The names of the security schemes.
const BEARER: &str = "bearer";
const SESSION: &str = "session";

/// Whether an operation refuses requests without a credential: every change of the
/// catalogue, and reading it unless reads are public.
fn needs_credential(path: &str, method: Method, public_reads: bool) -> bool {
    path.starts_with("/books") && (method != Method::Get || !public_reads)
}

/// The refusals of an operation that needs a credential.
fn credential_problems(method: Method) -> Vec<(u16, &'static str)> {
    let forbidden = if method == Method::Get {
        None
    } else {
        Some((
            403,
            "The credential may not change the catalogue (a read-only token), or a session cookie was \
             sent from another site's page (`Origin`)",
        ))
    };
    [
        Some((
            401,
            "No credential, or one that is unknown, expired or revoked (see `WWW-Authenticate`)",
        )),
        forbidden,
        Some((429, LIMITED)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

const LIMITED: &str = "An unknown credential, from a client (or from all clients together) past the limit on \
                       failed credentials; retry after `Retry-After` seconds. A valid credential is never refused \
                       with this";

const UNAVAILABLE_READ: &str = "The database is unavailable; safe to retry after `Retry-After` seconds";
const UNAVAILABLE_WRITE: &str = "The database is unavailable. With `Retry-After`, nothing was written and the \
    request is safe to retry; without it, the change may or may not have been saved (read before retrying, or \
    retry a POST with the same `Idempotency-Key`)";
const BAD_ID: &str = "The id is not a positive integer";
const NOT_FOUND: &str = "There is no such book";
const STALE: &str = "`If-Match` does not match the book's current `ETag` (or `If-None-Match` does)";
const TOO_LARGE: &str = "The body is larger than 64 KiB";
const NOT_JSON: &str = "The body is not sent as JSON (`Content-Type`)";
const INVALID: &str = "The body breaks the rules; `errors` lists every invalid field";

/// The problems an operation can answer with, and what each means there.
fn problems(path: &str, method: Method) -> Vec<(u16, &'static str)> {
    match (path, method) {
        ("/books", Method::Get) => vec![
            (400, "A query parameter is invalid; `errors` lists each"),
            (503, UNAVAILABLE_READ),
        ],
        ("/books", Method::Post) => vec![
            (
                400,
                "The body is not valid JSON, or the `Idempotency-Key` header is not a valid key",
            ),
            (409, "A request with this `Idempotency-Key` is still in progress"),
            (413, TOO_LARGE),
            (415, NOT_JSON),
            (
                422,
                "The body breaks the rules (`errors` lists every invalid field), or its \
                `Idempotency-Key` was already used with a different body",
            ),
            (503, UNAVAILABLE_WRITE),
        ],
        ("/books/{id}", Method::Get) => vec![(400, BAD_ID), (404, NOT_FOUND), (503, UNAVAILABLE_READ)],
        ("/books/{id}", Method::Put | Method::Patch) => vec![
            (
                400,
                "The id is not a positive integer, or the body is not valid JSON",
            ),
            (404, NOT_FOUND),
            (412, STALE),
            (413, TOO_LARGE),
            (415, NOT_JSON),
            (422, INVALID),
            (503, UNAVAILABLE_WRITE),
        ],
        ("/books/{id}", Method::Delete) => vec![
            (400, BAD_ID),
            (404, NOT_FOUND),
            (412, STALE),
            (503, UNAVAILABLE_WRITE),
        ],
        ("/session", Method::Get) => vec![(503, UNAVAILABLE_READ)],
        ("/session", Method::Post) => vec![
            (400, "The body is not valid JSON"),
            (401, "The token is not valid (unknown, expired or revoked)"),
            (403, "Sent from another site's page (`Origin`)"),
            (413, TOO_LARGE),
            (415, NOT_JSON),
            (422, "The body is not `{\"token\": \"…\"}`"),
            (429, LIMITED),
            (503, UNAVAILABLE_READ),
        ],
        ("/session", Method::Delete) => vec![(503, UNAVAILABLE_READ)],
        _ => Vec::new(),
    }
}

/// A problem+json answer, with the headers its status carries.
fn problem(status: u16, description: &str) -> RefOr<utoipa::openapi::Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem")))),
    );
    let header = |description: &str| {
        utoipa::openapi::HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some(description))
            .build()
    };
    match status {
        401 => {
            response = response.header(
                "WWW-Authenticate",
                header(
                    "`Bearer realm=\"bookstore\"`, with `error=\"invalid_token\"` when a credential was sent",
                ),
            );
        }
        429 => response = response.header("Retry-After", header("Seconds to wait")),
        _ => {}
    }
    response.build().into()
}

/// The serialized document and the Swagger UI settings, built once at start-up.
#[derive(Clone)]
pub struct Docs {
    document: Arc<str>,
    swagger: Arc<Config<'static>>,
}

impl Docs {
    /// The document for a server whose reads are public, or not.
    pub fn build(public_reads: bool) -> Self {
        let mut openapi = ApiDoc::openapi();
        Shared { public_reads }.modify(&mut openapi);
        let document = openapi
            .to_json()
            .expect("the OpenAPI document is plain data and always serializes")
            .into();
        let swagger = Config::from("/openapi.json")
            .validator_url("none")
            .try_it_out_enabled(true)
            .persist_authorization(false)
            .display_request_duration(true);
        Self {
            document,
            swagger: Arc::new(swagger),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
        .route("/docs/", get(docs))
        .route("/docs/{*file}", get(docs_file))
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        state.docs.document.to_string(),
    )
        .into_response()
}

/// Interactive API documentation (Swagger UI), with no external resources.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "The Swagger UI page", content_type = "text/html")))]
pub async fn docs(State(state): State<AppState>) -> Result<Response, Error> {
    let page = swagger_file(&state.docs, "index.html")?
        .ok_or_else(|| Error::Internal("Swagger UI has no index.html".into()))?;
    // Swagger UI's page loads its files relative to itself, which from `/docs` (no slash)
    // would be the site root: a <base> makes `/docs` itself work, not just `/docs/`.
    let html =
        String::from_utf8_lossy(&page.bytes).replacen("<head>", "<head>\n    <base href=\"/docs/\">", 1);
    Ok(([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

/// Swagger UI's scripts, styles and images.
async fn docs_file(State(state): State<AppState>, Path(file): Path<String>) -> Result<Response, Error> {
    let file = swagger_file(&state.docs, &file)?
        .ok_or_else(|| Error::NotFound("no such documentation file".into()))?;
    let mut response = ([(CONTENT_TYPE, file.content_type)], file.bytes.into_owned()).into_response();
    if file.gzpipped {
        response
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

fn swagger_file(docs: &Docs, file: &str) -> Result<Option<utoipa_swagger_ui::SwaggerFile<'static>>, Error> {
    utoipa_swagger_ui::serve(file, docs.swagger.clone()).map_err(|e| Error::Internal(e.to_string().into()))
}
