//! Putting work on the durable job queue inside the caller's transaction, and waking the
//! workers when it commits. Below the queue's other SQL (jobs.rs) and the events (events.rs),
//! which both queue work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{PgConnection, PgPool};

use super::StoreError;
use crate::domain::job::JobPayload;

/// The channel `NOTIFY`'d when jobs are enqueued.
pub const JOBS_CHANNEL: &str = "lookalike_jobs";

/// Enqueues `job` inside the caller's transaction. The same work (its dedupe key) already queued
/// or running is left as it is; finished (done or failed) it is queued again with fresh attempts,
/// since whoever enqueues it needs it done now (a photo whose job failed, uploaded again). Returns
/// the id of the job queued, if one was.
pub async fn enqueue(
    conn: &mut PgConnection,
    job: &JobPayload,
    max_attempts: u32,
) -> Result<Option<i64>, StoreError> {
    let id = sqlx::query_scalar(&format!(
        "INSERT INTO jobs (kind, dedupe_key, payload, max_attempts, model_id) VALUES ($1, $2, $3, $4, $5)
         {ON_TAKEN_KEY}
         RETURNING id"
    ))
    .bind(job.kind())
    .bind(job.dedupe_key())
    .bind(job.to_json())
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .bind(job.model_id())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id)
}

/// What [`enqueue`] does when the job's dedupe key is taken (for statements that queue jobs
/// themselves): the same work queued or running is left as it is, finished it is queued again.
pub(super) const ON_TAKEN_KEY: &str = "ON CONFLICT (dedupe_key) DO UPDATE
             SET status = 'queued', payload = EXCLUDED.payload, attempts = 0, deferrals = 0,
                 max_attempts = EXCLUDED.max_attempts, run_after = now(), locked_until = NULL,
                 locked_by = NULL, last_error = NULL, finished_at = NULL, updated_at = now()
             WHERE jobs.status IN ('done', 'failed')";

/// The dedupe keys and payloads (JSON text) of the embedding jobs with `model_id` of `hashes`,
/// in that order, for a statement that queues them.
pub(super) fn embed_jobs(hashes: &[[u8; 32]], model_id: i32) -> (Vec<String>, Vec<String>) {
    hashes
        .iter()
        .map(|h| {
            let job = JobPayload::embed(h, model_id);
            (job.dedupe_key(), job.to_json().to_string())
        })
        .unzip()
}

/// Wakes listening workers when the caller's transaction commits.
pub async fn notify(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(JOBS_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Wakes the job workers after a commit, off the committer's path (its answer does not wait for
/// a connection and a round trip). Commits made while a wake-up waits for its connection share
/// it: at most one waits at a time.
#[derive(Debug, Clone, Default)]
pub struct Wake {
    pending: Arc<AtomicBool>,
}

impl Wake {
    /// Notifies the workers of `pool`'s database soon, after what the caller committed.
    pub fn after_commit(&self, pool: &PgPool) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let pending = self.pending.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            let conn = pool.acquire().await;
            // Cleared once connected, before the NOTIFY: a commit from now on sends its own.
            pending.store(false, Ordering::Release);
            let woken = match conn {
                Ok(mut conn) => notify(&mut conn).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = woken {
                tracing::warn!(error = %e, "the job workers were not woken; they find the jobs at their next poll");
            }
        });
    }
}
