//! Ops endpoints (contract §8): no authentication, no readiness gate.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, Routes};

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `healthy` while the process answers.
    #[schema(example = "healthy")]
    pub status: &'static str,
    /// Always `wcp`.
    #[schema(example = "wcp")]
    pub service: &'static str,
    /// The server's semver.
    pub version: &'static str,
    /// Policies with a serving version.
    pub policies_loaded: usize,
}

/// `GET /ready` once ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
}

/// GET /health
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "The server is up", body = Health)))]
pub async fn get_health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "healthy",
        service: "wcp",
        version: env!("CARGO_PKG_VERSION"),
        policies_loaded: state.policies.load().serving_count(),
    })
}

/// GET /ready
#[utoipa::path(get, path = "/ready", tag = "ops", responses(
    (status = 200, description = "Policies are loaded; the API serves", body = Ready),
    (status = 503, description = "Still starting (NOT_READY), or the database cannot be reached (DATABASE_UNAVAILABLE); Retry-After: 1", body = super::error::ErrorBody),
))]
pub async fn get_ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    if !state.is_ready() {
        return Err(ApiError::NotReady);
    }
    // A replica that cannot reach its database must leave the balancer's
    // rotation: every gate would fail.
    state
        .store
        .read_async(|_| Ok(()))
        .await
        .map_err(|error| ApiError::from_store("Failed to reach the database", error))?;
    Ok(Json(Ready { status: "ready" }))
}

/// GET /metrics
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain; version=0.0.4"),
))]
pub async fn get_metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Workflow counts come from the store at scrape time, so they are
    // right after a restart too. A failed count leaves the last values.
    match state.store.read_async(|conn| conn.count_by_status()).await {
        Ok(counts) => state.metrics.workflows(&counts),
        Err(error) => tracing::warn!(%error, "counting workflows for /metrics failed"),
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}

/// The ops routes.
pub fn routes() -> Routes {
    Routes::new()
        .route::<__path_get_health, _, _>(get_health)
        .route::<__path_get_ready, _, _>(get_ready)
        .route::<__path_get_metrics, _, _>(get_metrics)
}
