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
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::body::{BodySize, BodyTimeout};
use super::error::ApiError;
use super::multipart::{PhotoCaps, read_form};
use super::protect::Caller;
pub use super::report_body::{ReportBody, ReportPage, audience_of};
use crate::jobs::JobRecord;
use crate::reports::{
    Audience, NewReport, PhotoBody, PhotoFile, REPORT_FIELDS, ReportFilter, ReportPatch, Uploader,
};

/// Most reports per page.
const MAX_PAGE: u32 = 100;

/// `POST /v1/reports` answer: the report and, once, its owner token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedBody {
    #[serde(flatten)]
    report: ReportBody,
    owner_token: String,
}

/// `POST /v1/reports`: fields + 1..N photos (multipart); answers 201 at once, embeddings follow.
#[utoipa::path(post, path = "/v1/reports", operation_id = "create_report", tag = "reports",
    request_body(content = ReportForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored; embeddings follow in the background. The owner token is shown only here.", body = CreatedBody),
        (status = 400, description = "Malformed multipart body (`invalid_multipart`)", body = crate::http::error::ErrorBody),
        (status = 409, description = "The photos do not fit the API key's storage quota (`quota_exceeded`, with used/max/requested bytes)", body = crate::http::error::ErrorBody),
        (status = 413, description = "A photo or the body is too large (`payload_too_large`)", body = crate::http::error::ErrorBody),
        (status = 415, description = "Not multipart, or a photo in an unsupported format (`unsupported_media_type`)", body = crate::http::error::ErrorBody),
        (status = 422, description = "A field is missing or wrong (`validation_failed`, with `field`), or a photo cannot be decoded (`invalid_image`, `image_too_large`, with `photo_index`; `image_too_large` also for a colour profile that inflates past 4 MiB)", body = crate::http::error::ErrorBody),
        (status = 429, description = "Over a rate limit (`rate_limited`), or, without API keys, this address's bytes of photos for the UTC day are used up (`daily_limit_exceeded`, with used/max/requested bytes; `Retry-After` is the time until midnight UTC)", body = crate::http::error::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 507, description = "Without API keys: the store holds all the photos it may (`storage_full`, with used/max/requested bytes)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    size: BodySize,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<CreatedBody>), ApiError> {
    // An upload slot, then memory for the body, and only then the body: a client whose body
    // stalls loses both at its deadline.
    let _slot = app.reports.upload_slot_for(size.client).await?;
    let _memory = size.reserve(&app.body_budget).await?;
    let limits = PhotoCaps {
        max_bytes: app.photo_limits.max_bytes,
        max_count: app.max_report_photos,
    };
    let form = read_form(multipart?, "photos", limits, &REPORT_FIELDS).await?;
    let new = NewReport::from_fields(&form.fields)?;
    let uploader = match caller.tenant_id() {
        Some(tenant) => Uploader::Tenant(tenant),
        None => Uploader::Address(caller.address),
    };
    let created = app.reports.create(new, form.photos, uploader).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedBody {
            report: ReportBody::shown_to(created.report, Audience::Owner),
            owner_token: created.owner_token,
        }),
    ))
}

/// `GET /v1/reports/{id}`: the whole report for its owner (`Authorization: Bearer <owner
/// token>`) and its tenant (API key); for anyone else, no contact unless published and the
/// position rounded to 0.01° (about 1 km).
#[utoipa::path(get, path = "/v1/reports/{id}", operation_id = "get_report", tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    security(("owner_token" = [])),
    responses((status = 200, description = "The report, its photos' embedding state and its possible matches: with the contact and the exact position for the owner token and the tenant's API key, without the contact (unless `contact_public`) and with the position rounded to 0.01° (`location_rounded`) for anyone else", body = ReportBody),
        (status = 404, description = "No such report (`not_found`)", body = crate::http::error::ErrorBody), (status = 422, description = "The id is not a UUID (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<ReportBody>, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    let (report, audience) = app
        .reports
        .get_for(id, caller.tenant_id(), bearer(&headers))
        .await?;
    Ok(Json(ReportBody::shown_to(report, audience)))
}

/// Query of `GET /v1/reports`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this kind.
    #[param(value_type = Option<crate::reports::ReportKind>)]
    kind: Option<String>,
    /// Only this species.
    #[param(value_type = Option<crate::reports::Species>)]
    species: Option<String>,
    /// Only this status (any by default).
    #[param(value_type = Option<crate::reports::ReportStatus>)]
    status: Option<String>,
    /// Only reports with a photo read as this breed: a name, plural, group (`poodle`), synonym
    /// (`alsatian`) or French, Spanish or German name; unknown names are refused.
    #[param(max_length = 200, example = "beagle")]
    breed: Option<String>,
    /// Page size (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([0-9]{1,18}|d[0-9a-f]{16})_[0-9a-f]{32}$")]
    cursor: Option<String>,
    /// With longitude and radius_km: only reports within the radius, nearest first, each with
    /// `distance_km` to its public position (rounded to 0.01°). Reports without a position are
    /// left out.
    #[param(value_type = Option<f64>, minimum = -90, maximum = 90, example = 48.8566)]
    latitude: Option<String>,
    /// See latitude.
    #[param(value_type = Option<f64>, minimum = -180, maximum = 180, example = 2.3522)]
    longitude: Option<String>,
    /// See latitude (kilometres, more than 0 and at most 20040; not without a place).
    #[param(value_type = Option<f64>, exclusive_minimum = 0, maximum = 20040, example = 10)]
    radius_km: Option<String>,
}

/// `GET /v1/reports?kind=&species=&status=&breed=&limit=&cursor=`: newest first; with
/// `latitude=&longitude=&radius_km=`, nearest first.
#[utoipa::path(get, path = "/v1/reports", operation_id = "list_reports", tag = "reports",
    params(ListQuery),
    responses((status = 200, description = "A page of reports, newest first, or with a place nearest first with `distance_km` (as the public sees them without an API key: no contact unless published, positions rounded to 0.01°)", body = ReportPage),
        (status = 422, description = "A parameter is wrong (`validation_failed`, with `field`): e.g. a radius without a place, a latitude out of range, or a cursor of the other order", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
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
    let near = super::nearby::near(
        q.latitude.as_deref(),
        q.longitude.as_deref(),
        q.radius_km.as_deref(),
        q.cursor.as_deref(),
    )?;
    let filter = ReportFilter {
        kind: q.kind.as_deref().map(str::parse).transpose()?,
        species: q.species.as_deref().map(str::parse).transpose()?,
        status: q.status.as_deref().map(str::parse).transpose()?,
        breeds: q
            .breed
            .as_deref()
            .map(crate::search::breed_classes)
            .transpose()?
            .unwrap_or_default(),
        before: match near {
            None => q.cursor.as_deref().map(decode_cursor).transpose()?,
            Some(_) => None,
        },
        limit,
        tenant: caller.tenant_id().map(str::to_owned),
    };
    if let Some(near) = near {
        let page = super::nearby::page(&app, &filter, &near, audience_of(&caller)).await?;
        return Ok(Json(page));
    }
    let reports = app.reports.list(&filter).await?;
    let next_cursor = if reports.len() == limit as usize {
        reports.last().map(|r| encode_cursor(r.created_at, r.id))
    } else {
        None
    };
    let audience = audience_of(&caller);
    Ok(Json(ReportPage {
        reports: reports
            .into_iter()
            .map(|r| ReportBody::shown_to(r, audience))
            .collect(),
        next_cursor,
    }))
}

/// `DELETE /v1/reports/{id}` with the owner token.
#[utoipa::path(delete, path = "/v1/reports/{id}", operation_id = "delete_report", tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    security(("owner_token" = [])),
    responses((status = 204, description = "Deleted; its photo bytes go back to the storage quota"),
        (status = 401, description = "No owner token (`unauthorized`), or API key missing or invalid", body = crate::http::error::ErrorBody),
        (status = 403, description = "The owner token does not match (`forbidden`)", body = crate::http::error::ErrorBody),
        (status = 404, description = "No such report (`not_found`)", body = crate::http::error::ErrorBody), (status = 422, description = "The id is not a UUID (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
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
#[utoipa::path(patch, path = "/v1/reports/{id}", operation_id = "update_report", tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    request_body(content = crate::reports::ReportPatch, content_type = "application/json"),
    security(("owner_token" = [])),
    responses((status = 200, description = "The changed report", body = ReportBody),
        (status = 401, description = "No owner token (`unauthorized`), or API key missing or invalid", body = crate::http::error::ErrorBody),
        (status = 403, description = "The owner token does not match (`forbidden`)", body = crate::http::error::ErrorBody),
        (status = 404, description = "No such report (`not_found`)", body = crate::http::error::ErrorBody),
        (status = 408, description = "The body stalled or took too long (`body_timeout`)", body = crate::http::error::ErrorBody),
        (status = 413, description = "The body is larger than the route accepts (`payload_too_large`)", body = crate::http::error::ErrorBody),
        (status = 422, description = "The body or id is wrong (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
    patch: Result<Json<ReportPatch>, JsonRejection>,
) -> Result<Json<ReportBody>, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    let token = bearer(&headers);
    let Json(patch) = patch.map_err(json_error)?;
    let report = app
        .reports
        .update(id, caller.tenant_id(), token, &patch)
        .await?;
    Ok(Json(ReportBody::shown_to(report, Audience::Owner)))
}

/// `GET /v1/photos/{id}`: the photo as uploaded, without its metadata.
#[utoipa::path(get, path = "/v1/photos/{id}", operation_id = "get_photo", tag = "reports",
    params(("id" = Uuid, Path, description = "Photo id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of the copy the client holds")),
    responses((status = 200, description = "The photo as uploaded, its pixels untouched and its metadata removed: no EXIF (but a minimal block keeping the orientation), GPS, XMP, IPTC, comments or text chunks (`Cache-Control: private, no-cache`, with an `ETag`)", content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "image/webp"))),
        (status = 304, description = "The client's copy (If-None-Match) is current"),
        (status = 404, description = "No such photo (`not_found`)", body = crate::http::error::ErrorBody), (status = 422, description = "The id is not a UUID (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn photo(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    photo_file(app, caller, id, &headers, PhotoFile::Original).await
}

/// `GET /v1/photos/{id}/thumbnail`: a JPEG, longer side 256 px, made by the photo's embedding
/// job (with the one decode that job makes).
#[utoipa::path(get, path = "/v1/photos/{id}/thumbnail", operation_id = "get_thumbnail", tag = "reports",
    params(("id" = Uuid, Path, description = "Photo id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of the copy the client holds")),
    responses((status = 200, description = "JPEG, longer side 256 px (`Cache-Control: private, no-cache`, with an `ETag`)", content_type = "image/jpeg", body = Vec<u8>),
        (status = 304, description = "The client's copy (If-None-Match) is current"),
        (status = 404, description = "No such photo (`not_found`), or its thumbnail is not made yet (`thumbnail_pending`, with `Retry-After`: the photo's embedding job makes it; a photo whose `embedding_status` is `failed` has none)", body = crate::http::error::ErrorBody), (status = 422, description = "The id is not a UUID (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn thumbnail(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    photo_file(app, caller, id, &headers, PhotoFile::Thumbnail).await
}

/// A photo's file, or 304 when the client's copy is current.
async fn photo_file(
    app: AppState,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    headers: &HeaderMap,
    file: PhotoFile,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let answer = app
        .reports
        .photo_file(id, caller.tenant_id(), file, if_none_match)
        .await?;
    // A copy may be kept, but only by the client (never a shared cache) and only after asking:
    // a deleted photo must not outlive its deletion anywhere. Asking costs a 304 without a
    // read of the photo store.
    let cache = (header::CACHE_CONTROL, "private, no-cache");
    Ok(match answer {
        PhotoBody::Fresh { body, mime, etag } => (
            [
                (header::CONTENT_TYPE, mime.to_owned()),
                (header::ETAG, etag),
                (cache.0, cache.1.to_owned()),
                (header::CONTENT_LENGTH, body.size.to_string()),
            ],
            Body::from_stream(body.chunks),
        )
            .into_response(),
        PhotoBody::NotModified { etag } => (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (cache.0, cache.1.to_owned())],
        )
            .into_response(),
    })
}

/// `GET /v1/usage`: the caller's storage use and quota (an API key's), or, without API keys,
/// the caller's address's bytes of photos uploaded today and the daily limit.
#[utoipa::path(get, path = "/v1/usage", operation_id = "get_usage", tag = "reports",
    responses((status = 200, description = "With an API key: its storage use and quota (`scope` `tenant`). Without API keys: this address's bytes of photos uploaded since midnight UTC and the daily limit (`scope` `address`, with `resets_at`)", body = UsageBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn usage(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<UsageBody>, ApiError> {
    if let Some(tenant) = caller.tenant_id() {
        let usage = app.reports.storage_usage(tenant).await?;
        return Ok(Json(UsageBody {
            scope: UsageScope::Tenant,
            tenant: Some(tenant.to_owned()),
            used_bytes: usage.used_bytes,
            max_bytes: Some(usage.max_bytes),
            resets_at: None,
        }));
    }
    let usage = app.reports.address_usage(caller.address).await?;
    Ok(Json(UsageBody {
        scope: UsageScope::Address,
        tenant: None,
        used_bytes: usage.used_bytes,
        // No limit is said as none.
        max_bytes: (usage.max_bytes < i64::MAX).then_some(usage.max_bytes),
        resets_at: Some(usage.resets_at),
    }))
}

/// Whose use `GET /v1/usage` tells.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageScope {
    /// The API key's tenant: bytes of photos stored, against its quota.
    Tenant,
    /// The caller's address (a service without API keys): bytes of photos uploaded today (UTC),
    /// against the daily limit.
    Address,
}

/// `GET /v1/usage` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageBody {
    scope: UsageScope,
    /// The tenant (scope `tenant`).
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    /// Bytes stored (tenant) or uploaded today (address).
    used_bytes: i64,
    /// The quota or the daily limit; null when there is none.
    max_bytes: Option<i64>,
    /// When an address's daily count starts again (midnight UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<DateTime<Utc>>,
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "get_job", tag = "reports",
    params(("id" = i64, Path, description = "Job id (a photo's job_id)")),
    responses((status = 200, description = "The job", body = JobRecord),
        (status = 404, description = "No such job (`not_found`)", body = crate::http::error::ErrorBody), (status = 422, description = "The id is not an integer (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn job(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<JobRecord>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::validation("the job id must be an integer"))?;
    app.store
        .jobs()
        .get(id, caller.tenant_id())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such job"))
}

/// A JSON body that could not be read: too large (413), too slow (408) or not valid (422).
pub(super) fn json_error(e: JsonRejection) -> ApiError {
    if let Some(timeout) = BodyTimeout::find(&e) {
        ApiError::body_timeout(timeout)
    } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(e.body_text())
    } else {
        ApiError::validation(e.body_text())
    }
}

pub(super) fn bad_id(_: PathRejection) -> ApiError {
    ApiError::validation("the id must be a UUID")
}

/// The owner token from `Authorization: Bearer <token>`.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
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

/// Latest cursor time, in microseconds since 1970: the end of year 9999 UTC, which PostgreSQL's
/// timestamps hold; a later one reads as it (a page from the newest report).
const MAX_CURSOR_MICROS: i64 = 253_402_300_799_999_999;

/// A `next_cursor` back: `<micros>_<32 hex>` as made (digits only, so never before 1970, and
/// at most [`MAX_CURSOR_MICROS`]): a forged one is a 422 or a harmless page, and never a time
/// PostgreSQL cannot hold.
fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::validation("invalid cursor").with("field", "cursor");
    let (micros, id) = cursor.split_once('_').ok_or_else(invalid)?;
    if micros.is_empty()
        || micros.len() > 18
        || !micros.bytes().all(|b| b.is_ascii_digit())
        || id.len() != 32
        || !id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(invalid());
    }
    let micros = micros
        .parse::<i64>()
        .map_err(|_| invalid())?
        .min(MAX_CURSOR_MICROS);
    let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    Ok((created_at, Uuid::parse_str(id).map_err(|_| invalid())?))
}

/// `POST /v1/reports` form (multipart/form-data).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes a multipart body; never built
pub struct ReportForm {
    /// lost, found or sighting.
    #[schema(value_type = crate::reports::ReportKind)]
    kind: String,
    /// dog, cat or other.
    #[schema(value_type = crate::reports::Species)]
    species: String,
    /// Short title (at most 200 characters, not blank).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    title: String,
    /// Free text (at most 5000 characters).
    #[schema(max_length = 5000)]
    #[serde(default)]
    description: String,
    /// Latitude (see `form_schema::report_latitude`).
    #[schema(schema_with = super::form_schema::report_latitude)]
    #[serde(default)]
    latitude: f64,
    /// Longitude (see `form_schema::report_longitude`).
    #[schema(schema_with = super::form_schema::report_longitude)]
    #[serde(default)]
    longitude: f64,
    /// How to reach the author (at most 200 characters): shown only to the owner and the tenant
    /// unless `contact_public`; visitors write through `POST /v1/reports/{id}/messages`.
    #[schema(max_length = 200)]
    #[serde(default)]
    contact: String,
    /// `true` to show the contact to anyone (default `false`).
    #[serde(default)]
    contact_public: bool,
    /// 1 to 5 photos (JPEG, PNG or WebP), one part each.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 5)]
    photos: Vec<Vec<u8>>,
}
