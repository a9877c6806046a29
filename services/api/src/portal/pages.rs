//! The portal's pages, as maud templates: every input has a label, every error stands next to
//! the field at fault, and nothing is inline script or style.

use domain::Service;
use maud::{DOCTYPE, Markup, html};
use projections::failures::{FailureQuery, failures};
use projections::query::{
    AccountRow, Activity, ConsentTotals, Listed, NumberGrouping, Totals, consent_totals,
    number_totals, recent_activity,
};

use super::Session;
use crate::AppState;

/// The roles a development sign-in offers, by the names operator staff know.
const ROLES: &[(&str, &str)] = &[
    ("ProvisioningAPI.ReadUser", "Read only"),
    ("ProvisioningAPI.WriteUser", "Read and write"),
    ("ProvisioningAPI.DeleteUser", "Read, write and delete"),
    ("ProvisioningAPI.AdminUser", "Administrator"),
];

fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · nmp" }
                link rel="stylesheet" href="/portal/static/portal.css";
            }
            body {
                header {
                    a.brand href="/portal" { "nmp" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            a href="/portal" { "Home" }
                            a href="/portal/accounts" { "Accounts" }
                        }
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
pub fn trouble(message: &str) -> Markup {
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

pub fn sign_in(development: bool, error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in to the Number Management Portal" }
            form.stack method="post" action="/portal/sign-in" {
                label for="token" { "Bearer token" }
                textarea id="token" name="token" rows="5" required
                    aria-describedby="token-hint token-error" {}
                p.hint id="token-hint" {
                    "Paste an access token for nmp (ProvisioningAPI roles) from your identity provider."
                }
                @if let Some(error) = error {
                    p.error id="token-error" role="alert" { (error) }
                }
                button type="submit" { "Sign in" }
            }
            @if development {
                h2 { "Development sign-in" }
                form.stack method="post" action="/portal/sign-in/development" {
                    label for="role" { "Sign in with the role" }
                    select id="role" name="role" {
                        @for (value, name) in ROLES {
                            option value=(value) { (name) }
                        }
                    }
                    p.hint { "Offered only by nmp on loopback with its development secret." }
                    button.quiet type="submit" { "Sign in for development" }
                }
            }
        },
    )
}

/// What the home page shows: what needs attention, and what happened lately.
pub struct Home {
    consents: ConsentTotals,
    failures: u64,
    by_sync_state: Totals,
    by_service: Totals,
    activity: Vec<Activity>,
}

impl Home {
    pub async fn read(state: &AppState) -> Result<Home, projections::query::QueryError> {
        let pool = state.commands.store().pool();
        let failed = failures(
            pool,
            &FailureQuery {
                after: None,
                skip: 0,
                take: 0,
                count: true,
            },
        )
        .await?;
        Ok(Home {
            consents: consent_totals(pool).await?,
            failures: failed.total.unwrap_or(0),
            by_sync_state: number_totals(pool, NumberGrouping::SyncState, None).await?,
            by_service: number_totals(pool, NumberGrouping::Service, None).await?,
            activity: recent_activity(pool, 10).await?,
        })
    }

    /// Consents whose customer relationship has not been answered yet.
    fn unanswered(&self) -> u64 {
        self.consents
            .by_relationship_status
            .iter()
            .filter(|g| g.key.is_none())
            .map(|g| g.count)
            .sum()
    }
}

fn totals_table(caption: &str, totals: &Totals) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr { th scope="col" { "Group" } th scope="col" { "Numbers" } } }
            tbody {
                @for group in &totals.groups {
                    tr {
                        td { (group.key.as_deref().unwrap_or("none")) }
                        td { (group.count) }
                    }
                }
                @if totals.groups.is_empty() {
                    tr { td colspan="2" { "No numbers yet" } }
                }
            }
        }
    }
}

pub fn home(session: &Session, home: &Home) -> Markup {
    page(
        "Home",
        Some(session),
        html! {
            h1 { "What needs attention" }
            div.cards {
                section.card aria-labelledby="consents" {
                    h2 id="consents" { "Consents waiting for an answer" }
                    p.figure { (home.unanswered()) }
                    p.hint { (home.consents.total) " consents in all" }
                }
                section.card aria-labelledby="failures" {
                    h2 id="failures" { "Provisioning failures" }
                    p.figure { (home.failures) }
                }
                section.card aria-labelledby="numbers" {
                    h2 id="numbers" { "Numbers" }
                    p.figure { (home.by_sync_state.total) }
                }
            }
            div.cards {
                section.card { (totals_table("Numbers by sync state", &home.by_sync_state)) }
                section.card { (totals_table("Numbers by service", &home.by_service)) }
            }
            section.card aria-labelledby="activity" {
                h2 id="activity" { "Recent activity" }
                table {
                    thead {
                        tr {
                            th scope="col" { "When" }
                            th scope="col" { "Who" }
                            th scope="col" { "What" }
                            th scope="col" { "Change" }
                        }
                    }
                    tbody {
                        @for item in &home.activity {
                            tr {
                                td { (item.occurred_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                                td { (item.subject.as_deref().unwrap_or("unknown")) }
                                td { (item.aggregate_type) " " (item.aggregate_id) }
                                td { (item.event_type) }
                            }
                        }
                        @if home.activity.is_empty() {
                            tr { td colspan="4" { "Nothing has happened yet" } }
                        }
                    }
                }
            }
        },
    )
}

/// The accounts page: one page of accounts in name order, with their services, sync state and
/// the counts of their numbers per service, and a link to the next page.
pub fn accounts(session: &Session, listed: &Listed<AccountRow>, total: u64) -> Markup {
    page(
        "Accounts",
        Some(session),
        html! {
            h1 { "Accounts" }
            p.hint { (total) " accounts in all" }
            table {
                caption { "Accounts in name order" }
                thead {
                    tr {
                        th scope="col" { "Account" }
                        th scope="col" { "Teams tenant" }
                        th scope="col" { "Services" }
                        th scope="col" { "Numbers by service" }
                        th scope="col" { "Sync state" }
                    }
                }
                tbody {
                    @for row in &listed.items {
                        @let account = &row.state;
                        tr {
                            td { (account.name.as_str()) }
                            td {
                                (account.services.teams_tenant_id.as_ref().map_or("none", |t| t.as_str()))
                            }
                            td {
                                @let enabled: Vec<&str> = Service::ALL
                                    .into_iter()
                                    .filter(|s| account.services.is_enabled(*s))
                                    .map(Service::wire_name)
                                    .collect();
                                @if enabled.is_empty() { "none" } @else { (enabled.join(", ")) }
                            }
                            td {
                                @if row.number_counts.values().all(|c| *c == 0) { "none" }
                                @for service in Service::ALL {
                                    @let count = row.number_count(service);
                                    @if count > 0 {
                                        span.count { (service.wire_name()) " " (count) } " "
                                    }
                                }
                            }
                            td {
                                @if account.deleting { "being deleted" } @else { (account.sync.status.as_str()) }
                            }
                        }
                    }
                    @if listed.items.is_empty() {
                        tr {
                            td colspan="5" {
                                @if total == 0 { "No accounts yet" } @else { "No accounts follow this page" }
                            }
                        }
                    }
                }
            }
            @if let (true, Some(last)) = (listed.more, listed.last_key.as_deref()) {
                nav aria-label="Pages" {
                    a href={ "/portal/accounts?after=" (urlencoding(last)) } { "Next page" }
                }
            }
        },
    )
}

/// Percent-encodes a value for a query string.
fn urlencoding(value: &str) -> String {
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
