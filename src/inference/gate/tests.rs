//! The gate's behaviour with a fake model and paused time: milliseconds, no model, no sleeps.

use std::sync::Condvar;

use ndarray::ArrayView3;

use std::path::Path;

use super::*;
use crate::inference::{EmbedderError, ModelManifest};

/// A model that embeds a photo as its marker (the tensor's first value), records the batches
/// it ran, runs only while the test lets it, and panics on the marker `panic_on`.
struct FakeModel {
    manifest: ModelManifest,
    batches: Mutex<Vec<Vec<u32>>>,
    open: Mutex<bool>,
    opened: Condvar,
    panic_on: Option<u32>,
}

impl FakeModel {
    fn new(open: bool, panic_on: Option<u32>) -> Arc<Self> {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/efficientnet_lite0.onnx");
        Arc::new(FakeModel {
            manifest: ModelManifest::load_for(&model).expect("the committed manifest"),
            batches: Mutex::default(),
            open: Mutex::new(open),
            opened: Condvar::new(),
            panic_on,
        })
    }

    fn set_open(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.opened.notify_all();
    }

    fn batches(&self) -> Vec<Vec<u32>> {
        self.batches.lock().unwrap().clone()
    }
}

impl BatchRunner for FakeModel {
    fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    fn run(&self, photos: &[ArrayView3<'_, f32>]) -> Result<Vec<ModelOutput>, EmbedderError> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        let markers: Vec<u32> = photos.iter().map(|p| p[[0, 0, 0]] as u32).collect();
        self.batches.lock().unwrap().push(markers.clone());
        if self.panic_on.is_some_and(|m| markers.contains(&m)) {
            panic!("the fake model panics on this photo");
        }
        Ok(markers
            .iter()
            .map(|&m| ModelOutput::embedding_only(vec![m as f32]))
            .collect())
    }

    /// A detection of class `marker` over the whole photo, recorded as a batch of its own
    /// (markers + 1000).
    fn detect(
        &self,
        inputs: &[ArrayView3<'_, f32>],
    ) -> Result<Vec<Option<Detection>>, EmbedderError> {
        let markers: Vec<u32> = inputs.iter().map(|p| p[[0, 0, 0]] as u32).collect();
        self.batches
            .lock()
            .unwrap()
            .push(markers.iter().map(|m| m + 1000).collect());
        Ok(markers
            .iter()
            .map(|&m| {
                Some(Detection {
                    class: m as usize,
                    class_name: "dog".into(),
                    score: 0.5,
                    area: crate::inference::detector::PixelBox {
                        x0: 0.0,
                        y0: 0.0,
                        x1: 1.0,
                        y1: 1.0,
                    },
                })
            })
            .collect())
    }
}

fn photo(marker: u32) -> Array3<f32> {
    Array3::from_elem((3, 2, 2), marker as f32)
}

fn settings(max_batch: usize, max_wait: Duration) -> GateSettings {
    GateSettings {
        permits: 1,
        max_batch,
        max_waiters: [8, 8],
        max_wait: [max_wait, max_wait],
    }
}

/// Lets the tasks spawned so far run until they wait.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Starts `embed(marker)` at `priority` and lets it reach the queue.
async fn ask(
    gate: &Gate,
    marker: u32,
    priority: Priority,
) -> tokio::task::JoinHandle<Result<Embedding, GateError>> {
    let gate = gate.clone();
    let task = tokio::spawn(async move { gate.embed(photo(marker), priority).await });
    settle().await;
    task
}

#[tokio::test(start_paused = true)]
async fn an_idle_request_runs_at_once_alone() {
    let model = FakeModel::new(true, None);
    let gate = Gate::new(model.clone(), settings(4, Duration::from_millis(20)));
    let started = tokio::time::Instant::now();
    assert_eq!(
        gate.embed(photo(7), Priority::Interactive).await.unwrap(),
        [7.0]
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "no added delay");
    assert_eq!(model.batches(), [vec![7]]);
    assert_eq!(gate.snapshot().permits_in_use, 0);
}

#[tokio::test(start_paused = true)]
async fn interactive_goes_before_a_background_backlog_and_a_crowd_shares_runs() {
    let model = FakeModel::new(false, None);
    let gate = Gate::new(model.clone(), settings(2, Duration::from_secs(3600)));
    // One background run holds the only permit while others queue behind it.
    let first = ask(&gate, 1, Priority::Background).await;
    let backlog = [
        ask(&gate, 2, Priority::Background).await,
        ask(&gate, 3, Priority::Background).await,
        ask(&gate, 4, Priority::Background).await,
    ];
    let interactive = ask(&gate, 9, Priority::Interactive).await;
    let snapshot = gate.snapshot();
    assert_eq!(
        (snapshot.waiting_interactive, snapshot.waiting_background),
        (1, 3)
    );
    model.set_open(true);
    assert_eq!(interactive.await.unwrap().unwrap(), [9.0]);
    first.await.unwrap().unwrap();
    for task in backlog {
        task.await.unwrap().unwrap();
    }
    // The interactive request waited for the run in progress only, and shared the next run
    // with the oldest background one; the rest ran in arrival order.
    assert_eq!(model.batches(), [vec![1], vec![9, 2], vec![3, 4]]);
    assert_eq!(gate.snapshot().permits_in_use, 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_waits_too_long_is_refused_with_a_retry_after() {
    let model = FakeModel::new(false, None);
    let gate = Gate::new(model.clone(), settings(1, Duration::from_millis(20)));
    let running = ask(&gate, 1, Priority::Interactive).await;
    let waiting = ask(&gate, 2, Priority::Interactive).await;
    // The run holds time still; move it past the waiter's 20 ms.
    tokio::time::advance(Duration::from_millis(25)).await;
    settle().await;
    match waiting.await.unwrap() {
        Err(GateError::WaitTimeout { retry_after, .. }) => {
            assert!(retry_after >= Duration::from_secs(1))
        }
        other => panic!("expected a wait timeout, got {other:?}"),
    }
    model.set_open(true);
    running.await.unwrap().unwrap();
    let snapshot = gate.snapshot();
    assert_eq!(snapshot.rejected_wait_timeout_total, 1);
    assert_eq!(
        (snapshot.permits_in_use, snapshot.admitted_interactive),
        (0, 0)
    );
    assert_eq!(model.batches(), [vec![1]], "the refused photo never ran");
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_leaves_is_dropped_before_its_run() {
    let model = FakeModel::new(false, None);
    let gate = Gate::new(model.clone(), settings(4, Duration::from_secs(3600)));
    let running = ask(&gate, 1, Priority::Interactive).await;
    let leaving = ask(&gate, 2, Priority::Interactive).await;
    let staying = ask(&gate, 3, Priority::Interactive).await;
    leaving.abort();
    settle().await;
    model.set_open(true);
    running.await.unwrap().unwrap();
    staying.await.unwrap().unwrap();
    assert_eq!(model.batches(), [vec![1], vec![3]]);
    let snapshot = gate.snapshot();
    assert_eq!(snapshot.cancelled_total, 1);
    assert_eq!(
        (snapshot.permits_in_use, snapshot.admitted_interactive),
        (0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_run_answers_its_batch_and_returns_the_permit() {
    let model = FakeModel::new(true, Some(2));
    let gate = Gate::new(model.clone(), settings(1, Duration::from_secs(1)));
    assert!(matches!(
        gate.embed(photo(2), Priority::Interactive).await,
        Err(GateError::Run(_))
    ));
    assert_eq!(
        gate.embed(photo(3), Priority::Interactive).await.unwrap(),
        [3.0]
    );
    let snapshot = gate.snapshot();
    assert_eq!(
        (snapshot.failed_runs_total, snapshot.permits_in_use),
        (1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn admission_beyond_the_waiters_is_refused_at_once() {
    let model = FakeModel::new(true, None);
    let mut limits = settings(1, Duration::from_secs(1));
    limits.max_waiters = [1, 0];
    let gate = Gate::new(model, limits);
    let held = gate.admit(Priority::Interactive).unwrap();
    assert!(matches!(
        gate.admit(Priority::Interactive),
        Err(GateError::QueueFull { .. })
    ));
    assert!(matches!(
        gate.admit(Priority::Background),
        Err(GateError::QueueFull { .. })
    ));
    drop(held);
    assert!(gate.admit(Priority::Interactive).is_ok());
    assert_eq!(gate.snapshot().rejected_queue_full_total, 2);
}

#[tokio::test(start_paused = true)]
async fn detections_and_model_runs_queue_together_and_share_a_permit() {
    let model = FakeModel::new(false, None);
    let gate = Gate::new(model.clone(), settings(4, Duration::from_secs(3600)));
    let running = ask(&gate, 1, Priority::Interactive).await;
    let detecting = {
        let ticket = gate.admit(Priority::Interactive).unwrap();
        tokio::spawn(async move { ticket.detect(photo(5)).await })
    };
    settle().await;
    let embedding = ask(&gate, 6, Priority::Interactive).await;
    model.set_open(true);
    running.await.unwrap().unwrap();
    let found = detecting.await.unwrap().unwrap().expect("a detection");
    assert_eq!(found.class, 5, "its own detection");
    assert_eq!(embedding.await.unwrap().unwrap(), [6.0]);
    // The second run took both waiters: the model on the photo, then the detector.
    assert_eq!(model.batches(), [vec![1], vec![6], vec![1005]]);
    let snapshot = gate.snapshot();
    assert_eq!(
        (
            snapshot.runs_total,
            snapshot.images_total,
            snapshot.detections_total,
            snapshot.permits_in_use
        ),
        (2, 2, 1, 0)
    );
}
