//! What a job does: its kind, parameters and dedupe key, one type for whoever enqueues a job and
//! the worker that runs it. Stored as the job's `kind` and `payload` columns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPayload {
    /// Embed a stored photo with a model.
    Embed(EmbedJob),
    /// Find and store a report's possible matches with a model's embeddings.
    Match(MatchJob),
    /// Delete a blob no photo uses any more: its row and embeddings, then its objects.
    Purge(PurgeJob),
    /// Delete objects from the photo store (what a purged blob or a failed upload left).
    DeleteObjects(DeleteObjectsJob),
    /// Rewrite a blob stored before uploads were cleaned without its metadata.
    StripMetadata(StripMetadataJob),
    /// Deliver one report event to one webhook target (queued by `store::events::publish`).
    Webhook(WebhookJob),
}

/// Deliver the event `event_id` (its `body`, signed at each attempt) to the webhook `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookJob {
    /// The event's stable id (the same on every attempt): receivers dedupe by it.
    pub event_id: Uuid,
    /// The webhook event (`match_found`, ...).
    pub event: String,
    /// The target's name (`default` or `tenant:<id>`), looked up at each attempt.
    pub target: String,
    /// The JSON body sent, byte for byte the same on every attempt.
    pub body: String,
}

/// Embed the blob `sha256` (hex) with model `model_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedJob {
    /// The blob's content hash, hex.
    pub sha256: String,
    /// The model's id in the database.
    pub model_id: i32,
}

/// Refresh the possible matches of `report_id` with model `model_id`'s embeddings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchJob {
    /// The report.
    pub report_id: Uuid,
    /// The model whose embeddings are compared.
    pub model_id: i32,
}

/// Delete the blob `sha256` (hex) if no photo uses it any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeJob {
    /// The blob's content hash, hex.
    pub sha256: String,
}

/// Delete these objects from the photo store; objects already gone count as deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteObjectsJob {
    /// The photo store's keys.
    pub keys: Vec<String>,
}

/// Remove the metadata of the blob `sha256` (hex): its object is replaced by a cleaned copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripMetadataJob {
    /// The blob's content hash, hex.
    pub sha256: String,
}

impl JobPayload {
    /// Embedding `sha256` with `model_id`.
    pub fn embed(sha256: &[u8], model_id: i32) -> Self {
        JobPayload::Embed(EmbedJob {
            sha256: hex::encode(sha256),
            model_id,
        })
    }

    /// Matching `report_id` with `model_id`'s embeddings.
    pub fn refresh_matches(report_id: Uuid, model_id: i32) -> Self {
        JobPayload::Match(MatchJob {
            report_id,
            model_id,
        })
    }

    /// Purging the blob `sha256` once no photo uses it.
    pub fn purge(sha256: &[u8]) -> Self {
        JobPayload::Purge(PurgeJob {
            sha256: hex::encode(sha256),
        })
    }

    /// Deleting objects from the photo store.
    pub fn delete_objects(keys: Vec<String>) -> Self {
        JobPayload::DeleteObjects(DeleteObjectsJob { keys })
    }

    /// Removing the metadata of the blob `sha256`.
    pub fn strip_metadata(sha256: &[u8]) -> Self {
        JobPayload::StripMetadata(StripMetadataJob {
            sha256: hex::encode(sha256),
        })
    }

    /// The start of every key of an embedding job of the blob `sha256` (hex), whatever its model:
    /// a job's key is this and its model's id.
    pub fn embed_key_prefix(sha256: &str) -> String {
        format!("embed:{sha256}:")
    }

    /// The start of a `strip_metadata` job's key: the blob's hash (hex) follows it. Bound as such
    /// where SQL queues these jobs in bulk (`store.jobs().enqueue_metadata_removal`).
    pub const STRIP_METADATA_KEY_PREFIX: &'static str = "strip_metadata:";

    /// The `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            JobPayload::Embed(_) => "embed",
            JobPayload::Match(_) => "match",
            JobPayload::Purge(_) => "purge",
            JobPayload::DeleteObjects(_) => "delete_objects",
            JobPayload::StripMetadata(_) => "strip_metadata",
            JobPayload::Webhook(_) => "webhook",
        }
    }

    /// One job per piece of work, whoever asks for it: the `dedupe_key` column, built only here
    /// (and from the prefixes above). Its one twin is the SQL function `lookalike_embed_job_key`
    /// (migration 0007), which lookups and the bulk re-embedding use; a test checks they agree.
    pub fn dedupe_key(&self) -> String {
        match self {
            JobPayload::Embed(e) => format!("{}{}", Self::embed_key_prefix(&e.sha256), e.model_id),
            JobPayload::Match(m) => format!("match:{}:{}", m.report_id, m.model_id),
            JobPayload::Purge(p) => format!("purge:{}", p.sha256),
            // Object keys are unique to one upload of one blob, so the first names the work.
            JobPayload::DeleteObjects(d) => {
                format!("delete:{}", d.keys.first().map_or("", String::as_str))
            }
            JobPayload::StripMetadata(s) => {
                format!("{}{}", Self::STRIP_METADATA_KEY_PREFIX, s.sha256)
            }
            JobPayload::Webhook(w) => format!("webhook:{}:{}", w.event_id, w.target),
        }
    }

    /// The model the work belongs to (the `model_id` column): only a process running that model
    /// claims it. `None`: any process may.
    pub fn model_id(&self) -> Option<i32> {
        match self {
            JobPayload::Embed(e) => Some(e.model_id),
            JobPayload::Match(m) => Some(m.model_id),
            JobPayload::Purge(_)
            | JobPayload::DeleteObjects(_)
            | JobPayload::StripMetadata(_)
            | JobPayload::Webhook(_) => None,
        }
    }

    /// The `payload` column.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            JobPayload::Embed(e) => serde_json::to_value(e),
            JobPayload::Match(m) => serde_json::to_value(m),
            JobPayload::Purge(p) => serde_json::to_value(p),
            JobPayload::DeleteObjects(d) => serde_json::to_value(d),
            JobPayload::StripMetadata(s) => serde_json::to_value(s),
            JobPayload::Webhook(w) => serde_json::to_value(w),
        };
        // Plain structs of strings and integers always serialise.
        value.unwrap_or_default()
    }

    /// The job stored as `kind` and `payload`, or why it cannot be run.
    pub fn parse(kind: &str, payload: &serde_json::Value) -> Result<Self, String> {
        let bad = |e: serde_json::Error| format!("bad {kind} job payload: {e}");
        match kind {
            "embed" => Ok(JobPayload::Embed(
                serde_json::from_value(payload.clone()).map_err(bad)?,
            )),
            "match" => Ok(JobPayload::Match(
                serde_json::from_value(payload.clone()).map_err(bad)?,
            )),
            "purge" => Ok(JobPayload::Purge(
                serde_json::from_value(payload.clone()).map_err(bad)?,
            )),
            "delete_objects" => Ok(JobPayload::DeleteObjects(
                serde_json::from_value(payload.clone()).map_err(bad)?,
            )),
            "strip_metadata" => Ok(JobPayload::StripMetadata(
                serde_json::from_value(payload.clone()).map_err(bad)?,
            )),
            "webhook" => Ok(JobPayload::Webhook(
                serde_json::from_value(payload.clone()).map_err(bad)?,
            )),
            other => Err(format!("unknown job kind `{other}`")),
        }
    }
}

/// What a failed attempt does to its job, decided by why it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Queue it again after a backoff, while it has attempts left.
    Retry,
    /// Fail it for good now: another attempt would fail the same way (bad input).
    GiveUp,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting to run (including a retry waiting for its backoff).
    Queued,
    /// Claimed by a worker.
    Running,
    /// Finished.
    Done,
    /// Given up after its attempts.
    Failed,
}

impl JobStatus {
    /// The `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Done,
            JobStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A job and its state, as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// Job id.
    pub id: i64,
    /// What it does.
    pub kind: String,
    /// Its parameters.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// Attempts made.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Not run before this time.
    pub run_after: DateTime<Utc>,
    /// Lease end while running.
    pub locked_until: Option<DateTime<Utc>>,
    /// The worker holding it.
    pub locked_by: Option<String>,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// Enqueued at.
    pub created_at: DateTime<Utc>,
    /// Done or failed at.
    pub finished_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_survive_their_columns_and_keep_their_keys() {
        let report = Uuid::new_v4();
        for job in [
            JobPayload::embed(&[0xab, 0x01], 3),
            JobPayload::refresh_matches(report, 3),
        ] {
            assert_eq!(
                JobPayload::parse(job.kind(), &job.to_json()),
                Ok(job.clone())
            );
            assert_eq!(job.model_id(), Some(3));
        }
        for job in [
            JobPayload::purge(&[0xab, 0x01]),
            JobPayload::delete_objects(vec!["photos/ab/01/x".into(), "thumbnails/x".into()]),
            JobPayload::strip_metadata(&[0xab, 0x01]),
        ] {
            assert_eq!(
                JobPayload::parse(job.kind(), &job.to_json()),
                Ok(job.clone())
            );
            assert_eq!(job.model_id(), None);
        }
        assert_eq!(JobPayload::purge(&[0xab, 0x01]).dedupe_key(), "purge:ab01");
        assert_eq!(
            JobPayload::strip_metadata(&[0xab, 0x01]).dedupe_key(),
            "strip_metadata:ab01"
        );
        assert_eq!(
            JobPayload::embed(&[0xab, 0x01], 3).dedupe_key(),
            "embed:ab01:3"
        );
        assert!(
            JobPayload::embed(&[0xab, 0x01], 3)
                .dedupe_key()
                .starts_with(&JobPayload::embed_key_prefix("ab01"))
        );
        assert_eq!(
            JobPayload::refresh_matches(report, 3).dedupe_key(),
            format!("match:{report}:3")
        );
        assert!(JobPayload::parse("resize", &serde_json::json!({})).is_err());
        assert!(JobPayload::parse("embed", &serde_json::json!({"sha256": 1})).is_err());
        assert_eq!(JobStatus::parse("done"), Some(JobStatus::Done));
        assert_eq!(JobStatus::parse("lost"), None);
    }
}
