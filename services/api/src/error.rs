//! The one HTTP error type: maps every refusal to a status, a wire code and the API's envelope
//! `{"error": {"code", "message", "target", "details"}}` with `x-ms-error-code`, and hides the
//! internals of 5xx answers (they are logged once, here, with their cause chain).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use commands::CommandError;
use domain::{DomainError, InvalidValue, RefusalKind};
use serde::Serialize;
use utoipa::ToSchema;

/// The API's error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub details: Vec<ErrorBody>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// When to try again, sent as `Retry-After` (whole seconds).
    pub retry_after: Option<std::time::Duration>,
    /// Whether the request's changes may have been committed although it failed (a failure
    /// during or after the commit): a repeat must not simply run it again.
    pub outcome_unknown: bool,
}

/// Marks a response whose request may have been carried out although it failed (see
/// `ApiError::outcome_unknown`); the repeatability middleware keeps its reservation then.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeUnknown;

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                target: None,
                details: Vec::new(),
            },
            retry_after: None,
            outcome_unknown: false,
        }
    }

    /// Says the request's changes may have been committed although it failed.
    pub fn with_outcome_unknown(mut self) -> Self {
        self.outcome_unknown = true;
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<std::time::Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.body.target = Some(target.into());
        self
    }

    pub fn with_details(mut self, details: Vec<ErrorBody>) -> Self {
        self.body.details = details;
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{what} does not exist"),
        )
    }

    /// A value that failed to parse at JSON path `target`.
    pub fn invalid_value(error: InvalidValue, target: impl Into<String>) -> Self {
        Self::bad_request(error.kind.code(), error.reason).with_target(target)
    }

    /// A domain refusal; `prefix` places its target inside the request (such as `numbers[3]`).
    pub fn refused(error: &DomainError, prefix: Option<&str>) -> Self {
        let status = match error.kind() {
            RefusalKind::Invalid => StatusCode::BAD_REQUEST,
            RefusalKind::NotFound => StatusCode::NOT_FOUND,
            RefusalKind::Conflict => StatusCode::CONFLICT,
        };
        let target = match (prefix, error.target()) {
            (Some(prefix), Some(target)) => Some(format!("{prefix}.{target}")),
            (Some(prefix), None) => Some(prefix.to_string()),
            (None, target) => target,
        };
        ApiError {
            status,
            body: ErrorBody {
                code: error.code().to_string(),
                message: error.to_string(),
                target,
                details: Vec::new(),
            },
            retry_after: None,
            outcome_unknown: false,
        }
    }

    pub fn internal(error: &dyn std::error::Error) -> Self {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %chain, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the request could not be completed; its changes may or may not have been made: \
             read the resource, or repeat the request with the same Repeatability-Request-ID",
        )
        .with_outcome_unknown()
    }

    pub fn unavailable(error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "a service nmp depends on is unavailable; retry later",
        )
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        command_error(error, "numbers")
    }
}

/// Maps a command's failure; batch items are reported under `batch_field[index]`.
pub fn command_error(error: CommandError, batch_field: &str) -> ApiError {
    match error {
        CommandError::Refused(error) => ApiError::refused(&error, None),
        CommandError::BatchRefused(refusals) => {
            let details: Vec<ErrorBody> = refusals
                .iter()
                .map(|r| {
                    ApiError::refused(&r.error, Some(&format!("{batch_field}[{}]", r.index))).body
                })
                .collect();
            // The least specific status wins: any invalid item makes the request invalid.
            let kinds: Vec<RefusalKind> = refusals.iter().map(|r| r.error.kind()).collect();
            let status = if kinds.contains(&RefusalKind::Invalid) {
                StatusCode::BAD_REQUEST
            } else if kinds.contains(&RefusalKind::Conflict) {
                StatusCode::CONFLICT
            } else {
                StatusCode::NOT_FOUND
            };
            let first_target = details.first().and_then(|d| d.target.clone());
            let mut error = ApiError::new(
                status,
                "InvalidBatch",
                format!(
                    "{} of the request's items were refused; nothing was changed",
                    refusals.len()
                ),
            )
            .with_details(details);
            error.body.target = first_target;
            error
        }
        CommandError::PreconditionFailed => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "the resource's ETag does not match If-Match / If-None-Match",
        ),
        CommandError::Conflict => ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            "the resource was changed by another request at the same time; retry",
        ),
        CommandError::Store(store_error) => match &store_error {
            // No connection was had: nothing can have been written.
            store::StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
                ApiError::unavailable(&store_error)
            }
            // The connection broke, maybe while committing.
            store::StoreError::Database(sqlx_error) if is_unavailable(sqlx_error) => {
                ApiError::unavailable(&store_error).with_outcome_unknown()
            }
            store::StoreError::OutcomeUnknown(_) => {
                ApiError::unavailable(&store_error).with_outcome_unknown()
            }
            store::StoreError::Database(sqlx_error) if is_statement_timeout(sqlx_error) => {
                query_too_long()
            }
            _ => ApiError::internal(&store_error),
        },
    }
}

/// PostgreSQL cancelled the statement at its timeout (57014, query_canceled).
pub fn is_statement_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "57014")
}

/// A read cut at its statement timeout: the client may narrow it (a filter, a page) or retry.
pub fn query_too_long() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "QueryTimedOut",
        "the query took longer than nmp lets one run; narrow it (a filter, a smaller page) or \
         retry later",
    )
    .with_retry_after(Some(std::time::Duration::from_secs(5)))
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = HeaderValue::from_str(&self.body.code)
            .unwrap_or_else(|_| HeaderValue::from_static("Error"));
        let outcome_unknown = self.outcome_unknown;
        let mut response =
            (self.status, axum::Json(ErrorResponse { error: self.body })).into_response();
        if outcome_unknown {
            response.extensions_mut().insert(OutcomeUnknown);
        }
        response.headers_mut().insert("x-ms-error-code", code);
        if let Some(retry_after) = self.retry_after {
            // Whole seconds, rounded up so that a client never comes back too early.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
