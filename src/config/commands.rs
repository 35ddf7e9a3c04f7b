//! One configuration per command; `serve`, `work` and `import` share one core.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::*;

/// The parts `serve`, `work` and `import` all run on: the database, the model behind its gate,
/// photo decoding and uploads, the photo store, the job queue and search. `Parts::open` opens
/// them the one way every command does.
#[derive(Debug, Clone, Args, Serialize)]
pub struct CoreConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub model: ModelConfig,
    #[command(flatten)]
    pub gate: GateConfig,
    #[command(flatten)]
    pub imaging: ImagingConfig,
    #[command(flatten)]
    pub uploads: UploadConfig,
    #[command(flatten)]
    pub storage: PhotoStoreConfig,
    #[command(flatten)]
    pub jobs: JobsConfig,
    #[command(flatten)]
    pub search: SearchConfig,
}

/// `lookalike serve`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ServeConfig {
    /// Address the HTTP service listens on.
    #[arg(long, env = "LOOKALIKE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    #[serde(flatten)]
    pub core: CoreConfig,
    #[command(flatten)]
    pub access: AccessConfig,
    #[command(flatten)]
    pub rate_limits: RateLimitConfig,
    #[command(flatten)]
    pub edge: EdgeConfig,
    #[command(flatten)]
    pub open_limits: OpenLimitsConfig,
    #[command(flatten)]
    pub sweep: SweepConfig,
    #[command(flatten)]
    pub events: EventsConfig,
    #[command(flatten)]
    pub webhooks: WebhookConfig,
    /// Serve `/metrics` on this address only (for operators), instead of the public listener.
    #[arg(long, env = "LOOKALIKE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    #[arg(long, env = "LOOKALIKE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

/// `lookalike work`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct WorkConfig {
    #[command(flatten)]
    #[serde(flatten)]
    pub core: CoreConfig,
    #[command(flatten)]
    pub sweep: SweepConfig,
    #[command(flatten)]
    pub webhook_delivery: WebhookDeliveryConfig,
    /// Serve `/metrics` (the workers', the gate's, the jobs') on this address; none by default.
    #[arg(long, env = "LOOKALIKE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds running jobs get to finish after a shutdown signal.
    #[arg(long, env = "LOOKALIKE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

/// `lookalike import DIR`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ImportConfig {
    /// Folder of photos (JPEG, PNG, WebP); one report per photo, titled by its file name.
    pub dir: PathBuf,
    /// Kind of the reports (lost, found, sighting).
    #[arg(long, default_value = "found")]
    pub kind: String,
    /// Species of the reports (dog, cat, other).
    #[arg(long, default_value = "other")]
    pub species: String,
    /// Only create the reports and their jobs; a running `serve` embeds them.
    #[arg(long)]
    pub no_embed: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub core: CoreConfig,
}

/// `lookalike sweep`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct SweepCliConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub storage: PhotoStoreConfig,
    #[command(flatten)]
    pub imaging: ImagingConfig,
    #[command(flatten)]
    pub sweep: SweepConfig,
    /// Attempts of the purge jobs the sweep queues.
    #[arg(
        long = "job-max-attempts",
        env = "LOOKALIKE_JOB_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
}

/// `lookalike drop-model`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct DropModelConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The model's name (as `lookalike models` lists it).
    #[arg(long)]
    pub name: String,
    /// The model's version.
    #[arg(long)]
    pub version: String,
}

/// `lookalike search FILE`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct SearchCliConfig {
    /// The query photo.
    pub file: PathBuf,
    /// Results to print.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Only reports of this kind (lost, found, sighting).
    #[arg(long)]
    pub kind: Option<String>,
    /// Most photos per report (as the service is configured).
    #[arg(long, env = "LOOKALIKE_MAX_REPORT_PHOTOS", default_value_t = 5)]
    pub max_report_photos: usize,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub model: ModelConfig,
    #[command(flatten)]
    pub imaging: ImagingConfig,
    #[command(flatten)]
    pub search: SearchConfig,
}

/// `lookalike migrate`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct MigrateConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
}

/// `lookalike reindex`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ReindexConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The ONNX model file whose embeddings should exist (its manifest names and versions it).
    #[arg(
        long,
        env = "LOOKALIKE_MODEL",
        default_value = "models/efficientnet_lite0.onnx"
    )]
    pub model: PathBuf,
    /// Attempts each new job gets.
    #[arg(
        long = "job-max-attempts",
        env = "LOOKALIKE_JOB_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
    /// As `serve --precision` on the CPU (a service on a GPU runs fp32: pass `fp32` for it).
    #[arg(
        long,
        env = "LOOKALIKE_PRECISION",
        value_enum,
        default_value_t = crate::inference::Precision::Auto
    )]
    pub precision: crate::inference::Precision,
    /// The detector of the model whose embeddings should exist: as `serve --detector`.
    #[command(flatten)]
    pub detector: super::model::DetectorConfig,
}

/// `lookalike embed FILE...`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct EmbedConfig {
    /// Photos to embed.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print the whole vector as JSON instead of a summary.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub model: ModelConfig,
    #[command(flatten)]
    pub imaging: ImagingConfig,
}
