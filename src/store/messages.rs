//! SQL of the messages relayed to a report's owner: visitors write them, the owner reads them
//! (with the owner token), newest first; a report keeps its newest [`MAX_MESSAGES_PER_REPORT`].

use sqlx::Row;
use uuid::Uuid;

use super::reports::OwnerCheck;
use super::{Messages, Reports, StoreError};
use crate::domain::message::Message;

/// Messages a report keeps: a new one past it removes the oldest, so a flood cannot grow a
/// report's mailbox (or the table) without bound.
pub const MAX_MESSAGES_PER_REPORT: i64 = 500;

/// A page of a report's messages, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// What the owner check found; the messages only when it is `Done`.
    pub check: OwnerCheck,
    /// The messages.
    pub messages: Vec<Message>,
}

impl Messages<'_> {
    /// Records a message to report `report_id` of `tenant`; `None` when there is no such report.
    pub async fn add(
        self,
        report_id: Uuid,
        tenant: Option<&str>,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<Option<Message>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The report's row is locked against deletion (and concurrent messages' trimming) while
        // the message is added.
        let exists: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM reports WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2 FOR NO KEY UPDATE",
        )
        .bind(report_id)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let row = sqlx::query(
            "INSERT INTO report_messages (report_id, body, reply_to) VALUES ($1, $2, $3)
             RETURNING id, created_at",
        )
        .bind(report_id)
        .bind(text)
        .bind(reply_to)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM report_messages WHERE report_id = $1 AND id <= (
                 SELECT id FROM report_messages WHERE report_id = $1
                 ORDER BY id DESC OFFSET $2 LIMIT 1)",
        )
        .bind(report_id)
        .bind(MAX_MESSAGES_PER_REPORT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Message {
            id: row.try_get("id")?,
            text: text.to_owned(),
            reply_to: reply_to.map(str::to_owned),
            created_at: row.try_get("created_at")?,
        }))
    }

    /// Report `report_id`'s messages older than message `before` (all when `None`), newest first,
    /// at most `limit`, if `token_hash` is its owner token's.
    pub async fn for_owner(
        self,
        report_id: Uuid,
        tenant: Option<&str>,
        token_hash: &[u8],
        before: Option<i64>,
        limit: u32,
    ) -> Result<MessagePage, StoreError> {
        // The owner check is the reports' (the same as for the owner's other actions).
        let owner = Reports {
            pool: self.pool,
            wake: None,
        }
        .owner_hash(report_id, tenant)
        .await?;
        let check = match owner {
            None => OwnerCheck::NotFound,
            Some(h) if h != token_hash => OwnerCheck::Forbidden,
            Some(_) => OwnerCheck::Done,
        };
        if check != OwnerCheck::Done {
            return Ok(MessagePage {
                check,
                messages: Vec::new(),
            });
        }
        let rows = sqlx::query(
            "SELECT id, body, reply_to, created_at FROM report_messages
             WHERE report_id = $1 AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(report_id)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.pool)
        .await?;
        let messages = rows
            .iter()
            .map(|r| {
                Ok(Message {
                    id: r.try_get("id")?,
                    text: r.try_get("body")?,
                    reply_to: r.try_get("reply_to")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(MessagePage { check, messages })
    }
}
