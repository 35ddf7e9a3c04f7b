//! SQL of metadata removal from photos stored before uploads were cleaned on their way in:
//! which blobs are still to clean, and the swap of a blob's object for its cleaned copy.

use super::formats::format_named;
use super::{Blobs, Jobs, StoreError, jobs};
use crate::domain::job::JobPayload;
use crate::imaging::PhotoFormat;

/// A blob still holding its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncleanedBlob {
    /// The photo store's key of its bytes.
    pub storage_key: String,
    /// Its format.
    pub format: PhotoFormat,
}

impl Jobs<'_> {
    /// Queues one `strip_metadata` job per blob not cleaned yet that has none (a job that failed
    /// on bad bytes stays failed). Returns how many were queued.
    pub async fn enqueue_metadata_removal(self, max_attempts: u32) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let queued = sqlx::query(
            "INSERT INTO jobs (kind, dedupe_key, payload, max_attempts)
             SELECT 'strip_metadata', $2 || encode(sha256, 'hex'),
                    jsonb_build_object('sha256', encode(sha256, 'hex')), $1
             FROM blobs WHERE metadata_stripped_at IS NULL
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
        .bind(JobPayload::STRIP_METADATA_KEY_PREFIX)
        .execute(&mut *tx)
        .await?;
        jobs::notify(&mut tx).await?;
        tx.commit().await?;
        Ok(queued.rows_affected())
    }
}

impl Blobs<'_> {
    /// The blob `sha256` if it is stored and not cleaned yet.
    pub async fn uncleaned(self, sha256: &[u8]) -> Result<Option<UncleanedBlob>, StoreError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT storage_key, format FROM blobs WHERE sha256 = $1 AND metadata_stripped_at IS NULL",
        )
        .bind(sha256)
        .fetch_optional(self.pool)
        .await?;
        row.map(|(storage_key, format)| {
            Ok(UncleanedBlob {
                storage_key,
                format: format_named(&format)?,
            })
        })
        .transpose()
    }

    /// Records the blob `sha256` as cleaned, with its bytes now under `cleaned` (`None`: the
    /// bytes had no metadata and stay where they are), and finishes job `job_id`, in one
    /// transaction; the object it held before is queued for deletion. False when the blob was
    /// gone, cleaned, or moved meanwhile: then `cleaned` is nobody's and the caller deletes it.
    pub async fn record_cleaned(
        self,
        job_id: i64,
        worker: &str,
        sha256: &[u8],
        previous_key: &str,
        cleaned: Option<(&str, usize)>,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (key, bytes) = cleaned.unwrap_or((previous_key, 0));
        let updated = sqlx::query(
            "UPDATE blobs SET storage_key = $2, metadata_stripped_at = now(),
                 bytes = CASE WHEN $3 > 0 THEN $3 ELSE bytes END
             WHERE sha256 = $1 AND storage_key = $4 AND metadata_stripped_at IS NULL",
        )
        .bind(sha256)
        .bind(key)
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .bind(previous_key)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if updated && cleaned.is_some() {
            let delete = JobPayload::delete_objects(vec![previous_key.to_owned()]);
            jobs::enqueue(&mut tx, &delete, max_attempts).await?;
            jobs::notify(&mut tx).await?;
        }
        Jobs::finish_in(&mut tx, job_id, worker).await?;
        tx.commit().await?;
        Ok(updated)
    }
}
