//! Consents (requests for information): the list with its filters, one consent, and the
//! operator's answer to it.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use projections::filter::{Comparison, Expr, Field as FilterField, Filter, Resource, Value};
use serde::Deserialize;

use super::pages::*;
use super::*;
use crate::AppState;
use domain::consent::ConsentState;
use domain::values::{ConsentStatus, CountryCode, RelationshipStatus, TicketId};
use projections::query::{ConsentRow, Listed};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal/consents", get(consents))
        .route(
            "/portal/consents/{tenant}",
            get(consent).post(answer_consent),
        )
}

/// A filterable field of a listed resource, by its name in the API's `filter`.
pub(super) fn filter_field(resource: Resource, name: &str) -> Option<&'static FilterField> {
    resource.fields().iter().find(|field| field.name == name)
}

/// `field eq value`, for a field of `resource` (None if the read side has no such field).
pub(super) fn equals(resource: Resource, name: &str, value: Value) -> Option<Expr> {
    Some(Expr::Compare {
        field: filter_field(resource, name)?,
        op: Comparison::Eq,
        value,
    })
}

/// `startswith(field, prefix)` in the case typed, or in small or capital letters (tenant ids
/// and names are stored as they were given).
pub(super) fn starts_with(resource: Resource, name: &str, prefix: &str) -> Option<Expr> {
    let field = filter_field(resource, name)?;
    let mut prefixes = vec![
        prefix.to_string(),
        prefix.to_lowercase(),
        prefix.to_uppercase(),
    ];
    prefixes.dedup();
    prefixes.sort();
    prefixes.dedup();
    let mut terms: Vec<Expr> = prefixes
        .into_iter()
        .map(|prefix| Expr::StartsWith { field, prefix })
        .collect();
    Some(if terms.len() == 1 {
        terms.remove(0)
    } else {
        Expr::Or(terms)
    })
}

/// The filter of a list from its terms (None when nothing is asked).
pub(super) fn all_of(resource: Resource, mut terms: Vec<Expr>) -> Option<Filter> {
    let expr = match terms.len() {
        0 => return None,
        1 => terms.remove(0),
        _ => Expr::And(terms),
    };
    Some(Filter { resource, expr })
}

/// What the consents page is asked for: its filters, as the form sent them, and the page.
#[derive(Deserialize, Default)]
struct ConsentsQuery {
    tenant: Option<String>,
    status: Option<String>,
    relationship: Option<String>,
    country: Option<String>,
    after: Option<String>,
}

/// The relationship filter's value for consents nobody has answered yet.
const WAITING: &str = "waiting";

/// The consents filters, checked: only values the read side knows reach the filter.
#[derive(Default)]
struct ConsentFilters {
    tenant: String,
    status: Option<ConsentStatus>,
    /// `Some(None)`: waiting for an answer.
    relationship: Option<Option<RelationshipStatus>>,
    country: String,
    country_error: Option<String>,
}

impl ConsentFilters {
    fn of(query: &ConsentsQuery) -> ConsentFilters {
        let text = |value: &Option<String>| value.as_deref().unwrap_or("").trim().to_string();
        let country = text(&query.country).to_uppercase();
        let country_error = (!country.is_empty())
            .then(|| CountryCode::parse(country.as_str()).err())
            .flatten()
            .map(|_| {
                format!(
                    "'{country}' is not a country code: type its two letters, such as US or GB."
                )
            });
        let relationship = match text(&query.relationship).as_str() {
            "" => None,
            WAITING => Some(None),
            other => RelationshipStatus::parse(other).ok().map(Some),
        };
        ConsentFilters {
            tenant: text(&query.tenant),
            status: ConsentStatus::parse(&text(&query.status)).ok(),
            relationship,
            country,
            country_error,
        }
    }

    fn filter(&self) -> Option<Filter> {
        let resource = Resource::RequestsForInformation;
        let mut terms = Vec::new();
        if !self.tenant.is_empty() {
            terms.extend(starts_with(resource, "tenantId", &self.tenant));
        }
        if let Some(status) = self.status {
            let value = Value::Text(status.as_str().to_string());
            terms.extend(equals(resource, "status", value));
        }
        if let Some(relationship) = self.relationship {
            let value = match relationship {
                Some(status) => Value::Text(status.as_str().to_string()),
                None => Value::Null,
            };
            terms.extend(equals(resource, "customerRelationship/status", value));
        }
        if !self.country.is_empty() && self.country_error.is_none() {
            terms.extend(equals(
                resource,
                "country",
                Value::Text(self.country.clone()),
            ));
        }
        all_of(resource, terms)
    }

    /// The query string that keeps these filters, with the page's key when given.
    fn query_string(&self, after: Option<&str>) -> String {
        let relationship = match self.relationship {
            None => "",
            Some(None) => WAITING,
            Some(Some(status)) => status.as_str(),
        };
        let pairs = [
            ("tenant", self.tenant.as_str()),
            ("status", self.status.map_or("", |s| s.as_str())),
            ("relationship", relationship),
            ("country", self.country.as_str()),
            ("after", after.unwrap_or("")),
        ];
        pairs
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| format!("{name}={}", urlencoding(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn any(&self) -> bool {
        !self.tenant.is_empty()
            || self.status.is_some()
            || self.relationship.is_some()
            || !self.country.is_empty()
    }
}

async fn consents(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ConsentsQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let filters = ConsentFilters::of(&query);
    if filters.country_error.is_some() {
        return (
            StatusCode::BAD_REQUEST,
            consents_html(&session, &filters, None),
        )
            .into_response();
    }
    let mut page = page_of(query.after);
    page.filter = filters.filter();
    match projections::query::consents(state.commands.store().pool(), &page).await {
        Ok(listed) => consents_html(&session, &filters, Some(&listed)).into_response(),
        Err(error) => unreadable("consents", error),
    }
}

/// The consent page with what the form said and the error next to its field, if any.
async fn consent_page(
    state: &AppState,
    session: &Session,
    tenant: &str,
    form: AnswerForm<'_>,
    status: StatusCode,
) -> Response {
    let Ok(tenant) = domain::TenantId::parse(tenant) else {
        return (
            StatusCode::NOT_FOUND,
            trouble("There is no consent with this tenant id: a tenant id is a GUID."),
        )
            .into_response();
    };
    let loaded = match state.commands.consent(&tenant).await {
        Ok(loaded) => loaded,
        Err(error) => return unreadable("consent", error),
    };
    let Some(consent) = &loaded.aggregate.state else {
        return (
            StatusCode::NOT_FOUND,
            trouble("There is no consent from this tenant."),
        )
            .into_response();
    };
    match state.commands.account_of_tenant(&tenant).await {
        Ok(account) => (
            status,
            consent_html(
                session,
                consent,
                account.as_ref().map(|a| a.as_str()),
                &form,
            ),
        )
            .into_response(),
        Err(error) => unreadable("consent", error),
    }
}

async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<SavedQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let form = AnswerForm {
        saved: query.saved.is_some(),
        ..AnswerForm::default()
    };
    consent_page(&state, &session, &tenant, form, StatusCode::OK).await
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    csrf: Option<String>,
    status: Option<String>,
    comment: Option<String>,
    ticket: Option<String>,
}

/// Records the operator's answer to a consent through the API's own operation, so the rules,
/// the events and the audit trail (with the ticket, when one is given) are those of
/// `PATCH /teamsRequestsForInformation/{tenantId}`.
async fn answer_consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Form(answer): Form<Answer>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let mut caller = match writer(
        &session,
        &headers,
        answer.csrf.as_deref(),
        "Your role may read consents but not answer them. Ask an administrator for a role that may write.",
    ) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let status = answer.status.as_deref().unwrap_or("").trim().to_string();
    let comment = answer.comment.as_deref().unwrap_or("").trim().to_string();
    let ticket = answer.ticket.as_deref().unwrap_or("").trim().to_string();
    let refused = |field: Field, message: &str| AnswerForm {
        saved: false,
        status: &status,
        comment: &comment,
        ticket: &ticket,
        error: Some((field, message.to_string())),
    };
    if let Err(message) = with_ticket(&mut caller, &ticket) {
        let form = refused(Field::Ticket, &message);
        return consent_page(&state, &session, &tenant, form, StatusCode::BAD_REQUEST).await;
    }
    let patch = crate::wire::consent::RequestForInformationPatch {
        customer_relationship: Some(crate::wire::consent::CustomerRelationshipPatch {
            status: Some(status.clone()),
            comment: Some((!comment.is_empty()).then(|| comment.clone())),
        }),
    };
    match crate::operations::patch_request_for_information(&state, &caller, &tenant, patch)
        .await
        .map_err(crate::error::ApiError::from)
    {
        Ok(_) => Redirect::to(&format!("/portal/consents/{tenant}?saved=1")).into_response(),
        Err(error) if error.status.is_client_error() && error.status != StatusCode::NOT_FOUND => {
            let field = match error.body.target.as_deref() {
                Some("customerRelationship.status") => Field::Status,
                Some("customerRelationship.comment") => Field::Comment,
                _ => Field::Form,
            };
            let message = said(field, &error.body.message);
            let form = refused(field, &message);
            consent_page(&state, &session, &tenant, form, StatusCode::BAD_REQUEST).await
        }
        Err(error) => (error.status, trouble(&error.body.message)).into_response(),
    }
}

/// Puts the operator's ticket for a change, when one is given, on its events and audit
/// trail, as the API's `x-nmp-ticket-id` header does; answers what is wrong with it otherwise.
pub(super) fn with_ticket(caller: &mut crate::context::Caller, ticket: &str) -> Result<(), String> {
    if ticket.is_empty() {
        return Ok(());
    }
    let id = TicketId::parse(ticket).map_err(|error| format!("{}.", capitalised(&error.reason)))?;
    caller.metadata.ticket_id = Some(id.to_string());
    caller.ticket_id = Some(id);
    Ok(())
}

/// An error of the answer form in the words of the form rather than of the API's JSON.
fn said(field: Field, message: &str) -> String {
    match field {
        Field::Comment if message.contains("needs a reason") => {
            "Say why in the comment: declining a consent or ending a contract needs a reason."
                .to_string()
        }
        Field::Status if message.contains("customerRelationship.status") => {
            "Choose one of the customer relationship states in the list.".to_string()
        }
        _ => message.to_string(),
    }
}

pub(super) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The consents page: the filters, then one page of the matching consents in tenant order,
/// with who asked, the backend's status, the operator's answer so far and the account the
/// tenant is linked to. Without `listed`, the filters were refused and only the form shows.
fn consents_html(
    session: &Session,
    filters: &ConsentFilters,
    listed: Option<&Listed<ConsentRow>>,
) -> Markup {
    let relationship = match filters.relationship {
        None => "",
        Some(None) => WAITING,
        Some(Some(status)) => status.as_str(),
    };
    let status = filters.status.map_or("", |s| s.as_str());
    page(
        "Consents",
        Some(session),
        html! {
            h1 { "Consents" }
            form.filters method="get" action="/portal/consents" role="search" aria-label="Filter consents" {
                div {
                    label for="filter-tenant" { "Tenant id starts with" }
                    input id="filter-tenant" name="tenant" value=(filters.tenant) autocomplete="off";
                }
                div {
                    label for="filter-status" { "Consent status" }
                    select id="filter-status" name="status" {
                        option value="" selected[status.is_empty()] { "Any" }
                        @for value in ConsentStatus::ALL {
                            option value=(value.as_str()) selected[value.as_str() == status] { (value.as_str()) }
                        }
                    }
                }
                div {
                    label for="filter-relationship" { "Our answer" }
                    select id="filter-relationship" name="relationship" {
                        option value="" selected[relationship.is_empty()] { "Any" }
                        option value=(WAITING) selected[relationship == WAITING] { "Waiting for an answer" }
                        @for (value, name) in RELATIONSHIPS {
                            option value=(value) selected[*value == relationship] { (name) }
                        }
                    }
                }
                div {
                    label for="filter-country" { "Country" }
                    input id="filter-country" name="country" value=(filters.country) maxlength="2"
                        autocomplete="off" aria-describedby="filter-country-hint filter-country-error";
                    p.hint id="filter-country-hint" { "Two letters, such as US." }
                    @if let Some(message) = &filters.country_error {
                        p.error id="filter-country-error" role="alert" { (message) }
                    }
                }
                div.actions {
                    button type="submit" { "Filter" }
                    @if filters.any() { a href="/portal/consents" { "Show all" } }
                }
            }
            @if let Some(listed) = listed {
                @let what = if filters.any() { "matching consent" } else { "consent" };
                p.hint { (in_all(listed.total.unwrap_or(0), what)) }
                table {
                    caption { "Consents in tenant order" }
                    thead {
                        tr {
                            th scope="col" { "Tenant" }
                            th scope="col" { "Company" }
                            th scope="col" { "Countries" }
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
                                td { (countries(consent)) }
                                td { (consent.report.status.as_str()) }
                                td {
                                    @match &consent.relationship {
                                        Some(r) => (r.status.as_str()),
                                        None => strong { "Waiting for an answer" },
                                    }
                                }
                                td {
                                    @match row.account_name.as_deref() {
                                        Some(name) => a href={ "/portal/accounts/" (urlencoding(name)) } { (name) },
                                        None => "none",
                                    }
                                }
                            }
                        }
                        @if listed.items.is_empty() {
                            tr {
                                td colspan="6" {
                                    @if listed.total.unwrap_or(0) > 0 { "No consents follow this page" }
                                    @else if filters.any() { "No consents match these filters" }
                                    @else { "No consents yet" }
                                }
                            }
                        }
                    }
                }
                @if let (true, Some(last)) = (listed.more, listed.last_key.as_deref()) {
                    nav aria-label="Pages" {
                        a href={ "/portal/consents?" (filters.query_string(Some(last))) } { "Next page" }
                    }
                }
            }
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

fn countries(consent: &ConsentState) -> String {
    let countries: Vec<&str> = consent
        .report
        .countries
        .iter()
        .map(|c| c.as_str())
        .collect();
    if countries.is_empty() {
        "none".to_string()
    } else {
        countries.join(", ")
    }
}

/// The answer form's fields, to put an error next to the one at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Status,
    Comment,
    Ticket,
    /// Not one field: the answer as a whole.
    Form,
}

/// What the answer form shows: a confirmation after saving, or what was sent with its error.
#[derive(Default)]
struct AnswerForm<'a> {
    pub saved: bool,
    pub status: &'a str,
    pub comment: &'a str,
    pub ticket: &'a str,
    pub error: Option<(Field, String)>,
}

/// One consent: the enterprise's request and contacts, the operator's answer, the account it
/// is linked to, and (for roles that may write) the form to answer it and a way to create an
/// account for its tenant.
fn consent_html(
    session: &Session,
    consent: &ConsentState,
    account: Option<&str>,
    form: &AnswerForm<'_>,
) -> Markup {
    let current = consent.relationship.as_ref();
    let tenant = consent.tenant_id.as_str();
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
    let error_on = |field: Field| {
        form.error
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    };
    let may_write = session.principal.allows(auth::Permission::Write);
    page(
        "Consent",
        Some(session),
        html! {
            h1 { "Consent from " (company(consent)) }
            @if form.saved {
                p.notice role="status" { "Your answer is recorded; it is sent to the Teams backend next." }
            }
            dl {
                dt { "Tenant" } dd { (tenant) }
                dt { "Consent status" } dd { (consent.report.status.as_str()) }
                dt { "Consented on" } dd { (consent.report.consented_on.format("%Y-%m-%d %H:%M UTC")) }
                dt { "Countries" } dd { (countries(consent)) }
                dt { "Our answer" } dd {
                    @match current {
                        Some(r) => {
                            (r.status.as_str())
                            " (" (r.last_modified_on.format("%Y-%m-%d %H:%M UTC")) ")"
                            @if let Some(ticket) = &r.ticket_id { ", ticket " (ticket.as_str()) }
                        }
                        None => "Waiting for an answer",
                    }
                }
                dt { "Account" } dd {
                    @match account {
                        Some(name) => a href={ "/portal/accounts/" (urlencoding(name)) } { (name) },
                        None => "none yet",
                    }
                }
                dt { "Provisioning" } dd {
                    (sync_cell(&format!("consent:{tenant}"), &consent.sync, false))
                }
            }
            p.actions {
                a href={ "/portal/history/consent/" (tenant) } { "History of this consent" }
                @if may_write {
                    a href={ "/portal/new-account?tenant=" (tenant) } { "Create an account for this tenant" }
                }
            }
            h2 { "Contacts" }
            ul {
                @for contact in &consent.report.contacts {
                    li {
                        (contact.full_name) ", " (contact.email)
                        @if let Some(phone) = &contact.telephone_number { ", " (phone) }
                        @if let Some(company) = &contact.company_name { ", " (company) }
                    }
                }
            }
            @if may_write {
                h2 { "Answer" }
                form.stack method="post" action={ "/portal/consents/" (tenant) } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    @if let Some(message) = error_on(Field::Form) {
                        p.error role="alert" { (message) }
                    }
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
                    label for="ticket" { "Ticket id (optional)" }
                    input id="ticket" name="ticket" value=(form.ticket) maxlength="64"
                        autocomplete="off" aria-describedby="ticket-hint ticket-error";
                    p.hint id="ticket-hint" { "Your ticket for this change, up to 64 characters: the history shows it." }
                    @if let Some(message) = error_on(Field::Ticket) {
                        p.error id="ticket-error" role="alert" { (message) }
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
