//! `/accounts/{accountName}/numbers/{telephoneNumber}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::{AccountName, E164};

use crate::AppState;
use crate::context::{AppJson, Caller};
use crate::error::ApiError;
use crate::routes::accounts::{account_name, with_etag};
use crate::wire::number::NumberResource;
use crate::wire::parse_at;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/accounts/{account}/numbers/{number}",
        get(get_number).put(put_number).delete(delete_number),
    )
}

fn path_values(account: &str, number: &str) -> Result<(AccountName, E164), ApiError> {
    let account = account_name(account)?;
    let number = parse_at("telephoneNumber", E164::parse(number))?;
    Ok((account, number))
}

/// Get a number of an account.
#[utoipa::path(
    get, path = "/accounts/{accountName}/numbers/{telephoneNumber}", tag = "Number",
    params(("accountName" = String, Path), ("telephoneNumber" = String, Path, description = "E.164, `+` written as `%2B`"),
        ("api-version" = String, Query)),
    responses((status = 200, body = NumberResource), (status = 404, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn get_number(
    State(state): State<AppState>,
    Path((account, number)): Path<(String, String)>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let (account, number) = path_values(&account, &number)?;
    let loaded = state.commands.number(&number).await?;
    let resource = loaded
        .aggregate
        .state
        .as_ref()
        .filter(|s| s.account == account)
        .ok_or_else(|| ApiError::not_found(&format!("number {number} in account '{account}'")))?;
    Ok(with_etag(
        StatusCode::OK,
        loaded.version,
        NumberResource::from_state(resource),
    ))
}

/// Create (201) or replace (200) a number of an account.
#[utoipa::path(
    put, path = "/accounts/{accountName}/numbers/{telephoneNumber}", tag = "Number",
    params(("accountName" = String, Path), ("telephoneNumber" = String, Path), ("api-version" = String, Query)),
    request_body = NumberResource,
    responses((status = 200, body = NumberResource), (status = 201, body = NumberResource),
        (status = 400, body = crate::error::ErrorResponse), (status = 409, body = crate::error::ErrorResponse),
        (status = 412, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn put_number(
    State(state): State<AppState>,
    Path((account, number)): Path<(String, String)>,
    caller: Caller,
    AppJson(body): AppJson<NumberResource>,
) -> Result<Response, ApiError> {
    let (account, number) = path_values(&account, &number)?;
    let (body_number, details) = body.into_details(&account, "")?;
    if body_number != number {
        return Err(ApiError::bad_request(
            "TelephoneNumberMismatch",
            format!("the body's telephoneNumber {body_number} differs from the path's {number}"),
        )
        .with_target("telephoneNumber"));
    }
    let outcome = state
        .commands
        .upsert_number(
            &account,
            number,
            details,
            &caller.preconditions,
            &caller.metadata,
        )
        .await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let state = outcome.number.aggregate.state.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "number vanished",
        )
    })?;
    Ok(with_etag(
        status,
        outcome.number.version,
        NumberResource::from_state(state),
    ))
}

/// Delete a number of an account.
#[utoipa::path(
    delete, path = "/accounts/{accountName}/numbers/{telephoneNumber}", tag = "Number",
    params(("accountName" = String, Path), ("telephoneNumber" = String, Path), ("api-version" = String, Query)),
    responses((status = 204), (status = 404, body = crate::error::ErrorResponse),
        (status = 412, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn delete_number(
    State(state): State<AppState>,
    Path((account, number)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (account, number) = path_values(&account, &number)?;
    state
        .commands
        .delete_number(&account, number, &caller.preconditions, &caller.metadata)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
