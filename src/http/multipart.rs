//! Reading multipart bodies: photos with a size limit each and a count limit, and short text
//! fields from a fixed list. Whatever breaks a limit is refused at the part that breaks it, while
//! the body streams in, not after it has been read.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Multipart;

use super::error::ApiError;

/// Caps on the photos of one request: bytes per photo, and how many.
#[derive(Debug, Clone, Copy)]
pub struct PhotoCaps {
    /// Largest photo, bytes.
    pub max_bytes: usize,
    /// Most photos.
    pub max_count: usize,
}

/// Longest text field, bytes (a 5,000-character description in any script fits).
const MAX_TEXT_FIELD: usize = 24 * 1024;

/// A multipart form: text fields and photos.
#[derive(Debug, Default)]
pub struct Form {
    /// Text fields by name (each name once).
    pub fields: HashMap<String, String>,
    /// The photos, in order.
    pub photos: Vec<Bytes>,
}

/// Reads every part: those named `photo_field` as photos (1..=max_count, each ≤ max_bytes), the
/// others as text fields named in `text_fields`, each at most once. A misspelt field name is an
/// error, not a silently ignored photo.
pub async fn read_form(
    mut multipart: Multipart,
    photo_field: &str,
    limits: PhotoCaps,
    text_fields: &[&str],
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
            // Chunks are kept as they come and joined once at the end: a growing vector would
            // reallocate (and hold up to twice the photo) on the way.
            let mut chunks = Vec::new();
            let mut size = 0;
            while let Some(chunk) = part.chunk().await? {
                size += chunk.len();
                if size > limits.max_bytes {
                    return Err(ApiError::too_large(format!(
                        "photo {} is larger than {} bytes",
                        form.photos.len() + 1,
                        limits.max_bytes
                    ))
                    .with("max_photo_bytes", limits.max_bytes));
                }
                chunks.push(chunk);
            }
            form.photos.push(join(chunks, size));
        } else if text_fields.contains(&name.as_str()) {
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
            let expected = if text_fields.is_empty() {
                format!("send photos in the field `{photo_field}`")
            } else {
                format!(
                    "send photos in the field `{photo_field}`, and only the fields {}",
                    text_fields.join(", ")
                )
            };
            return Err(
                ApiError::validation(format!("unexpected field `{name}`: {expected}"))
                    .with("field", name),
            );
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
    limits: PhotoCaps,
) -> Result<Vec<Bytes>, ApiError> {
    Ok(read_form(multipart, field, limits, &[]).await?.photos)
}

/// One buffer from a photo's chunks (no copy when it came in one).
fn join(mut chunks: Vec<Bytes>, size: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut data = Vec::with_capacity(size);
    for chunk in chunks {
        data.extend_from_slice(&chunk);
    }
    Bytes::from(data)
}
