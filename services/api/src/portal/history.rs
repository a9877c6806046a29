//! The history of an account, a number or a consent (or a civic address): every event recorded
//! for it — what happened, who did it, when, under which ticket — as the audit routes show
//! them, and the resource as it was at a time staff choose, read by the same audit code.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDateTime, Utc};
use domain::AggregateKind;
use domain::values::SyncState;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::pages::*;
use super::*;
use crate::AppState;
use crate::routes::audit::{
    AsOfResource, AuditEvent, parse_id, parse_kind, resource_as_of, store_error,
};

/// Events on a page of a history.
const HISTORY_ROWS: u64 = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/portal/history/{kind}/{id}", get(history))
}

/// The history page of aggregate `id` of `kind` (`account`, `number`, `consent`,
/// `civicAddress`).
pub(super) fn history_path(kind: &str, id: &str) -> String {
    format!("/portal/history/{kind}/{}", urlencoding(id))
}

#[derive(Deserialize)]
struct HistoryQuery {
    /// The time to show the resource at: a `datetime-local` value (read as UTC) or RFC 3339.
    at: Option<String>,
    /// Events passed over (the earlier pages).
    skip: Option<u64>,
}

/// What the page shows of the resource today.
struct Now {
    /// Its sync state and live key, when it has one.
    sync: Option<(String, SyncState, bool)>,
    /// Its own page in the portal.
    link: Option<(String, String)>,
    /// Whether it still exists.
    exists: bool,
}

/// `at` as a time: `2024-05-01T10:00`, `2024-05-01T10:00:30` (what a `datetime-local` input
/// sends, read as UTC), with fractions of a second, or RFC 3339 with its offset.
fn parse_at(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    if !session.principal.allows(auth::Permission::Read) {
        return (
            StatusCode::FORBIDDEN,
            trouble("Your role may not read what happened to numbers, accounts or consents."),
        )
            .into_response();
    }
    let not_found = |message: &str| (StatusCode::NOT_FOUND, trouble(message)).into_response();
    let Ok(kind) = parse_kind(&kind) else {
        return not_found(
            "There is history only of an account, a number, a consent or a civic address.",
        );
    };
    let Ok(id) = parse_id(kind, &id) else {
        return not_found(&format!("There is no {} by this name.", kind_words(kind)));
    };
    let skip = query.skip.unwrap_or(0);
    let events = state
        .commands
        .store()
        .history(kind.as_str(), &id, skip, HISTORY_ROWS + 1)
        .await
        .map_err(store_error);
    let mut events: Vec<AuditEvent> = match events {
        Ok(events) => events.into_iter().map(AuditEvent::from).collect(),
        Err(error) => return unreadable("history", error.body.message),
    };
    if events.is_empty() && skip == 0 {
        return not_found(&format!(
            "Nothing is recorded for {} {id}.",
            kind_words(kind)
        ));
    }
    let more = events.len() as u64 > HISTORY_ROWS;
    events.truncate(HISTORY_ROWS as usize);
    let now = match now_of(&state, kind, &id).await {
        Ok(now) => now,
        Err(error) => return unreadable("history", error),
    };
    let typed_at = query.at.unwrap_or_default();
    let as_of = if typed_at.trim().is_empty() {
        AsOfAnswer::NotAsked
    } else {
        match parse_at(&typed_at) {
            None => AsOfAnswer::BadTime,
            Some(time) => match resource_as_of(&state, kind, id.clone(), time).await {
                Ok(resource) => AsOfAnswer::Found(Box::new(resource)),
                Err(error) if error.status == StatusCode::NOT_FOUND => AsOfAnswer::Missing(time),
                Err(error) => return unreadable("history", error.body.message),
            },
        }
    };
    let view = View {
        kind,
        id: &id,
        events: &events,
        skip,
        more,
        now: &now,
        typed_at: typed_at.trim(),
        as_of: &as_of,
    };
    history_html(&session, &view).into_response()
}

/// The resource today: its sync state (live on the page) and its own page.
async fn now_of(
    state: &AppState,
    kind: AggregateKind,
    id: &str,
) -> Result<Now, commands::CommandError> {
    let mut now = Now {
        sync: None,
        link: None,
        exists: true,
    };
    match kind {
        AggregateKind::Account => {
            let Ok(name) = domain::AccountName::parse(id) else {
                return Ok(now);
            };
            let loaded = state.commands.account(&name).await?;
            match &loaded.aggregate.state {
                Some(account) => {
                    now.sync = Some((
                        format!("account:{id}"),
                        account.sync.clone(),
                        account.deleting,
                    ));
                    now.link = Some((
                        format!("/portal/accounts/{}", urlencoding(id)),
                        format!("Account {id}"),
                    ));
                }
                None => now.exists = false,
            }
        }
        AggregateKind::Number => {
            let Ok(e164) = domain::E164::parse(id) else {
                return Ok(now);
            };
            let loaded = state.commands.number(&e164).await?;
            match &loaded.aggregate.state {
                Some(number) => {
                    now.sync = Some((format!("number:{id}"), number.sync.clone(), number.deleting));
                    let account = number.account.as_str();
                    now.link = Some((
                        format!(
                            "/portal/accounts/{}/numbers/{}",
                            urlencoding(account),
                            urlencoding(id)
                        ),
                        format!("Number {id} of account {account}"),
                    ));
                }
                None => now.exists = false,
            }
        }
        AggregateKind::Consent => {
            let Ok(tenant) = domain::TenantId::parse(id) else {
                return Ok(now);
            };
            let loaded = state.commands.consent(&tenant).await?;
            match &loaded.aggregate.state {
                Some(consent) => {
                    now.sync = Some((format!("consent:{id}"), consent.sync.clone(), false));
                    now.link = Some((
                        format!("/portal/consents/{}", urlencoding(id)),
                        format!("Consent of {id}"),
                    ));
                }
                None => now.exists = false,
            }
        }
        AggregateKind::CivicAddress => {}
    }
    Ok(now)
}

/// The answer to "as it was at".
enum AsOfAnswer {
    NotAsked,
    BadTime,
    Missing(DateTime<Utc>),
    Found(Box<AsOfResource>),
}

struct View<'a> {
    kind: AggregateKind,
    id: &'a str,
    events: &'a [AuditEvent],
    skip: u64,
    more: bool,
    now: &'a Now,
    typed_at: &'a str,
    as_of: &'a AsOfAnswer,
}

fn kind_words(kind: AggregateKind) -> &'static str {
    match kind {
        AggregateKind::Account => "account",
        AggregateKind::Number => "number",
        AggregateKind::Consent => "consent",
        AggregateKind::CivicAddress => "civic address",
    }
}

/// `serviceProvisioningStatus` → "Service provisioning status", `NumberAdded` → "Number
/// added", `ticket_id` → "Ticket id".
fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut previous_lower = false;
    for c in name.chars() {
        if c == '_' || c == '/' || c == '.' {
            out.push(' ');
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    let mut chars = out.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => out,
    }
}

/// A time as the portal writes times.
fn readable_time(text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S%.3f UTC")
                .to_string()
        })
        .unwrap_or_else(|_| text.to_string())
}

/// A JSON value as people read it: an object as a list of its fields (names in words), a list
/// of plain values on one line, yes and no, and "none" for what is missing.
fn readable(value: &Value) -> Markup {
    html! {
        @match value {
            Value::Null => "none",
            Value::Bool(true) => "yes",
            Value::Bool(false) => "no",
            Value::Number(n) => (n.to_string()),
            Value::String(s) => (s),
            Value::Array(items) if items.is_empty() => "none",
            Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
                @for (i, item) in items.iter().enumerate() {
                    @if i > 0 { ", " }
                    (readable(item))
                }
            }
            Value::Array(items) => {
                ul.plain { @for item in items { li { (readable(item)) } } }
            }
            Value::Object(fields) if fields.is_empty() => "none",
            Value::Object(fields) => {
                dl.fields {
                    @for (name, field) in fields {
                        dt { (words(name)) }
                        dd { (readable(field)) }
                    }
                }
            }
        }
    }
}

fn text_of<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

/// An event's payload without the wrapper naming its type (`{"NumberAdded": {...}}`), which
/// the row says already.
fn payload_of(event: &AuditEvent) -> &Value {
    match event.payload.as_object() {
        Some(fields) if fields.len() == 1 => {
            fields.get(&event.event_type).unwrap_or(&event.payload)
        }
        _ => &event.payload,
    }
}

fn history_html(session: &Session, view: &View<'_>) -> Markup {
    let kind = view.kind;
    let id = view.id;
    let path = history_path(kind.as_str(), id);
    let title = format!("History of {} {id}", kind_words(kind));
    page(
        &title,
        Some(session),
        html! {
            h1 { (title) }
            dl {
                dt { "Now" }
                dd {
                    @if !view.now.exists {
                        "It no longer exists."
                    } @else if let Some((key, sync, deleting)) = &view.now.sync {
                        "Sync state: " (sync_cell(key, sync, *deleting))
                    } @else {
                        "It exists."
                    }
                }
                @if let Some((href, text)) = &view.now.link {
                    dt { "Its page" }
                    dd { a href=(href) { (text) } }
                }
            }
            section.card aria-labelledby="as-of" {
                h2 id="as-of" { "As it was at a time" }
                form.inline method="get" action=(path) {
                    label for="at" { "Time (UTC)" }
                    @if matches!(view.as_of, AsOfAnswer::BadTime) {
                        input id="at" type="datetime-local" step="1" name="at" value=(view.typed_at)
                            aria-invalid="true" aria-describedby="at-error";
                        p.error id="at-error" role="alert" {
                            "“" (view.typed_at) "” is not a time: pick a date and a time, such as 2024-05-01 10:00."
                        }
                    } @else {
                        input id="at" type="datetime-local" step="1" name="at" value=(view.typed_at);
                    }
                    button type="submit" { "Show" }
                }
                @match view.as_of {
                    AsOfAnswer::Missing(time) => {
                        p role="status" {
                            "At " (time.format("%Y-%m-%d %H:%M:%S UTC")) " this " (kind_words(kind))
                            " did not exist: it had not been created yet, or had been deleted."
                        }
                    }
                    AsOfAnswer::Found(resource) => {
                        p role="status" {
                            "At " (readable_time(&resource.as_of)) ": version " (resource.version)
                            @if let Some(changed) = &resource.last_modified_on {
                                ", last changed " (readable_time(changed))
                            }
                            "."
                        }
                        div.as-of { (readable(&resource.resource)) }
                    }
                    AsOfAnswer::NotAsked | AsOfAnswer::BadTime => {}
                }
            }
            table {
                caption { "What happened, oldest first" }
                thead {
                    tr {
                        th scope="col" { "#" }
                        th scope="col" { "When" }
                        th scope="col" { "What" }
                        th scope="col" { "Who" }
                        th scope="col" { "Ticket" }
                        th scope="col" { "Details" }
                    }
                }
                tbody {
                    @for event in view.events {
                        @let metadata = &event.metadata;
                        tr {
                            td { (event.sequence) }
                            td { (event.time.as_deref().map_or("unknown".to_string(), readable_time)) }
                            td { (words(&event.event_type)) }
                            td {
                                (text_of(metadata, "subject").unwrap_or("unknown"))
                                @if let Some(roles) = metadata.get("roles").and_then(Value::as_array).filter(|r| !r.is_empty()) {
                                    br;
                                    span.hint { (readable(&Value::Array(roles.clone()))) }
                                }
                            }
                            td { (text_of(metadata, "ticket_id").unwrap_or("none")) }
                            td {
                                details {
                                    summary { "Details of #" (event.sequence) }
                                    (readable(payload_of(event)))
                                }
                            }
                        }
                    }
                    @if view.events.is_empty() {
                        tr { td colspan="6" { "No events follow this page" } }
                    }
                }
            }
            nav aria-label="Pages" {
                @if view.skip > 0 {
                    a href={ (path) "?skip=" (view.skip.saturating_sub(HISTORY_ROWS)) } { "Earlier events" }
                    " "
                }
                @if view.more {
                    a href={ (path) "?skip=" (view.skip + HISTORY_ROWS) } { "Later events" }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_words() {
        assert_eq!(
            words("serviceProvisioningStatus"),
            "Service provisioning status"
        );
        assert_eq!(words("NumberAdded"), "Number added");
        assert_eq!(words("ticket_id"), "Ticket id");
        assert_eq!(words("teamsTenantId"), "Teams tenant id");
    }

    #[test]
    fn a_chosen_time_is_read_as_utc() {
        let at = parse_at("2024-05-01T10:00").expect("a time");
        assert_eq!(at.to_rfc3339(), "2024-05-01T10:00:00+00:00");
        let at = parse_at("2024-05-01T10:00:30.250").expect("a time");
        assert_eq!(at.timestamp_millis() % 1000, 250);
        let at = parse_at("2024-05-01T12:00:00+02:00").expect("a time");
        assert_eq!(at.to_rfc3339(), "2024-05-01T10:00:00+00:00");
        assert_eq!(parse_at("yesterday"), None);
    }
}
