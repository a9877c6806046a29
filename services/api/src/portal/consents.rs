//! Consents (requests for information): the list, one consent, and the operator's answer.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::*;
use super::*;
use crate::AppState;
use domain::consent::ConsentState;
use projections::query::{ConsentRow, Listed};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal/consents", get(consents))
        .route(
            "/portal/consents/{tenant}",
            get(consent).post(answer_consent),
        )
}

async fn consents(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let listed =
        projections::query::consents(state.commands.store().pool(), &page_of(query.after)).await;
    match listed {
        Ok(listed) => {
            let total = listed.total.unwrap_or(0);
            consents_html(&session, &listed, total).into_response()
        }
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
    match state.commands.consent(&tenant).await {
        Ok(loaded) => match &loaded.aggregate.state {
            Some(consent) => (status, consent_html(session, consent, &form)).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                trouble("There is no consent from this tenant."),
            )
                .into_response(),
        },
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
}

/// Records the operator's answer to a consent through the API's own operation, so the rules,
/// the events and the audit trail are those of `PATCH /teamsRequestsForInformation/{tenantId}`.
async fn answer_consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Form(answer): Form<Answer>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let caller = match writer(
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
    let patch = crate::wire::consent::RequestForInformationPatch {
        customer_relationship: Some(crate::wire::consent::CustomerRelationshipPatch {
            status: Some(status.clone()),
            comment: Some((!comment.is_empty()).then(|| comment.clone())),
        }),
    };
    match crate::operations::patch_request_for_information(&state, &caller, &tenant, patch).await {
        Ok(_) => Redirect::to(&format!("/portal/consents/{tenant}?saved=1")).into_response(),
        Err(error) if error.status.is_client_error() && error.status != StatusCode::NOT_FOUND => {
            let field = match error.body.target.as_deref() {
                Some("customerRelationship.status") => Field::Status,
                _ => Field::Comment,
            };
            let form = AnswerForm {
                saved: false,
                status: &status,
                comment: &comment,
                error: Some((field, error.body.message.as_str())),
            };
            consent_page(&state, &session, &tenant, form, StatusCode::BAD_REQUEST).await
        }
        Err(error) => (error.status, trouble(&error.body.message)).into_response(),
    }
}

/// The consents page: one page of consents in tenant order, with who asked, the backend's
/// status, the operator's answer so far and the account the tenant is linked to.
fn consents_html(session: &Session, listed: &Listed<ConsentRow>, total: u64) -> Markup {
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
enum Field {
    Status,
    Comment,
}

/// What the answer form shows: a confirmation after saving, or what was sent with its error.
#[derive(Default)]
struct AnswerForm<'a> {
    pub saved: bool,
    pub status: &'a str,
    pub comment: &'a str,
    pub error: Option<(Field, &'a str)>,
}

/// One consent: the enterprise's request and contacts, the operator's answer, and (for roles
/// that may write) the form to answer it.
fn consent_html(session: &Session, consent: &ConsentState, form: &AnswerForm<'_>) -> Markup {
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
