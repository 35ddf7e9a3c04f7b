//! SQL of what ends: purging blobs no photo uses, the sweep's view of the blobs and its lock, and
//! the previous model's vectors kept while a reindex runs (models themselves: models.rs).

use sqlx::Row;

use super::{Blobs, Jobs, Photos, StoreError, jobs};
use crate::domain::job::JobPayload;
use crate::photo_store::ObjectKeys;

/// What purging a blob did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// Row and embeddings deleted; a job deletes these objects.
    Purged(ObjectKeys),
    /// A photo uses the blob again (the same bytes were uploaded since): kept.
    InUse,
    /// No such blob (purged already).
    Gone,
}

/// A blob as the sweep sees it.
#[derive(Debug, Clone)]
pub struct SweptBlob {
    /// Content hash.
    pub sha256: Vec<u8>,
    /// Its objects.
    pub keys: ObjectKeys,
    /// Whether a photo uses it.
    pub in_use: bool,
    /// Whether any model has embedded it (its embedding job writes its thumbnail).
    pub embedded: bool,
}

impl Blobs<'_> {
    /// Deletes blob `sha256` if no photo uses it: its embeddings, its jobs and its row, and
    /// queues the deletion of its objects, as job `job_id` of `worker` completes, in one
    /// transaction under the blob's lock (which an upload of the same bytes also takes).
    /// `None` when the job is no longer this worker's.
    pub async fn purge(
        self,
        job_id: i64,
        worker: &str,
        sha256: &[u8],
        max_attempts: u32,
    ) -> Result<Option<Purge>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let blob = sqlx::query(
            "SELECT storage_key, thumbnail_key,
                    EXISTS (SELECT 1 FROM photos p WHERE p.sha256 = b.sha256) AS in_use
             FROM blobs b WHERE sha256 = $1 FOR UPDATE",
        )
        .bind(sha256)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match blob {
            None => Purge::Gone,
            Some(row) if row.try_get::<bool, _>("in_use")? => Purge::InUse,
            Some(row) => {
                let keys = ObjectKeys {
                    photo: row.try_get("storage_key")?,
                    thumbnail: row.try_get("thumbnail_key")?,
                };
                sqlx::query("DELETE FROM embeddings WHERE sha256 = $1")
                    .bind(sha256)
                    .execute(&mut *tx)
                    .await?;
                // Its embedding jobs, of every model: the keys starting with the blob's prefix,
                // found as a range of the unique index (the prefix up to, not including, the
                // prefix with its last byte, ':', made ';').
                let prefix = JobPayload::embed_key_prefix(&hex::encode(sha256));
                let past = format!("{};", prefix.trim_end_matches(':'));
                sqlx::query("DELETE FROM jobs WHERE dedupe_key >= $1 AND dedupe_key < $2")
                    .bind(&prefix)
                    .bind(past)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM blobs WHERE sha256 = $1")
                    .bind(sha256)
                    .execute(&mut *tx)
                    .await?;
                let delete = JobPayload::delete_objects(keys.clone().into_vec());
                jobs::enqueue(&mut tx, &delete, max_attempts).await?;
                jobs::notify(&mut tx).await?;
                Purge::Purged(keys)
            }
        };
        if !Jobs::finish_in(&mut tx, job_id, worker).await? {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(outcome))
    }

    /// The blobs whose hash starts with byte `first`: one folder of the photo store's layout.
    pub async fn starting_with(self, first: u8) -> Result<Vec<SweptBlob>, StoreError> {
        let start = [first];
        let rows = sqlx::query(
            "SELECT sha256, storage_key, thumbnail_key,
                    EXISTS (SELECT 1 FROM photos p WHERE p.sha256 = b.sha256) AS in_use,
                    EXISTS (SELECT 1 FROM embeddings e WHERE e.sha256 = b.sha256) AS embedded
             FROM blobs b
             WHERE sha256 >= $1 AND ($2::bytea IS NULL OR sha256 < $2)",
        )
        .bind(&start[..])
        .bind(first.checked_add(1).map(|next| vec![next]))
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SweptBlob {
                    sha256: r.try_get("sha256")?,
                    keys: ObjectKeys {
                        photo: r.try_get("storage_key")?,
                        thumbnail: r.try_get("thumbnail_key")?,
                    },
                    in_use: r.try_get("in_use")?,
                    embedded: r.try_get("embedded")?,
                })
            })
            .collect()
    }

    /// Takes the cluster-wide sweep lock on a connection of its own, if no other process holds
    /// it; the lock goes with the connection (dropped, or closed by a crash).
    pub async fn try_sweep_lock(
        self,
    ) -> Result<Option<sqlx::pool::PoolConnection<sqlx::Postgres>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SWEEP_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !locked {
            return Ok(None);
        }
        Ok(Some(conn))
    }

    /// Gives the sweep lock back on the connection that took it.
    pub async fn release_sweep_lock(
        self,
        mut conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(SWEEP_LOCK)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

impl Jobs<'_> {
    /// Queues a job (for the sweep's repairs).
    pub async fn enqueue(self, job: &JobPayload, max_attempts: u32) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        jobs::enqueue(&mut tx, job, max_attempts).await?;
        jobs::notify(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Photos<'_> {
    /// Adds a photo's vector for model `model_id` (the previous model, which answers while the
    /// store reindexes for a new one), unless it has one or its blob is gone.
    pub async fn save_previous_embedding(
        self,
        sha256: &[u8],
        model_id: i32,
        embedding: Vec<f32>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO embeddings (sha256, model_id, embedding)
             SELECT $1, $2, $3::halfvec WHERE EXISTS (SELECT 1 FROM blobs WHERE sha256 = $1)
             ON CONFLICT (sha256, model_id) DO NOTHING",
        )
        .bind(sha256)
        .bind(model_id)
        .bind(pgvector::Vector::from(embedding))
        .execute(self.pool)
        .await?;
        Ok(())
    }
}

/// Advisory lock keys of this service ("lookalike" in ASCII, then a number per use).
const SWEEP_LOCK: i64 = 0x6c6f_6f6b_0001;
