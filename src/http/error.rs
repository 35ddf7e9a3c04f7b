//! The one place where errors become HTTP responses: `{"code", "message", ...details}` with a
//! stable `code`, the right status, and `Retry-After` where waiting helps.

use std::time::Duration;

use axum::Json;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::capacity::CapacityError;
use crate::imaging::{ACCEPTED_TYPES, ImagingError};
use crate::inference::GateError;
use crate::photo_store::PhotoStoreError;
use crate::pipeline::PipelineError;
use crate::rate_limit::{LimitScope, Limited};
use crate::reports::{ReportError, ValidationError};
use crate::store::{ReserveError, StoreError};

use super::body_errors::{BodyRefused, BodyTimeout, BodyTooLarge};
pub use super::error_code::ErrorCode;

/// The cause behind an error: logged with the request id for server errors, never sent.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after: Option<Duration>,
    details: Map<String, Value>,
    /// Extra headers (a boxed slice: results carrying an `ApiError` stay small).
    headers: Box<[(HeaderName, HeaderValue)]>,
    cause: Option<Cause>,
}

impl ApiError {
    /// An error with a stable code (and its status) and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: code.status(),
            code,
            message: message.into(),
            retry_after: None,
            details: Map::new(),
            headers: Box::new([]),
            cause: None,
        }
    }

    /// Keeps `cause` for the log (server errors log it under the request id); the client sees
    /// only the stable message.
    pub fn caused_by(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// 408 `body_timeout`: the request body stalled or took too long.
    pub fn body_timeout(timeout: &BodyTimeout) -> Self {
        ApiError::new(ErrorCode::BodyTimeout, timeout.to_string())
    }

    /// Adds a field to the body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `Retry-After` (whole seconds, at least one).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// 422 `validation_failed`.
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::ValidationFailed, message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::PayloadTooLarge, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// 401 `api_key_required`: the service has keys and none was sent.
    pub fn api_key_required() -> Self {
        ApiError::new(
            ErrorCode::ApiKeyRequired,
            "this service needs an API key (header X-API-Key)",
        )
    }

    /// 401 `invalid_api_key`: the key sent is not one of the service's.
    pub fn invalid_api_key() -> Self {
        ApiError::new(ErrorCode::InvalidApiKey, "the API key is not valid")
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Sends the error with another status than its code's (`invalid_multipart` for a body that
    /// is not multipart at all is 415).
    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("code".into(), json!(self.code.as_str()));
        body.insert("message".into(), json!(self.message));
        let retry_secs = self.retry_after.map(|d| seconds_up(d).max(1));
        if let Some(secs) = retry_secs {
            body.insert("retry_after_seconds".into(), json!(secs));
        }
        body.extend(self.details);
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if let Some(secs) = retry_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        if let Some(cause) = &self.cause {
            if self.status.is_server_error() {
                tracing::error!(status = %self.status, code = self.code.as_str(), message = %self.message, cause = %cause_chain(cause.as_ref()), "request failed");
            }
        } else if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = self.code.as_str(), message = %self.message, "request failed");
        }
        response
    }
}

/// An error and its sources, outermost first: `a: b: c`.
fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        // Wrappers often repeat their source's text; say each thing once.
        if !chain.ends_with(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        next = e.source();
    }
    chain
}

/// Whole seconds, rounded up.
pub(super) fn seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl From<BodyTooLarge> for ApiError {
    fn from(e: BodyTooLarge) -> Self {
        ApiError::too_large(e.to_string()).with("max_body_bytes", e.max)
    }
}

impl IntoResponse for BodyTooLarge {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl From<ImagingError> for ApiError {
    fn from(e: ImagingError) -> Self {
        match e {
            ImagingError::Unsupported { detected } => {
                ApiError::new(ErrorCode::UnsupportedMediaType, e.to_string())
                    .with("accepted", json!(ACCEPTED_TYPES))
                    .with("detected", json!(detected))
            }
            ImagingError::TooLarge {
                width,
                height,
                max_megapixels,
            } => ApiError::new(ErrorCode::ImageTooLarge, e.to_string())
                .with("width", width)
                .with("height", height)
                .with("max_megapixels", max_megapixels),
            ImagingError::Empty | ImagingError::Decode(_) => {
                ApiError::new(ErrorCode::InvalidImage, e.to_string())
            }
            ImagingError::MetadataTooLarge { max_mib, .. } => {
                ApiError::new(ErrorCode::ImageTooLarge, e.to_string()).with("max_mib", max_mib)
            }
        }
    }
}

impl From<GateError> for ApiError {
    fn from(e: GateError) -> Self {
        match &e {
            GateError::QueueFull { retry_after, .. } => {
                overloaded(e.to_string(), "queue_full", *retry_after)
            }
            GateError::WaitTimeout { retry_after, .. } => {
                overloaded(e.to_string(), "wait_timeout", *retry_after)
            }
            GateError::Closed => ApiError::new(ErrorCode::Unavailable, e.to_string())
                .retry_after(Duration::from_secs(1)),
            GateError::Run(_) => ApiError::new(
                ErrorCode::InferenceFailed,
                "the model failed on this request",
            )
            .caused_by(e),
        }
    }
}

impl From<CapacityError> for ApiError {
    fn from(e: CapacityError) -> Self {
        let reason = match e {
            CapacityError::Full { .. } => "queue_full",
            CapacityError::Timeout { .. } => "wait_timeout",
            CapacityError::PerAddress { name, .. } => {
                return ApiError::new(ErrorCode::ConcurrencyLimited, e.to_string())
                    .with("reason", name)
                    .retry_after(e.retry_after());
            }
        };
        overloaded(e.to_string(), reason, e.retry_after())
    }
}

fn overloaded(message: String, reason: &'static str, retry_after: Duration) -> ApiError {
    ApiError::new(ErrorCode::Overloaded, message)
        .with("reason", reason)
        .retry_after(retry_after)
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Imaging(e) => e.into(),
            PipelineError::DecodeBusy(e) => e.into(),
            PipelineError::Gate(e) => e.into(),
        }
    }
}

impl From<crate::events::SubscribeError> for ApiError {
    fn from(e: crate::events::SubscribeError) -> Self {
        use crate::events::SubscribeError;
        let message = e.to_string();
        match e {
            SubscribeError::NotFound => ApiError::not_found("no such report"),
            SubscribeError::Full { .. } => {
                overloaded(message, "event_streams", Duration::from_secs(5))
            }
            SubscribeError::AddressFull { .. } => {
                ApiError::new(ErrorCode::ConcurrencyLimited, message)
                    .with("reason", "event_streams")
                    .retry_after(Duration::from_secs(5))
            }
            SubscribeError::Unavailable => {
                ApiError::new(ErrorCode::Unavailable, message).retry_after(Duration::from_secs(2))
            }
            SubscribeError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::new(
                ErrorCode::Unavailable,
                "the database is unavailable; retry shortly",
            )
            .retry_after(Duration::from_secs(2))
            .caused_by(e),
            _ => ApiError::new(ErrorCode::Internal, "internal database error").caused_by(e),
        }
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(e: MultipartRejection) -> Self {
        ApiError::new(
            ErrorCode::InvalidMultipart,
            format!("expected a multipart/form-data body: {e}"),
        )
        .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
    }
}

impl From<MultipartError> for ApiError {
    fn from(e: MultipartError) -> Self {
        if let Some(timeout) = BodyTimeout::find(&e) {
            ApiError::body_timeout(timeout)
        } else if let Some(refused) = BodyRefused::find(&e) {
            refused.0.clone().into()
        } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!("the request body is too large: {}", e.body_text()))
        } else {
            ApiError::new(
                ErrorCode::InvalidMultipart,
                format!("malformed multipart body: {}", e.body_text()),
            )
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::validation(e.to_string()).with("field", e.field)
    }
}

impl From<PhotoStoreError> for ApiError {
    fn from(e: PhotoStoreError) -> Self {
        match e {
            PhotoStoreError::NotFound(_) => ApiError::not_found("the stored photo is missing"),
            _ => ApiError::new(ErrorCode::Unavailable, "the photo store is unavailable")
                .retry_after(Duration::from_secs(2))
                .caused_by(e),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Validation(v) => v.into(),
            ReportError::Photo { index, error } => ApiError::from(error).with("photo_index", index),
            ReportError::Busy(l) => l.into(),
            ReportError::Store(s) => s.into(),
            ReportError::PhotoStore(s) => s.into(),
            ReportError::NotFound(what) => ApiError::not_found(format!("no such {what}")),
            ReportError::ThumbnailPending => {
                ApiError::new(ErrorCode::ThumbnailPending, e.to_string())
                    .retry_after(Duration::from_secs(1))
            }
            ReportError::Unauthorized => ApiError::new(ErrorCode::Unauthorized, e.to_string()),
            ReportError::Forbidden => ApiError::new(ErrorCode::Forbidden, e.to_string()),
            ReportError::Quota(q) => q.into(),
        }
    }
}

impl From<ReserveError> for ApiError {
    fn from(e: ReserveError) -> Self {
        match e {
            ReserveError::QuotaExceeded { usage, requested } => ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "the photos ({requested} bytes) do not fit in this key's storage quota \
                     ({} of {} bytes used); delete reports to make room",
                    usage.used_bytes, usage.max_bytes
                ),
            )
            .with("used_bytes", usage.used_bytes)
            .with("max_bytes", usage.max_bytes)
            .with("requested_bytes", requested),
            ReserveError::DailyLimit {
                used_bytes,
                max_bytes,
                requested,
                retry_after,
            } => ApiError::new(
                ErrorCode::DailyLimitExceeded,
                format!(
                    "the photos ({requested} bytes) do not fit in this address's uploads for today \
                     ({used_bytes} of {max_bytes} bytes used); the count starts again at midnight UTC"
                ),
            )
            .with("used_bytes", used_bytes)
            .with("max_bytes", max_bytes)
            .with("requested_bytes", requested)
            .retry_after(retry_after),
            ReserveError::StoreFull {
                used_bytes,
                max_bytes,
                requested,
            } => ApiError::new(
                ErrorCode::StorageFull,
                format!(
                    "the store is full: the photos ({requested} bytes) do not fit \
                     ({used_bytes} of {max_bytes} bytes used)"
                ),
            )
            .with("used_bytes", used_bytes)
            .with("max_bytes", max_bytes)
            .with("requested_bytes", requested),
            ReserveError::UnknownTenant => ApiError::invalid_api_key(),
            ReserveError::Store(s) => s.into(),
        }
    }
}

impl From<Limited> for ApiError {
    fn from(l: Limited) -> Self {
        let scope = match l.scope {
            LimitScope::Address => "address",
            LimitScope::Key => "API key",
        };
        let message = if l.table_full {
            "too many distinct clients right now; retry shortly".to_owned()
        } else {
            format!(
                "too many {} requests from this {scope} (limit {} per period); retry later",
                l.class.as_str(),
                l.limit
            )
        };
        let mut error = ApiError::new(ErrorCode::RateLimited, message)
            .with("class", l.class.as_str())
            .with("scope", json!(l.scope))
            .retry_after(l.retry_after);
        error.headers = Box::new(rate_limit_headers(
            u64::from(l.limit),
            0,
            seconds_up(l.retry_after).max(1),
        ));
        error
    }
}

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds), as in the IETF
/// draft: the one place that writes them, for answers within a quota and refusals beyond it.
pub fn rate_limit_headers(
    limit: u64,
    remaining: u64,
    reset_secs: u64,
) -> [(HeaderName, HeaderValue); 3] {
    [
        (
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(limit),
        ),
        (
            HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(remaining),
        ),
        (
            HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(reset_secs),
        ),
    ]
}

/// Every error answer: a stable `code`, a message for people, and the details its code carries.
/// Each detail is present only with the codes named in its description.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // describes the body `ApiError` writes; never built
pub struct ErrorBody {
    /// Stable and machine-readable.
    code: ErrorCode,
    /// What went wrong, for people (not stable: do not parse it).
    message: String,
    /// Seconds to wait before retrying (`rate_limited`, `overloaded`, `unavailable`; also in
    /// `Retry-After`).
    retry_after_seconds: Option<u64>,
    /// The offending field (`validation_failed`, an unknown multipart field).
    field: Option<String>,
    /// Why the service is saturated (`overloaded`): `queue_full`, `wait_timeout` or `connections`;
    /// which share the address holds (`concurrency_limited`).
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
    /// The tenant's storage use, quota, and what the upload asked for (`quota_exceeded`); the
    /// address's bytes today, the daily limit and what the upload asked for
    /// (`daily_limit_exceeded`); the store's use and cap (`storage_full`).
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

/// The answers many routes share, stated once under `components/responses`.
macro_rules! shared_response {
    ($name:ident, $description:literal, $retry_after:literal) => {
        #[doc = $description]
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, utoipa::openapi::RefOr<utoipa::openapi::Response>) {
                use utoipa::openapi::content::ContentBuilder;
                use utoipa::openapi::header::HeaderBuilder;
                use utoipa::openapi::{ObjectBuilder, Ref, ResponseBuilder, Type};
                let mut response = ResponseBuilder::new().description($description).content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                );
                if $retry_after {
                    response = response.header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::Integer))
                            .description(Some("Seconds to wait before retrying."))
                            .build(),
                    );
                }
                (stringify!($name), response.build().into())
            }
        }
    };
}

shared_response!(
    ApiKeyRefused,
    "The service has API keys and none was sent (`api_key_required`) or it is not valid (`invalid_api_key`).",
    false
);
shared_response!(
    RateLimited,
    "Over a rate limit (`rate_limited`, with `class` and `scope`; the `RateLimit-*` headers say the quota), or the address already holds its share of bodies in flight, upload slots or body memory (`concurrency_limited`, with `reason`).",
    true
);
shared_response!(
    BodyTooSlow,
    "The request body stalled, arrived below the least rate or took longer than its deadline (`body_timeout`).",
    false
);
shared_response!(
    RetryLater,
    "The service is saturated (`overloaded`, with `reason`) or the database or photo store is unavailable (`unavailable`).",
    true
);

/// Answers by status, as an operation's document lists them.
pub type Documented =
    std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::response::Response>>;

/// An answer of the document: `description`, with an `ErrorBody`.
pub fn error_answer(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::content::ContentBuilder;
    use utoipa::openapi::{Ref, ResponseBuilder};
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody")));
    let response = ResponseBuilder::new().description(description);
    response
        .content("application/json", body.build())
        .build()
        .into()
}

/// The answers of a route for a report's owner only (with the owner token): no token, the wrong
/// one, or no such report; stated in each such route's document.
pub struct OwnerOnly;

impl utoipa::IntoResponses for OwnerOnly {
    fn responses() -> Documented {
        let no_token = "No owner token (`unauthorized`), or API key missing or invalid";
        let wrong = "The owner token does not match (`forbidden`)";
        [
            ("401", no_token),
            ("403", wrong),
            ("404", "No such report (`not_found`)"),
        ]
        .map(|(status, description)| (status.to_owned(), error_answer(description)))
        .into()
    }
}
