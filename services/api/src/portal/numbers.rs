//! Numbers: one account's numbers or every account's, filtered and fifty to a page; adding
//! numbers by hand; a number's page, where staff change its custom SIP header after reviewing
//! the change; deleting several numbers after confirming; and the filtered list as a CSV file in
//! the upload's format, so that staff can export numbers, edit them and upload them again.
//!
//! Every write goes through the API's own operations (`create_or_update_numbers`,
//! `set_custom_sip_header`, `delete_numbers`), so the rules, the events and the audit trail are
//! the API's. The lists read the read side through its list filter, built from the form's
//! fields: the values are bound, never pasted into SQL.

use axum::body::Body;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use domain::number::NumberState;
use domain::{AccountName, AccountState, E164, NumberDetails, Service, TeamsNumberService};
use maud::{Markup, html};
use projections::filter::{self, Resource};
use projections::query::{ListQuery, Listed};

use super::pages::*;
use super::*;
use crate::AppState;
use crate::context::Caller;
use crate::error::ApiError;
use crate::routes::lists::TeamsCivicAddressResource;
use crate::wire::number::{
    BatchNumbers, BatchNumbersDelete, EnabledDetails, MAX_BATCH, NumberConfiguration,
    NumberIdentifier, NumberResource, NumberServiceDetails, TeamsNumberConfigurationWire,
    TeamsNumberDetails,
};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal/numbers", get(all_numbers))
        .route("/portal/numbers/export.csv", get(export_all))
        .route("/portal/accounts/{name}/numbers", get(account_numbers))
        .route(
            "/portal/accounts/{name}/numbers/export.csv",
            get(export_account),
        )
        .route(
            "/portal/accounts/{name}/numbers/new",
            get(new_numbers).post(create_numbers),
        )
        .route("/portal/accounts/{name}/numbers/delete", post(delete))
        .route("/portal/accounts/{name}/numbers/{number}", get(number))
        .route(
            "/portal/accounts/{name}/numbers/{number}/sip-header",
            post(sip_header),
        )
}

/// Pairs of a query string or form, in order; a key may come several times (checkboxes).
type Pairs = Vec<(String, String)>;

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

fn every<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The Teams settings of a number that has a Teams service (Operator Connect or Teams Phone
/// Mobile) enabled, with that service.
fn teams_of(details: &NumberDetails) -> Option<(Service, &TeamsNumberService)> {
    [
        (
            Service::TeamsOperatorConnect,
            &details.teams_operator_connect,
        ),
        (Service::TeamsPhoneMobile, &details.teams_phone_mobile),
    ]
    .into_iter()
    .find_map(|(service, settings)| {
        settings
            .as_ref()
            .filter(|s| s.enabled)
            .map(|settings| (service, settings))
    })
}

/// The Teams service of a number for calling users that has neither a civic address nor a
/// location, and whose enterprise may not update its address: the backend refuses such a
/// number, so the portal asks for an address before anything is written.
pub(super) fn needs_address(details: &NumberDetails) -> Option<Service> {
    let (service, settings) = teams_of(details)?;
    let configuration = settings.configuration.as_ref()?;
    let missing = configuration.usage == domain::Usage::CallingUserAssignment
        && configuration.civic_address_id.is_none()
        && configuration.location_id.is_none()
        && !configuration.allow_tenant_address_update;
    missing.then_some(service)
}

/// Whether a number may carry a custom SIP header: not with Teams Phone Mobile or Azure
/// Operator Call Protection enabled.
fn sip_header_allowed(details: &NumberDetails) -> bool {
    !details.is_enabled(Service::TeamsPhoneMobile)
        && !details.is_enabled(Service::AzureOperatorCallProtection)
}

fn number_link(account: &str, number: &str) -> String {
    format!(
        "/portal/accounts/{}/numbers/{}",
        urlencoding(account),
        urlencoding(number)
    )
}

fn list_link(account: Option<&str>) -> String {
    match account {
        Some(account) => format!("/portal/accounts/{}/numbers", urlencoding(account)),
        None => "/portal/numbers".to_string(),
    }
}

// ---- the list and its filter ---------------------------------------------------------------

/// The list's filter as its form sends it: each field given narrows the list.
#[derive(Debug, Default, Clone)]
struct NumberFilter {
    number: String,
    account: String,
    service: String,
    usage: String,
    sync: String,
    sip: String,
}

/// The choices of the filter's drop-downs: the value on the wire and what staff read.
const SERVICES: &[(&str, &str)] = &[
    ("teamsOperatorConnect", "Operator Connect"),
    ("teamsPhoneMobile", "Teams Phone Mobile"),
    ("teamsDirectRouting", "Direct Routing"),
    ("zoomPhoneCloudPeering", "Zoom Phone Cloud Peering"),
    (
        "azureOperatorCallProtection",
        "Azure Operator Call Protection",
    ),
];
const USAGES: &[(&str, &str)] = &[
    ("CallingUserAssignment", "Calling users"),
    (
        "FirstPartyAppAssignment",
        "Apps (auto attendants, call queues)",
    ),
    ("ConferenceAssignment", "Conferences"),
];
const SYNC_STATES: &[(&str, &str)] = &[
    ("pending", "Pending"),
    ("synced", "Synced"),
    ("failed", "Failed"),
];
const CAPABILITIES: &[(&str, &str)] = &[
    ("InboundCalling", "Inbound calling"),
    ("OutboundCalling", "Outbound calling"),
    ("Mobile", "Mobile (Teams Phone Mobile only)"),
];

fn service_name(wire: &str) -> &str {
    SERVICES
        .iter()
        .find(|(value, _)| *value == wire)
        .map_or(wire, |(_, name)| name)
}

impl NumberFilter {
    fn from_pairs(pairs: &[(String, String)]) -> NumberFilter {
        let field = |key| first(pairs, key).trim().to_string();
        NumberFilter {
            number: field("number"),
            account: field("account"),
            service: field("service"),
            usage: field("usage"),
            sync: field("sync"),
            sip: field("sip"),
        }
    }

    /// The filter in the read side's filter language; values quoted, quotes doubled.
    fn expression(&self, across: bool) -> Option<String> {
        let quote = |value: &str| format!("'{}'", value.replace('\'', "''"));
        let mut clauses = Vec::new();
        if !self.number.is_empty() {
            let digits: String = self
                .number
                .chars()
                .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '(' | ')' | '.'))
                .collect();
            let prefix = if digits.starts_with('+') {
                digits
            } else {
                format!("+{digits}")
            };
            clauses.push(format!("startswith(telephoneNumber, {})", quote(&prefix)));
        }
        if across && !self.account.is_empty() {
            clauses.push(format!("accountName eq {}", quote(&self.account)));
        }
        let fields = [
            ("service", &self.service),
            ("usage", &self.usage),
            ("serviceProvisioningStatus", &self.sync),
            ("customSipHeader", &self.sip),
        ];
        for (field, value) in fields {
            if !value.is_empty() {
                clauses.push(format!("{field} eq {}", quote(value)));
            }
        }
        (!clauses.is_empty()).then(|| clauses.join(" and "))
    }

    /// The read side's filter, or what is wrong with the form's values.
    fn parsed(&self, across: bool) -> Result<Option<filter::Filter>, String> {
        self.expression(across)
            .map(|text| filter::parse(&text, Resource::Numbers))
            .transpose()
            .map_err(|error| format!("This filter cannot be used: {error}"))
    }

    /// The filter as a query string (without `?`), to keep it in links.
    fn query_string(&self, across: bool) -> String {
        let mut fields = vec![("number", &self.number)];
        if across {
            fields.push(("account", &self.account));
        }
        fields.extend([
            ("service", &self.service),
            ("usage", &self.usage),
            ("sync", &self.sync),
            ("sip", &self.sip),
        ]);
        fields
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| format!("{key}={}", urlencoding(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn is_empty(&self, across: bool) -> bool {
        self.expression(across).is_none()
    }
}

/// `path?query` with `extra` added, or `path` alone.
fn with_query(path: &str, query: &str, extra: &str) -> String {
    let parts: Vec<&str> = [query, extra]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

async fn all_numbers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Pairs>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    list_page(&state, &session, None, &pairs).await
}

async fn account_numbers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(pairs): Query<Pairs>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let account = match existing_account(&state, &name).await {
        Ok(account) => account,
        Err(answer) => return *answer,
    };
    list_page(&state, &session, Some(&account), &pairs).await
}

/// An account that exists, read from the command side (so a page right after its creation
/// finds it), or the page that says it does not.
async fn existing_account(state: &AppState, name: &str) -> Result<AccountState, Box<Response>> {
    let not_found = || {
        Box::new(
            (
                StatusCode::NOT_FOUND,
                trouble("There is no account by this name."),
            )
                .into_response(),
        )
    };
    let name = AccountName::parse(name.to_string()).map_err(|_| not_found())?;
    let loaded = state
        .commands
        .account(&name)
        .await
        .map_err(|error| Box::new(unreadable("account", error)))?;
    loaded.aggregate.state.ok_or_else(not_found)
}

async fn list_page(
    state: &AppState,
    session: &Session,
    account: Option<&AccountState>,
    pairs: &[(String, String)],
) -> Response {
    let across = account.is_none();
    let filter = NumberFilter::from_pairs(pairs);
    let (parsed, filter_error) = match filter.parsed(across) {
        Ok(parsed) => (parsed, None),
        Err(error) => (None, Some(error)),
    };
    let mut query = page_of(Some(first(pairs, "after").to_string()));
    query.filter = parsed;
    // Counting every account's numbers reads them all (80 ms at a million): the list of all
    // accounts goes without its total, an account's list (an index range) has it.
    query.count = !across;
    let listed = if filter_error.is_some() {
        Listed {
            items: Vec::new(),
            more: false,
            total: Some(0),
            last_key: None,
        }
    } else {
        let name = account.map(|a| a.name.as_str());
        match projections::query::numbers(state.commands.store().pool(), name, &query).await {
            Ok(listed) => listed,
            Err(error) => return unreadable("numbers", error),
        }
    };
    let notice = match (first(pairs, "added"), first(pairs, "deleted")) {
        (added, _) if !added.is_empty() => Some(format!(
            "{} added. They show here once recorded, and are sent to the backend next.",
            count_text(added)
        )),
        (_, deleted) if !deleted.is_empty() => Some(format!(
            "{} being deleted. Numbers synced with the backend are released there first.",
            count_text(deleted)
        )),
        _ => None,
    };
    let view = ListView {
        account,
        filter: &filter,
        filter_error: filter_error.as_deref(),
        notice: notice.as_deref(),
        after: !first(pairs, "after").is_empty(),
    };
    list_html(session, &view, &listed).into_response()
}

/// "1 number", "3 numbers", from a query string's count.
fn count_text(count: &str) -> String {
    match count.parse::<u64>() {
        Ok(1) => "1 number".to_string(),
        Ok(n) => format!("{n} numbers"),
        Err(_) => "The numbers".to_string(),
    }
}

struct ListView<'a> {
    account: Option<&'a AccountState>,
    filter: &'a NumberFilter,
    filter_error: Option<&'a str>,
    notice: Option<&'a str>,
    /// Whether the page follows another.
    after: bool,
}

fn select(id: &str, label: &str, choices: &[(&str, &str)], chosen: &str, any: &str) -> Markup {
    html! {
        div {
            label for=(id) { (label) }
            select id=(id) name=(id) {
                option value="" selected[chosen.is_empty()] { (any) }
                @for (value, name) in choices {
                    option value=(value) selected[*value == chosen] { (name) }
                }
            }
        }
    }
}

fn usage_of(details: &NumberDetails) -> &'static str {
    teams_of(details)
        .and_then(|(_, s)| s.configuration.as_ref())
        .map_or("", |c| {
            USAGES
                .iter()
                .find(|(value, _)| *value == c.usage.as_str())
                .map_or(c.usage.as_str(), |(_, name)| name)
        })
}

fn list_html(session: &Session, view: &ListView<'_>, listed: &Listed<NumberState>) -> Markup {
    let across = view.account.is_none();
    let account = view.account.map(|a| a.name.as_str());
    let path = list_link(account);
    let query = view.filter.query_string(across);
    let may_write = session.principal.allows(auth::Permission::Write);
    let may_delete = !across && session.principal.allows(auth::Permission::Delete);
    let title = match account {
        Some(name) => format!("Numbers of {name}"),
        None => "Numbers".to_string(),
    };
    let columns: u8 = if across {
        5
    } else if may_delete {
        6
    } else {
        5
    };
    let table = html! {
        table {
            caption { "Numbers in telephone number order" }
            thead {
                tr {
                    @if may_delete { th scope="col" { "Select" } }
                    th scope="col" { "Telephone number" }
                    @if across { th scope="col" { "Account" } }
                    th scope="col" { "Services" }
                    th scope="col" { "Usage" }
                    @if !across { th scope="col" { "Custom SIP header" } }
                    th scope="col" { "Sync state" }
                }
            }
            tbody {
                @for (index, number) in listed.items.iter().enumerate() {
                    @let tn = number.telephone_number.as_str();
                    @let owner = number.account.as_str();
                    tr {
                        @if may_delete {
                            td {
                                input.pick type="checkbox" id={ "pick-" (index) } name="number" value=(tn);
                                label.visually-hidden for={ "pick-" (index) } { "Select " (tn) }
                            }
                        }
                        td { a href=(number_link(owner, tn)) { (tn) } }
                        @if across {
                            td { a href={ "/portal/accounts/" (urlencoding(owner)) "/numbers" } { (owner) } }
                        }
                        td { (services_text(number.details.enabled_services())) }
                        td { (usage_of(&number.details)) }
                        @if !across {
                            td { (number.details.custom_sip_header.as_ref().map_or("", |h| h.as_str())) }
                        }
                        td { (sync_cell(&format!("number:{tn}"), &number.sync, number.deleting)) }
                    }
                }
                @if listed.items.is_empty() {
                    tr {
                        td colspan=(columns) {
                            @if !view.filter.is_empty(across) { "No number matches this filter" }
                            @else if view.after { "No numbers follow this page" }
                            @else { "No numbers yet" }
                        }
                    }
                }
            }
        }
    };
    page(
        &title,
        Some(session),
        html! {
            h1 { (title) }
            @if let Some(notice) = view.notice {
                p.notice role="status" { (notice) }
            }
            p.actions {
                @if let Some(name) = account {
                    a href={ "/portal/accounts/" (urlencoding(name)) } { "Account " (name) }
                    @if may_write {
                        a href={ (path) "/new" } { "Add numbers" }
                        a href={ "/portal/accounts/" (urlencoding(name)) "/uploads/new" } { "Upload a CSV file" }
                    }
                }
                a href=(with_query(&format!("{path}/export.csv"), &query, "")) download {
                    @if view.filter.is_empty(across) { "Export as CSV" } @else { "Export these numbers as CSV" }
                }
            }
            form.filters method="get" action=(path) role="search" aria-label="Filter the numbers" {
                div {
                    label for="number" { "Telephone number starts with" }
                    input id="number" name="number" type="search" inputmode="tel" value=(view.filter.number)
                        aria-describedby="filter-error";
                }
                @if across {
                    div {
                        label for="account" { "Account" }
                        input id="account" name="account" type="search" value=(view.filter.account);
                    }
                }
                (select("service", "Service", SERVICES, &view.filter.service, "Any service"))
                (select("usage", "Usage", USAGES, &view.filter.usage, "Any usage"))
                (select("sync", "Sync state", SYNC_STATES, &view.filter.sync, "Any state"))
                div {
                    label for="sip" { "Custom SIP header" }
                    input id="sip" name="sip" type="search" value=(view.filter.sip);
                }
                div.buttons {
                    button type="submit" { "Filter" }
                    @if !view.filter.is_empty(across) { a href=(path) { "Show all" } }
                }
                @if let Some(error) = view.filter_error {
                    p.error id="filter-error" role="alert" { (error) }
                }
            }
            @if let Some(total) = listed.total {
                p.hint {
                    (in_all(total, "number"))
                    @if !view.filter.is_empty(across) { " match this filter" }
                }
            }
            @if may_delete {
                form method="post" action={ (path) "/delete" } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="step" value="confirm";
                    (table)
                    @if !listed.items.is_empty() {
                        button.quiet type="submit" { "Delete the selected numbers…" }
                    }
                }
            } @else {
                (table)
            }
            @if let (true, Some(last)) = (listed.more, listed.last_key.as_deref()) {
                nav aria-label="Pages" {
                    a href=(with_query(&path, &query, &format!("after={}", urlencoding(last)))) { "Next page" }
                }
            }
        },
    )
}

// ---- export --------------------------------------------------------------------------------

/// Rows read from the read side at a time while exporting.
const EXPORT_PAGE: u64 = 500;

async fn export_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Pairs>,
) -> Response {
    let Some(_session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    export(&state, None, &pairs)
}

async fn export_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(pairs): Query<Pairs>,
) -> Response {
    let Some(_session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let account = match existing_account(&state, &name).await {
        Ok(account) => account,
        Err(answer) => return *answer,
    };
    export(&state, Some(account.name.to_string()), &pairs)
}

/// The filtered list as a CSV file in the upload's format, read a page at a time and sent as
/// it is read, so that a long list never sits whole in memory.
fn export(state: &AppState, account: Option<String>, pairs: &[(String, String)]) -> Response {
    let filter = match NumberFilter::from_pairs(pairs).parsed(account.is_none()) {
        Ok(filter) => filter,
        Err(error) => return (StatusCode::BAD_REQUEST, trouble(&error)).into_response(),
    };
    let pool = state.commands.store().pool().clone();
    let file_name = match &account {
        Some(name) => format!("numbers-{name}.csv"),
        None => "numbers.csv".to_string(),
    };
    let pages = futures::stream::unfold(Some((None::<String>, true)), move |cursor| {
        let pool = pool.clone();
        let filter = filter.clone();
        let account = account.clone();
        async move {
            let (after, first_page) = cursor?;
            let query = ListQuery {
                filter,
                after,
                skip: 0,
                take: EXPORT_PAGE,
                count: false,
            };
            match projections::query::numbers(&pool, account.as_deref(), &query).await {
                Ok(listed) => {
                    let resources: Vec<NumberResource> = listed
                        .items
                        .iter()
                        .map(NumberResource::from_state)
                        .collect();
                    let mut text = crate::import::export_csv(&resources);
                    if !first_page {
                        text = text
                            .split_once('\n')
                            .map_or(String::new(), |(_, rows)| rows.to_string());
                    }
                    let next = listed
                        .more
                        .then_some(listed.last_key)
                        .flatten()
                        .map(|last| (Some(last), false));
                    Some((Ok::<_, std::io::Error>(text), next))
                }
                Err(error) => {
                    tracing::error!(%error, "the portal's export stopped");
                    Some((Err(std::io::Error::other(error.to_string())), None))
                }
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", file_name.replace('"', "")),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(pages),
    )
        .into_response()
}

// ---- adding numbers by hand ----------------------------------------------------------------

/// The fields of the form that adds numbers, to put an error next to the one at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NewField {
    Service,
    Sip,
    Numbers,
    Usage,
    Capabilities,
    Place,
    Form,
}

/// What the form that adds numbers holds: as sent, or empty.
#[derive(Debug, Default)]
struct NewNumbers {
    service: String,
    sip: String,
    numbers: String,
    usage: String,
    capabilities: Vec<String>,
    place: String,
    allow_update: bool,
}

impl NewNumbers {
    fn from_pairs(pairs: &[(String, String)]) -> NewNumbers {
        NewNumbers {
            service: first(pairs, "service").trim().to_string(),
            sip: first(pairs, "sip").trim().to_string(),
            numbers: first(pairs, "numbers").to_string(),
            usage: first(pairs, "usage").trim().to_string(),
            capabilities: every(pairs, "capability")
                .into_iter()
                .map(str::to_string)
                .collect(),
            place: first(pairs, "place").to_string(),
            allow_update: first(pairs, "allow_update") == "true",
        }
    }

    /// The numbers typed or pasted: one per line, or separated by commas, semicolons or spaces.
    fn entered(&self) -> Vec<String> {
        self.numbers
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A civic address of the account's tenant, with its locations, for the address picker.
struct Place {
    address: TeamsCivicAddressResource,
}

impl Place {
    fn text(&self) -> String {
        let a = &self.address;
        let street: Vec<&str> = [
            a.house_number.as_deref(),
            a.street_name.as_deref(),
            a.street_suffix.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut parts = vec![street.join(" ")];
        parts.extend(
            [a.city_or_town.as_deref(), a.country.as_deref()]
                .into_iter()
                .flatten()
                .map(str::to_string),
        );
        let mut text = parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(description) = a.description.as_deref().or(a.company_name.as_deref()) {
            text.push_str(&format!(" ({description})"));
        }
        text
    }
}

/// The civic addresses of the account's Teams tenant as the read side holds them (none
/// without a tenant), at most 500.
async fn places(state: &AppState, account: &AccountState) -> Result<Vec<Place>, Response> {
    let Some(tenant) = &account.services.teams_tenant_id else {
        return Ok(Vec::new());
    };
    let query = ListQuery {
        take: 500,
        ..ListQuery::default()
    };
    let listed =
        projections::query::civic_addresses(state.commands.store().pool(), tenant.as_str(), &query)
            .await
            .map_err(|error| unreadable("civic addresses", error))?;
    Ok(listed
        .items
        .into_iter()
        .filter_map(|row| {
            let mut address: TeamsCivicAddressResource =
                serde_json::from_value(row.address).ok()?;
            address.id = row.civic_address_id;
            Some(Place { address })
        })
        .collect())
}

async fn new_numbers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    if !session.principal.allows(auth::Permission::Write) {
        return may_not_add();
    }
    let account = match existing_account(&state, &name).await {
        Ok(account) => account,
        Err(answer) => return *answer,
    };
    let places = match places(&state, &account).await {
        Ok(places) => places,
        Err(answer) => return answer,
    };
    let form = NewNumbers {
        capabilities: vec!["InboundCalling".to_string(), "OutboundCalling".to_string()],
        ..NewNumbers::default()
    };
    new_html(&session, &account, &places, &form, &[]).into_response()
}

fn may_not_add() -> Response {
    (
        StatusCode::FORBIDDEN,
        trouble(
            "Your role may read numbers but not add them. Ask an administrator for a role that may write.",
        ),
    )
        .into_response()
}

/// Adds the numbers through the API's own operation (`:createOrUpdateNumbers`): every number
/// is checked before any is written, so on an error nothing is written and the form comes back
/// with the error next to its field.
async fn create_numbers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let caller = match writer(
        &session,
        &headers,
        Some(first(&pairs, "csrf")),
        "Your role may read numbers but not add them. Ask an administrator for a role that may write.",
    ) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let account = match existing_account(&state, &name).await {
        Ok(account) => account,
        Err(answer) => return *answer,
    };
    let places = match places(&state, &account).await {
        Ok(places) => places,
        Err(answer) => return answer,
    };
    let form = NewNumbers::from_pairs(&pairs);
    let refuse = |errors: Vec<(NewField, String)>| {
        (
            StatusCode::BAD_REQUEST,
            new_html(&session, &account, &places, &form, &errors),
        )
            .into_response()
    };
    let entered = form.entered();
    let batch = match batch_of(&form, &entered, &places) {
        Ok(batch) => batch,
        Err(errors) => return refuse(errors),
    };
    let account_name = account.name.to_string();
    match crate::operations::create_or_update_numbers(&state, &caller, &account_name, batch)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Redirect::to(&format!(
            "{}?added={}",
            list_link(Some(&account_name)),
            entered.len()
        ))
        .into_response(),
        Err(error) if error.status.is_client_error() => refuse(form_errors(&error, &entered)),
        Err(error) => (error.status, trouble(&error.body.message)).into_response(),
    }
}

/// The form as the API's batch body, or the errors the portal finds itself: no numbers, too
/// many, no service, no usage, and a number for calling users without an address.
fn batch_of(
    form: &NewNumbers,
    entered: &[String],
    places: &[Place],
) -> Result<BatchNumbers, Vec<(NewField, String)>> {
    let mut errors = Vec::new();
    if entered.is_empty() {
        errors.push((
            NewField::Numbers,
            "Enter at least one telephone number, such as +15105850001.".to_string(),
        ));
    } else if entered.len() > MAX_BATCH {
        errors.push((
            NewField::Numbers,
            format!(
                "{} numbers were entered; at most {MAX_BATCH} can be added at once. Upload a CSV file for more.",
                entered.len()
            ),
        ));
    }
    let service = Service::from_wire_name(&form.service);
    let Some(service) = service else {
        errors.push((
            NewField::Service,
            "Choose the service the numbers are for.".to_string(),
        ));
        return Err(errors);
    };
    let teams = service.is_teams_tenant_bound();
    let (civic_address_id, location_id) = match form.place.split_once(':') {
        Some(("a", id)) => (Some(id.to_string()), None),
        Some(("l", id)) => {
            let address = places.iter().find(|p| {
                p.address
                    .locations
                    .iter()
                    .flatten()
                    .any(|location| location.id == id)
            });
            (address.map(|p| p.address.id.clone()), Some(id.to_string()))
        }
        _ => (None, None),
    };
    if teams {
        if form.usage.is_empty() {
            errors.push((
                NewField::Usage,
                "Choose what the numbers are used for.".to_string(),
            ));
        } else if form.usage == "CallingUserAssignment"
            && civic_address_id.is_none()
            && location_id.is_none()
            && !form.allow_update
        {
            errors.push((NewField::Place, NEEDS_ADDRESS.to_string()));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let details = |number: &String| {
        let teams_details = teams.then(|| TeamsNumberDetails {
            enabled: true,
            assignment_status: None,
            configuration: Some(TeamsNumberConfigurationWire {
                usage: form.usage.clone(),
                choosable_capabilities: form.capabilities.clone(),
                additional_usages: None,
                civic_address_id: civic_address_id.clone(),
                location_id: location_id.clone(),
                allow_tenant_address_update: form.allow_update.then_some(true),
                displayed_country_code: None,
            }),
        });
        let plain = |s: Service| (s == service).then_some(EnabledDetails { enabled: true });
        NumberResource {
            telephone_number: number.clone(),
            account_name: None,
            service_details: NumberServiceDetails {
                teams_operator_connect: teams_details
                    .clone()
                    .filter(|_| service == Service::TeamsOperatorConnect),
                teams_phone_mobile: teams_details.filter(|_| service == Service::TeamsPhoneMobile),
                teams_direct_routing: plain(Service::TeamsDirectRouting),
                zoom_phone_cloud_peering: plain(Service::ZoomPhoneCloudPeering),
                azure_operator_call_protection: plain(Service::AzureOperatorCallProtection),
            },
            configuration: (!form.sip.is_empty()).then(|| NumberConfiguration {
                custom_sip_header: Some(form.sip.clone()),
            }),
            service_provisioning_status: None,
            service_provisioning_errors: None,
        }
    };
    Ok(BatchNumbers {
        numbers: entered.iter().map(details).collect(),
    })
}

const NEEDS_ADDRESS: &str = "A number for calling users needs a civic address or location. \
     Pick one, or let the enterprise update the address.";

/// The field a target of the API's error names (`numbers[2].serviceDetails.
/// teamsOperatorConnect.configuration.usage` is the usage).
fn new_field(target: &str) -> NewField {
    let path = match target.strip_prefix("numbers[") {
        Some(rest) => rest.split_once("].").map_or("numbers", |(_, path)| path),
        None => target,
    };
    if path == "numbers" || path.ends_with("telephoneNumber") || path == "accountName" {
        NewField::Numbers
    } else if path.ends_with("customSipHeader") {
        NewField::Sip
    } else if path.contains("choosableCapabilities") {
        NewField::Capabilities
    } else if path.contains("sage") {
        NewField::Usage
    } else if path.contains("civicAddressId") || path.contains("locationId") {
        NewField::Place
    } else if path.starts_with("serviceDetails") {
        NewField::Service
    } else {
        NewField::Form
    }
}

/// The API's error as messages next to the form's fields; an error about one number names it.
fn form_errors(error: &ApiError, entered: &[String]) -> Vec<(NewField, String)> {
    let items: Vec<(Option<&str>, &str)> = if error.body.details.is_empty() {
        vec![(error.body.target.as_deref(), error.body.message.as_str())]
    } else {
        error
            .body
            .details
            .iter()
            .map(|d| (d.target.as_deref(), d.message.as_str()))
            .collect()
    };
    let mut errors: Vec<(NewField, String)> = Vec::new();
    for (target, message) in items {
        let field = target.map_or(NewField::Form, new_field);
        let number = target
            .and_then(|t| t.strip_prefix("numbers["))
            .and_then(|rest| rest.split(']').next())
            .and_then(|index| index.parse::<usize>().ok())
            .and_then(|index| entered.get(index));
        let mut text = upper_first(message);
        if let Some(number) = number
            && field == NewField::Numbers
            && !message.contains(number.as_str())
        {
            text = format!("{number}: {message}");
        }
        if !errors.iter().any(|(f, m)| *f == field && *m == text) {
            errors.push((field, text));
        }
    }
    errors
}

fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn error_list(errors: &[(NewField, String)], field: NewField, id: &str) -> Markup {
    let messages: Vec<&str> = errors
        .iter()
        .filter(|(f, _)| *f == field)
        .map(|(_, m)| m.as_str())
        .collect();
    html! {
        @if !messages.is_empty() {
            p.error id=(id) role="alert" {
                @for (i, message) in messages.iter().enumerate() {
                    @if i > 0 { br; }
                    (message)
                }
            }
        }
    }
}

fn new_html(
    session: &Session,
    account: &AccountState,
    places: &[Place],
    form: &NewNumbers,
    errors: &[(NewField, String)],
) -> Markup {
    let name = account.name.as_str();
    let enabled: Vec<Service> = Service::ALL
        .into_iter()
        .filter(|s| account.services.is_enabled(*s))
        .collect();
    let chosen = if form.service.is_empty() && enabled.len() == 1 {
        enabled[0].wire_name()
    } else {
        form.service.as_str()
    };
    page(
        "Add numbers",
        Some(session),
        html! {
            h1 { "Add numbers to " (name) }
            (error_list(errors, NewField::Form, "form-error"))
            @if enabled.is_empty() {
                p { "This account has no service enabled, so it cannot hold numbers yet." }
            } @else {
                form.stack method="post" action={ (list_link(Some(name))) "/new" } novalidate {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="service" { "Service" }
                    select id="service" name="service" aria-describedby="service-error" {
                        @if chosen.is_empty() { option value="" selected { "Choose…" } }
                        @for service in &enabled {
                            option value=(service.wire_name()) selected[service.wire_name() == chosen] {
                                (service_name(service.wire_name()))
                            }
                        }
                    }
                    (error_list(errors, NewField::Service, "service-error"))
                    label for="numbers" { "Telephone numbers" }
                    textarea id="numbers" name="numbers" rows="6" autocomplete="off" spellcheck="false"
                        aria-describedby="numbers-hint numbers-error" { (form.numbers) }
                    p.hint id="numbers-hint" {
                        "In E.164, such as +15105850001: one per line, or separated by commas or spaces; at most "
                        (MAX_BATCH) " at once (upload a CSV file for more)."
                    }
                    (error_list(errors, NewField::Numbers, "numbers-error"))
                    label for="sip" { "Custom SIP header (optional)" }
                    input id="sip" name="sip" value=(form.sip) autocomplete="off"
                        aria-describedby="sip-hint sip-error";
                    p.hint id="sip-hint" {
                        "1 to 100 letters, digits, _ or -. Not for Teams Phone Mobile or Azure Operator Call Protection numbers."
                    }
                    (error_list(errors, NewField::Sip, "sip-error"))
                    fieldset {
                        legend { "Teams settings (Operator Connect and Teams Phone Mobile)" }
                        label for="usage" { "Usage" }
                        select id="usage" name="usage" aria-describedby="usage-error" {
                            option value="" selected[form.usage.is_empty()] { "Choose…" }
                            @for (value, text) in USAGES {
                                option value=(value) selected[*value == form.usage] { (text) }
                            }
                        }
                        (error_list(errors, NewField::Usage, "usage-error"))
                        fieldset aria-describedby="capabilities-error" {
                            legend { "Capabilities" }
                            @for (value, text) in CAPABILITIES {
                                div.check {
                                    input type="checkbox" id={ "capability-" (value) } name="capability" value=(value)
                                        checked[form.capabilities.iter().any(|c| c == value)];
                                    label for={ "capability-" (value) } { (text) }
                                }
                            }
                        }
                        (error_list(errors, NewField::Capabilities, "capabilities-error"))
                        label for="place" { "Civic address or location" }
                        select id="place" name="place" aria-describedby="place-hint place-error" {
                            option value="" selected[form.place.is_empty()] { "None" }
                            @for place in places {
                                optgroup label=(place.text()) {
                                    @let value = format!("a:{}", place.address.id);
                                    option value=(value) selected[form.place == value] {
                                        "The address: " (place.text())
                                    }
                                    @for location in place.address.locations.iter().flatten() {
                                        @let value = format!("l:{}", location.id);
                                        option value=(value) selected[form.place == value] {
                                            "Location " (location.description.as_deref().unwrap_or(&location.id))
                                            @if let Some(elin) = &location.elin { " (ELIN " (elin) ")" }
                                        }
                                    }
                                }
                            }
                        }
                        p.hint id="place-hint" {
                            "A number for calling users needs a civic address or location, unless the enterprise may update its address."
                            @if places.is_empty() {
                                " The account's Teams tenant has no civic address recorded yet."
                            }
                        }
                        (error_list(errors, NewField::Place, "place-error"))
                        div.check {
                            input type="checkbox" id="allow_update" name="allow_update" value="true"
                                checked[form.allow_update];
                            label for="allow_update" { "The enterprise may update the address" }
                        }
                    }
                    button type="submit" { "Add the numbers" }
                }
            }
            p { a href=(list_link(Some(name))) { "Numbers of " (name) } }
        },
    )
}

// ---- one number ----------------------------------------------------------------------------

/// A number of an account, from the command side, or the page that says there is none.
async fn existing_number(
    state: &AppState,
    account: &str,
    number: &str,
) -> Result<NumberState, Box<Response>> {
    let not_found = || {
        Box::new(
            (
                StatusCode::NOT_FOUND,
                trouble("This account has no such number."),
            )
                .into_response(),
        )
    };
    let number = E164::parse(number).map_err(|_| not_found())?;
    let loaded = state
        .commands
        .number(&number)
        .await
        .map_err(|error| Box::new(unreadable("number", error)))?;
    loaded
        .aggregate
        .state
        .filter(|n| n.account.as_str() == account)
        .ok_or_else(not_found)
}

async fn number(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, number)): Path<(String, String)>,
    Query(pairs): Query<Pairs>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    match existing_number(&state, &name, &number).await {
        Ok(number) => {
            let sip = SipForm {
                saved: !first(&pairs, "saved").is_empty(),
                ..SipForm::default()
            };
            number_html(&session, &number, &sip).into_response()
        }
        Err(answer) => *answer,
    }
}

/// What the SIP header form shows: a confirmation after saving, or what was sent and its error.
#[derive(Default)]
struct SipForm<'a> {
    saved: bool,
    value: Option<&'a str>,
    error: Option<String>,
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

fn number_html(session: &Session, number: &NumberState, sip: &SipForm<'_>) -> Markup {
    let tn = number.telephone_number.as_str();
    let account = number.account.as_str();
    let current = number
        .details
        .custom_sip_header
        .as_ref()
        .map(|h| h.as_str());
    let value = sip.value.or(current).unwrap_or("");
    let allowed = sip_header_allowed(&number.details);
    page(
        tn,
        Some(session),
        html! {
            h1 { "Number " (tn) }
            @if sip.saved {
                p.notice role="status" { "The custom SIP header is recorded; it is sent to the backend next." }
            }
            dl {
                dt { "Account" }
                dd { a href={ "/portal/accounts/" (urlencoding(account)) } { (account) } }
                dt { "Services" }
                dd { (services_text(number.details.enabled_services())) }
                @if let Some((service, settings)) = teams_of(&number.details) {
                    dt { "Teams service" }
                    dd { (service_name(service.wire_name())) }
                    dt { "Assignment" }
                    dd { (settings.assignment_status.map_or("not reported", |a| a.as_str())) }
                    @if let Some(configuration) = &settings.configuration {
                        dt { "Usage" }
                        dd { (usage_of(&number.details)) }
                        dt { "Capabilities" }
                        dd {
                            @let capabilities: Vec<&str> = configuration.choosable_capabilities.iter().map(|c| c.as_str()).collect();
                            (capabilities.join(", "))
                        }
                        dt { "Civic address" }
                        dd { (configuration.civic_address_id.as_ref().map_or("none", |c| c.as_str())) }
                        dt { "Location" }
                        dd { (configuration.location_id.as_ref().map_or("none", |c| c.as_str())) }
                        dt { "Enterprise may update the address" }
                        dd { (yes_no(configuration.allow_tenant_address_update)) }
                    }
                }
                dt { "Custom SIP header" }
                dd { (current.unwrap_or("none")) }
                dt { "Sync state" }
                dd { (sync_cell(&format!("number:{tn}"), &number.sync, number.deleting)) }
            }
            p.actions {
                a href={ "/portal/history/number/" (urlencoding(tn)) } { "History of " (tn) }
                a href=(list_link(Some(account))) { "Numbers of " (account) }
            }
            @if session.principal.allows(auth::Permission::Write) && !number.deleting {
                h2 { "Custom SIP header" }
                @if allowed {
                    form.stack method="post" action={ (number_link(account, tn)) "/sip-header" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="step" value="review";
                        label for="sip" { "Custom SIP header" }
                        input id="sip" name="sip" value=(value) autocomplete="off"
                            aria-describedby="sip-hint sip-error";
                        p.hint id="sip-hint" { "1 to 100 letters, digits, _ or -. Leave it empty to remove the header." }
                        @if let Some(error) = &sip.error {
                            p.error id="sip-error" role="alert" { (error) }
                        }
                        button type="submit" { "Review the change" }
                    }
                } @else {
                    p.hint { "A custom SIP header is not allowed on Teams Phone Mobile or Azure Operator Call Protection numbers." }
                }
            } @else if !session.principal.allows(auth::Permission::Write) {
                p.hint { "Your role may read numbers; changing them needs a role that may write." }
            }
        },
    )
}

/// Changes a number's custom SIP header in two steps: `review` shows the change, `upload`
/// makes it through the API's own operation.
async fn sip_header(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, tn)): Path<(String, String)>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let caller = match writer(
        &session,
        &headers,
        Some(first(&pairs, "csrf")),
        "Your role may read numbers but not change them. Ask an administrator for a role that may write.",
    ) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let number = match existing_number(&state, &name, &tn).await {
        Ok(number) => number,
        Err(answer) => return *answer,
    };
    let value = first(&pairs, "sip").trim();
    let again = |error: String| {
        let sip = SipForm {
            saved: false,
            value: Some(value),
            error: Some(error),
        };
        (
            StatusCode::BAD_REQUEST,
            number_html(&session, &number, &sip),
        )
            .into_response()
    };
    if !sip_header_allowed(&number.details) {
        return again(
            "A custom SIP header is not allowed on Teams Phone Mobile or Azure Operator Call Protection numbers."
                .to_string(),
        );
    }
    if !value.is_empty()
        && let Err(error) = domain::SipHeaderValue::parse(value)
    {
        return again(upper_first(&error.to_string()));
    }
    let current = number
        .details
        .custom_sip_header
        .as_ref()
        .map(|h| h.as_str());
    if first(&pairs, "step") == "upload" {
        return upload_sip_header(&state, &caller, &number, value, again).await;
    }
    if current.unwrap_or("") == value {
        return again(
            "This is already the number's custom SIP header: change it first.".to_string(),
        );
    }
    review_html(&session, &number, current, value).into_response()
}

async fn upload_sip_header(
    state: &AppState,
    caller: &Caller,
    number: &NumberState,
    value: &str,
    again: impl Fn(String) -> Response,
) -> Response {
    let account = number.account.as_str();
    let tn = number.telephone_number.as_str();
    let new = (!value.is_empty()).then(|| value.to_string());
    match crate::operations::set_custom_sip_header(state, caller, account, tn, new)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Redirect::to(&format!("{}?saved=1", number_link(account, tn))).into_response(),
        Err(error) if error.status.is_client_error() && error.status != StatusCode::NOT_FOUND => {
            again(upper_first(&error.body.message))
        }
        Err(error) => (error.status, trouble(&error.body.message)).into_response(),
    }
}

fn review_html(
    session: &Session,
    number: &NumberState,
    current: Option<&str>,
    value: &str,
) -> Markup {
    let tn = number.telephone_number.as_str();
    let account = number.account.as_str();
    page(
        "Review the change",
        Some(session),
        html! {
            h1 { "Review the change to " (tn) }
            dl {
                dt { "Account" } dd { (account) }
                dt { "Custom SIP header now" } dd { (current.unwrap_or("none")) }
                dt { "After the change" } dd { @if value.is_empty() { "none (removed)" } @else { (value) } }
            }
            p { "Nothing is changed until you upload it; the backend is told next." }
            form.stack method="post" action={ (number_link(account, tn)) "/sip-header" } {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="step" value="upload";
                input type="hidden" name="sip" value=(value);
                button type="submit" { "Upload the change" }
            }
            p { a href=(number_link(account, tn)) { "Back to " (tn) ", changing nothing" } }
        },
    )
}

// ---- deleting numbers ----------------------------------------------------------------------

/// The caller of a form that removes something: the session's form token and a role that may
/// delete.
fn remover(session: &Session, headers: &HeaderMap, csrf: &str) -> Result<Caller, Box<Response>> {
    caller_allowed(
        session,
        headers,
        Some(csrf),
        auth::Permission::Delete,
        "Your role may not delete numbers. Ask an administrator for a role that may delete.",
    )
}

/// Deletes the numbers ticked in the list, in two steps: `confirm` shows them, `delete`
/// deletes them through the API's own operation (all of the account's, or none).
async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let caller = match remover(&session, &headers, first(&pairs, "csrf")) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let account = match existing_account(&state, &name).await {
        Ok(account) => account,
        Err(answer) => return *answer,
    };
    let name = account.name.as_str();
    let numbers = every(&pairs, "number");
    if numbers.is_empty() || numbers.len() > MAX_BATCH {
        let message = if numbers.is_empty() {
            "No number was selected: tick the numbers to delete in the list.".to_string()
        } else {
            format!("At most {MAX_BATCH} numbers can be deleted at once.")
        };
        return (
            StatusCode::BAD_REQUEST,
            delete_html(&session, name, &numbers, Some(&message)),
        )
            .into_response();
    }
    if first(&pairs, "step") != "delete" {
        return delete_html(&session, name, &numbers, None).into_response();
    }
    let batch = BatchNumbersDelete {
        numbers: numbers
            .iter()
            .map(|n| NumberIdentifier {
                telephone_number: n.to_string(),
            })
            .collect(),
    };
    match crate::operations::delete_numbers(&state, &caller, name, batch)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Redirect::to(&format!(
            "{}?deleted={}",
            list_link(Some(name)),
            numbers.len()
        ))
        .into_response(),
        Err(error) if error.status.is_client_error() => {
            let mut message = upper_first(&error.body.message);
            for detail in &error.body.details {
                message.push_str(&format!(" {}.", upper_first(&detail.message)));
            }
            (
                error.status,
                delete_html(&session, name, &numbers, Some(&message)),
            )
                .into_response()
        }
        Err(error) => (error.status, trouble(&error.body.message)).into_response(),
    }
}

fn delete_html(session: &Session, account: &str, numbers: &[&str], error: Option<&str>) -> Markup {
    let count = numbers.len();
    page(
        "Delete numbers",
        Some(session),
        html! {
            h1 { "Delete " (count_text(&count.to_string()).to_lowercase()) " of " (account) "?" }
            @if let Some(error) = error {
                p.error id="delete-error" role="alert" { (error) }
            }
            @if count > 0 {
                ul.numbers {
                    @for number in numbers { li { (number) } }
                }
                p { "Numbers synced with the backend are released there first; they leave the list once released. This cannot be undone." }
                @if error.is_none() {
                    form method="post" action={ (list_link(Some(account))) "/delete" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="step" value="delete";
                        @for number in numbers {
                            input type="hidden" name="number" value=(number);
                        }
                        button.danger type="submit" { "Delete these numbers" }
                    }
                }
            }
            p { a href=(list_link(Some(account))) { "Back to the numbers, deleting nothing" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_from_the_form_quotes_its_values_and_parses() {
        let filter = NumberFilter {
            number: "1 510".to_string(),
            account: "o'brien".to_string(),
            service: "teamsOperatorConnect".to_string(),
            sip: "x' or '1'='1".to_string(),
            ..NumberFilter::default()
        };
        let text = filter.expression(true).unwrap();
        assert_eq!(
            text,
            "startswith(telephoneNumber, '+1510') and accountName eq 'o''brien' and \
             service eq 'teamsOperatorConnect' and customSipHeader eq 'x'' or ''1''=''1'"
        );
        assert!(filter.parsed(true).unwrap().is_some());
        assert_eq!(
            filter.query_string(false),
            "number=1%20510&service=teamsOperatorConnect&sip=x%27%20or%20%271%27%3D%271"
        );
        assert!(NumberFilter::default().parsed(false).unwrap().is_none());
    }

    #[test]
    fn an_error_target_names_the_field() {
        assert_eq!(new_field("numbers[3].telephoneNumber"), NewField::Numbers);
        assert_eq!(
            new_field("numbers[0].serviceDetails.teamsOperatorConnect.configuration.usage"),
            NewField::Usage
        );
        assert_eq!(
            new_field(
                "numbers[0].serviceDetails.teamsOperatorConnect.configuration.choosableCapabilities[1]"
            ),
            NewField::Capabilities
        );
        assert_eq!(
            new_field("numbers[1].configuration.customSipHeader"),
            NewField::Sip
        );
        assert_eq!(
            new_field("numbers[1].serviceDetails.zoomPhoneCloudPeering"),
            NewField::Service
        );
        assert_eq!(new_field("numbers"), NewField::Numbers);
    }
}
