//! SQL of report events and webhooks: an event is `NOTIFY`'d and its webhook deliveries queued
//! inside the transaction of the change it reports, so it is heard of (and delivered) exactly
//! when the change commits; the webhook targets; the delivery log.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::report_rows::photos_of;
use super::{Reports, StoreError, Webhooks, queue};
use crate::domain::event::{EVENTS_CHANNEL, MatchEvent, Notice, ReportEvent, StatusEvent};
use crate::domain::job::{JobPayload, WebhookJob};
use crate::domain::webhook::{Delivery, DeliveryRecord, WebhookTarget};

/// Rows the delivery log keeps: older ones are deleted as new ones are written.
const DELIVERY_LOG_ROWS: i64 = 10_000;

/// Who hears of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The live streams and the webhooks.
    Everyone,
    /// The live streams only: what a webhook receiver heard already, from another model's
    /// embeddings (a reindex embeds and matches every report again).
    StreamsOnly,
}

/// Publishes `event` when the caller's transaction commits: a `NOTIFY` for the live streams of
/// every replica, and a webhook job per target that receives it (the service-wide one, and the
/// report's tenant's). `model_id`: the model a status or match event concerns.
pub async fn publish(
    conn: &mut PgConnection,
    event: &ReportEvent,
    model_id: Option<i32>,
) -> Result<(), StoreError> {
    publish_to(conn, event, model_id, Audience::Everyone).await
}

/// As [`publish`], to `audience`.
pub async fn publish_to(
    conn: &mut PgConnection,
    event: &ReportEvent,
    model_id: Option<i32>,
    audience: Audience,
) -> Result<(), StoreError> {
    let notice = Notice {
        model_id,
        event: event.clone(),
    };
    // A few hundred bytes, far below NOTIFY's 8000-byte payload limit.
    let payload = serde_json::to_string(&notice).unwrap_or_default();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(EVENTS_CHANNEL)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    let Some(kind) = event.webhook_event() else {
        return Ok(());
    };
    if audience == Audience::StreamsOnly {
        return Ok(());
    }
    let event_id = Uuid::new_v4();
    let body = serde_json::json!({
        "id": event_id,
        "type": kind,
        "created_at": Utc::now(),
        "data": serde_json::from_str::<serde_json::Value>(&event.data()).unwrap_or_default(),
    })
    .to_string();
    // At most two targets (the service's and the report's tenant's): each job is built as
    // every job is, so its payload and dedupe key have one definition (`JobPayload`).
    let targets: Vec<(String, i32)> = sqlx::query_as(
        "SELECT t.target, t.max_attempts FROM webhook_targets t
         WHERE t.tenant_id IS NULL
            OR t.tenant_id = (SELECT tenant_id FROM reports WHERE id = $1)
         ORDER BY t.target",
    )
    .bind(event.report_id())
    .fetch_all(&mut *conn)
    .await?;
    let mut queued = 0;
    for (target, max_attempts) in targets {
        let job = JobPayload::Webhook(WebhookJob {
            event_id,
            event: kind.to_owned(),
            target,
            body: body.clone(),
        });
        let attempts = u32::try_from(max_attempts).unwrap_or(1);
        if queue::enqueue(conn, &job, attempts).await?.is_some() {
            queued += 1;
        }
    }
    if queued > 0 {
        queue::notify(conn).await?;
    }
    Ok(())
}

/// Publishes the embedding state of every report holding blob `sha256`, for `model_id`, inside
/// the caller's transaction (after the blob's embedding was saved or its job failed).
pub async fn publish_blob_status(
    conn: &mut PgConnection,
    sha256: &[u8],
    model_id: i32,
) -> Result<(), StoreError> {
    let reports: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT report_id FROM photos WHERE sha256 = $1")
            .bind(sha256)
            .fetch_all(&mut *conn)
            .await?;
    if reports.is_empty() {
        return Ok(());
    }
    let photos = photos_of(&mut *conn, &reports, model_id).await?;
    // Reports another model embedded already: their receivers heard of them then.
    let known: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT p.report_id FROM photos p
         JOIN embeddings e ON e.sha256 = p.sha256 AND e.model_id <> $2
         WHERE p.report_id = ANY($1)",
    )
    .bind(&reports)
    .bind(model_id)
    .fetch_all(&mut *conn)
    .await?;
    for id in reports {
        let of_report = photos.get(&id).map_or(&[][..], Vec::as_slice);
        let status = StatusEvent::of(id, of_report);
        let audience = if known.contains(&id) {
            Audience::StreamsOnly
        } else {
            Audience::Everyone
        };
        publish_to(conn, &ReportEvent::Status(status), Some(model_id), audience).await?;
    }
    Ok(())
}

/// Publishes the matches just recorded for model `model_id` that are new on their report
/// (`new_matches`), once the caps are applied: those that kept their place among their report's
/// best. `open`: the reports concerned. Inside the caller's transaction.
pub async fn publish_matches(
    conn: &mut PgConnection,
    model_id: i32,
    open: &[Uuid],
    new_matches: Vec<MatchEvent>,
) -> Result<(), StoreError> {
    if new_matches.is_empty() {
        return Ok(());
    }
    let (from, to): (Vec<Uuid>, Vec<Uuid>) = new_matches
        .iter()
        .map(|m| (m.report_id, m.match_report_id))
        .unzip();
    let kept: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT m.report_id, m.matched_report_id FROM report_matches m
         JOIN unnest($2::uuid[], $3::uuid[]) AS n(report_id, matched_report_id)
           ON m.report_id = n.report_id AND m.matched_report_id = n.matched_report_id
         WHERE m.model_id = $1",
    )
    .bind(model_id)
    .bind(&from)
    .bind(&to)
    .fetch_all(&mut *conn)
    .await?;
    // Matches another model recorded already were announced to the receivers then.
    let known: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT report_id, matched_report_id FROM report_matches
         WHERE model_id <> $1 AND report_id = ANY($2)",
    )
    .bind(model_id)
    .bind(open)
    .fetch_all(&mut *conn)
    .await?;
    for event in new_matches {
        let pair = (event.report_id, event.match_report_id);
        if kept.contains(&pair) {
            let audience = if known.contains(&pair) {
                Audience::StreamsOnly
            } else {
                Audience::Everyone
            };
            publish_to(conn, &ReportEvent::Match(event), Some(model_id), audience).await?;
        }
    }
    Ok(())
}

impl Reports<'_> {
    /// The embedding state of a report of `tenant` (`None`: of no tenant) for `model_id`; `None`
    /// when there is no such report for that caller.
    pub async fn status(
        self,
        id: Uuid,
        tenant: Option<&str>,
        model_id: i32,
    ) -> Result<Option<StatusEvent>, StoreError> {
        Ok(self
            .get(id, tenant, model_id)
            .await?
            .map(|r| StatusEvent::of(id, &r.photos)))
    }
}

impl Webhooks<'_> {
    /// Replaces the webhook targets with `targets` (what this process is configured with).
    pub async fn sync_targets(self, targets: &[WebhookTarget]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let names: Vec<&str> = targets.iter().map(|t| t.target.as_str()).collect();
        sqlx::query("DELETE FROM webhook_targets WHERE NOT (target = ANY($1))")
            .bind(&names)
            .execute(&mut *tx)
            .await?;
        for t in targets {
            sqlx::query(
                "INSERT INTO webhook_targets (target, tenant_id, url, secret, max_attempts)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (target) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, url = EXCLUDED.url,
                     secret = EXCLUDED.secret, max_attempts = EXCLUDED.max_attempts, updated_at = now()",
            )
            .bind(&t.target)
            .bind(t.tenant.as_deref())
            .bind(&t.url)
            .bind(&t.secret)
            .bind(i32::try_from(t.max_attempts).unwrap_or(i32::MAX).max(1))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One webhook target, by name; `None` once it is no longer configured.
    pub async fn target(self, target: &str) -> Result<Option<WebhookTarget>, StoreError> {
        let row = sqlx::query(
            "SELECT target, tenant_id, url, secret, max_attempts FROM webhook_targets WHERE target = $1",
        )
        .bind(target)
        .fetch_optional(self.pool)
        .await?;
        row.map(|r| {
            Ok(WebhookTarget {
                target: r.try_get("target")?,
                tenant: r.try_get("tenant_id")?,
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
                max_attempts: u32::try_from(r.try_get::<i32, _>("max_attempts")?).unwrap_or(1),
            })
        })
        .transpose()
    }

    /// Appends one delivery attempt to the log, and trims the log to its newest rows.
    pub async fn record_delivery(self, delivery: &Delivery) -> Result<(), StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (event_id, event, target, url, attempt, status_code, error, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(delivery.event_id)
        .bind(&delivery.event)
        .bind(&delivery.target)
        .bind(&delivery.url)
        .bind(delivery.attempt)
        .bind(delivery.status_code.map(i32::from))
        .bind(delivery.error.as_deref())
        .bind(i32::try_from(delivery.duration_ms).unwrap_or(i32::MAX))
        .fetch_one(self.pool)
        .await?;
        if id % 100 == 0 {
            sqlx::query("DELETE FROM webhook_deliveries WHERE id <= $1")
                .bind(id - DELIVERY_LOG_ROWS)
                .execute(self.pool)
                .await?;
        }
        Ok(())
    }

    /// The newest delivery attempts first, at most `limit`, of one event when `event_id` is given.
    pub async fn deliveries(
        self,
        event_id: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, event, target, url, attempt, status_code, error, duration_ms, created_at
             FROM webhook_deliveries WHERE $1::uuid IS NULL OR event_id = $1
             ORDER BY id DESC LIMIT $2",
        )
        .bind(event_id)
        .bind(limit)
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let created_at: DateTime<Utc> = r.try_get("created_at")?;
                Ok(DeliveryRecord {
                    id: r.try_get("id")?,
                    delivery: Delivery {
                        event_id: r.try_get("event_id")?,
                        event: r.try_get("event")?,
                        target: r.try_get("target")?,
                        url: r.try_get("url")?,
                        attempt: r.try_get("attempt")?,
                        status_code: r
                            .try_get::<Option<i32>, _>("status_code")?
                            .and_then(|c| u16::try_from(c).ok()),
                        error: r.try_get("error")?,
                        duration_ms: u64::try_from(r.try_get::<i32, _>("duration_ms")?)
                            .unwrap_or(0),
                    },
                    created_at,
                })
            })
            .collect()
    }
}
