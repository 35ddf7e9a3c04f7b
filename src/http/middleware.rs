//! Middleware on every request: a request id (taken from `x-request-id` or made), carried by the
//! request's log span and returned on the response; and the per-route HTTP metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::telemetry::prometheus::HttpMetrics;

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
    let span = tracing::error_span!("request", request_id = %id, %method, %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    metrics.observe(&route, &method, status, seconds);
    span.in_scope(|| tracing::debug!(status, ms = seconds * 1e3, "answered"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
