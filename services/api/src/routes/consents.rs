//! `/teamsRequestsForInformation/{tenantId}`: consents and the operator's customer relationship.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;

use crate::AppState;
use crate::context::{AppJson, Caller};
use crate::error::ApiError;
use crate::operations::{self, Outcome};
use crate::wire::consent::{RequestForInformationPatch, RequestForInformationResource};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/teamsRequestsForInformation/{tenant}",
        get(get_request_for_information).patch(patch_request_for_information),
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
) -> Result<Outcome, ApiError> {
    operations::get_request_for_information(&state, &tenant).await
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
) -> Result<Outcome, ApiError> {
    operations::patch_request_for_information(&state, &caller, &tenant, patch).await
}
