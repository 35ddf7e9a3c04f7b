//! The PostgreSQL connection pool.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::redact::redact_url;
use crate::store::{PoolSettings, Store, StoreError};

/// The local development database started by `scripts/pg.sh`.
pub const DEFAULT_DATABASE_URL: &str =
    "postgres://postgres@127.0.0.1:55432/lookalike?sslmode=disable";

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

impl DatabaseConfig {
    /// The pool's settings.
    pub fn pool(&self) -> PoolSettings<'_> {
        PoolSettings {
            url: &self.url,
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout(),
            statement_timeout_ms: self.statement_timeout_ms,
            connect_retry: Duration::from_secs(self.connect_retry_secs),
        }
    }
}

impl Store {
    /// Builds the pool and waits (up to `connect_retry_secs`) until the database answers.
    pub async fn connect(config: &DatabaseConfig) -> Result<Store, StoreError> {
        Store::connect_with(&config.pool()).await
    }

    /// Builds the pool without connecting: connections open on first use.
    pub fn connect_lazy(config: &DatabaseConfig) -> Result<Store, StoreError> {
        Store::connect_lazy_with(&config.pool())
    }
}
