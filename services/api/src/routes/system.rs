//! Health and self-description: `/healthz`, `/metrics`, `/openapi.json` and `/asyncapi.yaml`,
//! open to all.

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
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/asyncapi.yaml", get(asyncapi))
}

/// 200 once nmp serves and reaches its database; 503 otherwise.
async fn healthz(State(state): State<AppState>) -> Response {
    match sqlx::query("SELECT 1")
        .execute(state.commands.store().pool())
        .await
    {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check cannot reach the database");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// Prometheus text exposition of the components' metrics.
async fn metrics(State(state): State<AppState>) -> Response {
    let mut page = String::new();
    for render in &state.metrics {
        render(&mut page);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page,
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
