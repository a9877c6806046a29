//! `/accounts/{accountName}` and its actions `:createOrUpdateNumbers`, `:deleteNumbers`,
//! `:getTeamsCapabilityPlans` and `:getTeamsAvailableCapabilities` (both asked of the Teams
//! backend), and nmp's own `:retryProvisioning`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::AppState;
use crate::context::{AppJson, Caller, from_value};
use crate::error::{ApiError, respond};
use crate::operations;
use crate::wire::account::AccountResource;
use crate::wire::capabilities::{TeamsAvailableCapabilities, TeamsCapabilityPlans};
use crate::wire::number::{BatchNumbers, BatchNumbersDelete};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/accounts/{account}",
        get(get_account)
            .put(put_account)
            .delete(delete_account)
            .post(account_action),
    )
}

/// Get an account.
#[utoipa::path(
    get, path = "/accounts/{accountName}", tag = "Account",
    params(("accountName" = String, Path), ("api-version" = String, Query)),
    responses((status = 200, body = AccountResource), (status = 404, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn get_account(
    State(state): State<AppState>,
    Path(account): Path<String>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    Ok(respond(operations::get_account(&state, &account).await?))
}

/// Create (201) or replace (200) an account.
#[utoipa::path(
    put, path = "/accounts/{accountName}", tag = "Account",
    params(("accountName" = String, Path), ("api-version" = String, Query)),
    request_body = AccountResource,
    responses((status = 200, body = AccountResource), (status = 201, body = AccountResource),
        (status = 400, body = crate::error::ErrorResponse), (status = 409, body = crate::error::ErrorResponse),
        (status = 412, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn put_account(
    State(state): State<AppState>,
    Path(account): Path<String>,
    caller: Caller,
    AppJson(body): AppJson<AccountResource>,
) -> Result<Response, ApiError> {
    Ok(respond(
        operations::put_account(&state, &caller, &account, body).await?,
    ))
}

/// Delete an account; with `deleteNumbers=true` its numbers too.
#[utoipa::path(
    delete, path = "/accounts/{accountName}", tag = "Account",
    params(("accountName" = String, Path), ("api-version" = String, Query),
        ("deleteNumbers" = Option<bool>, Query)),
    responses((status = 204), (status = 404, body = crate::error::ErrorResponse),
        (status = 409, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn delete_account(
    State(state): State<AppState>,
    Path(account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let delete_numbers = match query.get("deleteNumbers").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "InvalidQueryParameter",
                format!("deleteNumbers must be true or false, not '{other}'"),
            )
            .with_target("deleteNumbers"));
        }
    };
    Ok(respond(
        operations::delete_account(&state, &caller, &account, delete_numbers).await?,
    ))
}

/// `POST /accounts/{accountName}:{action}`: the path segment carries both. The actions that
/// take no body ignore one sent.
pub async fn account_action(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    caller: Caller,
    request: Request,
) -> Result<Response, ApiError> {
    let Some((account, action)) = segment.split_once(':') else {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "POST on an account needs an action such as :createOrUpdateNumbers",
        ));
    };
    match action {
        "createOrUpdateNumbers" => {
            let body = json_body(request).await?;
            create_or_update_numbers(state, account, caller, body).await
        }
        "deleteNumbers" => {
            let body = json_body(request).await?;
            delete_numbers(state, account, caller, body).await
        }
        "getTeamsCapabilityPlans" => get_teams_capability_plans(state, account).await,
        "getTeamsAvailableCapabilities" => {
            let body = json_body(request).await?;
            get_teams_available_capabilities(state, account, body).await
        }
        "retryProvisioning" => retry_provisioning(state, account, caller).await,
        other => Err(ApiError::bad_request(
            "UnknownAction",
            format!("'{other}' is not an account action"),
        )
        .with_target("action")),
    }
}

/// Upsert at most 100 numbers: every item is checked before any is written.
#[utoipa::path(
    post, path = "/accounts/{accountName}:createOrUpdateNumbers", tag = "BatchNumbers",
    params(("accountName" = String, Path), ("api-version" = String, Query)),
    request_body = BatchNumbers,
    responses((status = 200, body = BatchNumbers), (status = 400, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn create_or_update_numbers(
    state: AppState,
    account: &str,
    caller: Caller,
    body: serde_json::Value,
) -> Result<Response, ApiError> {
    let batch: BatchNumbers = from_value(body)?;
    Ok(respond(
        operations::create_or_update_numbers(&state, &caller, account, batch).await?,
    ))
}

/// Delete at most 100 numbers: all must belong to the account, or none is deleted.
#[utoipa::path(
    post, path = "/accounts/{accountName}:deleteNumbers", tag = "BatchNumbers",
    params(("accountName" = String, Path), ("api-version" = String, Query)),
    request_body = BatchNumbersDelete,
    responses((status = 204), (status = 400, body = crate::error::ErrorResponse),
        (status = 404, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn delete_numbers(
    state: AppState,
    account: &str,
    caller: Caller,
    body: serde_json::Value,
) -> Result<Response, ApiError> {
    let batch: BatchNumbersDelete = from_value(body)?;
    Ok(respond(
        operations::delete_numbers(&state, &caller, account, batch).await?,
    ))
}

/// The request's JSON body, for the actions that take one.
async fn json_body(request: Request) -> Result<serde_json::Value, ApiError> {
    let AppJson(body) = AppJson::from_request(request, &()).await?;
    Ok(body)
}

/// The Teams capability plans the backend offers the account's Teams tenant. Asks the backend:
/// 503 `BackendNotConfigured` when nmp has none, 503 `BackendUnavailable` (with `Retry-After`
/// when known) when it is unavailable, 502 with the backend's code when it refuses.
#[utoipa::path(
    post, path = "/accounts/{accountName}:getTeamsCapabilityPlans", tag = "TeamsCapabilityPlans",
    params(("accountName" = String, Path), ("api-version" = String, Query)),
    responses((status = 200, body = TeamsCapabilityPlans), (status = 404, body = crate::error::ErrorResponse),
        (status = 409, body = crate::error::ErrorResponse, description = "AccountWithoutTeamsTenant"),
        (status = 502, body = crate::error::ErrorResponse), (status = 503, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn get_teams_capability_plans(
    state: AppState,
    account: &str,
) -> Result<Response, ApiError> {
    Ok(respond(
        operations::get_teams_capability_plans(&state, account).await?,
    ))
}

/// The Teams capabilities available to all the numbers named (at most 100), as the backend
/// tells for the account's Teams tenant; errors as for `:getTeamsCapabilityPlans`, and 400
/// `InvalidBatch` naming each number the backend rejects.
#[utoipa::path(
    post, path = "/accounts/{accountName}:getTeamsAvailableCapabilities", tag = "TeamsAvailableCapabilities",
    params(("accountName" = String, Path), ("api-version" = String, Query)),
    request_body = BatchNumbersDelete,
    responses((status = 200, body = TeamsAvailableCapabilities), (status = 400, body = crate::error::ErrorResponse),
        (status = 404, body = crate::error::ErrorResponse),
        (status = 409, body = crate::error::ErrorResponse, description = "AccountWithoutTeamsTenant"),
        (status = 502, body = crate::error::ErrorResponse), (status = 503, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn get_teams_available_capabilities(
    state: AppState,
    account: &str,
    body: serde_json::Value,
) -> Result<Response, ApiError> {
    let batch: BatchNumbersDelete = from_value(body)?;
    Ok(respond(
        operations::get_teams_available_capabilities(&state, account, batch).await?,
    ))
}

/// Push again an account's change whose provisioning failed (nmp's own). Only when
/// `serviceProvisioningStatus` is `failed`; it goes back to `pending`.
#[utoipa::path(
    post, path = "/accounts/{accountName}:retryProvisioning", tag = "Provisioning",
    params(("accountName" = String, Path), ("api-version" = String, Query)),
    responses((status = 200, body = AccountResource), (status = 404, body = crate::error::ErrorResponse),
        (status = 409, body = crate::error::ErrorResponse, description = "ProvisioningNotFailed"),
        (status = 412, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn retry_provisioning(
    state: AppState,
    account: &str,
    caller: Caller,
) -> Result<Response, ApiError> {
    Ok(respond(
        operations::retry_account_provisioning(&state, &caller, account).await?,
    ))
}
