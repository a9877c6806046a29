//! `/accounts/{accountName}` and its actions `:createOrUpdateNumbers` and `:deleteNumbers`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use commands::etag;
use domain::AccountName;

use crate::AppState;
use crate::context::{AppJson, Caller, from_value};
use crate::error::{ApiError, command_error};
use crate::wire::account::AccountResource;
use crate::wire::number::{BatchNumbers, BatchNumbersDelete, MAX_BATCH, NumberResource};
use crate::wire::parse_at;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/accounts/{account}",
        get(get_account)
            .put(put_account)
            .delete(delete_account)
            .post(account_action),
    )
}

pub(crate) fn account_name(path: &str) -> Result<AccountName, ApiError> {
    parse_at("accountName", AccountName::parse(path))
}

/// A JSON answer with the resource's ETag.
pub(crate) fn with_etag(status: StatusCode, version: u64, body: impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
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
    let name = account_name(&account)?;
    let loaded = state.commands.account(&name).await?;
    let account = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| ApiError::not_found(&format!("account '{name}'")))?;
    Ok(with_etag(
        StatusCode::OK,
        loaded.version,
        AccountResource::from_state(account),
    ))
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
    let name = account_name(&account)?;
    let request = body.into_request(&name)?;
    let (loaded, created) = state
        .commands
        .create_or_replace_account(
            &name,
            request.correlation_id,
            request.services,
            &caller.preconditions,
            &caller.metadata,
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let resource = loaded
        .aggregate
        .state
        .as_ref()
        .map(AccountResource::from_state)
        .unwrap_or_default();
    Ok(with_etag(status, loaded.version, resource))
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
    let name = account_name(&account)?;
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
    state
        .commands
        .delete_account(
            &name,
            delete_numbers,
            &caller.preconditions,
            &caller.metadata,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /accounts/{accountName}:{action}`: the path segment carries both.
pub async fn account_action(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    caller: Caller,
    AppJson(body): AppJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let Some((account, action)) = segment.split_once(':') else {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "POST on an account needs an action such as :createOrUpdateNumbers",
        ));
    };
    let name = account_name(account)?;
    match action {
        "createOrUpdateNumbers" => create_or_update_numbers(state, name, caller, body).await,
        "deleteNumbers" => delete_numbers(state, name, caller, body).await,
        "getTeamsCapabilityPlans" | "getTeamsAvailableCapabilities" => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!("{action} asks the Teams backend, which nmp does not reach yet"),
        )),
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
    account: AccountName,
    caller: Caller,
    body: serde_json::Value,
) -> Result<Response, ApiError> {
    let batch: BatchNumbers = from_value(body)?;
    check_batch_size(batch.numbers.len())?;
    let items = batch
        .numbers
        .into_iter()
        .enumerate()
        .map(|(i, n)| n.into_details(&account, &format!("numbers[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let outcomes = state
        .commands
        .upsert_numbers(&account, items, &caller.metadata)
        .await
        .map_err(|e| command_error(e, "numbers"))?;
    let numbers = outcomes
        .iter()
        .filter_map(|o| o.number.aggregate.state.as_ref())
        .map(NumberResource::from_state)
        .collect();
    Ok((StatusCode::OK, axum::Json(BatchNumbers { numbers })).into_response())
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
    account: AccountName,
    caller: Caller,
    body: serde_json::Value,
) -> Result<Response, ApiError> {
    let batch: BatchNumbersDelete = from_value(body)?;
    check_batch_size(batch.numbers.len())?;
    let numbers = batch
        .numbers
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            parse_at(
                format!("numbers[{i}].telephoneNumber"),
                domain::E164::parse(n.telephone_number),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    state
        .commands
        .delete_numbers(&account, numbers, &caller.metadata)
        .await
        .map_err(|e| command_error(e, "numbers"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn check_batch_size(count: usize) -> Result<(), ApiError> {
    if count > MAX_BATCH {
        return Err(ApiError::bad_request(
            "TooManyNumbers",
            format!("a request may hold at most {MAX_BATCH} numbers, not {count}"),
        )
        .with_target("numbers"));
    }
    if count == 0 {
        return Err(
            ApiError::bad_request("NoNumbers", "the request names no numbers")
                .with_target("numbers"),
        );
    }
    Ok(())
}
