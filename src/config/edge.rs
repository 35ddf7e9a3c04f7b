//! The edge: connections, request bodies and upload slots.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::capacity::{AddressCaps, ByteBudget};
use crate::http::body::BodyDeadlines;
use crate::http::server::ServerSettings;

/// Default memory for request bodies, MiB.
pub const DEFAULT_BODY_MEMORY_MIB: usize = 96;
/// Default wait for body memory, milliseconds.
pub const DEFAULT_BODY_MEMORY_MAX_WAIT_MS: u64 = 3000;

/// The edge: connections and request bodies, before any handler runs. Every wait here has a
/// deadline and every count a cap, so slow or hostile clients cannot hold the service.
#[derive(Debug, Clone, Args, Serialize)]
pub struct EdgeConfig {
    /// Most open client connections; beyond it a new connection gets a short 503 and is closed.
    #[arg(
        id = "max_client_connections",
        long = "max-connections",
        env = "LOOKALIKE_MAX_CONNECTIONS",
        default_value_t = 1024
    )]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers once it sent their first byte.
    #[arg(long, env = "LOOKALIKE_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a kept-alive connection may stay idle between requests.
    #[arg(long, env = "LOOKALIKE_KEEP_ALIVE_SECS", default_value_t = 30)]
    pub keep_alive_secs: u64,
    /// Seconds a whole request body may take to arrive (408 `body_timeout` beyond).
    #[arg(long, env = "LOOKALIKE_BODY_TIMEOUT_SECS", default_value_t = 60)]
    pub body_timeout_secs: u64,
    /// Seconds a request body may pause between two chunks (408 `body_timeout` beyond).
    #[arg(long, env = "LOOKALIKE_BODY_IDLE_TIMEOUT_SECS", default_value_t = 10)]
    pub body_idle_timeout_secs: u64,
    /// Memory for request bodies read at once, in MiB: a request reserves its size before its
    /// body is read, and waits (bounded) or gets 503 when the budget is spent.
    #[arg(
        long,
        env = "LOOKALIKE_BODY_MEMORY_MIB",
        default_value_t = DEFAULT_BODY_MEMORY_MIB
    )]
    pub body_memory_mib: usize,
    /// Milliseconds a request waits for body memory before 503 + Retry-After.
    #[arg(
        long,
        env = "LOOKALIKE_BODY_MEMORY_MAX_WAIT_MS",
        default_value_t = DEFAULT_BODY_MEMORY_MAX_WAIT_MS
    )]
    pub body_memory_max_wait_ms: u64,
    /// Seconds an answer sent before the body was read keeps reading (and discarding) the rest,
    /// so that the client, still writing, gets the answer instead of a connection reset.
    #[arg(long, env = "LOOKALIKE_LINGER_SECS", default_value_t = 5)]
    pub linger_secs: u64,
    /// Most bytes discarded that way per connection, in MiB.
    #[arg(long, env = "LOOKALIKE_LINGER_MAX_MIB", default_value_t = 128)]
    pub linger_max_mib: usize,
    /// Least bytes per second a request body must arrive at, averaged over
    /// `--body-rate-window-secs` (408 `body_timeout` below it; 0: no floor).
    #[arg(long, env = "LOOKALIKE_BODY_MIN_BYTES_PER_SEC", default_value_t = 1024)]
    pub body_min_bytes_per_sec: u64,
    /// Seconds the request body rate is averaged over.
    #[arg(long, env = "LOOKALIKE_BODY_RATE_WINDOW_SECS", default_value_t = 10)]
    pub body_rate_window_secs: u64,
    /// Seconds a response write may make no progress (a client that does not read) before the
    /// connection is closed.
    #[arg(long, env = "LOOKALIKE_WRITE_STALL_SECS", default_value_t = 15)]
    pub write_stall_secs: u64,
    /// Seconds a response may take to be written, from its first byte, before the connection is
    /// closed.
    #[arg(long, env = "LOOKALIKE_RESPONSE_TIMEOUT_SECS", default_value_t = 120)]
    pub response_timeout_secs: u64,
    /// Most request bodies one client address may have in flight (waiting for memory or being
    /// read) at once; 429 `concurrency_limited` beyond (0: no cap).
    #[arg(long, env = "LOOKALIKE_MAX_BODIES_PER_ADDRESS", default_value_t = 8)]
    pub max_bodies_per_address: usize,
    /// Most upload slots one client address may hold or wait for at once; 429
    /// `concurrency_limited` beyond (0: no cap).
    #[arg(long, env = "LOOKALIKE_MAX_UPLOADS_PER_ADDRESS", default_value_t = 4)]
    pub max_uploads_per_address: usize,
    /// Most body memory one client address may hold at once, in MiB; 429 `concurrency_limited`
    /// beyond, except for an address's only body (0: no cap).
    #[arg(
        long,
        env = "LOOKALIKE_BODY_MEMORY_PER_ADDRESS_MIB",
        default_value_t = 48
    )]
    pub body_memory_per_address_mib: usize,
}

impl EdgeConfig {
    /// Seconds as a duration; zero is clamped to one second, so that every deadline exists.
    fn secs(s: u64) -> Duration {
        Duration::from_secs(s.max(1))
    }

    /// The header deadline.
    pub fn header_timeout(&self) -> Duration {
        Self::secs(self.header_timeout_secs)
    }

    /// The keep-alive idle deadline.
    pub fn keep_alive(&self) -> Duration {
        Self::secs(self.keep_alive_secs)
    }

    /// The whole-body deadline.
    pub fn body_timeout(&self) -> Duration {
        Self::secs(self.body_timeout_secs)
    }

    /// The between-chunks deadline.
    pub fn body_idle_timeout(&self) -> Duration {
        Self::secs(self.body_idle_timeout_secs)
    }

    /// How long a closing connection drains.
    pub fn linger(&self) -> Duration {
        Self::secs(self.linger_secs)
    }

    /// The memory budget for request bodies, with its caps per client address.
    pub fn body_budget(&self) -> ByteBudget {
        ByteBudget::new(
            self.body_memory_mib << 20,
            Duration::from_millis(self.body_memory_max_wait_ms),
        )
        .with_address_caps(AddressCaps {
            bodies: self.max_bodies_per_address,
            bytes: (self.body_memory_per_address_mib as u64) << 20,
        })
    }

    /// The window a request body's rate is averaged over.
    pub fn body_rate_window(&self) -> Duration {
        Self::secs(self.body_rate_window_secs)
    }

    /// The response write stall bound.
    pub fn write_stall(&self) -> Duration {
        Self::secs(self.write_stall_secs)
    }

    /// The response write deadline.
    pub fn response_timeout(&self) -> Duration {
        Self::secs(self.response_timeout_secs)
    }
}

/// Upload caps and slots.
#[derive(Debug, Clone, Args, Serialize)]
pub struct UploadConfig {
    /// Largest photo accepted, in bytes (413 beyond).
    #[arg(long, env = "LOOKALIKE_MAX_PHOTO_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_photo_bytes: usize,
    /// Most photos in one request.
    #[arg(long, env = "LOOKALIKE_MAX_PHOTOS", default_value_t = 8)]
    pub max_photos: usize,
    /// Most photos in one report.
    #[arg(long, env = "LOOKALIKE_MAX_REPORT_PHOTOS", default_value_t = 5)]
    pub max_report_photos: usize,
    /// Uploads read, validated and stored at once; others wait.
    #[arg(long, env = "LOOKALIKE_UPLOAD_PERMITS", default_value_t = 10)]
    pub upload_permits: usize,
    /// Most uploads waiting for a slot; beyond it, 503 at once.
    #[arg(long, env = "LOOKALIKE_UPLOAD_MAX_WAITERS", default_value_t = 100)]
    pub upload_max_waiters: usize,
    /// Milliseconds an upload waits for a slot before 503 + Retry-After.
    #[arg(long, env = "LOOKALIKE_UPLOAD_MAX_WAIT_MS", default_value_t = 5000)]
    pub upload_max_wait_ms: u64,
}

impl ServerSettings {
    /// Settings from the configuration.
    pub fn from_config(c: &EdgeConfig) -> Self {
        ServerSettings {
            max_connections: c.max_connections.max(1),
            header_timeout: c.header_timeout(),
            keep_alive: c.keep_alive(),
            body: BodyDeadlines {
                total: c.body_timeout(),
                idle: c.body_idle_timeout(),
                min_bytes_per_sec: c.body_min_bytes_per_sec,
                rate_window: c.body_rate_window(),
            },
            linger: c.linger(),
            linger_max_bytes: (c.linger_max_mib as u64) << 20,
            write_stall: c.write_stall(),
            response_timeout: c.response_timeout(),
        }
    }
}
