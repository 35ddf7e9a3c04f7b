//! lookalike: turns photos into embeddings and finds look-alike photos.
//!
//! The modules, from the foundations up; each imports only modules listed before it. HTTP stays
//! at the edge: nothing below `http` knows axum; only `store` runs SQL and only `photo_store`
//! touches stored photo bytes.
//!
//! - **Domain types**: `domain` (reports and photos, jobs' payloads and states, search filters,
//!   modes and matches, messages, the open limits): plain data and their validation, importing
//!   nothing else of the crate, so the store returns them and the services above use them.
//! - **Foundations**: `telemetry` (logs, histograms, Prometheus text, per-request timing).
//! - **Bounded resources**: `capacity` (slots for decoding and uploads, the byte budget for
//!   request bodies) and `rate_limit` (per-client quotas per route class); `tenants` (API keys).
//! - **Model**: `imaging` (bytes → model input, pure functions) and `inference` (the model behind
//!   a `BatchRunner`, and the gate every run passes: a pure queue plus permits).
//! - **Persistence**: `store` (PostgreSQL + pgvector; all SQL lives here) and `photo_store`
//!   (photo bytes and thumbnails in an object store).
//! - **Services**: `pipeline` (a photo's path to its embedding), `reports` (reports and their
//!   photos), `messages` (visitors' messages relayed to a report's owner), `search` (nearest
//!   reports, matches), `jobs` (durable background work), `sweep` (the photo store reconciled
//!   with the database).
//! - **Edge**: `http` (the connection loop, body limits and deadlines, thin handlers, the one
//!   error → response mapping, the OpenAPI document).
//! - **Events**: `events` (what happens to a report, heard by every replica through
//!   LISTEN/NOTIFY, fanned out to live streams) and `webhooks` (those events POSTed, signed,
//!   through the job queue).
//! - **Configuration**: `config` (typed settings, every one a flag and an env variable), on top:
//!   the conversions from settings to each part's own types live with it.
//! - **Wiring**: `service` (parts → state → serve, graceful shutdown); `main.rs` is the CLI.

pub mod capacity;
pub mod config;
pub mod domain;
pub mod events;
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
pub mod webhooks;
