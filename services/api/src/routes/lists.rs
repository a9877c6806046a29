//! The list operations of the Provisioning API, read from the read tables: `GET /accounts`,
//! `/accounts/{accountName}/numbers`, `/numbers`, `/teamsRequestsForInformation`, and the
//! civic addresses of an account's Teams tenant (`/accounts/{accountName}/teamsCivicAddresses`
//! and one of them by id).
//!
//! Every list takes `top` (items in all, over all pages), `skip`, `maxpagesize` (items per
//! page, default 200, at most 500), `filter` (see `projections::filter`) and `countRecords`
//! (the total matching the filter in `x-ms-record-count`). The body is
//! `{"value": [...], "nextLink": "..."}`; `nextLink` is absent on the last page and otherwise
//! an absolute URL carrying the continuation: `skipToken`, an opaque token for the last key of
//! the page (the next page starts after it, however deep: no rows are counted off), top
//! reduced, the same filter. `skip` still works, and applies after a `skipToken`.
//! Items are in key order and are the resources the single GETs answer; deleted ones are left
//! out. Lists follow the read tables, so a change shows in them once projected.

use axum::Router;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::AccountName;
use projections::filter::{self, Resource};
use projections::query::{self, ListQuery, Listed, QueryError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::context::Caller;
use crate::error::ApiError;
use crate::wire::account::AccountResource;
use crate::wire::consent::RequestForInformationResource;
use crate::wire::number::NumberResource;
use crate::wire::parse_at;

/// Items per page unless `maxpagesize` says otherwise.
pub const DEFAULT_PAGE_SIZE: u64 = 200;
/// The largest `maxpagesize`.
pub const MAX_PAGE_SIZE: u64 = 500;
/// `top` and `skip` are int32 in the API.
const MAX_INT32: u64 = i32::MAX as u64;
/// Header carrying the total when `countRecords=true`.
pub const RECORD_COUNT_HEADER: &str = "x-ms-record-count";
/// The longest key a `skipToken` may carry, in bytes (keys are at most 100 characters).
const MAX_TOKEN_KEY: usize = 512;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts", get(list_accounts))
        .route("/accounts/{account}/numbers", get(list_account_numbers))
        .route(
            "/accounts/{account}/teamsCivicAddresses",
            get(list_civic_addresses),
        )
        .route(
            "/accounts/{account}/teamsCivicAddresses/{civic_address}",
            get(get_civic_address),
        )
        .route("/numbers", get(list_numbers))
        .route(
            "/teamsRequestsForInformation",
            get(list_requests_for_information),
        )
}

// ---- wire types ----------------------------------------------------------------------------

/// A page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub value: Vec<T>,
    /// The next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// A civic address of a Teams tenant, as the backend reports it (read-only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TeamsCivicAddressResource {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub house_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub house_number_suffix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_directional: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_suffix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_directional: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_or_province: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub county_or_district: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city_or_town: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city_or_town_alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_or_zip_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_location_id: Option<String>,
    /// `validated` or `notValidated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locations: Option<Vec<LocationWire>>,
}

/// A location of a civic address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct LocationWire {
    pub id: String,
    pub civic_address_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elin: Option<String>,
}

impl TeamsCivicAddressResource {
    /// The stored address; its key columns name it, whatever the document says.
    fn from_row(row: query::CivicAddressRow) -> Result<Self, ApiError> {
        let mut resource: TeamsCivicAddressResource =
            serde_json::from_value(row.address).map_err(|error| {
                ApiError::internal(&QueryError::Corrupt {
                    what: "civic address",
                    reason: error.to_string(),
                })
            })?;
        resource.id = row.civic_address_id;
        if row.tenant_id.is_some() {
            resource.tenant_id = row.tenant_id;
        }
        Ok(resource)
    }
}

// ---- paging --------------------------------------------------------------------------------

/// What a list request asks for besides its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub api_version: Option<String>,
    pub top: Option<u64>,
    pub skip: u64,
    /// The key the page starts after, from a `skipToken`.
    pub after: Option<String>,
    pub max_page_size: Option<u64>,
    pub filter: Option<String>,
    pub count: bool,
}

impl Paging {
    /// Reads the list parameters of a query string; anything else in it is left alone.
    pub fn parse(uri: &Uri) -> Result<Paging, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|e| {
            ApiError::bad_request("InvalidQueryParameter", format!("the query string: {e}"))
        })?;
        let mut paging = Paging {
            api_version: None,
            top: None,
            skip: 0,
            after: None,
            max_page_size: None,
            filter: None,
            count: false,
        };
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &pairs {
            let name = name.as_str();
            let known = [
                "api-version",
                "top",
                "skip",
                "skipToken",
                "maxpagesize",
                "filter",
                "countRecords",
            ];
            let Some(known) = known.iter().find(|k| **k == name) else {
                continue;
            };
            if seen.contains(known) {
                return Err(ApiError::bad_request(
                    "InvalidQueryParameter",
                    format!("{name} is given more than once"),
                )
                .with_target(name));
            }
            seen.push(known);
            match name {
                "api-version" => paging.api_version = Some(value.clone()),
                "top" => paging.top = Some(integer(name, value, 0, MAX_INT32)?),
                "skip" => paging.skip = integer(name, value, 0, MAX_INT32)?,
                "skipToken" => paging.after = Some(token_key(value)?),
                // A page may always hold fewer items than asked: a larger size is served
                // as the largest nmp serves.
                "maxpagesize" => {
                    paging.max_page_size =
                        Some(integer(name, value, 1, MAX_INT32)?.min(MAX_PAGE_SIZE))
                }
                "filter" => paging.filter = Some(value.clone()),
                _ => {
                    paging.count = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(ApiError::bad_request(
                                "InvalidQueryParameter",
                                format!("countRecords must be true or false, not '{other}'"),
                            )
                            .with_target("countRecords"));
                        }
                    }
                }
            }
        }
        Ok(paging)
    }

    /// The most items this page holds.
    pub fn page_size(&self) -> u64 {
        let size = self.max_page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        self.top.map_or(size, |top| top.min(size))
    }

    /// The query for the read tables, with the filter parsed for `resource`.
    fn query(&self, resource: Resource) -> Result<ListQuery, ApiError> {
        let filter = self
            .filter
            .as_deref()
            .map(|text| parse_filter(text, resource))
            .transpose()?;
        Ok(ListQuery {
            filter,
            after: self.after.clone(),
            skip: self.skip,
            take: self.page_size(),
            count: self.count,
        })
    }

    /// The query string of the page after one of `returned` items whose last key was
    /// `last_key`, or None when this page was the last (no rows follow, or `top` is used up).
    pub fn next(&self, returned: u64, more: bool, last_key: Option<&str>) -> Option<String> {
        let remaining = self.top.map(|top| top.saturating_sub(returned));
        if !more || remaining == Some(0) || returned == 0 {
            return None;
        }
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(version) = &self.api_version {
            pairs.push(("api-version", version.clone()));
        }
        if let Some(filter) = &self.filter {
            pairs.push(("filter", filter.clone()));
        }
        if let Some(remaining) = remaining {
            pairs.push(("top", remaining.to_string()));
        }
        match last_key {
            // The next page starts after this one's last key; skip is used up.
            Some(key) => pairs.push(("skipToken", token(key))),
            None => pairs.push(("skip", (self.skip + returned).to_string())),
        }
        if let Some(size) = self.max_page_size {
            pairs.push(("maxpagesize", size.to_string()));
        }
        if self.count {
            pairs.push(("countRecords", "true".to_string()));
        }
        Some(
            pairs
                .iter()
                .map(|(name, value)| format!("{name}={}", encode(value)))
                .collect::<Vec<_>>()
                .join("&"),
        )
    }
}

/// The `skipToken` for a page ending at `key`: opaque to clients, which follow nextLink as
/// given. Today `k` and the key's UTF-8 bytes in hex.
fn token(key: &str) -> String {
    let mut token = String::with_capacity(1 + 2 * key.len());
    token.push('k');
    for byte in key.bytes() {
        token.push_str(&format!("{byte:02x}"));
    }
    token
}

/// The key a `skipToken` carries; anything but a token [`token`] made is refused.
fn token_key(value: &str) -> Result<String, ApiError> {
    let refuse = || {
        ApiError::bad_request(
            "InvalidQueryParameter",
            "skipToken is not a token from a nextLink of this API; follow nextLink as given",
        )
        .with_target("skipToken")
    };
    let hex = value.strip_prefix('k').ok_or_else(refuse)?.as_bytes();
    if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 2 * MAX_TOKEN_KEY {
        return Err(refuse());
    }
    let digit = |c: u8| (c as char).to_digit(16).ok_or_else(refuse);
    let bytes = hex
        .chunks_exact(2)
        .map(|pair| Ok((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect::<Result<Vec<u8>, ApiError>>()?;
    let key = String::from_utf8(bytes).map_err(|_| refuse())?;
    // PostgreSQL's text holds no NUL, and no key holds a control character.
    if key.chars().any(char::is_control) {
        return Err(refuse());
    }
    Ok(key)
}

fn integer(name: &str, value: &str, min: u64, max: u64) -> Result<u64, ApiError> {
    let refuse = || {
        ApiError::bad_request(
            "InvalidQueryParameter",
            format!("{name} must be a whole number from {min} to {max}, not '{value}'"),
        )
        .with_target(name)
    };
    let parsed: i128 = value.trim().parse().map_err(|_| refuse())?;
    if parsed < i128::from(min) || parsed > i128::from(max) {
        return Err(refuse());
    }
    Ok(parsed as u64)
}

/// Parses a `filter` for `resource`, refusing it with `InvalidFilter`.
pub fn parse_filter(text: &str, resource: Resource) -> Result<filter::Filter, ApiError> {
    filter::parse(text, resource).map_err(|error| {
        ApiError::bad_request("InvalidFilter", format!("invalid filter: {error}"))
            .with_target("filter")
    })
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `scheme://host` that links in answers start with: the configured public URL
/// (`NMP_PUBLIC_URL`) when there is one; otherwise the request's, as the client reached nmp —
/// `X-Forwarded-Proto` (http or https) when a proxy set it, the `Host` header (or the URI's
/// authority). Without a public URL the links are as trustworthy as those headers: nmp must
/// then sit behind a proxy that sets them, or be reached directly.
pub(crate) fn origin(public_url: Option<&str>, uri: &Uri, headers: &HeaderMap) -> String {
    if let Some(public) = public_url {
        return public.trim_end_matches('/').to_string();
    }
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| v == "http" || v == "https");
    let scheme = forwarded
        .or_else(|| uri.scheme_str().map(str::to_string))
        .unwrap_or_else(|| "http".to_string());
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c))
        })
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_string());
    format!("{scheme}://{host}")
}

/// The answer to a list request: the page, its nextLink, and the total when asked.
pub(crate) fn answer<T: Serialize>(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    paging: &Paging,
    listed: Listed<T>,
) -> Response {
    let returned = listed.items.len() as u64;
    let next_link = paging
        .next(returned, listed.more, listed.last_key.as_deref())
        .map(|query| {
            let origin = origin(state.public_url.as_deref(), uri, headers);
            format!("{origin}{}?{query}", uri.path())
        });
    let mut response = (
        StatusCode::OK,
        axum::Json(Page {
            value: listed.items,
            next_link,
        }),
    )
        .into_response();
    if let Some(total) = listed.total
        && let Ok(value) = HeaderValue::from_str(&total.to_string())
    {
        response.headers_mut().insert(RECORD_COUNT_HEADER, value);
    }
    response
}

/// A failure to read the read tables.
pub fn query_error(error: QueryError) -> ApiError {
    match &error {
        QueryError::Database(
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
        ) => ApiError::unavailable(&error),
        QueryError::Database(database) if crate::error::is_statement_timeout(database) => {
            crate::error::query_too_long()
        }
        _ => ApiError::internal(&error),
    }
}

pub(crate) fn map<T, U>(listed: Listed<T>, convert: impl Fn(T) -> U) -> Listed<U> {
    Listed {
        items: listed.items.into_iter().map(convert).collect(),
        more: listed.more,
        total: listed.total,
        last_key: listed.last_key,
    }
}

/// The account named in a path, which must exist (on the write side, so a list right after
/// the account's creation finds it). Answers its Teams tenant, if any.
async fn existing_account(state: &AppState, account: &str) -> Result<Option<String>, ApiError> {
    let name = parse_at("accountName", AccountName::parse(account))?;
    let loaded = state.commands.account(&name).await?;
    let account = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| ApiError::not_found(&format!("account '{name}'")))?;
    Ok(account
        .services
        .teams_tenant_id
        .as_ref()
        .map(ToString::to_string))
}

// ---- handlers ------------------------------------------------------------------------------

/// List accounts, in name order.
#[utoipa::path(
    get, path = "/accounts", tag = "Account",
    params(("api-version" = String, Query), ("top" = Option<i32>, Query), ("skip" = Option<i32>, Query),
        ("skipToken" = Option<String>, Query, description = "opaque: the continuation a nextLink carries"),
        ("maxpagesize" = Option<i32>, Query, description = "1 to 500, default 200"),
        ("filter" = Option<String>, Query, description = "fields: name, teamsTenantId, service, serviceProvisioningStatus, hasNumbers"),
        ("countRecords" = Option<bool>, Query)),
    responses((status = 200, body = Page<AccountResource>,
            headers(("x-ms-record-count" = i64, description = "with countRecords=true"))),
        (status = 400, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn list_accounts(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let paging = Paging::parse(&uri)?;
    let listed = query::accounts(
        state.commands.store().pool(),
        &paging.query(Resource::Accounts)?,
    )
    .await
    .map_err(query_error)?;
    let listed = map(listed, |row| AccountResource::from_row(&row));
    Ok(answer(&state, &uri, &headers, &paging, listed))
}

/// List the numbers of an account, in telephone number order.
#[utoipa::path(
    get, path = "/accounts/{accountName}/numbers", tag = "Number",
    params(("accountName" = String, Path), ("api-version" = String, Query), ("top" = Option<i32>, Query),
        ("skip" = Option<i32>, Query),
        ("skipToken" = Option<String>, Query, description = "opaque: the continuation a nextLink carries"), ("maxpagesize" = Option<i32>, Query, description = "1 to 500, default 200"),
        ("filter" = Option<String>, Query, description = "fields: telephoneNumber, accountName, service, usage, assignmentStatus, serviceProvisioningStatus, customSipHeader"),
        ("countRecords" = Option<bool>, Query)),
    responses((status = 200, body = Page<NumberResource>,
            headers(("x-ms-record-count" = i64, description = "with countRecords=true"))),
        (status = 400, body = crate::error::ErrorResponse), (status = 404, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn list_account_numbers(
    State(state): State<AppState>,
    Path(account): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let paging = Paging::parse(&uri)?;
    let list = paging.query(Resource::Numbers)?;
    existing_account(&state, &account).await?;
    let listed = query::numbers(state.commands.store().pool(), Some(&account), &list)
        .await
        .map_err(query_error)?;
    let listed = map(listed, |s| NumberResource::from_state(&s));
    Ok(answer(&state, &uri, &headers, &paging, listed))
}

/// List the numbers of every account, in telephone number order.
#[utoipa::path(
    get, path = "/numbers", tag = "Number",
    params(("api-version" = String, Query), ("top" = Option<i32>, Query), ("skip" = Option<i32>, Query),
        ("skipToken" = Option<String>, Query, description = "opaque: the continuation a nextLink carries"),
        ("maxpagesize" = Option<i32>, Query, description = "1 to 500, default 200"),
        ("filter" = Option<String>, Query, description = "fields: telephoneNumber, accountName, service, usage, assignmentStatus, serviceProvisioningStatus, customSipHeader"),
        ("countRecords" = Option<bool>, Query)),
    responses((status = 200, body = Page<NumberResource>,
            headers(("x-ms-record-count" = i64, description = "with countRecords=true"))),
        (status = 400, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn list_numbers(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let paging = Paging::parse(&uri)?;
    let listed = query::numbers(
        state.commands.store().pool(),
        None,
        &paging.query(Resource::Numbers)?,
    )
    .await
    .map_err(query_error)?;
    let listed = map(listed, |s| NumberResource::from_state(&s));
    Ok(answer(&state, &uri, &headers, &paging, listed))
}

/// List requests for information (consents), in tenant order, each naming its account.
#[utoipa::path(
    get, path = "/teamsRequestsForInformation", tag = "TeamsRequestForInformation",
    params(("api-version" = String, Query), ("top" = Option<i32>, Query), ("skip" = Option<i32>, Query),
        ("skipToken" = Option<String>, Query, description = "opaque: the continuation a nextLink carries"),
        ("maxpagesize" = Option<i32>, Query, description = "1 to 500, default 200"),
        ("filter" = Option<String>, Query, description = "fields: tenantId, accountName, status, customerRelationship/status, serviceProvisioningStatus, country"),
        ("countRecords" = Option<bool>, Query)),
    responses((status = 200, body = Page<RequestForInformationResource>,
            headers(("x-ms-record-count" = i64, description = "with countRecords=true"))),
        (status = 400, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn list_requests_for_information(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let paging = Paging::parse(&uri)?;
    let listed = query::consents(
        state.commands.store().pool(),
        &paging.query(Resource::RequestsForInformation)?,
    )
    .await
    .map_err(query_error)?;
    let listed = map(listed, |row| {
        let account = row
            .account_name
            .and_then(|name| AccountName::parse(name).ok());
        RequestForInformationResource::from_state(&row.state, account.as_ref())
    });
    Ok(answer(&state, &uri, &headers, &paging, listed))
}

/// List the civic addresses of the account's Teams tenant, in id order (none without a tenant).
#[utoipa::path(
    get, path = "/accounts/{accountName}/teamsCivicAddresses", tag = "TeamsCivicAddress",
    params(("accountName" = String, Path), ("api-version" = String, Query), ("top" = Option<i32>, Query),
        ("skip" = Option<i32>, Query),
        ("skipToken" = Option<String>, Query, description = "opaque: the continuation a nextLink carries"), ("maxpagesize" = Option<i32>, Query, description = "1 to 500, default 200"),
        ("filter" = Option<String>, Query, description = "fields: id, country, validationStatus"),
        ("countRecords" = Option<bool>, Query)),
    responses((status = 200, body = Page<TeamsCivicAddressResource>,
            headers(("x-ms-record-count" = i64, description = "with countRecords=true"))),
        (status = 400, body = crate::error::ErrorResponse), (status = 404, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn list_civic_addresses(
    State(state): State<AppState>,
    Path(account): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let paging = Paging::parse(&uri)?;
    let list = paging.query(Resource::CivicAddresses)?;
    let Some(tenant) = existing_account(&state, &account).await? else {
        let empty = Listed {
            items: Vec::<TeamsCivicAddressResource>::new(),
            more: false,
            total: paging.count.then_some(0),
            last_key: None,
        };
        return Ok(answer(&state, &uri, &headers, &paging, empty));
    };
    let listed = query::civic_addresses(state.commands.store().pool(), &tenant, &list)
        .await
        .map_err(query_error)?;
    let items = listed
        .items
        .into_iter()
        .map(TeamsCivicAddressResource::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let listed = Listed {
        items,
        more: listed.more,
        total: listed.total,
        last_key: listed.last_key,
    };
    Ok(answer(&state, &uri, &headers, &paging, listed))
}

/// Get a civic address of the account's Teams tenant.
#[utoipa::path(
    get, path = "/accounts/{accountName}/teamsCivicAddresses/{civicAddressId}", tag = "TeamsCivicAddress",
    params(("accountName" = String, Path), ("civicAddressId" = String, Path), ("api-version" = String, Query)),
    responses((status = 200, body = TeamsCivicAddressResource), (status = 404, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn get_civic_address(
    State(state): State<AppState>,
    Path((account, civic_address)): Path<(String, String)>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::not_found(&format!(
            "civic address '{civic_address}' of account '{account}'"
        ))
    };
    let tenant = existing_account(&state, &account).await?;
    let Some(tenant) = tenant else {
        return Err(not_found());
    };
    let row = query::civic_address(state.commands.store().pool(), &tenant, &civic_address)
        .await
        .map_err(query_error)?
        .ok_or_else(not_found)?;
    let resource = TeamsCivicAddressResource::from_row(row)?;
    Ok((StatusCode::OK, axum::Json(resource)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(query: &str) -> Result<Paging, ApiError> {
        Paging::parse(&format!("/numbers?{query}").parse::<Uri>().unwrap())
    }

    #[test]
    fn paging_parameters_are_read_and_bounded() {
        let p = paging("api-version=v&top=5&skip=10&maxpagesize=3&filter=usage%20eq%20%27x%27&countRecords=true").unwrap();
        assert_eq!(p.top, Some(5));
        assert_eq!(p.skip, 10);
        assert_eq!(p.max_page_size, Some(3));
        assert_eq!(p.filter.as_deref(), Some("usage eq 'x'"));
        assert!(p.count);
        assert_eq!(p.page_size(), 3);
        assert_eq!(paging("top=7").unwrap().page_size(), 7);
        assert_eq!(paging("").unwrap().page_size(), DEFAULT_PAGE_SIZE);

        // The public API bounds neither: a large page size is served as the largest, no items
        // as an empty page.
        assert_eq!(
            paging("maxpagesize=5000").unwrap().page_size(),
            MAX_PAGE_SIZE
        );
        assert_eq!(paging("top=0").unwrap().page_size(), 0);

        for bad in [
            "maxpagesize=0",
            "top=-1",
            "skip=-1",
            "skip=x",
            "top=2147483648",
            "countRecords=yes",
            "top=1&top=2",
        ] {
            let error = paging(bad).expect_err(bad);
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(error.body.code, "InvalidQueryParameter", "{bad}");
        }
        assert_eq!(paging("maxpagesize=500").unwrap().page_size(), 500);
    }

    #[test]
    fn the_next_page_carries_the_continuation() {
        let p = paging("api-version=v&top=5&maxpagesize=2&filter=a%20eq%20%27b%27").unwrap();
        assert_eq!(
            p.next(2, true, Some("+1")).as_deref(),
            Some("api-version=v&filter=a%20eq%20%27b%27&top=3&skipToken=k2b31&maxpagesize=2")
        );
        assert_eq!(p.next(2, false, Some("+1")), None, "no rows follow");
        let last = paging("top=2&maxpagesize=2").unwrap();
        assert_eq!(last.next(2, true, Some("x")), None, "top is used up");
        // The token replaces skip: the next page starts after the key.
        let plain = paging("skip=4&countRecords=true").unwrap();
        assert_eq!(
            plain.next(200, true, Some("contoso")).as_deref(),
            Some("skipToken=k636f6e746f736f&countRecords=true")
        );
        assert_eq!(
            plain.next(200, true, None).as_deref(),
            Some("skip=204&countRecords=true")
        );
        let followed = paging("skipToken=k636f6e746f736f&skip=3").unwrap();
        assert_eq!(followed.after.as_deref(), Some("contoso"));
        assert_eq!(followed.skip, 3);
    }

    #[test]
    fn skip_tokens_carry_any_key_and_bad_ones_are_refused() {
        for key in [
            "+15105850001",
            "contoso",
            "a-b_c",
            "Zürich ☎",
            "'; DROP TABLE events; --",
        ] {
            let query = format!("skipToken={}", token(key));
            assert_eq!(paging(&query).unwrap().after.as_deref(), Some(key), "{key}");
        }
        for bad in [
            "skipToken=",
            "skipToken=k",
            "skipToken=2b31",
            "skipToken=x2b31",
            "skipToken=k2b3",
            "skipToken=k2g31",
            "skipToken=k%2B31",
            "skipToken=k00",
            "skipToken=k0a",
            "skipToken=kff",
            "skipToken=k2b31&skipToken=k2b32",
        ] {
            let error = paging(bad).expect_err(bad);
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(error.body.code, "InvalidQueryParameter", "{bad}");
            assert_eq!(error.body.target.as_deref(), Some("skipToken"), "{bad}");
        }
        let long = format!("skipToken=k{}", "61".repeat(MAX_TOKEN_KEY + 1));
        assert!(paging(&long).is_err());
        let longest = format!("skipToken=k{}", "61".repeat(MAX_TOKEN_KEY));
        assert!(paging(&longest).is_ok());
    }

    #[test]
    fn the_origin_follows_the_host_and_a_proxy_scheme() {
        let uri: Uri = "/accounts".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_static("nmp.example.com:8443"),
        );
        assert_eq!(origin(None, &uri, &headers), "http://nmp.example.com:8443");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(origin(None, &uri, &headers), "https://nmp.example.com:8443");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("javascript"));
        headers.insert(header::HOST, HeaderValue::from_static("evil\"host"));
        assert_eq!(origin(None, &uri, &headers), "http://localhost");
    }
}
