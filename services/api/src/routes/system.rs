//! Health and self-description: `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and
//! `/asyncapi.yaml`, open to all.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/asyncapi.yaml", get(asyncapi))
}

/// What `/readyz` answers: whether nmp is ready to take work, and a JSON body saying what was
/// checked (nmp's runtime implements it).
pub trait Readiness: Send + Sync {
    fn check(&self) -> futures::future::BoxFuture<'_, ReadinessReport>;
}

/// The answer of a [`Readiness`] check.
#[derive(Debug, Clone)]
pub struct ReadinessReport {
    /// 200 when true, 503 when false.
    pub ready: bool,
    /// What was checked, and what is not ready.
    pub body: serde_json::Value,
}

/// Liveness: 200 while the process serves HTTP. Touches neither the database nor NATS, so an
/// orchestrator does not restart nmp for an outage that a restart cannot mend (`/readyz` says
/// what is unreachable).
async fn healthz() -> Response {
    (StatusCode::OK, "ok").into_response()
}

/// Readiness: 200 when nmp can take work, 503 naming what is not ready; a JSON body either way.
async fn readyz(State(state): State<AppState>) -> Response {
    let report = match &state.readiness {
        Some(readiness) => readiness.check().await,
        None => {
            let database = sqlx::query("SELECT 1")
                .execute(state.commands.store().pool())
                .await;
            let ready = database.is_ok();
            let postgres = match database {
                Ok(_) => serde_json::json!({"ready": true}),
                Err(error) => serde_json::json!({"ready": false, "error": error.to_string()}),
            };
            let not_ready: Vec<&str> = if ready { vec![] } else { vec!["postgres"] };
            ReadinessReport {
                ready,
                body: serde_json::json!({
                    "ready": ready,
                    "notReady": not_ready,
                    "checks": {"postgres": postgres},
                }),
            }
        }
    };
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report.body)).into_response()
}

/// Prometheus text exposition of nmp's metrics (`nmp_metrics`): everything this process
/// recorded, and its connection pools as they stand now.
async fn metrics(State(state): State<AppState>) -> Response {
    crate::metrics::record_pool("main", state.commands.store().pool());
    crate::metrics::record_pool("exports", &state.exports.pool);
    (
        [(axum::http::header::CONTENT_TYPE, nmp_metrics::CONTENT_TYPE)],
        nmp_metrics::render(),
    )
        .into_response()
}

/// The AsyncAPI description of the NATS events and request-reply API.
async fn asyncapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        include_str!("../../../../docs/asyncapi.yaml"),
    )
        .into_response()
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::ApiDoc::openapi()).into_response()
}
