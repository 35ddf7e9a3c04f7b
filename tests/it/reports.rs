//! Reports with photos and their durable background embedding (real model, real database).

use std::time::Duration;

use crate::common::*;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

fn request(
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<axum::body::Body> {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(b) => r
            .header("content-type", "application/json")
            .body(axum::body::Body::from(b.to_string()))
            .unwrap(),
        None => r.body(axum::body::Body::empty()).unwrap(),
    }
}

async fn create(app: &axum::Router, kind: &str, photos: &[Vec<u8>]) -> Value {
    let (status, _, body) = send(
        app,
        post_multipart("/v1/reports", &report_form(kind, "dog", photos)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn report(app: &axum::Router, id: &str) -> Value {
    let (status, _, body) = send(app, get(&format!("/v1/reports/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_created_at_once_and_its_embeddings_follow() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(2, 320);
    let created = create(&app.router, "lost", &photos).await;
    assert_eq!(created["embedding_status"], "pending");
    assert_eq!(created["kind"], "lost");
    assert_eq!(created["photos"].as_array().unwrap().len(), 2);
    assert_eq!(created["owner_token"].as_str().unwrap().len(), 64);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        report(&app.router, &id).await["embedding_status"],
        "pending"
    );

    let workers = app.start_workers(job_settings(2));
    eventually("the embeddings are ready", 30, || async {
        report(&app.router, &id).await["embedding_status"] == "ready"
    })
    .await;
    let done = report(&app.router, &id).await;
    assert!(
        done["photos"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["embedding_status"] == "ready")
    );
    assert_eq!(count(&app, "SELECT count(*) FROM embeddings").await, 2);
    // The job is visible.
    let job_id = done["photos"][0]["job_id"].as_i64().unwrap();
    let (status, _, job) = send(&app.router, get(&format!("/v1/jobs/{job_id}"))).await;
    assert_eq!(
        (status, job["status"].as_str(), job["attempts"].as_i64()),
        (StatusCode::OK, Some("done"), Some(1))
    );
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_photos_are_stored_once_and_embedded_once() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let photo = distinct_photos(1, 300);
    let a = create(&app.router, "lost", &photo).await;
    let b = create(&app.router, "found", &[photo[0].clone(), photo[0].clone()]).await;
    assert_eq!(count(&app, "SELECT count(*) FROM blobs").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM jobs").await, 1);
    let workers = app.start_workers(job_settings(2));
    for id in [&a["id"], &b["id"]] {
        let id = id.as_str().unwrap().to_owned();
        eventually("ready", 30, || async {
            report(&app.router, &id).await["embedding_status"] == "ready"
        })
        .await;
    }
    assert_eq!(count(&app, "SELECT count(*) FROM embeddings").await, 1);
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_stored_photo_fails_at_once_and_an_upload_again_retries_it() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let created = create(&app.router, "lost", &distinct_photos(1, 300)).await;
    let sha = created["photos"][0]["sha256"].as_str().unwrap();
    let key: String =
        sqlx::query_scalar("SELECT storage_key FROM blobs WHERE sha256 = decode($1, 'hex')")
            .bind(sha)
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    let stored = app.storage_dir.join(key);
    std::fs::write(&stored, b"\x89PNG\r\n\x1a\n but the rest is gone").unwrap();
    let workers = app.start_workers(job_settings(1));
    let id = created["id"].as_str().unwrap().to_owned();
    eventually("failed", 30, || async {
        report(&app.router, &id).await["embedding_status"] == "failed"
    })
    .await;
    let failed = report(&app.router, &id).await;
    let photo = &failed["photos"][0];
    assert_eq!(photo["embedding_status"], "failed");
    assert!(
        photo["embedding_error"]
            .as_str()
            .unwrap()
            .contains("cannot be decoded"),
        "{photo}"
    );
    let (_, _, job) = send(&app.router, get(&format!("/v1/jobs/{}", photo["job_id"]))).await;
    assert_eq!(
        (
            job["status"].as_str(),
            job["attempts"].as_i64(),
            job["max_attempts"].as_i64()
        ),
        // Bad bytes fail the same way every time: no attempts are spent on them.
        (Some("failed"), Some(1), Some(3))
    );

    // Once the stored photo is whole again, uploading it again queues its job again (with
    // fresh attempts), and both reports become ready.
    let original = distinct_photos(1, 300);
    std::fs::write(&stored, &original[0]).unwrap();
    let again = create(&app.router, "found", &original).await;
    assert_eq!(again["photos"][0]["job_id"], photo["job_id"]);
    for id in [id.clone(), again["id"].as_str().unwrap().to_owned()] {
        eventually("ready after the upload again", 30, || async {
            report(&app.router, &id).await["embedding_status"] == "ready"
        })
        .await;
    }
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_checks_headers_and_its_job_decodes_once_refusing_what_does_not_decode() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let upright = image::load_from_memory(&sample("chelsea.png")).unwrap();
    let jpeg = |image: &image::DynamicImage| {
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    };
    // Stored sideways, with the EXIF tag that turns it upright; and a JPEG cut in its pixels.
    let sideways = with_exif_orientation(&jpeg(&upright.rotate270()), 6);
    let whole = jpeg(&upright);
    let truncated = whole[..whole.len() / 2].to_vec();
    let created = create(&app.router, "lost", &[sideways, truncated]).await;
    let (w, h) = (upright.width(), upright.height());
    assert_eq!(
        (
            &created["photos"][0]["width"],
            &created["photos"][0]["height"]
        ),
        (&json!(w), &json!(h)),
        "the upload reads the upright size from the header: {created}"
    );
    assert_eq!(created["photos"][1]["width"], json!(w), "{created}");

    let workers = app.start_workers(job_settings(1));
    let id = created["id"].as_str().unwrap().to_owned();
    eventually("both photos decided", 30, || async {
        let photos = report(&app.router, &id).await["photos"].clone();
        photos[0]["embedding_status"] == "ready" && photos[1]["embedding_status"] == "failed"
    })
    .await;
    let done = report(&app.router, &id).await;
    assert_eq!(done["embedding_status"], "failed");
    let bad = &done["photos"][1];
    let reason = bad["embedding_error"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot be decoded"), "{bad}");
    let (_, _, job) = send(&app.router, get(&format!("/v1/jobs/{}", bad["job_id"]))).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    // The good photo got its thumbnail from the job's one decode, upright; the bad one has none.
    let thumbs: Vec<String> = (0..2)
        .map(|i| {
            done["photo_urls"][i]["thumbnail_url"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let response = tower::ServiceExt::oneshot(app.router.clone(), get(&thumbs[0]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let thumb = image::load_from_memory(&bytes).unwrap();
    assert_eq!(thumb.width() > thumb.height(), w > h, "upright thumbnail");
    let (status, _, body) = send(&app.router, get(&thumbs[1])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("thumbnail_pending"))
    );
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn bad_reports_are_refused_and_nothing_is_stored() {
    let app = app(default_gate_settings(), uploads()).await;
    let good = distinct_photos(6, 64);
    let cases: Vec<(Vec<Part>, StatusCode, &str)> = vec![
        (
            report_form("stolen", "dog", &good[..1]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            report_form("lost", "dog", &good[..0]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            report_form("lost", "dog", &good[..6]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            [
                report_form("lost", "dog", &good[..1]),
                vec![("photos", "x.txt", "text/plain", b"not a photo".as_slice())],
            ]
            .concat(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            [
                report_form("lost", "dog", &good[..1]),
                // Cut inside its header: refused at upload (a photo cut later in its pixels is
                // accepted, and its job reports it failed).
                vec![("photos", "x.png", "image/png", &good[1][..20])],
            ]
            .concat(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            [
                report_form("lost", "dog", &good[..1]),
                vec![
                    ("latitude", "", "text/plain", b"95".as_slice()),
                    ("longitude", "", "text/plain", b"0".as_slice()),
                ],
            ]
            .concat(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (form, want_status, want_code) in cases {
        let (status, _, body) = send(&app.router, post_multipart("/v1/reports", &form)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (want_status, Some(want_code)),
            "{body}"
        );
    }
    assert_eq!(count(&app, "SELECT count(*) FROM reports").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM jobs").await, 0);
    let big = uploads();
    let small = lookalike::config::UploadConfig {
        max_photo_bytes: 1000,
        ..big
    };
    let app = crate::common::app(default_gate_settings(), small).await;
    let (status, _, body) = send(
        &app.router,
        post_multipart("/v1/reports", &report_form("lost", "dog", &good[..1])),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{body}"
    );
}

#[tokio::test]
async fn only_the_owner_changes_or_deletes_a_report() {
    let app = app(default_gate_settings(), uploads()).await;
    let created = create(&app.router, "lost", &distinct_photos(1, 64)).await;
    let (id, token) = (
        created["id"].as_str().unwrap(),
        created["owner_token"].as_str().unwrap(),
    );
    let uri = format!("/v1/reports/{id}");
    let resolve = json!({ "status": "resolved" });
    let (status, _, body) = send(
        &app.router,
        request("PATCH", &uri, None, Some(resolve.clone())),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, _, body) = send(
        &app.router,
        request("PATCH", &uri, Some(&"0".repeat(64)), Some(resolve.clone())),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _, body) = send(
        &app.router,
        request("PATCH", &uri, Some(token), Some(resolve)),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("resolved")),
        "{body}"
    );
    let (status, _, body) = send(
        &app.router,
        request("PATCH", &uri, Some(token), Some(json!({ "colour": "red" }))),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );

    let (status, _, _) = send(
        &app.router,
        request("DELETE", &uri, Some(&"0".repeat(64)), None),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let response = tower::ServiceExt::oneshot(
        app.router.clone(),
        request("DELETE", &uri, Some(token), None),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _, body) = send(&app.router, get(&uri)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _, _) = send(&app.router, get("/v1/reports/not-a-uuid")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn lists_filter_and_page_newest_first() {
    let app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(5, 64);
    for (i, kind) in ["lost", "found", "lost", "sighting", "lost"]
        .iter()
        .enumerate()
    {
        create(&app.router, kind, &photos[i..=i]).await;
    }
    let (status, _, page) = send(&app.router, get("/v1/reports?kind=lost&limit=2")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let first: Vec<_> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(first.len(), 2);
    assert!(
        page["reports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] == "lost")
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, _, page2) = send(
        &app.router,
        get(&format!("/v1/reports?kind=lost&limit=2&cursor={cursor}")),
    )
    .await;
    let second: Vec<_> = page2["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(second.len(), 1);
    assert!(!first.contains(&second[0]));
    assert!(page2["next_cursor"].is_null());
    let (status, _, body) = send(&app.router, get("/v1/reports?kind=stolen")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let (status, _, _) = send(&app.router, get("/v1/reports?limit=1000")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn photos_and_thumbnails_are_served() {
    use http_body_util::BodyExt;
    let mut app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(1, 600);
    let created = create(&app.router, "found", &photos).await;
    // The thumbnail comes with the embedding: not before its job has run.
    let thumb_url = created["photo_urls"][0]["thumbnail_url"].as_str().unwrap();
    let (status, headers, body) = send(&app.router, get(thumb_url)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("thumbnail_pending")),
        "{body}"
    );
    assert_eq!(headers["retry-after"], "1");
    let workers = app.start_workers(job_settings(1));
    let id = created["id"].as_str().unwrap().to_owned();
    eventually("ready", 30, || async {
        report(&app.router, &id).await["embedding_status"] == "ready"
    })
    .await;
    workers.stop(Duration::from_secs(5)).await;
    let photo_url = created["photo_urls"][0]["url"].as_str().unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), get(photo_url))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "image/png");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes.as_ref(), photos[0].as_slice());
    let response = tower::ServiceExt::oneshot(app.router.clone(), get(thumb_url))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let thumb = image::load_from_memory(&bytes).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (256, 256));
    let (status, _, _) = send(
        &app.router,
        get(&format!("/v1/photos/{}", uuid::Uuid::new_v4())),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_workers_hands_jobs_back_and_reindex_requeues_missing_embeddings() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(12, 320);
    for p in photos.chunks(3) {
        create(&app.router, "lost", p).await;
    }
    // Stop at once: whatever was claimed is handed back, uncounted.
    let workers = app.start_workers(job_settings(2));
    tokio::time::sleep(Duration::from_millis(30)).await;
    workers.stop(Duration::ZERO).await;
    assert_eq!(
        count(&app, "SELECT count(*) FROM jobs WHERE status = 'running'").await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM jobs WHERE kind = 'embed' AND status IN ('queued', 'done')"
        )
        .await,
        12
    );
    // Embeddings removed behind the service's back are made again by a reindex.
    let workers = app.start_workers(job_settings(2));
    eventually("all done", 30, || async {
        count(
            &app,
            "SELECT count(*) FROM jobs WHERE kind = 'embed' AND status = 'done'",
        )
        .await
            == 12
    })
    .await;
    sqlx::query("DELETE FROM embeddings WHERE sha256 IN (SELECT sha256 FROM embeddings LIMIT 5)")
        .execute(app.state.store.pool())
        .await
        .unwrap();
    let requeued = app
        .state
        .store
        .jobs()
        .enqueue_missing_embeddings(app.model_id, 3)
        .await
        .unwrap();
    assert_eq!(requeued, 5);
    eventually("re-embedded", 30, || async {
        count(&app, "SELECT count(*) FROM embeddings").await == 12
    })
    .await;
    assert!(count(&app, "SELECT max(attempts)::bigint FROM jobs").await <= 1);
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_wakes_idle_workers_without_waiting_for_the_poll() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let mut settings = job_settings(1);
    settings.poll = Duration::from_secs(3600);
    let workers = app.start_workers(settings);
    // Let the worker find the queue empty and go to sleep on its (hour-long) poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let created = create(&app.router, "lost", &distinct_photos(1, 200)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    eventually("woken by NOTIFY", 10, || async {
        report(&app.router, &id).await["embedding_status"] == "ready"
    })
    .await;
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn uploads_beyond_the_concurrency_limit_wait_then_get_503() {
    let limits = lookalike::config::UploadConfig {
        upload_permits: 1,
        upload_max_wait_ms: 100,
        ..uploads()
    };
    let app = app(default_gate_settings(), limits).await;
    let photos = distinct_photos(1, 64);
    let held = app.state.reports.upload_slot().await.unwrap();
    let (status, headers, body) = send(
        &app.router,
        post_multipart("/v1/reports", &report_form("lost", "dog", &photos)),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        app.state.reports.upload_slots().snapshot().rejected_total,
        1
    );
    drop(held);
    create(&app.router, "lost", &photos).await;
}
