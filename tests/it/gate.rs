//! The inference gate under load with the real model and real threads: bounded concurrency,
//! permits returned when callers leave mid-flight, and micro-batches that give the same vectors.
//! The gate's policy (priorities, deadlines, admission, cancellation, panics) is unit-tested with
//! a fake model and paused time in `src/inference/gate.rs`.

use std::time::Duration;

use crate::common::*;
use lookalike::imaging::{self, DecodeCaps};
use lookalike::inference::{Gate, GateError, Priority, cosine};
use ndarray::Array3;

fn tensor(name: &str) -> Array3<f32> {
    imaging::prepare(
        &sample(name),
        &embedder().preprocessing(),
        &DecodeCaps::default(),
    )
    .unwrap()
    .tensor
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

fn spawn_embeds(
    gate: &Gate,
    n: usize,
    priority: Priority,
) -> Vec<tokio::task::JoinHandle<Result<Vec<f32>, GateError>>> {
    let t = tensor("chelsea.png");
    (0..n)
        .map(|_| {
            let (gate, t) = (gate.clone(), t.clone());
            tokio::spawn(async move { gate.embed(t, priority).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_more_runs_at_once_than_permits_under_60_concurrent_requests() {
    let gate = gate(gate_settings(2));
    let results =
        futures_util::future::join_all(spawn_embeds(&gate, 60, Priority::Interactive)).await;
    assert!(results.into_iter().all(|r| r.unwrap().is_ok()));
    let s = gate.snapshot();
    assert_eq!(s.runs_total, 60);
    assert!(
        s.max_running_observed <= 2,
        "{} runs at once with 2 permits",
        s.max_running_observed
    );
    assert!(s.max_running_observed >= 1);
    assert_eq!(
        (s.permits_in_use, s.running, s.waiting_interactive),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permits_come_back_when_every_caller_is_cancelled_mid_flight() {
    let gate = gate(gate_settings(2));
    let callers = spawn_embeds(&gate, 30, Priority::Interactive);
    wait_until("runs are under way", || gate.snapshot().runs_total >= 2).await;
    for c in &callers {
        c.abort();
    }
    wait_until("all permits are free", || {
        let s = gate.snapshot();
        s.permits_in_use == 0 && s.running == 0 && s.waiting_interactive == 0
    })
    .await;
    let s = gate.snapshot();
    assert!(
        s.runs_total < 30,
        "{} runs: the cancelled requests were dropped before running",
        s.runs_total
    );
    assert!(s.cancelled_total > 0);
    assert!(
        gate.embed(tensor("chelsea.png"), Priority::Interactive)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_requests_are_micro_batched_with_the_same_results() {
    let single = embedder()
        .embed_batch(&[tensor("chelsea.png").view()])
        .unwrap()
        .remove(0);
    let mut settings = gate_settings(1);
    settings.max_batch = 8;
    let gate = gate(settings);
    let results =
        futures_util::future::join_all(spawn_embeds(&gate, 40, Priority::Interactive)).await;
    for r in results {
        assert!(cosine(&r.unwrap().unwrap(), &single) > 0.9999);
    }
    let s = gate.snapshot();
    assert_eq!(s.images_total, 40);
    assert!(
        s.runs_total < 40,
        "{} runs for 40 requests: nothing was batched",
        s.runs_total
    );
    assert!(
        s.batch_size
            .buckets
            .iter()
            .any(|(bound, n)| *bound == 1.0 && *n < 40)
    );
}
