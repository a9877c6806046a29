//! `/audit/...`, for auditors: the recorded events of an account, number, consent or civic address, its state as
//! of a time, and an export of events as CloudEvents JSON Lines, streamed.
//!
//! Aggregates are named as the event store and NATS name them: `account` (by account name),
//! `number` (by E.164 number, `+` written `%2B`) and `consent` (by Teams tenant id). All routes
//! are reads: they need the Read permission and `api-version`.

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use domain::{
    Account, AccountName, AggregateKind, CivicAddress, Consent, E164, Identifier, Number, TenantId,
};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use store::audit::{ExportFilter, RecordedEvent};
use store::{EventStore, StoreError};
use utoipa::ToSchema;

use crate::AppState;
use crate::context::Caller;
use crate::error::ApiError;
use crate::routes::lists::origin;
use crate::wire::account::AccountResource;
use crate::wire::consent::RequestForInformationResource;
use crate::wire::number::NumberResource;
use crate::wire::{parse_at, wire_time};

/// Events per page of a history unless `maxpagesize` says otherwise, and the most it may ask
/// for (as the lists have it).
pub const DEFAULT_PAGE_SIZE: u64 = 200;
pub const MAX_PAGE_SIZE: u64 = 500;
/// `top` and `skip` are int32 in the API.
const MAX_INT32: u64 = i32::MAX as u64;

/// Bytes of an export gathered before they are sent on.
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/audit/export", get(export))
        .route(
            "/audit/{aggregate_type}/{aggregate_id}/events",
            get(history),
        )
        .route("/audit/{aggregate_type}/{aggregate_id}/asOf", get(as_of))
}

/// The aggregates an auditor can ask about: every kind nmp keeps (`domain::AggregateKind`).
pub(crate) fn parse_kind(text: &str) -> Result<AggregateKind, ApiError> {
    AggregateKind::parse(text).ok_or_else(|| {
        ApiError::bad_request(
            "InvalidAggregateType",
            format!(
                "'{text}' is not an aggregate type; one of: {}",
                AggregateKind::names().join(", ")
            ),
        )
        .with_target("aggregateType")
    })
}

/// The id in its canonical form, refused as the resource's own routes refuse it.
pub(crate) fn parse_id(kind: AggregateKind, id: &str) -> Result<String, ApiError> {
    let target = "aggregateId";
    Ok(match kind {
        AggregateKind::Account => parse_at(target, AccountName::parse(id))?.to_string(),
        AggregateKind::Number => parse_at(target, E164::parse(id))?.to_string(),
        AggregateKind::Consent => parse_at(target, TenantId::parse(id))?.to_string(),
        AggregateKind::CivicAddress => parse_at(target, Identifier::parse(id))?.to_string(),
    })
}

/// One recorded event.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// `account`, `number` or `consent`.
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Its place in its aggregate, from 1.
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// Its place in the store, across aggregates (grows with every append, with gaps).
    pub global_position: i64,
    /// When it was recorded (the metadata's `time`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The event as stored.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Who, when, which ticket, the trace, and `chain` (`previous`, `hash`), as stored.
    #[schema(value_type = Object)]
    pub metadata: Value,
}

impl From<RecordedEvent> for AuditEvent {
    fn from(event: RecordedEvent) -> Self {
        AuditEvent {
            time: event.time().as_ref().map(wire_time),
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            event_version: event.event_version,
            global_position: event.global_position,
            payload: event.payload,
            metadata: event.metadata,
        }
    }
}

/// A page of an aggregate's events.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventPage {
    pub value: Vec<AuditEvent>,
    /// The next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// An account, number, consent or civic address as the API showed it at a time.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AsOfResource {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The time asked about.
    pub as_of: String,
    /// The resource's version (its ETag then): the sequence of its last event by that time.
    pub version: u64,
    /// When that event was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified_on: Option<String>,
    /// The resource as `GET` answered it then: an account, number or request for information.
    #[schema(value_type = Object)]
    pub resource: Value,
}

/// The events of an account, number, consent or civic address, in order, with their metadata.
#[utoipa::path(
    get, path = "/audit/{aggregateType}/{aggregateId}/events", tag = "Audit",
    params(("aggregateType" = String, Path, description = "account, number, consent or civicAddress"),
        ("aggregateId" = String, Path, description = "account name, E.164 number or tenant id"),
        ("api-version" = String, Query),
        ("top" = Option<i32>, Query, description = "at most this many events over all pages"),
        ("skip" = Option<i32>, Query, description = "events to skip"),
        ("maxpagesize" = Option<i32>, Query, description = "1 to 500, default 200")),
    responses((status = 200, body = AuditEventPage), (status = 400, body = crate::error::ErrorResponse),
        (status = 404, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn history(
    State(state): State<AppState>,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let kind = parse_kind(&aggregate_type)?;
    let id = parse_id(kind, &aggregate_id)?;
    let top = integer_parameter(&query, "top", 1, MAX_INT32)?;
    let skip = integer_parameter(&query, "skip", 0, MAX_INT32)?.unwrap_or(0);
    let page_size = integer_parameter(&query, "maxpagesize", 1, MAX_PAGE_SIZE)?;
    let wanted = top.map_or(page_size.unwrap_or(DEFAULT_PAGE_SIZE), |top| {
        top.min(page_size.unwrap_or(DEFAULT_PAGE_SIZE))
    });
    // One more than the page, to know whether another follows.
    let mut events = store(&state)
        .history(kind.as_str(), &id, skip, wanted + 1)
        .await
        .map_err(store_error)?;
    if events.is_empty() && skip == 0 {
        return Err(ApiError::not_found(&format!(
            "{} '{id}' (no events are recorded for it)",
            kind.as_str()
        )));
    }
    let more = events.len() as u64 > wanted;
    events.truncate(wanted as usize);
    let returned = events.len() as u64;
    let remaining = top.map(|top| top - returned);
    let next_link = (more && remaining != Some(0)).then(|| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(version) = query.get("api-version") {
            pairs.push(("api-version", version.clone()));
        }
        if let Some(remaining) = remaining {
            pairs.push(("top", remaining.to_string()));
        }
        pairs.push(("skip", (skip + returned).to_string()));
        if let Some(size) = page_size {
            pairs.push(("maxpagesize", size.to_string()));
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(name, value)| format!("{name}={}", percent_encode(value)))
            .collect();
        format!(
            "{}{}?{}",
            origin(state.public_url.as_deref(), &uri, &headers),
            uri.path(),
            query.join("&")
        )
    });
    let page = AuditEventPage {
        value: events.into_iter().map(AuditEvent::from).collect(),
        next_link,
    };
    Ok((StatusCode::OK, axum::Json(page)).into_response())
}

/// An account, number, consent or civic address as it stood at a time: its events recorded up to then, applied
/// in order. 404 if it did not exist then (not yet created, or deleted).
#[utoipa::path(
    get, path = "/audit/{aggregateType}/{aggregateId}/asOf", tag = "Audit",
    params(("aggregateType" = String, Path, description = "account, number, consent or civicAddress"),
        ("aggregateId" = String, Path, description = "account name, E.164 number or tenant id"),
        ("api-version" = String, Query),
        ("time" = String, Query, description = "RFC 3339, such as 2024-05-01T10:00:00Z")),
    responses((status = 200, body = AsOfResource), (status = 400, body = crate::error::ErrorResponse),
        (status = 404, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn as_of(
    State(state): State<AppState>,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let kind = parse_kind(&aggregate_type)?;
    let id = parse_id(kind, &aggregate_id)?;
    let time = time_parameter(&query, "time")?.ok_or_else(|| {
        ApiError::bad_request("MissingTime", "time (RFC 3339) is required").with_target("time")
    })?;
    let body = resource_as_of(&state, kind, id, time).await?;
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Aggregate `id` (in its canonical form) of `kind` as the API showed it at `time`: what the
/// asOf route answers and the portal's history page shows. 404 if it did not exist then.
pub(crate) async fn resource_as_of(
    state: &AppState,
    kind: AggregateKind,
    id: String,
    time: DateTime<Utc>,
) -> Result<AsOfResource, ApiError> {
    let store = store(state);
    let missing =
        || ApiError::not_found(&format!("{} '{id}' at {}", kind.as_str(), wire_time(&time)));
    let (version, recorded, resource) = match kind {
        AggregateKind::Account => {
            let as_of = store
                .load_as_of::<Account>(&id, time)
                .await
                .map_err(store_error)?;
            let account = as_of.aggregate.state.as_ref().ok_or_else(missing)?;
            let resource = to_value(AccountResource::without_counts(account));
            (as_of.version, as_of.last_event_time, resource)
        }
        AggregateKind::Number => {
            let as_of = store
                .load_as_of::<Number>(&id, time)
                .await
                .map_err(store_error)?;
            let number = as_of.aggregate.state.as_ref().ok_or_else(missing)?;
            let resource = to_value(NumberResource::from_state(number));
            (as_of.version, as_of.last_event_time, resource)
        }
        AggregateKind::Consent => {
            let as_of = store
                .load_as_of::<Consent>(&id, time)
                .await
                .map_err(store_error)?;
            let consent = as_of.aggregate.state.as_ref().ok_or_else(missing)?;
            let account = linked_account_as_of(store, &consent.tenant_id, time).await?;
            let resource = to_value(RequestForInformationResource::from_state(
                consent,
                account.as_ref(),
            ));
            (as_of.version, as_of.last_event_time, resource)
        }
        AggregateKind::CivicAddress => {
            let as_of = store
                .load_as_of::<CivicAddress>(&id, time)
                .await
                .map_err(store_error)?;
            let address = as_of.aggregate.state.as_ref().ok_or_else(missing)?;
            // As the API shows a civic address (TeamsCivicAddressResource).
            let resource = projections::write::civic_address_row(Some(address))
                .state
                .unwrap_or(Value::Null);
            (as_of.version, as_of.last_event_time, resource)
        }
    };
    Ok(AsOfResource {
        aggregate_type: kind.as_str().to_string(),
        aggregate_id: id,
        as_of: wire_time(&time),
        version,
        last_modified_on: recorded.as_ref().map(wire_time),
        resource,
    })
}

/// The account a consent named at `time`: of the accounts linked to its tenant today, the first
/// that was linked to it then. An account linked then but no longer is not found (the link
/// table keeps only current links).
async fn linked_account_as_of(
    store: &EventStore,
    tenant: &TenantId,
    time: DateTime<Utc>,
) -> Result<Option<AccountName>, ApiError> {
    let names = store
        .accounts_of_tenant(tenant.as_str())
        .await
        .map_err(store_error)?;
    for name in names {
        let as_of = store
            .load_as_of::<Account>(&name, time)
            .await
            .map_err(store_error)?;
        if let Some(account) = as_of.aggregate.state
            && account.services.teams_tenant_id.as_ref() == Some(tenant)
        {
            return Ok(Some(account.name));
        }
    }
    Ok(None)
}

/// Every event recorded in `[from, to)`, optionally of one aggregate type, in commit order, as
/// CloudEvents 1.0 JSON, one per line. Streamed from a database cursor: any size.
#[utoipa::path(
    get, path = "/audit/export", tag = "Audit",
    params(("api-version" = String, Query),
        ("from" = Option<String>, Query, description = "RFC 3339; events recorded at or after it (default: the first)"),
        ("to" = Option<String>, Query, description = "RFC 3339; events recorded before it (default: all)"),
        ("aggregateType" = Option<String>, Query, description = "account, number, consent or civicAddress (default: all)")),
    responses((status = 200, content_type = "application/x-ndjson", body = String,
            description = "one CloudEvents 1.0 JSON object per line"),
        (status = 400, body = crate::error::ErrorResponse),
        (status = 403, body = crate::error::ErrorResponse,
            description = "the caller has no administrator role"),
        (status = 429, body = crate::error::ErrorResponse,
            description = "as many exports as nmp runs at once are running (Retry-After)")),
    security(("bearer" = []))
)]
pub async fn export(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    // A copy of every payload, contacts included: an administrator's operation, not a read.
    if !caller.principal.is_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the audit export needs an administrator role (ProvisioningAPI.Admin or \
             ProvisioningAPI.AdminUser)",
        ));
    }
    let filter = export_filter(&query)?;
    let Ok(permit) = state.exports.permits.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyExports",
            format!(
                "at most {} audit exports run at once; retry when one has finished",
                crate::Exports::CONCURRENT
            ),
        )
        .with_retry_after(Some(std::time::Duration::from_secs(30))));
    };
    let pool = state.exports.pool.clone();
    let idle = state.exports.idle;
    let source = state.event_source.clone();
    // A bounded channel between the cursor and the client: the query is read only as fast as
    // the client takes the lines, and stops when it goes away.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let _permit = permit;
        let events = store::audit::export(&pool, &filter);
        let mut events = std::pin::pin!(events);
        let mut chunk = Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096);
        loop {
            match events.try_next().await {
                Ok(Some(event)) => {
                    if let Err(error) =
                        serde_json::to_writer(&mut chunk, &event.cloud_event(&source))
                    {
                        tracing::error!(%error, "cannot write an exported event");
                        let _ = sender.send(Err(std::io::Error::other(error))).await;
                        return;
                    }
                    chunk.push(b'\n');
                    if chunk.len() >= EXPORT_CHUNK_BYTES {
                        let full = std::mem::replace(
                            &mut chunk,
                            Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096),
                        );
                        match tokio::time::timeout(idle, sender.send(Ok(Bytes::from(full)))).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return, // The client went away.
                            Err(_) => {
                                tracing::warn!(
                                    idle_secs = idle.as_secs(),
                                    "an audit export's client stopped reading; ending it"
                                );
                                return;
                            }
                        }
                    }
                }
                Ok(None) => {
                    if !chunk.is_empty() {
                        let _ = sender.send(Ok(Bytes::from(chunk))).await;
                    }
                    return;
                }
                Err(error) => {
                    // The status is sent already: cutting the body short tells the client.
                    tracing::error!(%error, "the export stopped");
                    let _ = sender.send(Err(std::io::Error::other(error))).await;
                    return;
                }
            }
        }
    });
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// The export's filter from `from`, `to` and `aggregateType`.
pub fn export_filter(query: &HashMap<String, String>) -> Result<ExportFilter, ApiError> {
    let from = time_parameter(query, "from")?;
    let to = time_parameter(query, "to")?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::bad_request(
            "InvalidTimeRange",
            format!(
                "from ({}) is later than to ({})",
                wire_time(&from),
                wire_time(&to)
            ),
        )
        .with_target("from"));
    }
    let aggregate_type = query
        .get("aggregateType")
        .map(|text| parse_kind(text).map(|kind| kind.as_str().to_string()))
        .transpose()?;
    Ok(ExportFilter {
        from,
        to,
        aggregate_type,
    })
}

fn store(state: &AppState) -> &EventStore {
    state.commands.store()
}

pub(crate) fn store_error(error: StoreError) -> ApiError {
    ApiError::from(commands::CommandError::from(error))
}

fn to_value(resource: impl Serialize) -> Value {
    serde_json::to_value(resource).unwrap_or(Value::Null)
}

/// An RFC 3339 time from query parameter `name`. A `+` of an offset that was not escaped
/// arrives as a space, and is read as the `+` it was.
fn time_parameter(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(text)
        .or_else(|error| {
            if text.contains(' ') {
                DateTime::parse_from_rfc3339(&text.replace(' ', "+"))
            } else {
                Err(error)
            }
        })
        .map(|time| Some(time.with_timezone(&Utc)))
        .map_err(|error| {
            ApiError::bad_request(
                "InvalidTime",
                format!(
                    "{name} '{text}' is not an RFC 3339 time such as 2024-05-01T10:00:00Z: {error}"
                ),
            )
            .with_target(name)
        })
}

/// A whole number from `min` to `max` from query parameter `name`.
fn integer_parameter(
    query: &HashMap<String, String>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ApiError> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(value) if (min..=max).contains(&value) => Ok(Some(value)),
        _ => Err(ApiError::bad_request(
            "InvalidQueryParameter",
            format!("{name} must be a whole number from {min} to {max}, not '{text}'"),
        )
        .with_target(name)),
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent_encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_unescaped_offset_is_read_as_written() {
        let time = time_parameter(&query(&[("time", "2024-05-01T12:00:00 02:00")]), "time")
            .unwrap()
            .unwrap();
        assert_eq!(wire_time(&time), "2024-05-01T10:00:00.000Z");
    }

    #[test]
    fn a_reversed_range_is_refused_at_from() {
        let error = export_filter(&query(&[
            ("from", "2024-05-02T00:00:00Z"),
            ("to", "2024-05-01T00:00:00Z"),
        ]))
        .unwrap_err();
        assert_eq!(error.body.code, "InvalidTimeRange");
        assert_eq!(error.body.target.as_deref(), Some("from"));
    }

    #[test]
    fn query_values_are_escaped_in_links() {
        assert_eq!(percent_encode("2024-02-29-preview"), "2024-02-29-preview");
        assert_eq!(percent_encode("a b+c"), "a%20b%2Bc");
    }

    #[test]
    fn page_parameters_are_whole_numbers_in_range() {
        let q = query(&[("maxpagesize", "501"), ("skip", "-1"), ("top", "3")]);
        let error = integer_parameter(&q, "maxpagesize", 1, MAX_PAGE_SIZE).unwrap_err();
        assert_eq!(error.body.code, "InvalidQueryParameter");
        assert_eq!(error.body.target.as_deref(), Some("maxpagesize"));
        assert!(integer_parameter(&q, "skip", 0, MAX_INT32).is_err());
        assert_eq!(integer_parameter(&q, "top", 1, MAX_INT32).unwrap(), Some(3));
        assert_eq!(integer_parameter(&q, "absent", 1, 2).unwrap(), None);
    }
}
