//! The OpenAPI document (`GET /openapi.json`), built by `utoipa` from the handlers' annotations
//! and the bodies' types, and a self-contained reference page rendered from it (`GET /docs`).

use std::sync::OnceLock;

use axum::Json;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Required};
use utoipa::{Modify, OpenApi};

use super::embeddings::{self, EmbeddingsForm};
use super::error::{ApiKeyRefused, BodyTooSlow, ErrorBody, ErrorCode, RateLimited, RetryLater};
use super::health;
use super::messages;
use super::reports::{self, ReportForm};
use super::search::{self, SearchForm};

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
        messages::send,
        messages::list,
        search::search,
        search::by_text,
        reports::photo,
        reports::thumbnail,
        reports::job,
        reports::usage,
        super::events::stream,
        super::events::deliveries,
        super::share::qr,
        super::share::page,
        super::share::poster,
        document,
        docs,
    ),
    components(
        schemas(ErrorBody, ErrorCode, ReportForm, SearchForm, EmbeddingsForm),
        responses(ApiKeyRefused, RateLimited, RetryLater, BodyTooSlow)
    ),
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
            // Every body has deadlines and a least rate (`body::DeadlineBody`).
            if op.request_body.is_some() {
                op.responses
                    .responses
                    .entry("408".to_owned())
                    .or_insert_with(|| {
                        utoipa::openapi::Ref::from_response_name("BodyTooSlow").into()
                    });
            }
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

/// `GET /docs/reference`: the API reference as one HTML page (no scripts, nothing fetched from
/// elsewhere), for readers without JavaScript; `/docs` is the interactive one.
#[utoipa::path(get, path = "/docs/reference", operation_id = "get_docs", tag = "operations",
    responses((status = 200, description = "The API reference as plain HTML (the interactive one is `/docs`)", content_type = "text/html", body = String)))]
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
                    // A shared answer: its description, from the components.
                    RefOr::Ref(r) => doc
                        .components
                        .as_ref()
                        .and_then(|c| {
                            c.responses
                                .get(r.ref_location.trim_start_matches("#/components/responses/"))
                        })
                        .map_or_else(
                            || r.ref_location.clone(),
                            |shared| match shared {
                                RefOr::T(shared) => shared.description.clone(),
                                RefOr::Ref(other) => other.ref_location.clone(),
                            },
                        ),
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
