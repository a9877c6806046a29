//! Civic addresses of an account: the emergency addresses the backend reports for the
//! account's Teams tenant, listed fifty to a page, and one address with its locations and
//! their ELINs. Read-only: the enterprise keeps them in Teams, nmp shows what it reported.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};

use super::pages::*;
use super::*;
use crate::AppState;
use crate::routes::lists::TeamsCivicAddressResource;
use domain::AccountState;
use projections::query::{CivicAddressRow, Listed};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/accounts/{name}/addresses", get(addresses))
        .route("/portal/accounts/{name}/addresses/{id}", get(address))
}

/// The account of a path, or the page that says why there is none.
async fn account_of(state: &AppState, name: &str) -> Result<AccountState, Response> {
    let no_such_account = || {
        (
            StatusCode::NOT_FOUND,
            trouble("There is no account by this name."),
        )
            .into_response()
    };
    let Ok(name) = domain::values::AccountName::parse(name) else {
        return Err(no_such_account());
    };
    match state.commands.account(&name).await {
        Ok(loaded) => loaded.aggregate.state.ok_or_else(no_such_account),
        Err(error) => Err(unreadable("civic addresses", error)),
    }
}

/// A stored address in the API's wire shape; its key columns name it.
fn resource(row: CivicAddressRow) -> Result<TeamsCivicAddressResource, serde_json::Error> {
    let mut address: TeamsCivicAddressResource = serde_json::from_value(row.address)?;
    address.id = row.civic_address_id;
    if row.tenant_id.is_some() {
        address.tenant_id = row.tenant_id;
    }
    Ok(address)
}

async fn addresses(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let account = match account_of(&state, &name).await {
        Ok(account) => account,
        Err(page) => return page,
    };
    let Some(tenant) = &account.services.teams_tenant_id else {
        return addresses_html(&session, &account, None).into_response();
    };
    let pool = state.commands.store().pool();
    let listed =
        match projections::query::civic_addresses(pool, tenant.as_str(), &page_of(query.after))
            .await
        {
            Ok(listed) => listed,
            Err(error) => return unreadable("civic addresses", error),
        };
    let items = match listed.items.into_iter().map(resource).collect() {
        Ok(items) => items,
        Err(error) => return unreadable("civic addresses", error),
    };
    let listed = Listed {
        items,
        more: listed.more,
        total: listed.total,
        last_key: listed.last_key,
    };
    addresses_html(&session, &account, Some(&listed)).into_response()
}

async fn address(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let account = match account_of(&state, &name).await {
        Ok(account) => account,
        Err(page) => return page,
    };
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            trouble("The account's Teams tenant has no civic address with this id."),
        )
            .into_response()
    };
    let Some(tenant) = &account.services.teams_tenant_id else {
        return not_found();
    };
    let pool = state.commands.store().pool();
    match projections::query::civic_address(pool, tenant.as_str(), &id).await {
        Ok(Some(row)) => match resource(row) {
            Ok(address) => address_html(&session, &account, &address).into_response(),
            Err(error) => unreadable("civic address", error),
        },
        Ok(None) => not_found(),
        Err(error) => unreadable("civic address", error),
    }
}

/// The address on one line: number, street, town, postal code, country.
fn one_line(address: &TeamsCivicAddressResource) -> String {
    let street = [
        &address.house_number,
        &address.house_number_suffix,
        &address.pre_directional,
        &address.street_name,
        &address.street_suffix,
        &address.post_directional,
    ]
    .into_iter()
    .flatten()
    .map(String::as_str)
    .collect::<Vec<_>>()
    .join(" ");
    [
        Some(street).filter(|s| !s.is_empty()),
        address.city_or_town.clone(),
        address.state_or_province.clone(),
        address.postal_or_zip_code.clone(),
        address.country.clone(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

fn validated(address: &TeamsCivicAddressResource) -> &'static str {
    match address.validation_status.as_deref() {
        Some("validated") => "yes",
        Some(_) => "no",
        None => "not reported",
    }
}

fn account_path(account: &AccountState) -> String {
    format!("/portal/accounts/{}", urlencoding(account.name.as_str()))
}

/// The civic addresses of the account's tenant (None: the account has no tenant yet).
fn addresses_html(
    session: &Session,
    account: &AccountState,
    listed: Option<&Listed<TeamsCivicAddressResource>>,
) -> Markup {
    let name = account.name.as_str();
    let path = format!("{}/addresses", account_path(account));
    page(
        &format!("Civic addresses of {name}"),
        Some(session),
        html! {
            h1 { "Civic addresses of " (name) }
            @match listed {
                None => p { "The account has no Teams tenant yet, so it has no civic addresses." },
                Some(listed) => {
                    p.hint {
                        @match listed.total.unwrap_or(0) {
                            1 => "1 civic address in all",
                            total => { (total) " civic addresses in all" }
                        }
                    }
                    table {
                        caption { "Civic addresses of the account's Teams tenant" }
                        thead {
                            tr {
                                th scope="col" { "Address" }
                                th scope="col" { "Company" }
                                th scope="col" { "Description" }
                                th scope="col" { "Validated" }
                            }
                        }
                        tbody {
                            @for address in &listed.items {
                                tr {
                                    td {
                                        a href={ (path) "/" (urlencoding(&address.id)) } {
                                            @let line = one_line(address);
                                            @if line.is_empty() { (address.id) } @else { (line) }
                                        }
                                    }
                                    td { (address.company_name.as_deref().unwrap_or("")) }
                                    td { (address.description.as_deref().unwrap_or("")) }
                                    td { (validated(address)) }
                                }
                            }
                            (empty_row(4, listed, "civic addresses"))
                        }
                    }
                    (next_page(&path, listed))
                }
            }
            p { a href=(account_path(account)) { "Back to account " (name) } }
        },
    )
}

/// One civic address: every field the backend reported, and its locations with their ELINs.
fn address_html(
    session: &Session,
    account: &AccountState,
    address: &TeamsCivicAddressResource,
) -> Markup {
    let fields: [(&str, &Option<String>); 12] = [
        ("Company", &address.company_name),
        ("Company id", &address.company_id),
        ("Description", &address.description),
        ("Country", &address.country),
        ("State or province", &address.state_or_province),
        ("County or district", &address.county_or_district),
        ("City or town", &address.city_or_town),
        ("City alias", &address.city_or_town_alias),
        ("Postal or ZIP code", &address.postal_or_zip_code),
        ("Latitude", &address.latitude),
        ("Longitude", &address.longitude),
        ("Partner id", &address.partner_id),
    ];
    let locations = address.locations.as_deref().unwrap_or(&[]);
    page(
        "Civic address",
        Some(session),
        html! {
            h1 { "Civic address" }
            p { (one_line(address)) }
            dl {
                dt { "Id" } dd { (address.id) }
                @for (label, value) in fields {
                    @if let Some(value) = value {
                        dt { (label) } dd { (value) }
                    }
                }
                dt { "Validated" } dd { (validated(address)) }
                dt { "Default location" } dd { (address.default_location_id.as_deref().unwrap_or("none")) }
            }
            table {
                caption { "Locations" }
                thead {
                    tr {
                        th scope="col" { "Location" }
                        th scope="col" { "Description" }
                        th scope="col" { "Additional information" }
                        th scope="col" { "ELIN" }
                        th scope="col" { "Default" }
                    }
                }
                tbody {
                    @for location in locations {
                        tr {
                            td { (location.id) }
                            td { (location.description.as_deref().unwrap_or("")) }
                            td { (location.additional_info.as_deref().unwrap_or("")) }
                            td { (location.elin.as_deref().unwrap_or("none")) }
                            td { @if location.is_default == Some(true) { "yes" } @else { "no" } }
                        }
                    }
                    @if locations.is_empty() {
                        tr { td colspan="5" { "No locations" } }
                    }
                }
            }
            p {
                a href={ (account_path(account)) "/addresses" } { "All civic addresses of " (account.name.as_str()) }
            }
        },
    )
}
