//! The envelopes of the backend HTTP API, shared by [`crate::client::HttpBackend`] and the
//! simulator so that both ends agree on them: a list answer, a body of numbers, an error body.

use serde::{Deserialize, Serialize};

/// A list answer: `{"value": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List<T> {
    pub value: Vec<T>,
}

/// A request naming numbers: `{"numbers": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Numbers<T> {
    pub numbers: Vec<T>,
}

/// The body of every refusal: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
