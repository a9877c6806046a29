//! [`HttpBackend`]: the [`Backend`] over HTTP, against nmp's own backend API (served by the
//! simulator, `nmp sim`, or by a connector to Microsoft's Operator Connect API).
//!
//! The routes, relative to the base URL (`NMP_BACKEND_URL`); bodies are JSON, the serde form of
//! this crate's types, camelCase throughout (nested configurations, contacts, civic addresses
//! and locations included) and independent of the shape of nmp's stored events; a list answer
//! is `{"value": [...]}` ([`crate::wire::List`]):
//!
//! | verb | path | body | answer |
//! |---|---|---|---|
//! | GET | `/consents` | | `{"value": [BackendConsent]}` |
//! | PUT | `/consents/{tenantId}/customerRelationship` | `RelationshipUpdate` | 204 |
//! | PUT | `/orders/{orderId}` | `UploadOrder` (its `id` = `orderId`) | 201 placed, 200 known: `OrderStatus` |
//! | GET | `/orders/{orderId}` | | `OrderStatus` |
//! | POST | `/tenants/{tenantId}/numbers:update` | `{"numbers": [NumberConfiguration]}` | `{"value": [NumberResult]}` |
//! | POST | `/tenants/{tenantId}/numbers:release` | `{"numbers": ["+44..."]}` | `{"value": [NumberResult]}` |
//! | GET | `/tenants/{tenantId}/civicAddresses` | | `{"value": [BackendCivicAddress]}` |
//! | GET | `/tenants/{tenantId}/capabilityPlans` | | `{"value": [CapabilityPlan]}` |
//! | POST | `/tenants/{tenantId}/availableCapabilities` | `{"numbers": ["+44..."]}` | `{"value": [AvailableCapabilities]}` |
//!
//! A refusal carries `{"error": {"code", "message"}}` ([`crate::wire::ErrorBody`]).
//!
//! How answers map to [`BackendError`]: 429 (with `Retry-After`, in seconds or as an HTTP
//! date), 408 and every 5xx are [`BackendError::Transient`], as are timeouts, refused or dropped
//! connections and an answer whose body cannot be read or decoded (repeating a call is always
//! safe, see the crate's documentation). Any other 4xx is [`BackendError::Permanent`] with the
//! error body's code and message (`HTTP <status>` and the body's text when it has none).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{E164, TenantId};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{ErrorBody, List, Numbers};
use crate::{
    AvailableCapabilities, Backend, BackendCivicAddress, BackendConsent, BackendError,
    CapabilityPlan, NumberConfiguration, NumberResult, OrderStatus, RelationshipUpdate,
    UploadOrder,
};

/// How long [`HttpBackend`] waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For a whole call, from sending the request to the answer's last byte.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        }
    }
}

/// Why an [`HttpBackend`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error("the backend URL '{url}' is not an absolute http(s) URL")]
    InvalidUrl { url: String },
    #[error("cannot build the HTTP client")]
    Client(#[from] reqwest::Error),
}

/// The [`Backend`] reached over HTTP at a base URL.
#[derive(Debug, Clone)]
pub struct HttpBackend {
    base: Url,
    http: reqwest::Client,
}

impl HttpBackend {
    pub fn new(base_url: &str, timeouts: Timeouts) -> Result<HttpBackend, ClientSetupError> {
        let invalid = || ClientSetupError::InvalidUrl {
            url: base_url.to_string(),
        };
        let base = Url::parse(base_url).map_err(|_| invalid())?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .user_agent(concat!("nmp/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpBackend { base, http })
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` refused URLs that cannot be a base, so the segments are always there.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends one call and decodes its answer's JSON body.
    async fn call<T: DeserializeOwned>(
        &self,
        operation: &str,
        method: Method,
        segments: &[&str],
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, BackendError> {
        let bytes = self.send(operation, method, segments, body).await?;
        serde_json::from_slice(&bytes).map_err(|error| BackendError::Transient {
            reason: format!("{operation}: the answer cannot be decoded: {error}"),
            retry_after: None,
        })
    }

    /// Sends one call; the body of a successful answer, or the error the answer stands for.
    async fn send(
        &self,
        operation: &str,
        method: Method,
        segments: &[&str],
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<Vec<u8>, BackendError> {
        let mut request = self.http.request(method, self.url(segments));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| unreachable_backend(operation, error))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| unreachable_backend(operation, error))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(refusal(operation, status, &headers, &bytes))
    }
}

/// No answer: a timeout, a refused, failed or dropped connection, a body cut short.
fn unreachable_backend(operation: &str, error: reqwest::Error) -> BackendError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "no answer"
    };
    BackendError::Transient {
        reason: format!("{operation}: {what}: {}", error_chain(&error.without_url())),
        retry_after: None,
    }
}

/// The error and its causes on one line, as hyper's "connection closed" sits in the chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The [`BackendError`] a non-success answer stands for.
fn refusal(operation: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> BackendError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => (error.code, error.message),
        Err(_) => (
            format!("HTTP {}", status.as_u16()),
            String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
        ),
    };
    let transient = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    if transient {
        return BackendError::Transient {
            reason: format!("{operation}: HTTP {}: {code}: {message}", status.as_u16()),
            retry_after: retry_after(headers, Utc::now()),
        };
    }
    BackendError::Permanent { code, message }
}

/// `Retry-After` as delay-seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Stands for "no body" in [`HttpBackend::call`].
const NO_BODY: Option<&()> = None;

#[async_trait]
impl Backend for HttpBackend {
    async fn consents(&self) -> Result<Vec<BackendConsent>, BackendError> {
        let list: List<BackendConsent> = self
            .call("list consents", Method::GET, &["consents"], NO_BODY)
            .await?;
        Ok(list.value)
    }

    async fn update_relationship(
        &self,
        tenant: &TenantId,
        update: &RelationshipUpdate,
    ) -> Result<(), BackendError> {
        self.send(
            "update the customer relationship",
            Method::PUT,
            &["consents", tenant.as_str(), "customerRelationship"],
            Some(update),
        )
        .await?;
        Ok(())
    }

    async fn place_order(&self, order: &UploadOrder) -> Result<OrderStatus, BackendError> {
        self.call(
            "place an order",
            Method::PUT,
            &["orders", &order.id],
            Some(order),
        )
        .await
    }

    async fn order(&self, id: &str) -> Result<OrderStatus, BackendError> {
        self.call("read an order", Method::GET, &["orders", id], NO_BODY)
            .await
    }

    async fn update_numbers(
        &self,
        tenant: &TenantId,
        numbers: &[NumberConfiguration],
    ) -> Result<Vec<NumberResult>, BackendError> {
        let list: List<NumberResult> = self
            .call(
                "update numbers",
                Method::POST,
                &["tenants", tenant.as_str(), "numbers:update"],
                Some(&Numbers {
                    numbers: numbers.to_vec(),
                }),
            )
            .await?;
        Ok(list.value)
    }

    async fn release_numbers(
        &self,
        tenant: &TenantId,
        numbers: &[E164],
    ) -> Result<Vec<NumberResult>, BackendError> {
        let list: List<NumberResult> = self
            .call(
                "release numbers",
                Method::POST,
                &["tenants", tenant.as_str(), "numbers:release"],
                Some(&Numbers {
                    numbers: numbers.to_vec(),
                }),
            )
            .await?;
        Ok(list.value)
    }

    async fn civic_addresses(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<BackendCivicAddress>, BackendError> {
        let list: List<BackendCivicAddress> = self
            .call(
                "list civic addresses",
                Method::GET,
                &["tenants", tenant.as_str(), "civicAddresses"],
                NO_BODY,
            )
            .await?;
        Ok(list.value)
    }

    async fn capability_plans(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<CapabilityPlan>, BackendError> {
        let list: List<CapabilityPlan> = self
            .call(
                "read capability plans",
                Method::GET,
                &["tenants", tenant.as_str(), "capabilityPlans"],
                NO_BODY,
            )
            .await?;
        Ok(list.value)
    }

    async fn available_capabilities(
        &self,
        tenant: &TenantId,
        numbers: &[E164],
    ) -> Result<Vec<AvailableCapabilities>, BackendError> {
        let list: List<AvailableCapabilities> = self
            .call(
                "read available capabilities",
                Method::POST,
                &["tenants", tenant.as_str(), "availableCapabilities"],
                Some(&Numbers {
                    numbers: numbers.to_vec(),
                }),
            )
            .await?;
        Ok(list.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers_with_retry_after(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            retry_after(&headers_with_retry_after("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(
                &headers_with_retry_after("Wed, 01 Jan 2025 00:00:30 GMT"),
                now
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after(&headers_with_retry_after("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn a_4xx_without_an_error_body_is_permanent_with_its_status() {
        let error = refusal(
            "op",
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            b"no such thing",
        );
        assert_eq!(
            error,
            BackendError::Permanent {
                code: "HTTP 404".to_string(),
                message: "no such thing".to_string()
            }
        );
    }

    #[test]
    fn a_5xx_whose_body_cannot_be_decoded_is_transient() {
        let error = refusal(
            "op",
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
        );
        assert!(error.is_transient(), "{error:?}");
    }

    #[test]
    fn segments_are_appended_to_the_base_path_and_encoded() {
        let backend = HttpBackend::new("http://backend.example/oc/", Timeouts::default()).unwrap();
        assert_eq!(
            backend.url(&["orders", "a/b c"]).as_str(),
            "http://backend.example/oc/orders/a%2Fb%20c"
        );
        let backend = HttpBackend::new("http://backend.example", Timeouts::default()).unwrap();
        assert_eq!(
            backend.url(&["tenants", "t", "numbers:update"]).as_str(),
            "http://backend.example/tenants/t/numbers:update"
        );
    }

    #[test]
    fn a_base_url_must_be_http() {
        assert!(HttpBackend::new("mailto:someone@example.com", Timeouts::default()).is_err());
        assert!(HttpBackend::new("not a url", Timeouts::default()).is_err());
    }
}
