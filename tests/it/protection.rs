//! Rate limits, API keys, tenants and their storage quota (real model, real database).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::*;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use clap::Parser;
use lookalike::config::{Cli, Command};
use lookalike::http::router;
use lookalike::service::protection;
use serde_json::Value;

const ACME: &str = "acme-key-0123456789";
const BETA: &str = "beta-key-0123456789";

/// The router of `app` protected as `lookalike serve ARGS…` would be.
async fn protected(app: &TestApp, args: &[&str]) -> axum::Router {
    let mut argv = vec!["lookalike", "serve"];
    argv.extend_from_slice(args);
    let Command::Serve(config) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("not serve")
    };
    let mut state = app.state.clone();
    state.protection = Arc::new(
        protection(&config.access, &config.rate_limits, &state.store)
            .await
            .unwrap(),
    );
    router(state)
}

/// `request` as if it came from `address`, with `key` as its API key.
fn from(
    address: &str,
    key: Option<&str>,
    mut request: Request<axum::body::Body>,
) -> Request<axum::body::Body> {
    let peer = SocketAddr::new(address.parse().unwrap(), 40_000);
    request.extensions_mut().insert(ConnectInfo(peer));
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("x-api-key", key.parse().unwrap());
    }
    request
}

/// `request` from 192.0.2.1 with `key` as its API key.
fn keyed(key: &str, request: Request<axum::body::Body>) -> Request<axum::body::Body> {
    from("192.0.2.1", Some(key), request)
}

fn upload(photo: &[u8]) -> Request<axum::body::Body> {
    let photos = [photo.to_vec()];
    post_multipart("/v1/reports", &report_form("found", "dog", &photos))
}

fn header(headers: &axum::http::HeaderMap, name: &str) -> u64 {
    headers[name].to_str().unwrap().parse().unwrap()
}

async fn metric(app: &axum::Router, series: &str) -> f64 {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app.clone().oneshot(get("/metrics")).await.unwrap();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(text.to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

#[tokio::test]
async fn the_eleventh_upload_in_a_minute_from_one_address_gets_429() {
    let app = app(default_gate_settings(), uploads()).await;
    // The shipped defaults: 10 uploads a minute per address.
    let router = protected(&app, &[]).await;
    let photo = distinct_photos(1, 64).remove(0);
    for n in 1..=10u64 {
        let (status, headers, body) = send(&router, from("192.0.2.10", None, upload(&photo))).await;
        assert_eq!(status, StatusCode::CREATED, "upload {n}: {body}");
        assert_eq!(header(&headers, "ratelimit-limit"), 10);
        assert_eq!(header(&headers, "ratelimit-remaining"), 10 - n);
    }
    let (status, headers, body) = send(&router, from("192.0.2.10", None, upload(&photo))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["class"], "upload");
    assert_eq!(body["scope"], "address");
    // One upload comes back every 6 s.
    let retry = header(&headers, "retry-after");
    assert!((1..=6).contains(&retry), "Retry-After {retry}");
    assert_eq!(header(&headers, "ratelimit-remaining"), 0);
    // Only report uploads were refused: reads and other addresses go on.
    let (status, _, _) = send(&router, from("192.0.2.10", None, get("/v1/reports"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(&router, from("192.0.2.11", None, upload(&photo))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Health and metrics are never limited.
    let (status, _, _) = send(&router, from("192.0.2.10", None, get("/healthz"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        metric(&router, "lookalike_rate_limited_total{class=\"upload\"}").await,
        1.0
    );
    let stored = scalar(&app.state.store, "SELECT count(*) FROM reports").await;
    assert_eq!(stored, 11, "the refused upload stored nothing");
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let app = app(default_gate_settings(), uploads()).await;
    let router = protected(
        &app,
        &[
            "--rate-reads-per-address",
            "2/min",
            "--trusted-proxies",
            "10.0.0.0/8",
        ],
    )
    .await;
    let via = |peer: &str, client: &str| {
        let mut r = from(peer, None, get("/v1/reports"));
        r.headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
        r
    };
    // Behind the trusted proxy, each forwarded client has its own quota.
    for client in [
        "198.51.100.1",
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.2",
    ] {
        let (status, _, _) = send(&router, via("10.0.0.1", client)).await;
        assert_eq!(status, StatusCode::OK, "{client}");
    }
    let (status, _, _) = send(&router, via("10.0.0.1", "198.51.100.1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // From an untrusted peer the header is ignored: rotating it does not help.
    for (n, client) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let (status, _, _) = send(&router, via("192.0.2.50", client)).await;
        let expected = if n < 2 {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, expected, "request {n}");
    }
}

#[tokio::test]
async fn keys_are_required_and_two_keys_have_independent_limits() {
    let app = app(default_gate_settings(), uploads()).await;
    let keys = format!("acme:{ACME},beta:{BETA}");
    let router = protected(
        &app,
        &[
            "--api-keys",
            &keys,
            "--rate-uploads-per-key",
            "3/h",
            "--rate-uploads-per-address",
            "off",
        ],
    )
    .await;
    // Different photos: a photo both tenants uploaded would share its embedding job.
    let [photo, beta_photo]: [Vec<u8>; 2] = distinct_photos(2, 64).try_into().unwrap();

    let (status, _, body) = send(&router, from("192.0.2.1", None, get("/v1/reports"))).await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "api_key_required");
    let (status, _, body) = send(
        &router,
        from(
            "192.0.2.1",
            Some("not-a-key-0123456789"),
            get("/v1/reports"),
        ),
    )
    .await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "invalid_api_key");

    let mut acme_reports = Vec::new();
    for n in 0..3 {
        let (status, headers, body) = send(&router, keyed(ACME, upload(&photo))).await;
        assert_eq!(status, StatusCode::CREATED, "upload {n}: {body}");
        assert_eq!(body["tenant"], "acme");
        assert_eq!(header(&headers, "ratelimit-limit"), 3);
        acme_reports.push(body);
    }
    let (status, _, body) = send(&router, keyed(ACME, upload(&photo))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["scope"], "key");
    // The same address with the other key still has its whole quota.
    let (status, _, beta_report) = send(&router, keyed(BETA, upload(&beta_photo))).await;
    assert_eq!(status, StatusCode::CREATED, "{beta_report}");

    // Each tenant sees only its own reports and photos.
    let (status, _, page) = send(&router, keyed(BETA, get("/v1/reports"))).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&Value> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, [&beta_report["id"]]);
    let acme_id = acme_reports[0]["id"].as_str().unwrap();
    let acme_photo = acme_reports[0]["photos"][0]["id"].as_str().unwrap();
    for uri in [
        format!("/v1/reports/{acme_id}"),
        format!("/v1/reports/{acme_id}/matches"),
    ] {
        let (status, _, body) = send(&router, keyed(BETA, get(&uri))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
    }
    let (status, _, _) = send(&router, keyed(ACME, get(&format!("/v1/reports/{acme_id}")))).await;
    assert_eq!(status, StatusCode::OK);
    use tower::ServiceExt;
    let photo_uri = format!("/v1/photos/{acme_photo}");
    let status_of = |key: &'static str| {
        let router = router.clone();
        let uri = photo_uri.clone();
        async move {
            router
                .oneshot(keyed(key, get(&uri)))
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status_of(BETA).await, StatusCode::NOT_FOUND);
    assert_eq!(status_of(ACME).await, StatusCode::OK);
    let thumbnail = format!("/v1/photos/{acme_photo}/thumbnail");
    let (status, _, body) = send(&router, keyed(BETA, get(&thumbnail))).await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "not_found");
    // The owner learns it is coming (no job has run here to make it).
    let (status, _, body) = send(&router, keyed(ACME, get(&thumbnail))).await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "thumbnail_pending");
    let response = router
        .clone()
        .oneshot(keyed(ACME, get(&photo_uri)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A tenant's photos may be cached by its own client only, never by a shared cache.
    assert!(header_text(response.headers(), "cache-control").starts_with("private"));
    // Its jobs too.
    let job = acme_reports[0]["photos"][0]["job_id"].as_i64().unwrap();
    let (status, _, _) = send(&router, keyed(BETA, get(&format!("/v1/jobs/{job}")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = send(&router, keyed(ACME, get(&format!("/v1/jobs/{job}")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another tenant cannot change or delete a report, even with its owner token.
    let token = acme_reports[0]["owner_token"].as_str().unwrap();
    for method in ["PATCH", "DELETE"] {
        let mut request = keyed(
            BETA,
            Request::builder()
                .method(method)
                .uri(format!("/v1/reports/{acme_id}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(r#"{"status": "resolved"}"#))
                .unwrap(),
        );
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let status = router.clone().oneshot(request).await.unwrap().status();
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
    }
    let (status, _, body) =
        send(&router, keyed(ACME, get(&format!("/v1/reports/{acme_id}")))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("open"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_matches_stay_within_a_tenant() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let _workers = app.start_workers(job_settings(2));
    let keys = format!("acme:{ACME},beta:{BETA}");
    let router = protected(&app, &["--api-keys", &keys]).await;
    let cat = sample("chelsea.png");
    let photos = [cat.clone()];
    // The same cat, lost for acme and found for beta: a perfect match, but across tenants.
    let mut ids = Vec::new();
    for (key, kind) in [(ACME, "lost"), (BETA, "found")] {
        let (status, _, body) = send(
            &router,
            keyed(
                key,
                post_multipart("/v1/reports", &report_form(kind, "cat", &photos)),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let pool = app.state.store.pool().clone();
    eventually("both reports are embedded and matched", 60, || {
        let pool = pool.clone();
        async move {
            let pending: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            let embedded: i64 = sqlx::query_scalar("SELECT count(*) FROM embeddings")
                .fetch_one(&pool)
                .await
                .unwrap();
            pending == 0 && embedded == 1
        }
    })
    .await;
    for (key, own) in [(ACME, &ids[0]), (BETA, &ids[1])] {
        let (status, _, body) = send(
            &router,
            keyed(
                key,
                post_multipart(
                    "/v1/search",
                    &[
                        ("photo", "cat.png", "image/png", &cat),
                        ("status", "", "text/plain", b"any"),
                    ],
                ),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let found: Vec<&str> = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["report"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            found,
            [own.as_str()],
            "a search sees only its tenant's reports"
        );
        let (status, _, body) = send(
            &router,
            keyed(key, get(&format!("/v1/reports/{own}/matches"))),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["matches"],
            serde_json::json!([]),
            "no match across tenants"
        );
        let (_, _, body) = send(&router, keyed(key, get(&format!("/v1/reports/{own}")))).await;
        assert_eq!(body["possible_matches"], serde_json::json!([]), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_never_exceed_the_storage_quota() {
    let app = app(default_gate_settings(), uploads()).await;
    let photo = distinct_photos(1, 96).remove(0);
    let size = photo.len() as u64;
    // Room for 20 uploads of this photo, not 21.
    let quota = (20 * size + size / 2).to_string();
    let keys = format!("acme:{ACME}");
    let router = protected(
        &app,
        &[
            "--api-keys",
            &keys,
            "--tenant-max-storage-bytes",
            &quota,
            "--rate-uploads-per-address",
            "off",
            "--rate-uploads-per-key",
            "off",
        ],
    )
    .await;

    let uploads: Vec<_> = (0..30)
        .map(|_| {
            let router = router.clone();
            let photo = photo.clone();
            tokio::spawn(async move { send(&router, keyed(ACME, upload(&photo))).await })
        })
        .collect();
    let mut created = Vec::new();
    let mut refused = 0;
    for upload in uploads {
        let (status, _, body) = upload.await.unwrap();
        match status {
            StatusCode::CREATED => created.push(body),
            StatusCode::CONFLICT => {
                assert_eq!(body["code"], "quota_exceeded", "{body}");
                assert_eq!(body["max_bytes"].as_u64(), Some(20 * size + size / 2));
                assert_eq!(body["requested_bytes"].as_u64(), Some(size));
                assert!(body["used_bytes"].as_u64().unwrap() + size > 20 * size + size / 2);
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created.len(), refused), (20, 10));

    let pool = app.state.store.pool();
    let stored: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(b.bytes), 0)::bigint FROM photos p JOIN blobs b ON b.sha256 = p.sha256
         JOIN reports r ON r.id = p.report_id WHERE r.tenant_id = 'acme'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let (status, _, usage) = send(&router, keyed(ACME, get("/v1/usage"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["used_bytes"].as_i64(), Some(stored));
    assert_eq!(stored as u64, 20 * size);
    assert_eq!(
        metric(&router, "lookalike_quota_rejected_total").await,
        10.0
    );
    // The refused uploads, and those that lost the race to record the same bytes, deleted what
    // they had written: one photo remains (its thumbnail comes with its embedding job).
    assert_eq!(stored_objects(&app.storage_dir).len(), 1);

    // Deleting a report gives its bytes back, and the next upload fits again.
    let id = created[0]["id"].as_str().unwrap();
    let token = created[0]["owner_token"].as_str().unwrap();
    let mut delete = keyed(
        ACME,
        Request::delete(format!("/v1/reports/{id}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    );
    delete
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    use tower::ServiceExt;
    let status = router.clone().oneshot(delete).await.unwrap().status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, usage) = send(&router, keyed(ACME, get("/v1/usage"))).await;
    assert_eq!(usage["used_bytes"].as_u64(), Some(19 * size));
    let (status, _, body) = send(&router, keyed(ACME, upload(&photo))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = send(&router, keyed(ACME, upload(&photo))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}
