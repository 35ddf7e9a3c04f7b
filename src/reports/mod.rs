//! Reports with photos: validation, storage of the photos, and the one transaction that records
//! the report with its embedding jobs. The embedding itself happens later, in the `jobs` workers.

mod model;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

pub use model::*;

use crate::capacity::{CapacityError, Slots};
use crate::imaging::{self, DecodeCaps, ImagingError, THUMBNAIL_SIDE};
use crate::photo_store::{self, PhotoStore, PhotoStoreError};
use crate::store::{
    NewPhoto, OwnerCheck, ReserveError, StorageCharge, StorageUsage, Store, StoreError,
};
use crate::telemetry::timing::{self, Stage};

/// Why a report action failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A field is invalid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// A photo is not acceptable.
    #[error("photo {index}: {error}")]
    Photo { index: usize, error: ImagingError },
    /// Too many uploads or decodes at once.
    #[error(transparent)]
    Busy(#[from] CapacityError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The photo store failed.
    #[error(transparent)]
    PhotoStore(#[from] PhotoStoreError),
    /// No such report or photo.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// No owner token was given.
    #[error("this needs the report's owner token (Authorization: Bearer <token>)")]
    Unauthorized,
    /// The owner token is not this report's.
    #[error("the owner token does not match this report")]
    Forbidden,
    /// The tenant's storage quota does not fit the photos.
    #[error(transparent)]
    Quota(#[from] ReserveError),
}

/// A created report and its owner token (shown once; only its hash is stored).
#[derive(Debug, Clone)]
pub struct Created {
    /// The report as stored.
    pub report: Report,
    /// Secret needed to change or delete the report.
    pub owner_token: String,
}

/// Report operations; cheap to clone.
#[derive(Clone)]
pub struct ReportService {
    store: Store,
    storage: PhotoStore,
    decode: Arc<Slots>,
    uploads: Arc<Slots>,
    limits: DecodeCaps,
    model_id: i32,
    max_attempts: u32,
    quota_rejections: Arc<AtomicU64>,
}

/// Settings of the report service.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Caps on decoding uploaded photos.
    pub limits: DecodeCaps,
    /// The current model's id (from `Store::register_model`).
    pub model_id: i32,
    /// Attempts per embedding job.
    pub max_attempts: u32,
}

impl ReportService {
    /// The service over its parts; `decode` is shared with the embedding pipeline.
    pub fn new(
        store: Store,
        storage: PhotoStore,
        decode: Arc<Slots>,
        uploads: Arc<Slots>,
        settings: ReportSettings,
    ) -> Self {
        ReportService {
            store,
            storage,
            decode,
            uploads,
            limits: settings.limits,
            model_id: settings.model_id,
            max_attempts: settings.max_attempts,
            quota_rejections: Arc::default(),
        }
    }

    /// The upload slots (for status).
    pub fn upload_slots(&self) -> &Slots {
        &self.uploads
    }

    /// Uploads refused because they did not fit their tenant's storage quota.
    pub fn quota_rejections(&self) -> u64 {
        self.quota_rejections.load(Ordering::Relaxed)
    }

    /// The current model's id.
    pub fn model_id(&self) -> i32 {
        self.model_id
    }

    /// Waits (bounded) for an upload slot; hold it while the upload is read, checked and stored.
    pub async fn upload_slot(&self) -> Result<OwnedSemaphorePermit, CapacityError> {
        self.uploads.acquire().await
    }

    /// Checks every photo, stores photos and thumbnails, and records the report (of `tenant`,
    /// charged to its storage quota) with one embedding job per new photo. Answers without
    /// waiting for any inference.
    pub async fn create(
        &self,
        new: NewReport,
        photos: Vec<Bytes>,
        tenant: Option<&str>,
    ) -> Result<Created, ReportError> {
        let created = self.create_report(new, photos, tenant).await;
        if let Err(ReportError::Quota(ReserveError::QuotaExceeded { .. })) = &created {
            self.quota_rejections.fetch_add(1, Ordering::Relaxed);
        }
        created
    }

    async fn create_report(
        &self,
        new: NewReport,
        photos: Vec<Bytes>,
        tenant: Option<&str>,
    ) -> Result<Created, ReportError> {
        // Bytes of photos as uploaded, which is what the quota counts.
        let charge = tenant.map(|tenant| StorageCharge {
            tenant: tenant.to_owned(),
            bytes: photos
                .iter()
                .map(|p| i64::try_from(p.len()).unwrap_or(i64::MAX))
                .sum(),
        });
        if let Some(charge) = &charge {
            // Refuses early, before decoding or writing anything, what clearly does not fit; the
            // exact check is the reservation in the transaction that records the report.
            self.check_room(charge).await?;
        }
        // Check every photo before storing anything.
        let mut checked = Vec::with_capacity(photos.len());
        for (index, bytes) in photos.into_iter().enumerate() {
            let limits = self.limits;
            let work_bytes = bytes.clone();
            let checking = self
                .decode
                .run_blocking(move || -> Result<_, ImagingError> {
                    let photo =
                        imaging::decode(&work_bytes, &limits, (THUMBNAIL_SIDE, THUMBNAIL_SIDE))?;
                    let thumbnail = imaging::thumbnail(&photo.pixels, THUMBNAIL_SIDE)?;
                    Ok((photo, thumbnail))
                });
            let (photo, thumbnail) = timing::measure(Stage::Decode, checking)
                .await?
                .unwrap_or_else(|_| {
                    Err(ImagingError::Decode(
                        "the decoder failed on this photo".into(),
                    ))
                })
                .map_err(|error| ReportError::Photo { index, error })?;
            let sha256: [u8; 32] = Sha256::digest(&bytes).into();
            let hex = hex::encode(sha256);
            let new_photo = NewPhoto {
                sha256,
                storage_key: photo_store::photo_key(&hex),
                thumbnail_key: photo_store::thumbnail_key(&hex),
                format: format!("{:?}", photo.format).to_lowercase(),
                width: photo.width,
                height: photo.height,
                bytes: bytes.len(),
            };
            checked.push((new_photo, bytes, Bytes::from(thumbnail)));
        }
        // Content-addressed: writing a photo that is already stored rewrites the same bytes.
        for (photo, bytes, thumbnail) in &checked {
            self.storage.put(&photo.storage_key, bytes.clone()).await?;
            self.storage
                .put(&photo.thumbnail_key, thumbnail.clone())
                .await?;
        }
        let owner_token = new_owner_token();
        let photos: Vec<NewPhoto> = checked.into_iter().map(|(p, _, _)| p).collect();
        let owner_token_hash = token_hash(&owner_token);
        let recording = self.store.create_report(
            &new,
            &owner_token_hash,
            &photos,
            self.model_id,
            self.max_attempts,
            charge.as_ref(),
        );
        let created = timing::measure(Stage::Database, recording).await?;
        Ok(Created {
            report: created.report,
            owner_token,
        })
    }

    /// Fails with the tenant's use when `charge` would clearly exceed its quota.
    async fn check_room(&self, charge: &StorageCharge) -> Result<(), ReportError> {
        match self.store.storage_usage(&charge.tenant).await? {
            Some(usage) if usage.used_bytes.saturating_add(charge.bytes) > usage.max_bytes => {
                Err(ReserveError::QuotaExceeded {
                    usage,
                    requested: charge.bytes,
                }
                .into())
            }
            Some(_) => Ok(()),
            None => Err(ReserveError::UnknownTenant.into()),
        }
    }

    /// A tenant's storage use.
    pub async fn storage_usage(&self, tenant: &str) -> Result<StorageUsage, ReportError> {
        self.store
            .storage_usage(tenant)
            .await?
            .ok_or(ReportError::Quota(ReserveError::UnknownTenant))
    }

    /// One report of `tenant`, with its stored possible matches.
    pub async fn get(&self, id: Uuid, tenant: Option<&str>) -> Result<Report, ReportError> {
        let mut report = self
            .store
            .report(id, tenant, self.model_id)
            .await?
            .ok_or(ReportError::NotFound("report"))?;
        report.possible_matches = Some(self.store.stored_matches(id, self.model_id).await?);
        Ok(report)
    }

    /// A page of reports.
    pub async fn list(&self, filter: &ReportFilter) -> Result<Vec<Report>, ReportError> {
        Ok(self.store.reports(filter, self.model_id).await?)
    }

    /// Deletes a report of `tenant`, given its owner token; its bytes go back to the quota.
    pub async fn delete(
        &self,
        id: Uuid,
        tenant: Option<&str>,
        token: Option<&str>,
    ) -> Result<(), ReportError> {
        let token = token.ok_or(ReportError::Unauthorized)?;
        owner_result(
            self.store
                .delete_report(id, tenant, &token_hash(token))
                .await?,
        )
    }

    /// Changes a report, given its owner token.
    pub async fn update(
        &self,
        id: Uuid,
        tenant: Option<&str>,
        token: Option<&str>,
        patch: &ReportPatch,
    ) -> Result<Report, ReportError> {
        let token = token.ok_or(ReportError::Unauthorized)?;
        patch.validate()?;
        owner_result(
            self.store
                .update_report(id, tenant, &token_hash(token), patch)
                .await?,
        )?;
        self.get(id, tenant).await
    }

    /// A photo's bytes and media type.
    pub async fn photo(
        &self,
        id: Uuid,
        tenant: Option<&str>,
    ) -> Result<(Bytes, &'static str), ReportError> {
        let keys = self
            .store
            .photo_keys(id, tenant)
            .await?
            .ok_or(ReportError::NotFound("photo"))?;
        let mime = match keys.format.as_str() {
            "png" => "image/png",
            "webp" => "image/webp",
            _ => "image/jpeg",
        };
        Ok((self.storage.get(&keys.photo).await?, mime))
    }

    /// A photo's thumbnail (JPEG).
    pub async fn thumbnail(&self, id: Uuid, tenant: Option<&str>) -> Result<Bytes, ReportError> {
        let keys = self
            .store
            .photo_keys(id, tenant)
            .await?
            .ok_or(ReportError::NotFound("photo"))?;
        Ok(self.storage.get(&keys.thumbnail).await?)
    }
}

fn owner_result(check: OwnerCheck) -> Result<(), ReportError> {
    match check {
        OwnerCheck::Done => Ok(()),
        OwnerCheck::NotFound => Err(ReportError::NotFound("report")),
        OwnerCheck::Forbidden => Err(ReportError::Forbidden),
    }
}

/// 256 random bits, hex.
fn new_owner_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored of an owner token.
fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}
