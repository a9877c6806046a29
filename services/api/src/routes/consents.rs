//! `/teamsRequestsForInformation/{tenantId}`: consents and the operator's customer relationship.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use commands::CommandError;
use domain::{Comment, ConsentState, DomainError, RelationshipStatus, TenantId};

use crate::AppState;
use crate::context::{AppJson, Caller};
use crate::error::ApiError;
use crate::routes::accounts::with_etag;
use crate::wire::consent::{RequestForInformationPatch, RequestForInformationResource};
use crate::wire::parse_at;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/teamsRequestsForInformation/{tenant}",
        get(get_request_for_information).patch(patch_request_for_information),
    )
}

async fn resource(
    state: &AppState,
    consent: &ConsentState,
) -> Result<RequestForInformationResource, ApiError> {
    let account = state.commands.account_of_tenant(&consent.tenant_id).await?;
    Ok(RequestForInformationResource::from_state(
        consent,
        account.as_ref(),
    ))
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
    let tenant = parse_at("tenantId", TenantId::parse(tenant))?;
    let loaded = state.commands.consent(&tenant).await?;
    let consent =
        loaded.aggregate.state.as_ref().ok_or_else(|| {
            ApiError::refused(&DomainError::ConsentNotFound(tenant.clone()), None)
        })?;
    Ok(with_etag(
        StatusCode::OK,
        loaded.version,
        resource(&state, consent).await?,
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
    let tenant = parse_at("tenantId", TenantId::parse(tenant))?;
    let current = state.commands.consent(&tenant).await?;
    let Some(consent) = &current.aggregate.state else {
        return Err(ApiError::refused(
            &DomainError::ConsentNotFound(tenant),
            None,
        ));
    };
    let Some(relationship) = patch.customer_relationship else {
        // Nothing writable was named: the merge patch changes nothing.
        caller
            .preconditions
            .check(true, current.version)
            .map_err(ApiError::from)?;
        return Ok(with_etag(
            StatusCode::OK,
            current.version,
            resource(&state, consent).await?,
        ));
    };
    let existing = consent.relationship.as_ref();
    let status = match relationship.status {
        Some(status) => parse_at(
            "customerRelationship.status",
            RelationshipStatus::parse(&status),
        )?,
        None => existing.map(|r| r.status).ok_or_else(|| {
            ApiError::bad_request(
                "MissingRelationshipStatus",
                "customerRelationship.status is required: the consent has no relationship yet",
            )
            .with_target("customerRelationship.status")
        })?,
    };
    let comment = match relationship.comment {
        None => existing.and_then(|r| r.comment.clone()),
        Some(None) => None,
        Some(Some(text)) => Some(parse_at(
            "customerRelationship.comment",
            Comment::parse(text),
        )?),
    };
    let loaded = state
        .commands
        .change_relationship(
            &tenant,
            status,
            comment,
            caller.ticket_id.clone(),
            &caller.preconditions,
            &caller.metadata,
        )
        .await
        .map_err(|error| match error {
            CommandError::Refused(error) => ApiError::refused(&error, None),
            other => ApiError::from(other),
        })?;
    let consent = loaded.aggregate.state.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "consent vanished",
        )
    })?;
    Ok(with_etag(
        StatusCode::OK,
        loaded.version,
        resource(&state, consent).await?,
    ))
}
