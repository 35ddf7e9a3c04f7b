//! Log output.

use clap::{Args, ValueEnum};
use serde::Serialize;

/// Log output.
#[derive(Debug, Clone, Args, Serialize)]
pub struct LogConfig {
    /// Log format.
    #[arg(long, env = "LOOKALIKE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info,lookalike=debug`).
    #[arg(long, env = "LOOKALIKE_LOG", default_value = "info", global = true)]
    pub log_filter: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}
