//! What every handler can reach: the service's parts, shared by all requests.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRef;

use super::job_counts::JobCountsCache;
use super::multipart::PhotoCaps;
use super::protect::Protection;
use super::server::ConnectionStats;
use crate::capacity::ByteBudget;
use crate::events::EventHub;
use crate::jobs::WorkerStats;
use crate::pipeline::Pipeline;
use crate::reports::ReportService;
use crate::search::SearchService;
use crate::store::Store;
use crate::sweep::SweepTotals;
use crate::telemetry::prometheus::HttpMetrics;
use crate::webhooks::Webhooks;

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
    /// Caps on the photos of one request (bytes per photo, photos per `/v1/embeddings` request).
    pub photo_limits: PhotoCaps,
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
    pub connections: Arc<ConnectionStats>,
    /// Job counts across all processes, read at most once a second.
    pub job_counts: Arc<JobCountsCache>,
    /// What this process's sweeps of the photo store found.
    pub sweeps: Arc<SweepTotals>,
    /// The live event streams of this process.
    pub events: Arc<EventHub>,
    /// Webhook deliveries by this process's job workers.
    pub webhooks: Webhooks,
}

impl FromRef<AppState> for Arc<Protection> {
    fn from_ref(app: &AppState) -> Self {
        app.protection.clone()
    }
}
