//! Layers every API request passes: client request id echo, authentication and authorisation,
//! `api-version`, and repeatability.

use std::time::Duration;

use auth::Permission;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use store::repeatability::{Reservation, StoredResponse};

use crate::AppState;
use crate::context::MAX_BODY_BYTES;
use crate::error::ApiError;

/// The api-versions nmp speaks.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["2024-02-29-preview"];

const CLIENT_REQUEST_ID: &str = "x-ms-client-request-id";
const REPEATABILITY_REQUEST_ID: &str = "repeatability-request-id";
const REPEATABILITY_FIRST_SENT: &str = "repeatability-first-sent";
const REPEATABILITY_RESULT: &str = "repeatability-result";

/// Echoes `x-ms-client-request-id` on every answer, errors included.
pub async fn echo_client_request_id(request: Request, next: Next) -> Response {
    let id = request.headers().get(CLIENT_REQUEST_ID).cloned();
    let mut response = next.run(request).await;
    if let Some(id) = id {
        response.headers_mut().insert(CLIENT_REQUEST_ID, id);
    }
    response
}

/// The permission an operation needs: reads need Read, removals Delete, everything else Write.
/// `path` is decoded first, as the router decodes it: `x%3AdeleteNumbers` is `:deleteNumbers`.
pub fn required_permission(method: &Method, path: &str) -> Permission {
    if *method == Method::GET || *method == Method::HEAD {
        Permission::Read
    } else if *method == Method::DELETE || percent_decode(path).ends_with(":deleteNumbers") {
        Permission::Delete
    } else {
        Permission::Write
    }
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// 401 without a valid bearer token, 403 without the role the operation needs.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let verified = match auth::bearer_token(header) {
        Ok(token) => state.verifier.verify(token).await,
        Err(error) => Err(error),
    };
    let principal = match verified {
        Ok(principal) => principal,
        Err(error) => {
            let status = if matches!(error, auth::AuthError::KeysUnavailable) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            };
            let mut response =
                ApiError::new(status, error.code(), error.to_string()).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    let needed = required_permission(request.method(), request.uri().path());
    if !principal.allows(needed) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("this operation needs the {needed} permission (a ProvisioningAPI role)"),
        )
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Every operation takes `api-version`, and it must be one nmp speaks.
pub async fn require_api_version(request: Request, next: Next) -> Response {
    let version = request.uri().query().and_then(|query| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(name, _)| *name == "api-version")
            .map(|(_, value)| value.to_string())
    });
    match version {
        None => ApiError::bad_request(
            "MissingApiVersionParameter",
            format!(
                "the api-version query parameter is required; supported: {}",
                SUPPORTED_API_VERSIONS.join(", ")
            ),
        )
        .with_target("api-version")
        .into_response(),
        Some(version) if !SUPPORTED_API_VERSIONS.contains(&version.as_str()) => {
            ApiError::bad_request(
                "UnsupportedApiVersionValue",
                format!(
                    "api-version '{version}' is not supported; supported: {}",
                    SUPPORTED_API_VERSIONS.join(", ")
                ),
            )
            .with_target("api-version")
            .into_response()
        }
        Some(_) => next.run(request).await,
    }
}

/// How long answers are kept for repeats, and how far `Repeatability-First-Sent` may lie behind.
pub const REPEATABILITY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// After this long without a heartbeat, a reservation whose request never finished (its
/// process died) is taken over by a repeat. A request still running renews it every third of
/// that, however long it runs.
pub const REPEATABILITY_LEASE: Duration = Duration::from_secs(60);

/// Repeatable requests (OASIS Repeatable Requests, as the Azure APIs use it): a write with
/// `Repeatability-Request-ID` runs once; a repeat gets the first answer.
pub async fn repeatability(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let is_write = matches!(
        *request.method(),
        Method::PUT | Method::PATCH | Method::DELETE | Method::POST
    );
    let Some(request_id) = request.headers().get(REPEATABILITY_REQUEST_ID).cloned() else {
        return next.run(request).await;
    };
    if !is_write {
        return next.run(request).await;
    }
    match repeat_or_run(&state, request_id, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn repeat_or_run(
    state: &AppState,
    request_id: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let rejected = |error: ApiError| {
        let mut response = error.into_response();
        response
            .headers_mut()
            .insert(REPEATABILITY_RESULT, HeaderValue::from_static("rejected"));
        response
    };
    let request_id = request_id
        .to_str()
        .ok()
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .ok_or_else(|| {
            rejected(
                ApiError::bad_request(
                    "InvalidRepeatabilityRequestId",
                    "Repeatability-Request-ID must be 1 to 256 printable characters",
                )
                .with_target("Repeatability-Request-ID"),
            )
        })?
        .to_string();
    let first_sent = first_sent(&request).map_err(rejected)?;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestBodyTooLarge",
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
            .into_response()
        })?;
    // A request id is the caller's: two callers may pick the same one.
    let subject = parts
        .extensions
        .get::<auth::Principal>()
        .map(|p| p.subject.clone())
        .unwrap_or_default();
    let key = format!("{subject}\n{request_id}");
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.to_string());
    hasher.update([0]);
    hasher.update(&body);
    let fingerprint = format!("{:x}", hasher.finalize());
    let reservation = state
        .repeatability
        .reserve(&key, &fingerprint, first_sent, state.repeatability_lease)
        .await
        .map_err(|e| ApiError::internal(&e).into_response())?;
    match reservation {
        Reservation::Answered(stored) => Ok(replay(stored)),
        Reservation::InProgress => {
            let mut response = ApiError::new(
                StatusCode::CONFLICT,
                "RepeatableRequestInProgress",
                "a request with this Repeatability-Request-ID is still being carried out",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(response)
        }
        Reservation::Mismatch => Err(rejected(
            ApiError::new(
                StatusCode::CONFLICT,
                "RepeatabilityRequestIdReused",
                "this Repeatability-Request-ID was already used for a different request",
            )
            .with_target("Repeatability-Request-ID"),
        )),
        Reservation::Reserved => {
            let request = Request::from_parts(parts, Body::from(body));
            // The reservation is renewed while the request runs, so no repeat takes it over.
            let heartbeat = {
                let store = state.repeatability.clone();
                let key = key.clone();
                let every = state.repeatability_lease / 3;
                AbortOnDrop(tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        if let Err(error) = store.renew(&key).await {
                            tracing::warn!(%error, "cannot renew a repeatable request's reservation");
                        }
                    }
                }))
            };
            let response = next.run(request).await;
            drop(heartbeat);
            if response.status().is_server_error() {
                if response
                    .extensions()
                    .get::<crate::error::OutcomeUnknown>()
                    .is_some()
                {
                    // Its changes may have been committed: a repeat must not run it again at
                    // once. The reservation stays until its lease runs out.
                    tracing::warn!(
                        "a repeatable request failed after its changes may have been committed; \
                         its reservation is kept"
                    );
                } else if let Err(error) = state.repeatability.release(&key).await {
                    tracing::warn!(%error, "cannot release a repeatable request's reservation");
                }
                return Ok(response);
            }
            let (mut parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .map_err(|e| ApiError::internal(&e).into_response())?;
            let kept = [
                header::CONTENT_TYPE,
                header::ETAG,
                header::LOCATION,
                HeaderName::from_static("x-ms-error-code"),
            ];
            let stored = StoredResponse {
                status: parts.status.as_u16(),
                headers: kept
                    .iter()
                    .filter_map(|name| {
                        let value = parts.headers.get(name)?.to_str().ok()?;
                        Some((name.as_str().to_string(), value.to_string()))
                    })
                    .collect(),
                body: body.to_vec(),
            };
            state
                .repeatability
                .complete(&key, &stored)
                .await
                .map_err(|e| ApiError::internal(&e).into_response())?;
            parts
                .headers
                .insert(REPEATABILITY_RESULT, HeaderValue::from_static("accepted"));
            Ok(Response::from_parts(parts, Body::from(body)))
        }
    }
}

/// Aborts a task when dropped (also when the request is dropped half-way).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn first_sent(request: &Request) -> Result<DateTime<Utc>, ApiError> {
    let target = "Repeatability-First-Sent";
    let text = request
        .headers()
        .get(REPEATABILITY_FIRST_SENT)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "MissingRepeatabilityFirstSent",
                "Repeatability-First-Sent (an HTTP date or an RFC 3339 date-time) must accompany \
                 Repeatability-Request-ID",
            )
            .with_target(target)
        })?;
    // The Azure convention sends an HTTP date; the public OpenAPI file declares the header
    // `format: date-time`, so clients generated from it send RFC 3339. Both are accepted.
    let sent = parse_http_date(text)
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|time| time.with_timezone(&Utc))
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidRepeatabilityFirstSent",
                "Repeatability-First-Sent must be an HTTP date such as \
                 'Tue, 15 Nov 1994 08:12:31 GMT' or an RFC 3339 date-time such as \
                 '1994-11-15T08:12:31Z'",
            )
            .with_target(target)
        })?;
    let now = Utc::now();
    let retention = chrono::Duration::from_std(REPEATABILITY_RETENTION).unwrap_or_default();
    if sent < now - retention {
        return Err(ApiError::bad_request(
            "RepeatabilityExpired",
            "Repeatability-First-Sent is older than the 24 hours nmp keeps answers for",
        )
        .with_target(target));
    }
    if sent > now + chrono::Duration::minutes(5) {
        return Err(ApiError::bad_request(
            "InvalidRepeatabilityFirstSent",
            "Repeatability-First-Sent lies in the future",
        )
        .with_target(target));
    }
    Ok(sent)
}

/// An HTTP date in any of the three forms RFC 9110 makes a recipient accept: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`).
fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc2822(text) {
        return Some(time.with_timezone(&Utc));
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%A, %d-%b-%y %H:%M:%S GMT")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%a %b %e %H:%M:%S %Y"))
        .ok()?;
    Some(naive.and_utc())
}

fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert(REPEATABILITY_RESULT, HeaderValue::from_static("accepted"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_action_needs_the_same_permission() {
        assert_eq!(
            required_permission(&Method::POST, "/accounts/x%3AdeleteNumbers"),
            Permission::Delete
        );
        assert_eq!(
            required_permission(&Method::POST, "/accounts/x%3adeleteNumbers"),
            Permission::Delete
        );
        assert_eq!(
            required_permission(&Method::POST, "/accounts/x:createOrUpdateNumbers"),
            Permission::Write
        );
        assert_eq!(percent_decode("%2B1%"), "+1%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn http_dates_are_read_in_all_three_forms() {
        let expected = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(expected)
        );
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(expected));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
