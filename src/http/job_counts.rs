//! Job counts across all processes for `/metrics` and `/v1/status`, read from the database at
//! most once a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{JobCounts, Store};

/// How long job counts are reused before the database is asked again.
const JOB_COUNTS_TTL: Duration = Duration::from_secs(1);

/// Job counts across all processes, read from the database at most once a second and by one
/// request at a time, however many scrapes and status calls arrive: they cannot tie up the pool.
#[derive(Debug, Default)]
pub struct JobCountsCache {
    /// The last answer and when it was read (`None` inside: the database did not answer).
    last: Mutex<Option<(Instant, Option<JobCounts>)>>,
    /// Held while one request reads fresh counts.
    refreshing: tokio::sync::Mutex<()>,
}

impl JobCountsCache {
    /// Counts at most a second old; while another request reads them, the previous ones.
    pub async fn get(&self, store: &Store) -> Option<JobCounts> {
        if let Some((at, counts)) = self.latest()
            && at.elapsed() < JOB_COUNTS_TTL
        {
            return counts;
        }
        let Ok(_refreshing) = self.refreshing.try_lock() else {
            return self.latest().and_then(|(_, counts)| counts);
        };
        let counts = store.jobs().counts().await.ok();
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), counts.clone()));
        counts
    }

    /// The last answer read, and when.
    fn latest(&self) -> Option<(Instant, Option<JobCounts>)> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
