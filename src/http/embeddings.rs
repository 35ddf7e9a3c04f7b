//! `POST /v1/embeddings`: photos in, vectors out.

use axum::Json;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::multipart::read_photos;
use crate::imaging::PhotoFormat;
use crate::inference::Priority;

/// Response body.
#[derive(Debug, Serialize)]
pub struct EmbeddingsResponse {
    model: ModelRef,
    dim: usize,
    embeddings: Vec<PhotoEmbedding>,
}

#[derive(Debug, Serialize)]
struct ModelRef {
    name: String,
    version: String,
}

#[derive(Debug, Serialize)]
struct PhotoEmbedding {
    index: usize,
    format: PhotoFormat,
    width: u32,
    height: u32,
    embedding: Vec<f32>,
}

/// Embeds 1..N photos sent in the multipart field `photos`, at interactive priority.
pub async fn create(
    State(app): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    app.pipeline.check_capacity(Priority::Interactive)?;
    let photos = read_photos(multipart?, "photos", app.photo_limits).await?;
    let embedded = app
        .pipeline
        .embed_all(photos, Priority::Interactive)
        .await?;
    let manifest = app.pipeline.gate().embedder().manifest();
    Ok(Json(EmbeddingsResponse {
        model: ModelRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
        },
        dim: manifest.dim,
        embeddings: embedded
            .into_iter()
            .enumerate()
            .map(|(index, p)| PhotoEmbedding {
                index,
                format: p.format,
                width: p.width,
                height: p.height,
                embedding: p.embedding,
            })
            .collect(),
    }))
}
