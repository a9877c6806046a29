//! Provisioning failures and their retry.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::*;
use super::*;
use crate::AppState;
use projections::failures::Failure;
use projections::query::Listed;

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal/failures", get(failures))
        .route("/portal/failures/retry", post(retry_failure))
}

#[derive(Deserialize)]
struct FailuresQuery {
    after: Option<String>,
    retried: Option<String>,
}

/// The provisioning failures: what the backend refused, why, and a retry for each.
async fn failures(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<FailuresQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let listed = projections::failures::failures(
        state.commands.store().pool(),
        &projections::failures::FailureQuery {
            after: query.after.filter(|a| !a.is_empty()),
            skip: 0,
            take: PAGE_ROWS,
            count: true,
        },
    )
    .await;
    match listed {
        Ok(listed) => failures_html(&session, &listed, query.retried.as_deref()).into_response(),
        Err(error) => unreadable("failures", error),
    }
}

#[derive(Deserialize)]
struct Retry {
    csrf: Option<String>,
    kind: Option<String>,
    id: Option<String>,
    account: Option<String>,
}

/// Retries one failure through the API's own retry operation for its kind.
async fn retry_failure(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(retry): Form<Retry>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let caller = match writer(
        &session,
        &headers,
        retry.csrf.as_deref(),
        "Your role may read failures but not retry them. Ask an administrator for a role that may write.",
    ) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let id = retry.id.unwrap_or_default();
    let account = retry.account.unwrap_or_default();
    let outcome = match retry.kind.as_deref() {
        Some("account") => {
            crate::operations::retry_account_provisioning(&state, &caller, &id).await
        }
        Some("number") => {
            crate::operations::retry_number_provisioning(&state, &caller, &account, &id).await
        }
        Some("consent") => {
            crate::operations::retry_request_for_information_provisioning(&state, &caller, &id)
                .await
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                trouble("Only an account, a number or a consent can be retried."),
            )
                .into_response();
        }
    };
    match outcome {
        Ok(_) => Redirect::to("/portal/failures?retried=1").into_response(),
        Err(error) => {
            let status = crate::error::status_of(error.kind);
            (status, trouble(&error.body.message)).into_response()
        }
    }
}

/// The provisioning failures, fifty to a page, each with why the backend refused it and (for
/// roles that may write) a button to push it again.
fn failures_html(session: &Session, listed: &Listed<Failure>, retried: Option<&str>) -> Markup {
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
                        tr { td colspan=(if may_write { 5 } else { 4 }) { "Nothing has failed" } }
                    }
                }
            }
            (next_page("/portal/failures", listed))
        },
    )
}
