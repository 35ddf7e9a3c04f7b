//! Durable background work: workers claim jobs from PostgreSQL (`FOR UPDATE SKIP LOCKED` with a
//! lease they renew while they work), are woken at once by LISTEN/NOTIFY and poll as a fallback,
//! retry failures with exponential backoff and jitter up to the job's attempts, and on shutdown
//! stop claiming, finish what runs within a grace period and hand the rest back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use serde::Serialize;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::inference::Priority;
use crate::photo_store::PhotoStore;
use crate::pipeline::{Pipeline, PipelineError};
use crate::search::{Matcher, SearchError};
use crate::store::jobs::JOBS_CHANNEL;
use crate::store::{ClaimedJob, Store};
use crate::telemetry::prometheus::Exposition;

mod cleaning;

pub use crate::domain::job::{
    AfterFailure, DeleteObjectsJob, EmbedJob, JobPayload, JobRecord, JobStatus, MatchJob, PurgeJob,
    StripMetadataJob, WebhookJob,
};

/// Worker settings.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Workers in this process.
    pub workers: usize,
    /// Lease of a claimed job.
    pub lease: Duration,
    /// Poll interval when no notification comes.
    pub poll: Duration,
    /// First retry delay.
    pub backoff: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl JobSettings {
    /// Delay before trying again a job deferred `deferrals` times by an outage: like
    /// [`JobSettings::retry_delay`], capped at [`OUTAGE_RETRY_MAX`] so that work resumes soon
    /// after the dependency returns.
    pub fn outage_delay(&self, deferrals: i32) -> Duration {
        self.retry_delay(deferrals).min(OUTAGE_RETRY_MAX)
    }

    /// Delay before attempt `attempt + 1`: doubling from `backoff`, capped, times a jitter in [0.5, 1.5).
    pub fn retry_delay(&self, attempt: i32) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        let base = self
            .backoff
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        base.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }
}

/// What the workers need to do their jobs.
#[derive(Clone)]
pub struct JobContext {
    /// The database.
    pub store: Store,
    /// The photo store.
    pub photo_store: PhotoStore,
    /// Photos → embeddings (jobs run at background priority).
    pub pipeline: Pipeline,
    /// Matches between reports (for the `match` jobs).
    pub matcher: Matcher,
    /// The current model's id.
    pub model_id: i32,
    /// Webhook deliveries (the `webhook` jobs).
    pub webhooks: crate::webhooks::Webhooks,
}

/// Counters of this process's workers.
#[derive(Debug, Default)]
pub struct JobStats {
    done: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    deferred: AtomicU64,
    metadata_cleaned: AtomicU64,
    metadata_bytes_removed: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatsSnapshot {
    /// Workers running in this process.
    pub workers: usize,
    /// Jobs this process finished.
    pub done_total: u64,
    /// Failed attempts that will be retried.
    pub retried_total: u64,
    /// Jobs given up after their last attempt.
    pub failed_total: u64,
    /// Jobs put back because the model was busy.
    pub deferred_total: u64,
    /// Photos stored before uploads were cleaned whose metadata the workers removed.
    pub metadata_cleaned_total: u64,
    /// Bytes of metadata those removals took out.
    pub metadata_bytes_removed_total: u64,
}

impl JobStatsSnapshot {
    /// Prometheus lines: this process's workers and their jobs' outcomes.
    pub fn render(&self, out: &mut Exposition) {
        out.single(
            "lookalike_job_workers",
            "gauge",
            "Job workers in this process.",
            self.workers as f64,
        );
        out.help(
            "lookalike_job_outcomes_total",
            "counter",
            "Job attempts of this process's workers, by outcome.",
        );
        for (outcome, n) in [
            ("done", self.done_total),
            ("retried", self.retried_total),
            ("failed", self.failed_total),
            ("deferred", self.deferred_total),
        ] {
            out.sample(
                "lookalike_job_outcomes_total",
                &[("outcome", outcome)],
                n as f64,
            );
        }
        out.single(
            "lookalike_metadata_cleaned_photos_total",
            "counter",
            "Stored photos whose metadata this process's workers removed (photos stored before uploads were cleaned).",
            self.metadata_cleaned_total as f64,
        );
        out.single(
            "lookalike_metadata_removed_bytes_total",
            "counter",
            "Bytes of metadata those removals took out.",
            self.metadata_bytes_removed_total as f64,
        );
    }
}

/// This process's workers' counters, and how many workers there are: what status and metrics
/// read, also after the workers stopped.
#[derive(Debug, Clone)]
pub struct WorkerStats {
    /// The counters the workers update.
    pub counters: Arc<JobStats>,
    /// Workers started.
    pub workers: usize,
}

impl WorkerStats {
    /// The counters now.
    pub fn snapshot(&self) -> JobStatsSnapshot {
        snapshot(&self.counters, self.workers)
    }
}

/// Why one attempt did not finish the job.
#[derive(Debug)]
enum AttemptError {
    /// The service is busy (the model's gate is full): try again after this, uncounted.
    Busy(Duration),
    /// A dependency (database, photo store, model) is away: try again with a backoff that grows
    /// while it stays away, uncounted. The job's error says what is awaited.
    Unavailable(String),
    /// The attempt failed: counted, and given up after the job's attempts.
    Failed(String),
    /// The job's input is bad (a photo that does not decode): failed for good at once, since
    /// every attempt would fail the same way.
    Rejected(String),
}

/// A job's blob hash from its hex; a bad one fails the attempt.
fn blob_hash(hex: &str) -> Result<Vec<u8>, AttemptError> {
    hex::decode(hex).map_err(|e| AttemptError::Failed(format!("bad sha256: {e}")))
}

/// The longest wait between tries of a job deferred by an outage.
const OUTAGE_RETRY_MAX: Duration = Duration::from_secs(30);

impl AttemptError {
    /// A database error: transient ones defer the job, others count as a failed attempt.
    fn of_store(e: crate::store::StoreError) -> Self {
        if e.is_transient() {
            AttemptError::Unavailable(e.to_string())
        } else {
            AttemptError::Failed(e.to_string())
        }
    }

    /// A photo store error: its failures defer the job; an object that is absent fails it.
    fn of_photo_store(e: crate::photo_store::PhotoStoreError) -> Self {
        if e.is_transient() {
            AttemptError::Unavailable(e.to_string())
        } else {
            AttemptError::Failed(e.to_string())
        }
    }
}

/// The running workers of this process.
pub struct Workers {
    shutdown: watch::Sender<bool>,
    tasks: Vec<(String, JoinHandle<()>)>,
    listener: JoinHandle<()>,
    store: Store,
    stats: Arc<JobStats>,
}

impl Workers {
    /// Starts `settings.workers` workers and the notification listener.
    pub fn start(context: JobContext, settings: JobSettings) -> Self {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let stats = Arc::new(JobStats::default());
        let listener = tokio::spawn(listen(
            context.store.clone(),
            wake.clone(),
            shutdown_rx.clone(),
        ));
        let process = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let context = Arc::new(context);
        let tasks = (0..settings.workers)
            .map(|n| {
                let id = format!("{process}-w{n}");
                let worker = Worker {
                    id: id.clone(),
                    context: context.clone(),
                    settings: settings.clone(),
                    wake: wake.clone(),
                    shutdown: shutdown_rx.clone(),
                    stats: stats.clone(),
                };
                (id, tokio::spawn(worker.run()))
            })
            .collect();
        Workers {
            shutdown,
            tasks,
            listener,
            store: context.store.clone(),
            stats,
        }
    }

    /// The counters.
    pub fn stats(&self) -> JobStatsSnapshot {
        snapshot(&self.stats, self.tasks.len())
    }

    /// A handle on the counters that outlives `stop`.
    pub fn stats_handle(&self) -> WorkerStats {
        WorkerStats {
            counters: self.stats.clone(),
            workers: self.tasks.len(),
        }
    }

    /// Stops claiming, lets running jobs finish within `grace`, then hands back what is left.
    pub async fn stop(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        self.listener.abort();
        // The hand-back's time comes out of the grace period, not on top of it.
        let deadline = tokio::time::Instant::now() + grace.saturating_sub(HAND_BACK_TIME);
        let mut unfinished = Vec::new();
        for (id, mut task) in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                unfinished.push(id);
            }
        }
        // Handing back is a courtesy (the leases expire anyway), so it gets a short, fixed time:
        // with the database gone it would otherwise wait for the pool's and the statements'
        // timeouts, worker after worker.
        let hand_back = async {
            for id in &unfinished {
                match self.store.jobs().release(id).await {
                    Ok(n) if n > 0 => {
                        tracing::warn!(worker = %id, jobs = n, "grace period over: job handed back")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(worker = %id, error = %e, "could not hand back jobs; their lease will expire")
                    }
                }
            }
        };
        if tokio::time::timeout(HAND_BACK_TIME, hand_back)
            .await
            .is_err()
        {
            tracing::warn!("could not hand back every job in time; their leases will expire");
        }
        tracing::info!("job workers stopped");
    }
}

/// Time allowed for handing back the jobs of workers stopped at the grace deadline.
const HAND_BACK_TIME: Duration = Duration::from_secs(1);

/// A copy of job counters.
pub fn snapshot(stats: &JobStats, workers: usize) -> JobStatsSnapshot {
    JobStatsSnapshot {
        workers,
        done_total: stats.done.load(Ordering::Relaxed),
        retried_total: stats.retried.load(Ordering::Relaxed),
        failed_total: stats.failed.load(Ordering::Relaxed),
        deferred_total: stats.deferred.load(Ordering::Relaxed),
        metadata_cleaned_total: stats.metadata_cleaned.load(Ordering::Relaxed),
        metadata_bytes_removed_total: stats.metadata_bytes_removed.load(Ordering::Relaxed),
    }
}

/// Wakes the workers whenever a job is enqueued anywhere; reconnects after errors.
async fn listen(store: Store, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let session = async {
            let mut listener = PgListener::connect_with(store.pool()).await?;
            listener.listen(JOBS_CHANNEL).await?;
            loop {
                listener.recv().await?;
                wake.notify_waiters();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            result = session => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "job notifications lost; reconnecting (workers poll meanwhile)");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct Worker {
    id: String,
    context: Arc<JobContext>,
    settings: JobSettings,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<JobStats>,
}

impl Worker {
    async fn run(mut self) {
        let mut db_backoff = Duration::from_millis(100);
        while !*self.shutdown.borrow() {
            // Registered before claiming, so a notification that lands meanwhile is not missed.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self
                .context
                .store
                .jobs()
                .claim(&self.id, self.settings.lease, self.context.model_id)
                .await
            {
                Ok(Some(job)) => {
                    db_backoff = Duration::from_millis(100);
                    self.process(job).await;
                }
                Ok(None) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep(self.settings.poll) => {}
                        _ = self.shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %self.id, error = %e, "cannot claim jobs; backing off");
                    tokio::select! {
                        () = tokio::time::sleep(db_backoff) => {}
                        _ = self.shutdown.changed() => {}
                    }
                    db_backoff = (db_backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Runs one job, renewing its lease meanwhile, and records the outcome.
    async fn process(&self, job: ClaimedJob) {
        let store = &self.context.store;
        // The renewals run beside the attempt, never instead of it: a renewal waits for the job's
        // row while the attempt's own transaction (which marks the job done) holds it, so the
        // attempt must keep being polled meanwhile or both wait until the statement timeout.
        let renewals = async {
            let mut renew = tokio::time::interval(self.settings.lease / 3);
            renew.tick().await;
            loop {
                renew.tick().await;
                if let Ok(false) = store
                    .jobs()
                    .renew_lease(job.id, &self.id, self.settings.lease)
                    .await
                {
                    tracing::warn!(job = job.id, "lease lost: another worker has this job");
                }
            }
        };
        let outcome = tokio::select! {
            biased;
            outcome = self.attempt(&job) => outcome,
            () = renewals => unreachable!("the renewals never end"),
        };
        let recorded = match outcome {
            Ok(()) => {
                self.stats.done.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(AttemptError::Busy(after)) => {
                self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                store.jobs().defer(job.id, &self.id, after, None).await
            }
            Err(AttemptError::Unavailable(error)) => {
                self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                let delay = self.settings.outage_delay(job.deferrals + 1);
                tracing::info!(job = job.id, %error, retry_in_ms = delay.as_millis() as u64, "job deferred: a dependency is away");
                store
                    .jobs()
                    .defer(job.id, &self.id, delay, Some(&error))
                    .await
            }
            Err(AttemptError::Failed(error)) => {
                self.record_failure(&job, &error, AfterFailure::Retry).await
            }
            Err(AttemptError::Rejected(error)) => {
                self.record_failure(&job, &error, AfterFailure::GiveUp)
                    .await
            }
        };
        if let Err(e) = recorded {
            // The lease expires and the job is claimed again: nothing is lost.
            tracing::warn!(job = job.id, error = %e, "could not record the job's outcome");
        }
    }

    /// Records a failed attempt: retried later, or failed for good (at once on `GiveUp`).
    async fn record_failure(
        &self,
        job: &ClaimedJob,
        error: &str,
        after: AfterFailure,
    ) -> Result<(), crate::store::StoreError> {
        let delay = self.settings.retry_delay(job.attempt);
        let now = self
            .context
            .store
            .jobs()
            .fail_attempt(job.id, &self.id, error, delay, after)
            .await?;
        // `None`: the job was taken over meanwhile; counted as a retry, as it runs again.
        if now == Some(JobStatus::Failed) {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job = job.id, attempts = job.attempt, %error, "job failed for good");
        } else {
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::info!(job = job.id, attempt = job.attempt, %error, retry_in_ms = delay.as_millis() as u64, "job attempt failed");
        }
        Ok(())
    }

    /// Marks the job done (its work was written apart from the job's row).
    async fn finish(&self, job: &ClaimedJob) -> Result<(), AttemptError> {
        self.context
            .store
            .jobs()
            .finish(job.id, &self.id)
            .await
            .map(drop)
            .map_err(AttemptError::of_store)
    }

    async fn attempt(&self, job: &ClaimedJob) -> Result<(), AttemptError> {
        match &job.payload {
            Ok(JobPayload::Embed(embed)) => self.embed(job, embed).await,
            Ok(JobPayload::Match(work)) => self.refresh_matches(job, work).await,
            Ok(JobPayload::Purge(purge)) => self.purge(job, purge).await,
            Ok(JobPayload::DeleteObjects(delete)) => self.delete_objects(job, delete).await,
            Ok(JobPayload::StripMetadata(work)) => self.strip_metadata(job, work).await,
            Ok(JobPayload::Webhook(work)) => self.deliver_webhook(job, work).await,
            Err(unreadable) => Err(AttemptError::Failed(unreadable.clone())),
        }
    }

    /// One attempt to deliver a webhook, logged; done when the receiver took it, a counted
    /// failure (retried with backoff) otherwise. A target no longer configured drops it.
    async fn deliver_webhook(
        &self,
        job: &ClaimedJob,
        work: &WebhookJob,
    ) -> Result<(), AttemptError> {
        let ctx = &self.context;
        let target = ctx
            .store
            .webhooks()
            .target(&work.target)
            .await
            .map_err(AttemptError::of_store)?;
        if let Some(target) = target {
            let delivery = ctx
                .webhooks
                .send(&target, work.event_id, &work.event, &work.body, job.attempt)
                .await;
            if let Err(e) = ctx.store.webhooks().record_delivery(&delivery).await {
                tracing::warn!(job = job.id, error = %e, "could not log a webhook delivery");
            }
            if let Some(error) = delivery.error {
                return Err(AttemptError::Failed(error));
            }
        } else {
            tracing::info!(job = job.id, target = %work.target, "webhook target no longer configured; delivery dropped");
        }
        self.finish(job).await
    }

    /// Deletes a blob no photo uses any more (its row, embeddings and jobs), queueing the
    /// deletion of its objects, together with the job's completion.
    async fn purge(&self, job: &ClaimedJob, work: &PurgeJob) -> Result<(), AttemptError> {
        let ctx = &self.context;
        let sha256 = blob_hash(&work.sha256)?;
        let attempts = u32::try_from(job.max_attempts).unwrap_or(5);
        match ctx
            .store
            .blobs()
            .purge(job.id, &self.id, &sha256, attempts)
            .await
            .map_err(AttemptError::of_store)?
        {
            Some(outcome) => tracing::debug!(job = job.id, ?outcome, "purge"),
            None => tracing::warn!(job = job.id, "purge job was taken over; result dropped"),
        }
        Ok(())
    }

    /// Deletes objects from the photo store (absent ones count as deleted), then marks the job
    /// done: a crash midway deletes the rest on the next attempt.
    async fn delete_objects(
        &self,
        job: &ClaimedJob,
        work: &DeleteObjectsJob,
    ) -> Result<(), AttemptError> {
        let ctx = &self.context;
        for key in &work.keys {
            ctx.photo_store
                .delete(key)
                .await
                .map_err(AttemptError::of_photo_store)?;
        }
        self.finish(job).await
    }

    /// Computes and stores a report's possible matches, then marks the job done.
    async fn refresh_matches(&self, job: &ClaimedJob, work: &MatchJob) -> Result<(), AttemptError> {
        let ctx = &self.context;
        if work.model_id != ctx.model_id {
            // Claims are by model, so this is another process's job: put it back untouched.
            return Err(AttemptError::Busy(OUTAGE_RETRY_MAX));
        }
        match ctx.matcher.refresh(work.report_id).await {
            // The report was deleted meanwhile: nothing left to match.
            Ok(_) | Err(SearchError::NotFound) => {}
            Err(SearchError::Store(e)) => return Err(AttemptError::of_store(e)),
            Err(e) => return Err(AttemptError::Failed(e.to_string())),
        }
        self.finish(job).await
    }

    /// Embeds a stored photo and saves the vector, together with the job's completion.
    async fn embed(&self, job: &ClaimedJob, work: &EmbedJob) -> Result<(), AttemptError> {
        let ctx = &self.context;
        let failed = |m: String| AttemptError::Failed(m);
        let sha256 = blob_hash(&work.sha256)?;
        if work.model_id != ctx.model_id {
            // Claims are by model, so this is another process's job: put it back untouched.
            return Err(AttemptError::Busy(OUTAGE_RETRY_MAX));
        }
        let Some(keys) = ctx
            .store
            .blobs()
            .keys(&sha256)
            .await
            .map_err(AttemptError::of_store)?
        else {
            // The photo was deleted (and its blob purged) since: nothing to embed.
            return self.finish(job).await;
        };
        let bytes = ctx
            .photo_store
            .get(&keys.photo)
            .await
            .map_err(AttemptError::of_photo_store)?;
        // The upload checked the header only; this is the photo's one decode, for the model
        // and the thumbnail both. A photo that does not decode fails here, with the reason.
        let (embedded, thumbnail) = ctx
            .pipeline
            .embed_with_thumbnail(bytes, Priority::Background)
            .await
            .map_err(|e| match e.retry_after() {
                Some(after) if e.is_transient() => AttemptError::Busy(after),
                None if e.is_transient() => AttemptError::Unavailable(e.to_string()),
                _ if matches!(e, PipelineError::Imaging(_)) => {
                    AttemptError::Rejected(e.to_string())
                }
                _ => failed(e.to_string()),
            })?;
        // Before the embedding: a photo shown ready has its thumbnail. (Rewritten when another
        // model embeds the photo: the same bytes, and cheaper than asking the store first.)
        ctx.photo_store
            .put(&keys.thumbnail, Bytes::from(thumbnail))
            .await
            .map_err(AttemptError::of_photo_store)?;
        let saved = ctx
            .store
            .photos()
            .save_labelled_embedding(
                job.id,
                &self.id,
                &sha256,
                ctx.model_id,
                embedded.embedding,
                embedded.labels.as_ref(),
                job.max_attempts,
            )
            .await
            .map_err(AttemptError::of_store)?;
        // While the store reindexes for a new way of embedding, the previous model's vectors
        // answer searches: a photo embedded now joins them too (its whole-photo vector, from
        // the same run), so a new report is found before the reindex ends.
        let answering = ctx.matcher.answering().await;
        if saved
            && answering.whole_photo
            && let Some(whole) = embedded.whole
        {
            ctx.store
                .photos()
                .save_previous_embedding(&sha256, answering.model_id, whole)
                .await
                .map_err(AttemptError::of_store)?;
        }
        if !saved {
            tracing::warn!(
                job = job.id,
                "job was taken over after its lease expired, or its photo deleted; result dropped"
            );
            // A photo deleted (its blob purged) while this ran may have had its objects deleted
            // before the thumbnail above was written: that thumbnail is nobody's. Keys are unique
            // per upload, so a new upload of the same bytes is not touched.
            let current = ctx
                .store
                .blobs()
                .keys(&sha256)
                .await
                .map_err(AttemptError::of_store)?;
            if current.as_ref() != Some(&keys)
                && let Err(e) = ctx.photo_store.delete(&keys.thumbnail).await
            {
                tracing::warn!(key = %keys.thumbnail, error = %e, "could not delete an orphaned thumbnail; the sweep will");
            }
        }
        Ok(())
    }
}
