//! The store: PostgreSQL (with pgvector) through an sqlx pool. All SQL lives in this module; its
//! methods are grouped by area (`store.jobs()`, `store.reports()`, ...: see `areas`).

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

mod areas;
pub mod cleaning;
pub mod embeddings;
pub mod events;
mod filters;
mod formats;
pub mod jobs;
pub mod labels;
pub mod lifecycle;
pub mod messages;
pub mod models;
pub mod nearby;
mod queue;
mod report_rows;
pub mod reports;
pub mod search;
pub mod tenants;
pub mod usage;

pub use crate::domain::limits::OpenLimits;
pub use crate::domain::search::{NewMatch, SearchFilter, SearchMode};
pub use areas::{
    Blobs, Jobs, Matches, Messages, Models, Photos, Reports, Tenants, Usage, Webhooks,
};
pub use embeddings::StoredEmbedding;
pub use jobs::{ClaimedJob, JOB_COUNTS_SQL, JobCounts};
pub use labels::BreedHit;
pub use lifecycle::{Purge, SweptBlob};
pub use messages::MessagePage;
pub use models::{ModelUsage, VectorIndex};
pub use nearby::{Near, chord_to_km};
pub use reports::{CreatedReport, NewPhoto, OwnerCheck, Payer, PhotoKeys, Recorded, StorageCharge};
pub use search::PhotoHit;
pub use tenants::{ReserveError, StorageUsage};
pub use usage::AddressUsage;

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Database errors, split by what the caller should tell its client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, or no connection was free in time: retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The configuration (URL) is wrong.
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Query(sqlx::Error),
}

/// The database connection pool's connections.
#[derive(Debug, Clone, Copy)]
pub struct PoolUsage {
    /// Connections open.
    pub open: u32,
    /// Of those, idle in the pool.
    pub idle: usize,
}

impl PoolUsage {
    /// Prometheus lines: the pool's open and idle connections.
    pub fn render(&self, out: &mut crate::telemetry::prometheus::Exposition) {
        out.single(
            "lookalike_db_connections",
            "gauge",
            "Open database connections.",
            f64::from(self.open),
        );
        out.single(
            "lookalike_db_connections_idle",
            "gauge",
            "Idle database connections.",
            self.idle as f64,
        );
    }
}

impl StoreError {
    /// Whether waiting may help: the database was unreachable or busy, not the query wrong.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(ref db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) =>
            {
                // 57P01 admin shutdown, 57P03 cannot connect now, 08xxx connection exceptions.
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Query(other),
        }
    }
}

/// How the pool reaches the database (`DatabaseConfig` sets it).
#[derive(Debug, Clone)]
pub struct PoolSettings<'a> {
    /// PostgreSQL URL.
    pub url: &'a str,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection.
    pub acquire_timeout: Duration,
    /// Milliseconds one statement may run (server-side `statement_timeout`).
    pub statement_timeout_ms: u64,
    /// How long `connect_with` keeps trying to reach the database.
    pub connect_retry: Duration,
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    wake: queue::Wake,
    vector_index: VectorIndex,
}

impl Store {
    /// Waits (up to `retry`) until the database behind a lazily built store answers.
    pub async fn connect_with(pool: &PoolSettings<'_>) -> Result<Store, StoreError> {
        let store = Store::connect_lazy_with(pool)?;
        let deadline = tokio::time::Instant::now() + pool.connect_retry;
        loop {
            match store.ping().await {
                Ok(()) => return Ok(store),
                Err(StoreError::Unavailable(e)) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Builds the pool without connecting: connections open on first use.
    pub fn connect_lazy_with(pool: &PoolSettings<'_>) -> Result<Store, StoreError> {
        let options: PgConnectOptions = pool
            .url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Config(e.to_string()))?;
        let options = options
            .options([("statement_timeout", pool.statement_timeout_ms.to_string())])
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(pool.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(pool.acquire_timeout)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        Ok(Store {
            pool,
            wake: queue::Wake::default(),
            vector_index: VectorIndex::DEFAULT,
        })
    }

    /// This store with the models' vector indexes built with `settings`.
    pub fn with_vector_index(self, settings: VectorIndex) -> Store {
        Store {
            vector_index: settings,
            ..self
        }
    }

    /// The connection pool (for the jobs and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations (concurrent callers are serialised by an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The connection pool now.
    pub fn pool_usage(&self) -> PoolUsage {
        PoolUsage {
            open: self.pool.size(),
            idle: self.pool.num_idle(),
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
