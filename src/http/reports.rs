//! Reports, their photos and jobs: `/v1/reports`, `/v1/photos/{id}`, `/v1/jobs/{id}`.

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::multipart::{PhotoLimits, read_form};
use super::protect::Caller;
use crate::reports::{NewReport, Report, ReportFilter, ReportPatch};
use crate::store::JobRecord;

/// Most reports per page.
const MAX_PAGE: u32 = 100;

/// A report as the API shows it: the stored report plus the URLs of its photos.
#[derive(Debug, Serialize)]
pub struct ReportBody {
    #[serde(flatten)]
    report: Report,
    photo_urls: Vec<PhotoUrls>,
}

#[derive(Debug, Serialize)]
struct PhotoUrls {
    id: Uuid,
    url: String,
    thumbnail_url: String,
}

impl From<Report> for ReportBody {
    fn from(report: Report) -> Self {
        let photo_urls = report
            .photos
            .iter()
            .map(|p| PhotoUrls {
                id: p.id,
                url: format!("/v1/photos/{}", p.id),
                thumbnail_url: format!("/v1/photos/{}/thumbnail", p.id),
            })
            .collect();
        ReportBody { report, photo_urls }
    }
}

/// `POST /v1/reports` answer: the report and, once, its owner token.
#[derive(Debug, Serialize)]
pub struct CreatedBody {
    #[serde(flatten)]
    report: ReportBody,
    owner_token: String,
}

/// `POST /v1/reports`: fields + 1..N photos (multipart); answers 201 at once, embeddings follow.
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<CreatedBody>), ApiError> {
    let _slot = app.reports.upload_slot().await?;
    let limits = PhotoLimits {
        max_bytes: app.photo_limits.max_bytes,
        max_count: app.max_report_photos,
    };
    let form = read_form(multipart?, "photos", limits, true).await?;
    let new = NewReport::from_fields(&form.fields)?;
    let created = app
        .reports
        .create(new, form.photos, caller.tenant_id())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedBody {
            report: created.report.into(),
            owner_token: created.owner_token,
        }),
    ))
}

/// `GET /v1/reports/{id}`.
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<ReportBody>, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    Ok(Json(app.reports.get(id, caller.tenant_id()).await?.into()))
}

/// Query of `GET /v1/reports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    kind: Option<String>,
    species: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A page of reports.
#[derive(Debug, Serialize)]
pub struct ReportPage {
    reports: Vec<ReportBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// `GET /v1/reports?kind=&species=&status=&limit=&cursor=`: newest first.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ReportPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            ApiError::validation(format!("limit must be between 1 and {MAX_PAGE}"))
                .with("field", "limit"),
        );
    }
    let filter = ReportFilter {
        kind: q.kind.as_deref().map(str::parse).transpose()?,
        species: q.species.as_deref().map(str::parse).transpose()?,
        status: q.status.as_deref().map(str::parse).transpose()?,
        before: q.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
        tenant: caller.tenant_id().map(str::to_owned),
    };
    let reports = app.reports.list(&filter).await?;
    let next_cursor = if reports.len() == limit as usize {
        reports.last().map(|r| encode_cursor(r.created_at, r.id))
    } else {
        None
    };
    Ok(Json(ReportPage {
        reports: reports.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// `DELETE /v1/reports/{id}` with the owner token.
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    app.reports
        .delete(id, caller.tenant_id(), bearer(&headers))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /v1/reports/{id}` with the owner token: e.g. `{"status": "resolved"}`.
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
    patch: Result<Json<ReportPatch>, JsonRejection>,
) -> Result<Json<ReportBody>, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    let token = bearer(&headers);
    let Json(patch) = patch.map_err(|e| ApiError::validation(e.body_text()))?;
    Ok(Json(
        app.reports
            .update(id, caller.tenant_id(), token, &patch)
            .await?
            .into(),
    ))
}

/// `GET /v1/photos/{id}`: the photo as uploaded.
pub async fn photo(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    let (bytes, mime) = app.reports.photo(id, caller.tenant_id()).await?;
    Ok(image_response(bytes, mime))
}

/// `GET /v1/photos/{id}/thumbnail`: a JPEG, longer side 256 px, made once at upload.
pub async fn thumbnail(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    Ok(image_response(
        app.reports.thumbnail(id, caller.tenant_id()).await?,
        "image/jpeg",
    ))
}

/// `GET /v1/usage`: the caller's storage use and quota (with API keys only).
pub async fn usage(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<UsageBody>, ApiError> {
    let tenant = caller
        .tenant_id()
        .ok_or_else(|| ApiError::not_found("this service runs without API keys: no quota"))?;
    let usage = app.reports.storage_usage(tenant).await?;
    Ok(Json(UsageBody {
        tenant: tenant.to_owned(),
        used_bytes: usage.used_bytes,
        max_bytes: usage.max_bytes,
    }))
}

/// `GET /v1/usage` answer.
#[derive(Debug, Serialize)]
pub struct UsageBody {
    tenant: String,
    used_bytes: i64,
    max_bytes: i64,
}

/// `GET /v1/jobs/{id}`.
pub async fn job(
    State(app): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<JobRecord>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::validation("the job id must be an integer"))?;
    app.store
        .job(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such job"))
}

fn image_response(bytes: bytes::Bytes, mime: &'static str) -> Response {
    // Photos never change under an id (content-addressed), so clients may cache them for long.
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        Body::from(bytes),
    )
        .into_response()
}

fn bad_id(_: PathRejection) -> ApiError {
    ApiError::validation("the id must be a UUID")
}

/// The owner token from `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", created_at.timestamp_micros(), id.simple())
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::validation("invalid cursor").with("field", "cursor");
    let (micros, id) = cursor.split_once('_').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    Ok((created_at, Uuid::parse_str(id).map_err(|_| invalid())?))
}
