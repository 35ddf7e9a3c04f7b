//! Typed configuration: every option is a command-line flag and an environment variable
//! (`LOOKALIKE_*`, plus the standard `DATABASE_URL`), with defaults that run on a laptop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::capacity::{AddressCaps, ByteBudget};
use crate::inference::{ConvSearch, Device, DeviceSettings, Precision};
use crate::rate_limit::{ClassRates, IpNet, RateLimitSettings, RateSpec};

/// The local development database started by `scripts/pg.sh`.
pub const DEFAULT_DATABASE_URL: &str =
    "postgres://postgres@127.0.0.1:55432/lookalike?sslmode=disable";

/// Command line of the `lookalike` binary.
#[derive(Debug, Parser)]
#[command(
    name = "lookalike",
    version,
    about = "Photo embeddings and look-alike search"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogConfig,
    #[command(subcommand)]
    pub command: Command,
}

/// What the binary does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (migrates the database first).
    Serve(Box<ServeConfig>),
    /// Run job workers only, no API: embedding capacity that scales apart from the HTTP replicas
    /// (e.g. on GPU hosts), sharing the database's job queue.
    Work(Box<WorkConfig>),
    /// Apply the database migrations and exit.
    Migrate(MigrateConfig),
    /// Embed photos with the model and print each embedding's summary (or the full vector).
    Embed(EmbedConfig),
    /// Enqueue embedding jobs for stored photos that lack an embedding for the current model.
    Reindex(ReindexConfig),
    /// Search the stored reports with a photo and print the nearest ones.
    Search(Box<SearchCliConfig>),
    /// Create one report per photo in a folder, then embed them (for operators and evaluation).
    Import(Box<ImportConfig>),
    /// Reconcile the photo store with the database once: delete objects no photo uses, purge
    /// unused photos, make missing thumbnails again (`serve` does it every hour).
    Sweep(Box<SweepCliConfig>),
    /// List the models the database holds vectors of.
    Models(MigrateConfig),
    /// Delete a retired model's vectors, matches, jobs and index (after a reindex to its successor).
    DropModel(DropModelConfig),
}

/// `lookalike work`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct WorkConfig {
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
    #[command(flatten)]
    pub sweep: SweepConfig,
    /// Serve `/metrics` (the workers', the gate's, the jobs') on this address; none by default.
    #[arg(long = "metrics-listen", env = "LOOKALIKE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds running jobs get to finish after a shutdown signal.
    #[arg(long, env = "LOOKALIKE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
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

/// The sweep of the photo store.
#[derive(Debug, Clone, Copy, Args, Serialize)]
pub struct SweepConfig {
    /// Minutes between sweeps of the photo store (0: none). One replica sweeps at a time.
    #[arg(
        long = "sweep-interval-mins",
        env = "LOOKALIKE_SWEEP_INTERVAL_MINS",
        default_value_t = 60
    )]
    pub interval_mins: u64,
    /// Minutes an object without a database row is left alone before the sweep deletes it (an
    /// upload writes its photo before it records it).
    #[arg(
        long = "sweep-grace-mins",
        env = "LOOKALIKE_SWEEP_GRACE_MINS",
        default_value_t = 60
    )]
    pub grace_mins: u64,
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
    #[arg(
        long = "max-report-photos",
        env = "LOOKALIKE_MAX_REPORT_PHOTOS",
        default_value_t = 5
    )]
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

/// Log output.
#[derive(Debug, Clone, Args, Serialize)]
pub struct LogConfig {
    /// Log format.
    #[arg(long, env = "LOOKALIKE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info,lookalike=debug`).
    #[arg(long, env = "LOOKALIKE_LOG", default_value = "info", global = true)]
    pub log_filter: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `lookalike serve`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ServeConfig {
    /// Address the HTTP service listens on.
    #[arg(long, env = "LOOKALIKE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
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
    /// Serve `/metrics` on this address only (for operators), instead of the public listener.
    #[arg(long = "metrics-listen", env = "LOOKALIKE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    #[arg(long, env = "LOOKALIKE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
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
        long = "model",
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
        long = "precision",
        env = "LOOKALIKE_PRECISION",
        value_enum,
        default_value_t = Precision::Auto
    )]
    pub precision: Precision,
}

/// Where photo bytes and thumbnails live.
#[derive(Debug, Clone, Args, Serialize)]
pub struct PhotoStoreConfig {
    /// Folder of the local photo store (used unless `--storage-url` is set).
    #[arg(
        id = "storage_dir",
        long = "storage-dir",
        env = "LOOKALIKE_STORAGE_DIR",
        default_value = "data/photos"
    )]
    pub dir: PathBuf,
    /// An object store URL instead of the folder, e.g. `s3://bucket/prefix` (builds with the `s3`
    /// feature; credentials and endpoint from the standard `AWS_*` variables).
    #[arg(
        id = "storage_url",
        long = "storage-url",
        env = "LOOKALIKE_STORAGE_URL"
    )]
    #[serde(serialize_with = "redact_optional_url")]
    pub url: Option<String>,
    /// Seconds an object-store request may take, retries included (`--storage-url` only); past
    /// it the request fails (a job waits and tries again later).
    #[arg(
        long = "storage-timeout-secs",
        env = "LOOKALIKE_STORAGE_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub timeout_secs: u64,
}

/// Similarity search and matching between reports.
#[derive(Debug, Clone, Copy, Args, Serialize)]
pub struct SearchConfig {
    /// HNSW candidate list size (`hnsw.ef_search`): higher is more exact and slower.
    #[arg(long = "search-ef", env = "LOOKALIKE_SEARCH_EF", default_value_t = 100)]
    pub ef_search: u32,
    /// The relevance floor: the least cosine similarity called a look-alike. A search leaves out
    /// results below it (the client may pass its own `min_score`; 0 shows all), and a possible
    /// match between reports needs it too. Calibrated by `cargo bench --bench labels`.
    #[arg(
        long = "min-score",
        visible_alias = "match-threshold",
        env = "LOOKALIKE_MIN_SCORE",
        default_value_t = crate::search::DEFAULT_MIN_SCORE
    )]
    pub min_score: f32,
    /// How a search by photo uses the species read in the query photo when the client names
    /// none: `boost` ranks reports of that species first among similar ones, `filter` keeps
    /// only them, `off` ignores it (measured by `cargo bench --bench labels`).
    #[arg(
        long = "query-species",
        env = "LOOKALIKE_QUERY_SPECIES",
        value_enum,
        default_value_t = crate::search::QuerySpecies::Boost
    )]
    pub query_species: crate::search::QuerySpecies,
    /// Most possible matches kept per report.
    #[arg(
        long = "match-limit",
        env = "LOOKALIKE_MATCH_LIMIT",
        default_value_t = 10
    )]
    pub match_limit: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            ef_search: 100,
            min_score: crate::search::DEFAULT_MIN_SCORE,
            query_species: crate::search::QuerySpecies::Boost,
            match_limit: 10,
        }
    }
}

/// Background jobs (durable, in PostgreSQL).
#[derive(Debug, Clone, Args, Serialize)]
pub struct JobsConfig {
    /// Job workers in this process (0: none; another process does the jobs). A worker is an async
    /// task; 4 keep the gate fed while others read photos and write results.
    #[arg(
        long = "job-workers",
        env = "LOOKALIKE_JOB_WORKERS",
        default_value_t = 4
    )]
    pub workers: usize,
    /// Seconds a claimed job stays locked; a worker renews it while it runs, and a job whose
    /// worker died is reclaimed once it expires.
    #[arg(
        long = "job-lease-secs",
        env = "LOOKALIKE_JOB_LEASE_SECS",
        default_value_t = 30
    )]
    pub lease_secs: u64,
    /// Milliseconds between polls when no notification arrives (LISTEN/NOTIFY wakes workers at once).
    #[arg(
        long = "job-poll-ms",
        env = "LOOKALIKE_JOB_POLL_MS",
        default_value_t = 1000
    )]
    pub poll_ms: u64,
    /// Attempts before a job is marked failed.
    #[arg(
        long = "job-max-attempts",
        env = "LOOKALIKE_JOB_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; it doubles per attempt, with jitter.
    #[arg(
        long = "job-backoff-ms",
        env = "LOOKALIKE_JOB_BACKOFF_MS",
        default_value_t = 1000
    )]
    pub backoff_ms: u64,
    /// Longest retry delay in milliseconds.
    #[arg(
        long = "job-backoff-max-ms",
        env = "LOOKALIKE_JOB_BACKOFF_MAX_MS",
        default_value_t = 300_000
    )]
    pub backoff_max_ms: u64,
    /// Hours a finished (done) job is kept before it is pruned (0: kept forever). Failed jobs
    /// are kept: reports show their error.
    #[arg(
        long = "job-retention-hours",
        env = "LOOKALIKE_JOB_RETENTION_HOURS",
        default_value_t = 24
    )]
    pub retention_hours: u64,
}

/// Default memory for request bodies, MiB.
pub const DEFAULT_BODY_MEMORY_MIB: usize = 96;
/// Default wait for body memory, milliseconds.
pub const DEFAULT_BODY_MEMORY_MAX_WAIT_MS: u64 = 3000;

/// The edge: connections and request bodies, before any handler runs. Every wait here has a
/// deadline and every count a cap, so slow or hostile clients cannot hold the service.
#[derive(Debug, Clone, Args, Serialize)]
pub struct EdgeConfig {
    /// Most open client connections; beyond it a new connection gets a short 503 and is closed.
    #[arg(
        id = "max_client_connections",
        long = "max-connections",
        env = "LOOKALIKE_MAX_CONNECTIONS",
        default_value_t = 1024
    )]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers once it sent their first byte.
    #[arg(
        long = "header-timeout-secs",
        env = "LOOKALIKE_HEADER_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub header_timeout_secs: u64,
    /// Seconds a kept-alive connection may stay idle between requests.
    #[arg(
        long = "keep-alive-secs",
        env = "LOOKALIKE_KEEP_ALIVE_SECS",
        default_value_t = 30
    )]
    pub keep_alive_secs: u64,
    /// Seconds a whole request body may take to arrive (408 `body_timeout` beyond).
    #[arg(
        long = "body-timeout-secs",
        env = "LOOKALIKE_BODY_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub body_timeout_secs: u64,
    /// Seconds a request body may pause between two chunks (408 `body_timeout` beyond).
    #[arg(
        long = "body-idle-timeout-secs",
        env = "LOOKALIKE_BODY_IDLE_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub body_idle_timeout_secs: u64,
    /// Memory for request bodies read at once, in MiB: a request reserves its size before its
    /// body is read, and waits (bounded) or gets 503 when the budget is spent.
    #[arg(
        long = "body-memory-mib",
        env = "LOOKALIKE_BODY_MEMORY_MIB",
        default_value_t = DEFAULT_BODY_MEMORY_MIB
    )]
    pub body_memory_mib: usize,
    /// Milliseconds a request waits for body memory before 503 + Retry-After.
    #[arg(
        long = "body-memory-max-wait-ms",
        env = "LOOKALIKE_BODY_MEMORY_MAX_WAIT_MS",
        default_value_t = DEFAULT_BODY_MEMORY_MAX_WAIT_MS
    )]
    pub body_memory_max_wait_ms: u64,
    /// Seconds an answer sent before the body was read keeps reading (and discarding) the rest,
    /// so that the client, still writing, gets the answer instead of a connection reset.
    #[arg(
        long = "linger-secs",
        env = "LOOKALIKE_LINGER_SECS",
        default_value_t = 5
    )]
    pub linger_secs: u64,
    /// Most bytes discarded that way per connection, in MiB.
    #[arg(
        long = "linger-max-mib",
        env = "LOOKALIKE_LINGER_MAX_MIB",
        default_value_t = 128
    )]
    pub linger_max_mib: usize,
    /// Least bytes per second a request body must arrive at, averaged over
    /// `--body-rate-window-secs` (408 `body_timeout` below it; 0: no floor).
    #[arg(
        long = "body-min-bytes-per-sec",
        env = "LOOKALIKE_BODY_MIN_BYTES_PER_SEC",
        default_value_t = 1024
    )]
    pub body_min_bytes_per_sec: u64,
    /// Seconds the request body rate is averaged over.
    #[arg(
        long = "body-rate-window-secs",
        env = "LOOKALIKE_BODY_RATE_WINDOW_SECS",
        default_value_t = 10
    )]
    pub body_rate_window_secs: u64,
    /// Seconds a response write may make no progress (a client that does not read) before the
    /// connection is closed.
    #[arg(
        long = "write-stall-secs",
        env = "LOOKALIKE_WRITE_STALL_SECS",
        default_value_t = 15
    )]
    pub write_stall_secs: u64,
    /// Seconds a response may take to be written, from its first byte, before the connection is
    /// closed.
    #[arg(
        long = "response-timeout-secs",
        env = "LOOKALIKE_RESPONSE_TIMEOUT_SECS",
        default_value_t = 120
    )]
    pub response_timeout_secs: u64,
    /// Most request bodies one client address may have in flight (waiting for memory or being
    /// read) at once; 429 `concurrency_limited` beyond (0: no cap).
    #[arg(
        long = "max-bodies-per-address",
        env = "LOOKALIKE_MAX_BODIES_PER_ADDRESS",
        default_value_t = 8
    )]
    pub max_bodies_per_address: usize,
    /// Most upload slots one client address may hold or wait for at once; 429
    /// `concurrency_limited` beyond (0: no cap).
    #[arg(
        long = "max-uploads-per-address",
        env = "LOOKALIKE_MAX_UPLOADS_PER_ADDRESS",
        default_value_t = 4
    )]
    pub max_uploads_per_address: usize,
    /// Most body memory one client address may hold at once, in MiB; 429 `concurrency_limited`
    /// beyond, except for an address's only body (0: no cap).
    #[arg(
        long = "body-memory-per-address-mib",
        env = "LOOKALIKE_BODY_MEMORY_PER_ADDRESS_MIB",
        default_value_t = 48
    )]
    pub body_memory_per_address_mib: usize,
}

impl Default for EdgeConfig {
    /// The command line's defaults (and `LOOKALIKE_*` variables where set).
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            edge: EdgeConfig,
        }
        Defaults::parse_from(["lookalike"]).edge
    }
}

impl EdgeConfig {
    /// Seconds as a duration; zero is clamped to one second, so that every deadline exists.
    fn secs(s: u64) -> Duration {
        Duration::from_secs(s.max(1))
    }

    /// The header deadline.
    pub fn header_timeout(&self) -> Duration {
        Self::secs(self.header_timeout_secs)
    }

    /// The keep-alive idle deadline.
    pub fn keep_alive(&self) -> Duration {
        Self::secs(self.keep_alive_secs)
    }

    /// The whole-body deadline.
    pub fn body_timeout(&self) -> Duration {
        Self::secs(self.body_timeout_secs)
    }

    /// The between-chunks deadline.
    pub fn body_idle_timeout(&self) -> Duration {
        Self::secs(self.body_idle_timeout_secs)
    }

    /// How long a closing connection drains.
    pub fn linger(&self) -> Duration {
        Self::secs(self.linger_secs)
    }

    /// The memory budget for request bodies, with its caps per client address.
    pub fn body_budget(&self) -> ByteBudget {
        ByteBudget::new(
            self.body_memory_mib << 20,
            Duration::from_millis(self.body_memory_max_wait_ms),
        )
        .with_address_caps(AddressCaps {
            bodies: self.max_bodies_per_address,
            bytes: (self.body_memory_per_address_mib as u64) << 20,
        })
    }

    /// The window a request body's rate is averaged over.
    pub fn body_rate_window(&self) -> Duration {
        Self::secs(self.body_rate_window_secs)
    }

    /// The response write stall bound.
    pub fn write_stall(&self) -> Duration {
        Self::secs(self.write_stall_secs)
    }

    /// The response write deadline.
    pub fn response_timeout(&self) -> Duration {
        Self::secs(self.response_timeout_secs)
    }
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

/// The PostgreSQL connection pool.
#[derive(Debug, Clone, Args, Serialize)]
pub struct DatabaseConfig {
    /// PostgreSQL URL (the local cluster of `scripts/pg.sh` by default).
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    #[serde(serialize_with = "redact_url")]
    pub url: String,
    /// Most connections the pool opens.
    #[arg(
        long = "db-max-connections",
        env = "LOOKALIKE_DB_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub max_connections: u32,
    /// Milliseconds a request waits for a free connection before failing with 503.
    #[arg(
        long = "db-acquire-timeout-ms",
        env = "LOOKALIKE_DB_ACQUIRE_TIMEOUT_MS",
        default_value_t = 3000
    )]
    pub acquire_timeout_ms: u64,
    /// Milliseconds one SQL statement may run (server-side `statement_timeout`).
    #[arg(
        long = "db-statement-timeout-ms",
        env = "LOOKALIKE_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 15000
    )]
    pub statement_timeout_ms: u64,
    /// Seconds `serve` and `migrate` keep retrying to reach the database at start.
    #[arg(
        long = "db-connect-retry-secs",
        env = "LOOKALIKE_DB_CONNECT_RETRY_SECS",
        default_value_t = 30
    )]
    pub connect_retry_secs: u64,
}

impl DatabaseConfig {
    /// How long a caller waits for a pooled connection.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

/// The ONNX model and the runtime that runs it.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ModelConfig {
    /// The ONNX model file; its manifest (`<stem>.manifest.json`) must sit next to it.
    #[arg(
        long = "model",
        env = "LOOKALIKE_MODEL",
        default_value = "models/efficientnet_lite0.onnx"
    )]
    pub path: PathBuf,
    /// The ONNX Runtime shared library (installed by `scripts/setup-runtime.sh`).
    #[arg(
        long = "ort-library",
        env = "LOOKALIKE_ORT_LIBRARY",
        default_value = ".cache/onnxruntime-1.32.0/onnxruntime/capi/libonnxruntime.so.1.32.0"
    )]
    pub ort_library: PathBuf,
    /// Threads ONNX Runtime uses inside one model run (0: the device's default: one per core on
    /// the CPU, one on a GPU).
    #[arg(
        long = "model-threads",
        env = "LOOKALIKE_MODEL_THREADS",
        default_value_t = 0
    )]
    pub intra_threads: usize,
    /// Where the model runs: `cpu`, `cuda` or `cuda:N` (a GPU needs the runtime of
    /// `scripts/setup-runtime.sh --gpu`; a GPU that cannot run the model stops the start, it
    /// never falls back to the CPU).
    #[arg(long = "device", env = "LOOKALIKE_DEVICE", default_value = "cpu")]
    pub device: Device,
    /// GPU memory each session's arena may take, MiB (0: no limit).
    #[arg(
        long = "gpu-memory-limit-mib",
        env = "LOOKALIKE_GPU_MEMORY_LIMIT_MIB",
        default_value_t = 4096
    )]
    pub gpu_memory_limit_mib: usize,
    /// How cuDNN picks convolution algorithms: exhaustive (timed once per batch size, at start),
    /// heuristic or default.
    #[arg(
        long = "cuda-conv-search",
        env = "LOOKALIKE_CUDA_CONV_SEARCH",
        value_enum,
        default_value_t = ConvSearch::Exhaustive
    )]
    pub cuda_conv_search: ConvSearch,
    /// TF32 tensor cores on a GPU (faster; embeddings agree with the CPU's to a cosine of about
    /// 0.999 instead of 0.9999).
    #[arg(
        long = "cuda-tf32",
        env = "LOOKALIKE_CUDA_TF32",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub cuda_tf32: bool,
    /// Folder of the CUDA 13 libraries (libcudart.so.13, libcublas*.so.13, …), loaded before the
    /// first GPU session; unset: the system's library path.
    #[arg(long = "cuda-lib-dir", env = "LOOKALIKE_CUDA_LIB_DIR")]
    pub cuda_lib_dir: Option<PathBuf>,
    /// Folder of the cuDNN 9 libraries (libcudnn*.so.9).
    #[arg(long = "cudnn-lib-dir", env = "LOOKALIKE_CUDNN_LIB_DIR")]
    pub cudnn_lib_dir: Option<PathBuf>,
    /// `auto`: the INT8 model next to `--model` (`x_int8.onnx`) where the CPU has VNNI/dotprod,
    /// else `--model` itself; `fp32`: `--model` as given; `int8`: the INT8 model, whatever the CPU.
    #[arg(
        long = "precision",
        env = "LOOKALIKE_PRECISION",
        value_enum,
        default_value_t = Precision::Auto
    )]
    pub precision: Precision,
    /// Nice value of the threads that decode photos and run the model (0-19; 0: the process's
    /// own priority): below the async threads, which answer the short requests first.
    #[arg(
        long = "compute-nice",
        env = "LOOKALIKE_COMPUTE_NICE",
        default_value_t = crate::compute::DEFAULT_COMPUTE_NICE,
        value_parser = clap::value_parser!(i32).range(0..=19)
    )]
    pub compute_nice: i32,
}

impl ModelConfig {
    /// The model at `path` as given (fp32: no INT8 swap) on the CPU, with `intra_threads` threads
    /// per run (0: one per core).
    pub fn on_cpu(path: PathBuf, ort_library: PathBuf, intra_threads: usize) -> Self {
        ModelConfig {
            path,
            ort_library,
            intra_threads,
            device: Device::Cpu,
            gpu_memory_limit_mib: 0,
            cuda_conv_search: ConvSearch::Exhaustive,
            cuda_tf32: true,
            cuda_lib_dir: None,
            cudnn_lib_dir: None,
            precision: Precision::Fp32,
            compute_nice: crate::compute::DEFAULT_COMPUTE_NICE,
        }
    }

    /// The device settings.
    pub fn device_settings(&self) -> DeviceSettings {
        DeviceSettings {
            device: self.device,
            memory_limit_mib: self.gpu_memory_limit_mib,
            conv_search: self.cuda_conv_search,
            tf32: self.cuda_tf32,
            cuda_lib_dir: self.cuda_lib_dir.clone(),
            cudnn_lib_dir: self.cudnn_lib_dir.clone(),
        }
    }
}

/// The inference gate: how many model runs at once, and how long and how many may wait.
#[derive(Debug, Clone, Args, Serialize)]
pub struct GateConfig {
    /// Model runs at once, one session each (0: the device's default: one per two cores on the
    /// CPU, 2 on a GPU).
    #[arg(
        long = "gate-permits",
        env = "LOOKALIKE_GATE_PERMITS",
        default_value_t = 0
    )]
    pub permits: usize,
    /// Most photos one run embeds together (micro-batching; 1 turns it off; 0: the device's
    /// default). 4 on the CPU: measured on 2 cores, about 10% more photos/s than 1 while a run
    /// stays short. 32 on a GPU, which is efficient only at large batches.
    #[arg(
        long = "gate-max-batch",
        env = "LOOKALIKE_GATE_MAX_BATCH",
        default_value_t = 0
    )]
    pub max_batch: usize,
    /// Most interactive requests in flight (decoding, waiting or running); beyond it, 503 at once.
    #[arg(
        long = "gate-max-waiters",
        env = "LOOKALIKE_GATE_MAX_WAITERS",
        default_value_t = 64
    )]
    pub max_waiters: usize,
    /// Most background requests in flight (decoding, waiting or running); beyond it, refused at once.
    #[arg(
        long = "gate-max-background-waiters",
        env = "LOOKALIKE_GATE_MAX_BACKGROUND_WAITERS",
        default_value_t = 64
    )]
    pub max_background_waiters: usize,
    /// Milliseconds an interactive request may wait for the model before 503 + Retry-After.
    #[arg(
        long = "gate-max-wait-ms",
        env = "LOOKALIKE_GATE_MAX_WAIT_MS",
        default_value_t = 2000
    )]
    pub max_wait_ms: u64,
    /// Milliseconds a background request may wait for the model.
    #[arg(
        long = "gate-max-background-wait-ms",
        env = "LOOKALIKE_GATE_MAX_BACKGROUND_WAIT_MS",
        default_value_t = 60000
    )]
    pub max_background_wait_ms: u64,
}

/// Decoding photos: limits and the bound on concurrent decodes.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ImagingConfig {
    /// Largest photo accepted, in megapixels (width × height, before any scaling).
    #[arg(
        long = "max-megapixels",
        env = "LOOKALIKE_MAX_MEGAPIXELS",
        default_value_t = 50.0
    )]
    pub max_megapixels: f64,
    /// Most memory one decode may allocate, in MiB.
    #[arg(
        long = "max-decode-mib",
        env = "LOOKALIKE_MAX_DECODE_MIB",
        default_value_t = 512
    )]
    pub max_decode_mib: u64,
    /// Decode large JPEGs at a reduced DCT scale (much faster, same model input).
    #[arg(long = "jpeg-dct-scaling", env = "LOOKALIKE_JPEG_DCT_SCALING", default_value_t = true, action = clap::ArgAction::Set)]
    pub jpeg_dct_scaling: bool,
    /// Photos decoded at once (0: one per core).
    #[arg(
        long = "decode-permits",
        env = "LOOKALIKE_DECODE_PERMITS",
        default_value_t = 0
    )]
    pub decode_permits: usize,
    /// Most photos waiting to be decoded; beyond it, 503 at once.
    #[arg(
        long = "decode-max-waiters",
        env = "LOOKALIKE_DECODE_MAX_WAITERS",
        default_value_t = 128
    )]
    pub decode_max_waiters: usize,
}

/// Upload caps and slots.
#[derive(Debug, Clone, Args, Serialize)]
pub struct UploadConfig {
    /// Largest photo accepted, in bytes (413 beyond).
    #[arg(long = "max-photo-bytes", env = "LOOKALIKE_MAX_PHOTO_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_photo_bytes: usize,
    /// Most photos in one request.
    #[arg(long = "max-photos", env = "LOOKALIKE_MAX_PHOTOS", default_value_t = 8)]
    pub max_photos: usize,
    /// Most photos in one report.
    #[arg(
        long = "max-report-photos",
        env = "LOOKALIKE_MAX_REPORT_PHOTOS",
        default_value_t = 5
    )]
    pub max_report_photos: usize,
    /// Uploads read, validated and stored at once; others wait.
    #[arg(
        long = "upload-permits",
        env = "LOOKALIKE_UPLOAD_PERMITS",
        default_value_t = 10
    )]
    pub upload_permits: usize,
    /// Most uploads waiting for a slot; beyond it, 503 at once.
    #[arg(
        long = "upload-max-waiters",
        env = "LOOKALIKE_UPLOAD_MAX_WAITERS",
        default_value_t = 100
    )]
    pub upload_max_waiters: usize,
    /// Milliseconds an upload waits for a slot before 503 + Retry-After.
    #[arg(
        long = "upload-max-wait-ms",
        env = "LOOKALIKE_UPLOAD_MAX_WAIT_MS",
        default_value_t = 5000
    )]
    pub upload_max_wait_ms: u64,
}

/// API keys and tenants. With none configured the service is open.
#[derive(Debug, Clone, Args, Serialize)]
pub struct AccessConfig {
    /// JSON file of API keys: `{"keys": [{"tenant": "acme", "key": "...", "max_storage_bytes": N}]}`.
    #[arg(long = "api-keys-file", env = "LOOKALIKE_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// API keys as `tenant:key` pairs separated by commas.
    #[arg(long = "api-keys", env = "LOOKALIKE_API_KEYS", hide_env_values = true)]
    #[serde(serialize_with = "redact_keys")]
    pub api_keys: Option<String>,
    /// Storage quota (bytes of photos) of a tenant whose key does not set one.
    #[arg(
        long = "tenant-max-storage-bytes",
        env = "LOOKALIKE_TENANT_MAX_STORAGE_BYTES",
        default_value_t = 1 << 30
    )]
    pub tenant_max_storage_bytes: u64,
    /// A secret that opens `/metrics` and the detailed `/v1/status` on the public listener to a
    /// client not on this host (`Authorization: Bearer <key>`); without it, only clients on this
    /// host (loopback) read them there. `--metrics-listen` moves them to a listener of their own.
    #[arg(
        long = "operator-key",
        env = "LOOKALIKE_OPERATOR_KEY",
        hide_env_values = true
    )]
    #[serde(serialize_with = "redact_secret")]
    pub operator_key: Option<String>,
}

/// Limits of the open service (no API keys), on by default: a client address's bytes of photos
/// per UTC day, and the bytes all reports hold. 0 turns one off.
#[derive(Debug, Clone, Copy, Args, Serialize)]
pub struct OpenLimitsConfig {
    /// Bytes of photos one client address may upload per UTC day (429 `daily_limit_exceeded`
    /// beyond, with `Retry-After` until midnight UTC); 0: no limit.
    #[arg(
        long = "open-upload-bytes-per-day",
        env = "LOOKALIKE_OPEN_UPLOAD_BYTES_PER_DAY",
        default_value_t = 1 << 30
    )]
    pub upload_bytes_per_day: u64,
    /// Bytes of photos all reports may hold together (507 `storage_full` beyond); 0: no limit.
    #[arg(
        long = "open-max-storage-bytes",
        env = "LOOKALIKE_OPEN_MAX_STORAGE_BYTES",
        default_value_t = 100 << 30
    )]
    pub max_storage_bytes: u64,
}

impl OpenLimitsConfig {
    /// The limits in bytes (`i64::MAX` where off).
    pub fn limits(&self) -> crate::store::OpenLimits {
        let bytes = |n: u64| match n {
            0 => i64::MAX,
            n => i64::try_from(n).unwrap_or(i64::MAX),
        };
        crate::store::OpenLimits {
            daily_bytes_per_address: bytes(self.upload_bytes_per_day),
            total_bytes: bytes(self.max_storage_bytes),
        }
    }
}

fn redact_secret<S: serde::Serializer>(secret: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("***"),
        None => s.serialize_none(),
    }
}

/// Request rate limits per route class (uploads, searches, reads), per client address and per
/// API key: `N/s`, `N/min`, `N/h`, `N/day`, or `off`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct RateLimitConfig {
    /// Report uploads per client address.
    #[arg(
        long = "rate-uploads-per-address",
        env = "LOOKALIKE_RATE_UPLOADS_PER_ADDRESS",
        default_value = "10/min"
    )]
    pub uploads_per_address: RateSpec,
    /// Report uploads per API key.
    #[arg(
        long = "rate-uploads-per-key",
        env = "LOOKALIKE_RATE_UPLOADS_PER_KEY",
        default_value = "50/h"
    )]
    pub uploads_per_key: RateSpec,
    /// Searches and embeddings (model runs, vector queries) per client address.
    #[arg(
        long = "rate-searches-per-address",
        env = "LOOKALIKE_RATE_SEARCHES_PER_ADDRESS",
        default_value = "60/min"
    )]
    pub searches_per_address: RateSpec,
    /// Searches and embeddings per API key.
    #[arg(
        long = "rate-searches-per-key",
        env = "LOOKALIKE_RATE_SEARCHES_PER_KEY",
        default_value = "1000/h"
    )]
    pub searches_per_key: RateSpec,
    /// Other `/v1/` requests per client address.
    #[arg(
        long = "rate-reads-per-address",
        env = "LOOKALIKE_RATE_READS_PER_ADDRESS",
        default_value = "600/min"
    )]
    pub reads_per_address: RateSpec,
    /// Other `/v1/` requests per API key.
    #[arg(
        long = "rate-reads-per-key",
        env = "LOOKALIKE_RATE_READS_PER_KEY",
        default_value = "20000/h"
    )]
    pub reads_per_key: RateSpec,
    /// Messages to report owners (`POST /v1/reports/{id}/messages`) per client address.
    #[arg(
        long = "rate-messages-per-address",
        env = "LOOKALIKE_RATE_MESSAGES_PER_ADDRESS",
        default_value = "20/h"
    )]
    pub messages_per_address: RateSpec,
    /// Messages to report owners per API key.
    #[arg(
        long = "rate-messages-per-key",
        env = "LOOKALIKE_RATE_MESSAGES_PER_KEY",
        default_value = "2000/h"
    )]
    pub messages_per_key: RateSpec,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or networks, comma-separated);
    /// by default none, and the client is the connection's peer.
    #[arg(
        long = "trusted-proxies",
        env = "LOOKALIKE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpNet>,
    /// Most clients tracked per quota; idle ones are forgotten, and beyond it new clients get 429.
    #[arg(
        long = "rate-limit-max-clients",
        env = "LOOKALIKE_RATE_LIMIT_MAX_CLIENTS",
        default_value_t = 100_000
    )]
    pub max_clients: usize,
}

impl RateLimitConfig {
    /// The limiter's settings.
    pub fn settings(&self) -> RateLimitSettings {
        let class = |per_address, per_key| ClassRates {
            per_address,
            per_key,
        };
        RateLimitSettings {
            classes: [
                class(self.uploads_per_address, self.uploads_per_key),
                class(self.searches_per_address, self.searches_per_key),
                class(self.reads_per_address, self.reads_per_key),
                class(self.messages_per_address, self.messages_per_key),
            ],
            max_tracked: self.max_clients,
        }
    }
}

fn redact_keys<S: serde::Serializer>(keys: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match keys {
        Some(k) => s.serialize_str(&format!(
            "({} keys)",
            k.split(',').filter(|p| !p.trim().is_empty()).count()
        )),
        None => s.serialize_none(),
    }
}

/// The number of cores this process may use (at least 1).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn redact_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_secrets(url))
}

fn redact_optional_url<S: serde::Serializer>(
    url: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&redact_secrets(url)),
        None => s.serialize_none(),
    }
}

/// Parameter names whose values are secrets, in a URL's query or a `key=value` connection string.
const SECRET_NAMES: [&str; 10] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "sslpassword",
    "secret",
    "token",
    "access_key",
    "secret_key",
    "signature",
];

/// A connection string with its secrets replaced by `***`, whatever its form: the password of
/// `scheme://user:password@host`, secret query parameters (`?password=...`, `&sslpassword=...`),
/// and secret `key=value` pairs of a libpq-style string (`host=h password=p`).
pub fn redact_secrets(text: &str) -> String {
    let is_secret = |name: &str| {
        let name = name.trim().to_ascii_lowercase();
        SECRET_NAMES
            .iter()
            .any(|s| name == *s || name.ends_with(&format!("_{s}")))
    };
    let Some(scheme_end) = text.find("://") else {
        // libpq keyword/value form: `key=value` pairs separated by spaces (values may be quoted).
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(eq) = rest.find('=') {
            let (name, after) = (&rest[..eq], &rest[eq + 1..]);
            out.push_str(name);
            out.push('=');
            let end = if let Some(quoted) = after.strip_prefix('\'') {
                quoted.find('\'').map_or(after.len(), |i| i + 2)
            } else {
                after.find(char::is_whitespace).unwrap_or(after.len())
            };
            let key = name.rsplit(char::is_whitespace).next().unwrap_or(name);
            out.push_str(if is_secret(key) { "***" } else { &after[..end] });
            rest = &after[end..];
        }
        out.push_str(rest);
        return out;
    };
    let (head, rest) = text.split_at(scheme_end + 3);
    let (rest, fragment) = rest
        .split_once('#')
        .map_or((rest, None), |(r, f)| (r, Some(f)));
    let (authority_path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(r, q)| (r, Some(q)));
    let mut out = head.to_owned();
    // The userinfo ends at the last '@' before the path.
    let path_start = authority_path.find('/').unwrap_or(authority_path.len());
    match authority_path[..path_start].rfind('@') {
        Some(at) => {
            let userinfo = &authority_path[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(userinfo),
            }
            out.push_str(&authority_path[at..]);
        }
        None => out.push_str(authority_path),
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_in_every_form_and_nothing_else() {
        for (given, logged) in [
            ("postgres://u:secret@h:5/db", "postgres://u:***@h:5/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgres://u@h/db?password=secret&sslmode=disable",
                "postgres://u@h/db?password=***&sslmode=disable",
            ),
            (
                "postgres://h/db?user=u&PassWord=secret&sslpassword=x",
                "postgres://h/db?user=u&PassWord=***&sslpassword=***",
            ),
            // An '@' in the password does not leak its tail.
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            (
                "host=h user=u password=secret dbname=d",
                "host=h user=u password=*** dbname=d",
            ),
            (
                "host=h password='se cret' dbname=d",
                "host=h password=*** dbname=d",
            ),
            (
                "s3://bucket/prefix?aws_secret_access_key=k&region=x",
                "s3://bucket/prefix?aws_secret_access_key=***&region=x",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_secrets(given), logged, "{given}");
        }
    }

    #[test]
    fn every_default_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["lookalike", "serve"]).unwrap();
        // Building each subcommand runs clap's debug assertions (e.g. two options with one id),
        // which panic; whether "x" parses does not matter.
        for sub in ["import", "search", "embed", "reindex", "migrate"] {
            let _ = Cli::try_parse_from(["lookalike", sub, "x"]);
        }
        let Command::Serve(cfg) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.uploads.max_photo_bytes, 10 * 1024 * 1024);
        assert_eq!(cfg.rate_limits.uploads_per_address.to_string(), "10/min");
        assert_eq!(cfg.rate_limits.uploads_per_key.to_string(), "50/h");
        assert!(cfg.rate_limits.trusted_proxies.is_empty());
        // The open service's limits are on by default.
        assert_eq!(cfg.open_limits.limits().daily_bytes_per_address, 1 << 30);
        assert_eq!(cfg.open_limits.limits().total_bytes, 100 << 30);
        let cli = Cli::try_parse_from([
            "lookalike",
            "serve",
            "--trusted-proxies",
            "10.0.0.0/8,::1",
            "--api-keys",
            "acme:0123456789abcdef",
            "--operator-key",
            "operator-secret-0123",
            "--open-upload-bytes-per-day",
            "0",
        ])
        .unwrap();
        let Command::Serve(cfg) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(cfg.rate_limits.trusted_proxies.len(), 2);
        let logged = serde_json::to_string(&cfg).unwrap();
        assert!(!logged.contains("0123456789abcdef"), "{logged}");
        assert!(!logged.contains("operator-secret"), "{logged}");
        assert_eq!(cfg.open_limits.limits().daily_bytes_per_address, i64::MAX);
    }
}
