//! Liveness, readiness and status.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::server::ConnectionSnapshot;
use crate::inference::GateSnapshot;
use crate::jobs::{JobStatsSnapshot, snapshot};
use crate::limits::BudgetSnapshot;
use crate::limits::LimitSnapshot;
use crate::rate_limit::{RateLimitSnapshot, RouteClass};
use crate::store::{JobCounts, Store};
use crate::telemetry::prometheus::Exposition;

/// How long job counts are reused before the database is asked again.
const JOB_COUNTS_TTL: Duration = Duration::from_secs(1);

/// Job counts across all processes, read from the database at most once a second and by one
/// request at a time, however many scrapes and status calls arrive: they cannot tie up the pool.
#[derive(Debug, Default)]
pub struct JobCountsCache {
    /// The last answer and when it was read (`None` inside: the database did not answer).
    last: Mutex<Option<(Instant, Option<JobCounts>)>>,
    /// Held while one request reads fresh counts.
    refreshing: tokio::sync::Mutex<()>,
}

impl JobCountsCache {
    /// Counts at most a second old; while another request reads them, the previous ones.
    pub async fn get(&self, store: &Store) -> Option<JobCounts> {
        if let Some((at, counts)) = self.latest()
            && at.elapsed() < JOB_COUNTS_TTL
        {
            return counts;
        }
        let Ok(_refreshing) = self.refreshing.try_lock() else {
            return self.latest().and_then(|(_, counts)| counts);
        };
        let counts = store.job_counts().await.ok();
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), counts.clone()));
        counts
    }

    /// The last answer read, and when.
    fn latest(&self) -> Option<(Instant, Option<JobCounts>)> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Object)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and the model is loaded; 503 with the reason otherwise.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, description = "The database answers and the model is loaded", body = Object),
        (status = 503, description = "Not ready (`not_ready`), with the failing check", body = crate::http::openapi::ErrorBody)))]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let model = app.pipeline.gate().embedder().manifest();
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
    decode: LimitSnapshot,
    uploads: LimitSnapshot,
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

/// `GET /v1/status`: the service's load right now.
#[utoipa::path(get, path = "/v1/status", operation_id = "get_status", tag = "operations",
    responses((status = 200, description = "Load right now: gate permits and waiters, estimated wait, upload slots, jobs by state and the oldest queued job's age, database pool, rate limits, model, uptime and version", body = Object),
        (status = 401, description = "API key missing or invalid (with API keys configured)", body = crate::http::openapi::ErrorBody), (status = 429, description = "Rate limited (`rate_limited`): see Retry-After and RateLimit-* headers", body = crate::http::openapi::ErrorBody)))]
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
        body_memory: app.body_budget.snapshot(),
        connections: app.connections.snapshot(),
        jobs: JobsStatus {
            queue: app.job_counts.get(&app.store).await,
            workers: app
                .job_stats
                .as_ref()
                .map(|(stats, workers)| snapshot(stats, *workers)),
        },
        database: DatabaseStatus {
            connections,
            in_use: (connections as usize).saturating_sub(idle),
            idle,
        },
        protection: ProtectionStatus {
            api_keys: app.protection.keys.enabled(),
            tenants: app.protection.keys.tenants().count(),
            rate_limits: app.protection.limits.snapshot(),
            quota_rejected_total: app.reports.quota_rejections(),
        },
    })
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(get, path = "/metrics", operation_id = "get_metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(app): State<AppState>) -> impl axum::response::IntoResponse {
    let mut out = Exposition::default();
    let gate = app.pipeline.gate().snapshot();
    out.single(
        "lookalike_uptime_seconds",
        "gauge",
        "Seconds since the service started.",
        app.started.elapsed().as_secs_f64(),
    );
    out.single(
        "lookalike_gate_permits",
        "gauge",
        "Model runs allowed at once.",
        gate.permits as f64,
    );
    out.single(
        "lookalike_gate_permits_in_use",
        "gauge",
        "Gate permits held now.",
        gate.permits_in_use as f64,
    );
    out.help(
        "lookalike_gate_waiting",
        "gauge",
        "Requests waiting for the model, by priority.",
    );
    out.sample(
        "lookalike_gate_waiting",
        &[("priority", "interactive")],
        gate.waiting_interactive as f64,
    );
    out.sample(
        "lookalike_gate_waiting",
        &[("priority", "background")],
        gate.waiting_background as f64,
    );
    out.help(
        "lookalike_gate_admitted",
        "gauge",
        "Requests admitted to the gate (decoding, waiting or running), by priority.",
    );
    out.sample(
        "lookalike_gate_admitted",
        &[("priority", "interactive")],
        gate.admitted_interactive as f64,
    );
    out.sample(
        "lookalike_gate_admitted",
        &[("priority", "background")],
        gate.admitted_background as f64,
    );
    out.single(
        "lookalike_gate_runs_total",
        "counter",
        "Model runs.",
        gate.runs_total as f64,
    );
    out.single(
        "lookalike_gate_images_total",
        "counter",
        "Photos embedded.",
        gate.images_total as f64,
    );
    out.single(
        "lookalike_gate_failed_runs_total",
        "counter",
        "Model runs that failed.",
        gate.failed_runs_total as f64,
    );
    out.single(
        "lookalike_gate_cancelled_total",
        "counter",
        "Requests whose caller left before their run.",
        gate.cancelled_total as f64,
    );
    out.help(
        "lookalike_gate_rejections_total",
        "counter",
        "Requests the gate turned away, by reason.",
    );
    out.sample(
        "lookalike_gate_rejections_total",
        &[("reason", "queue_full")],
        gate.rejected_queue_full_total as f64,
    );
    out.sample(
        "lookalike_gate_rejections_total",
        &[("reason", "wait_timeout")],
        gate.rejected_wait_timeout_total as f64,
    );
    out.help(
        "lookalike_gate_wait_seconds",
        "histogram",
        "Wait for a model run, by priority.",
    );
    out.histogram(
        "lookalike_gate_wait_seconds",
        &[("priority", "interactive")],
        &gate.wait_seconds_interactive,
    );
    out.histogram(
        "lookalike_gate_wait_seconds",
        &[("priority", "background")],
        &gate.wait_seconds_background,
    );
    out.help(
        "lookalike_gate_run_seconds",
        "histogram",
        "Duration of model runs.",
    );
    out.histogram("lookalike_gate_run_seconds", &[], &gate.run_seconds);
    out.help(
        "lookalike_gate_batch_size",
        "histogram",
        "Photos per model run.",
    );
    out.histogram("lookalike_gate_batch_size", &[], &gate.batch_size);
    for (name, limit) in [
        ("decode", app.pipeline.decode_limit().snapshot()),
        ("upload", app.reports.upload_limit().snapshot()),
    ] {
        let labels = [("limit", name)];
        out.help(
            &format!("lookalike_{name}_slots_in_use"),
            "gauge",
            "Slots taken now.",
        );
        out.sample(
            &format!("lookalike_{name}_slots_in_use"),
            &labels,
            limit.in_use as f64,
        );
        out.help(
            &format!("lookalike_{name}_waiting"),
            "gauge",
            "Callers waiting for a slot.",
        );
        out.sample(
            &format!("lookalike_{name}_waiting"),
            &labels,
            limit.waiting as f64,
        );
        out.help(
            &format!("lookalike_{name}_rejections_total"),
            "counter",
            "Callers turned away.",
        );
        out.sample(
            &format!("lookalike_{name}_rejections_total"),
            &labels,
            limit.rejected_total as f64,
        );
    }
    if let Some(queue) = app.job_counts.get(&app.store).await {
        out.help(
            "lookalike_jobs",
            "gauge",
            "Unfinished and failed jobs, by state (all processes; done jobs are pruned).",
        );
        for (state, n) in [
            ("queued", queue.queued),
            ("running", queue.running),
            ("failed", queue.failed),
        ] {
            out.sample("lookalike_jobs", &[("state", state)], n as f64);
        }
        out.single(
            "lookalike_jobs_oldest_queued_age_seconds",
            "gauge",
            "Age of the oldest queued job.",
            queue.oldest_queued_age_seconds,
        );
    }
    if let Some((stats, workers)) = &app.job_stats {
        let s = snapshot(stats, *workers);
        out.single(
            "lookalike_job_workers",
            "gauge",
            "Job workers in this process.",
            s.workers as f64,
        );
        out.help(
            "lookalike_job_outcomes_total",
            "counter",
            "Job attempts of this process's workers, by outcome.",
        );
        for (outcome, n) in [
            ("done", s.done_total),
            ("retried", s.retried_total),
            ("failed", s.failed_total),
            ("deferred", s.deferred_total),
        ] {
            out.sample(
                "lookalike_job_outcomes_total",
                &[("outcome", outcome)],
                n as f64,
            );
        }
    }
    app.connections.snapshot().render(&mut out);
    let budget = app.body_budget.snapshot();
    out.single(
        "lookalike_body_memory_bytes",
        "gauge",
        "Memory for request bodies in all.",
        budget.total_bytes as f64,
    );
    out.single(
        "lookalike_body_memory_reserved_bytes",
        "gauge",
        "Memory reserved now for request bodies being read.",
        budget.reserved_bytes as f64,
    );
    out.single(
        "lookalike_body_memory_waiting",
        "gauge",
        "Requests waiting for body memory.",
        budget.waiting as f64,
    );
    out.single(
        "lookalike_body_memory_rejections_total",
        "counter",
        "Requests refused (503) for want of body memory.",
        budget.rejected_total as f64,
    );
    let (connections, idle) = app.store.pool_usage();
    out.single(
        "lookalike_db_connections",
        "gauge",
        "Open database connections.",
        f64::from(connections),
    );
    out.single(
        "lookalike_db_connections_idle",
        "gauge",
        "Idle database connections.",
        idle as f64,
    );
    let limits = app.protection.limits.snapshot();
    out.help(
        "lookalike_rate_limited_total",
        "counter",
        "Requests refused with 429 by the rate limits, by route class.",
    );
    for (class, n) in RouteClass::ALL.iter().zip(limits.rejected_total) {
        out.sample(
            "lookalike_rate_limited_total",
            &[("class", class.as_str())],
            n as f64,
        );
    }
    out.single(
        "lookalike_rate_limit_tracked_clients",
        "gauge",
        "Clients (addresses and keys) the rate limiters track now.",
        limits.tracked_clients as f64,
    );
    out.single(
        "lookalike_quota_rejected_total",
        "counter",
        "Uploads refused because they did not fit their tenant's storage quota.",
        app.reports.quota_rejections() as f64,
    );
    app.http_metrics.render(&mut out);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out.finish(),
    )
}
