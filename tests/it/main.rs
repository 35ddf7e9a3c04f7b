//! The integration tests, as one binary with a module per area: each test binary links the
//! whole crate, which on two cores was most of CI's build time. Shared fixtures live in `common`.
//! Run one area with `cargo test --test it <area>::`, e.g. `cargo test --test it edge::`.

mod browser;
mod browser_nearby;
mod browser_page;
mod common;
mod concurrency;
mod crash;
mod decode_budget;
mod deletion;
mod detector;
mod edge;
mod embeddings_api;
mod events;
mod formats;
mod foundation;
mod gate;
mod hostile_input;
mod int8;
mod job_lease;
mod jpeg;
mod labels;
mod lifecycle;
mod metadata;
mod models;
mod nearby;
mod observability;
mod open_limits;
mod openapi;
mod outage;
mod poster;
mod privacy;
mod protection;
mod reports;
mod reports_under_load;
mod rolling_update;
#[cfg(feature = "s3")]
mod s3;
mod search;
mod slow_clients;
mod subject;
mod webhooks;
mod workers_apart;
