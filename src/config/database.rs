//! The PostgreSQL connection pool.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::redact::redact_url;
use crate::store::{PoolSettings, Store, StoreError, VectorIndex};

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
    /// Links per node of each model's HNSW index (pgvector's `m`, its own default 16). `serve`
    /// rebuilds an index built with other settings beside the old one, which answers meanwhile.
    #[arg(
        long = "hnsw-m",
        env = "LOOKALIKE_HNSW_M",
        default_value_t = VectorIndex::DEFAULT.m,
        value_parser = clap::value_parser!(u32).range(2..=100)
    )]
    pub hnsw_m: u32,
    /// Candidates kept while building each model's HNSW index (pgvector's `ef_construction`,
    /// its own default 64; at least twice `--hnsw-m`).
    #[arg(
        long = "hnsw-ef-construction",
        env = "LOOKALIKE_HNSW_EF_CONSTRUCTION",
        default_value_t = VectorIndex::DEFAULT.ef_construction,
        value_parser = clap::value_parser!(u32).range(4..=1000)
    )]
    pub hnsw_ef_construction: u32,
}

impl DatabaseConfig {
    /// How long a caller waits for a pooled connection.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

impl DatabaseConfig {
    /// How the models' vector indexes are built.
    pub fn vector_index(&self) -> VectorIndex {
        VectorIndex {
            m: self.hnsw_m,
            ef_construction: self.hnsw_ef_construction,
        }
    }

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
        Ok(Store::connect_with(&config.pool())
            .await?
            .with_vector_index(config.vector_index()))
    }

    /// Builds the pool without connecting: connections open on first use.
    pub fn connect_lazy(config: &DatabaseConfig) -> Result<Store, StoreError> {
        Ok(Store::connect_lazy_with(&config.pool())?.with_vector_index(config.vector_index()))
    }
}
