//! SQL of models: registration, each model's own vector index, the reindex from one model to
//! another, and a model's retirement.

use sqlx::{PgConnection, Row};

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

/// Working name of model `model_id`'s index while it is rebuilt beside the old one.
fn rebuilt_index(model_id: i32) -> String {
    format!("{}_next", model_index(model_id))
}

/// How each model's HNSW index is built: pgvector's `m` (links per node) and `ef_construction`
/// (candidates kept while linking). pgvector's own defaults (16, 64) reach recall@10 0.69 at a
/// million vectors in benches/million.sql, and 0.85 at 100k; 32 and 128 reach 0.85 and 0.95,
/// for a build about 2.3 (1M) to 4 (100k) times as long, the same index size, and searches about
/// 1.6 times as long (docs/api.md, "At a million").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorIndex {
    /// Links per node (2..=100).
    pub m: u32,
    /// Candidates kept while building (at least 2 × `m`, at most 1000).
    pub ef_construction: u32,
}

impl VectorIndex {
    /// The service's settings unless configured.
    pub const DEFAULT: VectorIndex = VectorIndex {
        m: 32,
        ef_construction: 128,
    };

    /// What an index built without options has: pgvector's defaults.
    const PGVECTOR: VectorIndex = VectorIndex {
        m: 16,
        ef_construction: 64,
    };

    /// Refuses settings pgvector would refuse at the first build, at start instead.
    fn check(self) -> Result<(), StoreError> {
        if !(2..=100).contains(&self.m)
            || !(4..=1000).contains(&self.ef_construction)
            || self.ef_construction < 2 * self.m
        {
            return Err(StoreError::Config(format!(
                "HNSW m {} and ef_construction {}: m must be 2 to 100, and ef_construction at least twice m and at most 1000",
                self.m, self.ef_construction
            )));
        }
        Ok(())
    }

    /// The settings of an index from its `pg_class.reloptions` (`m=32`, ...).
    fn from_reloptions(options: &[String]) -> VectorIndex {
        let mut settings = VectorIndex::PGVECTOR;
        for option in options {
            match option.split_once('=') {
                Some(("m", v)) => settings.m = v.parse().unwrap_or(settings.m),
                Some(("ef_construction", v)) => {
                    settings.ef_construction = v.parse().unwrap_or(settings.ef_construction)
                }
                _ => {}
            }
        }
        settings
    }

    /// The `CREATE INDEX` of model `model_id`'s index named `name` with these settings (integers
    /// formatted here: DDL takes no bind parameters).
    fn create_sql(self, name: &str, model_id: i32) -> String {
        format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON embeddings
             USING hnsw (embedding halfvec_cosine_ops) WITH (m = {}, ef_construction = {})
             WHERE model_id = {model_id}",
            self.m, self.ef_construction
        )
    }
}

impl Models<'_> {
    /// Registers the model (idempotent), makes its vector index, and returns its id; refuses a
    /// model whose vectors the schema cannot hold, or whose name and version are known with
    /// another dimension or file hash.
    pub async fn register(self, manifest: &ModelManifest) -> Result<i32, StoreError> {
        self.vector_index.check()?;
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
    /// there, whatever its settings ([`Models::align_index`] rebuilds one built with others);
    /// an index a crashed build left invalid is made again. Built concurrently (writes go on
    /// meanwhile); processes starting together take turns.
    pub async fn ensure_index(self, model_id: i32) -> Result<(), StoreError> {
        // Most starts find it there, and take no lock: another process may hold it for as long
        // as a rebuild takes.
        if index_valid(&mut *self.pool.acquire().await?, &model_index(model_id)).await?
            == Some(true)
        {
            return Ok(());
        }
        let mut conn = self.index_connection().await?;
        lock(&mut conn).await?;
        let built = self.ensure_locked(&mut conn, model_id).await;
        unlock(&mut conn, built).await
    }

    /// [`Models::ensure_index`] under the lock.
    async fn ensure_locked(self, conn: &mut PgConnection, model_id: i32) -> Result<(), StoreError> {
        let name = model_index(model_id);
        let valid = index_valid(&mut *conn, &name).await?;
        if valid == Some(true) {
            return Ok(());
        }
        if valid == Some(false) {
            ddl(
                &mut *conn,
                &format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"),
            )
            .await?;
        }
        // A rebuild stopped between dropping the old index and naming the new one left the new
        // one under its working name.
        let next = rebuilt_index(model_id);
        if index_valid(&mut *conn, &next).await? == Some(true) {
            ddl(&mut *conn, &format!("ALTER INDEX {next} RENAME TO {name}")).await?;
            return Ok(());
        }
        let started = std::time::Instant::now();
        ddl(&mut *conn, &self.vector_index.create_sql(&name, model_id)).await?;
        tracing::info!(index = %name, m = self.vector_index.m, ef_construction = self.vector_index.ef_construction,
            ms = started.elapsed().as_millis() as u64, "built the model's vector index");
        Ok(())
    }

    /// Rebuilds model `model_id`'s index when it was built with other settings than this
    /// store's: the new one is built beside it, concurrently (searches and writes go on, the
    /// old index answering), then takes the old one's place. Returns the settings it had when
    /// it was rebuilt, `None` when it already had these (or has not been made yet). A rebuild
    /// cut short (a crash, a shutdown) is taken up again by the next call.
    pub async fn align_index(self, model_id: i32) -> Result<Option<VectorIndex>, StoreError> {
        // Most starts find it built as configured, and take no lock (as in `ensure_index`).
        if self.index_settings(model_id).await? == Some(self.vector_index)
            && index_valid(&mut *self.pool.acquire().await?, &rebuilt_index(model_id))
                .await?
                .is_none()
        {
            return Ok(None);
        }
        let mut conn = self.index_connection().await?;
        lock(&mut conn).await?;
        let rebuilt = self.align_locked(&mut conn, model_id).await;
        unlock(&mut conn, rebuilt).await
    }

    /// [`Models::align_index`] under the lock.
    async fn align_locked(
        self,
        conn: &mut PgConnection,
        model_id: i32,
    ) -> Result<Option<VectorIndex>, StoreError> {
        let name = model_index(model_id);
        let next = rebuilt_index(model_id);
        let wanted = self.vector_index;
        // A rebuild cut short left `next` invalid (during its build) or valid (before the swap).
        let leftover_valid = index_valid(&mut *conn, &next).await?;
        let leftover = index_settings(&mut *conn, &next).await?;
        if leftover_valid == Some(false) || leftover.is_some_and(|s| s != wanted) {
            let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {next}");
            ddl(&mut *conn, &drop).await?;
        }
        let Some(built) = index_settings(&mut *conn, &name).await? else {
            return Ok(None);
        };
        if built == wanted {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        tracing::info!(index = %name, from_m = built.m, from_ef_construction = built.ef_construction,
            m = wanted.m, ef_construction = wanted.ef_construction,
            "rebuilding the model's vector index with new settings; the old one answers meanwhile");
        for sql in [
            wanted.create_sql(&next, model_id),
            format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"),
            format!("ALTER INDEX {next} RENAME TO {name}"),
        ] {
            ddl(&mut *conn, &sql).await?;
        }
        tracing::info!(index = %name, ms = started.elapsed().as_millis() as u64, "rebuilt the model's vector index");
        Ok(Some(built))
    }

    /// The settings model `model_id`'s index was built with, when it is there and valid.
    pub async fn index_settings(self, model_id: i32) -> Result<Option<VectorIndex>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        index_settings(&mut conn, &model_index(model_id)).await
    }

    /// A connection of its own for index builds, without the pool's statement timeout (made for
    /// requests: a build over a big store takes minutes) and never returned to the pool.
    async fn index_connection(self) -> Result<PgConnection, StoreError> {
        let mut conn = self.pool.acquire().await?.detach();
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut conn)
            .await?;
        Ok(conn)
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

/// Takes the index builds' advisory lock: processes starting together take turns.
async fn lock(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(INDEX_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives the lock back, then passes on what was done under it.
async fn unlock<T>(conn: &mut PgConnection, done: Result<T, StoreError>) -> Result<T, StoreError> {
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(INDEX_LOCK)
        .execute(conn)
        .await;
    let done = done?;
    unlocked?;
    Ok(done)
}

/// Runs one DDL statement (unprepared: DDL takes no parameters, and a plan of it is never
/// reused). Not sqlx's `raw_sql`: a spawned caller's future cannot be proven `Send` through it.
async fn ddl(conn: &mut PgConnection, sql: &str) -> Result<(), StoreError> {
    sqlx::query(sql).persistent(false).execute(conn).await?;
    Ok(())
}

/// Whether the index `name` is valid (`None`: there is none).
async fn index_valid(conn: &mut PgConnection, name: &str) -> Result<Option<bool>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relname = $1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?)
}

/// The settings the valid index `name` was built with (`None`: there is no valid one).
async fn index_settings(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<VectorIndex>, StoreError> {
    let options: Option<Option<Vec<String>>> = sqlx::query_scalar(
        "SELECT c.reloptions FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relname = $1 AND i.indisvalid",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?;
    Ok(options.map(|o| VectorIndex::from_reloptions(&o.unwrap_or_default())))
}

/// Advisory lock key of the index builds ("lookalike" in ASCII, then a number per use; the
/// sweep's is 1, in lifecycle.rs).
const INDEX_LOCK: i64 = 0x6c6f_6f6b_0002;
