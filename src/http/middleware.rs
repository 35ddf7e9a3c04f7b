//! Middleware on every request: a request id (taken from `x-request-id` or made), carried by the
//! request's log span and returned on the response; where the request's time went; and the
//! per-route HTTP metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::telemetry::prometheus::HttpMetrics;
use crate::telemetry::timing::{self, RequestTimings, Stage};

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Tags the request with an id, logs under it, and records the route's metrics.
pub async fn observe(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    // A client's id is kept when it is short and printable; otherwise a fresh one is made.
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    // At error level, so that whatever the log filter, the lines of a failed request carry
    // its id (a span below the filter is never created, and its fields would be lost).
    let span = tracing::error_span!(
        "request",
        request_id = %id,
        %method,
        %route,
        queue_ms = tracing::field::Empty,
        decode_ms = tracing::field::Empty,
        inference_ms = tracing::field::Empty,
        database_ms = tracing::field::Empty,
    );
    let timings = Arc::new(RequestTimings::default());
    let mut response = timing::scope(timings.clone(), next.run(request))
        .instrument(span.clone())
        .await;
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    metrics.observe(&route, &method, status, seconds);
    explain_time(&timings, &span, response.headers_mut());
    span.in_scope(|| tracing::debug!(status, ms = seconds * 1e3, "answered"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// `X-Content-Type-Options: nosniff` on every answer (JSON, photos, the page, errors): a
/// browser takes each body for its declared type only, so a photo or a JSON string is never run
/// as a script or rendered as a page.
pub async fn no_sniffing(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Puts where the time went into the request's span and, for requests that did such work, into
/// `x-queue-time`, `x-decode-time`, `x-inference-time` and `x-database-time` (milliseconds), so
/// that a slow answer explains itself.
fn explain_time(timings: &RequestTimings, span: &tracing::Span, headers: &mut HeaderMap) {
    let stages = [
        (Stage::Queue, "queue_ms", "x-queue-time"),
        (Stage::Decode, "decode_ms", "x-decode-time"),
        (Stage::Inference, "inference_ms", "x-inference-time"),
        (Stage::Database, "database_ms", "x-database-time"),
    ];
    if stages
        .iter()
        .all(|(stage, _, _)| timings.get(*stage).is_zero())
    {
        return;
    }
    for (stage, field, header) in stages {
        let ms = timings.get(stage).as_secs_f64() * 1e3;
        span.record(field, ms);
        if let Ok(value) = HeaderValue::from_str(&format!("{ms:.1}")) {
            headers.insert(header, value);
        }
    }
}
