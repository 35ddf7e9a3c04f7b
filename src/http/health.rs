//! Liveness, readiness and status.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::protect::Operator;
use super::server::ConnectionSnapshot;
use crate::capacity::BudgetSnapshot;
use crate::capacity::SlotsSnapshot;
use crate::inference::{Device, GateSnapshot};
use crate::jobs::{JobStatsSnapshot, WorkerStats};
use crate::rate_limit::RateLimitSnapshot;
use crate::store::JobCounts;
use crate::telemetry::prometheus::Exposition;

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Object)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and the model is loaded; 503 with the reason otherwise.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, description = "The database answers and the model is loaded", body = Object),
        (status = 503, description = "Not ready (`not_ready`), with the failing check", body = crate::http::error::ErrorBody)))]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let model = app.pipeline.gate().model().manifest();
    match app.store.ping().await {
        Ok(()) => Ok(Json(json!({
            "status": "ready",
            "checks": { "database": "ok", "model": format!("{} {}", model.name, model.version) },
        }))),
        Err(e) => Err(
            ApiError::new(ErrorCode::NotReady, "the database is unavailable")
                .with(
                    "checks",
                    json!({ "database": "unavailable", "model": "ok" }),
                )
                .caused_by(e),
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
    decode: SlotsSnapshot,
    uploads: SlotsSnapshot,
    /// Memory reserved for request bodies being read.
    body_memory: BudgetSnapshot,
    /// Client connections.
    connections: ConnectionSnapshot,
    jobs: JobsStatus,
    database: DatabaseStatus,
    protection: ProtectionStatus,
}

#[derive(Debug, Serialize)]
struct ProtectionStatus {
    /// Whether requests need an API key.
    api_keys: bool,
    /// Tenants (one per key).
    tenants: usize,
    rate_limits: RateLimitSnapshot,
    /// Uploads refused for their tenant's storage quota.
    quota_rejected_total: u64,
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
    /// Where it runs: `cpu` or `cuda:N`.
    device: Device,
    /// ONNX Runtime sessions (one per gate permit).
    sessions: usize,
    /// Runs made, by the batch size actually run (after padding on a GPU).
    batch_sizes_run: Vec<BatchSizeRuns>,
}

#[derive(Debug, Serialize)]
struct BatchSizeRuns {
    size: usize,
    runs: u64,
}

#[derive(Debug, Serialize)]
struct DatabaseStatus {
    /// Open connections.
    connections: u32,
    /// Of those, running a query or held by a transaction.
    in_use: usize,
    /// Of those, idle in the pool.
    idle: usize,
}

/// What anyone may know of the service: what it runs, not how loaded it is.
#[derive(Debug, Serialize)]
struct PublicStatus {
    version: &'static str,
    model: PublicModel,
    /// Why the load figures are not here.
    detail: &'static str,
}

#[derive(Debug, Serialize)]
struct PublicModel {
    name: String,
    version: String,
    dim: usize,
}

/// `GET /v1/status`: the service's load right now, for operators (a client on this host, or one
/// with the operator key; everyone on the operators' listener); the version and model for anyone
/// else.
#[utoipa::path(get, path = "/v1/status", operation_id = "get_status", tag = "operations",
    responses((status = 200, description = "For operators (a client on the service's host, `Authorization: Bearer <operator key>`, or the operators' listener): load right now: gate permits and waiters, estimated wait, upload slots, jobs by state and the oldest queued job's age, database pool, rate limits, model, uptime and version. For anyone else: the version and the model, and `detail` saying why no more", body = Object),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited)))]
pub async fn status(State(app): State<AppState>, Operator(operator): Operator) -> Response {
    if operator {
        return operators_status(State(app)).await.into_response();
    }
    let manifest = app.pipeline.gate().model().manifest();
    Json(PublicStatus {
        version: env!("CARGO_PKG_VERSION"),
        model: PublicModel {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            dim: manifest.dim,
        },
        detail: "load figures are for operators: from the service's host, with the operator key \
                 (Authorization: Bearer), or on the operators' listener (--metrics-listen)",
    })
    .into_response()
}

/// The detailed `/v1/status`, for operators.
pub async fn operators_status(State(app): State<AppState>) -> Json<Status> {
    let model = app.pipeline.gate().model();
    let manifest = model.manifest();
    let gate = app.pipeline.gate().snapshot();
    let pool = app.store.pool_usage();
    Json(Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: app.started.elapsed().as_secs(),
        model: ModelStatus {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            dim: manifest.dim,
            device: model.device(),
            sessions: gate.permits,
            batch_sizes_run: model
                .runs_by_batch_size()
                .into_iter()
                .map(|(size, runs)| BatchSizeRuns { size, runs })
                .collect(),
        },
        gate,
        decode: app.pipeline.decode_slots().snapshot(),
        uploads: app.reports.upload_slots().snapshot(),
        body_memory: app.body_budget.snapshot(),
        connections: app.connections.snapshot(),
        jobs: JobsStatus {
            queue: app.job_counts.get(&app.store).await,
            workers: app.job_stats.as_ref().map(WorkerStats::snapshot),
        },
        database: DatabaseStatus {
            connections: pool.open,
            in_use: (pool.open as usize).saturating_sub(pool.idle),
            idle: pool.idle,
        },
        protection: ProtectionStatus {
            api_keys: app.protection.keys.enabled(),
            tenants: app.protection.keys.tenants().count(),
            rate_limits: app.protection.limits.snapshot(),
            quota_rejected_total: app.reports.quota_rejections(),
        },
    })
}

/// `GET /metrics`: Prometheus text, for operators: on the public listener a client on the
/// service's host or one with the operator key; everyone on the operators' listener.
#[utoipa::path(get, path = "/metrics", operation_id = "get_metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 403, description = "Not an operator (`operator_only`): read it from the service's host, with `Authorization: Bearer <operator key>`, or on the operators' listener (`--metrics-listen`)", body = crate::http::error::ErrorBody)))]
pub async fn metrics(State(app): State<AppState>, Operator(operator): Operator) -> Response {
    if !operator {
        return ApiError::new(
            ErrorCode::OperatorOnly,
            "metrics are for operators: from the service's host, with the operator key \
             (Authorization: Bearer), or on the operators' listener (--metrics-listen)",
        )
        .into_response();
    }
    operators_metrics(State(app)).await.into_response()
}

/// `/metrics` for operators.
pub async fn operators_metrics(State(app): State<AppState>) -> impl IntoResponse {
    let mut out = Exposition::default();
    out.single(
        "lookalike_uptime_seconds",
        "gauge",
        "Seconds since the service started.",
        app.started.elapsed().as_secs_f64(),
    );
    app.pipeline.gate().snapshot().render(&mut out);
    crate::inference::render_model(app.pipeline.gate().model().as_ref(), &mut out);
    app.pipeline
        .decode_slots()
        .snapshot()
        .render("decode", &mut out);
    app.reports
        .upload_slots()
        .snapshot()
        .render("upload", &mut out);
    app.reports
        .check_slots()
        .snapshot()
        .render("check", &mut out);
    if let Some(queue) = app.job_counts.get(&app.store).await {
        queue.render(&mut out);
    }
    if let Some(workers) = &app.job_stats {
        workers.snapshot().render(&mut out);
    }
    app.search.sources().render(&mut out);
    app.connections.snapshot().render(&mut out);
    app.body_budget.snapshot().render(&mut out);
    app.sweeps.render(&mut out);
    app.store.pool_usage().render(&mut out);
    app.protection.limits.snapshot().render(&mut out);
    app.reports.render_rejections(&mut out);
    app.events.stats().render(&mut out);
    app.webhooks.stats().render(&mut out);
    app.http_metrics.render(&mut out);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out.finish(),
    )
}
