//! The inference gate: every model run in the process passes one small semaphore.
//!
//! - A request is first admitted (`admit`, before its photo is even decoded): at most
//!   `max_waiters` per priority are in flight, beyond that 503 at once. It then joins the queue of
//!   its priority and competes for a permit. Whoever gets a permit takes up to `max_batch` queued requests,
//!   interactive first, and runs them as one batch in `spawn_blocking`. So an idle request runs at
//!   once, a crowd is micro-batched, and a backlog of background work delays an interactive request
//!   by at most the run in progress.
//! - A request that waits longer than its priority's `max_wait` leaves the queue with a
//!   `Retry-After` estimated from the backlog and the measured run time.
//! - A request whose caller went away (future dropped) leaves the queue before it runs. The permit
//!   travels into the blocking task, so it is released when the run ends, whatever happens to the
//!   caller, and never more runs proceed than there are permits.
//!
//! The queue's policy (priorities, batch taking, removal by id) lives in `queue`, apart from any
//! model or clock; the model is a `BatchRunner`. So the behaviours above are unit-tested here with
//! a fake model and paused time.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ndarray::Array3;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::detector::Detection;
use super::device::Device;
use super::embedder::Embedding;
use super::embedder::ModelOutput;
pub use super::queue::Priority;
use super::queue::{GateQueue, QueueId};
use super::runner::BatchRunner;
use crate::telemetry::histogram::{self, Histogram};
use crate::telemetry::timing::{self, Stage};

mod snapshot;
pub use snapshot::GateSnapshot;

/// Why the gate did not produce an embedding.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GateError {
    /// Too many requests already wait: rejected at once.
    #[error("the model is overloaded: {waiting} {priority:?} requests already wait")]
    QueueFull {
        priority: Priority,
        waiting: usize,
        retry_after: Duration,
    },
    /// Waited the maximum time without getting a turn.
    #[error("the model is overloaded: no turn within {waited:?}")]
    WaitTimeout {
        waited: Duration,
        retry_after: Duration,
    },
    /// The model run failed (or panicked).
    #[error("{0}")]
    Run(String),
    /// The gate is shutting down.
    #[error("the inference gate is closed")]
    Closed,
}

impl GateError {
    /// When to retry, for the errors that are about load.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GateError::QueueFull { retry_after, .. }
            | GateError::WaitTimeout { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Gate settings, resolved from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSettings {
    /// Model runs at once.
    pub permits: usize,
    /// Most requests per run.
    pub max_batch: usize,
    /// Most waiting requests, per priority.
    pub max_waiters: [usize; 2],
    /// Longest wait, per priority.
    pub max_wait: [Duration; 2],
}

/// One run at a time per two cores: ONNX Runtime's intra-op threads use the cores inside a run,
/// and more concurrent runs only contend (measured: same throughput, worse latency).
pub fn default_permits() -> usize {
    Device::Cpu.default_permits()
}

/// What a waiter asks of the model: a run of the embedder, or of the animal detector in front of
/// it, on one prepared input.
enum Job {
    Embed(Array3<f32>),
    Detect(Array3<f32>),
}

/// What a run gives a waiter, by its job.
enum Output {
    Embedded(ModelOutput),
    Detected(Option<Detection>),
}

/// A waiter's answer: its output and how long the run took, or why there is none.
type Reply = Result<(Output, Duration), GateError>;

struct Waiter {
    priority: Priority,
    job: Job,
    enqueued: Instant,
    reply: oneshot::Sender<Reply>,
}

#[derive(Debug)]
struct Stats {
    running: AtomicUsize,
    max_running: AtomicUsize,
    runs: AtomicU64,
    images: AtomicU64,
    detections: AtomicU64,
    failed_runs: AtomicU64,
    rejected_queue_full: AtomicU64,
    rejected_wait_timeout: AtomicU64,
    cancelled: AtomicU64,
    /// Exponentially weighted mean run time, in microseconds (for Retry-After).
    run_time_ewma_us: AtomicU64,
    wait_seconds: [Histogram; 2],
    run_seconds: Histogram,
    batch_size: Histogram,
}

struct Inner {
    runner: Arc<dyn BatchRunner>,
    semaphore: Arc<Semaphore>,
    settings: GateSettings,
    /// Requests admitted per priority (decoding, waiting or running): bounded by `max_waiters`.
    admitted: [AtomicUsize; 2],
    queue: Mutex<GateQueue<Waiter>>,
    stats: Stats,
}

/// The inference gate. Cheap to clone; all clones share one semaphore and queue.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

/// A request admitted to the gate: holds one of its priority's `max_waiters` places until dropped.
pub struct Ticket {
    gate: Gate,
    priority: Priority,
}

impl Ticket {
    /// The priority it was admitted at.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// Waits for a turn and embeds one preprocessed photo (`[3, H, W]`).
    pub async fn embed(self, tensor: Array3<f32>) -> Result<Embedding, GateError> {
        Ok(self.infer(tensor).await?.embedding)
    }

    /// Waits for a turn and runs the model on one preprocessed photo (`[3, H, W]`): every output.
    /// The place stays held, so one request's runs (a photo, then its subject) take one place.
    pub async fn infer(&self, tensor: Array3<f32>) -> Result<ModelOutput, GateError> {
        match self
            .gate
            .run_admitted(Job::Embed(tensor), self.priority)
            .await?
        {
            Output::Embedded(output) => Ok(output),
            Output::Detected(_) => Err(GateError::Run("a detection answered a model run".into())),
        }
    }

    /// Waits for a turn and runs the animal detector on one prepared input (`[3, S, S]`): the
    /// best animal box, in fractions of the photo. Same place, same permits as `infer`.
    pub async fn detect(&self, input: Array3<f32>) -> Result<Option<Detection>, GateError> {
        match self
            .gate
            .run_admitted(Job::Detect(input), self.priority)
            .await?
        {
            Output::Detected(found) => Ok(found),
            Output::Embedded(_) => Err(GateError::Run("a model run answered a detection".into())),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.inner.admitted[self.priority.index()].fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    /// A gate in front of `runner`, which should be able to run one batch per permit at once
    /// (the `Embedder` has one session per permit).
    pub fn new(runner: Arc<dyn BatchRunner>, settings: GateSettings) -> Self {
        let permits = settings.permits.max(1);
        Gate {
            inner: Arc::new(Inner {
                runner,
                semaphore: Arc::new(Semaphore::new(permits)),
                settings: GateSettings {
                    permits,
                    ..settings
                },
                admitted: [AtomicUsize::new(0), AtomicUsize::new(0)],
                queue: Mutex::new(GateQueue::default()),
                stats: Stats {
                    running: AtomicUsize::new(0),
                    max_running: AtomicUsize::new(0),
                    runs: AtomicU64::new(0),
                    images: AtomicU64::new(0),
                    detections: AtomicU64::new(0),
                    failed_runs: AtomicU64::new(0),
                    rejected_queue_full: AtomicU64::new(0),
                    rejected_wait_timeout: AtomicU64::new(0),
                    cancelled: AtomicU64::new(0),
                    run_time_ewma_us: AtomicU64::new(0),
                    wait_seconds: [
                        Histogram::new(histogram::SECONDS_BUCKETS),
                        Histogram::new(histogram::SECONDS_BUCKETS),
                    ],
                    run_seconds: Histogram::new(histogram::SECONDS_BUCKETS),
                    batch_size: Histogram::new(histogram::COUNT_BUCKETS),
                },
            }),
        }
    }

    /// The model behind the gate.
    pub fn model(&self) -> &Arc<dyn BatchRunner> {
        &self.inner.runner
    }

    /// The settings in force.
    pub fn settings(&self) -> &GateSettings {
        &self.inner.settings
    }

    /// Embeds one preprocessed photo (`[3, H, W]`), waiting for a turn at `priority`.
    pub async fn embed(
        &self,
        tensor: Array3<f32>,
        priority: Priority,
    ) -> Result<Embedding, GateError> {
        self.admit(priority)?.embed(tensor).await
    }

    /// Admits one request at `priority`, or refuses it at once when `max_waiters` requests of that
    /// priority are already admitted. Callers admit before decoding, so an overloaded service
    /// spends no CPU on photos it would turn away.
    pub fn admit(&self, priority: Priority) -> Result<Ticket, GateError> {
        let inner = &self.inner;
        let slot = &inner.admitted[priority.index()];
        let admitted = slot.fetch_add(1, Ordering::SeqCst);
        if admitted >= inner.settings.max_waiters[priority.index()] {
            slot.fetch_sub(1, Ordering::SeqCst);
            inner
                .stats
                .rejected_queue_full
                .fetch_add(1, Ordering::Relaxed);
            return Err(GateError::QueueFull {
                priority,
                waiting: admitted,
                retry_after: inner.retry_after(priority),
            });
        }
        Ok(Ticket {
            gate: self.clone(),
            priority,
        })
    }

    async fn run_admitted(&self, job: Job, priority: Priority) -> Result<Output, GateError> {
        let inner = &self.inner;
        let max_wait = inner.settings.max_wait[priority.index()];
        let deadline = tokio::time::Instant::now() + max_wait;
        let asked = Instant::now();
        // The run's time counts as inference, the rest of the wait as queueing (for the request's
        // timing; a background job records nowhere).
        let answered = |reply: Result<Reply, oneshot::error::RecvError>| {
            let (output, ran) = reply.unwrap_or(Err(GateError::Closed))?;
            timing::record(Stage::Inference, ran);
            timing::record(Stage::Queue, asked.elapsed().saturating_sub(ran));
            Ok(output)
        };
        let (id, mut reply) = self.enqueue(job, priority);
        // Leaves the queue if this future is dropped before its run (the caller went away).
        let _guard = LeaveQueueOnDrop { inner, id };
        loop {
            if !inner.is_queued(id) {
                // Taken into a batch that is running now: its reply comes within one run.
                return answered(reply.await);
            }
            tokio::select! {
                biased;
                result = &mut reply => return answered(result),
                permit = inner.semaphore.clone().acquire_owned() => {
                    let permit = permit.map_err(|_| GateError::Closed)?;
                    let batch = inner.take_batch();
                    if !batch.is_empty() {
                        self.run_batch(permit, batch).await;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if inner.remove(id).is_some() {
                        inner.stats.rejected_wait_timeout.fetch_add(1, Ordering::Relaxed);
                        return Err(GateError::WaitTimeout { waited: max_wait, retry_after: inner.retry_after(priority) });
                    }
                }
            }
        }
    }

    fn enqueue(&self, job: Job, priority: Priority) -> (QueueId, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        let id = self.inner.lock_queue().push(
            priority,
            Waiter {
                priority,
                job,
                enqueued: Instant::now(),
                reply: tx,
            },
        );
        (id, rx)
    }

    /// Runs a batch on a compute thread (crate::compute). The permit moves into the task: it is released when the
    /// run is over even if this future is dropped meanwhile, and the replies still go out.
    async fn run_batch(&self, permit: OwnedSemaphorePermit, batch: Vec<Waiter>) {
        let inner = Arc::clone(&self.inner);
        let task = crate::compute::spawn(move || {
            let _permit = permit;
            inner.run_now(batch);
        });
        // A panic inside is caught in `run_now`; a join error here can only be a runtime shutdown.
        let _ = task.await;
    }

    /// A copy of the gate's state and counters.
    pub fn snapshot(&self) -> GateSnapshot {
        let inner = &self.inner;
        let s = &inner.stats;
        let (waiting_interactive, waiting_background) = {
            let q = inner.lock_queue();
            (q.len(Priority::Interactive), q.len(Priority::Background))
        };
        GateSnapshot {
            permits: inner.settings.permits,
            permits_in_use: inner.settings.permits
                - inner
                    .semaphore
                    .available_permits()
                    .min(inner.settings.permits),
            running: s.running.load(Ordering::Relaxed),
            max_running_observed: s.max_running.load(Ordering::Relaxed),
            waiting_interactive,
            waiting_background,
            admitted_interactive: inner.admitted[0].load(Ordering::Relaxed),
            admitted_background: inner.admitted[1].load(Ordering::Relaxed),
            max_batch: inner.settings.max_batch,
            estimated_wait_seconds: inner.estimated_wait(waiting_interactive).as_secs_f64(),
            runs_total: s.runs.load(Ordering::Relaxed),
            images_total: s.images.load(Ordering::Relaxed),
            detections_total: s.detections.load(Ordering::Relaxed),
            failed_runs_total: s.failed_runs.load(Ordering::Relaxed),
            rejected_queue_full_total: s.rejected_queue_full.load(Ordering::Relaxed),
            rejected_wait_timeout_total: s.rejected_wait_timeout.load(Ordering::Relaxed),
            cancelled_total: s.cancelled.load(Ordering::Relaxed),
            wait_seconds_interactive: s.wait_seconds[0].snapshot(),
            wait_seconds_background: s.wait_seconds[1].snapshot(),
            run_seconds: s.run_seconds.snapshot(),
            batch_size: s.batch_size.snapshot(),
        }
    }
}

impl Inner {
    fn lock_queue(&self) -> MutexGuard<'_, GateQueue<Waiter>> {
        // The queue holds plain data and no code panics while holding it; a poisoned lock is usable.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_queued(&self, id: QueueId) -> bool {
        self.lock_queue().contains(id)
    }

    fn remove(&self, id: QueueId) -> Option<Waiter> {
        self.lock_queue().remove(id)
    }

    /// Up to `max_batch` waiters, interactive first, skipping callers that already left.
    fn take_batch(&self) -> Vec<Waiter> {
        let batch = self
            .lock_queue()
            .take_batch(self.settings.max_batch, |w| !w.reply.is_closed());
        self.stats
            .cancelled
            .fetch_add(batch.cancelled as u64, Ordering::Relaxed);
        batch.waiters
    }

    /// One run for `batch`, on the calling (blocking) thread: the model on the photos, then the
    /// detector on the detector inputs (one permit covers both); every waiter gets a reply.
    fn run_now(&self, batch: Vec<Waiter>) {
        for w in &batch {
            self.stats.wait_seconds[w.priority.index()].observe(w.enqueued.elapsed().as_secs_f64());
        }
        let running = self.stats.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.stats.max_running.fetch_max(running, Ordering::SeqCst);
        let started = Instant::now();
        let total = batch.len();
        let (embeds, detects): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|w| matches!(w.job, Job::Embed(_)));
        let embedded = self.run_part(&embeds, |views| {
            self.runner
                .run(views)
                .map(|outputs| outputs.into_iter().map(Output::Embedded).collect())
        });
        let detected = self.run_part(&detects, |views| {
            self.runner
                .detect(views)
                .map(|found| found.into_iter().map(Output::Detected).collect())
        });
        let elapsed = started.elapsed();
        self.stats.running.fetch_sub(1, Ordering::SeqCst);

        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .images
            .fetch_add(embeds.len() as u64, Ordering::Relaxed);
        self.stats
            .detections
            .fetch_add(detects.len() as u64, Ordering::Relaxed);
        self.stats.run_seconds.observe(elapsed.as_secs_f64());
        self.stats.batch_size.observe(total as f64);
        self.update_run_time(elapsed);
        self.reply(embeds, embedded, elapsed);
        self.reply(detects, detected, elapsed);
    }

    /// `run` on the inputs of `waiters` (none: no run), checked to give one output each.
    fn run_part(
        &self,
        waiters: &[Waiter],
        run: impl FnOnce(
            &[ndarray::ArrayView3<'_, f32>],
        ) -> Result<Vec<Output>, super::embedder::EmbedderError>,
    ) -> Result<Vec<Output>, String> {
        if waiters.is_empty() {
            return Ok(Vec::new());
        }
        let views: Vec<_> = waiters
            .iter()
            .map(|w| match &w.job {
                Job::Embed(input) | Job::Detect(input) => input.view(),
            })
            .collect();
        match std::panic::catch_unwind(AssertUnwindSafe(|| run(&views))) {
            Ok(Ok(outputs)) if outputs.len() == waiters.len() => Ok(outputs),
            Ok(Ok(outputs)) => Err(format!(
                "model returned {} outputs for {} photos",
                outputs.len(),
                waiters.len()
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("model run panicked".to_owned()),
        }
    }

    /// Sends each of `waiters` its output, or the run's error.
    fn reply(&self, waiters: Vec<Waiter>, outcome: Result<Vec<Output>, String>, ran: Duration) {
        match outcome {
            Ok(outputs) => {
                for (w, output) in waiters.into_iter().zip(outputs) {
                    let _ = w.reply.send(Ok((output, ran)));
                }
            }
            Err(message) => {
                self.stats.failed_runs.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %message, "model run failed");
                for w in waiters {
                    let _ = w.reply.send(Err(GateError::Run(message.clone())));
                }
            }
        }
    }

    fn update_run_time(&self, elapsed: Duration) {
        let sample = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let _ =
            self.stats
                .run_time_ewma_us
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    Some(if old == 0 {
                        sample
                    } else {
                        (old * 7 + sample) / 8
                    })
                });
    }

    /// Time until `backlog` queued requests (and the runs in progress) are through.
    fn estimated_wait(&self, backlog: usize) -> Duration {
        let run = Duration::from_micros(self.stats.run_time_ewma_us.load(Ordering::Relaxed));
        let runs_ahead =
            backlog.div_ceil(self.settings.max_batch) + self.stats.running.load(Ordering::Relaxed);
        run * u32::try_from(runs_ahead).unwrap_or(u32::MAX)
            / u32::try_from(self.settings.permits).unwrap_or(1)
    }

    /// `Retry-After` for a rejected request: the current backlog ahead of it, at least one second.
    fn retry_after(&self, priority: Priority) -> Duration {
        let backlog = self.lock_queue().ahead_of(priority);
        let secs = self.estimated_wait(backlog).as_secs_f64().ceil().max(1.0);
        Duration::from_secs(secs as u64)
    }
}

/// Removes a waiter from its queue when its `embed` future is dropped before the run.
struct LeaveQueueOnDrop<'a> {
    inner: &'a Inner,
    id: QueueId,
}

impl Drop for LeaveQueueOnDrop<'_> {
    fn drop(&mut self) {
        if self.inner.remove(self.id).is_some() {
            self.inner.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
