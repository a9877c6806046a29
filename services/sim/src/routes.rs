//! The simulator's HTTP face: the backend API (the routes `backend::client` documents), behind
//! the fault injection, and `/_sim`, the simulator's own API for tests and demos. Handlers only
//! translate between JSON and [`Simulator`].

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use backend::wire::{ErrorBody, List, Numbers};
use backend::{NumberConfiguration, RelationshipUpdate, UploadOrder};
use domain::{E164, TenantId};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::connection::ConnectionControl;
use crate::faults::{Faults, Refusal};
use crate::model::{CivicAddressInput, ConsentInput, ConsentStatusInput, RuntimeSettings};
use crate::state::{SimError, SimErrorKind, Simulator};

/// The simulator's routes. Dropped connections need the listener of [`crate::serve`]; under any
/// other server that fault answers 500 instead.
pub fn router(simulator: Simulator) -> Router {
    let backend = Router::new()
        .route("/consents", get(list_consents))
        .route(
            "/consents/{tenant_id}/customerRelationship",
            put(update_relationship),
        )
        .route("/orders/{order_id}", put(place_order).get(read_order))
        .route("/tenants/{tenant_id}/numbers:update", post(update_numbers))
        .route(
            "/tenants/{tenant_id}/numbers:release",
            post(release_numbers),
        )
        .route("/tenants/{tenant_id}/civicAddresses", get(civic_addresses))
        .route(
            "/tenants/{tenant_id}/capabilityPlans",
            get(capability_plans),
        )
        .route(
            "/tenants/{tenant_id}/availableCapabilities",
            post(available_capabilities),
        )
        .route_layer(middleware::from_fn_with_state(
            simulator.clone(),
            inject_faults,
        ));
    let control = Router::new()
        .route("/_sim/consents", post(put_consent))
        .route(
            "/_sim/consents/{tenant_id}/status",
            post(set_consent_status),
        )
        .route(
            "/_sim/tenants/{tenant_id}/civicAddresses",
            post(put_civic_address),
        )
        .route(
            "/_sim/tenants/{tenant_id}/civicAddresses/{id}",
            delete(remove_civic_address),
        )
        .route("/_sim/faults", get(faults).post(set_faults))
        .route("/_sim/settings", get(settings).post(set_settings))
        .route("/_sim/ledger", get(ledger))
        .route("/_sim/numbers", get(numbers))
        .route("/_sim/stats", get(stats))
        .route("/_sim/reset", post(reset))
        .route("/healthz", get(|| async { "ok" }));
    backend
        .merge(control)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such route") })
        .with_state(simulator)
}

// ---- errors and extractors ----

/// Every refusal: a status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<SimError> for ApiError {
    fn from(error: SimError) -> Self {
        let status = match error.kind {
            SimErrorKind::Invalid => StatusCode::BAD_REQUEST,
            SimErrorKind::NotFound => StatusCode::NOT_FOUND,
        };
        ApiError::new(status, error.code, error.message)
    }
}

/// A JSON body whose faults are answered in the error format.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "InvalidBody",
                rejection.body_text(),
            )),
        }
    }
}

/// Query parameters whose faults are answered in the error format.
struct Params<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "InvalidQuery",
                rejection.body_text(),
            )),
        }
    }
}

/// The tenant named in the path.
struct Tenant(TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::new(rejection.status(), "InvalidPath", rejection.body_text())
            })?;
        let raw = params
            .into_iter()
            .find(|(name, _)| name == "tenant_id")
            .map(|(_, value)| value)
            .unwrap_or_default();
        TenantId::parse(raw).map(Tenant).map_err(|error| {
            ApiError::new(StatusCode::BAD_REQUEST, "InvalidTenantId", error.reason)
        })
    }
}

// ---- faults ----

/// Counts the call and lets the faults switched on decide its fate.
async fn inject_faults(
    State(simulator): State<Simulator>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |p| p.as_str().to_string(),
    );
    let route = format!("{} {path}", request.method());
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnectionControl>>()
        .map(|info| info.0.clone());
    let decision = simulator.decide_faults(&route);
    if decision.drop_before {
        return drop_connection(connection);
    }
    match decision.refusal {
        Some(Refusal::RateLimited {
            retry_after_seconds,
        }) => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!("rate limit exceeded; retry after {retry_after_seconds} s"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            return response;
        }
        Some(Refusal::ServerError { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return ApiError::new(status, "SimulatedFault", "a simulated server error")
                .into_response();
        }
        None => {}
    }
    let response = next.run(request).await;
    if decision.drop_after {
        return drop_connection(connection);
    }
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    response
}

/// The answer is never sent: the connection goes dead as the handler returns.
fn drop_connection(connection: Option<ConnectionControl>) -> Response {
    match connection {
        Some(connection) => {
            connection.drop_connection();
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        None => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CannotDropConnection",
            "the simulator drops connections only when run by sim::serve",
        )
        .into_response(),
    }
}

// ---- the backend API ----

async fn list_consents(State(simulator): State<Simulator>) -> Json<List<backend::BackendConsent>> {
    Json(List {
        value: simulator.consents(),
    })
}

async fn update_relationship(
    State(simulator): State<Simulator>,
    Tenant(tenant): Tenant,
    Body(update): Body<RelationshipUpdate>,
) -> Result<StatusCode, ApiError> {
    simulator.update_relationship(&tenant, update)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn place_order(
    State(simulator): State<Simulator>,
    Path(order_id): Path<String>,
    Body(order): Body<UploadOrder>,
) -> Result<Response, ApiError> {
    if order.id != order_id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "OrderIdMismatch",
            format!(
                "the body's id '{}' is not the path's '{order_id}'",
                order.id
            ),
        ));
    }
    let (status, placed) = simulator.place_order(order)?;
    let code = if placed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(status)).into_response())
}

async fn read_order(
    State(simulator): State<Simulator>,
    Path(order_id): Path<String>,
) -> Result<Json<backend::OrderStatus>, ApiError> {
    Ok(Json(simulator.order(&order_id)?))
}

async fn update_numbers(
    State(simulator): State<Simulator>,
    Tenant(tenant): Tenant,
    Body(body): Body<Numbers<NumberConfiguration>>,
) -> Result<Json<List<backend::NumberResult>>, ApiError> {
    let value = simulator.update_numbers(&tenant, body.numbers)?;
    Ok(Json(List { value }))
}

async fn release_numbers(
    State(simulator): State<Simulator>,
    Tenant(tenant): Tenant,
    Body(body): Body<Numbers<E164>>,
) -> Result<Json<List<backend::NumberResult>>, ApiError> {
    let value = simulator.release_numbers(&tenant, body.numbers)?;
    Ok(Json(List { value }))
}

async fn civic_addresses(
    State(simulator): State<Simulator>,
    Tenant(tenant): Tenant,
) -> Json<List<backend::BackendCivicAddress>> {
    Json(List {
        value: simulator.civic_addresses(&tenant),
    })
}

async fn capability_plans(
    State(simulator): State<Simulator>,
    Tenant(tenant): Tenant,
) -> Json<List<backend::CapabilityPlan>> {
    Json(List {
        value: simulator.capability_plans(&tenant),
    })
}

async fn available_capabilities(
    State(simulator): State<Simulator>,
    Tenant(tenant): Tenant,
    Body(body): Body<Numbers<E164>>,
) -> Result<Json<List<backend::AvailableCapabilities>>, ApiError> {
    let value = simulator.available_capabilities(&tenant, body.numbers)?;
    Ok(Json(List { value }))
}

// ---- /_sim ----

async fn put_consent(
    State(simulator): State<Simulator>,
    Body(input): Body<ConsentInput>,
) -> Response {
    let (consent, created) = simulator.put_consent(input);
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (code, Json(consent)).into_response()
}

async fn set_consent_status(
    State(simulator): State<Simulator>,
    Tenant(tenant): Tenant,
    Body(input): Body<ConsentStatusInput>,
) -> Result<Json<backend::BackendConsent>, ApiError> {
    Ok(Json(simulator.set_consent_status(&tenant, input.status)?))
}

async fn put_civic_address(
    State(simulator): State<Simulator>,
    Tenant(tenant): Tenant,
    Body(input): Body<CivicAddressInput>,
) -> (StatusCode, Json<backend::BackendCivicAddress>) {
    (
        StatusCode::CREATED,
        Json(simulator.put_civic_address(&tenant, input)),
    )
}

async fn remove_civic_address(
    State(simulator): State<Simulator>,
    Tenant(tenant): Tenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    simulator.remove_civic_address(&tenant, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn faults(State(simulator): State<Simulator>) -> Json<Faults> {
    Json(simulator.faults())
}

async fn set_faults(
    State(simulator): State<Simulator>,
    Body(faults): Body<Faults>,
) -> Result<Json<Faults>, ApiError> {
    simulator.set_faults(faults)?;
    Ok(Json(simulator.faults()))
}

async fn settings(State(simulator): State<Simulator>) -> Json<RuntimeSettings> {
    Json(simulator.settings())
}

async fn set_settings(
    State(simulator): State<Simulator>,
    Body(settings): Body<RuntimeSettings>,
) -> Json<RuntimeSettings> {
    simulator.set_settings(settings);
    Json(simulator.settings())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LedgerQuery {
    /// Only the entries after this sequence.
    #[serde(default)]
    since: u64,
}

async fn ledger(
    State(simulator): State<Simulator>,
    Params(query): Params<LedgerQuery>,
) -> Json<List<crate::model::LedgerEntry>> {
    Json(List {
        value: simulator.ledger(query.since),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NumbersQuery {
    tenant_id: Option<TenantId>,
}

async fn numbers(
    State(simulator): State<Simulator>,
    Params(query): Params<NumbersQuery>,
) -> Json<List<crate::model::HeldNumber>> {
    Json(List {
        value: simulator.numbers(query.tenant_id.as_ref()),
    })
}

async fn stats(State(simulator): State<Simulator>) -> Json<crate::model::Stats> {
    Json(simulator.stats())
}

async fn reset(State(simulator): State<Simulator>) -> StatusCode {
    simulator.reset();
    StatusCode::NO_CONTENT
}
