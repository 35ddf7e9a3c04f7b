//! The connection loop's counters, and their snapshot rendered for `/metrics` and status.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use crate::http::body::BodyCuts;
use crate::telemetry::prometheus::Exposition;

/// Counters of the connection loop (all connections of one listener).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub(super) open: AtomicUsize,
    pub(super) accepted: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) header_timeouts: AtomicU64,
    pub(super) idle_closed: AtomicU64,
    /// Request bodies cut at their deadline or below the least rate (counted by `DeadlineBody`).
    pub(super) body_cuts: Arc<BodyCuts>,
    pub(super) lingered_bytes: AtomicU64,
    pub(super) linger_cut: AtomicU64,
    pub(super) write_stalls: AtomicU64,
    pub(super) response_timeouts: AtomicU64,
}

/// What the connection loop has seen.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionSnapshot {
    /// Connections open now.
    pub open: usize,
    /// Connections accepted since start.
    pub accepted_total: u64,
    /// Connections refused because `max_connections` were open.
    pub refused_total: u64,
    /// Connections closed because a request's headers did not arrive in time.
    pub header_timeouts_total: u64,
    /// Kept-alive connections closed after being idle.
    pub idle_closed_total: u64,
    /// Request bodies cut at their deadline (408).
    pub body_timeouts_total: u64,
    /// Bytes read and discarded from closing connections.
    pub lingered_bytes_total: u64,
    /// Closing connections cut while the client was still sending (linger time or bytes spent).
    pub linger_cut_total: u64,
    /// Request bodies cut for arriving below the least rate (408).
    pub body_too_slow_total: u64,
    /// Connections closed because a response write made no progress (the client did not read).
    pub write_stalls_total: u64,
    /// Connections closed because a response took longer than its deadline to be written.
    pub response_timeouts_total: u64,
}

impl ConnectionStats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> ConnectionSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConnectionSnapshot {
            open: self.open.load(Ordering::Relaxed),
            accepted_total: get(&self.accepted),
            refused_total: get(&self.refused),
            header_timeouts_total: get(&self.header_timeouts),
            idle_closed_total: get(&self.idle_closed),
            body_timeouts_total: get(&self.body_cuts.timeouts),
            lingered_bytes_total: get(&self.lingered_bytes),
            linger_cut_total: get(&self.linger_cut),
            body_too_slow_total: get(&self.body_cuts.too_slow),
            write_stalls_total: get(&self.write_stalls),
            response_timeouts_total: get(&self.response_timeouts),
        }
    }
}

impl ConnectionSnapshot {
    /// Prometheus lines.
    pub fn render(&self, out: &mut Exposition) {
        out.single(
            "lookalike_connections_open",
            "gauge",
            "Client connections open now.",
            self.open as f64,
        );
        for (name, help, value) in [
            (
                "lookalike_connections_accepted_total",
                "Client connections accepted.",
                self.accepted_total,
            ),
            (
                "lookalike_connections_refused_total",
                "Connections refused because the most allowed were open.",
                self.refused_total,
            ),
            (
                "lookalike_header_timeouts_total",
                "Connections closed because a request's headers did not arrive in time.",
                self.header_timeouts_total,
            ),
            (
                "lookalike_idle_connections_closed_total",
                "Kept-alive connections closed after being idle.",
                self.idle_closed_total,
            ),
            (
                "lookalike_body_timeouts_total",
                "Request bodies cut at their deadline (408).",
                self.body_timeouts_total,
            ),
            (
                "lookalike_lingered_bytes_total",
                "Bytes read and discarded from closing connections, so early answers arrive.",
                self.lingered_bytes_total,
            ),
            (
                "lookalike_linger_cut_total",
                "Closing connections cut while the client was still sending.",
                self.linger_cut_total,
            ),
            (
                "lookalike_body_too_slow_total",
                "Request bodies cut for arriving below the least rate (408).",
                self.body_too_slow_total,
            ),
            (
                "lookalike_write_stalls_total",
                "Connections closed because a response write made no progress (the client did not read).",
                self.write_stalls_total,
            ),
            (
                "lookalike_response_timeouts_total",
                "Connections closed because a response was not written within its deadline.",
                self.response_timeouts_total,
            ),
        ] {
            out.single(name, "counter", help, value as f64);
        }
    }
}
