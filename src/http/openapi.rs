//! The OpenAPI document (`GET /openapi.json`), built by `utoipa` from the handlers' annotations
//! and the bodies' types, and a self-contained reference page rendered from it (`GET /docs`).

use std::sync::OnceLock;

use axum::Json;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Required};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{embeddings, health, reports, search};

/// Every error answer: a stable `code`, a message for people, and the details its code carries.
/// Each detail is present only with the codes named in its description.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // describes the body `ApiError` writes; never built
pub struct ErrorBody {
    /// Stable and machine-readable.
    code: super::ErrorCode,
    /// What went wrong, for people (not stable: do not parse it).
    message: String,
    /// Seconds to wait before retrying (`rate_limited`, `overloaded`, `unavailable`; also in
    /// `Retry-After`).
    retry_after_seconds: Option<u64>,
    /// The offending field (`validation_failed`, an unknown multipart field).
    field: Option<String>,
    /// Why the service is saturated (`overloaded`): `queue_full`, `wait_timeout` or `connections`.
    reason: Option<String>,
    /// The photo's position in the request, from 0 (photo errors of `POST /v1/reports`).
    photo_index: Option<u64>,
    /// The formats accepted, and the one detected (`unsupported_media_type`).
    accepted: Option<Vec<String>>,
    detected: Option<String>,
    /// The photo's size and the most allowed (`image_too_large`).
    width: Option<u32>,
    height: Option<u32>,
    max_megapixels: Option<f64>,
    /// The most photos per request (`validation_failed`).
    max_photos: Option<u64>,
    /// The largest photo accepted, in bytes (`payload_too_large`).
    max_photo_bytes: Option<u64>,
    /// The largest body the route accepts, in bytes (`payload_too_large`).
    max_body_bytes: Option<u64>,
    /// The tenant's storage use, quota, and what the upload asked for (`quota_exceeded`).
    used_bytes: Option<i64>,
    max_bytes: Option<i64>,
    requested_bytes: Option<i64>,
    /// The route class and whose quota ran out, `address` or `key` (`rate_limited`).
    class: Option<String>,
    scope: Option<String>,
    /// The readiness checks and their state (`not_ready`).
    checks: Option<Object>,
}

/// A JSON object of named checks.
type Object = std::collections::BTreeMap<String, String>;

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
    /// Latitude in degrees (with longitude).
    #[schema(minimum = -90, maximum = 90)]
    #[serde(default)]
    latitude: f64,
    /// Longitude in degrees (with latitude).
    #[schema(minimum = -180, maximum = 180)]
    #[serde(default)]
    longitude: f64,
    /// How to reach the author (at most 200 characters).
    #[schema(max_length = 200)]
    #[serde(default)]
    contact: String,
    /// 1 to 5 photos (JPEG, PNG or WebP), one part each.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 5)]
    photos: Vec<Vec<u8>>,
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
    /// See latitude (kilometres, more than 0).
    #[schema(exclusive_minimum = 0)]
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

/// `POST /v1/embeddings` form (multipart/form-data).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes a multipart body; never built
pub struct EmbeddingsForm {
    /// 1 to 8 photos (JPEG, PNG or WebP), one part each.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 8)]
    photos: Vec<Vec<u8>>,
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "lookalike",
        description = "Reports with photos, and search by photo: photos become embeddings \
                       (EfficientNet-Lite0 on ONNX Runtime) and look-alikes are found in \
                       PostgreSQL + pgvector. Every error is a JSON body with a stable `code`."
    ),
    paths(
        health::healthz,
        health::readyz,
        health::status,
        health::metrics,
        embeddings::create,
        reports::create,
        reports::list,
        reports::get,
        reports::update,
        reports::delete,
        search::matches,
        search::search,
        reports::photo,
        reports::thumbnail,
        reports::job,
        reports::usage,
        document,
        docs,
    ),
    components(schemas(ErrorBody, super::ErrorCode, ReportForm, SearchForm, EmbeddingsForm)),
    modifiers(&Security),
    tags(
        (name = "reports", description = "Reports with photos; embeddings are made in the background"),
        (name = "search", description = "Search by photo, and matches between reports"),
        (name = "embeddings", description = "Photos in, vectors out"),
        (name = "operations", description = "Health, load and metrics"),
    )
)]
pub struct ApiDoc;

/// The API key (when the service has keys) and the owner token of a report.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                super::protect::API_KEY,
                "Needed on /v1/ routes when the service is configured with API keys; each key is \
                 a tenant that sees only its own reports.",
            ))),
        );
        components.add_security_scheme(
            "owner_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The owner_token returned once when the report was created.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document with every `/v1/` operation marked as taking the (optional) API key.
pub fn document_value() -> Document {
    let mut doc = ApiDoc::openapi();
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let mut requirements = op.security.take().unwrap_or_default();
            requirements.push(utoipa::openapi::security::SecurityRequirement::new(
                "api_key",
                Vec::<String>::new(),
            ));
            // Without keys configured, no key is needed.
            requirements.push(utoipa::openapi::security::SecurityRequirement::default());
            op.security = Some(requirements);
        }
    }
    doc
}

/// The document, built once.
fn cached_document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(document_value)
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", operation_id = "get_openapi", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn document() -> impl IntoResponse {
    Json(cached_document())
}

/// `GET /docs`: the API reference as one HTML page (no scripts, nothing fetched from elsewhere).
#[utoipa::path(get, path = "/docs", operation_id = "get_docs", tag = "operations",
    responses((status = 200, description = "The API reference", content_type = "text/html", body = String)))]
pub async fn docs() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Html(render(cached_document())),
    )
}

/// The reference page: each operation with its parameters, body and answers.
fn render(doc: &Document) -> String {
    let mut out = String::new();
    let title = escape(&doc.info.title);
    out.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} API</title>\
         <style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}\
         code,pre{{background:#f3f3f3;padding:0 .2em}}h2{{border-top:1px solid #ccc;padding-top:1rem}}\
         .m{{font-weight:bold;text-transform:uppercase}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}}</style>\
         </head><body><h1>{title} <small>{}</small></h1><p>{}</p>\
         <p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI {}).</p>",
        escape(&doc.info.version),
        escape(doc.info.description.as_deref().unwrap_or("")),
        escape(&plain(&doc.openapi)),
    ));
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("get", &item.get),
            ("post", &item.post),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ] {
            let Some(op) = op else { continue };
            out.push_str(&format!(
                "<h2><span class=\"m\">{method}</span> <code>{}</code></h2>",
                escape(path)
            ));
            if let Some(d) = op.description.as_deref().or(op.summary.as_deref()) {
                out.push_str(&format!("<p>{}</p>", escape(d)));
            }
            if let Some(params) = op.parameters.as_ref().filter(|p| !p.is_empty()) {
                out.push_str("<table><tr><th>parameter</th><th>in</th><th>required</th><th>description</th></tr>");
                for p in params {
                    out.push_str(&format!(
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(&p.name),
                        plain(&p.parameter_in),
                        matches!(p.required, Required::True),
                        escape(p.description.as_deref().unwrap_or(""))
                    ));
                }
                out.push_str("</table>");
            }
            if let Some(body) = &op.request_body {
                let types: Vec<&str> = body.content.keys().map(String::as_str).collect();
                out.push_str(&format!(
                    "<p>Body: <code>{}</code>{}</p>",
                    escape(&types.join(", ")),
                    body.content
                        .values()
                        .filter_map(|c| c.schema.as_ref())
                        .map(|s| format!(" ({})", escape(&schema_name(s))))
                        .next()
                        .unwrap_or_default()
                ));
            }
            out.push_str("<table><tr><th>status</th><th>answer</th></tr>");
            for (status, response) in &op.responses.responses {
                let description = match response {
                    RefOr::T(r) => r.description.clone(),
                    RefOr::Ref(r) => r.ref_location.clone(),
                };
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td></tr>",
                    escape(status),
                    escape(&description)
                ));
            }
            out.push_str("</table>");
        }
    }
    out.push_str("</body></html>");
    out
}

fn schema_name(schema: &RefOr<utoipa::openapi::Schema>) -> String {
    match schema {
        RefOr::Ref(r) => r
            .ref_location
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
        RefOr::T(_) => "inline".to_owned(),
    }
}

/// A value's JSON form as plain text (e.g. the OpenAPI version, `3.1.0`).
fn plain(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
