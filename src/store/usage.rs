//! SQL of the open service's limits (no API keys): bytes of photos uploaded per client address
//! per UTC day, and the bytes all reports without a tenant hold. Both are reserved in the
//! transaction that records the upload, like a tenant's quota (`tenants`): one conditional
//! statement each, so concurrent uploads never over-commit, and a failed upload reserves nothing.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use sqlx::{Postgres, Transaction};

use super::tenants::ReserveError;
use super::{StoreError, Usage};
use crate::domain::limits::OpenLimits;

/// What an address has uploaded today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AddressUsage {
    /// Bytes of photos uploaded since the UTC day began.
    pub used_bytes: i64,
    /// The daily limit.
    pub max_bytes: i64,
    /// When the day's count starts again (the next UTC midnight).
    pub resets_at: DateTime<Utc>,
}

/// The next UTC midnight after `now`.
pub fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    tomorrow.and_time(NaiveTime::MIN).and_utc()
}

/// How long until the day's counts start again.
pub fn until_reset(now: DateTime<Utc>) -> Duration {
    (next_utc_midnight(now) - now)
        .to_std()
        .unwrap_or(Duration::from_secs(1))
}

impl Usage<'_> {
    /// What `address` has uploaded today (UTC), against `limits`.
    pub async fn address(
        self,
        address: &str,
        limits: &OpenLimits,
    ) -> Result<AddressUsage, StoreError> {
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT bytes FROM upload_usage WHERE address = $1 AND day = (now() AT TIME ZONE 'UTC')::date",
        )
        .bind(address)
        .fetch_optional(self.pool)
        .await?;
        Ok(AddressUsage {
            used_bytes: used.unwrap_or(0),
            max_bytes: limits.daily_bytes_per_address,
            resets_at: next_utc_midnight(Utc::now()),
        })
    }

    /// What `address` has uploaded today (UTC), and the bytes all reports without a tenant hold
    /// now, in one round trip (an upload's early check of both).
    pub async fn open_use(self, address: &str) -> Result<(i64, i64), StoreError> {
        let (day, total): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT bytes FROM upload_usage
                     WHERE address = $1 AND day = (now() AT TIME ZONE 'UTC')::date),
                    (SELECT used_bytes FROM open_storage WHERE id = 1)",
        )
        .bind(address)
        .fetch_one(self.pool)
        .await?;
        Ok((day.unwrap_or(0), total.unwrap_or(0)))
    }

    /// Forgets the daily counts of days before yesterday (they limit nothing any more).
    pub async fn prune(self) -> Result<u64, StoreError> {
        Ok(
            sqlx::query(
                "DELETE FROM upload_usage WHERE day < (now() AT TIME ZONE 'UTC')::date - 1",
            )
            .execute(self.pool)
            .await?
            .rows_affected(),
        )
    }
}

/// Reserves `bytes` of `address`'s day and of the open store's total inside the transaction that
/// records the upload, or refuses with the use that stands in the way.
pub(super) async fn reserve_open_in(
    tx: &mut Transaction<'_, Postgres>,
    address: &str,
    bytes: i64,
    limits: &OpenLimits,
) -> Result<(), ReserveError> {
    // Both rows in one round trip (each is locked until the commit, which comes right after):
    // the address's day, then the open store's total; an upload refused by either rolls back.
    let (day_used, total_used): (Option<i64>, Option<i64>) = sqlx::query_as(
        "WITH day AS (
             INSERT INTO upload_usage AS u (address, day, bytes)
             VALUES ($1, (now() AT TIME ZONE 'UTC')::date, $2)
             ON CONFLICT (address, day) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes
                 WHERE u.bytes + EXCLUDED.bytes <= $3
             RETURNING bytes
         ), total AS (
             UPDATE open_storage SET used_bytes = used_bytes + $2
             WHERE id = 1 AND used_bytes + $2 <= $4
             RETURNING used_bytes
         )
         SELECT (SELECT bytes FROM day), (SELECT used_bytes FROM total)",
    )
    .bind(address)
    .bind(bytes)
    .bind(limits.daily_bytes_per_address)
    .bind(limits.total_bytes)
    .fetch_one(&mut **tx)
    .await?;
    // A first upload of the day larger than the limit is inserted (the conflict clause does not
    // apply to it) and refused here.
    let over_day = match day_used {
        Some(used) if used <= limits.daily_bytes_per_address => None,
        Some(used) => Some(used - bytes),
        None => Some(
            sqlx::query_scalar(
                "SELECT bytes FROM upload_usage WHERE address = $1 AND day = (now() AT TIME ZONE 'UTC')::date",
            )
            .bind(address)
            .fetch_optional(&mut **tx)
            .await?
            .unwrap_or(0),
        ),
    };
    if let Some(used_bytes) = over_day {
        return Err(ReserveError::DailyLimit {
            used_bytes,
            max_bytes: limits.daily_bytes_per_address,
            requested: bytes,
            retry_after: until_reset(Utc::now()),
        });
    }
    if total_used.is_some() {
        return Ok(());
    }
    let used_bytes: i64 = sqlx::query_scalar("SELECT used_bytes FROM open_storage WHERE id = 1")
        .fetch_optional(&mut **tx)
        .await?
        .unwrap_or(0);
    Err(ReserveError::StoreFull {
        used_bytes,
        max_bytes: limits.total_bytes,
        requested: bytes,
    })
}

/// Gives the open store back `bytes` inside a transaction (a report without a tenant deleted).
/// The address's day keeps them: the daily limit counts what was uploaded, not what is kept.
pub(super) async fn release_open_in(
    tx: &mut Transaction<'_, Postgres>,
    bytes: i64,
) -> Result<(), StoreError> {
    if bytes > 0 {
        sqlx::query(
            "UPDATE open_storage SET used_bytes = GREATEST(used_bytes - $1, 0) WHERE id = 1",
        )
        .bind(bytes)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_resets_at_the_next_utc_midnight() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T23:59:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            next_utc_midnight(now).to_rfc3339(),
            "2026-12-07T00:00:00+00:00"
        );
        assert_eq!(until_reset(now), Duration::from_secs(30));
    }
}
