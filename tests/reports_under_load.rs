//! Report creation while the model is saturated (its own test binary, so that no other test
//! competes for the CPU while it measures).

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use lookalike::inference::Priority;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creating_a_report_does_not_wait_for_a_saturated_model() {
    // One permit, no batching, room for every waiter: 300 queued runs keep the model busy for seconds.
    let app = app(gate_settings(1), uploads()).await;
    let gate = app.state.pipeline.gate().clone();
    let tensor = lookalike::imaging::prepare(
        &sample("chelsea.png"),
        &gate.embedder().preprocessing(),
        &lookalike::imaging::DecodeLimits::default(),
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
