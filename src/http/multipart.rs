//! Reading photos out of a multipart body, with a size limit per photo and a count limit.

use axum::body::Bytes;
use axum::extract::Multipart;

use super::error::ApiError;

/// Limits of one upload.
#[derive(Debug, Clone, Copy)]
pub struct PhotoLimits {
    /// Largest photo, bytes.
    pub max_bytes: usize,
    /// Most photos.
    pub max_count: usize,
}

/// Reads every part named `field` as a photo (1..=max_count of them, each ≤ max_bytes). Other
/// parts are refused so that a misspelt field name is an error, not a silently ignored photo.
pub async fn read_photos(
    mut multipart: Multipart,
    field: &str,
    limits: PhotoLimits,
) -> Result<Vec<Bytes>, ApiError> {
    let mut photos = Vec::new();
    while let Some(mut part) = multipart.next_field().await? {
        let name = part.name().unwrap_or_default().to_owned();
        if name != field {
            return Err(ApiError::validation(format!(
                "unexpected field `{name}`: send photos in the field `{field}`"
            )));
        }
        if photos.len() == limits.max_count {
            return Err(ApiError::validation(format!(
                "at most {} photos per request",
                limits.max_count
            ))
            .with("max_photos", limits.max_count));
        }
        let mut data = Vec::new();
        while let Some(chunk) = part.chunk().await? {
            if data.len() + chunk.len() > limits.max_bytes {
                return Err(ApiError::too_large(format!(
                    "photo {} is larger than {} bytes",
                    photos.len() + 1,
                    limits.max_bytes
                ))
                .with("max_photo_bytes", limits.max_bytes));
            }
            data.extend_from_slice(&chunk);
        }
        photos.push(Bytes::from(data));
    }
    if photos.is_empty() {
        return Err(ApiError::validation(format!(
            "no photo: send at least one in the field `{field}`"
        )));
    }
    Ok(photos)
}
