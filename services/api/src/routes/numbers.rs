//! `/accounts/{accountName}/numbers/{telephoneNumber}`, and nmp's own action on it,
//! `:retryProvisioning`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::AppState;
use crate::context::{AppJson, Caller};
use crate::error::{ApiError, respond};
use crate::operations;
use crate::wire::number::NumberResource;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/accounts/{account}/numbers/{number}",
        get(get_number)
            .put(put_number)
            .delete(delete_number)
            .post(number_action),
    )
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
    Ok(respond(
        operations::get_number(&state, &account, &number).await?,
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
    Ok(respond(
        operations::put_number(&state, &caller, &account, &number, body).await?,
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
    Ok(respond(
        operations::delete_number(&state, &caller, &account, &number).await?,
    ))
}

/// `POST /accounts/{accountName}/numbers/{telephoneNumber}:{action}`: the last path segment
/// carries both. Actions take no body; one sent is ignored.
pub async fn number_action(
    State(state): State<AppState>,
    Path((account, segment)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Some((number, action)) = segment.rsplit_once(':') else {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "POST on a number needs an action such as :retryProvisioning",
        ));
    };
    match action {
        "retryProvisioning" => retry_provisioning(state, &account, number, caller).await,
        other => Err(ApiError::bad_request(
            "UnknownAction",
            format!("'{other}' is not a number action"),
        )
        .with_target("action")),
    }
}

/// Push again a number's change whose provisioning failed: its upload, update or release
/// (nmp's own). Only when `serviceProvisioningStatus` is `failed`; it goes back to `pending`.
#[utoipa::path(
    post, path = "/accounts/{accountName}/numbers/{telephoneNumber}:retryProvisioning", tag = "Provisioning",
    params(("accountName" = String, Path), ("telephoneNumber" = String, Path), ("api-version" = String, Query)),
    responses((status = 200, body = NumberResource), (status = 404, body = crate::error::ErrorResponse),
        (status = 409, body = crate::error::ErrorResponse, description = "ProvisioningNotFailed"),
        (status = 412, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn retry_provisioning(
    state: AppState,
    account: &str,
    number: &str,
    caller: Caller,
) -> Result<Response, ApiError> {
    Ok(respond(
        operations::retry_number_provisioning(&state, &caller, account, number).await?,
    ))
}
