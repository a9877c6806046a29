//! Accounts: the list with its filters, one account's page, the form that creates or edits an
//! account, and deleting one after a confirmation. Every change goes through the API's own
//! operations (`put_account`, `delete_account`), so the rules, the events and the audit trail
//! are those of `PUT` and `DELETE /accounts/{accountName}`.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use projections::filter::{Resource, Value};
use serde::Deserialize;

use super::consents::{all_of, capitalised, equals, starts_with, with_ticket};
use super::pages::*;
use super::*;
use crate::AppState;
use crate::error::ApiError;
use crate::wire::account::{
    AccountResource, AccountServiceDetails, CallProtectionDetails, DirectRoutingConfigurationWire,
    DirectRoutingDetails, SubdomainTokensWire, SyncableServiceDetails,
};
use domain::number::NumberState;
use domain::values::ProvisioningStatus;
use domain::{AccountServices, AccountState, Service};
use projections::query::{AccountRow, Listed};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal/accounts", get(accounts))
        .route("/portal/accounts/{name}", get(account))
        .route("/portal/new-account", get(new_account).post(create_account))
        .route(
            "/portal/accounts/{name}/edit",
            get(edit_account).post(update_account),
        )
        .route(
            "/portal/accounts/{name}/delete",
            get(confirm_delete).post(delete_account),
        )
}

/// How operator staff name each service.
pub(super) fn service_name(service: Service) -> &'static str {
    match service {
        Service::TeamsOperatorConnect => "Operator Connect",
        Service::TeamsPhoneMobile => "Teams Phone Mobile",
        Service::TeamsDirectRouting => "Direct Routing",
        Service::ZoomPhoneCloudPeering => "Zoom Phone Cloud Peering",
        Service::AzureOperatorCallProtection => "Azure Operator Call Protection",
    }
}

fn enabled_services(services: &AccountServices) -> Vec<Service> {
    Service::ALL
        .into_iter()
        .filter(|s| services.is_enabled(*s))
        .collect()
}

// ---- the list ------------------------------------------------------------------------------

/// What the accounts page is asked for: its filters, as the form sent them, and the page.
#[derive(Deserialize, Default)]
struct AccountsQuery {
    name: Option<String>,
    service: Option<String>,
    sync: Option<String>,
    after: Option<String>,
    deleted: Option<String>,
}

/// The accounts filters, checked: only values the read side knows reach the filter.
struct AccountFilters {
    name: String,
    service: Option<Service>,
    sync: Option<ProvisioningStatus>,
}

const SYNC_STATES: [ProvisioningStatus; 3] = [
    ProvisioningStatus::Pending,
    ProvisioningStatus::Synced,
    ProvisioningStatus::Failed,
];

impl AccountFilters {
    fn of(query: &AccountsQuery) -> AccountFilters {
        let text = |value: &Option<String>| value.as_deref().unwrap_or("").trim().to_string();
        let sync = text(&query.sync);
        AccountFilters {
            name: text(&query.name),
            service: Service::from_wire_name(&text(&query.service)),
            sync: SYNC_STATES.into_iter().find(|s| s.as_str() == sync),
        }
    }

    fn filter(&self) -> Option<projections::filter::Filter> {
        let resource = Resource::Accounts;
        let mut terms = Vec::new();
        if !self.name.is_empty() {
            terms.extend(starts_with(resource, "name", &self.name));
        }
        if let Some(service) = self.service {
            let value = Value::Text(service.wire_name().to_string());
            terms.extend(equals(resource, "service", value));
        }
        if let Some(sync) = self.sync {
            let value = Value::Text(sync.as_str().to_string());
            terms.extend(equals(resource, "serviceProvisioningStatus", value));
        }
        all_of(resource, terms)
    }

    /// The query string that keeps these filters, with the page's key.
    fn query_string(&self, after: &str) -> String {
        [
            ("name", self.name.as_str()),
            ("service", self.service.map_or("", Service::wire_name)),
            ("sync", self.sync.map_or("", |s| s.as_str())),
            ("after", after),
        ]
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", urlencoding(value)))
        .collect::<Vec<_>>()
        .join("&")
    }

    fn any(&self) -> bool {
        !self.name.is_empty() || self.service.is_some() || self.sync.is_some()
    }
}

async fn accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AccountsQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let filters = AccountFilters::of(&query);
    let mut page = page_of(query.after.clone());
    page.filter = filters.filter();
    let pool = state.commands.store().pool();
    match projections::query::accounts(pool, &page).await {
        Ok(listed) => {
            let deleted = query.deleted.as_deref();
            accounts_html(&session, &filters, &listed, deleted).into_response()
        }
        Err(error) => unreadable("accounts", error),
    }
}

/// The accounts page: the filters, then one page of the matching accounts in name order, with
/// their services, sync state and the counts of their numbers per service, and a link to the
/// next page that keeps the filters.
fn accounts_html(
    session: &Session,
    filters: &AccountFilters,
    listed: &Listed<AccountRow>,
    deleted: Option<&str>,
) -> Markup {
    let total = listed.total.unwrap_or(0);
    page(
        "Accounts",
        Some(session),
        html! {
            h1 { "Accounts" }
            @if let Some(name) = deleted {
                p.notice role="status" { "Account " (name) " is deleted." }
            }
            @if session.principal.allows(auth::Permission::Write) {
                p { a.button href="/portal/new-account" { "Create an account" } }
            }
            form.filters method="get" action="/portal/accounts" role="search" aria-label="Filter accounts" {
                div {
                    label for="filter-name" { "Name starts with" }
                    input id="filter-name" name="name" value=(filters.name) autocomplete="off";
                }
                div {
                    label for="filter-service" { "Service enabled" }
                    select id="filter-service" name="service" {
                        option value="" selected[filters.service.is_none()] { "Any" }
                        @for service in Service::ALL {
                            option value=(service.wire_name()) selected[filters.service == Some(service)] {
                                (service_name(service))
                            }
                        }
                    }
                }
                div {
                    label for="filter-sync" { "Sync state" }
                    select id="filter-sync" name="sync" {
                        option value="" selected[filters.sync.is_none()] { "Any" }
                        @for sync in SYNC_STATES {
                            option value=(sync.as_str()) selected[filters.sync == Some(sync)] { (sync.as_str()) }
                        }
                    }
                }
                div.actions {
                    button type="submit" { "Filter" }
                    @if filters.any() { a href="/portal/accounts" { "Show all" } }
                }
            }
            p.hint { (in_all(total, if filters.any() { "matching account" } else { "account" })) }
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
                            td { (services_text(enabled_services(&account.services))) }
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
                                (sync_cell(&format!("account:{}", account.name.as_str()), &account.sync, account.deleting))
                            }
                        }
                    }
                    @if listed.items.is_empty() {
                        tr {
                            td colspan="5" {
                                @if total > 0 { "No accounts follow this page" }
                                @else if filters.any() { "No accounts match these filters" }
                                @else { "No accounts yet" }
                            }
                        }
                    }
                }
            }
            @if let (true, Some(last)) = (listed.more, listed.last_key.as_deref()) {
                nav aria-label="Pages" {
                    a href={ "/portal/accounts?" (filters.query_string(last)) } { "Next page" }
                }
            }
        },
    )
}

// ---- one account ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct AccountPageQuery {
    after: Option<String>,
    saved: Option<String>,
}

fn no_such_account() -> Response {
    (
        StatusCode::NOT_FOUND,
        trouble("There is no account by this name."),
    )
        .into_response()
}

/// The account of a path, with its version, or the page that says why there is none.
async fn load_account(state: &AppState, name: &str) -> Result<(AccountState, u64), Response> {
    let Ok(name) = domain::values::AccountName::parse(name) else {
        return Err(no_such_account());
    };
    let loaded = match state.commands.account(&name).await {
        Ok(loaded) => loaded,
        Err(error) => return Err(unreadable("account", error)),
    };
    match loaded.aggregate.state {
        Some(account) => Ok((account, loaded.version)),
        None => Err(no_such_account()),
    }
}

/// An account's page: its settings and sync state, what staff may do with it, and its numbers
/// fifty to a page.
async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<AccountPageQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let (account, _) = match load_account(&state, &name).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let numbers = projections::query::numbers(
        state.commands.store().pool(),
        Some(account.name.as_str()),
        &page_of(query.after),
    )
    .await;
    match numbers {
        Ok(numbers) => {
            account_html(&session, &account, &numbers, query.saved.is_some()).into_response()
        }
        Err(error) => unreadable("account", error),
    }
}

/// An account: its tenant, services and sync state, links to what staff may do with it, and
/// one page of its numbers.
fn account_html(
    session: &Session,
    account: &AccountState,
    numbers: &Listed<NumberState>,
    saved: bool,
) -> Markup {
    let name = account.name.as_str();
    let path = format!("/portal/accounts/{}", urlencoding(name));
    let services = &account.services;
    page(
        name,
        Some(session),
        html! {
            h1 { "Account " (name) }
            @if saved {
                p.notice role="status" { "The account is saved; it is sent to the Teams backend next." }
            }
            dl {
                dt { "Teams tenant" }
                dd {
                    @match &services.teams_tenant_id {
                        Some(tenant) => a href={ "/portal/consents/" (tenant.as_str()) } { (tenant.as_str()) },
                        None => "none",
                    }
                }
                dt { "Services" }
                dd { (services_text(enabled_services(services))) }
                dt { "Sync with backend service" }
                dd {
                    @let syncing: Vec<&str> = Service::ALL.into_iter()
                        .filter(|s| services.is_sync_enabled(*s))
                        .map(service_name)
                        .collect();
                    @if syncing.is_empty() { "none" } @else { (syncing.join(", ")) }
                }
                @if let Some(configuration) = services.teams_direct_routing.as_ref().and_then(|d| d.configuration.as_ref()) {
                    dt { "Direct Routing subdomain" }
                    dd {
                        (configuration.subdomain.as_str())
                        @if configuration.call_screening { ", with call screening" }
                    }
                }
                dt { "Sync state" }
                dd { (sync_cell(&format!("account:{name}"), &account.sync, account.deleting)) }
                dt { "Numbers" }
                dd { (numbers.total.unwrap_or(0)) }
            }
            nav.actions aria-label="This account" {
                a href={ (path) "/numbers" } { "Numbers" }
                a href={ (path) "/addresses" } { "Civic addresses" }
                a href={ "/portal/history/account/" (urlencoding(name)) } { "History" }
                @if !account.deleting && session.principal.allows(auth::Permission::Write) {
                    a href={ (path) "/edit" } { "Edit" }
                }
                @if !account.deleting && session.principal.allows(auth::Permission::Delete) {
                    a href={ (path) "/delete" } { "Delete" }
                }
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
            (next_page(&path, numbers))
            p { a href="/portal/accounts" { "All accounts" } }
        },
    )
}

// ---- create and edit -----------------------------------------------------------------------

/// The account form's fields, to put an error next to the one at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Tenant,
    /// A service's switches.
    Service(Service),
    /// The services together (a combination the rules refuse).
    Services,
    Subdomain,
    Region1,
    Region2,
    Ticket,
    /// Not one field: the account as a whole.
    Form,
}

impl Field {
    /// The field at fault for an error of the API, by its JSON path.
    fn of_target(target: Option<&str>) -> Field {
        let Some(target) = target else {
            return Field::Form;
        };
        let direct_routing = "serviceDetails.teamsDirectRouting.configuration";
        match target {
            "name" | "accountName" => Field::Name,
            "serviceDetails.teamsTenantId" => Field::Tenant,
            "serviceDetails" => Field::Services,
            _ if target == format!("{direct_routing}.subdomainTokens.region1Token") => {
                Field::Region1
            }
            _ if target == format!("{direct_routing}.subdomainTokens.region2Token") => {
                Field::Region2
            }
            _ if target.starts_with(direct_routing) => Field::Subdomain,
            _ => target
                .strip_prefix("serviceDetails.")
                .and_then(|rest| Service::from_wire_name(rest.split('.').next().unwrap_or("")))
                .map_or(Field::Form, Field::Service),
        }
    }

    /// The id of the element that shows this field's error.
    fn error_id(self) -> String {
        match self {
            Field::Name => "name-error".to_string(),
            Field::Tenant => "tenant-error".to_string(),
            Field::Service(service) => format!("{}-error", service.wire_name()),
            Field::Services => "services-error".to_string(),
            Field::Subdomain => "subdomain-error".to_string(),
            Field::Region1 => "region1-error".to_string(),
            Field::Region2 => "region2-error".to_string(),
            Field::Ticket => "ticket-error".to_string(),
            Field::Form => "form-error".to_string(),
        }
    }
}

/// What the account form holds: the account as it is, or what was typed.
#[derive(Debug, Clone, Default)]
struct AccountForm {
    name: String,
    tenant: String,
    enabled: Vec<Service>,
    syncing: Vec<Service>,
    call_screening: bool,
    subdomain: String,
    region1: String,
    region2: String,
    /// The operator's ticket for the change (the history shows it).
    ticket: String,
    /// The version the form was filled from (editing: the change applies only to it).
    version: Option<u64>,
}

/// The form's name for a service's switch, and for its "sync with backend service" switch.
fn switch_name(service: Service, sync: bool) -> String {
    if sync {
        format!("{}-sync", service.wire_name())
    } else {
        service.wire_name().to_string()
    }
}

/// Whether a service's changes can flow through to the backend (all but Azure Operator Call
/// Protection, which is only switched on or off).
fn syncable(service: Service) -> bool {
    service != Service::AzureOperatorCallProtection
}

impl AccountForm {
    /// A new account's form, with the Teams tenant filled in when it comes from a consent.
    fn new(tenant: &str) -> AccountForm {
        AccountForm {
            tenant: tenant.to_string(),
            syncing: Service::ALL.into_iter().filter(|s| syncable(*s)).collect(),
            ..AccountForm::default()
        }
    }

    /// The form of an existing account.
    fn of(account: &AccountState, version: u64) -> AccountForm {
        let services = &account.services;
        let configuration = services
            .teams_direct_routing
            .as_ref()
            .and_then(|d| d.configuration.as_ref());
        AccountForm {
            name: account.name.to_string(),
            tenant: services
                .teams_tenant_id
                .as_ref()
                .map_or(String::new(), ToString::to_string),
            enabled: enabled_services(services),
            syncing: Service::ALL
                .into_iter()
                // A service the account never had starts with its changes flowing through,
                // as on a new account.
                .filter(|s| syncable(*s) && switches(services, *s).is_none_or(|(_, sync)| sync))
                .collect(),
            call_screening: configuration.is_some_and(|c| c.call_screening),
            subdomain: configuration.map_or(String::new(), |c| c.subdomain.to_string()),
            region1: configuration.map_or(String::new(), |c| c.region1_token.to_string()),
            region2: configuration.map_or(String::new(), |c| c.region2_token.to_string()),
            ticket: String::new(),
            version: Some(version),
        }
    }

    /// What the browser sent.
    fn sent(fields: &[(String, String)]) -> AccountForm {
        let value = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .map_or(String::new(), |(_, value)| value.trim().to_string())
        };
        let on = |name: &str| fields.iter().any(|(key, _)| key == name);
        AccountForm {
            name: value("name"),
            tenant: value("tenant"),
            enabled: Service::ALL
                .into_iter()
                .filter(|s| on(&switch_name(*s, false)))
                .collect(),
            syncing: Service::ALL
                .into_iter()
                .filter(|s| syncable(*s) && on(&switch_name(*s, true)))
                .collect(),
            call_screening: on("callScreening"),
            subdomain: value("subdomain"),
            region1: value("region1"),
            region2: value("region2"),
            ticket: value("ticket"),
            version: value("version").parse().ok(),
        }
    }

    /// The account as the API takes it. A service switched off that the account had stays
    /// in the body, disabled; one it never had is left out.
    fn resource(&self, before: Option<&AccountState>) -> AccountResource {
        let had = |service: Service| {
            before.is_some_and(|account| switches(&account.services, service).is_some())
        };
        let enabled = |service: Service| self.enabled.contains(&service);
        let wanted = |service: Service| enabled(service) || had(service);
        let syncable_details = |service: Service| {
            wanted(service).then(|| SyncableServiceDetails {
                enabled: enabled(service),
                sync_enabled: self.syncing.contains(&service),
                number_count: None,
            })
        };
        let configured =
            !(self.subdomain.is_empty() && self.region1.is_empty() && self.region2.is_empty());
        let direct_routing = Service::TeamsDirectRouting;
        AccountResource {
            name: self.name.clone(),
            correlation_id: before
                .and_then(|a| a.correlation_id.as_ref())
                .map(ToString::to_string),
            service_details: Some(AccountServiceDetails {
                teams_tenant_id: (!self.tenant.is_empty()).then(|| self.tenant.clone()),
                teams_operator_connect: syncable_details(Service::TeamsOperatorConnect),
                teams_phone_mobile: syncable_details(Service::TeamsPhoneMobile),
                teams_direct_routing: (wanted(direct_routing) || configured).then(|| {
                    DirectRoutingDetails {
                        enabled: enabled(direct_routing),
                        sync_enabled: self.syncing.contains(&direct_routing),
                        configuration: configured.then(|| DirectRoutingConfigurationWire {
                            call_screening: self.call_screening,
                            subdomain: self.subdomain.clone(),
                            subdomain_tokens: SubdomainTokensWire {
                                region1_token: self.region1.clone(),
                                region2_token: self.region2.clone(),
                            },
                        }),
                        number_count: None,
                        subdomain_status: None,
                    }
                }),
                zoom_phone_cloud_peering: syncable_details(Service::ZoomPhoneCloudPeering),
                azure_operator_call_protection: wanted(Service::AzureOperatorCallProtection).then(
                    || CallProtectionDetails {
                        enabled: enabled(Service::AzureOperatorCallProtection),
                        number_count: None,
                    },
                ),
            }),
            service_provisioning_status: None,
            service_provisioning_errors: None,
        }
    }
}

/// A service's switches on an account (enabled, sync with backend service): None when the
/// account never had the service.
fn switches(services: &AccountServices, service: Service) -> Option<(bool, bool)> {
    match service {
        Service::TeamsOperatorConnect => services
            .teams_operator_connect
            .map(|s| (s.enabled, s.sync_enabled)),
        Service::TeamsPhoneMobile => services
            .teams_phone_mobile
            .map(|s| (s.enabled, s.sync_enabled)),
        Service::TeamsDirectRouting => services
            .teams_direct_routing
            .as_ref()
            .map(|s| (s.enabled, s.sync_enabled)),
        Service::ZoomPhoneCloudPeering => services
            .zoom_phone_cloud_peering
            .map(|s| (s.enabled, s.sync_enabled)),
        Service::AzureOperatorCallProtection => services
            .azure_operator_call_protection
            .map(|s| (s.enabled, false)),
    }
}

#[derive(Deserialize)]
struct NewAccountQuery {
    tenant: Option<String>,
}

const REFUSED_WRITE: &str = "Your role may read accounts but not create or change them. Ask an administrator for a role that may write.";

fn refused(status: StatusCode, message: &str) -> Response {
    (status, trouble(message)).into_response()
}

/// The form for a new account (from a consent: with its tenant filled in).
async fn new_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<NewAccountQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    if !session.principal.allows(auth::Permission::Write) {
        return refused(StatusCode::FORBIDDEN, REFUSED_WRITE);
    }
    let tenant = query.tenant.as_deref().unwrap_or("").trim();
    account_form_html(&session, None, &AccountForm::new(tenant), None).into_response()
}

/// Creates an account: only a new name (`If-None-Match: *`), so that this form never
/// replaces an account that exists.
async fn create_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let mut caller = match writer(&session, &headers, csrf(&fields), REFUSED_WRITE) {
        Ok(caller) => caller,
        Err(refusal) => return *refusal,
    };
    caller.preconditions.if_none_match = Some(commands::EntityTag::Any);
    caller.preconditions.if_match = None;
    let form = AccountForm::sent(&fields);
    let error = if form.name.is_empty() {
        Some((Field::Name, "Give the account a name.".to_string()))
    } else {
        with_ticket(&mut caller, &form.ticket)
            .err()
            .map(|message| (Field::Ticket, message))
    };
    if let Some(error) = error {
        return (
            StatusCode::BAD_REQUEST,
            account_form_html(&session, None, &form, Some(error)),
        )
            .into_response();
    }
    let body = form.resource(None);
    match crate::operations::put_account(&state, &caller, &form.name, body)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => saved(&form.name),
        Err(error) if error.status == StatusCode::PRECONDITION_FAILED => {
            let message = format!(
                "An account named {} exists already: choose another name, or edit that account.",
                form.name
            );
            (
                StatusCode::CONFLICT,
                account_form_html(&session, None, &form, Some((Field::Name, message))),
            )
                .into_response()
        }
        Err(error) => form_refused(&session, None, &form, error),
    }
}

/// The form of an existing account.
async fn edit_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    if !session.principal.allows(auth::Permission::Write) {
        return refused(StatusCode::FORBIDDEN, REFUSED_WRITE);
    }
    let (account, version) = match load_account(&state, &name).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let form = AccountForm::of(&account, version);
    account_form_html(&session, Some(&account), &form, None).into_response()
}

/// Replaces an account's settings with the form's, if nobody changed the account since the
/// form was filled (`If-Match` its version then).
async fn update_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let mut caller = match writer(&session, &headers, csrf(&fields), REFUSED_WRITE) {
        Ok(caller) => caller,
        Err(refusal) => return *refusal,
    };
    let (account, _) = match load_account(&state, &name).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let mut form = AccountForm::sent(&fields);
    // The name is the account's, whatever the form says.
    form.name = account.name.to_string();
    caller.preconditions.if_none_match = None;
    caller.preconditions.if_match = Some(match form.version {
        Some(version) => commands::EntityTag::Tags(vec![commands::etag(version)]),
        None => commands::EntityTag::Any,
    });
    if let Err(message) = with_ticket(&mut caller, &form.ticket) {
        let error = Some((Field::Ticket, message));
        return (
            StatusCode::BAD_REQUEST,
            account_form_html(&session, Some(&account), &form, error),
        )
            .into_response();
    }
    let body = form.resource(Some(&account));
    match crate::operations::put_account(&state, &caller, &form.name, body)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => saved(&form.name),
        Err(error) if error.status == StatusCode::PRECONDITION_FAILED => {
            let message = "Someone changed this account after you opened this form. Open the \
                           form again to see the account as it is now, then make your change."
                .to_string();
            (
                StatusCode::CONFLICT,
                account_form_html(
                    &session,
                    Some(&account),
                    &form,
                    Some((Field::Form, message)),
                ),
            )
                .into_response()
        }
        Err(error) => form_refused(&session, Some(&account), &form, error),
    }
}

fn csrf(fields: &[(String, String)]) -> Option<&str> {
    fields
        .iter()
        .find(|(key, _)| key == "csrf")
        .map(|(_, value)| value.as_str())
}

fn saved(name: &str) -> Response {
    Redirect::to(&format!("/portal/accounts/{}?saved=1", urlencoding(name))).into_response()
}

/// The form again with what was typed and the API's refusal next to the field at fault; a
/// fault of nmp's own is a page that says so.
fn form_refused(
    session: &Session,
    account: Option<&AccountState>,
    form: &AccountForm,
    error: ApiError,
) -> Response {
    if !error.status.is_client_error() || error.status == StatusCode::FORBIDDEN {
        return (error.status, trouble(&error.body.message)).into_response();
    }
    let field = match Field::of_target(error.body.target.as_deref()) {
        // Editing, the name is no field (it cannot change): said above the form.
        Field::Name if account.is_some() => Field::Form,
        field => field,
    };
    let message = capitalised(&error.body.message);
    (
        error.status,
        account_form_html(session, account, form, Some((field, message))),
    )
        .into_response()
}

/// The form that creates an account (`account` None) or edits one.
fn account_form_html(
    session: &Session,
    account: Option<&AccountState>,
    form: &AccountForm,
    error: Option<(Field, String)>,
) -> Markup {
    let error_on = |field: Field| {
        error
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, message)| message.as_str())
    };
    let shown = |field: Field| {
        html! {
            @if let Some(message) = error_on(field) {
                p.error id=(field.error_id()) role="alert" { (message) }
            }
        }
    };
    let (title, action) = match account {
        Some(account) => (
            format!("Edit account {}", account.name.as_str()),
            format!(
                "/portal/accounts/{}/edit",
                urlencoding(account.name.as_str())
            ),
        ),
        None => (
            "Create an account".to_string(),
            "/portal/new-account".to_string(),
        ),
    };
    page(
        &title,
        Some(session),
        html! {
            h1 { (title) }
            form.stack method="post" action=(action) {
                input type="hidden" name="csrf" value=(session.csrf);
                @if let Some(version) = form.version {
                    input type="hidden" name="version" value=(version);
                }
                (shown(Field::Form))
                @if account.is_none() {
                    label for="name" { "Name" }
                    input id="name" name="name" value=(form.name) required maxlength="100"
                        autocomplete="off" aria-describedby="name-hint name-error";
                    p.hint id="name-hint" { "Up to 100 letters, digits, '_' and '-'. It cannot change later." }
                    (shown(Field::Name))
                }
                label for="tenant" { "Teams tenant id" }
                input id="tenant" name="tenant" value=(form.tenant) autocomplete="off"
                    aria-describedby="tenant-hint tenant-error";
                p.hint id="tenant-hint" { "The customer's Microsoft Entra tenant, a GUID; may stay empty until it is known." }
                (shown(Field::Tenant))
                fieldset aria-describedby="services-error" {
                    legend { "Services to enable" }
                    (shown(Field::Services))
                    @for service in Service::ALL {
                        @let wire = service.wire_name();
                        fieldset.service aria-describedby={ (wire) "-error" } {
                            legend { (service_name(service)) }
                            div.check {
                                input type="checkbox" id=(wire) name=(wire) checked[form.enabled.contains(&service)];
                                label for=(wire) { "Enabled" }
                            }
                            @if syncable(service) {
                                @let sync = switch_name(service, true);
                                div.check {
                                    input type="checkbox" id=(sync) name=(sync) checked[form.syncing.contains(&service)];
                                    label for=(sync) { "Sync with backend service" }
                                }
                            }
                            @if service == Service::TeamsDirectRouting {
                                p.hint { "Direct Routing settings: fill all three, or leave all empty." }
                                label for="subdomain" { "Subdomain" }
                                input id="subdomain" name="subdomain" value=(form.subdomain) maxlength="10"
                                    autocomplete="off" aria-describedby="subdomain-error";
                                (shown(Field::Subdomain))
                                label for="region1" { "DNS token, region 1" }
                                input id="region1" name="region1" value=(form.region1) maxlength="100"
                                    autocomplete="off" aria-describedby="region1-error";
                                (shown(Field::Region1))
                                label for="region2" { "DNS token, region 2" }
                                input id="region2" name="region2" value=(form.region2) maxlength="100"
                                    autocomplete="off" aria-describedby="region2-error";
                                (shown(Field::Region2))
                                div.check {
                                    input type="checkbox" id="callScreening" name="callScreening" checked[form.call_screening];
                                    label for="callScreening" { "Call screening" }
                                }
                            }
                            (shown(Field::Service(service)))
                        }
                    }
                }
                (ticket_field(&form.ticket, error_on(Field::Ticket)))
                button type="submit" {
                    @if account.is_some() { "Save the account" } @else { "Create the account" }
                }
            }
            p {
                @match account {
                    Some(account) => a href={ "/portal/accounts/" (urlencoding(account.name.as_str())) } { "Back to the account" },
                    None => a href="/portal/accounts" { "All accounts" },
                }
            }
        },
    )
}

/// The optional ticket id of a change, with its error.
fn ticket_field(ticket: &str, error: Option<&str>) -> Markup {
    html! {
        label for="ticket" { "Ticket id (optional)" }
        input id="ticket" name="ticket" value=(ticket) maxlength="64" autocomplete="off"
            aria-describedby="ticket-hint ticket-error";
        p.hint id="ticket-hint" { "Your ticket for this change, up to 64 characters: the history shows it." }
        @if let Some(message) = error {
            p.error id="ticket-error" role="alert" { (message) }
        }
    }
}

// ---- delete --------------------------------------------------------------------------------

const REFUSED_DELETE: &str =
    "Your role may not delete accounts. Ask an administrator for a role that may delete.";

/// The caller of a form that deletes: the form must carry the session's form token and the
/// session's roles must allow deleting.
fn deleter(
    session: &Session,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<crate::context::Caller, Box<Response>> {
    caller_allowed(
        session,
        headers,
        csrf,
        auth::Permission::Delete,
        REFUSED_DELETE,
    )
}

/// Asks whether to delete an account, and whether its numbers go with it.
async fn confirm_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    if !session.principal.allows(auth::Permission::Delete) {
        return refused(StatusCode::FORBIDDEN, REFUSED_DELETE);
    }
    let answer = DeleteAnswer::default();
    delete_page(&state, &session, &name, &answer, StatusCode::OK).await
}

/// What the confirmation shows: the choice made, the ticket typed, and a refusal beside the
/// field at fault.
#[derive(Default)]
struct DeleteAnswer {
    with_numbers: bool,
    ticket: String,
    numbers_error: Option<String>,
    ticket_error: Option<String>,
}

/// The confirmation page, with the count of the account's numbers.
async fn delete_page(
    state: &AppState,
    session: &Session,
    name: &str,
    answer: &DeleteAnswer,
    status: StatusCode,
) -> Response {
    let (account, _) = match load_account(state, name).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let numbers = match state.commands.account_number_counts(&account.name).await {
        Ok(counts) => counts.total(),
        Err(error) => return unreadable("account", error),
    };
    (status, delete_html(session, &account, numbers, answer)).into_response()
}

#[derive(Deserialize)]
struct DeleteForm {
    csrf: Option<String>,
    numbers: Option<String>,
    ticket: Option<String>,
}

/// Deletes an account (with its numbers when asked) through the API's own operation.
async fn delete_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let mut caller = match deleter(&session, &headers, form.csrf.as_deref()) {
        Ok(caller) => caller,
        Err(refusal) => return *refusal,
    };
    let mut answer = DeleteAnswer {
        with_numbers: form.numbers.as_deref() == Some("delete"),
        ticket: form.ticket.as_deref().unwrap_or("").trim().to_string(),
        ..DeleteAnswer::default()
    };
    if let Err(message) = with_ticket(&mut caller, &answer.ticket) {
        answer.ticket_error = Some(message);
        return delete_page(&state, &session, &name, &answer, StatusCode::BAD_REQUEST).await;
    }
    match crate::operations::delete_account(&state, &caller, &name, answer.with_numbers)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => {
            // With numbers the backend must release, the account stays until it has.
            match load_account(&state, &name).await {
                Ok(_) => Redirect::to(&format!("/portal/accounts/{}", urlencoding(&name)))
                    .into_response(),
                Err(_) => Redirect::to(&format!("/portal/accounts?deleted={}", urlencoding(&name)))
                    .into_response(),
            }
        }
        Err(error) if error.status == StatusCode::NOT_FOUND => no_such_account(),
        Err(error) if error.status.is_client_error() && error.status != StatusCode::FORBIDDEN => {
            answer.numbers_error = Some(if error.body.code == "AccountHasNumbers" {
                "The account still has numbers. Choose to delete them with it, or delete or \
                 move them first."
                    .to_string()
            } else {
                capitalised(&error.body.message)
            });
            delete_page(&state, &session, &name, &answer, error.status).await
        }
        Err(error) => refused(error.status, &error.body.message),
    }
}

/// The confirmation: what goes, and the choice of keeping the numbers (then the account must
/// have none) or deleting them with it.
fn delete_html(
    session: &Session,
    account: &AccountState,
    numbers: u64,
    answer: &DeleteAnswer,
) -> Markup {
    let name = account.name.as_str();
    let path = format!("/portal/accounts/{}", urlencoding(name));
    let counted = if numbers == 1 {
        "1 number".to_string()
    } else {
        format!("{numbers} numbers")
    };
    page(
        &format!("Delete account {name}"),
        Some(session),
        html! {
            h1 { "Delete account " (name) "?" }
            p {
                @if numbers == 0 { "The account holds no numbers. " } @else { "The account holds " (counted) ". " }
                "Deleting it tells the Teams backend; numbers the backend holds go once it has released them."
            }
            form.stack method="post" action={ (path) "/delete" } {
                input type="hidden" name="csrf" value=(session.csrf);
                @if numbers == 0 && answer.numbers_error.is_none() {
                    input type="hidden" name="numbers" value="keep";
                } @else {
                    fieldset aria-describedby="numbers-error" {
                        legend { "Its numbers" }
                        div.check {
                            input type="radio" id="numbers-keep" name="numbers" value="keep" checked[!answer.with_numbers];
                            label for="numbers-keep" { "Delete the account only (it must have no numbers)" }
                        }
                        div.check {
                            input type="radio" id="numbers-delete" name="numbers" value="delete" checked[answer.with_numbers];
                            label for="numbers-delete" { "Delete the account and its " (counted) }
                        }
                        @if let Some(message) = &answer.numbers_error {
                            p.error id="numbers-error" role="alert" { (message) }
                        }
                    }
                }
                (ticket_field(&answer.ticket, answer.ticket_error.as_deref()))
                button.danger type="submit" { "Delete account " (name) }
            }
            p { a href=(path) { "Keep the account" } }
        },
    )
}
