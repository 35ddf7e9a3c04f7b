//! The OpenAPI document describes the routes the service has, and the docs page shows them.

use crate::common::*;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn every_documented_operation_is_routed_and_answers_as_documented() {
    let app = app(default_gate_settings(), uploads()).await;
    let (status, _, doc) = send(&app.router, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/v1/reports",
        "/v1/reports/{id}",
        "/v1/reports/{id}/matches",
        "/v1/search",
        "/v1/embeddings",
        "/v1/photos/{id}",
        "/v1/photos/{id}/thumbnail",
        "/v1/jobs/{id}",
        "/v1/status",
        "/v1/usage",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let uri = path
                .replace("/jobs/{id}", "/jobs/1")
                .replace("{id}", "00000000-0000-0000-0000-000000000000");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // An empty request: what matters is that a handler answers, with a documented status.
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = tower::ServiceExt::oneshot(app.router.clone(), request)
                .await
                .unwrap();
            let status = response.status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            let documented: Vec<&String> =
                operation["responses"].as_object().unwrap().keys().collect();
            assert!(
                documented.contains(&&status.as_u16().to_string()),
                "{method} {uri} answered {status}, documented: {documented:?}"
            );
            if status == StatusCode::NOT_FOUND {
                use http_body_util::BodyExt;
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_ne!(body["message"], "no such route", "{method} {uri}");
            }
            operations += 1;
        }
    }
    assert!(operations >= 17, "{operations} operations");
    // Every reference resolves to a component of the document (a schema or a shared response).
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let path = reference.split('"').next().unwrap();
        let (kind, name) = path
            .trim_start_matches("#/components/")
            .split_once('/')
            .unwrap_or_else(|| panic!("not a component: {path}"));
        assert!(
            doc["components"][kind].get(name).is_some(),
            "dangling $ref {path}"
        );
    }
}

/// Swagger UI's "Try it out" fills a form with each field's example: a search sent as it is
/// filled must find something, so only `k` has one (an empty example leaves the field out; a
/// null one would be sent as "null").
#[tokio::test]
async fn try_it_out_searches_with_only_k_filled_in() {
    let app = app(default_gate_settings(), uploads()).await;
    let (_, _, doc) = send(&app.router, get("/openapi.json")).await;
    let form = &doc["components"]["schemas"]["SearchForm"]["properties"];
    assert_eq!(form["k"]["example"], 10);
    for field in [
        "kind",
        "species",
        "breed",
        "since",
        "latitude",
        "longitude",
        "radius_km",
        "min_score",
    ] {
        assert_eq!(form[field]["example"], "", "{field}");
    }
}

#[tokio::test]
async fn the_plain_reference_lists_every_operation() {
    use http_body_util::BodyExt;
    let app = app(default_gate_settings(), uploads()).await;
    let response = tower::ServiceExt::oneshot(app.router.clone(), get("/docs/reference"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_text(response.headers(), "content-type").starts_with("text/html"));
    let html = response.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8(html.to_vec()).unwrap();
    assert!(!html.contains("<script"), "self-contained, no scripts");
    for path in ["/v1/reports/{id}/matches", "/v1/search", "/v1/usage"] {
        assert!(html.contains(&format!("<code>{path}</code>")), "{path}");
    }
    assert!(html.contains("quota_exceeded"));
}

#[tokio::test]
async fn the_app_and_the_interactive_reference_are_served_from_the_binary() {
    let app = app(default_gate_settings(), uploads()).await;
    for (path, mime, needle) in [
        ("/", "text/html", "/assets/app.js"),
        ("/assets/app.js", "text/javascript", "./js/router.js"),
        ("/assets/js/search.js", "text/javascript", "/v1/search"),
        ("/assets/app.css", "text/css", "prefers-reduced-motion"),
        ("/docs", "text/html", "/docs/swagger-ui-bundle.js"),
        ("/docs/docs.js", "text/javascript", "/openapi.json"),
        (
            "/docs/swagger-ui-bundle.js",
            "text/javascript",
            "SwaggerUIBundle",
        ),
        ("/docs/swagger-ui.css", "text/css", ".swagger-ui"),
    ] {
        let (status, headers, body) = send_raw(&app.router, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let content_type = headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(mime), "{path}: {content_type}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'"),
            "{path}"
        );
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
        // Nothing is fetched from elsewhere.
        if mime == "text/html" {
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{path}"
            );
        }
    }
    // Only the page's own modules are served.
    let (status, _, _) = send_raw(&app.router, get("/assets/js/secrets.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
