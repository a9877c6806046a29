//! Accounts: the list, and one account's page.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};

use super::pages::*;
use super::*;
use crate::AppState;
use domain::AccountState;
use domain::Service;
use domain::number::NumberState;
use projections::query::{AccountRow, Listed};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal/accounts", get(accounts))
        .route("/portal/accounts/{name}", get(account))
}

async fn accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let pool = state.commands.store().pool();
    let listed = projections::query::accounts(pool, &page_of(query.after)).await;
    match listed {
        Ok(listed) => {
            let total = listed.total.unwrap_or(0);
            accounts_html(&session, &listed, total).into_response()
        }
        Err(error) => unreadable("accounts", error),
    }
}

/// An account's page: its settings and sync state, and its numbers fifty to a page.
async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            trouble("There is no account by this name."),
        )
            .into_response()
    };
    let Ok(name) = domain::values::AccountName::parse(name) else {
        return not_found();
    };
    let loaded = match state.commands.account(&name).await {
        Ok(loaded) => loaded,
        Err(error) => return unreadable("account", error),
    };
    let Some(account) = &loaded.aggregate.state else {
        return not_found();
    };
    let numbers = projections::query::numbers(
        state.commands.store().pool(),
        Some(name.as_str()),
        &page_of(query.after),
    )
    .await;
    match numbers {
        Ok(numbers) => account_html(&session, account, &numbers).into_response(),
        Err(error) => unreadable("account", error),
    }
}

/// The accounts page: one page of accounts in name order, with their services, sync state and
/// the counts of their numbers per service, and a link to the next page.
fn accounts_html(session: &Session, listed: &Listed<AccountRow>, total: u64) -> Markup {
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

/// An account: its tenant, services and sync state, and one page of its numbers.
fn account_html(
    session: &Session,
    account: &AccountState,
    numbers: &Listed<NumberState>,
) -> Markup {
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
                dd { (sync_cell(&format!("account:{name}"), &account.sync, account.deleting)) }
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
                            td { (sync_cell(&format!("number:{}", number.telephone_number.as_str()), &number.sync, number.deleting)) }
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
