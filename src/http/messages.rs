//! `/v1/reports/{id}/messages`: visitors write to a report's owner (whose contact stays private
//! unless published); the owner reads them with the owner token, newest first.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::paging::{next_cursor, page_size};
use super::protect::Caller;
use super::reports::{bad_id, bearer, json_error};
use crate::messages::{Message, NewMessage, Relay};

/// `POST /v1/reports/{id}/messages` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageForm {
    /// The message: plain text, 1 to 2000 characters (line breaks and tabs are the only control
    /// characters allowed).
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^(?=[\\s\\S]*\\S)[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    text: String,
    /// How the owner can answer you (an e-mail address, a phone number; at most 200 characters,
    /// one line). The owner sees it; nobody else does.
    #[schema(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    reply_to: Option<String>,
}

/// `POST /v1/reports/{id}/messages` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SentBody {
    /// The message's id.
    id: i64,
    /// The report written to.
    report_id: Uuid,
    /// When it was recorded.
    created_at: chrono::DateTime<chrono::Utc>,
}

/// `POST /v1/reports/{id}/messages`: leaves a message for the report's owner.
#[utoipa::path(post, path = "/v1/reports/{id}/messages", operation_id = "send_message", tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    request_body(content = MessageForm, content_type = "application/json"),
    responses((status = 201, description = "Kept for the owner (a report keeps its newest 500 messages)", body = SentBody),
        (status = 404, description = "No such report (`not_found`)", body = crate::http::error::ErrorBody),
        (status = 408, description = "The body stalled or took too long (`body_timeout`)", body = crate::http::error::ErrorBody),
        (status = 413, description = "The body is larger than the route accepts (`payload_too_large`)", body = crate::http::error::ErrorBody),
        (status = 422, description = "The body or id is wrong (`validation_failed`, with `field`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn send(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    form: Result<Json<MessageForm>, JsonRejection>,
) -> Result<(StatusCode, Json<SentBody>), ApiError> {
    let Path(report_id) = id.map_err(bad_id)?;
    let Json(form) = form.map_err(json_error)?;
    let message = NewMessage::new(&form.text, form.reply_to.as_deref())?;
    let sent = Relay::new(app.store.clone())
        .send(report_id, caller.tenant_id(), &message)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SentBody {
            id: sent.id,
            report_id,
            created_at: sent.created_at,
        }),
    ))
}

/// Query of `GET /v1/reports/{id}/messages`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Page size (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
}

/// A page of a report's messages, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessagesPage {
    messages: Vec<Message>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

/// `GET /v1/reports/{id}/messages` with the owner token: the messages left for the owner.
#[utoipa::path(get, path = "/v1/reports/{id}/messages", operation_id = "list_messages", tag = "reports",
    params(("id" = Uuid, Path, description = "Report id"), MessagesQuery),
    security(("owner_token" = [])),
    responses((status = 200, description = "A page of the report's messages, newest first", body = MessagesPage),
        crate::http::error::OwnerOnly,
        (status = 422, description = "A parameter or the id is wrong (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    query: Result<Query<MessagesQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<MessagesPage>, ApiError> {
    let Path(report_id) = id.map_err(bad_id)?;
    let Query(q) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = page_size(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|_| c.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ApiError::validation("invalid cursor").with("field", "cursor"))
        })
        .transpose()?;
    let messages = Relay::new(app.store.clone())
        .read(
            report_id,
            caller.tenant_id(),
            bearer(&headers),
            before,
            limit,
        )
        .await?;
    let next_cursor = next_cursor(&messages, limit, |m| m.id.to_string());
    Ok(Json(MessagesPage {
        messages,
        next_cursor,
    }))
}
