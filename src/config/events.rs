//! Settings of the live event streams and of webhooks.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

/// Live event streams (`GET /v1/reports/{id}/events`).
#[derive(Debug, Clone, Args, Serialize)]
pub struct EventsConfig {
    /// Seconds between heartbeat comments (`: hb`) on an idle event stream.
    #[arg(long, env = "LOOKALIKE_EVENT_HEARTBEAT_SECS", default_value_t = 15)]
    pub event_heartbeat_secs: u64,
    /// Event streams open at once in this process; 503 `overloaded` beyond.
    #[arg(long, env = "LOOKALIKE_EVENT_STREAMS_MAX", default_value_t = 1000)]
    pub event_streams_max: usize,
    /// Event streams open at once per client address; 429 `concurrency_limited` beyond (0: no cap).
    #[arg(long, env = "LOOKALIKE_EVENT_STREAMS_PER_ADDRESS", default_value_t = 8)]
    pub event_streams_per_address: usize,
    /// Seconds an event stream stays open before the service ends it (the client reconnects);
    /// kept 5 s below `--response-timeout-secs`, which would otherwise cut it.
    #[arg(long, env = "LOOKALIKE_EVENT_STREAM_MAX_SECS", default_value_t = 100)]
    pub event_stream_max_secs: u64,
    /// Events buffered for the streams of this process; a stream further behind is closed.
    #[arg(long, env = "LOOKALIKE_EVENT_BUFFER", default_value_t = 1024)]
    pub event_buffer: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            event_heartbeat_secs: 15,
            event_streams_max: 1000,
            event_streams_per_address: 8,
            event_stream_max_secs: 100,
            event_buffer: 1024,
        }
    }
}

impl EventsConfig {
    /// The streams' settings, their lifetime kept below the response deadline `response_timeout`.
    pub fn settings(&self, response_timeout: Duration) -> crate::events::EventSettings {
        let lifetime = Duration::from_secs(self.event_stream_max_secs.max(1)).min(
            response_timeout
                .saturating_sub(Duration::from_secs(5))
                .max(Duration::from_secs(1)),
        );
        crate::events::EventSettings {
            heartbeat: Duration::from_secs(self.event_heartbeat_secs.max(1)),
            max_streams: self.event_streams_max.max(1),
            max_streams_per_address: self.event_streams_per_address,
            max_lifetime: lifetime,
            buffer: self.event_buffer.max(1),
            ..crate::events::EventSettings::default()
        }
    }
}

/// Webhooks: where report events are POSTed, signed.
#[derive(Debug, Clone, Args, Serialize)]
pub struct WebhookConfig {
    /// The service-wide receiver of every report's events (`http://...`); tenants may have their
    /// own (`webhook_url` and `webhook_secret` in the API keys file).
    #[arg(long, env = "LOOKALIKE_WEBHOOK_URL")]
    #[serde(serialize_with = "super::redact::redact_optional_url")]
    pub webhook_url: Option<String>,
    /// The secret that signs the service-wide receiver's deliveries (required with its URL).
    #[arg(long, env = "LOOKALIKE_WEBHOOK_SECRET", hide_env_values = true)]
    #[serde(serialize_with = "super::redact::redact_secret")]
    pub webhook_secret: Option<String>,
    /// Attempts per delivery before it is given up (retried with the job queue's backoff).
    #[arg(long, env = "LOOKALIKE_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8)]
    pub webhook_max_attempts: u32,
    #[command(flatten)]
    pub delivery: WebhookDeliveryConfig,
}

/// How this process's job workers deliver webhooks.
#[derive(Debug, Clone, Args, Serialize)]
pub struct WebhookDeliveryConfig {
    /// Milliseconds a receiver has to accept the connection and answer a delivery.
    #[arg(long, env = "LOOKALIKE_WEBHOOK_TIMEOUT_MS", default_value_t = 5000)]
    pub webhook_timeout_ms: u64,
}

impl WebhookDeliveryConfig {
    /// The delivery deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.webhook_timeout_ms.max(10))
    }
}
