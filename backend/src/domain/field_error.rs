//! One invalid input value, named so that a client can show the message next to the field.

use serde::Serialize;
use utoipa::ToSchema;

/// An input value that broke a rule: the field (or query parameter) and what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The body field or query parameter, e.g. `title` or `limit`.
    pub field: String,
    /// What a valid value looks like, e.g. `must be 1 to 50 characters`.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
