//! Bounded concurrency for work outside the gate (decoding, uploads): at most `permits` at once,
//! at most `max_waiters` waiting, each for at most `max_wait`; and the byte budget for request
//! bodies held in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::prometheus::Exposition;

/// Why a slot was not granted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapacityError {
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

impl CapacityError {
    /// When to retry.
    pub fn retry_after(&self) -> Duration {
        match self {
            CapacityError::Full { retry_after, .. }
            | CapacityError::Timeout { retry_after, .. } => *retry_after,
        }
    }
}

/// A named, bounded semaphore with metrics.
#[derive(Debug)]
pub struct Slots {
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
pub struct SlotsSnapshot {
    /// Slots in all.
    pub permits: usize,
    /// Slots taken now.
    pub in_use: usize,
    /// Callers waiting for a slot.
    pub waiting: usize,
    /// Callers turned away since start.
    pub rejected_total: u64,
}

impl SlotsSnapshot {
    /// Prometheus lines for the limit called `name` (e.g. `decode`, `upload`).
    pub fn render(&self, name: &str, out: &mut Exposition) {
        let labels = [("limit", name)];
        for (metric, kind, help, value) in [
            (
                "slots_in_use",
                "gauge",
                "Slots taken now.",
                self.in_use as f64,
            ),
            (
                "waiting",
                "gauge",
                "Callers waiting for a slot.",
                self.waiting as f64,
            ),
            (
                "rejections_total",
                "counter",
                "Callers turned away.",
                self.rejected_total as f64,
            ),
        ] {
            let metric = format!("lookalike_{name}_{metric}");
            out.help(&metric, kind, help);
            out.sample(&metric, &labels, value);
        }
    }
}

impl BudgetSnapshot {
    /// Prometheus lines: the budget, what is reserved, who waits, who was refused.
    pub fn render(&self, out: &mut Exposition) {
        out.single(
            "lookalike_body_memory_bytes",
            "gauge",
            "Memory for request bodies in all.",
            self.total_bytes as f64,
        );
        out.single(
            "lookalike_body_memory_reserved_bytes",
            "gauge",
            "Memory reserved now for request bodies being read.",
            self.reserved_bytes as f64,
        );
        out.single(
            "lookalike_body_memory_waiting",
            "gauge",
            "Requests waiting for body memory.",
            self.waiting as f64,
        );
        out.single(
            "lookalike_body_memory_rejections_total",
            "counter",
            "Requests refused (503) for want of body memory.",
            self.rejected_total as f64,
        );
    }
}

impl Slots {
    /// A limit of `permits` slots (at least one).
    pub fn new(name: &'static str, permits: usize, max_waiters: usize, max_wait: Duration) -> Self {
        let permits = permits.max(1);
        Slots {
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
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, CapacityError> {
        let retry_after = Duration::from_secs(1);
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = DecrementOnDrop(&self.waiting);
        if waiting >= self.max_waiters {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(CapacityError::Full {
                name: self.name,
                retry_after,
            });
        }
        match tokio::time::timeout(self.max_wait, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout if it ever is.
            Ok(Err(_)) | Err(_) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(CapacityError::Timeout {
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
    ) -> Result<Result<T, tokio::task::JoinError>, CapacityError>
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
    pub fn snapshot(&self) -> SlotsSnapshot {
        SlotsSnapshot {
            permits: self.permits,
            in_use: self.permits - self.semaphore.available_permits().min(self.permits),
            waiting: self.waiting.load(Ordering::Relaxed),
            rejected_total: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Memory for request bodies: a request reserves its body's size before reading it and gives it
/// back when its answer is sent, so the bytes held for bodies never exceed the budget, however
/// many clients send at once. Counted in KiB (a tokio semaphore counts up to `u32` per request).
#[derive(Debug)]
pub struct ByteBudget {
    semaphore: Arc<Semaphore>,
    total_kib: u32,
    max_wait: Duration,
    waiting: AtomicUsize,
    rejected: AtomicU64,
}

/// Bytes reserved from a [`ByteBudget`]; returned when dropped.
#[derive(Debug)]
pub struct BytesReserved {
    _permit: OwnedSemaphorePermit,
}

/// The state of a byte budget.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetSnapshot {
    /// The budget, bytes.
    pub total_bytes: u64,
    /// Reserved now, bytes.
    pub reserved_bytes: u64,
    /// Requests waiting for room.
    pub waiting: usize,
    /// Requests turned away since start.
    pub rejected_total: u64,
}

impl ByteBudget {
    /// A budget of `total_bytes` (at least 1 MiB); a reservation waits at most `max_wait`.
    pub fn new(total_bytes: usize, max_wait: Duration) -> Self {
        let total_kib = u32::try_from((total_bytes / 1024).max(1024)).unwrap_or(u32::MAX >> 4);
        ByteBudget {
            semaphore: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            max_wait,
            waiting: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// Reserves `bytes` (a request larger than the whole budget takes all of it), waiting at most
    /// the budget's `max_wait` for others to finish.
    pub async fn reserve(&self, bytes: u64) -> Result<BytesReserved, CapacityError> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        if let Ok(permit) = self.semaphore.clone().try_acquire_many_owned(kib) {
            return Ok(BytesReserved { _permit: permit });
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = DecrementOnDrop(&self.waiting);
        let acquire = self.semaphore.clone().acquire_many_owned(kib);
        match tokio::time::timeout(self.max_wait, acquire).await {
            Ok(Ok(permit)) => Ok(BytesReserved { _permit: permit }),
            Ok(Err(_)) | Err(_) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(CapacityError::Timeout {
                    name: "body memory",
                    waited: self.max_wait,
                    retry_after: Duration::from_secs(1),
                })
            }
        }
    }

    /// The current state.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let free = self
            .semaphore
            .available_permits()
            .min(self.total_kib as usize) as u64;
        BudgetSnapshot {
            total_bytes: u64::from(self.total_kib) * 1024,
            reserved_bytes: (u64::from(self.total_kib) - free) * 1024,
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
        let limit = Arc::new(Slots::new("test", 1, 1, Duration::from_millis(50)));
        let held = limit.acquire().await.unwrap();
        let waiter = {
            let limit = limit.clone();
            tokio::spawn(async move { limit.acquire().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(matches!(
            limit.acquire().await,
            Err(CapacityError::Full { .. })
        ));
        assert!(matches!(
            waiter.await.unwrap(),
            Err(CapacityError::Timeout { .. })
        ));
        drop(held);
        assert!(limit.acquire().await.is_ok());
        assert_eq!(limit.snapshot().rejected_total, 2);
        assert_eq!(limit.snapshot().waiting, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_holds_bytes_until_they_are_given_back() {
        let budget = Arc::new(ByteBudget::new(4 << 20, Duration::from_millis(100)));
        let first = budget.reserve(3 << 20).await.unwrap();
        assert_eq!(budget.snapshot().reserved_bytes, 3 << 20);
        // 2 MiB more do not fit: the wait ends at max_wait.
        assert!(matches!(
            budget.reserve(2 << 20).await,
            Err(CapacityError::Timeout { .. })
        ));
        // They fit as soon as the first reservation is dropped while waiting.
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(2 << 20).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(budget.snapshot().waiting, 1);
        drop(first);
        assert!(waiter.await.unwrap().is_ok());
        // More than the whole budget takes all of it rather than never fitting.
        let all = budget.reserve(1 << 40).await.unwrap();
        assert_eq!(budget.snapshot().reserved_bytes, 4 << 20);
        drop(all);
        assert_eq!(budget.snapshot().reserved_bytes, 0);
        assert_eq!(budget.snapshot().rejected_total, 1);
    }
}
