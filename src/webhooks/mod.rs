//! Webhooks: report events (`match_found`, `embedding_ready`, `embedding_failed`,
//! `report_resolved`) POSTed to the service-wide receiver (`--webhook-url`) and to a tenant's own
//! (its `webhook_url` in the API keys file).
//!
//! At least once: `store::events::publish` queues one durable job per event and target in the
//! transaction of the change, and the job workers deliver it, retrying failed attempts with the
//! queue's exponential backoff up to the target's attempts. Every attempt carries the event's
//! stable id (receivers dedupe by it) and is signed: `X-Lookalike-Signature: v1=<hex>`, the
//! HMAC-SHA256 of `"{timestamp}.{body}"` with the target's secret, `timestamp` being
//! `X-Lookalike-Timestamp` (Unix seconds; receivers refuse old ones to stop replays). Each attempt
//! is logged for operators (`GET /v1/webhooks/deliveries`). Receivers are plain `http://` URLs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{Request, Uri, header};
use chrono::Utc;
use hmac::{Hmac, Mac};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use uuid::Uuid;

pub use crate::domain::webhook::{DEFAULT_TARGET, Delivery, DeliveryRecord, WebhookTarget};
use crate::telemetry::prometheus::Exposition;

/// Header: the event's id, the same on every attempt.
pub const EVENT_ID_HEADER: &str = "x-lookalike-event-id";
/// Header: the webhook event (`match_found`, ...).
pub const EVENT_HEADER: &str = "x-lookalike-event";
/// Header: Unix seconds when the attempt was signed.
pub const TIMESTAMP_HEADER: &str = "x-lookalike-timestamp";
/// Header: `v1=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"` with the target's secret.
pub const SIGNATURE_HEADER: &str = "x-lookalike-signature";

/// Largest body sent: events are a few hundred bytes; anything larger is a bug, not retried.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Checks a receiver's URL: `http://`, with a host; why not otherwise.
pub fn check_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("webhook URL `{url}`: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "webhook URL `{url}`: only http:// receivers are supported (put a TLS-terminating proxy in front of an https one)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("webhook URL `{url}` has no host"));
    }
    Ok(uri)
}

/// The signature of `body` sent at `timestamp` with `secret`: the hex HMAC-SHA256 of
/// `"{timestamp}.{body}"`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Delivery counters of this process.
#[derive(Debug, Default)]
pub struct WebhookStats {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl WebhookStats {
    /// Prometheus lines: this process's delivery attempts by outcome.
    pub fn render(&self, out: &mut Exposition) {
        out.help(
            "lookalike_webhook_attempts_total",
            "counter",
            "Webhook delivery attempts of this process's workers, by outcome (failed ones are retried with backoff up to the target's attempts).",
        );
        for (outcome, n) in [
            ("delivered", self.delivered.load(Ordering::Relaxed)),
            ("failed", self.failed.load(Ordering::Relaxed)),
        ] {
            out.sample(
                "lookalike_webhook_attempts_total",
                &[("outcome", outcome)],
                n as f64,
            );
        }
    }
}

/// Sends webhook deliveries: the request deadline and the counters, shared by the workers.
#[derive(Debug, Clone)]
pub struct Webhooks {
    timeout: Duration,
    stats: Arc<WebhookStats>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks::new(Duration::from_secs(10))
    }
}

impl Webhooks {
    /// Deliveries that give a receiver `timeout` to answer (connection, request and status).
    pub fn new(timeout: Duration) -> Self {
        Webhooks {
            timeout: timeout.max(Duration::from_millis(10)),
            stats: Arc::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &WebhookStats {
        &self.stats
    }

    /// One attempt to deliver `body` (the event `event_id`, `event`) to `target`: the attempt as
    /// logged; delivered when the receiver answered 2xx within the deadline.
    pub async fn send(
        &self,
        target: &WebhookTarget,
        event_id: Uuid,
        event: &str,
        body: &str,
        attempt: i32,
    ) -> Delivery {
        let started = Instant::now();
        let outcome = if body.len() > MAX_BODY_BYTES {
            Err(format!(
                "the event's body is {} bytes, over {MAX_BODY_BYTES}",
                body.len()
            ))
        } else {
            match tokio::time::timeout(self.timeout, post(target, event_id, event, body)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
            }
        };
        let (status_code, error) = match outcome {
            Ok(code) if (200..300).contains(&code) => (Some(code), None),
            Ok(code) => (Some(code), Some(format!("the receiver answered {code}"))),
            Err(e) => (None, Some(e)),
        };
        let counter = if error.is_none() {
            &self.stats.delivered
        } else {
            &self.stats.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Delivery {
            event_id,
            event: event.to_owned(),
            target: target.target.clone(),
            url: target.url.clone(),
            attempt,
            status_code,
            error,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// POSTs the signed body; the receiver's status. One connection per attempt (deliveries are
/// rare, and a receiver that was down is reached afresh).
async fn post(
    target: &WebhookTarget,
    event_id: Uuid,
    event: &str,
    body: &str,
) -> Result<u16, String> {
    let uri = check_url(&target.url)?;
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let timestamp = Utc::now().timestamp();
    let request = Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, uri.authority().map_or(host, |a| a.as_str()))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "lookalike-webhooks")
        .header(EVENT_ID_HEADER, event_id.to_string())
        .header(EVENT_HEADER, event)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(
            SIGNATURE_HEADER,
            format!("v1={}", signature(&target.secret, timestamp, body)),
        )
        .body(axum::body::Body::from(body.to_owned()))
        .map_err(|e| format!("building the request: {e}"))?;
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        answer = sender.send_request(request) => answer
            .map(|response| response.status().as_u16())
            .map_err(|e| format!("sending: {e}")),
        ended = &mut connection => Err(match ended {
            Ok(()) => "the receiver closed the connection".to_owned(),
            Err(e) => format!("connection: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_documented_recipe() {
        // Computed apart: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", 1_700_000_000, r#"{"a":1}"#),
            "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
        assert_ne!(
            signature("secret", 1_700_000_000, r#"{"a":1}"#),
            signature("secret", 1_700_000_001, r#"{"a":1}"#)
        );
        assert!(check_url("https://example.com/hook").is_err());
        assert!(check_url("http:///hook").is_err());
        assert!(check_url("http://127.0.0.1:9/hook").is_ok());
    }
}
