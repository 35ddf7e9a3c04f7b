//! `GET /v1/reports/{id}/events` (a report's live events as Server-Sent Events) and
//! `GET /v1/webhooks/deliveries` (the webhook delivery log, for operators).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{ApiError, ErrorCode};
use super::protect::{Caller, Operator};
use super::reports::bad_id;
use super::state::AppState;
use crate::webhooks::DeliveryRecord;

/// How long a client waits before reconnecting (the `retry:` field of the first event).
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// One event of the stream as a client reads it: the `text/event-stream` fields (`data` is the
/// event's JSON as text), which is what the document promises each event to be.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the framing only: axum's `Sse` writes the events.
pub struct StreamEvent {
    /// `status`, `match`, `resolved` or `deleted`.
    event: String,
    /// The event's JSON object, as text.
    data: String,
    /// Milliseconds a client waits before reconnecting (on the first event only).
    retry: Option<u64>,
    /// Not sent today.
    id: Option<String>,
}

/// `GET /v1/reports/{id}/events`: the report's live events, as Server-Sent Events.
#[utoipa::path(get, path = "/v1/reports/{id}/events", operation_id = "report_events", tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    responses((status = 200, description = "A stream of Server-Sent Events (docs/events.md), first the report's current state:\n\n\
        `event: status` `data: {\"report_id\",\"status\":\"pending\"|\"ready\"|\"failed\",\"ready\",\"failed\",\"total\"}` (photos ready or failed; also sent first, on connect);\n\n\
        `event: match` `data: {\"report_id\",\"match_report_id\",\"score\"}` (a new possible match);\n\n\
        `event: resolved` `data: {\"report_id\"}`; `event: deleted` `data: {\"report_id\"}` (then the stream ends).\n\n\
        Heartbeat comments (`: hb`) every 15 s while idle. The service ends a stream after at most `--event-stream-max-secs`, on shutdown, \
        and when it falls behind; the client reconnects (EventSource does so by itself) and gets the current state first.",
            content_type = "text/event-stream", body = StreamEvent),
        (status = 404, description = "No such report (`not_found`), or not one the caller may see", body = crate::http::error::ErrorBody),
        (status = 422, description = "The id is not a UUID (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused),
        (status = 429, description = "Over a rate limit (`rate_limited`), or the address holds all the event streams it may (`concurrency_limited`, `reason`: `event_streams`)", body = crate::http::error::ErrorBody),
        (status = 503, description = "The process holds all the event streams it may (`overloaded`, `reason`: `event_streams`), or live events are unavailable now (`unavailable`)", body = crate::http::error::ErrorBody)))]
pub async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    let stream = app
        .events
        .subscribe(id, caller.tenant_id(), caller.address)
        .await?;
    let heartbeat = app.events.settings().heartbeat;
    let events = futures_util::stream::unfold((stream, true), |(mut stream, first)| async move {
        let event = stream.next().await?;
        let mut sse = Event::default().event(event.name()).data(event.data());
        if first {
            sse = sse.retry(RECONNECT_AFTER);
        }
        Some((Ok::<_, Infallible>(sse), (stream, false)))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("hb"))
        .into_response();
    // Proxies that buffer responses (nginx) would hold the events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Query of `GET /v1/webhooks/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Only the attempts of this event (its `X-Lookalike-Event-Id`).
    event_id: Option<Uuid>,
    /// Most attempts returned, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The delivery log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveriesBody {
    /// Delivery attempts, newest first.
    deliveries: Vec<DeliveryRecord>,
}

/// `GET /v1/webhooks/deliveries`: webhook delivery attempts, newest first (operators only).
#[utoipa::path(get, path = "/v1/webhooks/deliveries", operation_id = "webhook_deliveries", tag = "operations",
    params(DeliveriesQuery),
    responses((status = 200, description = "Delivery attempts, newest first: event, target, URL, attempt, the receiver's status or the error, time", body = DeliveriesBody),
        (status = 403, description = "Not an operator (`operator_only`): as for `/metrics`", body = crate::http::error::ErrorBody),
        (status = 422, description = "A parameter is wrong (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited),
        (status = 503, response = crate::http::error::RetryLater)))]
pub async fn deliveries(
    State(app): State<AppState>,
    Operator(operator): Operator,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<DeliveriesBody>, ApiError> {
    if !operator {
        return Err(ApiError::new(
            ErrorCode::OperatorOnly,
            "the delivery log is for operators: from the service's host, with the operator key \
             (Authorization: Bearer), or on the operators' listener (--metrics-listen)",
        ));
    }
    operators_deliveries(State(app), query).await
}

/// The delivery log, for a caller known to be an operator (the operators' listener).
pub async fn operators_deliveries(
    State(app): State<AppState>,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<DeliveriesBody>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit must be 1 to 1000").with("field", "limit"));
    }
    let deliveries = app
        .store
        .webhooks()
        .deliveries(q.event_id, i64::from(limit))
        .await?;
    Ok(Json(DeliveriesBody { deliveries }))
}
