//! SQL of tenants and their storage quota. A reservation is one conditional UPDATE in the
//! transaction that records the upload: PostgreSQL locks the tenant's row and re-checks the
//! condition on the latest version, so concurrent reservations never over-commit and never need a
//! retry, and an upload that fails or is cut off rolls its reservation back with everything else.

use sqlx::{Postgres, Transaction};

use super::{StoreError, Tenants};
use crate::tenants::Tenant;

/// A tenant's storage use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StorageUsage {
    /// Bytes of photos charged now.
    pub used_bytes: i64,
    /// The quota.
    pub max_bytes: i64,
}

/// Why a reservation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// The reservation would exceed the quota.
    #[error("storage quota exceeded: {requested} more bytes do not fit ({} of {} used)", usage.used_bytes, usage.max_bytes)]
    QuotaExceeded {
        /// The use when the reservation was refused.
        usage: StorageUsage,
        /// Bytes asked for.
        requested: i64,
    },
    /// The client address has uploaded its day's bytes (open service).
    #[error(
        "daily upload limit reached: {requested} more bytes do not fit ({used_bytes} of {max_bytes} used today)"
    )]
    DailyLimit {
        /// Bytes this address uploaded today.
        used_bytes: i64,
        /// The daily limit.
        max_bytes: i64,
        /// Bytes asked for.
        requested: i64,
        /// Until the day's count starts again.
        retry_after: std::time::Duration,
    },
    /// The open service's store holds its cap.
    #[error(
        "the store is full: {requested} more bytes do not fit ({used_bytes} of {max_bytes} used)"
    )]
    StoreFull {
        /// Bytes held by reports without a tenant.
        used_bytes: i64,
        /// The cap.
        max_bytes: i64,
        /// Bytes asked for.
        requested: i64,
    },
    /// No such tenant (its API key was removed while the request ran).
    #[error("no such tenant")]
    UnknownTenant,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ReserveError {
    fn from(e: sqlx::Error) -> Self {
        ReserveError::Store(e.into())
    }
}

impl Tenants<'_> {
    /// Creates the configured tenants and sets their quotas; known tenants keep their use.
    pub async fn sync<'t>(
        self,
        tenants: impl IntoIterator<Item = &'t Tenant>,
    ) -> Result<(), StoreError> {
        for tenant in tenants {
            sqlx::query(
                "INSERT INTO tenants (id, max_bytes) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET max_bytes = EXCLUDED.max_bytes, updated_at = now()",
            )
            .bind(&*tenant.id)
            .bind(i64::try_from(tenant.max_storage_bytes).unwrap_or(i64::MAX))
            .execute(self.pool)
            .await?;
        }
        Ok(())
    }

    /// A tenant's storage use (`None`: no such tenant).
    pub async fn storage_usage(self, tenant: &str) -> Result<Option<StorageUsage>, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT used_bytes, max_bytes FROM tenants WHERE id = $1")
                .bind(tenant)
                .fetch_optional(self.pool)
                .await?;
        Ok(row.map(|(used_bytes, max_bytes)| StorageUsage {
            used_bytes,
            max_bytes,
        }))
    }
}

/// Reserves `bytes` of `tenant`'s quota inside the transaction that records the upload, so a
/// failed or interrupted upload never keeps its reservation; or refuses with the current use.
pub(super) async fn reserve_in(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    bytes: i64,
) -> Result<(), ReserveError> {
    let reserved = sqlx::query(
        "UPDATE tenants SET used_bytes = used_bytes + $2, updated_at = now()
         WHERE id = $1 AND used_bytes + $2 <= max_bytes",
    )
    .bind(tenant)
    .bind(bytes)
    .execute(&mut **tx)
    .await?;
    if reserved.rows_affected() == 1 {
        return Ok(());
    }
    let usage: Option<(i64, i64)> =
        sqlx::query_as("SELECT used_bytes, max_bytes FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await?;
    match usage {
        Some((used_bytes, max_bytes)) => Err(ReserveError::QuotaExceeded {
            usage: StorageUsage {
                used_bytes,
                max_bytes,
            },
            requested: bytes,
        }),
        None => Err(ReserveError::UnknownTenant),
    }
}

/// Gives back `bytes` of `tenant`'s quota inside a transaction (a report's deletion).
pub(super) async fn release_in(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    bytes: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenants SET used_bytes = GREATEST(used_bytes - $2, 0), updated_at = now() WHERE id = $1",
    )
    .bind(tenant)
    .bind(bytes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
