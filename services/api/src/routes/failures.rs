//! `GET /provisioning/failures`, nmp's own: every account, number and consent whose
//! `serviceProvisioningStatus` is `failed`, in one list, with the backend's errors and when it
//! failed. Paged like the Provisioning API's lists (`top`, `skip`, `maxpagesize`,
//! `countRecords`, `nextLink`), in key order: kind (`account`, `consent`, `number`), then id.
//! It reads the read tables, so a failure shows once projected. Each item can be retried with
//! its resource's `:retryProvisioning` action.

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use projections::failures::{self, Failure, FailureQuery};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::context::Caller;
use crate::error::ApiError;
use crate::routes::lists::{Page, Paging, answer, map, query_error};
use crate::wire::{ProvisioningErrorWire, wire_time};

pub fn router() -> Router<AppState> {
    Router::new().route("/provisioning/failures", get(list_failures))
}

/// A resource whose provisioning failed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningFailure {
    /// `account`, `consent` or `number`.
    pub kind: String,
    /// The account name, the consent's tenant id or the telephone number.
    pub id: String,
    /// The account the resource belongs to (for a consent: the account linked to its tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// Always `failed`.
    pub service_provisioning_status: String,
    pub service_provisioning_errors: Vec<ProvisioningErrorWire>,
    /// When the backend's refusal was recorded (RFC 3339).
    pub failed_at: String,
    /// The resource's version whose change failed.
    pub version: u64,
    /// Whether what failed is the resource's deletion (its release in the backend).
    pub deleting: bool,
}

impl ProvisioningFailure {
    fn from_failure(failure: Failure) -> Self {
        ProvisioningFailure {
            kind: failure.kind.as_str().to_string(),
            id: failure.id,
            account_name: failure.account_name,
            service_provisioning_status: "failed".to_string(),
            service_provisioning_errors: failure
                .errors
                .into_iter()
                .map(|e| ProvisioningErrorWire {
                    code: e.code,
                    message: e.message,
                })
                .collect(),
            failed_at: wire_time(&failure.failed_at),
            version: failure.version,
            deleting: failure.deleting,
        }
    }
}

/// List every resource whose provisioning failed (nmp's own).
#[utoipa::path(
    get, path = "/provisioning/failures", tag = "Provisioning",
    params(("api-version" = String, Query), ("top" = Option<i32>, Query), ("skip" = Option<i32>, Query),
        ("skipToken" = Option<String>, Query, description = "opaque: the continuation a nextLink carries"),
        ("maxpagesize" = Option<i32>, Query, description = "1 to 500, default 200"),
        ("countRecords" = Option<bool>, Query)),
    responses((status = 200, body = Page<ProvisioningFailure>,
            headers(("x-ms-record-count" = i64, description = "with countRecords=true"))),
        (status = 400, body = crate::error::ErrorResponse)),
    security(("bearer" = []))
)]
pub async fn list_failures(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let paging = Paging::parse(&uri)?;
    if paging.filter.is_some() {
        return Err(ApiError::bad_request(
            "InvalidQueryParameter",
            "the list of provisioning failures takes no filter",
        )
        .with_target("filter"));
    }
    let query = FailureQuery {
        after: paging.after.clone(),
        skip: paging.skip,
        take: paging.page_size(),
        count: paging.count,
    };
    let listed = failures::failures(state.commands.store().pool(), &query)
        .await
        .map_err(query_error)?;
    let listed = map(listed, ProvisioningFailure::from_failure);
    Ok(answer(&state, &uri, &headers, &paging, listed))
}
