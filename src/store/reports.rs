//! SQL of reports, photos (content-addressed blobs) and embeddings.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pgvector::Vector;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::tenants::ReserveError;
use super::{Store, StoreError, jobs, search};
use crate::jobs::JobPayload;
use crate::photo_store::ObjectKeys;
use crate::reports::{
    EmbeddingStatus, NewReport, Photo, Report, ReportFilter, ReportPatch, ReportStatus,
    overall_status,
};

/// A validated photo, ready to be recorded.
#[derive(Debug, Clone)]
pub struct NewPhoto {
    /// sha256 of the bytes.
    pub sha256: [u8; 32],
    /// The objects this upload wrote for it; `None` when the photo store already held the bytes
    /// (a blob row existed when the upload looked).
    pub objects: Option<ObjectKeys>,
    /// Detected format.
    pub format: String,
    /// Upright width.
    pub width: u32,
    /// Upright height.
    pub height: u32,
    /// Size in bytes.
    pub bytes: usize,
}

/// Bytes a new report charges to its tenant's storage quota (reserved in the transaction that
/// records it).
#[derive(Debug, Clone)]
pub struct StorageCharge {
    /// The tenant.
    pub tenant: String,
    /// Bytes reserved for the report's photos.
    pub bytes: i64,
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
    /// `jpeg`, `png` or `webp`.
    pub format: String,
    /// The content hash, hex.
    pub sha256: String,
}

/// A photo's stored embedding, with what the upload recorded of the photo.
#[derive(Debug, Clone)]
pub struct StoredEmbedding {
    /// The embedding (unit length).
    pub embedding: Vec<f32>,
    /// `jpeg`, `png` or `webp`.
    pub format: String,
    /// Upright width.
    pub width: i32,
    /// Upright height.
    pub height: i32,
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

impl Store {
    /// Records a report, its photos, and one embedding job per photo new to `model_id`, in one
    /// transaction; workers are notified when it commits.
    ///
    /// Locks are taken in one order by every transaction that takes several: blobs by hash
    /// (this, `save_embedding`, `purge_blob`), then their jobs by hash, then reports by id, then
    /// the tenant. Two uploads sharing photos therefore wait for each other instead of
    /// deadlocking, and a report created while one of its photos' embedding is being saved
    /// waits for that save, then sees the embedding (or the save sees the report's photo):
    /// either way the report's match job is queued.
    pub async fn create_report(
        &self,
        report: &NewReport,
        owner_token_hash: &[u8],
        photos: &[NewPhoto],
        model_id: i32,
        max_attempts: u32,
        charge: Option<&StorageCharge>,
    ) -> Result<Recorded, ReserveError> {
        let id = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO reports (id, kind, species, title, description, latitude, longitude, contact, owner_token_hash,
                                  tenant_id, charged_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(report.kind.as_str())
        .bind(report.species.as_str())
        .bind(&report.title)
        .bind(&report.description)
        .bind(report.location.map(|l| l.0))
        .bind(report.location.map(|l| l.1))
        .bind(&report.contact)
        .bind(owner_token_hash)
        .bind(charge.map(|c| c.tenant.as_str()))
        .bind(charge.map_or(0, |c| c.bytes))
        .execute(&mut *tx)
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
                    .bind(&photo.format)
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
        for (position, photo) in photos.iter().enumerate() {
            sqlx::query(
                "INSERT INTO photos (id, report_id, position, sha256) VALUES ($1, $2, $3, $4)",
            )
            .bind(Uuid::new_v4())
            .bind(id)
            .bind(i32::try_from(position).unwrap_or(i32::MAX))
            .bind(&photo.sha256[..])
            .execute(&mut *tx)
            .await?;
        }
        let mut jobs = Vec::new();
        for photo in &blobs {
            let embedded: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM embeddings WHERE sha256 = $1 AND model_id = $2)",
            )
            .bind(&photo.sha256[..])
            .bind(model_id)
            .fetch_one(&mut *tx)
            .await?;
            if !embedded {
                // Queued again if it had failed: the photo is wanted now.
                let job = JobPayload::embed(&photo.sha256, model_id);
                if let Some(job) = jobs::enqueue(&mut tx, &job, max_attempts).await? {
                    jobs.push(job);
                }
            }
        }
        if jobs.is_empty() {
            // Every photo was embedded or being embedded already: the report is matched now if
            // they all are, or when the last embedding is saved (which waits for this commit).
            search::enqueue_ready_matches(&mut tx, None, Some(id), model_id, to_i32(max_attempts))
                .await?;
        } else {
            jobs::notify(&mut tx).await?;
        }
        // The reservation comes last, so that the tenant's row (which serialises its uploads) is
        // locked only for the read-back and the commit.
        if let Some(charge) = charge {
            super::tenants::reserve_in(&mut tx, &charge.tenant, charge.bytes).await?;
        }
        // Read back inside the transaction: once it commits, the answer is in hand, and a read
        // that fails rolls the upload back instead of leaving a stored report whose client got
        // an error (and would upload it again).
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let mut photos = photos_of(&mut *tx, &[id], model_id).await?;
        let mut report = report_from_row(&row, photos.remove(&id).unwrap_or_default())?;
        // A new report has no stored matches yet (its match job runs once it is embedded).
        report.possible_matches = Some(Vec::new());
        tx.commit().await?;
        Ok(Recorded::Created(Box::new(CreatedReport {
            id,
            jobs,
            report,
            unused_objects,
        })))
    }

    /// The stored embeddings for `model_id` of the photos whose bytes hash to `hashes`, with
    /// each photo's format and size, by hash (photos never embedded are left out).
    pub async fn stored_embeddings(
        &self,
        hashes: &[[u8; 32]],
        model_id: i32,
    ) -> Result<HashMap<[u8; 32], StoredEmbedding>, StoreError> {
        let wanted: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let rows = sqlx::query(
            "SELECT e.sha256, e.embedding, b.format, b.width, b.height
             FROM embeddings e JOIN blobs b ON b.sha256 = e.sha256
             WHERE e.sha256 = ANY($1) AND e.model_id = $2",
        )
        .bind(&wanted)
        .bind(model_id)
        .fetch_all(&self.pool)
        .await?;
        let mut found = HashMap::new();
        for r in rows {
            let sha: Vec<u8> = r.try_get("sha256")?;
            let Ok(sha) = <[u8; 32]>::try_from(sha.as_slice()) else {
                continue;
            };
            found.insert(
                sha,
                StoredEmbedding {
                    embedding: r.try_get::<Vector, _>("embedding")?.to_vec(),
                    format: r.try_get("format")?,
                    width: r.try_get("width")?,
                    height: r.try_get("height")?,
                },
            );
        }
        Ok(found)
    }

    /// Which of these blobs are recorded (their objects are stored).
    pub async fn stored_blobs(&self, hashes: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, StoreError> {
        let wanted: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let found: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT sha256 FROM blobs WHERE sha256 = ANY($1)")
                .bind(&wanted)
                .fetch_all(&self.pool)
                .await?;
        Ok(found
            .into_iter()
            .filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
            .collect())
    }

    /// A report of `tenant` (`None`: of no tenant) with its photos and their embedding state
    /// for `model_id`.
    pub async fn report(
        &self,
        id: Uuid,
        tenant: Option<&str>,
        model_id: i32,
    ) -> Result<Option<Report>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut photos = photos_of(&self.pool, &[id], model_id).await?;
        Ok(Some(report_from_row(
            &row,
            photos.remove(&id).unwrap_or_default(),
        )?))
    }

    /// A page of reports, newest first.
    pub async fn reports(
        &self,
        filter: &ReportFilter,
        model_id: i32,
    ) -> Result<Vec<Report>, StoreError> {
        let mut q =
            QueryBuilder::<Postgres>::new(format!("SELECT {REPORT_COLUMNS} FROM reports WHERE "));
        // `=` and `IS NULL` (not `IS NOT DISTINCT FROM`) so that the tenant's index serves.
        match &filter.tenant {
            Some(tenant) => q.push("tenant_id = ").push_bind(tenant.clone()),
            None => q.push("tenant_id IS NULL"),
        };
        if let Some(kind) = filter.kind {
            q.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(species) = filter.species {
            q.push(" AND species = ").push_bind(species.as_str());
        }
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some((created_at, id)) = filter.before {
            q.push(" AND (created_at, id) < (")
                .push_bind(created_at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        let ids: Vec<Uuid> = rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut photos = photos_of(&self.pool, &ids, model_id).await?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.try_get("id")?;
                report_from_row(row, photos.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    /// Several reports by id (missing ones are left out).
    pub async fn reports_by_id(
        &self,
        ids: &[Uuid],
        model_id: i32,
    ) -> Result<HashMap<Uuid, Report>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut photos = photos_of(&self.pool, ids, model_id).await?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.try_get("id")?;
                Ok((
                    id,
                    report_from_row(row, photos.remove(&id).unwrap_or_default())?,
                ))
            })
            .collect()
    }

    /// The owner token hash of a report of `tenant`.
    async fn owner_hash(
        &self,
        id: Uuid,
        tenant: Option<&str>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT owner_token_hash FROM reports WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Deletes a report of `tenant` if the token hash matches, gives the tenant back the bytes it
    /// was charged, and queues the purge of each of its photos' blobs that no other report uses,
    /// in one transaction: the purge jobs delete the bytes, thumbnails and embeddings.
    pub async fn delete_report(
        &self,
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
                if let Some(tenant) = tenant {
                    super::tenants::release_in(&mut tx, &tenant, charged).await?;
                }
                tx.commit().await?;
                Ok(OwnerCheck::Done)
            }
        }
    }

    /// Applies an owner's changes if the token hash matches. A report resolved leaves the
    /// possible matches (its own and the other reports' rows naming it); one opened again is
    /// queued for matching with `model_id`.
    pub async fn update_report(
        &self,
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
                let status: Option<String> = sqlx::query_scalar(
                    "UPDATE reports SET status = coalesce($3, status), title = coalesce($4, title),
                         description = coalesce($5, description), contact = coalesce($6, contact), updated_at = now()
                     WHERE id = $1 AND owner_token_hash = $2
                     RETURNING status",
                )
                .bind(id)
                .bind(token_hash)
                .bind(patch.status.map(|s| s.as_str()))
                .bind(patch.title.as_deref().map(str::trim))
                .bind(patch.description.as_deref())
                .bind(patch.contact.as_deref())
                .fetch_optional(&mut *tx)
                .await?;
                match (status.as_deref(), patch.status) {
                    (None, _) => return Ok(OwnerCheck::NotFound),
                    (Some("resolved"), _) => {
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

    /// Where a photo of a report of `tenant` is stored, and its format.
    pub async fn photo_keys(
        &self,
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
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PhotoKeys {
                photo: r.try_get(0)?,
                thumbnail: r.try_get(1)?,
                format: r.try_get(2)?,
                sha256: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// The object keys of a blob (its photo and its thumbnail).
    pub async fn blob_keys(&self, sha256: &[u8]) -> Result<Option<ObjectKeys>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT storage_key, thumbnail_key FROM blobs WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(photo, thumbnail)| ObjectKeys { photo, thumbnail }))
    }

    /// Stores a blob's embedding and marks its job done, atomically, and enqueues the matching of
    /// the reports it completes. Returns false (and stores nothing) when the job is no longer this
    /// worker's or the blob was purged meanwhile.
    pub async fn save_embedding(
        &self,
        job_id: i64,
        worker: &str,
        sha256: &[u8],
        model_id: i32,
        embedding: Vec<f32>,
        max_attempts: i32,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The blob first (the lock order of `create_report`): a report being created with this
        // photo is either committed before this reads the reports, or waits and then sees the
        // embedding. A blob purged meanwhile has nothing left to embed.
        let kept: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM blobs WHERE sha256 = $1 FOR NO KEY UPDATE")
                .bind(sha256)
                .fetch_optional(&mut *tx)
                .await?;
        if !Store::finish_job_in(&mut tx, job_id, worker).await? || kept.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO embeddings (sha256, model_id, embedding) VALUES ($1, $2, $3)
             ON CONFLICT (sha256, model_id) DO NOTHING",
        )
        .bind(sha256)
        .bind(model_id)
        .bind(Vector::from(embedding))
        .execute(&mut *tx)
        .await?;
        search::enqueue_ready_matches(&mut tx, Some(sha256), None, model_id, max_attempts).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Enqueues embedding jobs for every blob lacking an embedding for `model_id`, and re-queues
    /// failed ones. Returns how many jobs were (re)queued.
    pub async fn enqueue_missing_embeddings(
        &self,
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

/// The photos of `reports` with their embedding state for `model_id`, by report.
async fn photos_of<'e>(
    db: impl PgExecutor<'e>,
    reports: &[Uuid],
    model_id: i32,
) -> Result<HashMap<Uuid, Vec<Photo>>, StoreError> {
    let rows = sqlx::query(
        "SELECT p.report_id, p.id, p.position, b.format, b.width, b.height, b.bytes, p.sha256,
                e.sha256 IS NOT NULL AS embedded, j.id AS job_id, j.status AS job_status, j.last_error
         FROM photos p
         JOIN blobs b ON b.sha256 = p.sha256
         LEFT JOIN embeddings e ON e.sha256 = p.sha256 AND e.model_id = $2
         LEFT JOIN jobs j ON j.dedupe_key = lookalike_embed_job_key(p.sha256, $2)
         WHERE p.report_id = ANY($1)
         ORDER BY p.report_id, p.position",
    )
    .bind(reports)
    .bind(model_id)
    .fetch_all(db)
    .await?;
    let mut by_report: HashMap<Uuid, Vec<Photo>> = HashMap::new();
    for r in rows {
        let embedded: bool = r.try_get("embedded")?;
        let job_status: Option<String> = r.try_get("job_status")?;
        let failed = !embedded && job_status.as_deref() == Some("failed");
        let sha: Vec<u8> = r.try_get("sha256")?;
        by_report
            .entry(r.try_get("report_id")?)
            .or_default()
            .push(Photo {
                id: r.try_get("id")?,
                position: r.try_get("position")?,
                format: r.try_get("format")?,
                width: r.try_get("width")?,
                height: r.try_get("height")?,
                bytes: r.try_get("bytes")?,
                sha256: hex::encode(sha),
                embedding_status: if embedded {
                    EmbeddingStatus::Ready
                } else if failed {
                    EmbeddingStatus::Failed
                } else {
                    EmbeddingStatus::Pending
                },
                embedding_error: if failed {
                    r.try_get("last_error")?
                } else {
                    None
                },
                job_id: r.try_get("job_id")?,
            });
    }
    Ok(by_report)
}

const REPORT_COLUMNS: &str = "id, kind, species, title, description, latitude, longitude, contact, status, created_at, updated_at, tenant_id";

fn report_from_row(row: &PgRow, photos: Vec<Photo>) -> Result<Report, StoreError> {
    let parse =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    let bad =
        |e: crate::reports::ValidationError| StoreError::Query(sqlx::Error::Decode(Box::new(e)));
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    Ok(Report {
        id: row.try_get("id")?,
        kind: parse("kind")?.parse().map_err(bad)?,
        species: parse("species")?.parse().map_err(bad)?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        latitude: row.try_get("latitude")?,
        longitude: row.try_get("longitude")?,
        contact: row.try_get("contact")?,
        status: parse("status")?.parse().map_err(bad)?,
        created_at,
        updated_at: row.try_get("updated_at")?,
        tenant: row.try_get("tenant_id")?,
        embedding_status: overall_status(&photos),
        photos,
        possible_matches: None,
    })
}
