//! Values as the store hands them out: shared, and with their JSON form made at most once,
//! however many requests a cached value answers.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use serde::Serialize;

use crate::domain::Book;

/// A book as the store hands it out.
pub type BookRef = Arc<Stored<Book>>;

pub struct Stored<T> {
    value: T,
    json: OnceLock<Bytes>,
}

impl<T: Serialize> Stored<T> {
    pub fn new(value: T) -> Self {
        Self {
            value,
            json: OnceLock::new(),
        }
    }

    /// The value serialized as JSON, made on first use.
    pub fn json(&self) -> &Bytes {
        self.json
            .get_or_init(|| serde_json::to_vec(&self.value).unwrap_or_default().into())
    }
}

impl<T> Deref for Stored<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}
