//! The `/books` resource: list, create, read, replace, patch, delete.

use axum::Router;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG, LINK, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::conditional::{IfMatch, etag, none_match_hits};
use super::input::{BookId, Input};
use crate::domain::{Book, BookPatch, ListQuery, NewBook};
use crate::error::{Problem, Result};
use crate::store::{StoredBook, not_found};

pub const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

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
#[utoipa::path(
    get,
    path = "/books",
    tag = "books",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)."),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Books to skip (default 0)."),
        ("q" = Option<String>, Query, max_length = 200, description = "Case-insensitive substring of the title or the author."),
        ("author" = Option<String>, Query, max_length = 200, description = "Case-insensitive exact author."),
        ("genre" = Option<String>, Query, max_length = 200, description = "Case-insensitive exact genre."),
        ("year_from" = Option<i64>, Query, minimum = -5000, maximum = 2100, description = "Earliest year, inclusive."),
        ("year_to" = Option<i64>, Query, minimum = -5000, maximum = 2100, description = "Latest year, inclusive."),
        ("sort" = Option<String>, Query, pattern = "^-?(id|title|author|year|created_at)$",
            description = "Sort column, `-` prefix for descending (default `id`); ties are broken by id."),
    ),
    responses(
        (status = 200, description = "A page of books", body = [Book],
            headers(
                ("X-Total-Count" = i64, description = "Books matching the filters, over all pages"),
                ("Link" = String, description = "`rel=\"next\"` and `rel=\"prev\"` page links, where they exist"),
            )),
        (status = 400, description = "A query parameter is invalid; `errors` lists each", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; safe to retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_books(State(state): State<AppState>, query: ListQuery) -> Result<Response> {
    let page = state.store.list_books(&query).await?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(X_TOTAL_COUNT, HeaderValue::from(page.total));
    if let Some(links) = page_links(&query, page.total) {
        headers.insert(LINK, links);
    }
    Ok((headers, page.json.clone()).into_response())
}

/// The `Link` header of a page: `next` while books remain after it, `prev` unless it is the
/// first page.
fn page_links(query: &ListQuery, total: i64) -> Option<HeaderValue> {
    let mut links = Vec::new();
    let next = query.offset.saturating_add(query.limit);
    if next < total {
        links.push(format!("</books?{}>; rel=\"next\"", query.query_string_at(next)));
    }
    if query.offset > 0 {
        // Past the end, `prev` is the last full page rather than another empty one.
        let prev = (query.offset - query.limit).min(total - query.limit).max(0);
        links.push(format!("</books?{}>; rel=\"prev\"", query.query_string_at(prev)));
    }
    (!links.is_empty()).then(|| HeaderValue::from_str(&links.join(", ")).ok())?
}

/// Add a book.
#[utoipa::path(
    post,
    path = "/books",
    tag = "books",
    request_body(content = super::openapi::BookInput, content_type = "application/json"),
    responses(
        (status = 201, description = "The book was created", body = Book,
            headers(
                ("Location" = String, description = "`/books/{id}` of the new book"),
                ("ETag" = String, description = "The book's version tag"),
            )),
        (status = 400, description = "The body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body breaks the rules; `errors` lists every invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; safe to retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_book(State(state): State<AppState>, Input(book): Input<NewBook>) -> Result<Response> {
    let created = state.store.create_book(book).await?;
    let location = HeaderValue::from_str(&format!("/books/{}", created.id)).ok();
    let mut response = book_response(StatusCode::CREATED, &created);
    if let Some(location) = location {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
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
        (status = 400, description = "The id is not a positive integer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "There is no such book", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; safe to retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_book(
    State(state): State<AppState>,
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
/// Send `If-Match` with the book's `ETag` to change it only if nobody else has since:
/// a stale tag gives 412.
#[utoipa::path(
    put,
    path = "/books/{id}",
    tag = "books",
    params(("id" = i64, Path, minimum = 1, description = "The book's id")),
    request_body(content = super::openapi::BookInput, content_type = "application/json"),
    responses(
        (status = 200, description = "The replaced book", body = Book,
            headers(("ETag" = String, description = "The book's new version tag"))),
        (status = 400, description = "The id is not a positive integer, or the body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "There is no such book", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` does not match the book's current `ETag`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body breaks the rules; `errors` lists every invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; safe to retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn replace_book(
    State(state): State<AppState>,
    BookId(id): BookId,
    if_match: IfMatch,
    Input(book): Input<NewBook>,
) -> Result<Response> {
    let expected = if_match.expected_versions(id);
    let replaced = state
        .store
        .update_book(id, expected, Box::new(|_| Ok(book)))
        .await?;
    Ok(book_response(StatusCode::OK, &replaced))
}

/// Change some fields of a book (JSON merge patch: `"genre": null` clears the genre).
///
/// `If-Match` works as for `PUT`.
#[utoipa::path(
    patch,
    path = "/books/{id}",
    tag = "books",
    params(("id" = i64, Path, minimum = 1, description = "The book's id")),
    request_body(content(
        (super::openapi::BookPatchInput = "application/merge-patch+json"),
        (super::openapi::BookPatchInput = "application/json"),
    )),
    responses(
        (status = 200, description = "The updated book", body = Book,
            headers(("ETag" = String, description = "The book's new version tag"))),
        (status = 400, description = "The id is not a positive integer, or the body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "There is no such book", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` does not match the book's current `ETag`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The patch breaks the rules; `errors` lists every invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; safe to retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_book(
    State(state): State<AppState>,
    BookId(id): BookId,
    if_match: IfMatch,
    Input(patch): Input<BookPatch>,
) -> Result<Response> {
    let expected = if_match.expected_versions(id);
    let patched = state
        .store
        .update_book(id, expected, Box::new(|current| patch.apply_to(current)))
        .await?;
    Ok(book_response(StatusCode::OK, &patched))
}

/// Delete a book. `If-Match` works as for `PUT`.
#[utoipa::path(
    delete,
    path = "/books/{id}",
    tag = "books",
    params(("id" = i64, Path, minimum = 1, description = "The book's id")),
    responses(
        (status = 204, description = "The book was deleted"),
        (status = 400, description = "The id is not a positive integer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "There is no such book", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` does not match the book's current `ETag`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; safe to retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_book(
    State(state): State<AppState>,
    BookId(id): BookId,
    if_match: IfMatch,
) -> Result<StatusCode> {
    let expected = if_match.expected_versions(id);
    state.store.delete_book(id, expected).await?;
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

    fn links(limit: i64, offset: i64, total: i64) -> String {
        let query = ListQuery {
            limit,
            offset,
            ..ListQuery::default()
        };
        page_links(&query, total)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn a_single_page_has_no_links() {
        assert_eq!(links(10, 0, 10), "");
        assert_eq!(links(10, 0, 0), "");
    }

    #[test]
    fn the_first_page_links_only_to_the_next() {
        assert_eq!(links(10, 0, 25), "</books?limit=10&offset=10>; rel=\"next\"");
    }

    #[test]
    fn a_middle_page_links_both_ways() {
        assert_eq!(
            links(10, 10, 25),
            "</books?limit=10&offset=20>; rel=\"next\", </books?limit=10&offset=0>; rel=\"prev\""
        );
    }

    #[test]
    fn prev_from_past_the_end_is_the_last_full_page() {
        assert_eq!(links(10, 100, 25), "</books?limit=10&offset=15>; rel=\"prev\"");
        assert_eq!(
            links(10, 5, 25),
            "</books?limit=10&offset=15>; rel=\"next\", </books?limit=10&offset=0>; rel=\"prev\""
        );
    }
}
