//! SQL of what ends: purging blobs no photo uses, the sweep's view of the blobs, and models'
//! vectors, indexes and retirement.

use sqlx::Row;

use super::{Store, StoreError, jobs};
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

/// A model the database holds vectors of.
#[derive(Debug, Clone)]
pub struct ModelUsage {
    /// Its id.
    pub id: i32,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Embedding dimension.
    pub dim: i32,
    /// Vectors stored.
    pub embeddings: i64,
    /// Jobs queued or running for it.
    pub unfinished_jobs: i64,
}

/// Name of model `model_id`'s HNSW index.
fn model_index(model_id: i32) -> String {
    format!("embeddings_hnsw_model_{model_id}")
}

impl Store {
    /// Deletes blob `sha256` if no photo uses it: its embeddings, its jobs and its row, and
    /// queues the deletion of its objects, as job `job_id` of `worker` completes, in one
    /// transaction under the blob's lock (which an upload of the same bytes also takes).
    /// `None` when the job is no longer this worker's.
    pub async fn purge_blob(
        &self,
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
                // Its embedding jobs, of every model: `embed:<hex>:<model>`, found as a range of
                // the unique index (':' + 1 is ';').
                let hex = hex::encode(sha256);
                sqlx::query("DELETE FROM jobs WHERE dedupe_key >= $1 AND dedupe_key < $2")
                    .bind(format!("embed:{hex}:"))
                    .bind(format!("embed:{hex};"))
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
        if !Store::finish_job_in(&mut tx, job_id, worker).await? {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(outcome))
    }

    /// The blobs whose hash starts with byte `first`: one folder of the photo store's layout.
    pub async fn blobs_starting_with(&self, first: u8) -> Result<Vec<SweptBlob>, StoreError> {
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
        .fetch_all(&self.pool)
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

    /// Queues a job (for the sweep's repairs).
    pub async fn enqueue_job(&self, job: &JobPayload, max_attempts: u32) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        jobs::enqueue(&mut tx, job, max_attempts).await?;
        jobs::notify(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the cluster-wide sweep lock on a connection of its own, if no other process holds
    /// it; the lock goes with the connection (dropped, or closed by a crash).
    pub async fn try_sweep_lock(
        &self,
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
        &self,
        mut conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(SWEEP_LOCK)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The dimension of the `embeddings.embedding` column: the only size of vector it holds.
    pub async fn embedding_dim(&self) -> Result<Option<i32>, StoreError> {
        let typmod: Option<i32> = sqlx::query_scalar(
            "SELECT atttypmod FROM pg_attribute
             WHERE attrelid = 'embeddings'::regclass AND attname = 'embedding' AND NOT attisdropped",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(typmod.filter(|d| *d > 0))
    }

    /// Makes model `model_id`'s own HNSW index (a partial index over its vectors) unless it is
    /// there; an index a crashed build left invalid is made again. Built concurrently (writes go
    /// on meanwhile); processes starting together take turns.
    pub async fn ensure_model_index(&self, model_id: i32) -> Result<(), StoreError> {
        let name = model_index(model_id);
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(INDEX_LOCK)
            .execute(&mut *conn)
            .await?;
        let built = async {
            let valid: Option<bool> = sqlx::query_scalar(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE c.relname = $1",
            )
            .bind(&name)
            .fetch_optional(&mut *conn)
            .await?;
            if valid == Some(false) {
                sqlx::raw_sql(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                    .execute(&mut *conn)
                    .await?;
            }
            if valid != Some(true) {
                let started = std::time::Instant::now();
                // The model id is an integer formatted here; DDL takes no bind parameters.
                sqlx::raw_sql(&format!(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON embeddings
                     USING hnsw (embedding vector_cosine_ops) WHERE model_id = {model_id}"
                ))
                .execute(&mut *conn)
                .await?;
                tracing::info!(index = %name, ms = started.elapsed().as_millis() as u64, "built the model's vector index");
            }
            Ok::<(), StoreError>(())
        }
        .await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(INDEX_LOCK)
            .execute(&mut *conn)
            .await;
        built?;
        unlocked?;
        Ok(())
    }

    /// The id of model `name` `version`, when the database knows it.
    pub async fn model_id(&self, name: &str, version: &str) -> Result<Option<i32>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM models WHERE name = $1 AND version = $2")
                .bind(name)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Whether model `old` holds a vector of a photo that model `new` has not embedded yet and
    /// may still embed (its job for `new` has not failed for good): while so, a store that is
    /// reindexing for `new` answers from `old`'s vectors.
    pub async fn reindexing(&self, old: i32, new: i32) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (
                 SELECT 1 FROM embeddings o
                 WHERE o.model_id = $1
                   AND NOT EXISTS (SELECT 1 FROM embeddings n
                                   WHERE n.sha256 = o.sha256 AND n.model_id = $2)
                   AND NOT EXISTS (SELECT 1 FROM jobs j
                                   WHERE j.dedupe_key = lookalike_embed_job_key(o.sha256, $2)
                                     AND j.status = 'failed'))",
        )
        .bind(old)
        .bind(new)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Adds a photo's vector for model `model_id` (the previous model, which answers while the
    /// store reindexes for a new one), unless it has one or its blob is gone.
    pub async fn save_previous_embedding(
        &self,
        sha256: &[u8],
        model_id: i32,
        embedding: Vec<f32>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO embeddings (sha256, model_id, embedding)
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM blobs WHERE sha256 = $1)
             ON CONFLICT (sha256, model_id) DO NOTHING",
        )
        .bind(sha256)
        .bind(model_id)
        .bind(pgvector::Vector::from(embedding))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The models the database knows, with their vectors and unfinished jobs.
    pub async fn models(&self) -> Result<Vec<ModelUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.name, m.version, m.dim,
                    (SELECT count(*) FROM embeddings e WHERE e.model_id = m.id) AS embeddings,
                    (SELECT count(*) FROM jobs j WHERE j.model_id = m.id
                        AND j.status IN ('queued', 'running')) AS unfinished_jobs
             FROM models m ORDER BY m.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ModelUsage {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    dim: r.try_get("dim")?,
                    embeddings: r.try_get("embeddings")?,
                    unfinished_jobs: r.try_get("unfinished_jobs")?,
                })
            })
            .collect()
    }

    /// Retires a model: its jobs, stored matches, vectors (a batch at a time, so no transaction
    /// holds millions of rows), index and registration go. Returns the vectors deleted.
    pub async fn drop_model(&self, model_id: i32) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM jobs WHERE model_id = $1")
            .bind(model_id)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM report_matches WHERE model_id = $1")
            .bind(model_id)
            .execute(&self.pool)
            .await?;
        let mut deleted = 0;
        loop {
            let batch = sqlx::query(
                "DELETE FROM embeddings WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM embeddings WHERE model_id = $1 LIMIT 10000))",
            )
            .bind(model_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
            deleted += batch;
            if batch == 0 {
                break;
            }
        }
        sqlx::raw_sql(&format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {}",
            model_index(model_id)
        ))
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM models WHERE id = $1")
            .bind(model_id)
            .execute(&self.pool)
            .await?;
        Ok(deleted)
    }
}

/// Advisory lock keys of this service ("lookalike" in ASCII, then a number per use).
const SWEEP_LOCK: i64 = 0x6c6f_6f6b_0001;
const INDEX_LOCK: i64 = 0x6c6f_6f6b_0002;
