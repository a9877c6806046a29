//! nmp's NATS request-reply API, for other microservices: the same commands and single-resource
//! queries as the REST API, on subjects `<prefix>.api.<resource>.<operation>`, with JSON in and
//! out, the same validation and error codes, and the caller identified by a JWT in the
//! `Authorization` header — the same rules as HTTP. It runs as a NATS micro service named `nmp`
//! in a queue group, so several nmp instances share the requests. `docs/asyncapi.yaml` is its
//! contract.
//!
//! Trust boundary: NATS authenticates connections (accounts, users, nkeys, TLS — as the operator
//! configures the server) and its permissions decide who may publish on these subjects; nmp
//! additionally authorises every request by its token, so publishing rights alone change
//! nothing. Replies travel on the requester's inbox; use TLS on NATS to keep them private.

mod requests;

use std::sync::Arc;

use api::AppState;
use api::context::Caller;
use async_nats::HeaderMap;
use async_nats::service::{Request, ServiceExt};
use auth::Permission;
use commands::{AppError, ErrorKind, Outcome, OutcomeKind};
use futures::StreamExt;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use requests::Operation;

/// Settings of the NATS API.
#[derive(Debug, Clone)]
pub struct NatsApiSettings {
    /// The installation's subject prefix (`nmp` → `nmp.api.>`).
    pub prefix: String,
    /// Largest request payload handled; larger ones get `RequestBodyTooLarge`.
    pub max_payload: usize,
    /// Requests handled at once by this instance.
    pub concurrency: usize,
}

impl NatsApiSettings {
    pub fn new(prefix: &str) -> Self {
        NatsApiSettings {
            prefix: prefix.to_string(),
            max_payload: 1024 * 1024,
            concurrency: 64,
        }
    }
}

/// Starts the service and answers requests until the task is aborted.
pub async fn start(
    client: async_nats::Client,
    state: AppState,
    settings: NatsApiSettings,
) -> Result<JoinHandle<()>, async_nats::Error> {
    let service = client
        .service_builder()
        .description("nmp: Provisioning API commands and queries")
        .metadata([("prefix".to_string(), settings.prefix.clone())].into())
        .start("nmp", env!("CARGO_PKG_VERSION"))
        .await?;
    let mut endpoint = service
        .endpoint_builder()
        .name("api")
        .add(format!("{}.api.>", settings.prefix))
        .await?;
    let settings = Arc::new(settings);
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.concurrency));
    Ok(tokio::spawn(async move {
        // The service lives as long as this task.
        let _service = service;
        while let Some(request) = endpoint.next().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let state = state.clone();
            let settings = settings.clone();
            tokio::spawn(async move {
                answer(state, settings, request).await;
                drop(permit);
            });
        }
    }))
}

/// Answers one request; a fault inside the handler still gets an answer, never silence.
async fn answer(state: AppState, settings: Arc<NatsApiSettings>, request: Request) {
    let message = request.message.clone();
    let handled = tokio::spawn(async move { handle(&state, &settings, &message).await }).await;
    let result = match handled {
        Ok(result) => result,
        Err(_) => Err(AppError::new(
            ErrorKind::Internal,
            "InternalError",
            "the request could not be completed; it is safe to retry",
        )),
    };
    let (payload, headers) = reply(result);
    if let Err(error) = request
        .respond_with_headers(Ok(payload.into()), headers)
        .await
    {
        tracing::warn!(%error, "cannot send a NATS API reply");
    }
}

/// The status a reply reports in `Nmp-Status` for each way an operation succeeds: the number
/// its REST twin answers, so that clients of both read one table.
fn success_status(kind: OutcomeKind) -> u16 {
    match kind {
        OutcomeKind::Done => 200,
        OutcomeKind::Created => 201,
        OutcomeKind::Removed => 204,
    }
}

/// The status a reply reports in `Nmp-Status` and `Nats-Service-Error-Code` for each kind of
/// error: the number its REST twin answers.
fn error_status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::Invalid => 400,
        ErrorKind::Unauthenticated => 401,
        ErrorKind::Forbidden => 403,
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::PreconditionFailed => 412,
        ErrorKind::TooLarge => 413,
        ErrorKind::Internal => 500,
        ErrorKind::BackendRefused => 502,
        ErrorKind::Unavailable => 503,
    }
}

/// The reply's body and headers: the resource (or `{}`) with `Nmp-Status` and `ETag`, or the
/// error envelope with `Nats-Service-Error`, `Nats-Service-Error-Code` and `Nmp-Error-Code`.
fn reply(result: Result<Outcome, AppError>) -> (Vec<u8>, HeaderMap) {
    let mut headers = HeaderMap::new();
    match result {
        Ok(outcome) => {
            let status = success_status(outcome.kind).to_string();
            headers.insert("Nmp-Status", status.as_str());
            if let Some(etag) = outcome.etag() {
                headers.insert("ETag", etag.as_str());
            }
            let body = outcome
                .body
                .unwrap_or_else(|| Value::Object(Default::default()));
            (serde_json::to_vec(&body).unwrap_or_default(), headers)
        }
        Err(error) => {
            let status = error_status(error.kind).to_string();
            headers.insert("Nmp-Status", status.as_str());
            headers.insert("Nats-Service-Error-Code", status.as_str());
            headers.insert(
                "Nats-Service-Error",
                header_text(&error.body.message).as_str(),
            );
            headers.insert("Nmp-Error-Code", header_text(&error.body.code).as_str());
            let body = serde_json::json!({ "error": error.body });
            (serde_json::to_vec(&body).unwrap_or_default(), headers)
        }
    }
}

/// Header values must be one line of visible ASCII.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(300)
        .collect()
}

async fn handle(
    state: &AppState,
    settings: &NatsApiSettings,
    message: &async_nats::Message,
) -> Result<Outcome, AppError> {
    let api_prefix = format!("{}.api.", settings.prefix);
    let name = message
        .subject
        .as_str()
        .strip_prefix(&api_prefix)
        .unwrap_or_default();
    let operation = Operation::parse(name).ok_or_else(|| {
        AppError::new(
            ErrorKind::NotFound,
            "UnknownOperation",
            format!(
                "'{name}' is not an operation; see docs/asyncapi.yaml for {api_prefix}<resource>.<operation>"
            ),
        )
    })?;
    if message.payload.len() > settings.max_payload {
        return Err(AppError::new(
            ErrorKind::TooLarge,
            "RequestBodyTooLarge",
            format!("the payload is larger than {} bytes", settings.max_payload),
        ));
    }
    let empty = HeaderMap::new();
    let headers = message.headers.as_ref().unwrap_or(&empty);
    let lookup = |name: &str| -> Option<Result<String, ()>> {
        headers
            .iter()
            .find(|(key, _)| key.to_string().eq_ignore_ascii_case(name))
            .and_then(|(_, values)| values.first())
            .map(|value| Ok(value.as_str().to_string()))
    };
    let caller = authorize(state, &lookup, operation.permission()).await?;
    let body: Value = serde_json::from_slice(&message.payload)
        .map_err(|e| AppError::invalid("InvalidJson", e.to_string()))?;
    requests::run(state, &caller, operation, body).await
}

/// The same rules as HTTP: 401 without a valid token, 403 without the role.
async fn authorize(
    state: &AppState,
    lookup: &(dyn Fn(&str) -> Option<Result<String, ()>> + Sync),
    permission: Permission,
) -> Result<Caller, AppError> {
    let header = lookup("authorization").and_then(Result::ok);
    let principal = match auth::bearer_token(header.as_deref()) {
        Ok(token) => state.verifier.verify(token).await,
        Err(error) => Err(error),
    }
    .map_err(|error| {
        let kind = if matches!(error, auth::AuthError::KeysUnavailable) {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Unauthenticated
        };
        AppError::new(kind, error.code(), error.to_string())
    })?;
    if !principal.allows(permission) {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            "Forbidden",
            format!("this operation needs the {permission} permission (a ProvisioningAPI role)"),
        ));
    }
    Caller::from_headers(principal, lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(headers: &HeaderMap, name: &str) -> Option<String> {
        headers.get(name).map(|value| value.as_str().to_string())
    }

    /// Every kind of application error, as a NATS reply reports it: the status its REST twin
    /// answers, the code, and the API's error envelope.
    #[test]
    fn every_error_kind_has_its_status_and_keeps_its_code() {
        let expected = [
            (ErrorKind::Invalid, "400"),
            (ErrorKind::Unauthenticated, "401"),
            (ErrorKind::Forbidden, "403"),
            (ErrorKind::NotFound, "404"),
            (ErrorKind::Conflict, "409"),
            (ErrorKind::PreconditionFailed, "412"),
            (ErrorKind::TooLarge, "413"),
            (ErrorKind::Internal, "500"),
            (ErrorKind::BackendRefused, "502"),
            (ErrorKind::Unavailable, "503"),
        ];
        assert_eq!(
            expected.iter().map(|(kind, _)| *kind).collect::<Vec<_>>(),
            ErrorKind::ALL,
            "a new kind needs its status here"
        );
        for (kind, status) in expected {
            let code = format!("Some{kind:?}Code");
            let (body, headers) = reply(Err(AppError::new(kind, &code, "why\nnot")));
            assert_eq!(header(&headers, "Nmp-Status").as_deref(), Some(status));
            assert_eq!(
                header(&headers, "Nats-Service-Error-Code").as_deref(),
                Some(status)
            );
            assert_eq!(header(&headers, "Nmp-Error-Code"), Some(code.clone()));
            assert_eq!(
                header(&headers, "Nats-Service-Error").as_deref(),
                Some("why?not")
            );
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({"error": {"code": code, "message": "why\nnot"}})
            );
        }
    }

    #[test]
    fn every_outcome_kind_has_its_status() {
        let created = Outcome::resource(OutcomeKind::Created, 2, serde_json::json!({"a": 1}));
        let (body, headers) = reply(Ok(created));
        assert_eq!(header(&headers, "Nmp-Status").as_deref(), Some("201"));
        assert_eq!(header(&headers, "ETag"), Some(commands::etag(2)));
        assert_eq!(body, br#"{"a":1}"#);
        let (_, headers) = reply(Ok(Outcome::answer(serde_json::json!([]))));
        assert_eq!(header(&headers, "Nmp-Status").as_deref(), Some("200"));
        assert_eq!(header(&headers, "ETag"), None);
        let (body, headers) = reply(Ok(Outcome::removed()));
        assert_eq!(header(&headers, "Nmp-Status").as_deref(), Some("204"));
        assert_eq!(body, b"{}");
    }
}
