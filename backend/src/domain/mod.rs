//! The bookstore's rules, free of HTTP and SQL.
//!
//! Everything a handler receives from here has already been checked: a [`Title`] can only
//! hold a valid title, a [`ListQuery`] only a valid listing request. The browser UI mirrors
//! these rules in `frontend/js/validate.js`.

mod book;
mod field_error;
mod list_query;

pub use book::{Author, Book, BookPatch, Genre, NewBook, Title, Year};
pub use field_error::FieldError;
pub use list_query::{ListQuery, SortKey, fold_case};
