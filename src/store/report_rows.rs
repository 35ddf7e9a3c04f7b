//! Reading reports back: the columns a report is read from, a row into a [`Report`], and the
//! photos of reports with their embedding state (shared by the creation's read-back, single
//! reports, lists and searches).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use super::StoreError;
use super::formats::format_named;
use super::labels::labels_from_row;
use crate::domain::report::{EmbeddingStatus, Photo, Report, overall_status};

/// The columns [`photos_from_rows`] reads, of `photos p` (or rows like them) joined to their
/// `blobs b`, their `embeddings e` and embedding `jobs j`.
const PHOTO_COLUMNS: &str = "p.report_id, p.id, p.position, b.format, b.width, b.height, b.bytes, p.sha256,
                e.sha256 IS NOT NULL AS embedded, j.id AS job_id, j.status AS job_status, j.last_error,
                e.species, e.species_probability, e.breed_classes, e.breed_probabilities";

/// The joins behind [`PHOTO_COLUMNS`], after `FROM photos p` (or rows like them), for the model `$2`.
const PHOTO_JOINS: &str = "JOIN blobs b ON b.sha256 = p.sha256
         LEFT JOIN embeddings e ON e.sha256 = p.sha256 AND e.model_id = $2
         LEFT JOIN jobs j ON j.dedupe_key = lookalike_embed_job_key(p.sha256, $2)";

/// The photos of `reports` with their embedding state for `model_id`, by report.
pub(super) async fn photos_of<'e>(
    db: impl PgExecutor<'e>,
    reports: &[Uuid],
    model_id: i32,
) -> Result<HashMap<Uuid, Vec<Photo>>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {PHOTO_COLUMNS}
         FROM photos p
         {PHOTO_JOINS}
         WHERE p.report_id = ANY($1)
         ORDER BY p.report_id, p.position"
    ))
    .bind(reports)
    .bind(model_id)
    .fetch_all(db)
    .await?;
    photos_from_rows(&rows)
}

/// Rows read with [`PHOTO_COLUMNS`] as photos, by report, in the rows' order.
pub(super) fn photos_from_rows(rows: &[PgRow]) -> Result<HashMap<Uuid, Vec<Photo>>, StoreError> {
    let mut by_report: HashMap<Uuid, Vec<Photo>> = HashMap::new();
    for r in rows {
        let embedded: bool = r.try_get("embedded")?;
        let job_status: Option<String> = r.try_get("job_status")?;
        let failed = !embedded && job_status.as_deref() == Some("failed");
        let sha: Vec<u8> = r.try_get("sha256")?;
        let labels = labels_from_row(r)?;
        by_report
            .entry(r.try_get("report_id")?)
            .or_default()
            .push(Photo {
                id: r.try_get("id")?,
                position: r.try_get("position")?,
                // Checked: only a stable name is shown.
                format: format_named(&r.try_get::<String, _>("format")?)?
                    .name()
                    .to_owned(),
                width: r.try_get("width")?,
                height: r.try_get("height")?,
                bytes: r.try_get("bytes")?,
                sha256: hex::encode(sha),
                embedding_status: if embedded {
                    EmbeddingStatus::Ready
                } else if failed {
                    EmbeddingStatus::Failed
                } else {
                    EmbeddingStatus::Pending
                },
                embedding_error: if failed {
                    r.try_get("last_error")?
                } else {
                    None
                },
                job_id: r.try_get("job_id")?,
                predicted_species: labels.as_ref().map(|l| l.predicted_species),
                species_probability: labels.as_ref().map(|l| l.species_probability),
                breeds: labels.map(|l| l.breeds).unwrap_or_default(),
            });
    }
    Ok(by_report)
}

/// The reports of `rows` (each read with [`REPORT_COLUMNS`]), in their order, with their photos,
/// each beside its row (for the columns a query adds).
pub(super) async fn reports_of_rows<'r>(
    pool: &PgPool,
    rows: &'r [PgRow],
    model_id: i32,
) -> Result<Vec<(Report, &'r PgRow)>, StoreError> {
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut photos = photos_of(pool, &ids, model_id).await?;
    rows.iter()
        .map(|row| {
            let id: Uuid = row.try_get("id")?;
            Ok((
                report_from_row(row, photos.remove(&id).unwrap_or_default())?,
                row,
            ))
        })
        .collect()
}

pub(super) const REPORT_COLUMNS: &str = "id, kind, species, title, description, latitude, longitude, contact, status, created_at, updated_at, tenant_id, contact_public, public_latitude, public_longitude";

pub(super) fn report_from_row(row: &PgRow, photos: Vec<Photo>) -> Result<Report, StoreError> {
    let parse =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    let bad = |e: crate::domain::report::ValidationError| {
        StoreError::Query(sqlx::Error::Decode(Box::new(e)))
    };
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    Ok(Report {
        id: row.try_get("id")?,
        kind: parse("kind")?.parse().map_err(bad)?,
        species: parse("species")?.parse().map_err(bad)?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        latitude: row.try_get("latitude")?,
        longitude: row.try_get("longitude")?,
        contact: row.try_get("contact")?,
        contact_public: row.try_get("contact_public")?,
        location_rounded: false,
        public_location: row
            .try_get::<Option<f64>, _>("public_latitude")?
            .zip(row.try_get::<Option<f64>, _>("public_longitude")?),
        status: parse("status")?.parse().map_err(bad)?,
        created_at,
        updated_at: row.try_get("updated_at")?,
        tenant: row.try_get("tenant_id")?,
        embedding_status: overall_status(&photos),
        photos,
        possible_matches: None,
    })
}
