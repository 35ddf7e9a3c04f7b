//! Reading multipart bodies: photos with a size limit each and a count limit, and short text fields.

use std::collections::HashMap;

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

/// Longest text field, bytes.
const MAX_TEXT_FIELD: usize = 16 * 1024;

/// A multipart form: text fields and photos.
#[derive(Debug, Default)]
pub struct Form {
    /// Text fields by name (each name once).
    pub fields: HashMap<String, String>,
    /// The photos, in order.
    pub photos: Vec<Bytes>,
}

/// Reads every part: those named `photo_field` as photos (1..=max_count, each ≤ max_bytes), the
/// others as text fields when `text_fields` allows them. A misspelt field name is an error, not a
/// silently ignored photo.
pub async fn read_form(
    mut multipart: Multipart,
    photo_field: &str,
    limits: PhotoLimits,
    text_fields: bool,
) -> Result<Form, ApiError> {
    let mut form = Form::default();
    while let Some(mut part) = multipart.next_field().await? {
        let name = part.name().unwrap_or_default().to_owned();
        if name == photo_field {
            if form.photos.len() == limits.max_count {
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
                        form.photos.len() + 1,
                        limits.max_bytes
                    ))
                    .with("max_photo_bytes", limits.max_bytes));
                }
                data.extend_from_slice(&chunk);
            }
            form.photos.push(Bytes::from(data));
        } else if text_fields && !name.is_empty() {
            let mut data = Vec::new();
            while let Some(chunk) = part.chunk().await? {
                if data.len() + chunk.len() > MAX_TEXT_FIELD {
                    return Err(ApiError::validation(format!(
                        "field `{name}` is longer than {MAX_TEXT_FIELD} bytes"
                    ))
                    .with("field", name));
                }
                data.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(data).map_err(|_| {
                ApiError::validation(format!("field `{name}` is not UTF-8 text"))
                    .with("field", name.clone())
            })?;
            if form.fields.insert(name.clone(), text).is_some() {
                return Err(
                    ApiError::validation(format!("field `{name}` is given twice"))
                        .with("field", name),
                );
            }
        } else {
            return Err(ApiError::validation(format!(
                "unexpected field `{name}`: send photos in the field `{photo_field}`"
            ))
            .with("field", name));
        }
    }
    if form.photos.is_empty() {
        return Err(ApiError::validation(format!(
            "no photo: send at least one in the field `{photo_field}`"
        )));
    }
    Ok(form)
}

/// Reads a body made only of photos in `field`.
pub async fn read_photos(
    multipart: Multipart,
    field: &str,
    limits: PhotoLimits,
) -> Result<Vec<Bytes>, ApiError> {
    Ok(read_form(multipart, field, limits, false).await?.photos)
}
