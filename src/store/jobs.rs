//! SQL of the durable job queue. Claiming uses `FOR UPDATE SKIP LOCKED` and a lease
//! (`locked_until`): a job whose worker died is claimed again once its lease has expired.

use std::time::Duration;

use serde::Serialize;
use sqlx::{PgConnection, Row};

pub use super::queue::{JOBS_CHANNEL, enqueue, notify};
use super::{Jobs, StoreError};
use crate::domain::job::{AfterFailure, JobPayload, JobRecord, JobStatus};
use crate::telemetry::prometheus::Exposition;

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// Job id.
    pub id: i64,
    /// What to do, read from the job's `kind` and `payload`; why not when they cannot be read
    /// (the attempt then fails with that error).
    pub payload: Result<JobPayload, String>,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Times it was put back for a transient failure, uncounted.
    pub deferrals: i32,
}

/// Unfinished and failed jobs, and the age of the oldest one waiting. Done jobs are not counted:
/// they are pruned after their retention, and counting them would read them all.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobCounts {
    /// Waiting to run (including retries waiting for their backoff).
    pub queued: i64,
    /// Claimed by a worker.
    pub running: i64,
    /// Given up.
    pub failed: i64,
    /// Seconds the oldest queued job has waited.
    pub oldest_queued_age_seconds: f64,
}

/// Counts of unfinished and failed jobs, and the oldest queued job's age. Every subquery's
/// condition implies a partial index's (`jobs_claim_idx`, `jobs_failed_idx`), so it reads those
/// indexes only, never the done jobs.
pub const JOB_COUNTS_SQL: &str = "SELECT
    (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running') AND status = 'queued') AS queued,
    (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running') AND status = 'running') AS running,
    (SELECT count(*) FROM jobs WHERE status = 'failed') AS failed,
    coalesce((SELECT extract(epoch FROM now() - min(created_at))
              FROM jobs WHERE status IN ('queued', 'running') AND status = 'queued'), 0)::float8 AS age";

impl JobCounts {
    /// Prometheus lines of the job queue (all processes).
    pub fn render(&self, out: &mut Exposition) {
        out.help(
            "lookalike_jobs",
            "gauge",
            "Unfinished and failed jobs, by state (all processes; done jobs are pruned).",
        );
        for (state, n) in [
            ("queued", self.queued),
            ("running", self.running),
            ("failed", self.failed),
        ] {
            out.sample("lookalike_jobs", &[("state", state)], n as f64);
        }
        out.single(
            "lookalike_jobs_oldest_queued_age_seconds",
            "gauge",
            "Age of the oldest queued job.",
            self.oldest_queued_age_seconds,
        );
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Jobs<'_> {
    /// Claims the next runnable job (queued and due, or running with an expired lease) of model
    /// `model_id` or of no model: processes running other models leave each other's jobs alone.
    pub async fn claim(
        self,
        worker: &str,
        lease: Duration,
        model_id: i32,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        // A job whose worker died on its last allowed attempt is given up rather than run again.
        sqlx::query(
            "UPDATE jobs SET status = 'failed', finished_at = now(), updated_at = now(), locked_until = NULL,
                 last_error = coalesce(last_error || '; ', '') || 'the worker stopped during the last attempt'
             WHERE status = 'running' AND locked_until < now() AND attempts >= max_attempts",
        )
        .execute(self.pool)
        .await?;
        let row = sqlx::query(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,
                 locked_until = now() + make_interval(secs => $2), updated_at = now()
             WHERE id = (
                 SELECT id FROM jobs
                 WHERE ((status = 'queued' AND run_after <= now())
                        OR (status = 'running' AND locked_until < now()))
                   AND (model_id IS NULL OR model_id = $3)
                 ORDER BY run_after, id
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1)
             RETURNING id, kind, payload, attempts, max_attempts, deferrals",
        )
        .bind(worker)
        .bind(secs(lease))
        .bind(model_id)
        .fetch_optional(self.pool)
        .await?;
        row.map(|r| {
            let kind: String = r.try_get("kind")?;
            let payload: serde_json::Value = r.try_get("payload")?;
            Ok(ClaimedJob {
                id: r.try_get("id")?,
                payload: JobPayload::parse(&kind, &payload),
                attempt: r.try_get("attempts")?,
                max_attempts: r.try_get("max_attempts")?,
                deferrals: r.try_get("deferrals")?,
            })
        })
        .transpose()
    }

    /// Extends a running job's lease; false when the job is no longer this worker's.
    pub async fn renew_lease(
        self,
        id: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET locked_until = now() + make_interval(secs => $3), updated_at = now()
             WHERE id = $1 AND locked_by = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(secs(lease))
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a job done inside the caller's transaction (with the job's result); false when the
    /// job was no longer this worker's (its lease expired and another worker took it).
    pub async fn finish_in(
        conn: &mut PgConnection,
        id: i64,
        worker: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'done', finished_at = now(), updated_at = now(), locked_until = NULL
             WHERE id = $1 AND locked_by = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(worker)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a job done (for jobs whose result is written separately); false when the job was no
    /// longer this worker's.
    pub async fn finish(self, id: i64, worker: &str) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Jobs::finish_in(&mut conn, id, worker).await
    }

    /// Records a failed attempt: queued again after `delay` on [`AfterFailure::Retry`] while
    /// attempts remain, failed for good otherwise. Returns the job's status now (`Queued` or
    /// `Failed`); `None` when the job was no longer this worker's (nothing recorded).
    pub async fn fail_attempt(
        self,
        id: i64,
        worker: &str,
        error: &str,
        delay: Duration,
        after: AfterFailure,
    ) -> Result<Option<JobStatus>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let failed: Option<(bool, String, serde_json::Value)> = sqlx::query_as(
            "UPDATE jobs SET
                 status = CASE WHEN $5 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                 finished_at = CASE WHEN $5 OR attempts >= max_attempts THEN now() END,
                 run_after = now() + make_interval(secs => $4),
                 last_error = $3, locked_until = NULL, updated_at = now()
             WHERE id = $1 AND locked_by = $2 AND status = 'running'
             RETURNING status = 'failed', kind, payload",
        )
        .bind(id)
        .bind(worker)
        .bind(error)
        .bind(secs(delay))
        .bind(after == AfterFailure::GiveUp)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((failed, kind, payload)) = failed else {
            return Ok(None);
        };
        // A photo given up on: its reports' state changed (an event, with the failure).
        if failed
            && let Ok(JobPayload::Embed(embed)) = JobPayload::parse(&kind, &payload)
            && let Ok(sha256) = hex::decode(&embed.sha256)
        {
            super::events::publish_blob_status(&mut tx, &sha256, embed.model_id).await?;
        }
        tx.commit().await?;
        Ok(Some(if failed {
            JobStatus::Failed
        } else {
            JobStatus::Queued
        }))
    }

    /// Puts a job back without counting the attempt (the service was busy or a dependency away,
    /// not the job wrong). An `outage` (its error) is recorded and counted among the job's
    /// deferrals, which lengthen its next delay.
    pub async fn defer(
        self,
        id: i64,
        worker: &str,
        delay: Duration,
        outage: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, locked_until = NULL,
                 deferrals = deferrals + $4, last_error = coalesce($5, last_error),
                 run_after = now() + make_interval(secs => $3), updated_at = now()
             WHERE id = $1 AND locked_by = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(secs(delay))
        .bind(i32::from(outage.is_some()))
        .bind(outage)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Hands back every job a stopping worker still holds, uncounted, for others to run.
    pub async fn release(self, worker: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, locked_until = NULL, updated_at = now()
             WHERE locked_by = $1 AND status = 'running'",
        )
        .bind(worker)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// One job, if it works for a report of `tenant`.
    pub async fn get(self, id: i64, tenant: Option<&str>) -> Result<Option<JobRecord>, StoreError> {
        // A job is shown to the tenant of a report it works for: an embedding job to a tenant
        // with a report holding that photo, a match job to the tenant of that report.
        let row = sqlx::query(
            "SELECT id, kind, payload, status, attempts, max_attempts, run_after, locked_until, locked_by,
                    last_error, created_at, finished_at
             FROM jobs j WHERE j.id = $1 AND (
                 (j.kind = 'embed' AND EXISTS (
                     SELECT 1 FROM photos p JOIN reports r ON r.id = p.report_id
                     WHERE p.sha256 = decode(j.payload->>'sha256', 'hex')
                       AND r.tenant_id IS NOT DISTINCT FROM $2))
                 OR (j.kind = 'match' AND EXISTS (
                     SELECT 1 FROM reports r
                     WHERE r.id = (j.payload->>'report_id')::uuid
                       AND r.tenant_id IS NOT DISTINCT FROM $2)))",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.pool)
        .await?;
        row.map(|r| {
            Ok(JobRecord {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                payload: r.try_get("payload")?,
                status: {
                    let text: String = r.try_get("status")?;
                    JobStatus::parse(&text).ok_or_else(|| {
                        StoreError::Query(sqlx::Error::Decode(
                            format!("unknown job status `{text}`").into(),
                        ))
                    })?
                },
                attempts: r.try_get("attempts")?,
                max_attempts: r.try_get("max_attempts")?,
                run_after: r.try_get("run_after")?,
                locked_until: r.try_get("locked_until")?,
                locked_by: r.try_get("locked_by")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                finished_at: r.try_get("finished_at")?,
            })
        })
        .transpose()
    }

    /// Jobs by state. Reads only the partial indexes of unfinished and failed jobs, so it costs
    /// the same with a million done jobs as with none.
    pub async fn counts(self) -> Result<JobCounts, StoreError> {
        let row = sqlx::query(JOB_COUNTS_SQL).fetch_one(self.pool).await?;
        Ok(JobCounts {
            queued: row.try_get("queued")?,
            running: row.try_get("running")?,
            failed: row.try_get("failed")?,
            oldest_queued_age_seconds: row.try_get("age")?,
        })
    }

    /// Deletes up to `batch` done jobs that finished more than `retention` ago; how many it deleted.
    pub async fn prune_done(
        self,
        retention: std::time::Duration,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id IN (
                 SELECT id FROM jobs
                 WHERE status = 'done' AND finished_at < now() - make_interval(secs => $1)
                 LIMIT $2)",
        )
        .bind(retention.as_secs_f64())
        .bind(batch)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
