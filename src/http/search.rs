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
use super::report_body::{ReportBody, audience_of};
use crate::inference::{PhotoLabels, Priority, parse_breed_query};
use crate::reports::{ReportKind, ReportStatus, Species, ValidationError, checked_coordinate};
use crate::search::{
    EmbeddingSource, MAX_QUERY, PhotoSearch, QuerySpecies, SearchError, breed_classes,
};
use crate::store::SearchFilter;

/// Most results of one search.
const MAX_K: usize = 100;

/// Largest search radius: half the Earth's circumference (every point is within it), so that
/// any larger radius is a mistake, not a wider search.
pub const MAX_RADIUS_KM: f64 = 20_040.0;

/// The text fields a search form may carry.
const SEARCH_FIELDS: [&str; 10] = [
    "kind",
    "species",
    "status",
    "since",
    "latitude",
    "longitude",
    "radius_km",
    "k",
    "breed",
    "min_score",
];

/// Longest text query or breed name, in characters.
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
    /// What the model reads in the query photo (absent for a model without class logits).
    #[serde(skip_serializing_if = "Option::is_none")]
    query_labels: Option<PhotoLabels>,
    /// The species read in the query photo that ranked (`boost`) or narrowed (`filter`) the
    /// results; absent when none was used (the client named a species, or `species=any`, or
    /// the photo is read as neither dog nor cat).
    #[serde(skip_serializing_if = "Option::is_none")]
    species_used: Option<SpeciesUsed>,
    /// The relevance floor applied: results less similar are not look-alikes and are left out
    /// (0: no floor). The configured one unless the request passed `min_score`.
    min_score: f32,
    /// Results among the k best left out for being below `min_score` (ask again with
    /// `min_score=0` to see them).
    below_min_score: usize,
    results: Vec<SearchHit>,
}

/// A detected species used by a search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpeciesUsed {
    species: Species,
    /// `boost` or `filter`.
    #[schema(value_type = String, example = "boost")]
    how: QuerySpecies,
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
    let mut ask = parse_search(&form.fields)?;
    ask.filter.tenant = caller.tenant_id().map(str::to_owned);
    let photo = form.photos.remove(0);
    let audience = audience_of(&caller);
    let answer = app.search.search(admission, photo, &ask).await?;
    Ok(Json(SearchResponse {
        k: ask.k,
        query_source: answer.source,
        query_labels: answer.labels,
        species_used: answer
            .species
            .map(|(species, how)| SpeciesUsed { species, how }),
        min_score: answer.min_score,
        below_min_score: answer.below_min_score,
        results: answer
            .results
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
) -> Result<PhotoSearch, ValidationError> {
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
    let species = get("species").filter(|s| *s != "any");
    let filter = SearchFilter {
        kinds,
        species: species.map(str::parse).transpose()?,
        status,
        since,
        near,
        exclude: None,
        tenant: None,
        breeds: get("breed")
            .map(breed_classes)
            .transpose()?
            .unwrap_or_default(),
    };
    let min_score = number("min_score")?
        .map(|m| {
            if (-1.0..=1.0).contains(&m) {
                Ok(m as f32)
            } else {
                Err(ValidationError::new(
                    "min_score",
                    "must be between -1 and 1 (0: no floor)",
                ))
            }
        })
        .transpose()?;
    Ok(PhotoSearch {
        filter,
        k,
        min_score,
        use_species: get("species") != Some("any"),
    })
}

/// Query of `GET /v1/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TextSearchQuery {
    /// Breed words: a breed (`beagle`, `siamese`, `tabby`), a plural (`beagles`), a group
    /// (`poodle`, `terrier`), a synonym (`alsatian`, `goldie`), a French, Spanish or German name
    /// (`berger allemand`, `pastor alemán`, `Schäferhund`), or a species (`dog`, `chat`, `gato`)
    /// for all its breeds. Other words are ignored.
    #[param(min_length = 1, max_length = 200, example = "beagle")]
    q: String,
    /// Only these kinds, comma-separated.
    #[param(pattern = "^\\s*(lost|found|sighting)\\s*(,\\s*(lost|found|sighting)\\s*)*$")]
    kind: Option<String>,
    /// Only reports of this species.
    #[param(value_type = Option<crate::reports::Species>)]
    species: Option<String>,
    /// open (default), resolved or any.
    #[param(value_type = Option<StatusFilter>)]
    status: Option<String>,
    /// Reports wanted (1 to 100; default 20).
    #[param(minimum = 1, maximum = 100)]
    k: Option<usize>,
}

/// A report found by breed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BreedSearchHit {
    report: ReportBody,
    /// Its photo most likely of the breeds asked.
    photo_id: Uuid,
    thumbnail_url: String,
    /// That photo's probability of showing one of them (0 to 1).
    probability: f32,
}

/// `GET /v1/search` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TextSearchResponse {
    q: String,
    /// The breeds the query was understood as (empty: none known; then no results).
    breeds: Vec<&'static str>,
    /// Reports with a photo read as one of them, most likely first.
    results: Vec<BreedSearchHit>,
}

/// `GET /v1/search?q=beagle`: reports whose photos the model reads as the breeds named in `q`,
/// without a photo, most likely first (from the labels stored with the embeddings: no model
/// run).
#[utoipa::path(get, path = "/v1/search", operation_id = "search_by_text", tag = "search",
    params(TextSearchQuery),
    responses((status = 200, description = "Reports of the breeds named, most likely first", body = TextSearchResponse),
        (status = 422, description = "A parameter is wrong (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn by_text(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<TextSearchQuery>, QueryRejection>,
) -> Result<Json<TextSearchResponse>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let text = q.q.trim();
    if text.is_empty() || text.chars().count() > MAX_QUERY {
        return Err(
            ApiError::validation(format!("q must be 1 to {MAX_QUERY} characters"))
                .with("field", "q"),
        );
    }
    let k = q.k.unwrap_or(20);
    if !(1..=MAX_K).contains(&k) {
        return Err(
            ApiError::validation(format!("k must be between 1 and {MAX_K}")).with("field", "k"),
        );
    }
    let kinds = match q.kind.as_deref() {
        None => Vec::new(),
        Some(v) => v
            .split(',')
            .map(|k| k.trim().parse::<ReportKind>())
            .collect::<Result<_, _>>()?,
    };
    let status = match q.status.as_deref() {
        None => Some(ReportStatus::Open),
        Some("any") => None,
        Some(v) => Some(v.parse()?),
    };
    let filter = SearchFilter {
        kinds,
        species: q.species.as_deref().map(str::parse).transpose()?,
        status,
        tenant: caller.tenant_id().map(str::to_owned),
        ..SearchFilter::default()
    };
    let audience = audience_of(&caller);
    let breeds = parse_breed_query(text);
    let found = app.search.search_by_breed(&breeds, &filter, k).await?;
    Ok(Json(TextSearchResponse {
        q: text.to_owned(),
        breeds: breeds.names(),
        results: found
            .into_iter()
            .map(|r| BreedSearchHit {
                thumbnail_url: format!("/v1/photos/{}/thumbnail", r.photo_id),
                photo_id: r.photo_id,
                probability: r.probability,
                report: ReportBody::shown_to(r.report, audience),
            })
            .collect(),
    }))
}

/// Query of `GET /v1/reports/{id}/matches`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MatchesQuery {
    /// Only these kinds, comma-separated (the opposite kinds by default).
    #[param(pattern = "^\\s*(lost|found|sighting)\\s*(,\\s*(lost|found|sighting)\\s*)*$")]
    kind: Option<String>,
    /// Least similarity (cosine, -1 to 1; the configured relevance floor, `--min-score`, by
    /// default). Also accepted as `threshold`, its former name.
    #[param(minimum = -1, maximum = 1)]
    #[serde(alias = "threshold")]
    // f64 so that the bounds are checked on what was sent: -1.0000000001 rounds to -1 as an f32.
    min_score: Option<f64>,
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
    /// The least similarity of a match here: the request's `min_score`, or the relevance floor.
    min_score: f32,
    matches: Vec<MatchBody>,
}

/// `GET /v1/reports/{id}/matches?kind=&min_score=&limit=`: open reports similar to this one's
/// photos (opposite kind by default) at or above the relevance floor, from stored embeddings
/// only.
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
    if q.min_score.is_some_and(|t| !(-1.0..=1.0).contains(&t)) {
        return Err(
            ApiError::validation("min_score must be between -1 and 1").with("field", "min_score")
        );
    }
    if q.limit.is_some_and(|l| !(1..=MAX_K).contains(&l)) {
        return Err(
            ApiError::validation(format!("limit must be between 1 and {MAX_K}"))
                .with("field", "limit"),
        );
    }
    let min_score = q
        .min_score
        .map_or(app.search.matcher().settings().min_score, |t| t as f32);
    let found = app
        .search
        .matches_of(
            report_id,
            caller.tenant_id(),
            kinds,
            Some(min_score),
            q.limit,
        )
        .await?;
    Ok(Json(MatchesResponse {
        report_id,
        min_score,
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
// The examples are what Swagger UI's "Try it out" fills the form with: only `k`, so that a first
// try finds something (an empty example leaves the field out; a null one is sent as "null").
pub struct SearchForm {
    /// The query photo (JPEG, PNG or WebP).
    #[schema(value_type = String, format = Binary)]
    photo: Vec<u8>,
    /// Reports wanted (1 to 100; default 20).
    #[schema(minimum = 1, maximum = 100, example = 10)]
    #[serde(default)]
    k: u32,
    /// Only these kinds, comma-separated (lost, found, sighting).
    #[schema(
        pattern = "^\\s*(lost|found|sighting)\\s*(,\\s*(lost|found|sighting)\\s*)*$",
        example = ""
    )]
    #[serde(default)]
    kind: String,
    /// Only this species (dog, cat, other); `any` also keeps the species read in the query
    /// photo from ranking or narrowing the search. When absent, that species is used (see
    /// `species_used` in the answer).
    #[schema(pattern = "^(dog|cat|other|any)$", example = "")]
    #[serde(default)]
    species: String,
    /// Only reports with a photo read as this breed: a name, plural, group (`poodle`,
    /// `terrier`), synonym (`alsatian`) or French, Spanish or German name (`berger allemand`).
    #[schema(max_length = 200, example = "")]
    #[serde(default)]
    breed: String,
    /// The relevance floor for this search (cosine, -1 to 1; 0: none); the configured one by
    /// default (see `min_score` in the answer).
    #[schema(minimum = -1, maximum = 1, example = "")]
    #[serde(default)]
    min_score: f32,
    /// open (default), resolved or any.
    #[schema(value_type = StatusFilter)]
    #[serde(default)]
    status: String,
    /// Only reports created at or after this time (RFC 3339).
    #[schema(value_type = chrono::DateTime<chrono::Utc>, example = "")]
    #[serde(default)]
    since: String,
    /// Centre latitude (see `form_schema::search_latitude`).
    #[schema(schema_with = super::form_schema::search_latitude)]
    #[serde(default)]
    latitude: f64,
    /// Centre longitude.
    #[schema(schema_with = super::form_schema::search_longitude)]
    #[serde(default)]
    longitude: f64,
    /// Radius in kilometres (see `form_schema::search_radius`).
    #[schema(schema_with = super::form_schema::search_radius)]
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
