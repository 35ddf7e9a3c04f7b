//! SQL of embeddings as the pipeline stores and reuses them: a blob's embedding (with the species
//! and breeds read in the same run) saved with its job's completion, and the stored embeddings of
//! photos sent again.

use std::collections::HashMap;

use pgvector::Vector;
use sqlx::Row;

use super::formats::format_named;
use super::labels::{LABEL_COLUMNS, labels_from_row};
use super::{Jobs, Photos, StoreError, search};
use crate::imaging::PhotoFormat;
use crate::inference::PhotoLabels;

/// A photo's stored embedding, with what the upload recorded of the photo.
#[derive(Debug, Clone)]
pub struct StoredEmbedding {
    /// The embedding (unit length).
    pub embedding: Vec<f32>,
    /// Its format.
    pub format: PhotoFormat,
    /// Upright width.
    pub width: i32,
    /// Upright height.
    pub height: i32,
    /// Species and breeds read from the photo, when stored.
    pub labels: Option<PhotoLabels>,
}

impl Photos<'_> {
    /// The stored embeddings for `model_id` of the photos whose bytes hash to `hashes`, with
    /// each photo's format and size, by hash (photos never embedded are left out).
    pub async fn stored_embeddings(
        self,
        hashes: &[[u8; 32]],
        model_id: i32,
    ) -> Result<HashMap<[u8; 32], StoredEmbedding>, StoreError> {
        let wanted: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let rows = sqlx::query(&format!(
            "SELECT e.sha256, e.embedding::vector AS embedding, b.format, b.width, b.height, {LABEL_COLUMNS}
             FROM embeddings e JOIN blobs b ON b.sha256 = e.sha256
             WHERE e.sha256 = ANY($1) AND e.model_id = $2"
        ))
        .bind(&wanted)
        .bind(model_id)
        .fetch_all(self.pool)
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
                    format: format_named(&r.try_get::<String, _>("format")?)?,
                    width: r.try_get("width")?,
                    height: r.try_get("height")?,
                    labels: labels_from_row(&r)?,
                },
            );
        }
        Ok(found)
    }

    /// Stores a blob's embedding and marks its job done, atomically, and enqueues the matching of
    /// the reports it completes. Returns false (and stores nothing) when the job is no longer this
    /// worker's or the blob was purged meanwhile.
    pub async fn save_embedding(
        self,
        job_id: i64,
        worker: &str,
        sha256: &[u8],
        model_id: i32,
        embedding: Vec<f32>,
        max_attempts: i32,
    ) -> Result<bool, StoreError> {
        self.save_labelled_embedding(
            job_id,
            worker,
            sha256,
            model_id,
            embedding,
            None,
            max_attempts,
        )
        .await
    }

    /// As [`Photos::save_embedding`], with the species and breeds read from the photo.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_labelled_embedding(
        self,
        job_id: i64,
        worker: &str,
        sha256: &[u8],
        model_id: i32,
        embedding: Vec<f32>,
        labels: Option<&PhotoLabels>,
        max_attempts: i32,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The blob first (the lock order of `Reports::create`): a report being created with this
        // photo is either committed before this reads the reports, or waits and then sees the
        // embedding. A blob purged meanwhile has nothing left to embed.
        let kept: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM blobs WHERE sha256 = $1 FOR NO KEY UPDATE")
                .bind(sha256)
                .fetch_optional(&mut *tx)
                .await?;
        if !Jobs::finish_in(&mut tx, job_id, worker).await? || kept.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO embeddings (sha256, model_id, embedding, species, species_probability, breed_classes, breed_probabilities)
             VALUES ($1, $2, $3::halfvec, $4, $5, $6, $7)
             ON CONFLICT (sha256, model_id) DO NOTHING",
        )
        .bind(sha256)
        .bind(model_id)
        .bind(Vector::from(embedding))
        .bind(labels.map(|l| l.predicted_species.as_str()))
        .bind(labels.map(|l| l.species_probability))
        .bind(labels.map(PhotoLabels::breed_classes))
        .bind(labels.map(PhotoLabels::breed_probabilities))
        .execute(&mut *tx)
        .await?;
        search::enqueue_ready_matches(&mut tx, Some(sha256), None, model_id, max_attempts).await?;
        super::events::publish_blob_status(&mut tx, sha256, model_id).await?;
        tx.commit().await?;
        Ok(true)
    }
}
