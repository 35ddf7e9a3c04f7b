//! Transient failures defer jobs without spending their attempts: an object-store outage during a
//! backlog ends with every job done (real database, real model, a real folder made unreachable).

use std::time::Duration;

use crate::common::*;
use axum::http::StatusCode;
use lookalike::jobs::JobSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_long_photo_store_outage_fails_no_job() {
    let mut app = app(default_gate_settings(), uploads()).await;
    let photos = distinct_photos(100, 64);
    for photo in photos.chunks(1) {
        let (status, _, body) = send(
            &app.router,
            post_multipart("/v1/reports", &report_form("lost", "dog", photo)),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM jobs").await, 100);

    // The store's folder replaced by a file: every read fails as with a volume gone away
    // ("not a directory"), not as with a missing photo.
    let dir = app.storage_dir.clone();
    let away = dir.with_extension("away");
    std::fs::rename(&dir, &away).unwrap();
    std::fs::write(&dir, b"").unwrap();
    let workers = app.start_workers(JobSettings {
        backoff: Duration::from_millis(500),
        backoff_max: Duration::from_secs(5),
        ..job_settings(4)
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    let waiting = count(
        &app,
        "SELECT count(*) FROM jobs WHERE status = 'queued' AND attempts = 0 AND deferrals > 0
             AND last_error LIKE '%storage error%'",
    )
    .await;
    let running = count(&app, "SELECT count(*) FROM jobs WHERE status = 'running'").await;
    assert_eq!(waiting + running, 100, "every job waits for the store");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM jobs WHERE status <> 'queued' AND status <> 'running'"
        )
        .await,
        0
    );

    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&away, &dir).unwrap();
    eventually("every job done after the outage", 60, || async {
        count(
            &app,
            "SELECT count(*) FROM jobs WHERE kind = 'embed' AND status = 'done'",
        )
        .await
            == 100
    })
    .await;
    assert_eq!(
        count(&app, "SELECT count(*) FROM jobs WHERE status = 'failed'").await,
        0
    );
    // The outage cost no attempt: each job was run once, when it could be.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM jobs WHERE kind = 'embed' AND attempts = 1"
        )
        .await,
        100
    );
    assert_eq!(count(&app, "SELECT count(*) FROM embeddings").await, 100);
    workers.stop(Duration::from_secs(5)).await;
}
