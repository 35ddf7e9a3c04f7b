//! The HTTP service: router, shared state, handlers. Handlers stay thin: they read the request,
//! call the domain (pipeline, store) and map errors in one place (`error`).

mod embeddings;
pub mod error;
mod health;
mod multipart;

use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use error::ApiError;
pub use multipart::PhotoLimits;

use crate::pipeline::Pipeline;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Photos → embeddings.
    pub pipeline: Pipeline,
    /// Upload limits.
    pub photo_limits: PhotoLimits,
    /// When the service started.
    pub started: Instant,
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
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
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
