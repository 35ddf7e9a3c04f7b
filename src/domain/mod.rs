//! Domain types: reports and their photos, jobs' payloads and states, search filters, modes and
//! matches, messages, the open service's limits, report events and webhook deliveries. Plain
//! data and their validation; they import nothing else of the crate, so the store returns them
//! and the services above both use them.

pub mod event;
pub mod job;
pub mod limits;
pub mod message;
pub mod report;
pub mod search;
pub mod webhook;
