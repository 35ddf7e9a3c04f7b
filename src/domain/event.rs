//! Report events: what happens to a report after it is posted (its photos ready or failed, a
//! new possible match, resolved, deleted), as the store publishes them and the live streams and
//! webhooks deliver them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::report::{EmbeddingStatus, Photo, overall_status};

/// The `NOTIFY` channel of report events.
pub const EVENTS_CHANNEL: &str = "lookalike_report_events";

/// Something that happened to one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum ReportEvent {
    /// Its photos' embedding state changed (a photo became ready or failed).
    Status(StatusEvent),
    /// A new possible match with another report.
    Match(MatchEvent),
    /// Its owner marked it resolved.
    Resolved(ReportRef),
    /// Its owner deleted it.
    Deleted(ReportRef),
}

/// A report's photos' embedding state: the `status` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusEvent {
    /// The report.
    pub report_id: Uuid,
    /// ready when every photo is, failed when any failed, pending otherwise.
    pub status: EmbeddingStatus,
    /// Photos embedded.
    pub ready: u32,
    /// Photos whose embedding failed for good.
    pub failed: u32,
    /// Photos of the report.
    pub total: u32,
}

/// A possible match newly recorded for a report: the `match` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MatchEvent {
    /// The report the match is recorded on.
    pub report_id: Uuid,
    /// The other report.
    pub match_report_id: Uuid,
    /// Cosine similarity of their nearest photos.
    pub score: f32,
}

/// The report an event is about, alone: the `resolved` and `deleted` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportRef {
    /// The report.
    pub report_id: Uuid,
}

impl ReportEvent {
    /// The report the event is about.
    pub fn report_id(&self) -> Uuid {
        match self {
            ReportEvent::Status(s) => s.report_id,
            ReportEvent::Match(m) => m.report_id,
            ReportEvent::Resolved(r) | ReportEvent::Deleted(r) => r.report_id,
        }
    }

    /// The SSE event name (`event:` line).
    pub fn name(&self) -> &'static str {
        match self {
            ReportEvent::Status(_) => "status",
            ReportEvent::Match(_) => "match",
            ReportEvent::Resolved(_) => "resolved",
            ReportEvent::Deleted(_) => "deleted",
        }
    }

    /// The SSE `data:` line: the event's fields as JSON.
    pub fn data(&self) -> String {
        let json = match self {
            ReportEvent::Status(s) => serde_json::to_string(s),
            ReportEvent::Match(m) => serde_json::to_string(m),
            ReportEvent::Resolved(r) | ReportEvent::Deleted(r) => serde_json::to_string(r),
        };
        // Structs of ids, numbers and a unit enum always serialise.
        json.unwrap_or_default()
    }

    /// The webhook event it is delivered as, if any (`deleted` and pending states are not).
    pub fn webhook_event(&self) -> Option<&'static str> {
        match self {
            ReportEvent::Status(s) => match s.status {
                EmbeddingStatus::Ready => Some("embedding_ready"),
                EmbeddingStatus::Failed => Some("embedding_failed"),
                EmbeddingStatus::Pending => None,
            },
            ReportEvent::Match(_) => Some("match_found"),
            ReportEvent::Resolved(_) => Some("report_resolved"),
            ReportEvent::Deleted(_) => None,
        }
    }
}

impl StatusEvent {
    /// The state of a report from its photos.
    pub fn of(report_id: Uuid, photos: &[Photo]) -> Self {
        let count = |status: EmbeddingStatus| {
            u32::try_from(
                photos
                    .iter()
                    .filter(|p| p.embedding_status == status)
                    .count(),
            )
            .unwrap_or(u32::MAX)
        };
        StatusEvent {
            report_id,
            status: overall_status(photos),
            ready: count(EmbeddingStatus::Ready),
            failed: count(EmbeddingStatus::Failed),
            total: u32::try_from(photos.len()).unwrap_or(u32::MAX),
        }
    }
}

/// What travels in a `NOTIFY`: the event and the model whose embeddings it concerns (status and
/// match events; while a new model reindexes, a process shows only its own model's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The model, for status and match events.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i32>,
    /// The event.
    #[serde(rename = "e")]
    pub event: ReportEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_the_documented_names_and_fields() {
        let id = Uuid::nil();
        let other = Uuid::from_u128(1);
        let status = ReportEvent::Status(StatusEvent {
            report_id: id,
            status: EmbeddingStatus::Ready,
            ready: 2,
            failed: 0,
            total: 2,
        });
        assert_eq!(status.name(), "status");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&status.data()).unwrap(),
            serde_json::json!({"report_id": id, "status": "ready", "ready": 2, "failed": 0, "total": 2})
        );
        let found = ReportEvent::Match(MatchEvent {
            report_id: id,
            match_report_id: other,
            score: 0.5,
        });
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&found.data()).unwrap(),
            serde_json::json!({"report_id": id, "match_report_id": other, "score": 0.5})
        );
        assert_eq!(found.webhook_event(), Some("match_found"));
        let gone = ReportEvent::Deleted(ReportRef { report_id: id });
        assert_eq!(gone.data(), format!("{{\"report_id\":\"{id}\"}}"));
        assert_eq!(gone.webhook_event(), None);
        for event in [status, found, gone] {
            let notice = Notice {
                model_id: Some(3),
                event,
            };
            let text = serde_json::to_string(&notice).unwrap();
            assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), notice);
        }
    }
}
