//! The portal's pages, as maud templates: every input has a label, every error stands next to
//! the field at fault, and nothing is inline script or style.

use domain::Service;
use domain::values::{ProvisioningStatus, SyncState};
use maud::{DOCTYPE, Markup, html};
use projections::query::Listed;

use super::Session;

pub(super) fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · nmp" }
                link rel="stylesheet" href="/portal/static/portal.css";
                script src="/portal/static/portal.js" defer {}
            }
            body {
                header {
                    a.brand href="/portal" { "nmp" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            a href="/portal" { "Home" }
                            a href="/portal/accounts" { "Accounts" }
                            a href="/portal/numbers" { "Numbers" }
                            a href="/portal/consents" { "Consents" }
                            a href="/portal/failures" { "Failures" }
                        }
                        (super::home::search_form("header-search", "Search numbers, accounts and tenants", ""))
                        span.who {
                            "Signed in as " (session.principal.subject)
                        }
                        form method="post" action="/portal/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button.quiet type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page that says what went wrong and how to go on.
pub(super) fn trouble(message: &str) -> Markup {
    page(
        "Something went wrong",
        None,
        html! {
            h1 { "Something went wrong" }
            p.error role="alert" { (message) }
            p { a href="/portal" { "Back to the portal" } }
        },
    )
}

/// Percent-encodes a value for a query string.
pub(super) fn urlencoding(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A resource's sync state (with the backend's reasons when it failed), marked with the
/// resource's live key (`account:NAME`, `number:+E164`, `consent:TENANT`) so that the page's
/// script can update it from the live feed without a reload.
pub(super) fn sync_cell(live_key: &str, sync: &SyncState, deleting: bool) -> Markup {
    html! {
        span.sync data-live=(live_key) aria-live="polite" {
            @if deleting {
                "being deleted"
            } @else {
                (sync.status.as_str())
                @if sync.status == ProvisioningStatus::Failed {
                    @for error in &sync.errors {
                        br;
                        span.error { (error.code) ": " (error.message) }
                    }
                }
            }
        }
    }
}

pub(super) fn services_text(enabled: Vec<Service>) -> String {
    if enabled.is_empty() {
        "none".to_string()
    } else {
        enabled
            .into_iter()
            .map(Service::wire_name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The link to a list's next page, when there is one.
pub(super) fn next_page<T>(path: &str, listed: &Listed<T>) -> Markup {
    html! {
        @if let (true, Some(last)) = (listed.more, listed.last_key.as_deref()) {
            nav aria-label="Pages" {
                a href={ (path) "?after=" (urlencoding(last)) } { "Next page" }
            }
        }
    }
}

/// The row of a page without rows: none at all yet, or none after the previous page.
pub(super) fn empty_row<T>(columns: u8, listed: &Listed<T>, what: &str) -> Markup {
    html! {
        @if listed.items.is_empty() {
            tr {
                td colspan=(columns) {
                    @if listed.total.unwrap_or(0) == 0 { "No " (what) " yet" } @else { "No " (what) " follow this page" }
                }
            }
        }
    }
}

/// "1 consent in all", "3 consents in all".
pub(super) fn in_all(count: u64, what: &str) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {what}{plural} in all")
}
