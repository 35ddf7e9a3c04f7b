//! Report creation and search while the model is busy (a test binary of their own, run one at a
//! time, so that no other test competes for the CPU while they measure).

use std::time::{Duration, Instant};

use crate::common::*;
use axum::http::StatusCode;
use lookalike::inference::Priority;

/// The tests here measure time: one at a time, so that neither slows the other.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creating_a_report_does_not_wait_for_a_saturated_model() {
    let _machine = whole_machine().await;
    let _alone = ALONE.lock().await;
    // One permit, no batching, room for every waiter: 300 queued runs keep the model busy for seconds.
    let app = app(gate_settings(1), uploads()).await;
    let gate = app.state.pipeline.gate().clone();
    let tensor = lookalike::imaging::prepare(
        &sample("chelsea.png"),
        &gate.model().manifest().preprocessing(),
        &lookalike::imaging::DecodeCaps::default(),
    )
    .unwrap()
    .tensor;
    let load: Vec<_> = (0..300)
        .map(|_| {
            let (gate, t) = (gate.clone(), tensor.clone());
            tokio::spawn(async move { gate.embed(t, Priority::Interactive).await })
        })
        .collect();
    eventually("the gate is saturated", 10, || async {
        gate.snapshot().waiting_interactive >= 20
    })
    .await;
    let photos = distinct_photos(3, 480);
    let started = Instant::now();
    let form = report_form("found", "dog", &photos);
    let (status, _, created) = send(&app.router, post_multipart("/v1/reports", &form)).await;
    let elapsed = started.elapsed();
    assert!(
        gate.snapshot().waiting_interactive > 0,
        "still saturated when the report was created"
    );
    assert!(
        elapsed < Duration::from_millis(1000),
        "report creation took {elapsed:?}"
    );
    assert_eq!(
        (status, created["embedding_status"].as_str()),
        (StatusCode::CREATED, Some("pending")),
        "{created}"
    );
    for l in load {
        l.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_is_answered_in_bounded_time_while_200_jobs_are_queued() {
    let _machine = whole_machine().await;
    let _alone = ALONE.lock().await;
    let mut app = app(default_gate_settings(), uploads()).await;
    for photo in distinct_photos(200, 320) {
        let form = report_form("found", "dog", std::slice::from_ref(&photo));
        let (status, _, body) = send(&app.router, post_multipart("/v1/reports", &form)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let pool = app.state.store.pool().clone();
    let queued = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(queued().await, 200);
    let workers = app.start_workers(lookalike::jobs::JobSettings {
        workers: 4,
        ..job_settings(4)
    });
    eventually("the background work is under way", 30, || async {
        app.state.pipeline.gate().snapshot().runs_total >= 5
    })
    .await;
    let photo = edited_copy(&distinct_photos(1, 320)[0]);
    let started = Instant::now();
    let form: Vec<Part> = vec![
        ("photo", "q.jpg", "image/jpeg", &photo),
        ("k", "", "text/plain", b"5"),
    ];
    let (status, _, body) = send(&app.router, post_multipart("/v1/search", &form)).await;
    let elapsed = started.elapsed();
    let still_queued = queued().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        elapsed < Duration::from_secs(1),
        "search took {elapsed:?} behind the background work"
    );
    assert!(
        still_queued >= 100,
        "the backlog was still there ({still_queued} jobs)"
    );
    workers.stop(Duration::from_secs(5)).await;
}
