//! Limits of the open service (no API keys).

/// The open service's limits, in bytes of photos as uploaded (`i64::MAX`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenLimits {
    /// Per client address per UTC day.
    pub daily_bytes_per_address: i64,
    /// All reports without a tenant together.
    pub total_bytes: i64,
}

impl OpenLimits {
    /// No limits (an operator's import).
    pub const NONE: OpenLimits = OpenLimits {
        daily_bytes_per_address: i64::MAX,
        total_bytes: i64::MAX,
    };
}
