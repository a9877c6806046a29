//! The HTTP side of nmp's metrics (`nmp_metrics`): every request counted and timed by its
//! matched route, and the connection pools measured when `/metrics` is scraped.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// The `route` label of requests that matched no route (answered by the fallback): one value
/// for every unknown path, so that scanners cannot grow the label's values.
pub const UNMATCHED: &str = "unmatched";

/// Counts and times each request by method, matched route (its template, such as
/// `/accounts/{name}`, never the path itself) and status, to the response's head.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_string(), |path| path.as_str().to_string());
    let response = next.run(request).await;
    nmp_metrics::http_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Records a connection pool's figures as they stand now.
pub fn record_pool(name: &str, pool: &sqlx::PgPool) {
    let open = u64::from(pool.size());
    let idle = pool.num_idle() as u64;
    let max = u64::from(pool.options().get_max_connections());
    nmp_metrics::db_pool(name, open.saturating_sub(idle), idle, max);
}
