//! Posters and share links: `/r/{id}` with preview metadata (nothing private, everything
//! escaped), `/r/{id}/poster`, `GET /v1/reports/{id}/qr.svg`; resolved, deleted and unknown
//! reports all answer the same neutral 404.

use crate::common::*;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

const HOST: &str = "pets.example.org:8443";
const HOSTILE: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>'";

/// A GET with a Host header and an Accept header; status, content type and body as text.
async fn fetch(app: &axum::Router, uri: &str, accept: &str) -> (StatusCode, String, String) {
    use http_body_util::BodyExt;
    let request = Request::get(uri)
        .header("host", HOST)
        .header("accept", accept)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap();
    let status = response.status();
    let mime = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, mime, String::from_utf8(body.to_vec()).unwrap())
}

/// Creates a lost dog report with `title` and `contact`; the creation answer.
async fn create(
    app: &axum::Router,
    photo: &[u8],
    title: &str,
    contact: &str,
    public: bool,
) -> Value {
    let public = if public { "true" } else { "false" };
    let parts: Vec<(&str, &str, &str, &[u8])> = vec![
        ("kind", "", "text/plain", b"lost"),
        ("species", "", "text/plain", b"dog"),
        ("title", "", "text/plain", title.as_bytes()),
        (
            "description",
            "",
            "text/plain",
            b"Answers to Biscuit; lives at 12 rue Secrete",
        ),
        ("latitude", "", "text/plain", b"48.8566123"),
        ("longitude", "", "text/plain", b"2.3522219"),
        ("contact", "", "text/plain", contact.as_bytes()),
        ("contact_public", "", "text/plain", public.as_bytes()),
        ("photos", "photo.png", "image/png", photo),
    ];
    let (status, _, body) = send(app, post_multipart("/v1/reports", &parts)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// `content` of the meta tag `name` (property or name), as written in the page.
fn meta<'a>(page: &'a str, name: &str) -> Option<&'a str> {
    for attr in ["property", "name"] {
        let tag = format!("<meta {attr}=\"{name}\" content=\"");
        if let Some(at) = page.find(&tag) {
            let rest = &page[at + tag.len()..];
            return rest.split('"').next();
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_page_previews_the_report_without_private_data_and_escapes_it() {
    let app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(2, 128);
    let created = create(&app.router, &photos[0], HOSTILE, "owner@example.org", false).await;
    let id = created["id"].as_str().unwrap();
    let photo = created["photos"][0]["id"].as_str().unwrap();

    let (status, mime, page) = fetch(&app.router, &format!("/r/{id}"), "text/html").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(mime.starts_with("text/html"), "{mime}");
    let title = meta(&page, "og:title").unwrap();
    assert_eq!(
        title,
        "Lost dog: &lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;&#39;"
    );
    assert_eq!(meta(&page, "twitter:title"), Some(title));
    assert_eq!(
        meta(&page, "og:image"),
        Some(format!("http://{HOST}/v1/photos/{photo}").as_str())
    );
    assert_eq!(
        meta(&page, "og:url"),
        Some(format!("http://{HOST}/r/{id}").as_str())
    );
    assert_eq!(meta(&page, "twitter:card"), Some("summary_large_image"));
    let description = meta(&page, "og:description").unwrap();
    assert!(description.starts_with("Lost dog, "), "{description}");
    assert!(
        description.contains("around 48.86° N, 2.35° E"),
        "{description}"
    );
    // Nothing the owner did not publish, nothing finer than the public position, no markup.
    for private in [
        "owner@example.org",
        "48.8566",
        "2.3522",
        "rue Secrete",
        "<script>",
        "<img src=x",
    ] {
        assert!(!page.contains(private), "{private} leaked: {page}");
    }
    // People go on to the report in the app (the page's script follows this link).
    assert!(
        page.contains(&format!("<a id=\"open-report\" href=\"/#/reports/{id}\">")),
        "{page}"
    );
    assert!(page.contains("<script src=\"/assets/share.js\" defer></script>"));
    let (status, mime, script) = fetch(&app.router, "/assets/share.js", "*/*").await;
    assert_eq!(status, StatusCode::OK);
    assert!(mime.starts_with("text/javascript") && script.contains("open-report"));

    // A forged Host cannot inject markup either: the page then has no absolute URLs.
    use http_body_util::BodyExt;
    let request = Request::get(format!("/r/{id}"))
        .header("host", "evil\"><script>x</script>")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let forged = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        !forged.contains("evil") && meta(&forged, "og:image").is_none(),
        "{forged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poster_has_the_facts_a_qr_code_of_the_share_link_and_the_contact_only_if_published() {
    let app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(2, 128);
    let private = create(
        &app.router,
        &photos[0],
        "Brown beagle",
        "owner@example.org",
        false,
    )
    .await;
    let public = create(
        &app.router,
        &photos[1],
        "Grey cat",
        "<b>06 12 34 56 78</b>",
        true,
    )
    .await;
    let (private_id, public_id) = (
        private["id"].as_str().unwrap(),
        public["id"].as_str().unwrap(),
    );

    let (status, mime, poster) =
        fetch(&app.router, &format!("/r/{private_id}/poster"), "text/html").await;
    assert_eq!(status, StatusCode::OK, "{poster}");
    assert!(mime.starts_with("text/html"));
    assert!(
        poster.contains("<h1 class=\"poster-kind\">Lost dog</h1>"),
        "{poster}"
    );
    assert!(poster.contains("Brown beagle"));
    assert!(poster.contains("around 48.86° N, 2.35° E"));
    let photo = private["photos"][0]["id"].as_str().unwrap();
    assert!(poster.contains(&format!("src=\"/v1/photos/{photo}\"")));
    assert!(
        !poster.contains("owner@example.org") && !poster.contains("48.8566"),
        "{poster}"
    );
    assert!(poster.contains("Scan the code to write to the owner."));
    // The QR code inline is the one of the share link.
    let link = format!("http://{HOST}/r/{private_id}");
    assert!(
        poster.contains(&format!("<figcaption>{link}</figcaption>")),
        "{poster}"
    );
    let expected = qrcode::QrCode::new(link.as_bytes())
        .unwrap()
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    let svg = &expected[expected.find("<svg").unwrap()..];
    assert!(
        poster.contains(svg),
        "the poster's QR code is not of {link}"
    );

    // The published contact is printed, escaped.
    let (_, _, poster) = fetch(&app.router, &format!("/r/{public_id}/poster"), "text/html").await;
    assert!(
        poster.contains("Contact: <strong>&lt;b&gt;06 12 34 56 78&lt;/b&gt;</strong>"),
        "{poster}"
    );
    assert!(!poster.contains("<b>06"));

    // The QR code on its own, for the report's page in the app.
    let (status, mime, qr) = fetch(
        &app.router,
        &format!("/v1/reports/{private_id}/qr.svg"),
        "*/*",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{qr}");
    assert_eq!(mime, "image/svg+xml");
    assert_eq!(qr, expected);
    let (status, _, body) = fetch(
        &app.router,
        "/v1/reports/00000000-0000-0000-0000-000000000000/qr.svg",
        "*/*",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "not_found"
    );
    let (status, _, body) = fetch(&app.router, "/v1/reports/nope/qr.svg", "*/*").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, mime, css) = fetch(&app.router, "/assets/poster.css", "*/*").await;
    assert_eq!(status, StatusCode::OK);
    assert!(mime.starts_with("text/css") && css.contains("@media print"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_deleted_and_unknown_reports_are_the_same_neutral_404() {
    let app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(2, 128);
    let resolved = create(
        &app.router,
        &photos[0],
        "Secret title one",
        "a@example.org",
        true,
    )
    .await;
    let deleted = create(
        &app.router,
        &photos[1],
        "Secret title two",
        "b@example.org",
        true,
    )
    .await;
    let (resolved_id, deleted_id) = (
        resolved["id"].as_str().unwrap(),
        deleted["id"].as_str().unwrap(),
    );

    let resolve = as_owner("PATCH", &resolved, Some(json!({"status": "resolved"})));
    let (status, _, body) = send(&app.router, resolve).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let delete = as_owner("DELETE", &deleted, None);
    let response = tower::ServiceExt::oneshot(app.router.clone(), delete)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let unknown = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    let mut pages = Vec::new();
    for id in [resolved_id, deleted_id, unknown, "not-a-uuid"] {
        for path in [format!("/r/{id}"), format!("/r/{id}/poster")] {
            let (status, mime, page) = fetch(&app.router, &path, "text/html,*/*").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {page}");
            assert!(mime.starts_with("text/html"), "{path}");
            assert!(
                !page.contains("Secret title") && !page.contains("@example.org"),
                "{page}"
            );
            pages.push(page);
            let (status, _, body) = fetch(&app.router, &path, "application/json").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["code"], "not_found", "{path}");
            assert_eq!(body["message"], "no such report", "{path}");
        }
    }
    assert!(pages.windows(2).all(|w| w[0] == w[1]), "the 404s differ");
}

#[tokio::test]
async fn a_tenants_report_is_never_shared_even_with_its_key() {
    use crate::common::api::{TENANT_KEY, create, created, get_as, start_tenant};
    let service = start_tenant("poster-tenant").await;
    let key = [("X-API-Key", TENANT_KEY)];
    let photo = distinct_photos(1, 96).remove(0);
    let contact = [("contact", "secret@acme.example")];
    let report = created(create(&service, &key, &photo, &contact).await);
    let id = report["id"].as_str().unwrap();
    for path in [format!("/r/{id}"), format!("/r/{id}/poster")] {
        // Without a key the service answers nothing about it; with the tenant's key, the share
        // pages are still only for the open service's reports.
        let anonymous = get_as(&service, &path, &[]).await;
        assert_eq!(anonymous.status, 401, "{path}");
        assert_eq!(anonymous.json()["code"], "api_key_required", "{path}");
        let keyed = get_as(&service, &path, &key).await;
        assert_eq!(keyed.status, 404, "{path}");
        assert_eq!(keyed.json()["code"], "not_found", "{path}");
        assert!(!String::from_utf8_lossy(&keyed.body).contains("Brown dog"));
    }
    // Its QR code is the tenant's to ask for.
    let qr = get_as(&service, &format!("/v1/reports/{id}/qr.svg"), &key).await;
    assert_eq!(qr.status, 200);
    assert_eq!(qr.header("content-type"), Some("image/svg+xml"));
}
