//! What handlers extract from a request besides its path: the JSON body (in the API's error
//! format), and the caller's context — identity, event metadata and preconditions.

use auth::Principal;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use commands::{AppError, EntityTag, Preconditions};
use domain::TicketId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use store::EventMetadata;

use crate::error::ApiError;

/// The most a request body may hold. A batch of 100 numbers stays far below it.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Header carrying the operator's ticket reference for a change (at most 64 characters).
pub const TICKET_ID_HEADER: &str = "x-nmp-ticket-id";

/// A JSON body whose faults are reported in the API's envelope, naming the JSON path.
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Serialize,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let json = mime == "application/json" || mime.ends_with("+json");
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "the body must be JSON (Content-Type: application/json)",
            )
            .with_target("Content-Type"));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestBodyTooLarge",
                        format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    ApiError::bad_request("InvalidRequestBody", rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(AppJson)
    }
}

/// Parses JSON into a wire type, reporting where in the document it went wrong.
pub fn parse_json<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, with serde_json's line and column in the message; no JSON path is
    // meaningful for a document that does not parse.
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::bad_request("InvalidJson", error.to_string()))?;
    Ok(from_value(value)?)
}

/// Converts a parsed JSON document into a wire type, reporting the path of a mismatch.
pub fn from_value<T: DeserializeOwned + Serialize>(value: Value) -> Result<T, AppError> {
    let parsed: T = serde_path_to_error::deserialize(&value).map_err(|error| {
        let path = error.path().to_string();
        let error = AppError::invalid("InvalidRequestBody", error.into_inner().to_string());
        if path.is_empty() || path == "." {
            error
        } else {
            error.with_target(path)
        }
    })?;
    // serde builds a struct from an array of its fields too; the API takes objects only.
    let written = serde_json::to_value(&parsed).unwrap_or(Value::Null);
    if let Some(path) = array_for_object(&value, &written, String::new()) {
        let error = AppError::invalid(
            "InvalidRequestBody",
            "invalid type: array, expected an object",
        );
        return Err(if path.is_empty() {
            error
        } else {
            error.with_target(path)
        });
    }
    Ok(parsed)
}

/// The path of the first place where the request holds an array and the type an object.
fn array_for_object(input: &Value, parsed: &Value, path: String) -> Option<String> {
    match (input, parsed) {
        (Value::Array(_), Value::Object(_)) => Some(path),
        (Value::Object(input), Value::Object(parsed)) => parsed.iter().find_map(|(key, inner)| {
            let path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            input
                .get(key)
                .and_then(|given| array_for_object(given, inner, path))
        }),
        (Value::Array(input), Value::Array(parsed)) => input
            .iter()
            .zip(parsed)
            .enumerate()
            .find_map(|(i, (given, inner))| array_for_object(given, inner, format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Who is asking, and what their writes will record.
pub struct Caller {
    pub principal: Principal,
    pub metadata: EventMetadata,
    pub preconditions: Preconditions,
    pub ticket_id: Option<TicketId>,
}

/// Reads one request header by name (case-insensitively): `None` when absent, `Err` when its
/// value is not text. Lets HTTP and NATS requests build a `Caller` the same way.
pub type HeaderLookup<'a> = &'a (dyn Fn(&str) -> Option<Result<String, ()>> + Sync);

impl Caller {
    /// The caller's context from an authenticated principal and the request's headers.
    pub fn from_headers(
        principal: Principal,
        lookup: HeaderLookup<'_>,
    ) -> Result<Caller, AppError> {
        let ticket_id = header_text(lookup, TICKET_ID_HEADER)?
            .map(|t| TicketId::parse(t).map_err(|e| AppError::invalid_value(e, TICKET_ID_HEADER)))
            .transpose()?;
        let client_request_id = header_text(lookup, "x-ms-client-request-id")?;
        let correlation_id = header_text(lookup, "x-ms-correlation-id")?
            .or_else(|| client_request_id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let metadata = EventMetadata {
            subject: principal.subject.clone(),
            roles: principal
                .roles
                .iter()
                .map(|r| r.as_str().to_string())
                .collect(),
            time: chrono::Utc::now(),
            client_request_id,
            ticket_id: ticket_id.as_ref().map(ToString::to_string),
            correlation_id,
            traceparent: Some(traceparent(lookup)),
        };
        let preconditions = Preconditions {
            if_match: entity_tag(lookup, "if-match")?,
            if_none_match: entity_tag(lookup, "if-none-match")?,
        };
        Ok(Caller {
            principal,
            metadata,
            preconditions,
            ticket_id,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                // The authentication layer runs before every API route; reaching here without a
                // principal is a wiring fault, not the caller's.
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "request was not authenticated",
                )
            })?;
        let headers = &parts.headers;
        let lookup = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().map(str::to_string).map_err(|_| ()))
        };
        Ok(Caller::from_headers(principal, &lookup)?)
    }
}

fn header_text(lookup: HeaderLookup<'_>, name: &str) -> Result<Option<String>, AppError> {
    match lookup(name) {
        None => Ok(None),
        Some(value) => {
            let text = value.map_err(|()| {
                AppError::invalid("InvalidHeader", format!("{name} must be printable ASCII"))
                    .with_target(name)
            })?;
            if text.len() > 256 {
                return Err(AppError::invalid(
                    "InvalidHeader",
                    format!("{name} is longer than 256 characters"),
                )
                .with_target(name));
            }
            Ok(Some(text))
        }
    }
}

fn entity_tag(lookup: HeaderLookup<'_>, name: &str) -> Result<Option<EntityTag>, AppError> {
    let Some(text) = header_text(lookup, name)? else {
        return Ok(None);
    };
    EntityTag::parse(&text).map(Some).ok_or_else(|| {
        AppError::invalid(
            "InvalidHeader",
            format!("{name} must be * or a list of quoted entity tags"),
        )
        .with_target(name)
    })
}

/// The request's W3C trace context, or a new one when it has none (or a malformed one), so
/// every stored event can be traced.
fn traceparent(lookup: HeaderLookup<'_>) -> String {
    let given = lookup("traceparent")
        .and_then(Result::ok)
        .filter(|v| is_traceparent(v));
    match given {
        Some(value) => value,
        None => {
            let trace = uuid::Uuid::new_v4().simple().to_string();
            let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
            format!("00-{trace}-{span}-01")
        }
    }
}

fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1] != "0".repeat(32)
        && parts[2] != "0".repeat(16)
}
