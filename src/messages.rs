//! Messages relayed to a report's owner: a visitor writes to the report instead of reading a
//! contact (which stays private unless the reporter publishes it), and the owner reads them with
//! the owner token. Plain text, checked here; stored by `store::messages`.

use uuid::Uuid;

pub use crate::domain::message::Message;
use crate::reports::{ReportError, ValidationError, owner_token_hash};
use crate::store::messages::MessagePage;
use crate::store::{OwnerCheck, Store};

/// Longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Longest `reply_to`, in characters.
pub const MAX_REPLY_TO_CHARS: usize = 200;

/// A message as written, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The text: 1 to [`MAX_MESSAGE_CHARS`] characters, no control characters but line breaks
    /// and tabs.
    pub text: String,
    /// How to answer the writer: at most [`MAX_REPLY_TO_CHARS`] characters on one line.
    pub reply_to: Option<String>,
}

impl NewMessage {
    /// Checks a message: plain text of a bounded size (what a person can read; nothing a page
    /// or a terminal would interpret).
    pub fn new(text: &str, reply_to: Option<&str>) -> Result<Self, ValidationError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ValidationError::new("text", "must not be empty"));
        }
        if text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(ValidationError::new(
                "text",
                format!("at most {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ValidationError::new(
                "text",
                "plain text only: no control characters but line breaks and tabs",
            ));
        }
        let reply_to = reply_to.map(str::trim).filter(|r| !r.is_empty());
        if let Some(r) = reply_to {
            if r.chars().count() > MAX_REPLY_TO_CHARS {
                return Err(ValidationError::new(
                    "reply_to",
                    format!("at most {MAX_REPLY_TO_CHARS} characters"),
                ));
            }
            if r.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "reply_to",
                    "one line of plain text (no control characters)",
                ));
            }
        }
        Ok(NewMessage {
            text: text.to_owned(),
            reply_to: reply_to.map(str::to_owned),
        })
    }
}

/// The relay; cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    store: Store,
}

impl Relay {
    /// The relay over the store.
    pub fn new(store: Store) -> Self {
        Relay { store }
    }

    /// Leaves `message` for the owner of report `report_id` (of `tenant`).
    pub async fn send(
        &self,
        report_id: Uuid,
        tenant: Option<&str>,
        message: &NewMessage,
    ) -> Result<Message, ReportError> {
        self.store
            .messages()
            .add(
                report_id,
                tenant,
                &message.text,
                message.reply_to.as_deref(),
            )
            .await?
            .ok_or(ReportError::NotFound("report"))
    }

    /// The owner's messages, newest first: those older than message `before`, at most `limit`.
    pub async fn read(
        &self,
        report_id: Uuid,
        tenant: Option<&str>,
        token: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, ReportError> {
        let token = token.ok_or(ReportError::Unauthorized)?;
        let MessagePage { check, messages } = self
            .store
            .messages()
            .for_owner(report_id, tenant, &owner_token_hash(token), before, limit)
            .await?;
        match check {
            OwnerCheck::Done => Ok(messages),
            OwnerCheck::NotFound => Err(ReportError::NotFound("report")),
            OwnerCheck::Forbidden => Err(ReportError::Forbidden),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_plain_text_of_a_bounded_size() {
        let ok = NewMessage::new(
            "  I saw her near the bakery\nthis morning ",
            Some(" 555-0100 "),
        )
        .unwrap();
        assert_eq!(ok.text, "I saw her near the bakery\nthis morning");
        assert_eq!(ok.reply_to.as_deref(), Some("555-0100"));
        assert_eq!(NewMessage::new("hi", Some("  ")).unwrap().reply_to, None);
        let field =
            |text: &str, reply: Option<&str>| NewMessage::new(text, reply).unwrap_err().field;
        assert_eq!(field("   ", None), "text");
        assert_eq!(field(&"x".repeat(MAX_MESSAGE_CHARS + 1), None), "text");
        assert!(NewMessage::new(&"é".repeat(MAX_MESSAGE_CHARS), None).is_ok());
        assert_eq!(field("bell \u{7}", None), "text");
        assert_eq!(field("hi", Some("a\nb")), "reply_to");
        assert_eq!(
            field("hi", Some(&"x".repeat(MAX_REPLY_TO_CHARS + 1))),
            "reply_to"
        );
    }
}
