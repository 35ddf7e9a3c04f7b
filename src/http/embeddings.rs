//! `POST /v1/embeddings`: photos in, vectors out.

use axum::Json;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::body::BodySize;
use super::error::ApiError;
use super::multipart::read_photos;
use crate::imaging::PhotoFormat;
use crate::inference::{PhotoLabels, Priority};
use crate::search::EmbeddingSource;

/// Response body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmbeddingsResponse {
    model: ModelRef,
    dim: usize,
    embeddings: Vec<PhotoEmbedding>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ModelRef {
    name: String,
    version: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PhotoEmbedding {
    index: usize,
    format: PhotoFormat,
    width: u32,
    height: u32,
    embedding: Vec<f32>,
    /// `store` when the same bytes were embedded before (no model run), `model` otherwise.
    source: EmbeddingSource,
    /// What the model reads in the photo: species and breeds (absent for a model without
    /// class logits, or a photo stored before they were kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<PhotoLabels>,
}

/// Embeds 1..N photos sent in the multipart field `photos`, at interactive priority; photos
/// embedded before (the same bytes) come from the store, also while the model is saturated.
#[utoipa::path(post, path = "/v1/embeddings", operation_id = "create_embeddings", tag = "embeddings",
    request_body(content = EmbeddingsForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "One embedding per photo, in order", body = EmbeddingsResponse),
        (status = 400, description = "Malformed multipart body (`invalid_multipart`)", body = crate::http::error::ErrorBody),
        (status = 413, description = "A photo or the body is too large (`payload_too_large`)", body = crate::http::error::ErrorBody),
        (status = 415, description = "Not multipart, or a photo in an unsupported format (`unsupported_media_type`)", body = crate::http::error::ErrorBody),
        (status = 422, description = "A photo cannot be decoded (`invalid_image`) or is too large in pixels (`image_too_large`), or a field is wrong (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited),
        (status = 503, response = crate::http::error::RetryLater)))]
pub async fn create(
    State(app): State<AppState>,
    size: BodySize,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    // A place in the gate, then memory for the body, and only then the body. A full gate does
    // not end the request: its photos may have been embedded before (answered from the store);
    // the refusal stands for those that were not.
    let admission = app.pipeline.admit(Priority::Interactive);
    let _memory = size.reserve(&app.body_budget).await?;
    let photos = read_photos(multipart?, "photos", app.photo_limits).await?;
    let embedded = app.search.embed_photos(admission, photos).await?;
    let manifest = app.pipeline.gate().model().manifest();
    Ok(Json(EmbeddingsResponse {
        model: ModelRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
        },
        dim: manifest.dim,
        embeddings: embedded
            .into_iter()
            .enumerate()
            .map(|(index, e)| PhotoEmbedding {
                index,
                format: e.photo.format,
                width: e.photo.width,
                height: e.photo.height,
                embedding: e.photo.embedding,
                source: e.source,
                labels: e.photo.labels,
            })
            .collect(),
    }))
}

/// `POST /v1/embeddings` form (multipart/form-data).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes a multipart body; never built
pub struct EmbeddingsForm {
    /// 1 to 8 photos (JPEG, PNG or WebP), one part each.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 8)]
    photos: Vec<Vec<u8>>,
}
