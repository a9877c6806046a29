//! The REST adapter's answers: the one HTTP error type, which maps the application layer's
//! errors (`commands::AppError`, by `ErrorKind`) to a status, and every error to the API's
//! envelope `{"error": {"code", "message", "target", "details"}}` with `x-ms-error-code` and
//! `Retry-After`; and `respond`, which maps an operation's `Outcome` to a status, body and
//! `ETag`. The internals of 5xx answers are hidden (logged once, with their cause chain).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use commands::{AppError, CommandError, ErrorDetail, ErrorKind, Outcome, OutcomeKind};
use domain::{DomainError, InvalidValue};
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
        AppError::not_found(what).into()
    }

    /// A value that failed to parse at JSON path `target`.
    pub fn invalid_value(error: InvalidValue, target: impl Into<String>) -> Self {
        AppError::invalid_value(error, target).into()
    }

    /// A domain refusal; `prefix` places its target inside the request (such as `numbers[3]`).
    pub fn refused(error: &DomainError, prefix: Option<&str>) -> Self {
        AppError::refused(error, prefix).into()
    }

    pub fn internal(error: &dyn std::error::Error) -> Self {
        AppError::internal(error).into()
    }

    pub fn unavailable(error: &dyn std::error::Error) -> Self {
        AppError::unavailable(error).into()
    }
}

/// The HTTP status of each kind of application error: the one place the REST API maps them.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::BackendRefused => StatusCode::BAD_GATEWAY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The HTTP status of each way an operation can succeed.
pub fn success_status(kind: OutcomeKind) -> StatusCode {
    match kind {
        OutcomeKind::Done => StatusCode::OK,
        OutcomeKind::Created => StatusCode::CREATED,
        OutcomeKind::Removed => StatusCode::NO_CONTENT,
    }
}

impl From<ErrorDetail> for ErrorBody {
    fn from(detail: ErrorDetail) -> Self {
        ErrorBody {
            code: detail.code,
            message: detail.message,
            target: detail.target,
            details: detail.details.into_iter().map(ErrorBody::from).collect(),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        ApiError {
            status: status_of(error.kind),
            body: error.body.into(),
            retry_after: error.retry_after,
            outcome_unknown: error.outcome_unknown,
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        AppError::from(error).into()
    }
}

/// Maps a command's failure; batch items are reported under `batch_field[index]`.
pub fn command_error(error: CommandError, batch_field: &str) -> ApiError {
    AppError::from_command(error, batch_field).into()
}

pub use commands::application::is_statement_timeout;

/// A read cut at its statement timeout: the client may narrow it (a filter, a page) or retry.
pub fn query_too_long() -> ApiError {
    AppError::query_too_long().into()
}

/// An operation's outcome as an HTTP response: its status, the JSON body and the `ETag`.
pub fn respond(outcome: Outcome) -> Response {
    let etag = outcome.etag();
    let status = success_status(outcome.kind);
    let mut response = match outcome.body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response
            .headers_mut()
            .insert(axum::http::header::ETAG, value);
    }
    response
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

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{AccountName, E164};

    /// Every kind of application error, as the REST API answers it: status, code, envelope.
    #[tokio::test]
    async fn every_error_kind_has_its_status_and_keeps_its_code() {
        let expected = [
            (ErrorKind::Invalid, 400),
            (ErrorKind::Unauthenticated, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
            (ErrorKind::PreconditionFailed, 412),
            (ErrorKind::TooLarge, 413),
            (ErrorKind::Internal, 500),
            (ErrorKind::BackendRefused, 502),
            (ErrorKind::Unavailable, 503),
        ];
        assert_eq!(
            expected.iter().map(|(kind, _)| *kind).collect::<Vec<_>>(),
            ErrorKind::ALL,
            "a new kind needs its status here"
        );
        for (kind, status) in expected {
            let code = format!("Some{kind:?}Code");
            let error = AppError::new(kind, &code, "why").with_target("where");
            let response = ApiError::from(error).into_response();
            assert_eq!(response.status().as_u16(), status, "{kind:?}");
            assert_eq!(response.headers()["x-ms-error-code"], code.as_str());
            let body = axum::body::to_bytes(response.into_body(), 10_000)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({"error": {"code": code, "message": "why", "target": "where"}}),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn the_application_layers_errors_keep_their_wire_codes() {
        let cases: [(AppError, StatusCode, &str); 6] = [
            (
                AppError::invalid_value(
                    E164::parse("12").unwrap_err(),
                    "numbers[0].telephoneNumber",
                ),
                StatusCode::BAD_REQUEST,
                "InvalidTelephoneNumber",
            ),
            (
                AppError::refused(
                    &DomainError::AccountNotFound(AccountName::parse("a").unwrap()),
                    None,
                ),
                StatusCode::NOT_FOUND,
                "AccountNotFound",
            ),
            (
                AppError::from(CommandError::PreconditionFailed),
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
            ),
            (
                AppError::from(CommandError::Conflict),
                StatusCode::CONFLICT,
                "Conflict",
            ),
            (
                AppError::query_too_long(),
                StatusCode::SERVICE_UNAVAILABLE,
                "QueryTimedOut",
            ),
            (
                AppError::internal(&std::io::Error::other("disk")),
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
            ),
        ];
        for (error, status, code) in cases {
            let error = ApiError::from(error);
            assert_eq!((error.status, error.body.code.as_str()), (status, code));
        }
    }

    #[test]
    fn retry_after_and_an_unknown_outcome_reach_the_response() {
        let response = ApiError::from(AppError::query_too_long()).into_response();
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "5");
        assert!(response.extensions().get::<OutcomeUnknown>().is_none());
        let response =
            ApiError::from(AppError::internal(&std::io::Error::other("x"))).into_response();
        assert!(response.extensions().get::<OutcomeUnknown>().is_some());
    }

    #[tokio::test]
    async fn every_outcome_kind_has_its_status() {
        let created = respond(Outcome::resource(
            OutcomeKind::Created,
            3,
            serde_json::json!({"a": 1}),
        ));
        assert_eq!(created.status(), StatusCode::CREATED);
        assert_eq!(created.headers()[axum::http::header::ETAG], etag_of(3));
        let done = respond(Outcome::answer(serde_json::json!([])));
        assert_eq!(done.status(), StatusCode::OK);
        assert!(done.headers().get(axum::http::header::ETAG).is_none());
        let removed = respond(Outcome::removed());
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        let body = axum::body::to_bytes(removed.into_body(), 10).await.unwrap();
        assert!(body.is_empty());
    }

    fn etag_of(version: u64) -> String {
        commands::etag(version)
    }
}
