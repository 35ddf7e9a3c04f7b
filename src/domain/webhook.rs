//! Webhook receivers and the log of deliveries to them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// The target of the service-wide receiver.
pub const DEFAULT_TARGET: &str = "default";

/// Where some reports' events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// Its name: `default`, or `tenant:<id>`.
    pub target: String,
    /// `None`: every report's events; a tenant: that tenant's reports' only.
    pub tenant: Option<String>,
    /// The receiver (`http://host[:port]/path`).
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
}

impl WebhookTarget {
    /// The service-wide receiver of every report's events.
    pub fn service_wide(url: &str, secret: &str, max_attempts: u32) -> Self {
        WebhookTarget {
            target: DEFAULT_TARGET.to_owned(),
            tenant: None,
            url: url.to_owned(),
            secret: secret.to_owned(),
            max_attempts,
        }
    }

    /// A tenant's receiver of its own reports' events.
    pub fn of_tenant(tenant: &str, url: &str, secret: &str, max_attempts: u32) -> Self {
        WebhookTarget {
            target: format!("tenant:{tenant}"),
            tenant: Some(tenant.to_owned()),
            url: url.to_owned(),
            secret: secret.to_owned(),
            max_attempts,
        }
    }
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The event's stable id.
    pub event_id: Uuid,
    /// The webhook event (`match_found`, ...).
    pub event: String,
    /// The target (`default` or `tenant:<id>`).
    pub target: String,
    /// Where it was sent.
    pub url: String,
    /// The attempt's number (1 for the first).
    pub attempt: i32,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why the attempt failed (connection, timeout, or a status other than 2xx).
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: u64,
}

/// A logged delivery attempt with its place in the log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    /// The log row's id (newer rows have larger ids).
    pub id: i64,
    /// The attempt.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// When it was logged.
    pub created_at: DateTime<Utc>,
}
