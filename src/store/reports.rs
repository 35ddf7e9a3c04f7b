//! SQL of reports, photos (content-addressed blobs) and embeddings.

use std::collections::HashMap;

use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::filters::push_list_filter;
use super::formats::format_named;
use super::queue::ON_TAKEN_KEY;
use super::report_rows::{
    REPORT_COLUMNS, photos_from_rows, photos_of, report_from_row, reports_of_rows,
};
use super::tenants::ReserveError;
use super::{Blobs, Jobs, Photos, Reports, StoreError, jobs, search};
use crate::domain::event::{ReportEvent, ReportRef};
use crate::domain::job::JobPayload;
use crate::domain::limits::OpenLimits;
use crate::domain::report::{NewReport, Report, ReportFilter, ReportPatch, ReportStatus};
use crate::imaging::PhotoFormat;
use crate::photo_store::ObjectKeys;

/// A validated photo, ready to be recorded.
#[derive(Debug, Clone)]
pub struct NewPhoto {
    /// sha256 of the bytes.
    pub sha256: [u8; 32],
    /// The objects this upload wrote for it; `None` when the photo store already held the bytes
    /// (a blob row existed when the upload looked).
    pub objects: Option<ObjectKeys>,
    /// Detected format.
    pub format: PhotoFormat,
    /// Upright width.
    pub width: u32,
    /// Upright height.
    pub height: u32,
    /// Size in bytes.
    pub bytes: usize,
}

/// Bytes a new report charges, and to whom (reserved in the transaction that records it).
#[derive(Debug, Clone)]
pub struct StorageCharge {
    /// Who pays.
    pub payer: Payer,
    /// Bytes reserved for the report's photos (as uploaded).
    pub bytes: i64,
}

/// Who pays for a new report's photos.
#[derive(Debug, Clone)]
pub enum Payer {
    /// A tenant, from its storage quota.
    Tenant(String),
    /// A client of the open service (no API keys): its address's bytes today and the open
    /// store's total, within `limits`.
    Address {
        /// The client's address key (IPv4 address, or IPv6 /64).
        address: String,
        /// The limits in force.
        limits: OpenLimits,
    },
}

impl StorageCharge {
    /// The tenant charged, if a tenant pays.
    pub fn tenant(&self) -> Option<&str> {
        match &self.payer {
            Payer::Tenant(tenant) => Some(tenant),
            Payer::Address { .. } => None,
        }
    }
}

/// What creating a report recorded.
#[derive(Debug, Clone)]
pub struct CreatedReport {
    /// The report's id.
    pub id: Uuid,
    /// New embedding jobs (photos already embedded or already queued get none).
    pub jobs: Vec<i64>,
    /// The report as stored.
    pub report: Report,
    /// Objects this upload wrote that no row uses: a concurrent upload of the same bytes
    /// recorded its own first. The caller deletes them.
    pub unused_objects: Vec<ObjectKeys>,
}

/// How recording a report ended, short of an error.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// Recorded and committed.
    Created(Box<CreatedReport>),
    /// Nothing was recorded: these photos' blobs, which the upload found stored and so did not
    /// write, were purged meanwhile. Write them and record again.
    PhotosGone(Vec<[u8; 32]>),
}

/// Where a stored photo's bytes and thumbnail are, and its format.
#[derive(Debug, Clone)]
pub struct PhotoKeys {
    /// The photo store's key of the bytes as uploaded.
    pub photo: String,
    /// The photo store's key of the thumbnail.
    pub thumbnail: String,
    /// Its format.
    pub format: PhotoFormat,
    /// The content hash, hex.
    pub sha256: String,
}

/// What an owner-only action found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerCheck {
    /// No such report.
    NotFound,
    /// The token is not the owner's.
    Forbidden,
    /// Done.
    Done,
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl Reports<'_> {
    /// Records a report, its photos, and one embedding job per photo new to `model_id`, in one
    /// transaction; workers are notified when it commits.
    ///
    /// Locks are taken in one order by every transaction that takes several: blobs by hash
    /// (this, `Photos::save_embedding`, `Blobs::purge`), then their jobs by hash, then reports by id, then
    /// the tenant. Two uploads sharing photos therefore wait for each other instead of
    /// deadlocking, and a report created while one of its photos' embedding is being saved
    /// waits for that save, then sees the embedding (or the save sees the report's photo):
    /// either way the report's match job is queued.
    pub async fn create(
        self,
        report: &NewReport,
        owner_token_hash: &[u8],
        photos: &[NewPhoto],
        model_id: i32,
        max_attempts: u32,
        charge: Option<&StorageCharge>,
    ) -> Result<Recorded, ReserveError> {
        let id = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        // Every statement here is a round trip during which the transaction holds its locks, and
        // each costs a wake-up on both sides when the CPUs are busy: one per concern, whatever
        // the number of photos, and the report read back as it is written (the answer is then
        // in hand at the commit, and a read that failed rolls the upload back instead of leaving
        // a stored report whose client got an error and would upload it again).
        let row = sqlx::query(&format!(
            // Positions are kept to 1e-7 degrees, rounded here by the one rounding the
            // migrations use (the edge has already refused anything out of range).
            "INSERT INTO reports (id, kind, species, title, description, latitude, longitude, contact, owner_token_hash,
                                  tenant_id, charged_bytes, contact_public)
             VALUES ($1, $2, $3, $4, $5, round($6::numeric, 7)::double precision,
                     round($7::numeric, 7)::double precision, $8, $9, $10, $11, $12)
             RETURNING {REPORT_COLUMNS}"
        ))
        .bind(id)
        .bind(report.kind.as_str())
        .bind(report.species.as_str())
        .bind(&report.title)
        .bind(&report.description)
        .bind(report.location.map(|l| l.0))
        .bind(report.location.map(|l| l.1))
        .bind(&report.contact)
        .bind(owner_token_hash)
        .bind(charge.and_then(StorageCharge::tenant))
        .bind(charge.map_or(0, |c| c.bytes))
        .bind(report.contact_public)
        .fetch_one(&mut *tx)
        .await?;
        // The report's distinct blobs, by hash: the lock order.
        let mut blobs: Vec<&NewPhoto> = photos.iter().collect();
        blobs.sort_by_key(|p| p.sha256);
        blobs.dedup_by_key(|p| p.sha256);
        let mut unused_objects = Vec::new();
        let mut gone = Vec::new();
        for photo in &blobs {
            match &photo.objects {
                Some(keys) => {
                    // A no-op update rather than DO NOTHING, to lock the row this report uses.
                    let stored_key: String = sqlx::query_scalar(
                        "INSERT INTO blobs (sha256, storage_key, thumbnail_key, format, width, height, bytes)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (sha256) DO UPDATE SET bytes = blobs.bytes
                         RETURNING storage_key",
                    )
                    .bind(&photo.sha256[..])
                    .bind(&keys.photo)
                    .bind(&keys.thumbnail)
                    .bind(photo.format.name())
                    .bind(to_i32(photo.width))
                    .bind(to_i32(photo.height))
                    .bind(i64::try_from(photo.bytes).unwrap_or(i64::MAX))
                    .fetch_one(&mut *tx)
                    .await?;
                    if stored_key != keys.photo {
                        unused_objects.push(keys.clone());
                    }
                }
                None => {
                    let kept: Option<i32> = sqlx::query_scalar(
                        "SELECT 1 FROM blobs WHERE sha256 = $1 FOR NO KEY UPDATE",
                    )
                    .bind(&photo.sha256[..])
                    .fetch_optional(&mut *tx)
                    .await?;
                    if kept.is_none() {
                        gone.push(photo.sha256);
                    }
                }
            }
        }
        if !gone.is_empty() {
            tx.rollback().await?;
            return Ok(Recorded::PhotosGone(gone));
        }
        // One statement queues the embedding of each blob new to the model (again if it had
        // failed: the photo is wanted now), in hash order, records the photos, and reads them
        // back with their embedding state; a job it queued is read from what it returned (the
        // statement's snapshot does not see it).
        let hashes: Vec<[u8; 32]> = blobs.iter().map(|p| p.sha256).collect();
        let blob_shas: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let (keys, payloads) = super::queue::embed_jobs(&hashes, model_id);
        let photo_ids: Vec<Uuid> = photos.iter().map(|_| Uuid::new_v4()).collect();
        let shas: Vec<&[u8]> = photos.iter().map(|p| &p.sha256[..]).collect();
        let rows = sqlx::query(&format!(
            "WITH nj AS (
                 INSERT INTO jobs (kind, dedupe_key, payload, max_attempts, model_id)
                 SELECT 'embed', n.dedupe_key, n.payload::jsonb, $5, $2
                 FROM unnest($6::bytea[], $7::text[], $8::text[])
                      WITH ORDINALITY AS n(sha256, dedupe_key, payload, k)
                 WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.sha256 = n.sha256 AND e.model_id = $2)
                 ORDER BY n.k
                 {ON_TAKEN_KEY}
                 RETURNING id, dedupe_key, status, last_error
             ), p AS (
                 INSERT INTO photos (id, report_id, position, sha256)
                 SELECT n.id, $1, n.position::int - 1, n.sha256
                 FROM unnest($3::uuid[], $4::bytea[]) WITH ORDINALITY AS n(id, sha256, position)
                 RETURNING report_id, id, position, sha256
             )
             SELECT p.report_id, p.id, p.position, b.format, b.width, b.height, b.bytes, p.sha256,
                    e.sha256 IS NOT NULL AS embedded, coalesce(nj.id, j.id) AS job_id,
                    coalesce(nj.status, j.status) AS job_status,
                    CASE WHEN nj.id IS NULL THEN j.last_error ELSE nj.last_error END AS last_error,
                    e.species, e.species_probability, e.breed_classes, e.breed_probabilities,
                    nj.id AS queued_job
             FROM p
             JOIN blobs b ON b.sha256 = p.sha256
             LEFT JOIN embeddings e ON e.sha256 = p.sha256 AND e.model_id = $2
             LEFT JOIN jobs j ON j.dedupe_key = lookalike_embed_job_key(p.sha256, $2)
             LEFT JOIN nj ON nj.dedupe_key = lookalike_embed_job_key(p.sha256, $2)
             ORDER BY p.position"
        ))
        .bind(id)
        .bind(model_id)
        .bind(&photo_ids)
        .bind(&shas)
        .bind(to_i32(max_attempts))
        .bind(&blob_shas)
        .bind(&keys)
        .bind(&payloads)
        .fetch_all(&mut *tx)
        .await?;
        let mut jobs = Vec::new();
        for row in &rows {
            if let Some(job) = row.try_get::<Option<i64>, _>("queued_job")?
                && !jobs.contains(&job)
            {
                jobs.push(job);
            }
        }
        if jobs.is_empty() {
            // Every photo was embedded or being embedded already: the report is matched now if
            // they all are, or when the last embedding is saved (which waits for this commit).
            search::enqueue_ready_matches(&mut tx, None, Some(id), model_id, to_i32(max_attempts))
                .await?;
        }
        let mut photos = photos_from_rows(&rows)?;
        let mut report = report_from_row(&row, photos.remove(&id).unwrap_or_default())?;
        // A new report has no stored matches yet (its match job runs once it is embedded).
        report.possible_matches = Some(Vec::new());
        // The reservation comes last, so that the row it updates (a tenant's, or the open
        // store's total and the address's day, which every upload of theirs updates) is locked
        // only for the commit.
        match charge.map(|c| (&c.payer, c.bytes)) {
            Some((Payer::Tenant(tenant), bytes)) => {
                super::tenants::reserve_in(&mut tx, tenant, bytes).await?;
            }
            Some((Payer::Address { address, limits }, bytes)) => {
                super::usage::reserve_open_in(&mut tx, address, bytes, limits).await?;
            }
            None => {}
        }
        tx.commit().await?;
        if !jobs.is_empty() {
            // Workers are woken after the commit, not in it: a transaction that notifies holds a
            // database-wide lock through its commit, which would put every upload's commit (and
            // its WAL flush) in one line. A lost wake-up only waits for the workers' poll.
            match self.wake {
                Some(wake) => wake.after_commit(self.pool),
                None => {
                    let woken = match self.pool.acquire().await {
                        Ok(mut conn) => jobs::notify(&mut conn).await,
                        Err(e) => Err(e.into()),
                    };
                    if let Err(e) = woken {
                        tracing::warn!(error = %e, "the job workers were not woken; they find the jobs at their next poll");
                    }
                }
            }
        }
        Ok(Recorded::Created(Box::new(CreatedReport {
            id,
            jobs,
            report,
            unused_objects,
        })))
    }

    /// A report of `tenant` (`None`: of no tenant) with its photos and their embedding state
    /// for `model_id`.
    pub async fn get(
        self,
        id: Uuid,
        tenant: Option<&str>,
        model_id: i32,
    ) -> Result<Option<Report>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut photos = photos_of(self.pool, &[id], model_id).await?;
        Ok(Some(report_from_row(
            &row,
            photos.remove(&id).unwrap_or_default(),
        )?))
    }

    /// A page of reports, newest first.
    pub async fn list(
        self,
        filter: &ReportFilter,
        model_id: i32,
    ) -> Result<Vec<Report>, StoreError> {
        let mut q =
            QueryBuilder::<Postgres>::new(format!("SELECT {REPORT_COLUMNS} FROM reports WHERE "));
        push_list_filter(&mut q, filter, model_id);
        if let Some((created_at, id)) = filter.before {
            q.push(" AND (created_at, id) < (")
                .push_bind(created_at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(self.pool).await?;
        let reports = reports_of_rows(self.pool, &rows, model_id).await?;
        Ok(reports.into_iter().map(|(report, _)| report).collect())
    }

    /// Several reports by id (missing ones are left out).
    pub async fn by_id(
        self,
        ids: &[Uuid],
        model_id: i32,
    ) -> Result<HashMap<Uuid, Report>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(self.pool)
        .await?;
        let reports = reports_of_rows(self.pool, &rows, model_id).await?;
        Ok(reports.into_iter().map(|(r, _)| (r.id, r)).collect())
    }

    /// Whether `token_hash` is the owner token's of report `id` of `tenant` (false when there is
    /// no such report).
    pub async fn is_owner(
        self,
        id: Uuid,
        tenant: Option<&str>,
        token_hash: &[u8],
    ) -> Result<bool, StoreError> {
        Ok(self.owner_hash(id, tenant).await?.as_deref() == Some(token_hash))
    }

    /// The owner token hash of a report of `tenant`.
    pub(super) async fn owner_hash(
        self,
        id: Uuid,
        tenant: Option<&str>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT owner_token_hash FROM reports WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.pool)
        .await?)
    }

    /// Deletes a report of `tenant` if the token hash matches, gives the tenant back the bytes it
    /// was charged, and queues the purge of each of its photos' blobs that no other report uses,
    /// in one transaction: the purge jobs delete the bytes, thumbnails and embeddings.
    pub async fn delete(
        self,
        id: Uuid,
        tenant: Option<&str>,
        token_hash: &[u8],
        max_attempts: u32,
    ) -> Result<OwnerCheck, StoreError> {
        match self.owner_hash(id, tenant).await? {
            None => Ok(OwnerCheck::NotFound),
            Some(h) if h != token_hash => Ok(OwnerCheck::Forbidden),
            Some(_) => {
                let mut tx = self.pool.begin().await?;
                let blobs: Vec<Vec<u8>> =
                    sqlx::query_scalar("SELECT DISTINCT sha256 FROM photos WHERE report_id = $1")
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?;
                let deleted: Option<(Option<String>, i64)> = sqlx::query_as(
                    "DELETE FROM reports WHERE id = $1 AND owner_token_hash = $2
                     RETURNING tenant_id, charged_bytes",
                )
                .bind(id)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((tenant, charged)) = deleted else {
                    return Ok(OwnerCheck::NotFound);
                };
                let gone = ReportEvent::Deleted(ReportRef { report_id: id });
                super::events::publish(&mut tx, &gone, None).await?;
                // The photos went with the report (ON DELETE CASCADE); a blob stays while another
                // report uses the same bytes. The purge job checks again, under the blob's lock,
                // before it deletes anything.
                let orphans: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT sha256 FROM unnest($1::bytea[]) AS b(sha256)
                     WHERE NOT EXISTS (SELECT 1 FROM photos p WHERE p.sha256 = b.sha256)
                     ORDER BY sha256",
                )
                .bind(&blobs)
                .fetch_all(&mut *tx)
                .await?;
                for sha256 in &orphans {
                    jobs::enqueue(&mut tx, &JobPayload::purge(sha256), max_attempts).await?;
                }
                if !orphans.is_empty() {
                    jobs::notify(&mut tx).await?;
                }
                match tenant {
                    Some(tenant) => super::tenants::release_in(&mut tx, &tenant, charged).await?,
                    None => super::usage::release_open_in(&mut tx, charged).await?,
                }
                tx.commit().await?;
                Ok(OwnerCheck::Done)
            }
        }
    }

    /// Applies an owner's changes if the token hash matches. A report resolved leaves the
    /// possible matches (its own and the other reports' rows naming it); one opened again is
    /// queued for matching with `model_id`.
    pub async fn update(
        self,
        id: Uuid,
        tenant: Option<&str>,
        token_hash: &[u8],
        patch: &ReportPatch,
        model_id: i32,
        max_attempts: u32,
    ) -> Result<OwnerCheck, StoreError> {
        match self.owner_hash(id, tenant).await? {
            None => Ok(OwnerCheck::NotFound),
            Some(h) if h != token_hash => Ok(OwnerCheck::Forbidden),
            Some(_) => {
                let mut tx = self.pool.begin().await?;
                // The status before, too: only a report resolved now is announced.
                let changed: Option<(String, String)> = sqlx::query_as(
                    "UPDATE reports r SET status = coalesce($3, r.status), title = coalesce($4, r.title),
                         description = coalesce($5, r.description), contact = coalesce($6, r.contact),
                         contact_public = coalesce($7, r.contact_public), updated_at = now()
                     FROM (SELECT id, status FROM reports WHERE id = $1 FOR UPDATE) before
                     WHERE r.id = before.id AND r.owner_token_hash = $2
                     RETURNING r.status, before.status",
                )
                .bind(id)
                .bind(token_hash)
                .bind(patch.status.map(|s| s.as_str()))
                .bind(patch.title.as_deref().map(str::trim))
                .bind(patch.description.as_deref())
                .bind(patch.contact.as_deref())
                .bind(patch.contact_public)
                .fetch_optional(&mut *tx)
                .await?;
                let (status, before) = changed.unzip();
                match (status.as_deref(), patch.status) {
                    (None, _) => return Ok(OwnerCheck::NotFound),
                    (Some("resolved"), _) => {
                        if before.as_deref() != Some("resolved") {
                            let resolved = ReportEvent::Resolved(ReportRef { report_id: id });
                            super::events::publish(&mut tx, &resolved, None).await?;
                        }
                        sqlx::query(
                            "DELETE FROM report_matches WHERE report_id = $1 OR matched_report_id = $1",
                        )
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    (Some(_), Some(ReportStatus::Open)) => {
                        search::enqueue_ready_matches(
                            &mut tx,
                            None,
                            Some(id),
                            model_id,
                            to_i32(max_attempts),
                        )
                        .await?;
                    }
                    _ => {}
                }
                tx.commit().await?;
                Ok(OwnerCheck::Done)
            }
        }
    }
}

impl Blobs<'_> {
    /// Which of these blobs are recorded (their objects are stored).
    pub async fn stored(self, hashes: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, StoreError> {
        let wanted: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let found: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT sha256 FROM blobs WHERE sha256 = ANY($1)")
                .bind(&wanted)
                .fetch_all(self.pool)
                .await?;
        Ok(found
            .into_iter()
            .filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
            .collect())
    }

    /// The object keys of a blob (its photo and its thumbnail).
    pub async fn keys(self, sha256: &[u8]) -> Result<Option<ObjectKeys>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT storage_key, thumbnail_key FROM blobs WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(self.pool)
                .await?;
        Ok(row.map(|(photo, thumbnail)| ObjectKeys { photo, thumbnail }))
    }
}

impl Photos<'_> {
    /// Where a photo of a report of `tenant` is stored, and its format.
    pub async fn keys(
        self,
        photo_id: Uuid,
        tenant: Option<&str>,
    ) -> Result<Option<PhotoKeys>, StoreError> {
        let row = sqlx::query(
            "SELECT b.storage_key, b.thumbnail_key, b.format, encode(b.sha256, 'hex')
             FROM photos p JOIN blobs b ON b.sha256 = p.sha256 JOIN reports r ON r.id = p.report_id
             WHERE p.id = $1 AND r.tenant_id IS NOT DISTINCT FROM $2",
        )
        .bind(photo_id)
        .bind(tenant)
        .fetch_optional(self.pool)
        .await?;
        row.map(|r| {
            Ok(PhotoKeys {
                photo: r.try_get(0)?,
                thumbnail: r.try_get(1)?,
                format: format_named(&r.try_get::<String, _>(2)?)?,
                sha256: r.try_get(3)?,
            })
        })
        .transpose()
    }
}

impl Jobs<'_> {
    /// Enqueues embedding jobs for every blob lacking an embedding for `model_id`, and re-queues
    /// failed ones. Returns how many jobs were (re)queued.
    pub async fn enqueue_missing_embeddings(
        self,
        model_id: i32,
        max_attempts: u32,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO jobs (kind, dedupe_key, payload, max_attempts)
             SELECT 'embed', lookalike_embed_job_key(b.sha256, $1),
                    jsonb_build_object('sha256', encode(b.sha256, 'hex'), 'model_id', $1), $2
             FROM blobs b
             WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.sha256 = b.sha256 AND e.model_id = $1)
             ON CONFLICT (dedupe_key) DO UPDATE
                 SET status = 'queued', attempts = 0, run_after = now(), last_error = NULL,
                     finished_at = NULL, updated_at = now()
                 WHERE jobs.status IN ('failed', 'done')",
        )
        .bind(model_id)
        .bind(to_i32(max_attempts))
        .execute(&mut *tx)
        .await?;
        jobs::notify(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
