//! The routes: which handler answers what, with which body limit and rate-limit class, under
//! which middleware.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, patch, post};

use super::body::{self, with_body_limit};
use super::error::{ApiError, ErrorCode};
use super::state::AppState;
use super::{
    embeddings, health, messages, middleware, openapi, protect, reports, search, share, web,
};
use crate::rate_limit::RouteClass;

/// Body limit of routes that take no body (or a small JSON one).
const SMALL_BODY: usize = 32 * 1024;

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
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            middleware::observe,
        ))
        .layer(axum::middleware::from_fn(middleware::no_sniffing))
        .with_state(state)
}

/// Every route, `/metrics` where `metrics` says. Each `/v1/` route states its rate-limit
/// class where it is declared (`upload`, `search`, `read`); health, metrics and docs have none.
pub fn routes(state: AppState, metrics: MetricsRoute) -> Router {
    // Each body route is limited to what it can hold: its photos and the multipart framing.
    let photos = state.photo_limits;
    let embeddings_max = photos.max_bytes.saturating_mul(photos.max_count);
    let report_max = photos.max_bytes.saturating_mul(state.max_report_photos);
    let limit = |bytes: usize| bytes.saturating_add(body::MULTIPART_OVERHEAD);
    let class = |class: RouteClass, route: MethodRouter<AppState>| {
        route.layer(axum::middleware::from_fn_with_state(
            protect::Guard::new(state.protection.clone(), class),
            protect::protect,
        ))
    };
    use RouteClass::{Message, Read, Search, Upload};
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/status", class(Read, get(health::status)))
        .route(
            "/v1/embeddings",
            class(
                Search,
                with_body_limit(post(embeddings::create), limit(embeddings_max)),
            ),
        )
        .route(
            "/v1/reports",
            class(
                Upload,
                with_body_limit(post(reports::create), limit(report_max)),
            )
            .merge(class(Read, get(reports::list))),
        )
        .route(
            "/v1/reports/{id}",
            class(
                Read,
                with_body_limit(patch(reports::update), SMALL_BODY)
                    .get(reports::get)
                    .delete(reports::delete),
            ),
        )
        .route(
            "/v1/reports/{id}/matches",
            class(Search, get(search::matches)),
        )
        .route(
            "/v1/reports/{id}/messages",
            class(Message, with_body_limit(post(messages::send), SMALL_BODY))
                .merge(class(Read, get(messages::list))),
        )
        .route(
            "/v1/search",
            class(
                Search,
                with_body_limit(post(search::search), limit(photos.max_bytes)),
            )
            .merge(class(Search, get(search::by_text))),
        )
        .route("/v1/photos/{id}", class(Read, get(reports::photo)))
        .route(
            "/v1/photos/{id}/thumbnail",
            class(Read, get(reports::thumbnail)),
        )
        .route("/v1/jobs/{id}", class(Read, get(reports::job)))
        .route("/v1/usage", class(Read, get(reports::usage)))
        .route("/v1/reports/{id}/qr.svg", class(Read, get(share::qr)))
        .route("/r/{id}", class(Read, get(share::page)))
        .route("/r/{id}/poster", class(Read, get(share::poster)))
        .route("/assets/share.js", get(share::share_js))
        .route("/assets/poster.js", get(share::poster_js))
        .route("/assets/poster.css", get(share::poster_css))
        .route("/assets/cities.json", get(web::cities_json))
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
        .route("/assets/js/{file}", get(web::module));
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

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}
