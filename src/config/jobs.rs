//! Background jobs.

use clap::Args;
use serde::Serialize;
use std::time::Duration;

use crate::jobs::JobSettings;

/// Background jobs (durable, in PostgreSQL).
#[derive(Debug, Clone, Args, Serialize)]
pub struct JobsConfig {
    /// Job workers in this process (0: none; another process does the jobs). A worker is an async
    /// task; 4 keep the gate fed while others read photos and write results.
    #[arg(
        long = "job-workers",
        env = "LOOKALIKE_JOB_WORKERS",
        default_value_t = 4
    )]
    pub workers: usize,
    /// Seconds a claimed job stays locked; a worker renews it while it runs, and a job whose
    /// worker died is reclaimed once it expires.
    #[arg(
        long = "job-lease-secs",
        env = "LOOKALIKE_JOB_LEASE_SECS",
        default_value_t = 30
    )]
    pub lease_secs: u64,
    /// Milliseconds between polls when no notification arrives (LISTEN/NOTIFY wakes workers at once).
    #[arg(
        long = "job-poll-ms",
        env = "LOOKALIKE_JOB_POLL_MS",
        default_value_t = 1000
    )]
    pub poll_ms: u64,
    /// Attempts before a job is marked failed.
    #[arg(
        long = "job-max-attempts",
        env = "LOOKALIKE_JOB_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; it doubles per attempt, with jitter.
    #[arg(
        long = "job-backoff-ms",
        env = "LOOKALIKE_JOB_BACKOFF_MS",
        default_value_t = 1000
    )]
    pub backoff_ms: u64,
    /// Longest retry delay in milliseconds.
    #[arg(
        long = "job-backoff-max-ms",
        env = "LOOKALIKE_JOB_BACKOFF_MAX_MS",
        default_value_t = 300_000
    )]
    pub backoff_max_ms: u64,
    /// Hours a finished (done) job is kept before it is pruned (0: kept forever). Failed jobs
    /// are kept: reports show their error.
    #[arg(
        long = "job-retention-hours",
        env = "LOOKALIKE_JOB_RETENTION_HOURS",
        default_value_t = 24
    )]
    pub retention_hours: u64,
}

impl JobSettings {
    /// Settings from the configuration.
    pub fn from_config(c: &JobsConfig) -> Self {
        JobSettings {
            workers: c.workers,
            lease: Duration::from_secs(c.lease_secs.max(1)),
            poll: Duration::from_millis(c.poll_ms.max(10)),
            backoff: Duration::from_millis(c.backoff_ms),
            backoff_max: Duration::from_millis(c.backoff_max_ms.max(c.backoff_ms)),
        }
    }
}
