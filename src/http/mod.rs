//! The HTTP service: router, shared state, handlers. Handlers stay thin: they read the request,
//! call the domain (pipeline, store) and map errors in one place (`error`).

mod embeddings;
pub mod error;
mod health;
mod middleware;
mod multipart;
pub mod openapi;
pub mod protect;
mod reports;
mod search;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::jobs::JobStats;
use crate::reports::ReportService;
use crate::search::SearchService;
use crate::telemetry::prometheus::HttpMetrics;

pub use error::ApiError;
pub use multipart::PhotoLimits;
pub use protect::{Caller, Protection};

use crate::pipeline::Pipeline;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Photos → embeddings.
    pub pipeline: Pipeline,
    /// Reports and their photos.
    pub reports: ReportService,
    /// Search by photo, matches between reports.
    pub search: SearchService,
    /// Upload limits (per photo, photos per `/v1/embeddings` request).
    pub photo_limits: PhotoLimits,
    /// Most photos per report.
    pub max_report_photos: usize,
    /// This process's job workers' counters, and how many workers run.
    pub job_stats: Option<(Arc<JobStats>, usize)>,
    /// When the service started.
    pub started: Instant,
    /// Requests by route, method and status.
    pub http_metrics: Arc<HttpMetrics>,
    /// API keys and rate limits.
    pub protection: Arc<Protection>,
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    // Room for every allowed photo plus the multipart framing; beyond it the body is cut off (413).
    let body_limit = state
        .photo_limits
        .max_bytes
        .saturating_mul(state.photo_limits.max_count)
        .saturating_add(64 * 1024);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/status", get(health::status))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/reports", post(reports::create).get(reports::list))
        .route(
            "/v1/reports/{id}",
            get(reports::get)
                .patch(reports::update)
                .delete(reports::delete),
        )
        .route("/v1/reports/{id}/matches", get(search::matches))
        .route("/v1/search", post(search::search))
        .route("/v1/photos/{id}", get(reports::photo))
        .route("/v1/photos/{id}/thumbnail", get(reports::thumbnail))
        .route("/v1/jobs/{id}", get(reports::job))
        .route("/v1/usage", get(reports::usage))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.protection.clone(),
            protect::protect,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            middleware::observe,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
