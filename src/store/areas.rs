//! The store's methods by area, so that a call site names what it touches:
//! `store.jobs().claim(..)`, `store.reports().create(..)`. Each handle is a `Copy` borrow of the
//! pool; its methods live beside their SQL (`impl Jobs<'_>` in jobs.rs, and so on).

use sqlx::PgPool;

use super::Store;

/// Reports: recording, reading, listing (also near a place and by breed), owners' changes.
#[derive(Debug, Clone, Copy)]
pub struct Reports<'a> {
    pub(super) pool: &'a PgPool,
    /// Wakes the job workers after a creation commits (`None`: inline).
    pub(super) wake: Option<&'a super::queue::Wake>,
}

/// Photos' embeddings and labels: saved with their job, read back, and searched by similarity.
#[derive(Debug, Clone, Copy)]
pub struct Photos<'a> {
    pub(super) pool: &'a PgPool,
}

/// Stored possible matches between reports.
#[derive(Debug, Clone, Copy)]
pub struct Matches<'a> {
    pub(super) pool: &'a PgPool,
}

/// Blobs (a photo's bytes, content-addressed) as rows: their objects, purge, cleaning, sweep.
#[derive(Debug, Clone, Copy)]
pub struct Blobs<'a> {
    pub(super) pool: &'a PgPool,
}

/// The durable job queue: claiming, leases, outcomes, bulk enqueues, counts.
#[derive(Debug, Clone, Copy)]
pub struct Jobs<'a> {
    pub(super) pool: &'a PgPool,
}

/// Models: registration, their vector indexes, reindexing, retirement.
#[derive(Debug, Clone, Copy)]
pub struct Models<'a> {
    pub(super) pool: &'a PgPool,
    /// How its vector indexes are built.
    pub(super) vector_index: super::VectorIndex,
}

/// Messages relayed to a report's owner.
#[derive(Debug, Clone, Copy)]
pub struct Messages<'a> {
    pub(super) pool: &'a PgPool,
}

/// Tenants and their storage quota.
#[derive(Debug, Clone, Copy)]
pub struct Tenants<'a> {
    pub(super) pool: &'a PgPool,
}

/// The open service's usage: bytes per client address per day, and the open store's total.
#[derive(Debug, Clone, Copy)]
pub struct Usage<'a> {
    pub(super) pool: &'a PgPool,
}

/// Webhook targets and the delivery log.
#[derive(Debug, Clone, Copy)]
pub struct Webhooks<'a> {
    pub(super) pool: &'a PgPool,
}

impl Store {
    /// Reports.
    pub fn reports(&self) -> Reports<'_> {
        Reports {
            pool: &self.pool,
            wake: Some(&self.wake),
        }
    }

    /// Photos' embeddings, labels and similarity search.
    pub fn photos(&self) -> Photos<'_> {
        Photos { pool: &self.pool }
    }

    /// Stored matches between reports.
    pub fn matches(&self) -> Matches<'_> {
        Matches { pool: &self.pool }
    }

    /// Blobs (photo bytes as rows).
    pub fn blobs(&self) -> Blobs<'_> {
        Blobs { pool: &self.pool }
    }

    /// The job queue.
    pub fn jobs(&self) -> Jobs<'_> {
        Jobs { pool: &self.pool }
    }

    /// Models.
    pub fn models(&self) -> Models<'_> {
        Models {
            pool: &self.pool,
            vector_index: self.vector_index,
        }
    }

    /// Messages to report owners.
    pub fn messages(&self) -> Messages<'_> {
        Messages { pool: &self.pool }
    }

    /// Tenants.
    pub fn tenants(&self) -> Tenants<'_> {
        Tenants { pool: &self.pool }
    }

    /// The open service's usage.
    pub fn usage(&self) -> Usage<'_> {
        Usage { pool: &self.pool }
    }

    /// Webhook targets and deliveries.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks { pool: &self.pool }
    }
}
