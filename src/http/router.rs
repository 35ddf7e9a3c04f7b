//! The routes: which handler answers what, with which body limit and rate-limit class, under
//! which middleware.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};

use super::body::{self, with_body_limit};
use super::error::{ApiError, ErrorCode};
use super::state::AppState;
use super::{
    embeddings, events, health, messages, middleware, openapi, protect, reports, search, share, web,
};
use crate::rate_limit::RouteClass;

/// Body limit of routes that take no body (or a small JSON one). The largest valid JSON body fits:
/// a 5,000-character description whose every character is an escaped surrogate pair (12 bytes)
/// is 60 KB, and a body the document calls valid must not be refused for its size.
const SMALL_BODY: usize = 128 * 1024;

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsRoute {
    /// Beside the API, on the public listener.
    WithTheApi,
    /// On a listener of its own (`metrics_router`), not beside the API.
    Elsewhere,
}

/// The service's routes, `/metrics` included.
pub fn router(state: AppState) -> Router {
    routes(state, MetricsRoute::WithTheApi)
}

/// `/metrics` and the detailed `/v1/status`, for an operators' listener of its own
/// (`--metrics-listen`): whoever reaches it is an operator.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::operators_metrics))
        .route("/v1/status", get(health::operators_status))
        .route("/v1/webhooks/deliveries", get(events::operators_deliveries))
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            middleware::observe,
        ))
        .layer(axum::middleware::from_fn(middleware::no_sniffing))
        .with_state(state)
}

/// Every route, `/metrics` where `metrics` says. The `/v1/` routes stand in one sub-router per
/// rate-limit class (`upload`, `search`, `read`, `message`), each behind its class's guard as a
/// layer, so a route cannot be added without its protection; health, metrics and docs have none.
pub fn routes(state: AppState, metrics: MetricsRoute) -> Router {
    // Each body route is limited to what it can hold: its photos and the multipart framing.
    let photos = state.photo_limits;
    let embeddings_max = photos.max_bytes.saturating_mul(photos.max_count);
    let report_max = photos.max_bytes.saturating_mul(state.max_report_photos);
    let limit = |bytes: usize| bytes.saturating_add(body::MULTIPART_OVERHEAD);
    let uploads = Router::new().route(
        "/v1/reports",
        with_body_limit(post(reports::create), limit(report_max)),
    );
    let searches = Router::new()
        .route(
            "/v1/embeddings",
            with_body_limit(post(embeddings::create), limit(embeddings_max)),
        )
        .route("/v1/reports/{id}/matches", get(search::matches))
        .route(
            "/v1/search",
            with_body_limit(post(search::search), limit(photos.max_bytes)),
        )
        .route("/v1/search", get(search::by_text));
    let reads = Router::new()
        .route("/v1/status", get(health::status))
        .route("/v1/reports", get(reports::list))
        .route(
            "/v1/reports/{id}",
            with_body_limit(patch(reports::update), SMALL_BODY)
                .get(reports::get)
                .delete(reports::delete),
        )
        .route("/v1/reports/{id}/messages", get(messages::list))
        .route("/v1/photos/{id}", get(reports::photo))
        .route("/v1/photos/{id}/thumbnail", get(reports::thumbnail))
        .route("/v1/jobs/{id}", get(reports::job))
        .route("/v1/usage", get(reports::usage))
        .route("/v1/reports/{id}/events", get(events::stream))
        .route("/v1/webhooks/deliveries", get(events::deliveries))
        .route("/v1/reports/{id}/qr.svg", get(share::qr))
        // Share pages read reports like the API: the same key check and rate limit.
        .route("/r/{id}", get(share::page))
        .route("/r/{id}/poster", get(share::poster));
    let messages = Router::new().route(
        "/v1/reports/{id}/messages",
        with_body_limit(post(messages::send), SMALL_BODY),
    );
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(guarded(&state, RouteClass::Upload, uploads))
        .merge(guarded(&state, RouteClass::Search, searches))
        .merge(guarded(&state, RouteClass::Read, reads))
        .merge(guarded(&state, RouteClass::Message, messages))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route("/openapi.json", get(openapi::document))
        .route("/docs/reference", get(openapi::docs))
        .route("/docs", get(web::docs))
        .route("/docs/docs.js", get(web::docs_js))
        .route("/docs/swagger-ui-bundle.js", get(web::swagger_js))
        .route("/docs/swagger-ui.css", get(web::swagger_css))
        .route("/", get(web::index))
        .route("/assets/app.js", get(web::app_js))
        .route("/assets/app.css", get(web::app_css))
        .route("/assets/js/{file}", get(web::module))
        .route("/assets/share.js", get(share::share_js))
        .route("/assets/poster.js", get(share::poster_js))
        .route("/assets/poster.css", get(share::poster_css))
        .route("/assets/cities.json", get(web::cities_json));
    let routes = if metrics == MetricsRoute::WithTheApi {
        routes.route("/metrics", get(health::metrics))
    } else {
        routes
    };
    routes
        .layer(DefaultBodyLimit::max(SMALL_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            middleware::observe,
        ))
        .layer(axum::middleware::from_fn(middleware::no_sniffing))
        .with_state(state)
}

/// `routes` of one rate-limit class behind that class's guard (API key, rate limit, `RateLimit-*`
/// headers); a route layer, so an unknown route or method is answered without it, as before.
fn guarded(state: &AppState, class: RouteClass, routes: Router<AppState>) -> Router<AppState> {
    routes.route_layer(axum::middleware::from_fn_with_state(
        protect::Guard::new(state.protection.clone(), class),
        protect::protect,
    ))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}
