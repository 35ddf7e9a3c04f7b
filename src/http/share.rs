//! Share links and posters: `GET /r/{id}` (preview metadata, then on to the app),
//! `GET /r/{id}/poster` (printable) and `GET /v1/reports/{id}/qr.svg`. Only what the public may
//! see, and only of open reports of the open service: a resolved, deleted or tenant's report is
//! the same neutral 404 as one that never was.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, Documented, error_answer};
use super::protect::Caller;
use super::reports::bad_id;
use super::share_html::{Summary, poster_page, qr_svg, share_page};
use crate::reports::{Audience, Report, ReportError, ReportStatus};

/// The page may load only its own files; the poster's QR code is inline SVG (no script).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// `GET /v1/reports/{id}/qr.svg`: a QR code of the report's share link (`/r/{id}` on this host).
#[utoipa::path(get, path = "/v1/reports/{id}/qr.svg", operation_id = "get_report_qr", tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    responses((status = 200, description = "An SVG QR code of the report's share link (`/r/{id}` on the host asked, or `X-Forwarded-Proto`'s scheme)", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such report (`not_found`)", body = crate::http::error::ErrorBody), (status = 422, description = "The id is not a UUID (`validation_failed`)", body = crate::http::error::ErrorBody),
        (status = 401, response = crate::http::error::ApiKeyRefused), (status = 429, response = crate::http::error::RateLimited), (status = 503, response = crate::http::error::RetryLater)))]
pub async fn qr(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(bad_id)?;
    // Only for a report the caller can see.
    app.reports.get(id, caller.tenant_id()).await?;
    let url = share_url(&headers, id);
    let svg = qr_svg(&url).ok_or_else(|| ApiError::validation("the link is too long"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        svg,
    )
        .into_response())
}

/// `GET /r/{id}`: the share page (OpenGraph/Twitter tags), which sends people on to the app.
#[utoipa::path(get, path = "/r/{id}", operation_id = "get_share_page", tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    responses((status = 200, description = "An HTML page with OpenGraph and Twitter card tags (title, a description without the contact or the exact position, `og:image` the first photo) whose script sends people on to `/#/reports/{id}`", content_type = "text/html", body = String),
        NotShared))]
pub async fn page(shared: Shareable, headers: HeaderMap) -> Response {
    let summary = Summary::of(&shared.report);
    html(share_page(shared.id, &summary, origin(&headers).as_deref()))
}

/// `GET /r/{id}/poster`: the printable poster.
#[utoipa::path(get, path = "/r/{id}/poster", operation_id = "get_poster", tag = "reports",
    params(("id" = Uuid, Path, description = "Report id")),
    responses((status = 200, description = "A printable HTML poster: kind, photo, title, likely breed, date, rough place (0.01°), the contact only if published, and a QR code of the share link", content_type = "text/html", body = String),
        NotShared))]
pub async fn poster(shared: Shareable, headers: HeaderMap) -> Response {
    let url = share_url(&headers, shared.id);
    let qr = qr_svg(&url).unwrap_or_default();
    html(poster_page(
        shared.id,
        &Summary::of(&shared.report),
        &url,
        &qr,
    ))
}

/// What a share route answers besides its page: the neutral 404 of a report it may not share
/// (`Shareable`), and the rate limit's and the service's refusals.
pub struct NotShared;

impl utoipa::IntoResponses for NotShared {
    fn responses() -> Documented {
        use utoipa::openapi::{Ref, RefOr};
        let not_found = "No open report of the open service by that id (`not_found`; an HTML \
                         page for browsers): resolved, deleted and tenants' reports answer the same";
        Documented::from([
            ("404".to_owned(), error_answer(not_found)),
            (
                "429".to_owned(),
                RefOr::Ref(Ref::from_response_name("RateLimited")),
            ),
            (
                "503".to_owned(),
                RefOr::Ref(Ref::from_response_name("RetryLater")),
            ),
        ])
    }
}

/// The report of a share route's `{id}` as the public sees it, when it may be shared: open, of
/// the open service (no tenant). Any other is refused as one that never was (`not_available`).
pub struct Shareable {
    id: Uuid,
    report: Report,
}

impl FromRequestParts<AppState> for Shareable {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let Ok(Path(id)) = Path::<Uuid>::from_request_parts(parts, app).await else {
            return Err(not_available(&parts.headers));
        };
        match app.reports.get(id, None).await {
            Ok(report) if report.status == ReportStatus::Open && report.tenant.is_none() => {
                let report = report.shown_to(Audience::Public);
                Ok(Shareable { id, report })
            }
            Ok(_) | Err(ReportError::NotFound(_)) => Err(not_available(&parts.headers)),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

/// The same answer for a report that is resolved, deleted, a tenant's or never was: a page for
/// browsers, the JSON error for anything else.
fn not_available(headers: &HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if !wants_html {
        return ApiError::not_found("no such report").into_response();
    }
    let mut response = html(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Report not available</title>\n<link rel=\"stylesheet\" href=\"/assets/app.css\">\n\
         </head>\n<body>\n<main>\n<h1>This report is not available</h1>\n\
         <p>It may have been resolved or removed. <a href=\"/\">Search or post a report</a>.</p>\n\
         </main>\n</body>\n</html>\n"
            .to_owned(),
    );
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Not kept by shared caches: a report that is resolved or deleted must stop showing.
            (header::CACHE_CONTROL, "private, no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        body,
    )
        .into_response()
}

/// `scheme://host` of the request (the Host header, checked to be a host name or address with
/// an optional port), for the absolute URLs of previews and QR codes.
fn origin(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let valid = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !valid {
        return None;
    }
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    Some(format!("{}://{host}", if https { "https" } else { "http" }))
}

/// The share link of report `id`: absolute when the host is known.
fn share_url(headers: &HeaderMap, id: Uuid) -> String {
    format!("{}/r/{id}", origin(headers).unwrap_or_default())
}

/// A file of the share page or the poster.
fn asset(body: &'static str, mime: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /assets/share.js`: sends people from the share page on to the report in the app.
pub async fn share_js() -> Response {
    asset(
        include_str!("web/share.js"),
        "text/javascript; charset=utf-8",
    )
}

/// `GET /assets/poster.js`: the poster's Print button.
pub async fn poster_js() -> Response {
    asset(
        include_str!("web/poster.js"),
        "text/javascript; charset=utf-8",
    )
}

/// `GET /assets/poster.css`: the poster on screen and on paper.
pub async fn poster_css() -> Response {
    asset(include_str!("web/poster.css"), "text/css; charset=utf-8")
}
