//! The portal's pages, as maud templates: every input has a label, every error stands next to
//! the field at fault, and nothing is inline script or style.

use domain::AccountState;
use domain::Service;
use domain::consent::ConsentState;
use domain::number::NumberState;
use domain::values::{ProvisioningStatus, SyncState};
use maud::{DOCTYPE, Markup, html};
use projections::failures::{Failure, FailureQuery};
use projections::query::{
    AccountRow, Activity, ConsentRow, ConsentTotals, Listed, NumberGrouping, Totals,
    consent_totals, number_totals, recent_activity,
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
                            a href="/portal/consents" { "Consents" }
                            a href="/portal/failures" { "Failures" }
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
        let failed = projections::failures::failures(
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
                    p.hint { (in_all(home.consents.total, "consent")) }
                    p { a href="/portal/consents" { "See the consents" } }
                }
                section.card aria-labelledby="failures" {
                    h2 id="failures" { "Provisioning failures" }
                    p.figure { (home.failures) }
                    p { a href="/portal/failures" { "See the failures" } }
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
            p.hint { (in_all(total, "account")) }
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
                            td {
                                a href={ "/portal/accounts/" (urlencoding(account.name.as_str())) } {
                                    (account.name.as_str())
                                }
                            }
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
                    (empty_row(5, listed, "accounts"))
                }
            }
            (next_page("/portal/accounts", listed))
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

/// The consents page: one page of consents in tenant order, with who asked, the backend's
/// status, the operator's answer so far and the account the tenant is linked to.
pub fn consents(session: &Session, listed: &Listed<ConsentRow>, total: u64) -> Markup {
    page(
        "Consents",
        Some(session),
        html! {
            h1 { "Consents" }
            p.hint { (in_all(total, "consent")) }
            table {
                caption { "Consents in tenant order" }
                thead {
                    tr {
                        th scope="col" { "Tenant" }
                        th scope="col" { "Company" }
                        th scope="col" { "Consent" }
                        th scope="col" { "Our answer" }
                        th scope="col" { "Account" }
                    }
                }
                tbody {
                    @for row in &listed.items {
                        @let consent = &row.state;
                        tr {
                            td {
                                a href={ "/portal/consents/" (consent.tenant_id.as_str()) } {
                                    (consent.tenant_id.as_str())
                                }
                            }
                            td { (company(consent)) }
                            td { (consent.report.status.as_str()) }
                            td {
                                @match &consent.relationship {
                                    Some(r) => (r.status.as_str()),
                                    None => strong { "Waiting for an answer" },
                                }
                            }
                            td { (row.account_name.as_deref().unwrap_or("none")) }
                        }
                    }
                    (empty_row(5, listed, "consents"))
                }
            }
            (next_page("/portal/consents", listed))
        },
    )
}

fn company(consent: &ConsentState) -> String {
    consent
        .report
        .contacts
        .iter()
        .find_map(|c| c.company_name.clone())
        .unwrap_or_else(|| "not given".to_string())
}

/// The answer form's fields, to put an error next to the one at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Status,
    Comment,
}

/// What the answer form shows: a confirmation after saving, or what was sent with its error.
#[derive(Default)]
pub struct AnswerForm<'a> {
    pub saved: bool,
    pub status: &'a str,
    pub comment: &'a str,
    pub error: Option<(Field, &'a str)>,
}

/// One consent: the enterprise's request and contacts, the operator's answer, and (for roles
/// that may write) the form to answer it.
pub fn consent(session: &Session, consent: &ConsentState, form: &AnswerForm<'_>) -> Markup {
    let current = consent.relationship.as_ref();
    let chosen = if form.status.is_empty() {
        current.map_or("", |r| r.status.as_str())
    } else {
        form.status
    };
    let comment = if form.error.is_some() {
        form.comment
    } else {
        current
            .and_then(|r| r.comment.as_ref())
            .map_or("", |c| c.as_str())
    };
    let error_on = |field: Field| form.error.filter(|(f, _)| *f == field).map(|(_, m)| m);
    page(
        "Consent",
        Some(session),
        html! {
            h1 { "Consent from " (company(consent)) }
            @if form.saved {
                p.notice role="status" { "Your answer is recorded; it is sent to the Teams backend next." }
            }
            dl {
                dt { "Tenant" } dd { (consent.tenant_id.as_str()) }
                dt { "Consent status" } dd { (consent.report.status.as_str()) }
                dt { "Consented on" } dd { (consent.report.consented_on.format("%Y-%m-%d %H:%M UTC")) }
                dt { "Countries" } dd {
                    @let countries: Vec<&str> = consent.report.countries.iter().map(|c| c.as_str()).collect();
                    (countries.join(", "))
                }
                dt { "Our answer" } dd {
                    @match current {
                        Some(r) => {
                            (r.status.as_str())
                            " (" (r.last_modified_on.format("%Y-%m-%d %H:%M UTC")) ")"
                        }
                        None => "Waiting for an answer",
                    }
                }
                dt { "Provisioning" } dd { (consent.sync.status.as_str()) }
            }
            h2 { "Contacts" }
            ul {
                @for contact in &consent.report.contacts {
                    li {
                        (contact.full_name) ", " (contact.email)
                        @if let Some(phone) = &contact.telephone_number { ", " (phone) }
                    }
                }
            }
            @if session.principal.allows(auth::Permission::Write) {
                h2 { "Answer" }
                form.stack method="post" action={ "/portal/consents/" (consent.tenant_id.as_str()) } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="status" { "Customer relationship" }
                    select id="status" name="status" aria-describedby="status-error" {
                        @if chosen.is_empty() {
                            option value="" selected { "Choose…" }
                        }
                        @for (value, name) in RELATIONSHIPS {
                            option value=(value) selected[*value == chosen] { (name) }
                        }
                    }
                    @if let Some(message) = error_on(Field::Status) {
                        p.error id="status-error" role="alert" { (message) }
                    }
                    label for="comment" { "Comment" }
                    textarea id="comment" name="comment" rows="3"
                        aria-describedby="comment-hint comment-error" { (comment) }
                    p.hint id="comment-hint" { "Required when you decline a consent or end a contract: the reason." }
                    @if let Some(message) = error_on(Field::Comment) {
                        p.error id="comment-error" role="alert" { (message) }
                    }
                    button type="submit" { "Record the answer" }
                }
            } @else {
                p.hint { "Your role may read consents; answering them needs a role that may write." }
            }
            p { a href="/portal/consents" { "All consents" } }
        },
    )
}

/// The customer relationship's states, by the names operator staff know.
const RELATIONSHIPS: &[(&str, &str)] = &[
    ("ConsentAcknowledged", "Consent acknowledged"),
    ("CustomerContacted", "Customer contacted"),
    ("AgreementSigned", "Agreement signed"),
    ("ConsentDeclined", "Consent declined"),
    ("ContractTerminated", "Contract terminated"),
];

fn sync_cell(sync: &SyncState, deleting: bool) -> Markup {
    html! {
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

fn services_text(enabled: Vec<Service>) -> String {
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

/// An account: its tenant, services and sync state, and one page of its numbers.
pub fn account(session: &Session, account: &AccountState, numbers: &Listed<NumberState>) -> Markup {
    let name = account.name.as_str();
    page(
        name,
        Some(session),
        html! {
            h1 { "Account " (name) }
            dl {
                dt { "Teams tenant" }
                dd { (account.services.teams_tenant_id.as_ref().map_or("none", |t| t.as_str())) }
                dt { "Services" }
                dd {
                    (services_text(Service::ALL.into_iter().filter(|s| account.services.is_enabled(*s)).collect()))
                }
                dt { "Sync state" }
                dd { (sync_cell(&account.sync, account.deleting)) }
                dt { "Numbers" }
                dd { (numbers.total.unwrap_or(0)) }
            }
            table {
                caption { "Numbers in telephone number order" }
                thead {
                    tr {
                        th scope="col" { "Telephone number" }
                        th scope="col" { "Services" }
                        th scope="col" { "Sync state" }
                    }
                }
                tbody {
                    @for number in &numbers.items {
                        tr {
                            td { (number.telephone_number.as_str()) }
                            td { (services_text(number.details.enabled_services())) }
                            td { (sync_cell(&number.sync, number.deleting)) }
                        }
                    }
                    (empty_row(3, numbers, "numbers"))
                }
            }
            (next_page(&format!("/portal/accounts/{}", urlencoding(name)), numbers))
            p { a href="/portal/accounts" { "All accounts" } }
        },
    )
}

/// The provisioning failures, fifty to a page, each with why the backend refused it and (for
/// roles that may write) a button to push it again.
pub fn failures(session: &Session, listed: &Listed<Failure>, retried: Option<&str>) -> Markup {
    let may_write = session.principal.allows(auth::Permission::Write);
    page(
        "Provisioning failures",
        Some(session),
        html! {
            h1 { "Provisioning failures" }
            @if retried.is_some() {
                p.notice role="status" { "Pushed again; its state is pending until the backend answers." }
            }
            p.hint { (in_all(listed.total.unwrap_or(0), "failure")) }
            table {
                caption { "What the Teams backend refused, and why" }
                thead {
                    tr {
                        th scope="col" { "What" }
                        th scope="col" { "Account" }
                        th scope="col" { "Why" }
                        th scope="col" { "When" }
                        @if may_write { th scope="col" { "Action" } }
                    }
                }
                tbody {
                    @for failure in &listed.items {
                        tr {
                            td {
                                (failure.kind.as_str()) " " (failure.id)
                                @if failure.deleting { " (release)" }
                            }
                            td {
                                @match failure.account_name.as_deref() {
                                    Some(name) => a href={ "/portal/accounts/" (urlencoding(name)) } { (name) },
                                    None => "none",
                                }
                            }
                            td {
                                @for error in &failure.errors {
                                    span.error { (error.code) ": " (error.message) } br;
                                }
                            }
                            td { (failure.failed_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                            @if may_write {
                                td {
                                    form method="post" action="/portal/failures/retry" {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        input type="hidden" name="kind" value=(failure.kind.as_str());
                                        input type="hidden" name="id" value=(failure.id);
                                        input type="hidden" name="account" value=(failure.account_name.as_deref().unwrap_or(""));
                                        button.quiet type="submit" aria-label={ "Retry " (failure.kind.as_str()) " " (failure.id) } { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                    @if listed.items.is_empty() {
                        tr { td colspan="5" { "Nothing has failed" } }
                    }
                }
            }
            (next_page("/portal/failures", listed))
        },
    )
}

/// The link to a list's next page, when there is one.
fn next_page<T>(path: &str, listed: &Listed<T>) -> Markup {
    html! {
        @if let (true, Some(last)) = (listed.more, listed.last_key.as_deref()) {
            nav aria-label="Pages" {
                a href={ (path) "?after=" (urlencoding(last)) } { "Next page" }
            }
        }
    }
}

/// The row of a page without rows: none at all yet, or none after the previous page.
fn empty_row<T>(columns: u8, listed: &Listed<T>, what: &str) -> Markup {
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
fn in_all(count: u64, what: &str) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {what}{plural} in all")
}
