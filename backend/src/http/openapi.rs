//! The OpenAPI 3.1 document (`/openapi.json`) and the interactive docs (`/docs`), served from
//! the binary: Swagger UI's files are embedded at build time, so the docs work offline.
//!
//! The request body schemas are written out by hand, because JSON Schema has no "trim"
//! keyword: the patterns below say "1 to 50 characters after removing surrounding whitespace"
//! with exactly the whitespace Rust's `str::trim` removes, so that a client or fuzzer that
//! trusts the schema is never surprised by the server. A test checks the patterns against the
//! domain rules.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{OpenApi, PartialSchema, ToSchema};
use utoipa_swagger_ui::Config;

use super::AppState;
use crate::domain::{Book, FieldError};
use crate::error::{Error, Problem};
use crate::http::health::{Readiness, Status};

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
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
        docs,
    ),
    components(schemas(Book, BookInput, BookPatchInput, Problem, FieldError, Status, Readiness)),
    tags(
        (name = "books", description = "The catalogue"),
        (name = "operations", description = "Health, readiness, metrics and documentation"),
    )
)]
pub struct ApiDoc;

/// Exactly the characters `char::is_whitespace` accepts (Unicode `White_Space`), as a
/// regular expression class that ECMA-262, Python and Rust regexes read alike.
const WHITESPACE: &str = r"\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// 1 to 50 characters once surrounding whitespace is removed.
pub fn text_pattern() -> String {
    let (ws, text) = (format!("[{WHITESPACE}]"), format!("[^{WHITESPACE}]"));
    format!(r"^{ws}*{text}(?:[\s\S]{{0,48}}{text})?{ws}*$")
}

/// Like [`text_pattern`], but blank is allowed too (a blank genre means no genre).
pub fn genre_pattern() -> String {
    let (ws, text) = (format!("[{WHITESPACE}]"), format!("[^{WHITESPACE}]"));
    format!(r"^{ws}*(?:{text}(?:[\s\S]{{0,48}}{text})?)?{ws}*$")
}

fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(text_pattern()))
        .description(Some(description))
}

fn year() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(-5000))
        .maximum(Some(2100))
        .description(Some(
            "Year of publication, -5000 to 2100 (negative years are BCE)",
        ))
}

fn genre() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(genre_pattern()))
        .description(Some(
            "Optional; trimmed, at most 50 characters; null or blank means no genre",
        ))
}

/// An object of the four book fields and nothing else.
fn book_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .property("title", text("Trimmed, then 1 to 50 characters"))
        .property("author", text("Trimmed, then 1 to 50 characters"))
        .property("year", year())
        .property("genre", genre())
}

/// The body of `POST /books` and `PUT /books/{id}` (documentation only: the body is checked
/// by `domain::NewBook`).
pub struct BookInput;

impl PartialSchema for BookInput {
    fn schema() -> RefOr<Schema> {
        book_object()
            .required("title")
            .required("author")
            .required("year")
            .examples([serde_json::json!({
                "title": "Dune", "author": "Frank Herbert", "year": 1965, "genre": "Science fiction"
            })])
            .into()
    }
}

impl ToSchema for BookInput {}

/// The body of `PATCH /books/{id}`: any subset of the fields (documentation only: the body
/// is checked by `domain::BookPatch`).
pub struct BookPatchInput;

impl PartialSchema for BookPatchInput {
    fn schema() -> RefOr<Schema> {
        book_object()
            .examples([serde_json::json!({"genre": null})])
            .into()
    }
}

impl ToSchema for BookPatchInput {}

/// The serialized document and the Swagger UI settings, built once at start-up.
#[derive(Clone)]
pub struct Docs {
    document: Arc<str>,
    swagger: Arc<Config<'static>>,
}

impl Docs {
    pub fn build() -> Self {
        let document = ApiDoc::openapi().to_json().unwrap_or_default().into();
        let swagger = Config::from("/openapi.json")
            .validator_url("none")
            .try_it_out_enabled(true)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Genre, Title};

    /// Strings around every edge of the rule: blank, 1 character, 49 to 51 characters, with
    /// whitespace (and look-alikes that are not whitespace) on the ends and in the middle.
    fn candidates() -> Vec<String> {
        let edges = [
            "",
            " ",
            "\t\n",
            "\u{3000}",
            "\u{85}",
            "\u{a0}\u{2028}",
            "\u{1c}",
            "\u{feff}",
            "\u{200b}",
        ];
        let mut out = Vec::new();
        for prefix in edges {
            for suffix in edges {
                for len in [0, 1, 2, 48, 49, 50, 51] {
                    for fill in ["a", "é", "📚", "a b"] {
                        let body: String = fill.chars().cycle().take(len).collect();
                        out.push(format!("{prefix}{body}{suffix}"));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_text_pattern_accepts_exactly_what_the_domain_accepts() {
        let pattern = regex::Regex::new(&text_pattern()).unwrap();
        for candidate in candidates() {
            assert_eq!(
                pattern.is_match(&candidate),
                Title::parse(&candidate).is_ok(),
                "{candidate:?} ({} chars)",
                candidate.chars().count()
            );
        }
    }

    #[test]
    fn the_genre_pattern_accepts_exactly_what_the_domain_accepts() {
        let pattern = regex::Regex::new(&genre_pattern()).unwrap();
        for candidate in candidates() {
            assert_eq!(
                pattern.is_match(&candidate),
                Genre::parse(&candidate).is_ok(),
                "{candidate:?}"
            );
        }
    }

    #[test]
    fn the_whitespace_class_is_rusts_whitespace() {
        let class = regex::Regex::new(&format!("^[{WHITESPACE}]$")).unwrap();
        for c in (0..=0x3000u32).filter_map(char::from_u32) {
            assert_eq!(
                class.is_match(&c.to_string()),
                c.is_whitespace(),
                "U+{:04X}",
                c as u32
            );
        }
    }
}
