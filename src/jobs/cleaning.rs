//! The `strip_metadata` job: a photo stored before uploads were cleaned on their way in gets its
//! object replaced by a copy without metadata (see `imaging::metadata`). Idempotent (a cleaned
//! blob is skipped), resumable (the new object is written before the row points at it; a crash
//! between leaves an object without a row, which the sweep removes), one blob per job.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{AttemptError, StripMetadataJob, Worker, blob_hash};
use crate::imaging::ImagingError;
use crate::imaging::metadata::{self, ProfilePolicy};
use crate::photo_store::ObjectKeys;
use crate::store::ClaimedJob;

impl Worker {
    /// Cleans one stored blob's bytes and records them, together with the job's completion.
    pub(super) async fn strip_metadata(
        &self,
        job: &ClaimedJob,
        work: &StripMetadataJob,
    ) -> Result<(), AttemptError> {
        let ctx = &self.context;
        let sha256 = blob_hash(&work.sha256)?;
        let attempts = u32::try_from(job.max_attempts).unwrap_or(5);
        let Some(blob) = ctx
            .store
            .blobs()
            .uncleaned(&sha256)
            .await
            .map_err(AttemptError::of_store)?
        else {
            // Cleaned already, or deleted since.
            return self.finish(job).await;
        };
        let format = blob.format;
        let bytes = ctx
            .storage
            .get(&blob.storage_key)
            .await
            .map_err(AttemptError::of_photo_store)?;
        let original = bytes.len();
        // On a decode slot: a PNG's colour profile is inflated (under a small cap) to be checked.
        // A stored photo is not refused: a profile past the cap is dropped.
        let cleaning = ctx.pipeline.decode_slots().run_blocking(move || {
            metadata::strip(&bytes, format, ProfilePolicy::Drop).map(|clean| {
                let unchanged = clean == bytes.as_ref();
                (clean, unchanged)
            })
        });
        let (clean, unchanged) = cleaning
            .await
            .map_err(|e| AttemptError::Busy(e.retry_after()))?
            .unwrap_or_else(|_| {
                Err(ImagingError::Decode(
                    "the metadata reader failed on this photo".into(),
                ))
            })
            .map_err(|e| AttemptError::Rejected(e.to_string()))?;
        let cleaned = clean.len();
        let new_key = (!unchanged).then(|| ObjectKeys::new_for(&work.sha256).photo);
        if let Some(key) = &new_key {
            ctx.storage
                .put(key, Bytes::from(clean))
                .await
                .map_err(AttemptError::of_photo_store)?;
        }
        let recorded = ctx
            .store
            .blobs()
            .record_cleaned(
                job.id,
                &self.id,
                &sha256,
                &blob.storage_key,
                new_key.as_deref().map(|k| (k, cleaned)),
                attempts,
            )
            .await;
        match recorded {
            Ok(true) => {
                self.stats.metadata_cleaned.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .metadata_bytes_removed
                    .fetch_add(original.saturating_sub(cleaned) as u64, Ordering::Relaxed);
                Ok(())
            }
            outcome => {
                // Not recorded (the blob went or changed, or the database failed): the copy
                // written above is nobody's.
                if let Some(key) = &new_key
                    && let Err(e) = ctx.storage.delete(key).await
                {
                    tracing::warn!(%key, error = %e, "could not delete an unused cleaned copy; the sweep will");
                }
                outcome.map(drop).map_err(AttemptError::of_store)
            }
        }
    }
}
