//! The inference gate under load, with the real model: bounded concurrency, bounded waiting,
//! priorities, micro-batching and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use lookalike::imaging::{self, DecodeLimits};
use lookalike::inference::{Gate, GateError, Priority, cosine};
use ndarray::Array3;

fn tensor(name: &str) -> Array3<f32> {
    imaging::prepare(
        &sample(name),
        &embedder().preprocessing(),
        &DecodeLimits::default(),
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
async fn too_many_waiters_are_refused_at_once_with_retry_after() {
    let mut settings = gate_settings(1);
    settings.max_waiters = [4, 4];
    let gate = gate(settings);
    let results =
        futures_util::future::join_all(spawn_embeds(&gate, 40, Priority::Interactive)).await;
    let mut ok = 0;
    let mut refused = 0;
    for r in results {
        match r.unwrap() {
            Ok(_) => ok += 1,
            Err(GateError::QueueFull { retry_after, .. }) => {
                assert!(retry_after >= Duration::from_secs(1));
                refused += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(ok >= 4 && refused > 0, "ok {ok}, refused {refused}");
    assert_eq!(gate.snapshot().rejected_queue_full_total, refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_too_long_ends_with_retry_after() {
    let mut settings = gate_settings(1);
    settings.max_wait = [Duration::from_millis(20), Duration::from_millis(20)];
    let gate = gate(settings);
    let results =
        futures_util::future::join_all(spawn_embeds(&gate, 40, Priority::Interactive)).await;
    let timeouts: Vec<_> = results
        .into_iter()
        .filter_map(|r| match r.unwrap() {
            Err(GateError::WaitTimeout { retry_after, .. }) => Some(retry_after),
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => None,
        })
        .collect();
    assert!(
        !timeouts.is_empty(),
        "40 requests on one permit within 20 ms each"
    );
    assert!(timeouts.iter().all(|r| *r >= Duration::from_secs(1)));
    let s = gate.snapshot();
    assert_eq!(s.rejected_wait_timeout_total, timeouts.len() as u64);
    assert_eq!(s.waiting_interactive, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interactive_requests_overtake_queued_background_work() {
    let gate = gate(gate_settings(1));
    let finished = Arc::new(AtomicUsize::new(0));
    let t = tensor("coffee.png");
    let background: Vec<_> = (0..40)
        .map(|_| {
            let (gate, t, finished) = (gate.clone(), t.clone(), finished.clone());
            tokio::spawn(async move {
                gate.embed(t, Priority::Background).await.unwrap();
                finished.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let interactive = tensor("chelsea.png");
    wait_until("a background backlog", || {
        gate.snapshot().waiting_background >= 20
    })
    .await;
    let done_before = finished.load(Ordering::SeqCst);
    gate.embed(interactive, Priority::Interactive)
        .await
        .unwrap();
    let done_after = finished.load(Ordering::SeqCst);
    // At most the run in progress (and one that raced us into the queue) finished first.
    assert!(
        done_after - done_before <= 2,
        "{} background runs went first",
        done_after - done_before
    );
    assert!(
        gate.snapshot().waiting_background >= 10,
        "the backlog was still there"
    );
    for b in background {
        b.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_request_leaves_the_queue_and_never_runs() {
    let gate = gate(gate_settings(1));
    let backlog = spawn_embeds(&gate, 20, Priority::Background);
    wait_until("a background backlog", || {
        gate.snapshot().waiting_background >= 10
    })
    .await;
    let victim = spawn_embeds(&gate, 1, Priority::Background).remove(0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    victim.abort();
    wait_until("the cancelled request leaves the queue", || {
        gate.snapshot().cancelled_total == 1
    })
    .await;
    for b in backlog {
        assert!(b.await.unwrap().is_ok());
    }
    let s = gate.snapshot();
    assert_eq!(
        (s.runs_total, s.images_total),
        (20, 20),
        "the cancelled request was not run"
    );
    assert_eq!((s.permits_in_use, s.waiting_background), (0, 0));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gate_runs_a_request_at_once() {
    let mut settings = gate_settings(1);
    settings.max_batch = 8;
    let gate = gate(settings);
    gate.embed(tensor("chelsea.png"), Priority::Interactive)
        .await
        .unwrap();
    let s = gate.snapshot();
    assert_eq!((s.runs_total, s.images_total), (1, 1));
    // Its wait was only the hand-over, far below one model run.
    assert!(
        s.wait_seconds_interactive.sum < 0.05,
        "waited {} s",
        s.wait_seconds_interactive.sum
    );
}
