//! Typed configuration: every option is a command-line flag and an environment variable
//! (`LOOKALIKE_*`, plus the standard `DATABASE_URL`), with defaults that run on a laptop.
//!
//! One file per concern; each command's configuration (`commands`) flattens the parts it
//! needs, and `serve`, `work` and `import` share one core ([`CoreConfig`]).

use clap::{Parser, Subcommand};

mod access;
mod commands;
mod database;
mod edge;
mod events;
mod jobs;
mod log;
mod model;
mod redact;
mod reference;
mod search;
mod storage;

pub use crate::capacity::available_cores;
pub use access::{AccessConfig, OpenLimitsConfig, RateLimitConfig};
pub use commands::{
    CoreConfig, DropModelConfig, EmbedConfig, ImportConfig, MigrateConfig, ReindexConfig,
    SearchCliConfig, ServeConfig, SweepCliConfig, WorkConfig,
};
pub use database::{DEFAULT_DATABASE_URL, DatabaseConfig};
pub use edge::{
    DEFAULT_BODY_MEMORY_MAX_WAIT_MS, DEFAULT_BODY_MEMORY_MIB, EdgeConfig, UploadConfig,
};
pub use events::{EventsConfig, WebhookConfig, WebhookDeliveryConfig};
pub use jobs::JobsConfig;
pub use log::{LogConfig, LogFormat};
pub use model::{
    DEFAULT_DETECTOR_FULL_SCORE, DEFAULT_DETECTOR_MIN_SCORE, DetectorConfig, GateConfig,
    ImagingConfig, ModelConfig,
};
pub use redact::redact_secrets;
pub use reference::reference_markdown;
pub use search::SearchConfig;
pub use storage::{PhotoStoreConfig, SweepConfig};

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

#[cfg(test)]
mod tests;

/// A part's command-line defaults (and its `LOOKALIKE_*` variables where set): what a part's
/// `Default` is, so that tests, benches and tools start from the values the binary runs with.
fn cli_defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let matches = T::augment_args(clap::Command::new("lookalike")).get_matches_from(["lookalike"]);
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `Default` as the command line's defaults, for parts that every value of has a default.
macro_rules! defaults_from_cli {
    ($($part:ty),* $(,)?) => {$(
        impl Default for $part {
            /// The command line's defaults (and `LOOKALIKE_*` variables where set).
            fn default() -> Self {
                cli_defaults()
            }
        }
    )*};
}

defaults_from_cli!(
    CoreConfig,
    DatabaseConfig,
    EdgeConfig,
    GateConfig,
    ImagingConfig,
    JobsConfig,
    ModelConfig,
    OpenLimitsConfig,
    PhotoStoreConfig,
    SweepConfig,
    UploadConfig,
);
