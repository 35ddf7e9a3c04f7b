//! lookalike: turns photos into embeddings and finds look-alike photos.
//!
//! The modules follow the architecture: `config` (typed settings), `telemetry` (logs), `imaging`
//! (bytes → model input), `inference` (the ONNX model and the gate every run passes), `store`
//! (PostgreSQL + pgvector), `rate_limit` and `tenants` (protection), `http` (the axum service), and
//! `service` (wiring them together).

pub mod config;
pub mod http;
pub mod imaging;
pub mod inference;
pub mod jobs;
pub mod limits;
pub mod pipeline;
pub mod rate_limit;
pub mod reports;
pub mod search;
pub mod service;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod tenants;
