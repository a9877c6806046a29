//! The home page: what needs attention, and what happened lately; and the search box (on
//! every page's header and on home) that finds a number, an account or a Teams tenant by what
//! staff type.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::history::history_path;
use super::pages::*;
use super::*;
use crate::AppState;
use domain::Service;
use domain::number::NumberState;
use projections::failures::FailureQuery;
use projections::filter::Resource;
use projections::query::{
    AccountRow, Activity, ConsentRow, ConsentTotals, ListQuery, Listed, NumberGrouping, Totals,
    consent_totals, number_totals, recent_activity,
};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal", get(home))
        .route("/portal/search", get(search))
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    match Home::read(&state).await {
        Ok(home) => home_html(&session, &home).into_response(),
        Err(error) => unreadable("figures", error),
    }
}

/// The home page's counts of every number by sync state and by service. Counting a million
/// numbers takes PostgreSQL a quarter of a second, so a count is kept while nothing changes:
/// nmp's live feed (`AppState::feed`) says when an event was committed, and a count made after
/// ten quiet seconds (time enough for the projector to have written the event) stays good until
/// the next event. While events come, a count serves for two seconds, then the next visit
/// counts again; without a live feed every visit counts. One count runs at a time; visits that
/// arrive meanwhile wait for it and share it.
#[derive(Clone, Default)]
pub struct NumberFigures(std::sync::Arc<tokio::sync::Mutex<Figures>>);

#[derive(Default)]
struct Figures {
    changes: Option<tokio::sync::broadcast::Receiver<crate::FeedItem>>,
    last_change: Option<std::time::Instant>,
    counted: Option<(std::time::Instant, std::sync::Arc<Counted>)>,
}

struct Counted {
    by_sync_state: Totals,
    by_service: Totals,
}

/// How long after the last event a count is made to stand until the next one.
const QUIET: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a count serves while events come.
const RECOUNT: std::time::Duration = std::time::Duration::from_secs(2);

impl NumberFigures {
    async fn read(
        &self,
        state: &AppState,
    ) -> Result<std::sync::Arc<Counted>, projections::query::QueryError> {
        use tokio::sync::broadcast::error::TryRecvError;
        let mut figures = self.0.lock().await;
        let now = std::time::Instant::now();
        if figures.changes.is_none()
            && let Some(feed) = &state.feed
        {
            // What happened before this subscription is unknown: count as if it just changed.
            figures.changes = Some(feed.subscribe());
            figures.last_change = Some(now);
        }
        let figures = &mut *figures;
        let mut ended = false;
        if let Some(changes) = figures.changes.as_mut() {
            loop {
                match changes.try_recv() {
                    Ok(crate::FeedItem::Event(_)) | Err(TryRecvError::Lagged(_)) => {
                        figures.last_change = Some(now);
                    }
                    Ok(crate::FeedItem::ShuttingDown) | Err(TryRecvError::Closed) => {
                        ended = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
        if ended {
            figures.changes = None;
            figures.counted = None;
        }
        if figures.changes.is_some()
            && let Some((at, counted)) = &figures.counted
        {
            let settled = figures
                .last_change
                .is_some_and(|change| *at >= change + QUIET);
            if settled || now.duration_since(*at) < RECOUNT {
                return Ok(counted.clone());
            }
        }
        let pool = state.commands.store().pool();
        let counted = std::sync::Arc::new(Counted {
            by_sync_state: number_totals(pool, NumberGrouping::SyncState, None).await?,
            by_service: number_totals(pool, NumberGrouping::Service, None).await?,
        });
        figures.counted = Some((now, counted.clone()));
        Ok(counted)
    }
}

/// What the home page shows: what needs attention, and what happened lately.
struct Home {
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
        let numbers = state.number_figures.read(state).await?;
        Ok(Home {
            consents: consent_totals(pool).await?,
            failures: failed.total.unwrap_or(0),
            by_sync_state: numbers.by_sync_state.clone(),
            by_service: numbers.by_service.clone(),
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

fn home_html(session: &Session, home: &Home) -> Markup {
    page(
        "Home",
        Some(session),
        html! {
            h1 { "What needs attention" }
            (search_form("home-search", "Find a number, account or tenant", ""))
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
                                td {
                                    a href=(history_path(&item.aggregate_type, &item.aggregate_id)) {
                                        (item.aggregate_type) " " (item.aggregate_id)
                                    }
                                }
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

// ---- search --------------------------------------------------------------------------------

/// Hits shown per kind on the search page.
const SEARCH_ROWS: u64 = 20;
/// The longest search read (an E.164 number, an account name or a GUID are all shorter).
const SEARCH_LENGTH: usize = 100;

/// The search box: what staff type, sent to `/portal/search`. `id` tells apart the header's
/// box and the home page's.
pub(super) fn search_form(id: &str, label: &str, value: &str) -> Markup {
    html! {
        form.search role="search" method="get" action="/portal/search" aria-label=(label) {
            label for=(id) { (label) }
            input id=(id) type="search" name="q" value=(value) maxlength=(SEARCH_LENGTH)
                placeholder="+E.164, account name or tenant id" autocomplete="off";
            button type="submit" { "Search" }
        }
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

/// What was typed, read as each kind of thing nmp holds.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    /// A telephone number or its beginning: `+` and digits (typed with or without the `+`,
    /// `00` for `+`, spaces, dashes, dots and brackets dropped).
    number_prefix: Option<String>,
    /// Text an account's name may hold.
    name: Option<String>,
    /// A Teams tenant id (a GUID), as typed and in lower case.
    tenant: Option<(String, String)>,
}

impl Reading {
    fn of(typed: &str) -> Reading {
        let typed = typed.trim();
        let compact: String = typed
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = match compact.strip_prefix('+') {
            Some(rest) => Some(rest.to_string()),
            None => compact
                .strip_prefix("00")
                .map(str::to_string)
                .or(Some(compact.clone())),
        };
        let number_prefix = digits
            .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
            .map(|d| format!("+{d}"));
        let name = (!typed.is_empty()
            && typed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .then(|| typed.to_string());
        let tenant = domain::TenantId::parse(typed)
            .ok()
            .map(|t| (t.as_str().to_string(), t.as_str().to_ascii_lowercase()));
        Reading {
            number_prefix,
            name,
            tenant,
        }
    }
}

/// What a search found.
struct Found {
    typed: String,
    /// The number typed, when a whole one was (the prefix searched for).
    exact_number: Option<String>,
    numbers: Listed<NumberState>,
    accounts: Listed<AccountRow>,
    /// Accounts whose Teams tenant is the tenant typed.
    tenant_accounts: Vec<AccountRow>,
    consents: Vec<ConsentRow>,
}

impl Found {
    fn is_empty(&self) -> bool {
        self.numbers.items.is_empty()
            && self.accounts.items.is_empty()
            && self.tenant_accounts.is_empty()
            && self.consents.is_empty()
    }

    /// Where a single hit that is exactly what was typed lives, if that is all there is.
    fn only_exact(&self) -> Option<String> {
        let hits = self.numbers.items.len()
            + self.accounts.items.len()
            + self.tenant_accounts.len()
            + self.consents.len();
        if hits != 1 {
            return None;
        }
        let typed = self.typed.as_str();
        if let Some(account) = self.accounts.items.first()
            && account.state.name.as_str() == typed
        {
            return Some(account_path(account.state.name.as_str()));
        }
        if let Some(number) = self.numbers.items.first()
            && self.exact_number.as_deref() == Some(number.telephone_number.as_str())
        {
            return Some(number_page(
                number.account.as_str(),
                number.telephone_number.as_str(),
            ));
        }
        if let Some(account) = self.tenant_accounts.first() {
            return Some(account_path(account.state.name.as_str()));
        }
        if let Some(consent) = self.consents.first() {
            return Some(format!(
                "/portal/consents/{}",
                urlencoding(consent.state.tenant_id.as_str())
            ));
        }
        None
    }
}

fn account_path(name: &str) -> String {
    format!("/portal/accounts/{}", urlencoding(name))
}

/// A number's own page, under its account.
fn number_page(account: &str, number: &str) -> String {
    format!(
        "/portal/accounts/{}/numbers/{}",
        urlencoding(account),
        urlencoding(number)
    )
}

/// Reads the tenant's consents and accounts through the lists' own filters.
async fn by_tenant(
    pool: &sqlx::PgPool,
    tenant: &(String, String),
) -> Result<(Vec<AccountRow>, Vec<ConsentRow>), projections::query::QueryError> {
    let (typed, lower) = tenant;
    let query = |field: &str, resource: Resource| ListQuery {
        // Both are GUIDs (checked): nothing in them needs quoting.
        filter: projections::filter::parse(
            &format!("{field} eq '{typed}' or {field} eq '{lower}'"),
            resource,
        )
        .ok(),
        after: None,
        skip: 0,
        take: SEARCH_ROWS,
        count: false,
    };
    let accounts =
        projections::query::accounts(pool, &query("teamsTenantId", Resource::Accounts)).await?;
    let consents =
        projections::query::consents(pool, &query("tenantId", Resource::RequestsForInformation))
            .await?;
    Ok((accounts.items, consents.items))
}

fn none_found<T>() -> Listed<T> {
    Listed {
        items: Vec::new(),
        more: false,
        total: None,
        last_key: None,
    }
}

async fn find(pool: &sqlx::PgPool, typed: &str) -> Result<Found, projections::query::QueryError> {
    let reading = Reading::of(typed);

    let numbers = match &reading.number_prefix {
        Some(prefix) => projections::query::numbers_with_prefix(pool, prefix, SEARCH_ROWS).await?,
        None => none_found(),
    };
    let accounts = match &reading.name {
        Some(name) => projections::query::accounts_matching(pool, name, SEARCH_ROWS).await?,
        None => none_found(),
    };
    let (mut tenant_accounts, consents) = match &reading.tenant {
        Some(tenant) => by_tenant(pool, tenant).await?,
        None => (Vec::new(), Vec::new()),
    };
    // An account listed by its name is not listed again for its tenant.
    tenant_accounts.retain(|t| !accounts.items.iter().any(|a| a.state.name == t.state.name));
    Ok(Found {
        typed: typed.to_string(),
        exact_number: reading
            .number_prefix
            .filter(|prefix| domain::E164::parse(prefix.as_str()).is_ok()),
        numbers,
        accounts,
        tenant_accounts,
        consents,
    })
}

/// Finds numbers (by their beginning), accounts (by part of their name) and a tenant's consent
/// and accounts (by its id) from what was typed. A single hit that is exactly what was typed —
/// a whole number, an account's name, a tenant's consent or account — opens its page; otherwise a page lists what
/// was found, or says that nothing was.
async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    if !session.principal.allows(auth::Permission::Read) {
        return (
            StatusCode::FORBIDDEN,
            trouble("Your role may not read numbers, accounts or consents."),
        )
            .into_response();
    }
    let typed: String = query
        .q
        .unwrap_or_default()
        .trim()
        .chars()
        .take(SEARCH_LENGTH)
        .collect();
    if typed.is_empty() {
        return search_html(&session, &typed, None).into_response();
    }
    match find(state.commands.store().pool(), &typed).await {
        Ok(found) => match found.only_exact() {
            Some(path) => Redirect::to(&path).into_response(),
            None => search_html(&session, &typed, Some(&found)).into_response(),
        },
        Err(error) => unreadable("search results", error),
    }
}

fn search_html(session: &Session, typed: &str, found: Option<&Found>) -> Markup {
    let title = if typed.is_empty() {
        "Search".to_string()
    } else {
        format!("Search for {typed}")
    };
    page(
        &title,
        Some(session),
        html! {
            h1 { "Search" }
            (search_form("page-search", "Find a number, account or tenant", typed))
            @match found {
                None => p.hint { "Type a telephone number (+E.164 or its first digits), part of an account's name, or a Teams tenant id." },
                Some(found) if found.is_empty() => {
                    p.notice role="status" {
                        "Nothing matches “" (typed) "”: no number starts with it, no account's name holds it, and no consent or account has it as its tenant id."
                    }
                }
                Some(found) => {
                    p role="status" { "Found for “" (typed) "”:" }
                    @if !found.numbers.items.is_empty() { (numbers_found(&found.numbers)) }
                    @if !found.accounts.items.is_empty() {
                        (accounts_found("Accounts whose name holds it", &found.accounts.items, found.accounts.more))
                    }
                    @if !found.tenant_accounts.is_empty() {
                        (accounts_found("Accounts of this Teams tenant", &found.tenant_accounts, false))
                    }
                    @if !found.consents.is_empty() { (consents_found(&found.consents)) }
                }
            }
        },
    )
}

fn more_note(more: bool) -> Markup {
    html! {
        @if more {
            p.hint { "Only the first " (SEARCH_ROWS) " are shown: type more to narrow the search." }
        }
    }
}

fn numbers_found(numbers: &Listed<NumberState>) -> Markup {
    html! {
        table {
            caption { "Numbers that start with it" }
            thead {
                tr {
                    th scope="col" { "Telephone number" }
                    th scope="col" { "Account" }
                    th scope="col" { "Services" }
                    th scope="col" { "Sync state" }
                    th scope="col" { "History" }
                }
            }
            tbody {
                @for number in &numbers.items {
                    @let e164 = number.telephone_number.as_str();
                    tr {
                        td { a href=(number_page(number.account.as_str(), e164)) { (e164) } }
                        td { a href=(account_path(number.account.as_str())) { (number.account.as_str()) } }
                        td { (services_text(number.details.enabled_services())) }
                        td { (sync_cell(&format!("number:{e164}"), &number.sync, number.deleting)) }
                        td { a href=(history_path("number", e164)) aria-label={ "History of " (e164) } { "History" } }
                    }
                }
            }
        }
        (more_note(numbers.more))
    }
}

fn accounts_found(caption: &str, accounts: &[AccountRow], more: bool) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead {
                tr {
                    th scope="col" { "Account" }
                    th scope="col" { "Teams tenant" }
                    th scope="col" { "Services" }
                    th scope="col" { "Sync state" }
                    th scope="col" { "History" }
                }
            }
            tbody {
                @for row in accounts {
                    @let account = &row.state;
                    @let name = account.name.as_str();
                    tr {
                        td { a href=(account_path(name)) { (name) } }
                        td { (account.services.teams_tenant_id.as_ref().map_or("none", |t| t.as_str())) }
                        td { (services_text(Service::ALL.into_iter().filter(|s| account.services.is_enabled(*s)).collect())) }
                        td { (sync_cell(&format!("account:{name}"), &account.sync, account.deleting)) }
                        td { a href=(history_path("account", name)) aria-label={ "History of account " (name) } { "History" } }
                    }
                }
            }
        }
        (more_note(more))
    }
}

fn consents_found(consents: &[ConsentRow]) -> Markup {
    html! {
        table {
            caption { "The tenant's consent" }
            thead {
                tr {
                    th scope="col" { "Teams tenant" }
                    th scope="col" { "Consent" }
                    th scope="col" { "Customer relationship" }
                    th scope="col" { "Account" }
                    th scope="col" { "Sync state" }
                    th scope="col" { "History" }
                }
            }
            tbody {
                @for row in consents {
                    @let tenant = row.state.tenant_id.as_str();
                    tr {
                        td { a href={ "/portal/consents/" (urlencoding(tenant)) } { (tenant) } }
                        td { (row.state.report.status.as_str()) }
                        td {
                            @match &row.state.relationship {
                                Some(r) => (r.status.as_str()),
                                None => "not answered yet",
                            }
                        }
                        td {
                            @match row.account_name.as_deref() {
                                Some(name) => a href=(account_path(name)) { (name) },
                                None => "none",
                            }
                        }
                        td { (sync_cell(&format!("consent:{tenant}"), &row.state.sync, false)) }
                        td { a href=(history_path("consent", tenant)) aria-label={ "History of consent " (tenant) } { "History" } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_typed_is_read_as_each_kind() {
        let number = Reading::of(" +1 (510) 585-0001 ");
        assert_eq!(number.number_prefix.as_deref(), Some("+15105850001"));
        assert_eq!(number.name, None);
        assert_eq!(
            Reading::of("0044 20").number_prefix.as_deref(),
            Some("+4420")
        );
        let digits = Reading::of("1510");
        assert_eq!(digits.number_prefix.as_deref(), Some("+1510"));
        assert_eq!(digits.name.as_deref(), Some("1510"));
        let name = Reading::of("contoso");
        assert_eq!(name.number_prefix, None);
        assert_eq!(name.name.as_deref(), Some("contoso"));
        assert_eq!(name.tenant, None);
        let tenant = Reading::of("A7F4BD5C-CC01-40F4-8BAA-2B6BDB272B8A");
        assert_eq!(
            tenant.tenant.map(|t| t.1).as_deref(),
            Some("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a")
        );
        assert_eq!(Reading::of("+").number_prefix, None);
        assert_eq!(Reading::of("a b").name, None);
    }
}
