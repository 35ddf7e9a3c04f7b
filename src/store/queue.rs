//! Putting work on the durable job queue inside the caller's transaction, and waking the
//! workers when it commits. Below the queue's other SQL (jobs.rs) and the events (events.rs),
//! which both queue work.

use sqlx::PgConnection;

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
    let id = sqlx::query_scalar(
        "INSERT INTO jobs (kind, dedupe_key, payload, max_attempts, model_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (dedupe_key) DO UPDATE
             SET status = 'queued', payload = EXCLUDED.payload, attempts = 0, deferrals = 0,
                 max_attempts = EXCLUDED.max_attempts, run_after = now(), locked_until = NULL,
                 locked_by = NULL, last_error = NULL, finished_at = NULL, updated_at = now()
             WHERE jobs.status IN ('done', 'failed')
         RETURNING id",
    )
    .bind(job.kind())
    .bind(job.dedupe_key())
    .bind(job.to_json())
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .bind(job.model_id())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id)
}

/// Wakes listening workers when the caller's transaction commits.
pub async fn notify(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(JOBS_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
