//! The bookstore's rules, free of HTTP and SQL.
//!
//! Everything a handler receives from here has already been checked: a [`Title`] can only
//! hold a valid title, a [`ListQuery`] only a valid listing request. The browser UI mirrors
//! these rules in `frontend/js/validate.js`.

mod book;
mod field_error;
mod idempotency;
mod json;
mod list_query;
mod precondition;

pub use book::{
    Author, Book, BookPatch, DEFAULT_IGNORABLE, Edit, Genre, NewBook, Timestamp, Title, Year, is_invisible,
};
pub use field_error::FieldError;
pub use idempotency::IdempotencyKey;
pub use json::{JsonObject, NotAnObject};
pub use list_query::{Cursor, ListQuery, MAX_OFFSET, SortKey, SortValue, TextMatch, fold_case};
pub use precondition::{Precondition, Tags, tag_of};
