//! `POST /v1/search` (by photo) and `GET /v1/reports/{id}/matches` (from stored embeddings).

use axum::Json;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::body::BodySize;
use super::error::ApiError;
use super::multipart::{PhotoCaps, read_form};
use super::protect::Caller;
use super::reports::{ReportBody, audience_of};
use crate::inference::Priority;
use crate::reports::{ReportKind, ReportStatus, ValidationError, checked_coordinate};
use crate::search::{EmbeddingSource, SearchError};
use crate::store::SearchFilter;

/// Most results of one search.
const MAX_K: usize = 100;

/// Largest search radius: half the Earth's circumference (every point is within it), so that
/// any larger radius is a mistake, not a wider search.
pub const MAX_RADIUS_KM: f64 = 20_040.0;

/// The text fields a search form may carry.
const SEARCH_FIELDS: [&str; 8] = [
    "kind",
    "species",
    "status",
    "since",
    "latitude",
    "longitude",
    "radius_km",
    "k",
];

/// One search result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    report: ReportBody,
    photo_id: Uuid,
    thumbnail_url: String,
    score: f32,
}

/// `POST /v1/search` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    k: usize,
    /// `store` when the query photo's bytes were embedded before (no model run), `model`
    /// otherwise.
    query_source: EmbeddingSource,
    results: Vec<SearchHit>,
}

/// `POST /v1/search`: one photo in the field `photo`, plus filters: `kind` (comma-separated),
/// `species`, `status` (open by default; `any` for all), `since` (RFC 3339), `latitude` +
/// `longitude` + `radius_km`, and `k` (1..100, default 20). Results are grouped per report. A
/// photo embedded before (the same bytes) needs no model run: it is answered also while the
/// model is saturated. A field sent empty is refused (422): leave it out for no filter.
#[utoipa::path(post, path = "/v1/search", operation_id = "search", tag = "search",
    request_body(content = SearchForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The k most similar reports, best first", body = SearchResponse),
        (status = 400, description = "Malformed multipart body (`invalid_multipart`)", body = crate::http::error::ErrorBody),
        (status = 413, description = "The photo or the body is too large (`payload_too_large`)", body = crate::http::error::ErrorBody),
        (status = 415, description = "Not multipart, or a photo in an unsupported format (`unsupported_media_type`)", body = crate::http::error::ErrorBody),
        (status = 422, description = "A field is wrong (`validation_failed`), or the photo cannot be decoded (`invalid_image`, `image_too_large`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited),
        (status = 503, response = crate::http::error::RetryLater)))]
pub async fn search(
    State(app): State<AppState>,
    caller: Caller,
    size: BodySize,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<SearchResponse>, ApiError> {
    // A place in the gate, then memory for the body, and only then the body. A full gate does
    // not end the request: a photo embedded before is answered from the store.
    let admission = app.pipeline.admit(Priority::Interactive);
    let _memory = size.reserve(&app.body_budget).await?;
    let limits = PhotoCaps {
        max_bytes: app.photo_limits.max_bytes,
        max_count: 1,
    };
    let mut form = read_form(multipart?, "photo", limits, &SEARCH_FIELDS).await?;
    let (mut filter, k) = parse_search(&form.fields)?;
    filter.tenant = caller.tenant_id().map(str::to_owned);
    let photo = form.photos.remove(0);
    let audience = audience_of(&caller);
    let (results, query_source) = app.search.search(admission, photo, &filter, k).await?;
    Ok(Json(SearchResponse {
        k,
        query_source,
        results: results
            .into_iter()
            .map(|r| SearchHit {
                thumbnail_url: format!("/v1/photos/{}/thumbnail", r.photo_id),
                photo_id: r.photo_id,
                score: r.score,
                report: ReportBody::shown_to(r.report, audience),
            })
            .collect(),
    }))
}

fn parse_search(
    fields: &std::collections::HashMap<String, String>,
) -> Result<(SearchFilter, usize), ValidationError> {
    if let Some(unknown) = fields.keys().find(|k| !SEARCH_FIELDS.contains(&k.as_str())) {
        return Err(ValidationError::new(unknown.clone(), "unknown field"));
    }
    // A field sent empty is not a value of its schema (a time, a number, a name): refused, so
    // that leaving it out is the one way to say "no filter".
    if let Some((empty, _)) = fields.iter().find(|(_, v)| v.trim().is_empty()) {
        return Err(ValidationError::new(
            empty.clone(),
            "is empty: leave the field out",
        ));
    }
    let get = |name: &str| fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let number = |name: &str| -> Result<Option<f64>, ValidationError> {
        get(name)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| ValidationError::new(name, "must be a number"))
            })
            .transpose()
    };
    let k = match get("k") {
        None => 20,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|k| (1..=MAX_K).contains(k))
            .ok_or_else(|| {
                ValidationError::new("k", format!("must be an integer from 1 to {MAX_K}"))
            })?,
    };
    let kinds = match get("kind") {
        None => Vec::new(),
        Some(v) => v
            .split(',')
            .map(|k| k.trim().parse::<ReportKind>())
            .collect::<Result<_, _>>()?,
    };
    let status = match get("status") {
        None => Some(ReportStatus::Open),
        Some("any") => None,
        Some(v) => Some(v.parse()?),
    };
    let since = get("since")
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ValidationError::new(
                        "since",
                        "must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z",
                    )
                })
        })
        .transpose()?;
    let near = match (
        number("latitude")?,
        number("longitude")?,
        number("radius_km")?,
    ) {
        (None, None, None) => None,
        (Some(lat), Some(lon), Some(r)) => {
            if !(r > 0.0 && r <= MAX_RADIUS_KM) {
                return Err(ValidationError::new(
                    "radius_km",
                    format!("must be above 0 and at most {MAX_RADIUS_KM}"),
                ));
            }
            // Kept to 1e-7° like stored positions: a subnormal centre is 0, never an underflow.
            Some((
                checked_coordinate("latitude", lat, 90.0)?,
                checked_coordinate("longitude", lon, 180.0)?,
                r,
            ))
        }
        _ => {
            return Err(ValidationError::new(
                "radius_km",
                "latitude, longitude and radius_km go together",
            ));
        }
    };
    let filter = SearchFilter {
        kinds,
        species: get("species").map(str::parse).transpose()?,
        status,
        since,
        near,
        exclude: None,
        tenant: None,
    };
    Ok((filter, k))
}

/// Query of `GET /v1/reports/{id}/matches`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MatchesQuery {
    /// Only these kinds, comma-separated (the opposite kinds by default).
    #[param(pattern = "^\\s*(lost|found|sighting)\\s*(,\\s*(lost|found|sighting)\\s*)*$")]
    kind: Option<String>,
    /// Least similarity (cosine, -1 to 1; the configured match threshold by default).
    #[param(minimum = -1, maximum = 1)]
    threshold: Option<f32>,
    /// Most matches (1 to 100).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// One match.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MatchBody {
    report_id: Uuid,
    score: f32,
    photo_id: Uuid,
    matched_photo_id: Uuid,
    matched_thumbnail_url: String,
}

/// `GET /v1/reports/{id}/matches` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MatchesResponse {
    report_id: Uuid,
    matches: Vec<MatchBody>,
}

/// `GET /v1/reports/{id}/matches?kind=&threshold=&limit=`: open reports similar to this one's
/// photos (opposite kind by default), from stored embeddings only.
#[utoipa::path(get, path = "/v1/reports/{id}/matches", operation_id = "get_matches", tag = "search",
    params(("id" = Uuid, Path, description = "Report id"), MatchesQuery),
    responses((status = 200, description = "Open reports similar to this one's photos", body = MatchesResponse),
        (status = 404, description = "No such report (`not_found`)", body = crate::http::error::ErrorBody), (status = 422, description = "A parameter is wrong (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn matches(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    query: Result<Query<MatchesQuery>, QueryRejection>,
) -> Result<Json<MatchesResponse>, ApiError> {
    let Path(report_id) = id.map_err(|_| ApiError::validation("the id must be a UUID"))?;
    let Query(q) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let kinds = q
        .kind
        .as_deref()
        .map(|v| {
            v.split(',')
                .map(|k| k.trim().parse::<ReportKind>())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    if q.threshold.is_some_and(|t| !(-1.0..=1.0).contains(&t)) {
        return Err(
            ApiError::validation("threshold must be between -1 and 1").with("field", "threshold")
        );
    }
    if q.limit.is_some_and(|l| !(1..=MAX_K).contains(&l)) {
        return Err(
            ApiError::validation(format!("limit must be between 1 and {MAX_K}"))
                .with("field", "limit"),
        );
    }
    let found = app
        .search
        .matches_of(report_id, caller.tenant_id(), kinds, q.threshold, q.limit)
        .await?;
    Ok(Json(MatchesResponse {
        report_id,
        matches: found
            .into_iter()
            .map(|m| MatchBody {
                report_id: m.other,
                score: m.score,
                photo_id: m.photo_id,
                matched_photo_id: m.other_photo_id,
                matched_thumbnail_url: format!("/v1/photos/{}/thumbnail", m.other_photo_id),
            })
            .collect(),
    }))
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Pipeline(p) => p.into(),
            SearchError::Store(s) => s.into(),
            SearchError::NotFound => ApiError::not_found("no such report"),
        }
    }
}

/// `POST /v1/search` form (multipart/form-data).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes a multipart body; never built
pub struct SearchForm {
    /// The query photo (JPEG, PNG or WebP).
    #[schema(value_type = String, format = Binary)]
    photo: Vec<u8>,
    /// Reports wanted (1 to 100; default 20).
    #[schema(minimum = 1, maximum = 100)]
    #[serde(default)]
    k: u32,
    /// Only these kinds, comma-separated (lost, found, sighting).
    #[schema(pattern = "^\\s*(lost|found|sighting)\\s*(,\\s*(lost|found|sighting)\\s*)*$")]
    #[serde(default)]
    kind: String,
    /// Only this species.
    #[schema(value_type = crate::reports::Species)]
    #[serde(default)]
    species: String,
    /// open (default), resolved or any.
    #[schema(value_type = StatusFilter)]
    #[serde(default)]
    status: String,
    /// Only reports created at or after this time (RFC 3339).
    #[schema(value_type = chrono::DateTime<chrono::Utc>)]
    #[serde(default)]
    since: String,
    /// With longitude and radius_km: only reports within the radius.
    #[schema(minimum = -90, maximum = 90)]
    #[serde(default)]
    latitude: f64,
    /// See latitude.
    #[schema(minimum = -180, maximum = 180)]
    #[serde(default)]
    longitude: f64,
    /// See latitude (kilometres, more than 0 and at most 20040). Reports are placed by their
    /// public position (rounded to 0.01°, about 1 km), so that the answers to many searches
    /// reveal no position more finely than it is shown.
    #[schema(exclusive_minimum = 0, maximum = 20040)]
    #[serde(default)]
    radius_km: f64,
}

/// Which reports a search considers, by status.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    /// Open reports only (the default).
    Open,
    /// Resolved reports only.
    Resolved,
    /// Every report.
    Any,
}
