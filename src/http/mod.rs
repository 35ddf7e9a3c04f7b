//! The HTTP service: router, shared state, handlers. Handlers stay thin: they read the request,
//! call the domain (pipeline, store) and map errors in one place (`error`).

pub mod body;
mod embeddings;
pub mod error;
mod error_code;
mod health;
mod middleware;
mod multipart;
pub mod openapi;
pub mod protect;
mod reports;
mod search;
pub mod server;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};

use crate::jobs::WorkerStats;
use crate::limits::ByteBudget;
use crate::reports::ReportService;
use crate::search::SearchService;
use crate::telemetry::prometheus::HttpMetrics;

pub use error::{ApiError, ErrorCode};
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
    /// This process's job workers' counters (none without workers).
    pub job_stats: Option<WorkerStats>,
    /// When the service started.
    pub started: Instant,
    /// Requests by route, method and status.
    pub http_metrics: Arc<HttpMetrics>,
    /// API keys and rate limits.
    pub protection: Arc<Protection>,
    /// Memory for request bodies: reserved before a body is read.
    pub body_budget: Arc<ByteBudget>,
    /// The connection loop's counters (shared with `server::serve`).
    pub connections: Arc<server::ConnectionStats>,
    /// Job counts across all processes, read at most once a second.
    pub job_counts: Arc<health::JobCountsCache>,
}

/// Body limit of routes that take no body (or a small JSON one).
const SMALL_BODY: usize = 32 * 1024;

/// The service's routes, `/metrics` included.
pub fn router(state: AppState) -> Router {
    routes(state, true)
}

/// `/metrics` alone, for an operators' listener of its own (`--metrics-listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            middleware::observe,
        ))
        .with_state(state)
}

/// Every route; `/metrics` only when `with_metrics`.
pub fn routes(state: AppState, with_metrics: bool) -> Router {
    // Each body route is limited to what it can hold: its photos and the multipart framing.
    let photos = state.photo_limits;
    let embeddings_max = photos.max_bytes.saturating_mul(photos.max_count);
    let report_max = photos.max_bytes.saturating_mul(state.max_report_photos);
    let limit = |bytes: usize| bytes.saturating_add(body::MULTIPART_OVERHEAD);
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/status", get(health::status))
        .route(
            "/v1/embeddings",
            body::with_body_limit(post(embeddings::create), limit(embeddings_max)),
        )
        .route(
            "/v1/reports",
            body::with_body_limit(post(reports::create), limit(report_max)).get(reports::list),
        )
        .route(
            "/v1/reports/{id}",
            body::with_body_limit(patch(reports::update), SMALL_BODY)
                .get(reports::get)
                .delete(reports::delete),
        )
        .route("/v1/reports/{id}/matches", get(search::matches))
        .route(
            "/v1/search",
            body::with_body_limit(post(search::search), limit(photos.max_bytes)),
        )
        .route("/v1/photos/{id}", get(reports::photo))
        .route("/v1/photos/{id}/thumbnail", get(reports::thumbnail))
        .route("/v1/jobs/{id}", get(reports::job))
        .route("/v1/usage", get(reports::usage))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs));
    let routes = if with_metrics {
        routes.route("/metrics", get(health::metrics))
    } else {
        routes
    };
    routes
        .layer(DefaultBodyLimit::max(SMALL_BODY))
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
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}
