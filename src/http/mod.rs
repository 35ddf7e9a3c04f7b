//! The HTTP service: the connection loop (`server`), the routes (`router`), shared state, thin
//! handlers that read the request, call the domain (pipeline, store) and map errors in one
//! place (`error`).

pub mod body;
mod body_errors;
mod embeddings;
pub mod error;
mod error_code;
mod events;
mod form_schema;
mod health;
mod job_counts;
mod messages;
mod middleware;
mod multipart;
mod nearby;
pub mod openapi;
mod paging;
pub mod protect;
mod report_body;
mod reports;
mod router;
mod search;
pub mod server;
mod share;
mod share_html;
mod state;
mod web;

pub use error::{ApiError, ErrorCode};
pub use multipart::PhotoCaps;
pub use protect::{Caller, Protection};
pub use router::{MetricsRoute, metrics_router, router, routes};
pub use state::AppState;
