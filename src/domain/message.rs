//! A visitor's message to a report's owner.

use chrono::{DateTime, Utc};

/// A message to a report's owner.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Message {
    /// Its id (increasing: newer messages have larger ids).
    pub id: i64,
    /// The text, as written (plain text).
    pub text: String,
    /// How the writer asks to be answered, if they said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}
