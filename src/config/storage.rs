//! The photo store and its sweep.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::redact::redact_optional_url;
use crate::photo_store::{PhotoStore, PhotoStoreError};

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

impl PhotoStore {
    /// Opens the configured store (creating the local folder if needed).
    pub fn from_config(config: &PhotoStoreConfig) -> Result<Self, PhotoStoreError> {
        match &config.url {
            Some(url) => Self::from_url(
                url,
                std::time::Duration::from_secs(config.timeout_secs.max(1)),
            ),
            None => Self::local(&config.dir),
        }
    }
}
