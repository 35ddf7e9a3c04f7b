//! Liveness, readiness and status.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::inference::GateSnapshot;
use crate::jobs::{JobStatsSnapshot, snapshot};
use crate::limits::LimitSnapshot;
use crate::store::JobCounts;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and the model is loaded; 503 with the reason otherwise.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let model = app.pipeline.gate().embedder().manifest();
    match app.store.ping().await {
        Ok(()) => Ok(Json(json!({
            "status": "ready",
            "checks": { "database": "ok", "model": format!("{} {}", model.name, model.version) },
        }))),
        Err(e) => Err(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string()).with(
                "checks",
                json!({ "database": e.to_string(), "model": "ok" }),
            ),
        ),
    }
}

/// `GET /v1/status` body.
#[derive(Debug, Serialize)]
pub struct Status {
    version: &'static str,
    uptime_seconds: u64,
    model: ModelStatus,
    gate: GateSnapshot,
    decode: LimitSnapshot,
    uploads: LimitSnapshot,
    jobs: JobsStatus,
    database: DatabaseStatus,
}

#[derive(Debug, Serialize)]
struct JobsStatus {
    /// Jobs by state across all processes (null while the database is unreachable).
    queue: Option<JobCounts>,
    /// This process's workers.
    workers: Option<JobStatsSnapshot>,
}

#[derive(Debug, Serialize)]
struct ModelStatus {
    name: String,
    version: String,
    dim: usize,
}

#[derive(Debug, Serialize)]
struct DatabaseStatus {
    connections: u32,
    idle: usize,
}

/// `GET /v1/status`: the service's load right now.
pub async fn status(State(app): State<AppState>) -> Json<Status> {
    let manifest = app.pipeline.gate().embedder().manifest();
    let (connections, idle) = app.store.pool_usage();
    Json(Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: app.started.elapsed().as_secs(),
        model: ModelStatus {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            dim: manifest.dim,
        },
        gate: app.pipeline.gate().snapshot(),
        decode: app.pipeline.decode_limit().snapshot(),
        uploads: app.reports.upload_limit().snapshot(),
        jobs: JobsStatus {
            queue: app.store.job_counts().await.ok(),
            workers: app
                .job_stats
                .as_ref()
                .map(|(stats, workers)| snapshot(stats, *workers)),
        },
        database: DatabaseStatus { connections, idle },
    })
}
