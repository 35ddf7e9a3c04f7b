//! Bounded concurrency for CPU work outside the gate (decoding; later uploads): at most `permits`
//! at once, at most `max_waiters` waiting, each for at most `max_wait`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a slot was not granted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    /// Too many already wait.
    #[error("too many {name} requests are waiting")]
    Full {
        name: &'static str,
        retry_after: Duration,
    },
    /// Waited too long.
    #[error("no free {name} slot within {waited:?}")]
    Timeout {
        name: &'static str,
        waited: Duration,
        retry_after: Duration,
    },
}

impl LimitError {
    /// When to retry.
    pub fn retry_after(&self) -> Duration {
        match self {
            LimitError::Full { retry_after, .. } | LimitError::Timeout { retry_after, .. } => {
                *retry_after
            }
        }
    }
}

/// A named, bounded semaphore with metrics.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    name: &'static str,
    semaphore: Arc<Semaphore>,
    permits: usize,
    max_waiters: usize,
    max_wait: Duration,
    waiting: AtomicUsize,
    rejected: AtomicU64,
}

/// The state of a limit.
#[derive(Debug, Clone, Serialize)]
pub struct LimitSnapshot {
    /// Slots in all.
    pub permits: usize,
    /// Slots taken now.
    pub in_use: usize,
    /// Callers waiting for a slot.
    pub waiting: usize,
    /// Callers turned away since start.
    pub rejected_total: u64,
}

impl ConcurrencyLimit {
    /// A limit of `permits` slots (at least one).
    pub fn new(name: &'static str, permits: usize, max_waiters: usize, max_wait: Duration) -> Self {
        let permits = permits.max(1);
        ConcurrencyLimit {
            name,
            semaphore: Arc::new(Semaphore::new(permits)),
            permits,
            max_waiters,
            max_wait,
            waiting: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// Waits (bounded) for a slot.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, LimitError> {
        let retry_after = Duration::from_secs(1);
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = DecrementOnDrop(&self.waiting);
        if waiting >= self.max_waiters {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(LimitError::Full {
                name: self.name,
                retry_after,
            });
        }
        match tokio::time::timeout(self.max_wait, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout if it ever is.
            Ok(Err(_)) | Err(_) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(LimitError::Timeout {
                    name: self.name,
                    waited: self.max_wait,
                    retry_after,
                })
            }
        }
    }

    /// Runs `work` on the blocking pool once a slot is free; the slot is held until `work` returns,
    /// even if the caller stops waiting. `Ok(Err(_))` carries a panic of `work`.
    pub async fn run_blocking<T, F>(
        &self,
        work: F,
    ) -> Result<Result<T, tokio::task::JoinError>, LimitError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.acquire().await?;
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await)
    }

    /// The current state.
    pub fn snapshot(&self) -> LimitSnapshot {
        LimitSnapshot {
            permits: self.permits,
            in_use: self.permits - self.semaphore.available_permits().min(self.permits),
            waiting: self.waiting.load(Ordering::Relaxed),
            rejected_total: self.rejected.load(Ordering::Relaxed),
        }
    }
}

struct DecrementOnDrop<'a>(&'a AtomicUsize);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounds_waiters_and_wait_time() {
        let limit = Arc::new(ConcurrencyLimit::new(
            "test",
            1,
            1,
            Duration::from_millis(50),
        ));
        let held = limit.acquire().await.unwrap();
        let waiter = {
            let limit = limit.clone();
            tokio::spawn(async move { limit.acquire().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(matches!(
            limit.acquire().await,
            Err(LimitError::Full { .. })
        ));
        assert!(matches!(
            waiter.await.unwrap(),
            Err(LimitError::Timeout { .. })
        ));
        drop(held);
        assert!(limit.acquire().await.is_ok());
        assert_eq!(limit.snapshot().rejected_total, 2);
        assert_eq!(limit.snapshot().waiting, 0);
    }
}
