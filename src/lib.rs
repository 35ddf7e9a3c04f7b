//! lookalike: turns photos into embeddings and finds look-alike photos.
//!
//! The modules, from the foundations up. HTTP stays at the edge: nothing below `http` knows
//! axum; only `store` runs SQL and only `photo_store` touches stored photo bytes. The store
//! returns domain types, so it names some of `reports`' and `jobs`' types, never the other way
//! round.
//!
//! - **Foundations**: `config` (typed settings, every one a flag and an env variable) and
//!   `telemetry` (logs, histograms, Prometheus text, per-request timing).
//! - **Bounded resources**: `capacity` (slots for decoding and uploads, the byte budget for
//!   request bodies) and `rate_limit` (per-client quotas per route class); `tenants` (API keys).
//! - **Model**: `imaging` (bytes → model input, pure functions) and `inference` (the model behind
//!   a `BatchRunner`, and the gate every run passes: a pure queue plus permits).
//! - **Persistence**: `store` (PostgreSQL + pgvector; all SQL lives here) and `photo_store`
//!   (photo bytes and thumbnails in an object store).
//! - **Domain**: `pipeline` (a photo's path to its embedding), `reports` (reports and their
//!   photos), `messages` (visitors' messages relayed to a report's owner), `search` (nearest
//!   reports, matches), `jobs` (durable background work and its typed
//!   payloads, including the purge of deleted photos), `sweep` (the photo store reconciled with
//!   the database).
//! - **Edge**: `http` (the connection loop, body limits and deadlines, thin handlers, the one
//!   error → response mapping, the OpenAPI document).
//! - **Wiring**: `service` (parts → state → serve, graceful shutdown); `main.rs` is the CLI.

pub mod capacity;
pub mod compute;
pub mod config;
pub mod domain;
pub mod http;
pub mod imaging;
pub mod inference;
pub mod jobs;
pub mod messages;
pub mod photo_store;
pub mod pipeline;
pub mod rate_limit;
pub mod reports;
pub mod search;
pub mod service;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod tenants;
