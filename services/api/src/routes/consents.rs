//! `/teamsRequestsForInformation/{tenantId}`: consents and the operator's customer relationship,
//! and nmp's own action `:retryProvisioning`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::AppState;
use crate::context::{AppJson, Caller};
use crate::error::{ApiError, respond};
use crate::operations;
use crate::wire::consent::{RequestForInformationPatch, RequestForInformationResource};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/teamsRequestsForInformation/{tenant}",
        get(get_request_for_information)
            .patch(patch_request_for_information)
            .post(request_for_information_action),
    )
}

/// Get a request for information (consent) by tenant id.
#[utoipa::path(
    get, path = "/teamsRequestsForInformation/{tenantId}", tag = "TeamsRequestForInformation",
    params(("tenantId" = String, Path), ("api-version" = String, Query)),
    responses((status = 200, body = RequestForInformationResource), (status = 404, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn get_request_for_information(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    Ok(respond(
        operations::get_request_for_information(&state, &tenant).await?,
    ))
}

/// Update the customer relationship of a consent (JSON merge patch).
#[utoipa::path(
    patch, path = "/teamsRequestsForInformation/{tenantId}", tag = "TeamsRequestForInformation",
    params(("tenantId" = String, Path), ("api-version" = String, Query)),
    request_body(content = RequestForInformationPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = RequestForInformationResource), (status = 400, body = crate::error::ErrorResponse),
        (status = 404, body = crate::error::ErrorResponse), (status = 412, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn patch_request_for_information(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    caller: Caller,
    AppJson(patch): AppJson<RequestForInformationPatch>,
) -> Result<Response, ApiError> {
    Ok(respond(
        operations::patch_request_for_information(&state, &caller, &tenant, patch).await?,
    ))
}

/// `POST /teamsRequestsForInformation/{tenantId}:{action}`. Actions take no body; one sent is
/// ignored.
pub async fn request_for_information_action(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Some((tenant, action)) = segment.split_once(':') else {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "POST on a request for information needs an action such as :retryProvisioning",
        ));
    };
    match action {
        "retryProvisioning" => retry_provisioning(state, tenant, caller).await,
        other => Err(ApiError::bad_request(
            "UnknownAction",
            format!("'{other}' is not an action on a request for information"),
        )
        .with_target("action")),
    }
}

/// Push again the customer relationship of a consent whose provisioning failed (nmp's own).
/// Only when `serviceProvisioningStatus` is `failed`; it goes back to `pending`.
#[utoipa::path(
    post, path = "/teamsRequestsForInformation/{tenantId}:retryProvisioning", tag = "Provisioning",
    params(("tenantId" = String, Path), ("api-version" = String, Query)),
    responses((status = 200, body = RequestForInformationResource), (status = 404, body = crate::error::ErrorResponse),
        (status = 409, body = crate::error::ErrorResponse, description = "ProvisioningNotFailed"),
        (status = 412, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn retry_provisioning(
    state: AppState,
    tenant: &str,
    caller: Caller,
) -> Result<Response, ApiError> {
    Ok(respond(
        operations::retry_request_for_information_provisioning(&state, &caller, tenant).await?,
    ))
}
