//! Where a request's time went: waiting for the model, decoding, inference and the database.
//!
//! The HTTP layer opens a [`scope`] per request; the code that does the work records into it
//! with [`record`] or [`measure`], without knowing whether a request is listening (a background
//! job has no scope, and records nothing). Times of a request's several photos add up.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

tokio::task_local! {
    static CURRENT: Arc<RequestTimings>;
}

/// A stage of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting in the inference gate for a model run.
    Queue,
    /// Decoding and preparing photos (including the wait for a decode slot).
    Decode,
    /// Model runs.
    Inference,
    /// Database queries and transactions.
    Database,
}

/// Time spent per stage by one request, in microseconds.
#[derive(Debug, Default)]
pub struct RequestTimings {
    stages: [AtomicU64; 4],
}

impl RequestTimings {
    /// Time spent in `stage` so far.
    pub fn get(&self, stage: Stage) -> Duration {
        Duration::from_micros(self.stages[stage as usize].load(Ordering::Relaxed))
    }

    fn add(&self, stage: Stage, spent: Duration) {
        let micros = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        self.stages[stage as usize].fetch_add(micros, Ordering::Relaxed);
    }
}

/// Runs `work` with `timings` collecting what it records.
pub async fn scope<F: Future>(timings: Arc<RequestTimings>, work: F) -> F::Output {
    CURRENT.scope(timings, work).await
}

/// Adds `spent` to `stage` of the current request, if there is one.
pub fn record(stage: Stage, spent: Duration) {
    let _ = CURRENT.try_with(|timings| timings.add(stage, spent));
}

/// Awaits `work`, counting its time to `stage` of the current request.
pub async fn measure<F: Future>(stage: Stage, work: F) -> F::Output {
    let started = Instant::now();
    let output = work.await;
    record(stage, started.elapsed());
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_only_inside_a_scope_and_adds_up() {
        record(Stage::Queue, Duration::from_millis(5));
        let timings = Arc::new(RequestTimings::default());
        scope(timings.clone(), async {
            record(Stage::Inference, Duration::from_millis(3));
            record(Stage::Inference, Duration::from_millis(4));
            measure(Stage::Database, async {}).await;
        })
        .await;
        assert_eq!(timings.get(Stage::Queue), Duration::ZERO);
        assert_eq!(timings.get(Stage::Inference), Duration::from_millis(7));
        assert!(timings.get(Stage::Database) < Duration::from_millis(50));
    }
}
