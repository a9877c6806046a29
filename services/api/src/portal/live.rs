//! Live sync states: `GET /portal/live`, a stream of Server-Sent Events that keeps every sync
//! state a portal page shows up to date without a reload — a number turning from pending to
//! synced, or to failed with the backend's reasons, as the provisioning saga records it.
//!
//! It follows the same live feed as the API's `/dashboard/feed` (`routes::dashboard::open_feed`:
//! the installation's events from JetStream, each once, and after a reconnection with
//! `Last-Event-ID` first the events missed since, read from the stream), authenticated by the
//! portal's session cookie instead of a bearer token, for pages of the portal's own origin only.
//! It needs the Read permission and carries nothing but the sync states of accounts, numbers
//! and consents — what the session may read on any page — and only of the resources the page
//! asks for (`keys`).
//!
//! # What an event carries
//!
//! ```text
//! event: sync
//! id: <the event's position in the JetStream stream>
//! data: {"key":"number:+15105850001","status":"failed","text":"failed",
//!        "errors":[{"code":"InvalidAddress","message":"..."}],"deleting":false,"exists":true,
//!        "version":3}
//! ```
//!
//! - `key`: the resource's live key, as its page marks it (`data-live`): `account:NAME`,
//!   `number:+E164` or `consent:TENANT`;
//! - `status`: its sync state now, `pending`, `synced` or `failed` (`deleted` once it is gone);
//! - `errors`: when failed, the backend's reasons (`code`, `message`), else empty;
//! - `deleting`: whether it is being deleted (the page says "being deleted");
//! - `exists`: false once it is gone (the page says "deleted");
//! - `text`: what the page shows for it: the status, "being deleted" or "deleted";
//! - `version`: the resource's version the state belongs to.
//!
//! The state is read from the event store when the event arrives, so it is the resource's
//! latest. Other events: `lagged` (`{"missed": ...}`: the page should reload, it may have
//! missed changes) and `expired` (the session's token expired; the feed ends). A comment
//! opens the stream, and keep-alive comments follow every 15 s of quiet.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::values::SyncState;
use serde::{Deserialize, Serialize};

use super::*;
use crate::AppState;
use crate::routes::dashboard::{
    FeedEvent, FeedSignal, caller_last_event_id, event_stream, open_feed,
};

/// The most resources one page may follow.
pub const MAX_KEYS: usize = 500;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/portal/live", get(live))
}

#[derive(Deserialize)]
struct LiveQuery {
    /// The live keys of the page's resources, separated by commas; all resources without it.
    keys: Option<String>,
}

/// The `data` of a `sync` event (see the module's documentation).
#[derive(Debug, Serialize)]
pub struct SyncChange {
    pub key: String,
    pub status: &'static str,
    pub text: &'static str,
    pub errors: Vec<domain::values::ProvisioningError>,
    pub deleting: bool,
    pub exists: bool,
    pub version: u64,
}

impl SyncChange {
    fn of(key: String, current: Option<(&SyncState, bool)>) -> SyncChange {
        match current {
            Some((sync, deleting)) => SyncChange {
                key,
                status: sync.status.as_str(),
                text: if deleting {
                    "being deleted"
                } else {
                    sync.status.as_str()
                },
                errors: if sync.status == domain::ProvisioningStatus::Failed {
                    sync.errors.clone()
                } else {
                    Vec::new()
                },
                deleting,
                exists: true,
                version: sync.version,
            },
            None => SyncChange {
                key,
                status: "deleted",
                text: "deleted",
                errors: Vec::new(),
                deleting: false,
                exists: false,
                version: 0,
            },
        }
    }
}

/// The keys a page asks for: well-formed live keys only, at most [`MAX_KEYS`].
fn wanted_keys(text: &str) -> HashSet<String> {
    text.split(',')
        .map(str::trim)
        .filter(|key| {
            ["account:", "number:", "consent:"]
                .iter()
                .any(|kind| key.strip_prefix(kind).is_some_and(|id| !id.is_empty()))
        })
        .take(MAX_KEYS)
        .map(str::to_string)
        .collect()
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, message.to_string()).into_response()
}

async fn live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
) -> Response {
    // Only the portal's own pages: a browser says where a request comes from.
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
    {
        return refused(
            StatusCode::FORBIDDEN,
            "Live updates are for the portal's own pages.",
        );
    }
    let Some(session) = session(&state, &headers).await else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "Sign in to the portal to follow live updates.",
        );
    };
    if !session.principal.allows(auth::Permission::Read) {
        return refused(StatusCode::FORBIDDEN, "Your role may not read sync states.");
    }
    let keys: Option<Arc<HashSet<String>>> =
        query.keys.as_deref().map(|k| Arc::new(wanted_keys(k)));
    let signals = match open_feed(
        &state,
        caller_last_event_id(&headers),
        session.principal.expires_at,
    )
    .await
    {
        Ok(signals) => signals,
        Err(error) => {
            let mut response = refused(error.status, &error.body.message);
            if let Some(after) = error.retry_after {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(after.as_secs().max(1)),
                );
            }
            return response;
        }
    };
    let opening = futures::stream::once(async { Some(Event::default().comment("nmp live")) });
    let changes = futures::StreamExt::then(signals, move |signal| {
        let state = state.clone();
        let keys = keys.clone();
        async move {
            match signal {
                FeedSignal::Event(event) => sync_event(&state, keys.as_deref(), &event).await,
                FeedSignal::Replayed => None,
                FeedSignal::Lagged(missed) => Some(Event::default().event("lagged").data(missed)),
                FeedSignal::Expired => Some(
                    Event::default()
                        .event("expired")
                        .data("{\"reason\":\"the session expired; sign in again\"}"),
                ),
            }
        }
    });
    let stream = futures::StreamExt::filter_map(
        futures::StreamExt::chain(opening, changes),
        |event| async move { event.map(Ok::<_, Infallible>) },
    );
    event_stream(stream)
}

/// The `sync` event of a feed event: the resource's sync state now, when the page follows it.
async fn sync_event(
    state: &AppState,
    keys: Option<&HashSet<String>>,
    event: &FeedEvent,
) -> Option<Event> {
    let key = format!("{}:{}", event.aggregate_type, event.aggregate_id);
    if keys.is_some_and(|keys| !keys.contains(&key)) {
        return None;
    }
    let change = match event.aggregate_type.as_str() {
        "account" => {
            let name = domain::AccountName::parse(event.aggregate_id.as_str()).ok()?;
            let loaded = state.commands.account(&name).await;
            let loaded = loaded
                .map_err(|e| tracing::warn!(%e, "live: cannot read an account"))
                .ok()?;
            let account = loaded.aggregate.state.as_ref();
            SyncChange::of(key, account.map(|a| (&a.sync, a.deleting)))
        }
        "number" => {
            let number = domain::E164::parse(event.aggregate_id.as_str()).ok()?;
            let loaded = state.commands.number(&number).await;
            let loaded = loaded
                .map_err(|e| tracing::warn!(%e, "live: cannot read a number"))
                .ok()?;
            let number = loaded.aggregate.state.as_ref();
            SyncChange::of(key, number.map(|n| (&n.sync, n.deleting)))
        }
        "consent" => {
            let tenant = domain::TenantId::parse(event.aggregate_id.as_str()).ok()?;
            let loaded = state.commands.consent(&tenant).await;
            let loaded = loaded
                .map_err(|e| tracing::warn!(%e, "live: cannot read a consent"))
                .ok()?;
            let consent = loaded.aggregate.state.as_ref();
            SyncChange::of(key, consent.map(|c| (&c.sync, false)))
        }
        _ => return None,
    };
    let data = serde_json::to_string(&change).ok()?;
    let mut sse = Event::default().event("sync").data(data);
    if let Some(position) = event.position {
        sse = sse.id(position.to_string());
    }
    Some(sse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_asks_only_for_live_keys() {
        let keys = wanted_keys("number:+15105850001, account:contoso,consent:,evil:x,number:");
        assert_eq!(keys.len(), 2);
        assert!(keys.contains("number:+15105850001") && keys.contains("account:contoso"));
        let many: Vec<String> = (0..MAX_KEYS + 10)
            .map(|i| format!("account:a{i}"))
            .collect();
        assert_eq!(wanted_keys(&many.join(",")).len(), MAX_KEYS);
    }
}
