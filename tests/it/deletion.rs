//! What people delete is gone: photos, thumbnails, blobs and embeddings go with the last report
//! using them, through durable jobs; the sweep repairs what a crash left (real database, real
//! model, real photo store folder).

use std::time::Duration;

use crate::common::*;
use axum::http::{Request, StatusCode};
use lookalike::sweep::{SweepReport, Sweeper};
use serde_json::Value;

async fn create(app: &axum::Router, kind: &str, photos: &[Vec<u8>]) -> Value {
    let (status, _, body) = send(
        app,
        post_multipart("/v1/reports", &report_form(kind, "dog", photos)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn delete(app: &axum::Router, report: &Value) {
    let request = Request::delete(format!("/v1/reports/{}", report["id"].as_str().unwrap()))
        .header(
            "authorization",
            format!("Bearer {}", report["owner_token"].as_str().unwrap()),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, _) = send_raw(app, request).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn ready(app: &axum::Router, report: &Value) -> bool {
    let id = report["id"].as_str().unwrap();
    let (_, _, body) = send(app, get(&format!("/v1/reports/{id}"))).await;
    body["embedding_status"] == "ready"
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

fn photo_url(report: &Value, index: usize) -> String {
    format!(
        "/v1/photos/{}",
        report["photos"][index]["id"].as_str().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_goes_with_the_last_report_that_uses_it() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let workers = app.start_workers(job_settings(2));
    let photos = distinct_photos(2, 96);
    let (shared, own) = (photos[0].clone(), photos[1].clone());
    let first = create(&app.router, "lost", &[shared.clone(), own]).await;
    let second = create(&app.router, "found", &[shared]).await;
    for report in [&first, &second] {
        eventually("embedded", 30, || ready(&app.router, report)).await;
    }
    // Two blobs: each a photo and a thumbnail.
    assert_eq!(stored_objects(&app.storage_dir).len(), 4);
    assert_eq!(count(&app, "SELECT count(*) FROM embeddings").await, 2);

    // A photo may be kept by the client only, and only after asking again.
    let (status, headers, bytes) = send_raw(&app.router, get(&photo_url(&first, 1))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "private, no-cache");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(bytes, photos[1]);
    let revalidate = Request::get(photo_url(&first, 1))
        .header("if-none-match", &etag)
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, headers, bytes) = send_raw(&app.router, revalidate).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(headers["etag"], etag.as_str());
    assert!(bytes.is_empty());

    delete(&app.router, &first).await;
    // The first report's own photo goes; the shared one stays for the second report.
    eventually("the unshared photo deleted", 30, || async {
        stored_objects(&app.storage_dir).len() == 2
    })
    .await;
    assert_eq!(count(&app, "SELECT count(*) FROM blobs").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM embeddings").await, 1);
    // The deleted report's photos are gone for everyone, also for a client revalidating.
    let revalidate = Request::get(photo_url(&first, 1))
        .header("if-none-match", &etag)
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, body) = send_raw(&app.router, revalidate).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "not_found");
    let (status, _, _) = send_raw(&app.router, get(&photo_url(&first, 0))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, bytes) = send_raw(&app.router, get(&photo_url(&second, 0))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, photos[0]);

    delete(&app.router, &second).await;
    eventually("every object deleted", 30, || async {
        stored_objects(&app.storage_dir).is_empty()
    })
    .await;
    for table in ["blobs", "embeddings", "photos", "reports"] {
        assert_eq!(
            count(&app, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    eventually("the purge and delete jobs done", 30, || async {
        count(&app, "SELECT count(*) FROM jobs WHERE status <> 'done'").await == 0
    })
    .await;
    workers.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_uploaded_again_while_its_blob_is_purged_is_kept() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let photo = distinct_photos(1, 96);
    // Upload and delete in a loop with the workers purging meanwhile: whichever wins each race,
    // the last upload's photo must be readable and embedded.
    let workers = app.start_workers(job_settings(2));
    let mut last = None;
    for round in 0..20 {
        let report = create(&app.router, "lost", &photo).await;
        if round < 19 {
            delete(&app.router, &report).await;
        }
        last = Some(report);
    }
    let last = last.unwrap();
    eventually("the last report embedded", 60, || ready(&app.router, &last)).await;
    eventually("the purges done", 30, || async {
        count(
            &app,
            "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
        )
        .await
            == 0
    })
    .await;
    let (status, _, bytes) = send_raw(&app.router, get(&photo_url(&last, 0))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, photo[0]);
    let thumbnail = format!("{}/thumbnail", photo_url(&last, 0));
    let (status, _, _) = send_raw(&app.router, get(&thumbnail)).await;
    assert_eq!(status, StatusCode::OK);
    // Only the live blob's two objects remain.
    assert_eq!(stored_objects(&app.storage_dir).len(), 2);
    assert_eq!(count(&app, "SELECT count(*) FROM blobs").await, 1);
    workers.stop(Duration::from_secs(5)).await;
}

fn sweeper(app: &TestApp, grace: Duration) -> Sweeper {
    Sweeper {
        store: app.state.store.clone(),
        storage: app.storage.clone(),
        decode: app.state.pipeline.decode_caps(),
        grace,
        max_attempts: 3,
        totals: app.state.sweeps.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_repairs_what_a_crash_left() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(3, 96);
    let report = create(&app.router, "lost", &photos[..1]).await;
    let sha = report["photos"][0]["sha256"].as_str().unwrap().to_owned();
    let dir = &app.storage_dir.clone();
    // Embedded, so it has its thumbnail (its job makes it).
    let workers = app.start_workers(job_settings(1));
    eventually("embedded", 30, || ready(&app.router, &report)).await;
    workers.stop(Duration::from_secs(5)).await;
    // Not embedded yet: no thumbnail, and none for the sweep to make (its job will).
    create(&app.router, "found", &photos[2..3]).await;

    // An upload that crashed after writing its objects: objects no row names.
    let orphan = format!("photos/ab/cd/{}-crashed", "ab".repeat(32));
    std::fs::create_dir_all(dir.join("photos/ab/cd")).unwrap();
    std::fs::write(dir.join(&orphan), &photos[1]).unwrap();
    // A blob row no photo uses (deleted before purging existed), with its objects.
    let unused = "cd".repeat(32);
    let (unused_photo, unused_thumb) = (
        format!("photos/cd/cd/{unused}-old"),
        format!("thumbnails/cd/cd/{unused}-old.jpg"),
    );
    for key in [&unused_photo, &unused_thumb] {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"old").unwrap();
    }
    sqlx::query(
        "INSERT INTO blobs (sha256, storage_key, thumbnail_key, format, width, height, bytes)
         VALUES (decode($1, 'hex'), $2, $3, 'png', 1, 1, 3)",
    )
    .bind(&unused)
    .bind(&unused_photo)
    .bind(&unused_thumb)
    .execute(app.state.store.pool())
    .await
    .unwrap();
    // A thumbnail lost from the store.
    let thumbnail_key: String =
        sqlx::query_scalar("SELECT thumbnail_key FROM blobs WHERE sha256 = decode($1, 'hex')")
            .bind(&sha)
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    std::fs::remove_file(dir.join(&thumbnail_key)).unwrap();

    // Within the grace period the orphan may be an upload still being recorded: kept.
    let first = sweeper(&app, Duration::from_secs(3600))
        .sweep_if_free()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.orphans_deleted, 0, "{first:?}");
    assert!(dir.join(&orphan).exists());
    assert_eq!((first.thumbnails_rebuilt, first.unused_queued), (1, 1));
    assert!(dir.join(&thumbnail_key).exists());

    let second = sweeper(&app, Duration::ZERO)
        .sweep_if_free()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second,
        SweepReport {
            objects: 6,
            blobs: 3,
            orphans_deleted: 1,
            unused_queued: 1,
            thumbnails_rebuilt: 0,
            photos_missing: 0,
        }
    );
    assert!(!dir.join(&orphan).exists());

    // The queued purge deletes the unused blob's row and objects; the reports' photos stay.
    let workers = app.start_workers(job_settings(2));
    eventually("the unused blob purged", 30, || async {
        count(&app, "SELECT count(*) FROM blobs").await == 2
            && !dir.join(&unused_photo).exists()
            && !dir.join(&unused_thumb).exists()
    })
    .await;
    let thumbnail = format!("{}/thumbnail", photo_url(&report, 0));
    let (status, headers, _) = send_raw(&app.router, get(&thumbnail)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/jpeg");
    workers.stop(Duration::from_secs(5)).await;

    // One sweep at a time across processes: a second sweeper waits its turn.
    let holder = app
        .state
        .store
        .blobs()
        .try_sweep_lock()
        .await
        .unwrap()
        .unwrap();
    assert!(
        sweeper(&app, Duration::ZERO)
            .sweep_if_free()
            .await
            .unwrap()
            .is_none()
    );
    app.state
        .store
        .blobs()
        .release_sweep_lock(holder)
        .await
        .unwrap();
}
