//! Logging: a tracing subscriber writing pretty or JSON lines.

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber writing `filter`'s events as pretty lines or, with
/// `json`, one JSON object a line; an invalid filter falls back to `info`.
pub fn init(filter: &str, json: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, embedded use) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

pub mod histogram;
pub mod prometheus;
pub mod timing;

pub use histogram::{Histogram, HistogramSnapshot};
