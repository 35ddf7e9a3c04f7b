//! Reports with photos: validation, storage of the photos, and the one transaction that records
//! the report with its embedding jobs. The embedding itself happens later, in the `jobs` workers.

mod nearby;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

pub use crate::domain::report::*;

use crate::capacity::{CapacityError, Slots};
use crate::imaging::{self, DecodeCaps, ImagingError};
use crate::photo_store::{ObjectKeys, ObjectStream, PhotoStore, PhotoStoreError};
use crate::rate_limit::address_key;
use crate::store::{
    AddressUsage, NewPhoto, OpenLimits, OwnerCheck, Payer, Recorded, ReserveError, StorageCharge,
    StorageUsage, Store, StoreError,
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
    /// Too many uploads, or photos being checked, at once.
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
    /// The photo's thumbnail is made by its embedding job, which has not run (or has failed).
    #[error(
        "the thumbnail is made with the photo's embedding and is not there yet; the photo's embedding_status says how that goes"
    )]
    ThumbnailPending,
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
    photo_store: PhotoStore,
    uploads: Arc<Slots>,
    decode: Arc<Slots>,
    limits: DecodeCaps,
    model_id: i32,
    max_attempts: u32,
    match_limit: usize,
    quota_rejections: Arc<AtomicU64>,
    open_limits: OpenLimits,
    open_limit_rejections: Arc<AtomicU64>,
}

/// Who uploads a report, which decides what its photos are charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploader<'a> {
    /// A tenant (API key): its storage quota.
    Tenant(&'a str),
    /// A client of the open service, by address: its daily bytes and the open store's cap.
    Address(IpAddr),
    /// An operator's tool (`lookalike import`): no limit.
    Operator,
}

/// Settings of the report service.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Caps on decoding uploaded photos.
    pub limits: DecodeCaps,
    /// The slots the uploads' header checks run on (`serve`: their own, apart from the decodes).
    pub decode: Arc<Slots>,
    /// The current model's id (from `store.models().register`).
    pub model_id: i32,
    /// Attempts per embedding job.
    pub max_attempts: u32,
    /// Most possible matches shown per report.
    pub match_limit: usize,
}

impl ReportService {
    /// The service over its parts; `uploads` bounds the uploads being received at once.
    pub fn new(
        store: Store,
        photo_store: PhotoStore,
        uploads: Arc<Slots>,
        settings: ReportSettings,
    ) -> Self {
        ReportService {
            store,
            photo_store,
            uploads,
            decode: settings.decode,
            limits: settings.limits,
            model_id: settings.model_id,
            max_attempts: settings.max_attempts,
            match_limit: settings.match_limit,
            quota_rejections: Arc::default(),
            open_limits: OpenLimits::NONE,
            open_limit_rejections: Arc::default(),
        }
    }

    /// The service with the open service's upload limits (`OpenLimits::NONE` until set).
    pub fn with_open_limits(mut self, limits: OpenLimits) -> Self {
        self.open_limits = limits;
        self
    }

    /// The open service's upload limits in force.
    pub fn open_limits(&self) -> OpenLimits {
        self.open_limits
    }

    /// Uploads refused by the open service's limits (an address's day, the store's cap).
    pub fn open_limit_rejections(&self) -> u64 {
        self.open_limit_rejections.load(Ordering::Relaxed)
    }

    /// What `address` uploaded today, against the daily limit.
    pub async fn address_usage(&self, address: IpAddr) -> Result<AddressUsage, ReportError> {
        Ok(self
            .store
            .usage()
            .address(&address_key(address).to_string(), &self.open_limits)
            .await?)
    }

    /// The slots the uploads' header checks run on.
    pub fn check_slots(&self) -> &Slots {
        &self.decode
    }

    /// The upload slots (for status).
    pub fn upload_slots(&self) -> &Slots {
        &self.uploads
    }

    /// Prometheus lines: uploads refused by a tenant's quota and by the open service's limits.
    pub fn render_rejections(&self, out: &mut crate::telemetry::prometheus::Exposition) {
        out.single(
            "lookalike_quota_rejected_total",
            "counter",
            "Uploads refused because they did not fit their tenant's storage quota.",
            self.quota_rejections() as f64,
        );
        out.single(
            "lookalike_open_limit_rejected_total",
            "counter",
            "Uploads refused by the open service's limits (an address's bytes of the day, the store's cap).",
            self.open_limit_rejections() as f64,
        );
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

    /// As [`ReportService::upload_slot`], counted against the client `address`'s share of the
    /// slots (refused at once when it holds or waits for its share).
    pub async fn upload_slot_for(
        &self,
        address: Option<std::net::IpAddr>,
    ) -> Result<crate::capacity::AddressPermit, CapacityError> {
        self.uploads.acquire_for(address).await
    }

    /// Checks every photo's header, stores the photos, and records the report (of the
    /// uploader's tenant, charged to its storage quota; or of none, charged to the address's day
    /// and the open store's cap) with one embedding job per new photo. Answers without waiting
    /// for any inference.
    pub async fn create(
        &self,
        new: NewReport,
        photos: Vec<Bytes>,
        uploader: Uploader<'_>,
    ) -> Result<Created, ReportError> {
        let created = self.create_report(new, photos, uploader).await;
        match &created {
            Err(ReportError::Quota(ReserveError::QuotaExceeded { .. })) => {
                self.quota_rejections.fetch_add(1, Ordering::Relaxed);
            }
            Err(ReportError::Quota(
                ReserveError::DailyLimit { .. } | ReserveError::StoreFull { .. },
            )) => {
                self.open_limit_rejections.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        created
    }

    async fn create_report(
        &self,
        new: NewReport,
        photos: Vec<Bytes>,
        uploader: Uploader<'_>,
    ) -> Result<Created, ReportError> {
        // Bytes of photos as uploaded, which is what the quota and the limits count.
        let bytes = photos
            .iter()
            .map(|p| i64::try_from(p.len()).unwrap_or(i64::MAX))
            .fold(0i64, i64::saturating_add);
        let payer = match uploader {
            Uploader::Tenant(tenant) => Some(Payer::Tenant(tenant.to_owned())),
            Uploader::Address(address) => Some(Payer::Address {
                address: address_key(address).to_string(),
                limits: self.open_limits,
            }),
            Uploader::Operator => None,
        };
        let charge = payer.map(|payer| StorageCharge { payer, bytes });
        if let Some(charge) = &charge {
            // Refuses early, before reading headers or writing anything, what clearly does not fit; the
            // exact check is the reservation in the transaction that records the report.
            self.check_room(charge).await?;
        }
        // Check every photo before storing anything.
        let mut checked = Vec::with_capacity(photos.len());
        for (index, bytes) in photos.into_iter().enumerate() {
            checked.push(self.check_photo(index, bytes).await?);
        }
        let owner_token = new_owner_token();
        let token_hash = owner_token_hash(&owner_token);
        let hashes: Vec<[u8; 32]> = checked.iter().map(|c| c.photo.sha256).collect();
        // Bytes the store holds already are not written again; a blob purged between this look
        // and the recording is written on the next round.
        let mut have = self.store.blobs().stored(&hashes).await?;
        let mut written = Vec::new();
        for _round in 0..3 {
            match self.write_objects(&mut checked, &have).await {
                Ok(new) => written.extend(new),
                Err(e) => {
                    self.delete_objects(written).await;
                    return Err(e);
                }
            }
            let photos: Vec<NewPhoto> = checked.iter().map(|c| c.photo.clone()).collect();
            let recording = self.store.reports().create(
                &new,
                &token_hash,
                &photos,
                self.model_id,
                self.max_attempts,
                charge.as_ref(),
            );
            let recorded = timing::measure(Stage::Database, recording).await;
            match recorded {
                Ok(Recorded::Created(created)) => {
                    self.delete_objects(created.unused_objects).await;
                    return Ok(Created {
                        report: created.report,
                        owner_token,
                    });
                }
                Ok(Recorded::PhotosGone(gone)) => {
                    have.retain(|h| !gone.contains(h));
                }
                Err(e) => {
                    // Nothing was recorded: what this upload wrote goes.
                    self.delete_objects(written).await;
                    return Err(e.into());
                }
            }
        }
        self.delete_objects(written).await;
        Err(StoreError::Unavailable(
            "the photos were being deleted while the report was recorded".into(),
        )
        .into())
    }

    /// Checks a photo by its header (format, size, orientation), hashes it, and takes its
    /// metadata out (GPS, camera, dates: see `imaging::metadata`): the cleaned bytes are what is
    /// stored and served. Its one decode, for the model and the thumbnail both, is its embedding
    /// job's: an upload answers in milliseconds also while the model is saturated, and a photo
    /// whose pixels do not decode shows as failed, with the decoder's reason. The check runs on
    /// a check slot: a PNG's colour profile is inflated (under a small cap) to be checked.
    ///
    /// The content identity (`sha256`: dedupe, and `/v1/embeddings` answering a photo embedded
    /// before from the store) is the hash of the bytes as uploaded. The cleaned bytes are a
    /// function of those, so one hash still names one stored content; a client sending the same
    /// file again is answered from the store without cleaning it first; and photos stored before
    /// cleaning existed keep their identity, embeddings and jobs when the `strip_metadata` job
    /// cleans them. The same photo with other metadata is stored and embedded once more.
    async fn check_photo(&self, index: usize, bytes: Bytes) -> Result<CheckedPhoto, ReportError> {
        let limits = self.limits;
        let checking = self.decode.run_blocking(move || {
            imaging::check_and_clean(&bytes, &limits)
                .map(|(header, clean)| (header, <[u8; 32]>::from(Sha256::digest(&bytes)), clean))
        });
        let (header, sha256, clean) = timing::measure(Stage::Decode, checking)
            .await?
            .unwrap_or_else(|_| {
                Err(ImagingError::Decode(
                    "the header reader failed on this photo".into(),
                ))
            })
            .map_err(|error| ReportError::Photo { index, error })?;
        Ok(CheckedPhoto {
            photo: NewPhoto {
                sha256,
                objects: None,
                format: header.format,
                width: header.width,
                height: header.height,
                bytes: clean.len(),
            },
            bytes: Bytes::from(clean),
        })
    }

    /// Writes the objects of the photos the store does not hold (`have` lists those it does),
    /// under keys of this upload, once per distinct photo. Returns what it wrote; on a failure it
    /// deletes what it had written.
    async fn write_objects(
        &self,
        checked: &mut [CheckedPhoto],
        have: &[[u8; 32]],
    ) -> Result<Vec<ObjectKeys>, ReportError> {
        let mut written: Vec<ObjectKeys> = Vec::new();
        for i in 0..checked.len() {
            let sha256 = checked[i].photo.sha256;
            if have.contains(&sha256) || checked[i].photo.objects.is_some() {
                continue;
            }
            // The same bytes twice in one report: written once.
            if let Some(twin) = checked[..i]
                .iter()
                .find(|c| c.photo.sha256 == sha256)
                .and_then(|c| c.photo.objects.clone())
            {
                checked[i].photo.objects = Some(twin);
                continue;
            }
            let keys = ObjectKeys::new_for(&hex::encode(sha256));
            let photo = &checked[i];
            // The thumbnail is written by the photo's embedding job, which decodes it.
            if let Err(e) = self.photo_store.put(&keys.photo, photo.bytes.clone()).await {
                written.push(keys);
                self.delete_objects(written).await;
                return Err(e.into());
            }
            written.push(keys.clone());
            checked[i].photo.objects = Some(keys);
        }
        Ok(written)
    }

    /// Deletes objects no row uses, now; what cannot be deleted now (the store is away) is left
    /// to the sweep, which removes objects without rows once they are older than its grace.
    async fn delete_objects(&self, objects: Vec<ObjectKeys>) {
        for key in objects.into_iter().flat_map(ObjectKeys::into_vec) {
            if let Err(e) = self.photo_store.delete(&key).await {
                tracing::warn!(%key, error = %e, "could not delete an unused object; the sweep will");
            }
        }
    }

    /// Fails with the use in the way when `charge` would clearly exceed the tenant's quota, or
    /// the address's day or the open store's cap.
    async fn check_room(&self, charge: &StorageCharge) -> Result<(), ReportError> {
        let requested = charge.bytes;
        let address = match &charge.payer {
            Payer::Tenant(tenant) => {
                return match self.store.tenants().storage_usage(tenant).await? {
                    Some(usage) if usage.used_bytes.saturating_add(requested) > usage.max_bytes => {
                        Err(ReserveError::QuotaExceeded { usage, requested }.into())
                    }
                    Some(_) => Ok(()),
                    None => Err(ReserveError::UnknownTenant.into()),
                };
            }
            Payer::Address { address, .. } => address,
        };
        let limits = &self.open_limits;
        if limits.daily_bytes_per_address == i64::MAX && limits.total_bytes == i64::MAX {
            return Ok(());
        }
        let (day_used, total_used) = self.store.usage().open_use(address).await?;
        if day_used.saturating_add(requested) > limits.daily_bytes_per_address {
            return Err(ReserveError::DailyLimit {
                used_bytes: day_used,
                max_bytes: limits.daily_bytes_per_address,
                requested,
                retry_after: crate::store::usage::until_reset(chrono::Utc::now()),
            }
            .into());
        }
        if total_used.saturating_add(requested) > limits.total_bytes {
            return Err(ReserveError::StoreFull {
                used_bytes: total_used,
                max_bytes: limits.total_bytes,
                requested,
            }
            .into());
        }
        Ok(())
    }

    /// A tenant's storage use.
    pub async fn storage_usage(&self, tenant: &str) -> Result<StorageUsage, ReportError> {
        self.store
            .tenants()
            .storage_usage(tenant)
            .await?
            .ok_or(ReportError::Quota(ReserveError::UnknownTenant))
    }

    /// One report of `tenant`, with its stored possible matches.
    pub async fn get(&self, id: Uuid, tenant: Option<&str>) -> Result<Report, ReportError> {
        let mut report = self
            .store
            .reports()
            .get(id, tenant, self.model_id)
            .await?
            .ok_or(ReportError::NotFound("report"))?;
        report.possible_matches = Some(
            self.store
                .matches()
                .list(id, self.model_id, self.match_limit)
                .await?,
        );
        Ok(report)
    }

    /// One report of `tenant` and who is asking: its owner when `token` is the owner token,
    /// or when the caller is the tenant itself (its API key); the public otherwise.
    pub async fn get_for(
        &self,
        id: Uuid,
        tenant: Option<&str>,
        token: Option<&str>,
    ) -> Result<(Report, Audience), ReportError> {
        let report = self.get(id, tenant).await?;
        let owner = tenant.is_some()
            || match token {
                Some(token) => {
                    self.store
                        .reports()
                        .is_owner(id, tenant, &owner_token_hash(token))
                        .await?
                }
                None => false,
            };
        let audience = if owner {
            Audience::Owner
        } else {
            Audience::Public
        };
        Ok((report, audience))
    }

    /// A page of reports.
    pub async fn list(&self, filter: &ReportFilter) -> Result<Vec<Report>, ReportError> {
        Ok(self.store.reports().list(filter, self.model_id).await?)
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
                .reports()
                .delete(id, tenant, &owner_token_hash(token), self.max_attempts)
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
                .reports()
                .update(
                    id,
                    tenant,
                    &owner_token_hash(token),
                    patch,
                    self.model_id,
                    self.max_attempts,
                )
                .await?,
        )?;
        self.get(id, tenant).await
    }

    /// A photo's file, unless the client's copy (`if_none_match`, an `If-None-Match` header)
    /// is still the one stored: a deleted photo is not found, whatever the client holds.
    pub async fn photo_file(
        &self,
        id: Uuid,
        tenant: Option<&str>,
        file: PhotoFile,
        if_none_match: Option<&str>,
    ) -> Result<PhotoBody, ReportError> {
        let keys = self
            .store
            .photos()
            .keys(id, tenant)
            .await?
            .ok_or(ReportError::NotFound("photo"))?;
        let (key, mime, etag) = match file {
            PhotoFile::Original => {
                let mime = keys.format.mime();
                // The object's name (content hash and a part unique to the object): it changes
                // when the object is rewritten, as when a photo stored before metadata removal
                // existed is cleaned.
                let name = keys.photo.rsplit('/').next().unwrap_or(&keys.sha256);
                let etag = format!("\"{name}\"");
                (keys.photo, mime, etag)
            }
            PhotoFile::Thumbnail => (
                keys.thumbnail,
                "image/jpeg",
                format!("\"{}-thumbnail\"", keys.sha256),
            ),
        };
        if if_none_match.is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        }) {
            return Ok(PhotoBody::NotModified { etag });
        }
        // Streamed: a client that reads slowly holds a few chunks of the photo, not all of it.
        let body = match self.photo_store.get_stream(&key).await {
            Err(PhotoStoreError::NotFound(_)) if file == PhotoFile::Thumbnail => {
                return Err(ReportError::ThumbnailPending);
            }
            read => read?,
        };
        Ok(PhotoBody::Fresh { body, mime, etag })
    }
}

/// Which file of a stored photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoFile {
    /// The photo as uploaded, its metadata removed.
    Original,
    /// The JPEG thumbnail.
    Thumbnail,
}

/// A photo file as answered.
#[derive(Debug)]
pub enum PhotoBody {
    /// The file.
    Fresh {
        /// Its length and bytes, read as the answer is sent.
        body: ObjectStream,
        /// Its media type.
        mime: &'static str,
        /// Its entity tag (the content hash: a photo's bytes never change under its id).
        etag: String,
    },
    /// The client's copy is current.
    NotModified {
        /// The entity tag it holds.
        etag: String,
    },
}

/// An uploaded photo, checked, its metadata removed.
struct CheckedPhoto {
    photo: NewPhoto,
    bytes: Bytes,
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
pub fn owner_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}
