//! The integration tests, as one binary with a module per area: each test binary links the
//! whole crate, which on two cores was most of CI's build time. Shared fixtures live in `common`.
//! Run one area with `cargo test --test it <area>::`, e.g. `cargo test --test it edge::`.

mod browser;
mod common;
mod concurrency;
mod crash;
mod deletion;
mod edge;
mod embeddings_api;
mod foundation;
mod gate;
mod int8;
mod job_lease;
mod jpeg;
mod labels;
mod lifecycle;
mod models;
mod observability;
mod openapi;
mod outage;
mod protection;
mod reports;
mod reports_under_load;
#[cfg(feature = "s3")]
mod s3;
mod search;
mod workers_apart;
