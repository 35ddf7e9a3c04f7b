//! SQL of models: registration, each model's own vector index, the reindex from one model to
//! another, and a model's retirement.

use sqlx::Row;

use super::StoreError;
use super::areas::Models;
use crate::inference::ModelManifest;

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

impl Models<'_> {
    /// Registers the model (idempotent), makes its vector index, and returns its id; refuses a
    /// model whose vectors the schema cannot hold, or whose name and version are known with
    /// another dimension or file hash.
    pub async fn register(self, manifest: &ModelManifest) -> Result<i32, StoreError> {
        if let Some(dim) = self.embedding_dim().await?
            && usize::try_from(dim).ok() != Some(manifest.dim)
        {
            return Err(StoreError::Config(format!(
                "model {} {} makes {}-dimensional embeddings, but the database stores {dim}-dimensional ones (embeddings.embedding is halfvec({dim})): use a model of dimension {dim}, or a database migrated for {}",
                manifest.name, manifest.version, manifest.dim, manifest.dim
            )));
        }
        let row = sqlx::query(
            "INSERT INTO models (name, version, dim, sha256) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name, version) DO UPDATE SET name = EXCLUDED.name
             RETURNING id, dim, sha256",
        )
        .bind(&manifest.name)
        .bind(&manifest.version)
        .bind(i32::try_from(manifest.dim).unwrap_or(i32::MAX))
        .bind(&manifest.sha256)
        .fetch_one(self.pool)
        .await?;
        let (id, dim, sha256): (i32, i32, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if usize::try_from(dim).ok() != Some(manifest.dim)
            || !sha256.eq_ignore_ascii_case(&manifest.sha256)
        {
            return Err(StoreError::Config(format!(
                "model {} {} is registered with dim {dim} and sha256 {sha256}, but this file has dim {} and sha256 {}: give the new model a new version",
                manifest.name, manifest.version, manifest.dim, manifest.sha256
            )));
        }
        self.ensure_index(id).await?;
        Ok(id)
    }

    /// The dimension of the `embeddings.embedding` column: the only size of vector it holds.
    pub async fn embedding_dim(self) -> Result<Option<i32>, StoreError> {
        let typmod: Option<i32> = sqlx::query_scalar(
            "SELECT atttypmod FROM pg_attribute
             WHERE attrelid = 'embeddings'::regclass AND attname = 'embedding' AND NOT attisdropped",
        )
        .fetch_optional(self.pool)
        .await?;
        Ok(typmod.filter(|d| *d > 0))
    }

    /// Makes model `model_id`'s own HNSW index (a partial index over its vectors) unless it is
    /// there; an index a crashed build left invalid is made again. Built concurrently (writes go
    /// on meanwhile); processes starting together take turns.
    pub async fn ensure_index(self, model_id: i32) -> Result<(), StoreError> {
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
                     USING hnsw (embedding halfvec_cosine_ops) WHERE model_id = {model_id}"
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
    pub async fn id(self, name: &str, version: &str) -> Result<Option<i32>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM models WHERE name = $1 AND version = $2")
                .bind(name)
                .bind(version)
                .fetch_optional(self.pool)
                .await?,
        )
    }

    /// Whether model `old` holds a vector of a photo that model `new` has not embedded yet and
    /// may still embed (its job for `new` has not failed for good): while so, a store that is
    /// reindexing for `new` answers from `old`'s vectors.
    pub async fn reindexing(self, old: i32, new: i32) -> Result<bool, StoreError> {
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
        .fetch_one(self.pool)
        .await?)
    }

    /// The models the database knows, with their vectors and unfinished jobs.
    pub async fn list(self) -> Result<Vec<ModelUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.name, m.version, m.dim,
                    (SELECT count(*) FROM embeddings e WHERE e.model_id = m.id) AS embeddings,
                    (SELECT count(*) FROM jobs j WHERE j.model_id = m.id
                        AND j.status IN ('queued', 'running')) AS unfinished_jobs
             FROM models m ORDER BY m.id",
        )
        .fetch_all(self.pool)
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
    pub async fn retire(self, model_id: i32) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM jobs WHERE model_id = $1")
            .bind(model_id)
            .execute(self.pool)
            .await?;
        sqlx::query("DELETE FROM report_matches WHERE model_id = $1")
            .bind(model_id)
            .execute(self.pool)
            .await?;
        let mut deleted = 0;
        loop {
            let batch = sqlx::query(
                "DELETE FROM embeddings WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM embeddings WHERE model_id = $1 LIMIT 10000))",
            )
            .bind(model_id)
            .execute(self.pool)
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
        .execute(self.pool)
        .await?;
        sqlx::query("DELETE FROM models WHERE id = $1")
            .bind(model_id)
            .execute(self.pool)
            .await?;
        Ok(deleted)
    }
}

/// Advisory lock key of the index builds ("lookalike" in ASCII, then a number per use; the
/// sweep's is 1, in lifecycle.rs).
const INDEX_LOCK: i64 = 0x6c6f_6f6b_0002;
