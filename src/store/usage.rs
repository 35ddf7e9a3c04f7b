//! SQL of the open service's limits (no API keys): bytes of photos uploaded per client address
//! per UTC day, and the bytes all reports without a tenant hold. Both are reserved in the
//! transaction that records the upload, like a tenant's quota (`tenants`): one conditional
//! statement each, so concurrent uploads never over-commit, and a failed upload reserves nothing.
//! The open store's total is kept in [`OPEN_STORAGE_SHARDS`] rows (migration 0017), so that
//! uploads from different addresses do not all queue on one row's lock through each other's
//! commit: each reserves in one row, within that row's share of the cap.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use sqlx::{Postgres, Transaction};

use super::tenants::ReserveError;
use super::{StoreError, Usage};
use crate::domain::limits::OpenLimits;

/// Rows the open store's total is kept in (ids 1 to this; migration 0017 made them): each holds
/// at most its share of the cap, a sixty-fourth, so their sum never passes it.
pub const OPEN_STORAGE_SHARDS: i16 = 64;

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
                    (SELECT sum(used_bytes)::bigint FROM open_storage)",
        )
        .bind(address)
        .fetch_one(self.pool)
        .await?;
        Ok((day.unwrap_or(0), total.unwrap_or(0)))
    }

    /// Bytes all reports without a tenant hold now.
    pub async fn open_storage_used(self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT sum(used_bytes)::bigint FROM open_storage",
            )
            .fetch_one(self.pool)
            .await?
            .unwrap_or(0),
        )
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
    // the address's day, then one row of the open store's total, of a random shard, within the
    // shard's share of the cap; an upload refused by either rolls back.
    let shard = 1 + (rand::random::<u16>() % OPEN_STORAGE_SHARDS as u16) as i16;
    let (day_used, total_used): (Option<i64>, Option<i64>) = sqlx::query_as(
        "WITH day AS (
             INSERT INTO upload_usage AS u (address, day, bytes)
             VALUES ($1, (now() AT TIME ZONE 'UTC')::date, $2)
             ON CONFLICT (address, day) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes
                 WHERE u.bytes + EXCLUDED.bytes <= $3
             RETURNING bytes
         ), total AS (
             UPDATE open_storage SET used_bytes = used_bytes + $2
             WHERE id = $5
               AND used_bytes + $2 <= $4 / $6 + CASE WHEN $5 <= $4 % $6 THEN 1 ELSE 0 END
             RETURNING used_bytes
         )
         SELECT (SELECT bytes FROM day), (SELECT used_bytes FROM total)",
    )
    .bind(address)
    .bind(bytes)
    .bind(limits.daily_bytes_per_address)
    .bind(limits.total_bytes)
    .bind(shard)
    .bind(i64::from(OPEN_STORAGE_SHARDS))
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
    // The shard's share is used up: the whole store's room decides, under all shards' locks.
    if spread_open_storage(tx, bytes, Some(limits.total_bytes)).await? {
        return Ok(());
    }
    let used_bytes: Option<i64> =
        sqlx::query_scalar("SELECT sum(used_bytes)::bigint FROM open_storage")
            .fetch_one(&mut **tx)
            .await?;
    Err(ReserveError::StoreFull {
        used_bytes: used_bytes.unwrap_or(0),
        max_bytes: limits.total_bytes,
        requested: bytes,
    })
}

/// Adds `delta` bytes to the open store's total and spreads the sum evenly over its shards (each
/// then holds at most its share of any cap the sum is within), under all their locks, taken in
/// id order; below zero it stops at zero. With `cap`, only if the new sum is within it. Whether
/// it was applied.
async fn spread_open_storage(
    tx: &mut Transaction<'_, Postgres>,
    delta: i64,
    cap: Option<i64>,
) -> Result<bool, StoreError> {
    let spread = sqlx::query(
        "WITH locked AS (SELECT id, used_bytes FROM open_storage ORDER BY id FOR UPDATE),
              total AS (SELECT greatest(coalesce(sum(used_bytes), 0) + $1, 0)::bigint AS bytes,
                               count(*) AS shards
                        FROM locked)
         UPDATE open_storage o
         SET used_bytes = total.bytes / total.shards
                          + CASE WHEN o.id <= total.bytes % total.shards THEN 1 ELSE 0 END
         FROM total
         WHERE total.bytes <= coalesce($2, total.bytes)",
    )
    .bind(delta)
    .bind(cap)
    .execute(&mut **tx)
    .await?;
    Ok(spread.rows_affected() > 0)
}

/// Gives the open store back `bytes` inside a transaction (a report without a tenant deleted).
/// The address's day keeps them: the daily limit counts what was uploaded, not what is kept.
pub(super) async fn release_open_in(
    tx: &mut Transaction<'_, Postgres>,
    bytes: i64,
) -> Result<(), StoreError> {
    if bytes > 0 {
        spread_open_storage(tx, -bytes, None).await?;
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
