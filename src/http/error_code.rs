//! The stable error codes of the API, each with its HTTP status: the one list clients, the
//! OpenAPI document and the error mapping share.

use axum::http::StatusCode;
use serde::Serialize;

/// A stable, machine-readable error code (`code` in every error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 422: a field or parameter is missing or wrong (`field` names it).
    ValidationFailed,
    /// 413: a photo or the body is larger than the route accepts.
    PayloadTooLarge,
    /// 408: the request body stalled or took too long.
    BodyTimeout,
    /// 400 (malformed body) or 415 (not multipart): the multipart body cannot be read.
    InvalidMultipart,
    /// 415: a photo in a format the service does not read.
    UnsupportedMediaType,
    /// 422: a photo that cannot be decoded (empty, truncated, corrupt).
    InvalidImage,
    /// 422: a photo with more pixels than allowed, or metadata (a colour profile) that inflates
    /// past its cap.
    ImageTooLarge,
    /// 404: no such resource or route.
    NotFound,
    /// 404: the photo's thumbnail is made with its embedding and is not there yet (see the
    /// photo's `embedding_status`); retry after `Retry-After`.
    ThumbnailPending,
    /// 405: the route does not take this method.
    MethodNotAllowed,
    /// 401: the service needs an API key and none was sent.
    ApiKeyRequired,
    /// 401: the API key is not valid.
    InvalidApiKey,
    /// 401: the report's owner token is needed.
    Unauthorized,
    /// 403: the owner token does not match the report.
    Forbidden,
    /// 409: the photos do not fit the API key's storage quota.
    QuotaExceeded,
    /// 429: over a rate limit.
    RateLimited,
    /// 429: the client's address already holds its share of request bodies in flight, upload
    /// slots or body memory (`reason` says which); retry after `Retry-After`.
    ConcurrencyLimited,
    /// 503: the service is saturated (`reason` says where); retry after `Retry-After`.
    Overloaded,
    /// 503: the database or the photo store is unavailable; retry after `Retry-After`.
    Unavailable,
    /// 503: not ready (readiness check).
    NotReady,
    /// 500: the model failed on this request.
    InferenceFailed,
    /// 500: an unexpected server error (its cause is logged under the request id).
    Internal,
    /// 429: without API keys, the client address's bytes of photos for the UTC day are used up;
    /// retry after `Retry-After` (midnight UTC).
    DailyLimitExceeded,
    /// 507: without API keys, the store holds all the photos it may.
    StorageFull,
    /// 403: operators' data (`/metrics`) for a client that is not an operator.
    OperatorOnly,
}

impl ErrorCode {
    /// The code as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::BodyTimeout => "body_timeout",
            ErrorCode::InvalidMultipart => "invalid_multipart",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidImage => "invalid_image",
            ErrorCode::ImageTooLarge => "image_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ThumbnailPending => "thumbnail_pending",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::ApiKeyRequired => "api_key_required",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ConcurrencyLimited => "concurrency_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::InferenceFailed => "inference_failed",
            ErrorCode::Internal => "internal",
            ErrorCode::DailyLimitExceeded => "daily_limit_exceeded",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::OperatorOnly => "operator_only",
        }
    }

    /// The HTTP status it is sent with (`invalid_multipart` is 400 unless the body is not
    /// multipart at all: see `ApiError::with_status`).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::ValidationFailed | ErrorCode::InvalidImage | ErrorCode::ImageTooLarge => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::InvalidMultipart => StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::NotFound | ErrorCode::ThumbnailPending => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::ApiKeyRequired | ErrorCode::InvalidApiKey | ErrorCode::Unauthorized => {
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::QuotaExceeded => StatusCode::CONFLICT,
            ErrorCode::RateLimited | ErrorCode::ConcurrencyLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Overloaded | ErrorCode::Unavailable | ErrorCode::NotReady => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::InferenceFailed | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::DailyLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::OperatorOnly => StatusCode::FORBIDDEN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sent_code_is_the_serialised_name() {
        for code in [
            ErrorCode::ValidationFailed,
            ErrorCode::BodyTimeout,
            ErrorCode::InvalidMultipart,
            ErrorCode::ApiKeyRequired,
            ErrorCode::Internal,
        ] {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::json!(code.as_str()))
            );
        }
    }
}
