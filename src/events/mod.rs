//! Report events: what happens to a report after it is posted (its photos ready or failed, a new
//! possible match, resolved, deleted), published by the store through PostgreSQL `NOTIFY` in the
//! transaction that makes the change, so every replica hears of it once it is committed.
//!
//! Two consumers: the live stream of a report (`hub`: one `LISTEN` connection per process, fanned
//! out in memory to the `GET /v1/reports/{id}/events` streams) and webhooks (`crate::webhooks`:
//! jobs queued in the same transaction, delivered by the job workers).

pub mod hub;

pub use crate::domain::event::{
    EVENTS_CHANNEL, MatchEvent, Notice, ReportEvent, ReportRef, StatusEvent,
};
pub use hub::{EventHub, EventSettings, EventStats, EventStream, SubscribeError};
