//! What nmp's operations answer, independent of any transport: an `Outcome` (how it went, the
//! resource's version and its JSON body) or an `AppError` (an `ErrorKind`, a wire code, a
//! message and where in the request it lies). The operations (`api::operations`) speak only
//! these; the REST adapter maps them to HTTP statuses and headers, the NATS adapter to its reply
//! headers. Nothing here knows HTTP or NATS.

use std::time::Duration;

use domain::{DomainError, InvalidValue, RefusalKind};
use serde::Serialize;
use serde_json::Value;
use store::StoreError;

use crate::{CommandError, etag};

/// How an operation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Read, changed or answered; the body says how things are now.
    Done,
    /// The resource did not exist and does now.
    Created,
    /// The resource is gone (or going); there is no body.
    Removed,
}

/// What an operation answers: how it went, the resource's version (its ETag) and a JSON body.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: OutcomeKind,
    pub version: Option<u64>,
    pub body: Option<Value>,
}

impl Outcome {
    /// A resource at `version`.
    pub fn resource(kind: OutcomeKind, version: u64, body: impl Serialize) -> Outcome {
        Outcome {
            kind,
            version: Some(version),
            body: Some(serde_json::to_value(body).unwrap_or(Value::Null)),
        }
    }

    /// An answer that is no single resource (a batch, a question put to the backend).
    pub fn answer(body: impl Serialize) -> Outcome {
        Outcome {
            kind: OutcomeKind::Done,
            version: None,
            body: Some(serde_json::to_value(body).unwrap_or(Value::Null)),
        }
    }

    pub fn removed() -> Outcome {
        Outcome {
            kind: OutcomeKind::Removed,
            version: None,
            body: None,
        }
    }

    pub fn etag(&self) -> Option<String> {
        self.version.map(etag)
    }
}

/// Why an operation failed, as a client must act on it. Each transport maps a kind to its own
/// status; the wire code (`ErrorDetail::code`) says more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule: fix it before sending it again.
    Invalid,
    /// No valid credentials came with the request.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// What the request names does not exist (or not where it says).
    NotFound,
    /// The request clashes with the resource's state or with a concurrent change.
    Conflict,
    /// The resource's version is not the one the request expects.
    PreconditionFailed,
    /// The request is larger than nmp accepts.
    TooLarge,
    /// nmp failed; the request's changes may or may not have been made.
    Internal,
    /// The Teams backend refused what nmp asked of it.
    BackendRefused,
    /// nmp, or a service it depends on, cannot answer now: retry later.
    Unavailable,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Invalid,
        ErrorKind::Unauthenticated,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::PreconditionFailed,
        ErrorKind::TooLarge,
        ErrorKind::Internal,
        ErrorKind::BackendRefused,
        ErrorKind::Unavailable,
    ];
}

/// An error's code, message and place in the request (a JSON path), with the errors of the
/// request's items; serialised as the `error` of the API's envelope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

/// An operation's failure.
#[derive(Debug, Clone)]
pub struct AppError {
    pub kind: ErrorKind,
    pub body: ErrorDetail,
    /// When to try again.
    pub retry_after: Option<Duration>,
    /// Whether the request's changes may have been committed although it failed (a failure
    /// during or after the commit): a repeat must not simply run it again.
    pub outcome_unknown: bool,
}

impl AppError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        AppError {
            kind,
            body: ErrorDetail {
                code: code.into(),
                message: message.into(),
                target: None,
                details: Vec::new(),
            },
            retry_after: None,
            outcome_unknown: false,
        }
    }

    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "NotFound",
            format!("{what} does not exist"),
        )
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.body.target = Some(target.into());
        self
    }

    pub fn with_details(mut self, details: Vec<ErrorDetail>) -> Self {
        self.body.details = details;
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Says the request's changes may have been committed although it failed.
    pub fn with_outcome_unknown(mut self) -> Self {
        self.outcome_unknown = true;
        self
    }

    /// A value that failed to parse at JSON path `target`.
    pub fn invalid_value(error: InvalidValue, target: impl Into<String>) -> Self {
        Self::invalid(error.kind.code(), error.reason).with_target(target)
    }

    /// A domain refusal; `prefix` places its target inside the request (such as `numbers[3]`).
    pub fn refused(error: &DomainError, prefix: Option<&str>) -> Self {
        let kind = match error.kind() {
            RefusalKind::Invalid => ErrorKind::Invalid,
            RefusalKind::NotFound => ErrorKind::NotFound,
            RefusalKind::Conflict => ErrorKind::Conflict,
        };
        let target = match (prefix, error.target()) {
            (Some(prefix), Some(target)) => Some(format!("{prefix}.{target}")),
            (Some(prefix), None) => Some(prefix.to_string()),
            (None, target) => target,
        };
        let mut refused = Self::new(kind, error.code(), error.to_string());
        refused.body.target = target;
        refused
    }

    /// nmp's own failure: logged once, here, with its cause chain; the answer hides it.
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
            ErrorKind::Internal,
            "InternalError",
            "the request could not be completed; its changes may or may not have been made: \
             read the resource, or repeat the request with the same Repeatability-Request-ID",
        )
        .with_outcome_unknown()
    }

    pub fn unavailable(error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error, "dependency unavailable");
        Self::new(
            ErrorKind::Unavailable,
            "ServiceUnavailable",
            "a service nmp depends on is unavailable; retry later",
        )
    }

    /// A read cut at its statement timeout: the client may narrow it (a filter, a page) or
    /// retry.
    pub fn query_too_long() -> Self {
        Self::new(
            ErrorKind::Unavailable,
            "QueryTimedOut",
            "the query took longer than nmp lets one run; narrow it (a filter, a smaller page) \
             or retry later",
        )
        .with_retry_after(Some(Duration::from_secs(5)))
    }

    /// A command's failure; batch items are reported under `batch_field[index]`.
    pub fn from_command(error: CommandError, batch_field: &str) -> Self {
        match error {
            CommandError::Refused(error) => AppError::refused(&error, None),
            CommandError::BatchRefused(refusals) => {
                let details: Vec<ErrorDetail> = refusals
                    .iter()
                    .map(|r| {
                        AppError::refused(&r.error, Some(&format!("{batch_field}[{}]", r.index)))
                            .body
                    })
                    .collect();
                // The least specific kind wins: any invalid item makes the request invalid.
                let kinds: Vec<RefusalKind> = refusals.iter().map(|r| r.error.kind()).collect();
                let kind = if kinds.contains(&RefusalKind::Invalid) {
                    ErrorKind::Invalid
                } else if kinds.contains(&RefusalKind::Conflict) {
                    ErrorKind::Conflict
                } else {
                    ErrorKind::NotFound
                };
                let first_target = details.first().and_then(|d| d.target.clone());
                let mut error = AppError::new(
                    kind,
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
            CommandError::PreconditionFailed => AppError::new(
                ErrorKind::PreconditionFailed,
                "PreconditionFailed",
                "the resource's ETag does not match If-Match / If-None-Match",
            ),
            CommandError::Conflict => AppError::new(
                ErrorKind::Conflict,
                "Conflict",
                "the resource was changed by another request at the same time; retry",
            ),
            CommandError::Store(store_error) => match &store_error {
                // No connection was had: nothing can have been written.
                StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
                    AppError::unavailable(&store_error)
                }
                // The connection broke, maybe while committing.
                StoreError::Database(sqlx_error) if is_unavailable(sqlx_error) => {
                    AppError::unavailable(&store_error).with_outcome_unknown()
                }
                StoreError::OutcomeUnknown(_) => {
                    AppError::unavailable(&store_error).with_outcome_unknown()
                }
                StoreError::Database(sqlx_error) if is_statement_timeout(sqlx_error) => {
                    AppError::query_too_long()
                }
                _ => AppError::internal(&store_error),
            },
        }
    }
}

impl From<CommandError> for AppError {
    fn from(error: CommandError) -> Self {
        AppError::from_command(error, "numbers")
    }
}

/// PostgreSQL cancelled the statement at its timeout (57014, query_canceled).
pub fn is_statement_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "57014")
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ItemRefusal;
    use domain::{AccountName, E164};

    #[test]
    fn a_batch_is_as_bad_as_its_least_specific_refusal() {
        let missing = DomainError::NumberNotFound(E164::parse("+41441234567").unwrap());
        let taken = DomainError::AccountHasNumbers {
            account: AccountName::parse("a").unwrap(),
            count: 1,
        };
        let refusals = |errors: Vec<DomainError>| {
            CommandError::BatchRefused(
                errors
                    .into_iter()
                    .enumerate()
                    .map(|(index, error)| ItemRefusal { index, error })
                    .collect(),
            )
        };
        let only_missing = AppError::from_command(refusals(vec![missing.clone()]), "numbers");
        assert_eq!(only_missing.kind, ErrorKind::NotFound);
        assert_eq!(only_missing.body.code, "InvalidBatch");
        let target = only_missing.body.target.clone().unwrap_or_default();
        assert!(target.starts_with("numbers[0]"), "{target}");
        let with_conflict = AppError::from_command(refusals(vec![missing, taken]), "numbers");
        assert_eq!(with_conflict.kind, ErrorKind::Conflict);
        assert_eq!(with_conflict.body.details.len(), 2);
    }

    #[test]
    fn commands_map_to_kinds() {
        let precondition = AppError::from(CommandError::PreconditionFailed);
        assert_eq!(precondition.kind, ErrorKind::PreconditionFailed);
        assert_eq!(precondition.body.code, "PreconditionFailed");
        let conflict = AppError::from(CommandError::Conflict);
        assert_eq!(conflict.kind, ErrorKind::Conflict);
        let cut = AppError::from(CommandError::Store(StoreError::Database(
            sqlx::Error::PoolTimedOut,
        )));
        assert_eq!(cut.kind, ErrorKind::Unavailable);
        assert!(!cut.outcome_unknown, "no connection, nothing written");
        let unknown = AppError::from(CommandError::Store(StoreError::OutcomeUnknown("commit")));
        assert_eq!(unknown.kind, ErrorKind::Unavailable);
        assert!(unknown.outcome_unknown);
    }
}
