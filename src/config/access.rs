//! Who may call the service and how often: API keys, the open service's limits, rate limits.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::redact::{redact_keys, redact_secret};
use crate::rate_limit::{ClassRates, IpNet, RateLimitSettings, RateSpec};

/// API keys and tenants. With none configured the service is open.
#[derive(Debug, Clone, Args, Serialize)]
pub struct AccessConfig {
    /// JSON file of API keys: `{"keys": [{"tenant": "acme", "key": "...", "max_storage_bytes": N}]}`.
    #[arg(long, env = "LOOKALIKE_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// API keys as `tenant:key` pairs separated by commas.
    #[arg(long, env = "LOOKALIKE_API_KEYS", hide_env_values = true)]
    #[serde(serialize_with = "redact_keys")]
    pub api_keys: Option<String>,
    /// Storage quota (bytes of photos) of a tenant whose key does not set one.
    #[arg(
        long,
        env = "LOOKALIKE_TENANT_MAX_STORAGE_BYTES",
        default_value_t = 1 << 30
    )]
    pub tenant_max_storage_bytes: u64,
    /// A secret that opens `/metrics` and the detailed `/v1/status` on the public listener to a
    /// client not on this host (`Authorization: Bearer <key>`); without it, only clients on this
    /// host (loopback) read them there. `--metrics-listen` moves them to a listener of their own.
    #[arg(long, env = "LOOKALIKE_OPERATOR_KEY", hide_env_values = true)]
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
    pub fn limits(&self) -> crate::domain::limits::OpenLimits {
        let bytes = |n: u64| match n {
            0 => i64::MAX,
            n => i64::try_from(n).unwrap_or(i64::MAX),
        };
        crate::domain::limits::OpenLimits {
            daily_bytes_per_address: bytes(self.upload_bytes_per_day),
            total_bytes: bytes(self.max_storage_bytes),
        }
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
    #[arg(long, env = "LOOKALIKE_TRUSTED_PROXIES", value_delimiter = ',')]
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
