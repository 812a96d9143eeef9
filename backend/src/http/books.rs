//! The `/books` resource: list, create, read, replace, patch, delete.
//!
//! The problem answers each operation can give (400, 404, 412, 503...) are added to the
//! OpenAPI document in one place, `openapi.rs`; the attributes here say what succeeds.

use axum::Router;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG, LINK, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::conditional::{etag, none_match_hits};
use super::input::{BookId, Input, Reader, Writer};
use crate::deadline::Deadline;
use crate::domain::{
    Book, BookPatch, Edit, FieldError, IdempotencyKey, ListQuery, MAX_OFFSET, NewBook, Precondition,
};
use crate::error::{Error, Result};
use crate::store::{Page, StoredBook, check, not_found};

pub const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");
pub const X_TOTAL_COUNT_RELATION: HeaderName = HeaderName::from_static("x-total-count-relation");
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/books", get(list_books).post(create_book))
        // The contract makes `/books/` an alias of `/books`.
        .route("/books/", get(list_books).post(create_book))
        .route(
            "/books/{id}",
            get(get_book)
                .put(replace_book)
                .patch(patch_book)
                .delete(delete_book),
        )
}

/// List books, filtered, sorted and paginated.
///
/// Every listing is answered from the database's indexes, at a cost set by the page rather
/// than by the catalogue. `X-Total-Count` is exact, except for a `q` that matches more than
/// 10,000 books: then it is 10,000 and `X-Total-Count-Relation` says `gte`.
///
/// The `Link` header's `next` carries a `cursor`: where the last book of this page stands in
/// the listing. The page it names starts just after that book, at the cost of a first page
/// however deep it is, and without repeating or skipping books when others are added or
/// removed before it. Send it with the same filters and `sort`, and without `offset`; a
/// cursor that is malformed or made for another sort is a 400. `offset` reaches the first
/// 10,000 books (what a UI's page numbers need); past that, follow the cursor. (Described
/// here rather than as a formal parameter: a cursor is only valid with the listing it came
/// from, which no schema can say.)
#[utoipa::path(
    get,
    path = "/books",
    tag = "books",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)."),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 10000,
            description = "Books to skip (default 0), at most 10,000: deeper pages are reached by the `next` link's cursor."),
        ("q" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
            description = "Case-insensitive search of the title and the author: from three characters on, a substring \
                anywhere in them; one or two characters match the start of the title or the author (what can be \
                found without reading every book). No control characters."),
        ("author" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
            description = "Case-insensitive exact author. No control characters."),
        ("genre" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
            description = "Case-insensitive exact genre. No control characters."),
        ("year_from" = Option<i64>, Query, minimum = -5000, maximum = 2100, description = "Earliest year, inclusive."),
        ("year_to" = Option<i64>, Query, minimum = -5000, maximum = 2100, description = "Latest year, inclusive."),
        ("sort" = Option<String>, Query, pattern = "^-?(id|title|author|year|created_at)$",
            description = "Sort column, `-` prefix for descending (default `id`); ties are broken by id."),
    ),
    responses(
        (status = 200, description = "A page of books", body = [Book],
            headers(
                ("X-Total-Count" = i64, description = "Books matching the filters, over all pages; for a `q` that \
                    matches more than 10,000 books, 10,000"),
                ("X-Total-Count-Relation" = String, description = "`gte` when `X-Total-Count` stopped at 10,000 \
                    (the listing matches at least that many); absent when it is exact"),
                ("Link" = String, description = "`rel=\"next\"` (a keyset link: its `cursor` is this page's last \
                    book) and `rel=\"prev\"` (by offset) page links, where they exist"),
            )),
    )
)]
pub async fn list_books(State(state): State<AppState>, _: Reader, query: ListQuery) -> Result<Response> {
    let page = state.store.list_books(&query).await?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(X_TOTAL_COUNT, HeaderValue::from(page.total.count));
    if page.total.at_least {
        headers.insert(X_TOTAL_COUNT_RELATION, HeaderValue::from_static("gte"));
    }
    if let Some(links) = page_links(&query, &page) {
        headers.insert(LINK, links);
    }
    Ok((headers, page.json).into_response())
}

/// The `Link` header of a page. `next`, while books remain after the page, is a keyset link
/// (the `cursor` of the page's last book): it costs what a first page costs however deep it
/// is, and keeps its place when books are added or removed before it. `prev`, on an offset
/// page past the first, is the page before it by offset.
fn page_links(query: &ListQuery, page: &Page) -> Option<HeaderValue> {
    let mut links = Vec::new();
    let full = page.len as i64 == query.limit;
    let more = match query.cursor {
        // Past a cursor, or past a count that stopped early, only a full page says more may follow.
        Some(_) => full,
        None if page.total.at_least => full,
        None => query.offset.saturating_add(query.limit) < page.total.count,
    };
    match &page.last {
        Some(last) if more => links.push(format!(
            "</books?{}>; rel=\"next\"",
            query.query_string_after(last)
        )),
        // An empty page before the end (books removed meanwhile): continue by offset.
        None if more && query.offset + query.limit <= MAX_OFFSET => links.push(format!(
            "</books?{}>; rel=\"next\"",
            query.query_string_at(query.offset + query.limit)
        )),
        _ => {}
    }
    if query.cursor.is_none() && query.offset > 0 {
        // Past the end, `prev` is the last full page rather than another empty one.
        let prev = (query.offset - query.limit)
            .min(page.total.count - query.limit)
            .max(0);
        links.push(format!("</books?{}>; rel=\"prev\"", query.query_string_at(prev)));
    }
    (!links.is_empty()).then(|| HeaderValue::from_str(&links.join(", ")).ok())?
}

/// Add a book.
///
/// Send an `Idempotency-Key` header (any string of 1 to 255 printable ASCII characters, new
/// for each book) to make retrying safe: the same key with the same body within 24 hours
/// gets the original answer (status, body, `Location`, `ETag`) instead of a second book; the
/// key with another body is a 422, and a retry while the first request still runs a 409.
/// (Described here rather than as a formal parameter: a key's meaning depends on what was
/// sent with it before, which no schema can say, and fuzzers would reuse keys at random.)
#[utoipa::path(
    post,
    path = "/books",
    tag = "books",
    request_body(content = super::schemas::BookInput, content_type = "application/json"),
    responses(
        (status = 201, description = "The book was created (or, for a retried `Idempotency-Key`, had been)", body = Book,
            headers(
                ("Location" = String, description = "`/books/{id}` of the new book"),
                ("ETag" = String, description = "The book's version tag"),
            )),
    )
)]
pub async fn create_book(
    State(state): State<AppState>,
    Writer(caller): Writer,
    deadline: Deadline,
    headers: HeaderMap,
    Input(book): Input<NewBook>,
) -> Result<Response> {
    let key = idempotency_key(&headers, &caller.scope())?;
    let created = state.store.create_book(book, key, &deadline).await?;
    let location = HeaderValue::from_str(&format!("/books/{}", created.book.id))
        .expect("a path of digits is a valid header value");
    let mut response = book_response(StatusCode::CREATED, &created.book);
    response.headers_mut().insert(LOCATION, location);
    Ok(response)
}

/// The request's `Idempotency-Key`, if it sent one; a 400 if it is not a valid key.
fn idempotency_key(headers: &HeaderMap, scope: &str) -> Result<Option<IdempotencyKey>> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key(IDEMPOTENCY_KEY) {
            true => Err(bad_key("must be sent once")),
            false => Ok(None),
        };
    };
    IdempotencyKey::parse(scope, value.as_bytes())
        .map(Some)
        .map_err(bad_key)
}

fn bad_key(rule: &str) -> Error {
    Error::BadRequest {
        detail: "the Idempotency-Key header is not valid".to_owned(),
        errors: vec![FieldError::new("Idempotency-Key", rule)],
    }
}

/// Get one book.
#[utoipa::path(
    get,
    path = "/books/{id}",
    tag = "books",
    params(
        ("id" = i64, Path, minimum = 1, description = "The book's id"),
        ("If-None-Match" = Option<String>, Header, description = "A tag from an earlier `ETag`: answered with 304 if the book has not changed"),
    ),
    responses(
        (status = 200, description = "The book", body = Book,
            headers(("ETag" = String, description = "The book's version tag; send it back in `If-Match` or `If-None-Match`"))),
        (status = 304, description = "The book has not changed since the tag in `If-None-Match`",
            headers(("ETag" = String, description = "The book's version tag"))),
    )
)]
pub async fn get_book(
    State(state): State<AppState>,
    _: Reader,
    BookId(id): BookId,
    headers: HeaderMap,
) -> Result<Response> {
    let book = state.store.get_book(id).await?.ok_or_else(|| not_found(id))?;
    if none_match_hits(&headers, &book) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag(&book))]).into_response());
    }
    Ok(book_response(StatusCode::OK, &book))
}

/// Replace a book (all fields, as for creating one).
///
/// Send `If-Match` with the book's `ETag` to change it only if nobody else has since: a
/// stale tag gives 412 (checked before the body, as RFC 9110 orders it). A body equal to the
/// book changes nothing, not even its version.
#[utoipa::path(
    put,
    path = "/books/{id}",
    tag = "books",
    params(("id" = i64, Path, minimum = 1, description = "The book's id")),
    request_body(content = super::schemas::BookInput, content_type = "application/json"),
    responses(
        (status = 200, description = "The replaced book", body = Book,
            headers(("ETag" = String, description = "The book's new version tag"))),
    )
)]
pub async fn replace_book(
    State(state): State<AppState>,
    _: Writer,
    BookId(id): BookId,
    precondition: Precondition,
    deadline: Deadline,
    body: Result<Input<NewBook>, Error>,
) -> Result<Response> {
    let edit = body_or_refusal(&state, id, &precondition, body)
        .await
        .map(Edit::Replace)?;
    let replaced = state.store.update_book(id, precondition, edit, &deadline).await?;
    Ok(book_response(StatusCode::OK, &replaced))
}

/// Change some fields of a book (JSON merge patch: `"genre": null` clears the genre).
///
/// `If-Match` works as for `PUT`; a patch that changes nothing keeps the version.
#[utoipa::path(
    patch,
    path = "/books/{id}",
    tag = "books",
    params(("id" = i64, Path, minimum = 1, description = "The book's id")),
    request_body(content(
        (super::schemas::BookPatchInput = "application/merge-patch+json"),
        (super::schemas::BookPatchInput = "application/json"),
    )),
    responses(
        (status = 200, description = "The updated book", body = Book,
            headers(("ETag" = String, description = "The book's new version tag"))),
    )
)]
pub async fn patch_book(
    State(state): State<AppState>,
    _: Writer,
    BookId(id): BookId,
    precondition: Precondition,
    deadline: Deadline,
    body: Result<Input<BookPatch>, Error>,
) -> Result<Response> {
    let edit = body_or_refusal(&state, id, &precondition, body)
        .await
        .map(Edit::Patch)?;
    let patched = state.store.update_book(id, precondition, edit, &deadline).await?;
    Ok(book_response(StatusCode::OK, &patched))
}

/// The body of a change, or, if it is unusable, the answer RFC 9110 gives first: 404 for a
/// missing book and 412 for a failed condition come before any complaint about the body.
async fn body_or_refusal<T>(
    state: &AppState,
    id: i64,
    precondition: &Precondition,
    body: Result<Input<T>, Error>,
) -> Result<T> {
    match body {
        Ok(Input(body)) => Ok(body),
        Err(body_error) => {
            check(state.store.as_ref(), id, precondition).await?;
            Err(body_error)
        }
    }
}

/// Delete a book. `If-Match` works as for `PUT`.
#[utoipa::path(
    delete,
    path = "/books/{id}",
    tag = "books",
    params(("id" = i64, Path, minimum = 1, description = "The book's id")),
    responses((status = 204, description = "The book was deleted"))
)]
pub async fn delete_book(
    State(state): State<AppState>,
    _: Writer,
    BookId(id): BookId,
    precondition: Precondition,
    deadline: Deadline,
) -> Result<StatusCode> {
    state.store.delete_book(id, precondition, &deadline).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn book_response(status: StatusCode, book: &StoredBook) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (ETAG, etag(book)),
    ];
    (status, headers, book.json()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Cursor, SortValue};
    use crate::store::Total;

    /// The links of a page of `len` books, the last of them book `len + offset`, by id.
    fn links(limit: i64, offset: i64, total: i64) -> String {
        let len = (total - offset).clamp(0, limit);
        let query = ListQuery {
            limit,
            offset,
            ..ListQuery::default()
        };
        links_of(&query, len, total)
    }

    fn links_of(query: &ListQuery, len: i64, total: i64) -> String {
        let page = Page {
            json: Default::default(),
            total: Total::exact(total),
            len: len as usize,
            last: (len > 0).then(|| Cursor {
                id: query.offset + len,
                value: SortValue::Id,
            }),
        };
        page_links(query, &page)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// The `next` link of a page of ten by id whose last book is `id`.
    fn next(id: i64) -> String {
        use base64::Engine as _;
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("id\n{id}\n"));
        format!("</books?limit=10&cursor={cursor}>; rel=\"next\"")
    }

    #[test]
    fn a_count_that_stopped_early_links_on_while_pages_are_full() {
        let query = ListQuery {
            limit: 10,
            q: Some("the".into()),
            ..ListQuery::default()
        };
        let page = |len: i64| Page {
            json: Default::default(),
            total: Total::at_least(10_000),
            len: len as usize,
            last: (len > 0).then_some(Cursor {
                id: len,
                value: SortValue::Id,
            }),
        };
        let link = |len| {
            page_links(&query, &page(len))
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert!(link(10).contains("rel=\"next\""));
        assert_eq!(link(3), "");
    }

    #[test]
    fn a_single_page_has_no_links() {
        assert_eq!(links(10, 0, 10), "");
        assert_eq!(links(10, 0, 0), "");
    }

    #[test]
    fn the_first_page_links_only_to_the_next_by_cursor() {
        assert_eq!(links(10, 0, 25), next(10));
    }

    #[test]
    fn a_middle_page_links_both_ways() {
        assert_eq!(
            links(10, 10, 25),
            format!("{}, </books?limit=10&offset=0>; rel=\"prev\"", next(20))
        );
    }

    #[test]
    fn prev_from_past_the_end_is_the_last_full_page() {
        assert_eq!(links(10, 100, 25), "</books?limit=10&offset=15>; rel=\"prev\"");
        assert_eq!(
            links(10, 5, 25),
            format!("{}, </books?limit=10&offset=0>; rel=\"prev\"", next(15))
        );
    }

    #[test]
    fn a_cursor_page_links_on_while_it_is_full_and_never_back() {
        let query = ListQuery {
            limit: 10,
            cursor: Some(Cursor {
                id: 40,
                value: SortValue::Id,
            }),
            ..ListQuery::default()
        };
        assert_eq!(links_of(&query, 10, 25), next(10));
        assert_eq!(links_of(&query, 3, 25), "");
    }

    #[test]
    fn an_empty_page_before_the_end_continues_by_offset() {
        let query = ListQuery {
            limit: 10,
            ..ListQuery::default()
        };
        assert_eq!(
            links_of(&query, 0, 25),
            "</books?limit=10&offset=10>; rel=\"next\""
        );
    }
}
