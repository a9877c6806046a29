//! The dashboard API, nmp's own (not part of the Provisioning API): totals of numbers and
//! consents from the read tables, the recent activity from the audit log, and a live feed of
//! changes as Server-Sent Events. Every route needs the Read permission and `api-version`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use projections::filter::Resource;
use projections::query::{self, Group, NumberGrouping};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use utoipa::ToSchema;

use crate::AppState;
use crate::context::Caller;
use crate::error::ApiError;
use crate::routes::lists::{parse_filter, query_error};
use crate::wire::wire_time;

/// Activity rows answered unless `top` says otherwise, and the most `top` may ask for.
pub const DEFAULT_ACTIVITY: u32 = 50;
pub const MAX_ACTIVITY: u32 = 500;
/// How often an idle feed sends a keep-alive comment.
pub const FEED_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/numbers/totals", get(number_totals))
        .route("/dashboard/consents/totals", get(consent_totals))
        .route("/dashboard/activity", get(activity))
        .route("/dashboard/feed", get(feed))
}

// ---- wire types ----------------------------------------------------------------------------

/// A group and how many it counts; `key` is null for the items without a value (numbers with
/// no usage, consents without a customer relationship).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct GroupCount {
    pub key: Option<String>,
    pub count: u64,
}

impl From<Group> for GroupCount {
    fn from(group: Group) -> Self {
        GroupCount {
            key: group.key,
            count: group.count,
        }
    }
}

/// Live numbers per group. With `groupBy=service` a number counts under each service it has
/// enabled, so the groups may add up to more than `total`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberTotals {
    pub group_by: String,
    /// Live numbers matching the filter.
    pub total: u64,
    /// Most first, then by key.
    pub groups: Vec<GroupCount>,
}

/// Live consents by their status and by their customer relationship's status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentTotals {
    pub total: u64,
    pub by_status: Vec<GroupCount>,
    pub by_relationship_status: Vec<GroupCount>,
}

/// One change: who made it, when, to what, under which ticket.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityItem {
    pub time: String,
    /// The caller (token subject), or the system component.
    pub subject: Option<String>,
    pub roles: Vec<String>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub ticket_id: Option<String>,
    pub correlation_id: Option<String>,
    pub client_request_id: Option<String>,
}

/// The most recent changes, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Activity {
    pub value: Vec<ActivityItem>,
}

/// An event as the live feed shows it: the SSE `data` of an event named by its CloudEvents
/// type, with its position in the event stream as the SSE id (so a feed that reconnects with
/// `Last-Event-ID` resumes after it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FeedEvent {
    /// `nmp.<aggregate type>.<event type>` (the `ce-type` header); the SSE event name.
    #[serde(skip)]
    pub ce_type: String,
    /// The event's sequence in the JetStream stream; the SSE id.
    #[serde(skip)]
    pub position: Option<u64>,
    /// `<aggregate type>:<aggregate id>:<sequence>` (`Nats-Msg-Id`).
    pub event_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    /// When it happened (`ce-time`), RFC 3339.
    pub time: Option<String>,
}

/// Reads the events of the stream after a position, for a feed that reconnects.
pub trait FeedHistory: Send + Sync {
    /// The events after stream position `after`, up to the stream's end now, at most `limit`;
    /// and whether more followed.
    fn since(
        &self,
        after: u64,
        limit: usize,
    ) -> futures::future::BoxFuture<'_, Result<(Vec<FeedEvent>, bool), String>>;
}

/// A reconnecting feed replays at most this many events; beyond, it says how far it lags.
pub const FEED_REPLAY_LIMIT: usize = 10_000;

/// What the feed source broadcasts to the open feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    Event(FeedEvent),
    /// nmp is shutting down: open feeds end so the server can stop.
    ShuttingDown,
}

/// SSE fields may not hold line breaks; header values should not either.
fn single_line(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}

impl FeedEvent {
    /// The event of a NATS message from its headers (`header` looks one up by name); None for
    /// a message that is not an nmp event.
    pub fn from_headers(
        header: impl Fn(&str) -> Option<String>,
        position: Option<u64>,
    ) -> Option<FeedEvent> {
        let get = |name: &str| header(name).map(|v| single_line(&v));
        let aggregate_type = get("nmp-aggregate-type")?;
        let aggregate_id = get("nmp-aggregate-id")?;
        let sequence = get("nmp-sequence")?.parse().ok()?;
        let event_id = get("Nats-Msg-Id")
            .unwrap_or_else(|| format!("{aggregate_type}:{aggregate_id}:{sequence}"));
        let ce_type = get("ce-type")?;
        let event_type = ce_type
            .strip_prefix(&format!("nmp.{aggregate_type}."))
            .or_else(|| ce_type.rsplit('.').next())
            .unwrap_or_default()
            .to_string();
        Some(FeedEvent {
            ce_type,
            position,
            event_id,
            aggregate_type,
            aggregate_id,
            sequence,
            event_type,
            time: get("ce-time"),
        })
    }

    fn to_sse(&self) -> Event {
        let id = match self.position {
            Some(position) => position.to_string(),
            None => self.event_id.clone(),
        };
        let event = Event::default().event(&self.ce_type).id(id);
        match serde_json::to_string(self) {
            Ok(data) => event.data(data),
            Err(_) => event.data("{}"),
        }
    }
}

// ---- handlers ------------------------------------------------------------------------------

/// The stream position a reconnecting feed last saw (`Last-Event-ID`), if it is one.
pub fn caller_last_event_id(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| {
            ApiError::bad_request("InvalidQueryParameter", format!("the query string: {e}"))
        })
}

fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut found = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
    let first = found.next();
    if found.next().is_some() {
        return Err(ApiError::bad_request(
            "InvalidQueryParameter",
            format!("{name} is given more than once"),
        )
        .with_target(name));
    }
    Ok(first.map(String::as_str))
}

/// Live numbers counted per account, service, usage or sync state.
#[utoipa::path(
    get, path = "/dashboard/numbers/totals", tag = "Dashboard",
    params(("api-version" = String, Query),
        ("groupBy" = String, Query, description = "account, service, usage or syncState"),
        ("filter" = Option<String>, Query, description = "as for GET /numbers")),
    responses((status = 200, body = NumberTotals), (status = 400, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn number_totals(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&uri)?;
    let allowed = NumberGrouping::NAMES.join(", ");
    let group_by = single(&pairs, "groupBy")?.ok_or_else(|| {
        ApiError::bad_request(
            "InvalidQueryParameter",
            format!("groupBy is required: one of {allowed}"),
        )
        .with_target("groupBy")
    })?;
    let grouping = NumberGrouping::parse(group_by).ok_or_else(|| {
        ApiError::bad_request(
            "InvalidQueryParameter",
            format!("groupBy '{group_by}' is not one of {allowed}"),
        )
        .with_target("groupBy")
    })?;
    let filter = single(&pairs, "filter")?
        .map(|text| parse_filter(text, Resource::Numbers))
        .transpose()?;
    let totals = query::number_totals(state.commands.store().pool(), grouping, filter.as_ref())
        .await
        .map_err(query_error)?;
    Ok(axum::Json(NumberTotals {
        group_by: group_by.to_string(),
        total: totals.total,
        groups: totals.groups.into_iter().map(GroupCount::from).collect(),
    })
    .into_response())
}

/// Live consents counted by status and by customer relationship status.
#[utoipa::path(
    get, path = "/dashboard/consents/totals", tag = "Dashboard",
    params(("api-version" = String, Query)),
    responses((status = 200, body = ConsentTotals)),
    security(("bearer" = []))
)]
pub async fn consent_totals(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let totals = query::consent_totals(state.commands.store().pool())
        .await
        .map_err(query_error)?;
    Ok(axum::Json(ConsentTotals {
        total: totals.total,
        by_status: totals.by_status.into_iter().map(GroupCount::from).collect(),
        by_relationship_status: totals
            .by_relationship_status
            .into_iter()
            .map(GroupCount::from)
            .collect(),
    })
    .into_response())
}

/// The most recent changes from the audit log: who, when, what, which ticket.
#[utoipa::path(
    get, path = "/dashboard/activity", tag = "Dashboard",
    params(("api-version" = String, Query),
        ("top" = Option<i32>, Query, description = "1 to 500, default 50")),
    responses((status = 200, body = Activity), (status = 400, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn activity(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&uri)?;
    let top = match single(&pairs, "top")? {
        None => DEFAULT_ACTIVITY,
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_ACTIVITY).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "InvalidQueryParameter",
                    format!("top must be a whole number from 1 to {MAX_ACTIVITY}, not '{text}'"),
                )
                .with_target("top")
            })?,
    };
    let rows = query::recent_activity(state.commands.store().pool(), top)
        .await
        .map_err(query_error)?;
    let value = rows
        .into_iter()
        .map(|row| ActivityItem {
            time: wire_time(&row.occurred_at),
            subject: row.subject,
            roles: row
                .roles
                .and_then(|r| serde_json::from_value(r).ok())
                .unwrap_or_default(),
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: row.sequence,
            event_type: row.event_type,
            ticket_id: row.ticket_id,
            correlation_id: row.correlation_id,
            client_request_id: row.client_request_id,
        })
        .collect();
    Ok(axum::Json(Activity { value }).into_response())
}

/// A live feed of changes as Server-Sent Events: each event nmp publishes on NATS becomes
/// `event: <ce-type>`, `id: <its sequence in the event stream>`, `data: {eventId,
/// aggregateType, aggregateId, sequence, eventType, time}`. A comment opens the stream and
/// keep-alive comments follow every 15 s of quiet. A feed that reconnects with `Last-Event-ID`
/// first gets the events it missed since (up to 10,000), from the stream. A client too slow to
/// keep up gets `event: nmp.feed.lagged` with `{"missed": n}`.
#[utoipa::path(
    get, path = "/dashboard/feed", tag = "Dashboard",
    params(("api-version" = String, Query)),
    responses((status = 200, content_type = "text/event-stream", body = FeedEvent,
            description = "one SSE event per change"),
        (status = 503, body = crate::error::ErrorResponse, description = "FeedUnavailable: this instance has no feed")),
    security(("bearer" = []))
)]
pub async fn feed(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    caller: Caller,
) -> Result<Response, ApiError> {
    let signals = open_feed(
        &state,
        caller_last_event_id(&headers),
        caller.principal.expires_at,
    )
    .await?;
    let opening = futures::stream::once(async { Event::default().comment("nmp feed") });
    let events = futures::StreamExt::map(signals, |signal| match signal {
        FeedSignal::Event(event) => event.to_sse(),
        FeedSignal::Replayed => Event::default().comment("replayed"),
        FeedSignal::Lagged(missed) => Event::default().event("nmp.feed.lagged").data(missed),
        FeedSignal::Expired => Event::default()
            .event("nmp.feed.expired")
            .data("{\"reason\":\"the token expired; reconnect with a fresh one\"}"),
    });
    let stream = futures::StreamExt::map(
        futures::StreamExt::chain(opening, events),
        Ok::<_, Infallible>,
    );
    Ok(event_stream(stream))
}

/// An SSE answer of `stream`, with keep-alive comments every 15 s of quiet, that buffering
/// proxies pass on at once.
pub fn event_stream(
    stream: impl futures::Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    let mut response = Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(FEED_KEEP_ALIVE)
                .text("keep-alive"),
        )
        .into_response();
    // Tell buffering proxies (nginx) to pass events on at once.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What an open feed passes on, in order: each event once, then what its client should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSignal {
    /// An event, missed since `Last-Event-ID` (read from the stream) or live.
    Event(FeedEvent),
    /// A live event the replay gave already.
    Replayed,
    /// The client missed events: how many, as the JSON of `nmp.feed.lagged`'s data.
    Lagged(String),
    /// The token the feed was opened with expired; the feed ends after this.
    Expired,
}

/// Opens a live feed of this instance's events for a caller whose token expires at
/// `expires_at` (seconds since the Unix epoch): first the events after stream position
/// `resume_after` (a reconnecting client's `Last-Event-ID`; at most 10,000, read from the
/// stream), then each live event once, until the token expires or nmp shuts down. Each open
/// feed holds one of the instance's feed slots until it ends. The API's `/dashboard/feed` and
/// the portal's live updates both follow it.
pub async fn open_feed(
    state: &AppState,
    resume_after: Option<u64>,
    expires_at: Option<u64>,
) -> Result<impl futures::Stream<Item = FeedSignal> + Send + 'static, ApiError> {
    let Some(source) = &state.feed else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "FeedUnavailable",
            "this nmp instance has no live feed (it does not listen to NATS)",
        ));
    };
    // Each open feed holds a slot until it ends.
    let Ok(slot) = state.feeds.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyFeeds",
            format!(
                "at most {} live feeds are open at once on this instance; retry later",
                crate::MAX_FEEDS
            ),
        )
        .with_retry_after(Some(std::time::Duration::from_secs(10))));
    };
    // A feed ends when the token it was opened with expires: the client reconnects with a
    // fresh one, which is checked again.
    let expires = expires_at.map(|exp| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let left = std::time::Duration::from_secs(exp).saturating_sub(now);
        tokio::time::Instant::now() + left
    });
    // Subscribed first, so nothing falls between the replay and the live events.
    let receiver = source.subscribe();
    let mut replayed: Vec<FeedSignal> = Vec::new();
    let mut last_position = resume_after;
    if let (Some(after), Some(history)) = (resume_after, &state.feed_history) {
        match history.since(after, FEED_REPLAY_LIMIT).await {
            Ok((events, more)) => {
                for event in events {
                    last_position = event.position.or(last_position);
                    replayed.push(FeedSignal::Event(event));
                }
                if more {
                    replayed.push(FeedSignal::Lagged(format!(
                        "{{\"missed\":\"more than {FEED_REPLAY_LIMIT} events; reload\"}}"
                    )));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot replay the feed from Last-Event-ID");
                replayed.push(FeedSignal::Lagged(
                    "{\"missed\":\"the events since Last-Event-ID cannot be read; reload\"}"
                        .to_string(),
                ));
            }
        }
    }
    let live = futures::stream::unfold(Some((receiver, slot)), move |open| async move {
        let (mut receiver, slot) = open?;
        let next = async {
            match expires {
                Some(at) => tokio::time::timeout_at(at, receiver.recv()).await.ok(),
                None => Some(receiver.recv().await),
            }
        };
        let signal = match next.await {
            // The token expired: a last signal says so, then the feed ends.
            None => return Some((FeedSignal::Expired, None)),
            // Replayed already.
            Some(Ok(FeedItem::Event(event)))
                if event
                    .position
                    .zip(last_position)
                    .is_some_and(|(p, l)| p <= l) =>
            {
                FeedSignal::Replayed
            }
            Some(Ok(FeedItem::Event(event))) => FeedSignal::Event(event),
            Some(Ok(FeedItem::ShuttingDown) | Err(broadcast::error::RecvError::Closed)) => {
                return None;
            }
            Some(Err(broadcast::error::RecvError::Lagged(missed))) => {
                FeedSignal::Lagged(format!("{{\"missed\":{missed}}}"))
            }
        };
        Some((signal, Some((receiver, slot))))
    });
    Ok(futures::StreamExt::chain(
        futures::stream::iter(replayed),
        live,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_event_is_read_from_the_relays_headers() {
        let headers = [
            ("Nats-Msg-Id", "number:+15105850321:3"),
            ("ce-type", "nmp.number.NumberDeleted"),
            ("ce-time", "2024-01-18T07:58:49.570Z"),
            ("nmp-aggregate-type", "number"),
            ("nmp-aggregate-id", "+15105850321"),
            ("nmp-sequence", "3"),
        ];
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        let event = FeedEvent::from_headers(lookup, Some(7)).expect("an event");
        assert_eq!(event.event_type, "NumberDeleted");
        assert_eq!(event.event_id, "number:+15105850321:3");
        assert_eq!(event.position, Some(7));
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"eventId": "number:+15105850321:3", "aggregateType": "number",
                "aggregateId": "+15105850321", "sequence": 3, "eventType": "NumberDeleted",
                "time": "2024-01-18T07:58:49.570Z"})
        );
        assert_eq!(FeedEvent::from_headers(|_| None, None), None);
        let broken = FeedEvent::from_headers(
            |name| match name {
                "ce-type" => Some("nmp.account.Evil\r\nevent: x".to_string()),
                "nmp-aggregate-type" => Some("account".to_string()),
                "nmp-aggregate-id" => Some("a\nb".to_string()),
                "nmp-sequence" => Some("1".to_string()),
                _ => None,
            },
            None,
        )
        .expect("an event");
        assert!(!broken.ce_type.contains('\n') && !broken.aggregate_id.contains('\n'));
        // Building the SSE event does not panic on what was cleaned.
        let _ = broken.to_sse();
    }
}
