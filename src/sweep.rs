//! The sweep: reconciles the photo store with the `blobs` table, one folder of the store's layout
//! (the first byte of the content hash) at a time, so memory stays bounded by a 256th of the data.
//!
//! - An object no row names, older than the grace period, is deleted: an upload that crashed
//!   between writing its objects and recording them left it. (Younger ones may belong to an
//!   upload still being recorded.)
//! - A blob no photo uses is queued for purging (deletions from before purging existed).
//! - A missing thumbnail of an embedded photo is made again from the photo.
//! - A missing photo cannot be made again: it is logged and counted for the operator.
//!
//! One process at a time sweeps (a PostgreSQL advisory lock), whichever replica comes first.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;

use crate::imaging::{self, DecodeCaps};
use crate::jobs::JobPayload;
use crate::photo_store::{PHOTOS, PhotoStore, PhotoStoreError, THUMBNAILS};
use crate::store::{Store, StoreError};
use crate::telemetry::prometheus::Exposition;

/// What the sweep needs.
#[derive(Clone)]
pub struct Sweeper {
    /// The database.
    pub store: Store,
    /// The photo store.
    pub storage: PhotoStore,
    /// Caps for decoding a photo whose thumbnail is made again.
    pub decode: DecodeCaps,
    /// Objects younger than this are never taken for orphans.
    pub grace: Duration,
    /// Attempts of the purge jobs it queues.
    pub max_attempts: u32,
    /// Totals over this process's sweeps.
    pub totals: std::sync::Arc<SweepTotals>,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The photo store failed.
    #[error(transparent)]
    PhotoStore(#[from] PhotoStoreError),
}

/// What one sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Objects looked at.
    pub objects: u64,
    /// Blob rows looked at.
    pub blobs: u64,
    /// Objects without a row, deleted.
    pub orphans_deleted: u64,
    /// Blobs no photo uses, queued for purging.
    pub unused_queued: u64,
    /// Thumbnails made again.
    pub thumbnails_rebuilt: u64,
    /// Photos whose bytes are gone from the store (nothing can bring them back).
    pub photos_missing: u64,
}

/// Totals of this process's sweeps, for `/metrics`.
#[derive(Debug, Default)]
pub struct SweepTotals {
    runs: AtomicU64,
    orphans_deleted: AtomicU64,
    unused_queued: AtomicU64,
    thumbnails_rebuilt: AtomicU64,
    photos_missing: AtomicU64,
}

impl SweepTotals {
    fn add(&self, report: &SweepReport) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        for (counter, n) in [
            (&self.orphans_deleted, report.orphans_deleted),
            (&self.unused_queued, report.unused_queued),
            (&self.thumbnails_rebuilt, report.thumbnails_rebuilt),
            (&self.photos_missing, report.photos_missing),
        ] {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Prometheus lines: sweeps run, and what they repaired.
    pub fn render(&self, out: &mut Exposition) {
        out.single(
            "lookalike_sweeps_total",
            "counter",
            "Sweeps of the photo store this process ran.",
            self.runs.load(Ordering::Relaxed) as f64,
        );
        out.help(
            "lookalike_sweep_findings_total",
            "counter",
            "What this process's sweeps found and did, by finding.",
        );
        for (finding, counter) in [
            ("orphan_deleted", &self.orphans_deleted),
            ("unused_queued", &self.unused_queued),
            ("thumbnail_rebuilt", &self.thumbnails_rebuilt),
            ("photo_missing", &self.photos_missing),
        ] {
            out.sample(
                "lookalike_sweep_findings_total",
                &[("finding", finding)],
                counter.load(Ordering::Relaxed) as f64,
            );
        }
    }
}

impl Sweeper {
    /// Sweeps the whole store if no other process is sweeping; `None` when one is.
    pub async fn sweep_if_free(&self) -> Result<Option<SweepReport>, SweepError> {
        let Some(lock) = self.store.blobs().try_sweep_lock().await? else {
            return Ok(None);
        };
        let swept = self.sweep().await;
        if let Err(e) = self.store.blobs().release_sweep_lock(lock).await {
            // The lock goes with its connection when the pool closes it.
            tracing::warn!(error = %e, "could not release the sweep lock");
        }
        let report = swept?;
        self.totals.add(&report);
        Ok(Some(report))
    }

    /// Visits every folder once.
    async fn sweep(&self) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        for first in 0..=u8::MAX {
            self.sweep_folder(first, &mut report).await?;
        }
        Ok(report)
    }

    async fn sweep_folder(&self, first: u8, report: &mut SweepReport) -> Result<(), SweepError> {
        // Objects before rows: an upload writes its objects before its row, so a row read here
        // has its objects in the listing unless they are really gone.
        let folder = format!("{first:02x}");
        let mut objects = self.storage.list(&format!("{PHOTOS}/{folder}")).await?;
        objects.extend(self.storage.list(&format!("{THUMBNAILS}/{folder}")).await?);
        let blobs = self.store.blobs().starting_with(first).await?;
        report.objects += objects.len() as u64;
        report.blobs += blobs.len() as u64;
        let named: HashSet<&str> = blobs
            .iter()
            .flat_map(|b| [b.keys.photo.as_str(), b.keys.thumbnail.as_str()])
            .collect();
        let old_enough = Utc::now() - chrono::Duration::from_std(self.grace).unwrap_or_default();
        for object in &objects {
            if !named.contains(object.key.as_str()) && object.written < old_enough {
                self.storage.delete(&object.key).await?;
                tracing::info!(key = %object.key, "sweep: deleted an object no photo uses");
                report.orphans_deleted += 1;
            }
        }
        let present: HashSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        for blob in &blobs {
            let hash = hex::encode(&blob.sha256);
            if !blob.in_use {
                self.store
                    .jobs()
                    .enqueue(&JobPayload::purge(&blob.sha256), self.max_attempts)
                    .await?;
                report.unused_queued += 1;
            } else if !present.contains(blob.keys.photo.as_str()) {
                tracing::error!(sha256 = %hash, key = %blob.keys.photo, "sweep: a photo's bytes are missing from the photo store");
                report.photos_missing += 1;
            } else if blob.embedded && !present.contains(blob.keys.thumbnail.as_str()) {
                // Before its first embedding a photo has no thumbnail yet: its job makes it.
                let photo = self.storage.get(&blob.keys.photo).await?;
                match self.make_thumbnail(photo).await {
                    Some(thumbnail) => {
                        self.storage.put(&blob.keys.thumbnail, thumbnail).await?;
                        tracing::info!(sha256 = %hash, "sweep: made a missing thumbnail again");
                        report.thumbnails_rebuilt += 1;
                    }
                    None => {
                        tracing::warn!(sha256 = %hash, "sweep: a missing thumbnail could not be made again")
                    }
                }
            }
        }
        Ok(())
    }

    async fn make_thumbnail(&self, photo: Bytes) -> Option<Bytes> {
        let caps = self.decode;
        tokio::task::spawn_blocking(move || {
            imaging::decode_with_thumbnail(&photo, &caps)
                .ok()
                .map(|(_, thumbnail)| Bytes::from(thumbnail))
        })
        .await
        .ok()
        .flatten()
    }
}
