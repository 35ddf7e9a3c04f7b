//! Bounded concurrency for work outside the gate (decoding, uploads): at most `permits` at once,
//! at most `max_waiters` waiting, each for at most `max_wait`; and the byte budget for request
//! bodies held in memory. Both can also cap what one client address holds of them, so that one
//! address cannot take every slot or all the memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The client's address already holds its share.
    #[error(
        "this address already holds its share of {name} (at most {cap}); retry when one of its requests finishes"
    )]
    PerAddress {
        name: &'static str,
        cap: u64,
        retry_after: Duration,
    },
}

impl CapacityError {
    /// When to retry.
    pub fn retry_after(&self) -> Duration {
        match self {
            CapacityError::Full { retry_after, .. }
            | CapacityError::Timeout { retry_after, .. }
            | CapacityError::PerAddress { retry_after, .. } => *retry_after,
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
    /// Most slots (held or waited for) per client address; 0: no cap.
    per_address_cap: AtomicUsize,
    per_address: Arc<PerAddress>,
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
    /// Callers turned away because their address already held its share.
    pub per_address_rejected_total: u64,
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
            (
                "per_address_rejections_total",
                "counter",
                "Callers turned away because their address already held its share (429).",
                self.per_address_rejected_total as f64,
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
        out.single(
            "lookalike_body_memory_per_address_rejections_total",
            "counter",
            "Requests refused (429) because their address already held its share of body memory.",
            self.per_address_memory_rejected_total as f64,
        );
        out.single(
            "lookalike_bodies_per_address_rejections_total",
            "counter",
            "Requests refused (429) because their address already had its most bodies in flight.",
            self.per_address_bodies_rejected_total as f64,
        );
    }
}

/// What work run in a slot gives: its value, or its panic (`Err` inside), or no slot in time.
pub type Ran<T> = Result<Result<T, tokio::task::JoinError>, CapacityError>;

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
            per_address_cap: AtomicUsize::new(0),
            per_address: Arc::default(),
        }
    }

    /// Caps the slots one client address may hold or wait for at once (0: no cap).
    pub fn set_per_address_cap(&self, cap: usize) {
        self.per_address_cap.store(cap, Ordering::Relaxed);
    }

    /// Waits (bounded) for a slot, as [`Slots::acquire`], counted against `address`'s share:
    /// an address that already holds or waits for its share is refused at once.
    pub async fn acquire_for(
        &self,
        address: Option<IpAddr>,
    ) -> Result<AddressPermit, CapacityError> {
        let cap = self.per_address_cap.load(Ordering::Relaxed) as u64;
        let share = match address {
            Some(address) if cap > 0 => Some(self.per_address.take(address, 1, cap).ok_or(
                CapacityError::PerAddress {
                    name: self.name,
                    cap,
                    retry_after: Duration::from_secs(1),
                },
            )?),
            _ => None,
        };
        Ok(AddressPermit {
            _permit: self.acquire().await?,
            _share: share,
        })
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
    pub async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Ran<T> {
        self.run_on(tokio::task::spawn_blocking, work).await
    }

    /// As [`Slots::run_blocking`], on a compute thread (below the async threads' priority:
    /// crate::compute).
    pub async fn run_compute<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Ran<T> {
        self.run_on(crate::compute::spawn, work).await
    }

    /// Runs `work` where `spawn` puts it once a slot is free, the slot held until it returns.
    async fn run_on<T: Send + 'static>(
        &self,
        spawn: impl FnOnce(Box<dyn FnOnce() -> T + Send>) -> tokio::task::JoinHandle<T>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Ran<T> {
        let permit = self.acquire().await?;
        let held = move || {
            let _permit = permit;
            work()
        };
        Ok(spawn(Box::new(held)).await)
    }

    /// The current state.
    pub fn snapshot(&self) -> SlotsSnapshot {
        SlotsSnapshot {
            permits: self.permits,
            in_use: self.permits - self.semaphore.available_permits().min(self.permits),
            waiting: self.waiting.load(Ordering::Relaxed),
            rejected_total: self.rejected.load(Ordering::Relaxed),
            per_address_rejected_total: self.per_address.refused(),
        }
    }
}

/// A slot taken for a client address; the slot and the address's share return when dropped.
#[derive(Debug)]
pub struct AddressPermit {
    _permit: OwnedSemaphorePermit,
    _share: Option<AddressShare>,
}

/// What each client address holds of one limit, so that one address cannot hold more than its
/// share. Only addresses that hold something have an entry: the map is bounded by the requests
/// in flight (themselves bounded by the connection cap).
#[derive(Debug, Default)]
pub struct PerAddress {
    held: Mutex<HashMap<IpAddr, u64>>,
    refused: AtomicU64,
}

impl PerAddress {
    /// Adds `amount` to what `address` holds, unless it would then hold more than `cap`; an
    /// address that holds nothing may take any amount (one request larger than the share is
    /// still served, alone). `None` (counted as refused) when it does not fit.
    pub fn take(self: &Arc<Self>, address: IpAddr, amount: u64, cap: u64) -> Option<AddressShare> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = held.get(&address).copied().unwrap_or(0);
        if now > 0 && now.saturating_add(amount) > cap {
            drop(held);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        held.insert(address, now.saturating_add(amount));
        Some(AddressShare {
            ledger: self.clone(),
            address,
            amount,
        })
    }

    /// What `address` holds now.
    pub fn held(&self, address: IpAddr) -> u64 {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&address).copied().unwrap_or(0)
    }

    /// Takes refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn give_back(&self, address: IpAddr, amount: u64) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(now) = held.get_mut(&address) {
            *now = now.saturating_sub(amount);
            if *now == 0 {
                held.remove(&address);
            }
        }
    }
}

/// An amount held by one address in a [`PerAddress`] ledger; given back when dropped.
#[derive(Debug)]
pub struct AddressShare {
    ledger: Arc<PerAddress>,
    address: IpAddr,
    amount: u64,
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        self.ledger.give_back(self.address, self.amount);
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
    caps: AddressCaps,
    /// Bodies in flight per address.
    bodies: Arc<PerAddress>,
    /// KiB reserved per address.
    memory: Arc<PerAddress>,
}

/// What one client address may hold of a [`ByteBudget`] (0: no cap).
#[derive(Debug, Clone, Copy, Default)]
pub struct AddressCaps {
    /// Request bodies in flight (waiting for memory or being read).
    pub bodies: usize,
    /// Bytes reserved.
    pub bytes: u64,
}

/// Bytes reserved from a [`ByteBudget`]; returned when dropped.
#[derive(Debug)]
pub struct BytesReserved {
    _permit: OwnedSemaphorePermit,
    _share: Option<AddressShare>,
}

/// A request body counted against its address's most bodies in flight; given back when dropped.
#[derive(Debug)]
pub struct BodyPlace {
    _share: Option<AddressShare>,
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
    /// Requests turned away because their address already held its share of the memory.
    pub per_address_memory_rejected_total: u64,
    /// Requests turned away because their address already had its most bodies in flight.
    pub per_address_bodies_rejected_total: u64,
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
            caps: AddressCaps::default(),
            bodies: Arc::default(),
            memory: Arc::default(),
        }
    }

    /// The same budget with caps on what one client address may hold of it.
    pub fn with_address_caps(mut self, caps: AddressCaps) -> Self {
        self.caps = caps;
        self
    }

    /// The caps per client address.
    pub fn address_caps(&self) -> AddressCaps {
        self.caps
    }

    /// A place for one more body of `address`, refused (429) when the address already has its
    /// most bodies in flight. Hold it while the body is read and used.
    pub fn body_place(&self, address: Option<IpAddr>) -> Result<BodyPlace, CapacityError> {
        let cap = self.caps.bodies as u64;
        let share = match address {
            Some(address) if cap > 0 => Some(self.bodies.take(address, 1, cap).ok_or(
                CapacityError::PerAddress {
                    name: "bodies",
                    cap,
                    retry_after: Duration::from_secs(1),
                },
            )?),
            _ => None,
        };
        Ok(BodyPlace { _share: share })
    }

    /// Bytes `address` has reserved now.
    pub fn reserved_by(&self, address: IpAddr) -> u64 {
        self.memory.held(address) * 1024
    }

    fn kib(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib)
    }

    /// Counts `bytes` against `address`'s share of the memory (the budget itself is reserved
    /// apart), or refuses when it already holds its share.
    pub fn address_share(
        &self,
        address: Option<IpAddr>,
        bytes: u64,
    ) -> Result<Option<AddressShare>, CapacityError> {
        self.address_kib(address, self.kib(bytes))
    }

    /// `address`'s share of the memory for `kib` more, or a refusal when it holds its share.
    fn address_kib(
        &self,
        address: Option<IpAddr>,
        kib: u32,
    ) -> Result<Option<AddressShare>, CapacityError> {
        let cap_kib = self.caps.bytes.div_ceil(1024);
        match address {
            Some(address) if cap_kib > 0 => self
                .memory
                .take(address, u64::from(kib), cap_kib)
                .map(Some)
                .ok_or(CapacityError::PerAddress {
                    name: "body_memory",
                    cap: self.caps.bytes,
                    retry_after: Duration::from_secs(1),
                }),
            _ => Ok(None),
        }
    }

    /// Reserves `bytes` for `address` at once if the budget has room: `Ok(None)` when it has not
    /// (wait with [`ByteBudget::reserve_for`]); refused when the address holds its share.
    pub fn try_reserve_for(
        &self,
        address: Option<IpAddr>,
        bytes: u64,
    ) -> Result<Option<BytesReserved>, CapacityError> {
        let kib = self.kib(bytes);
        let share = self.address_kib(address, kib)?;
        Ok(self
            .semaphore
            .clone()
            .try_acquire_many_owned(kib)
            .ok()
            .map(|permit| BytesReserved {
                _permit: permit,
                _share: share,
            }))
    }

    /// Reserves `bytes` as [`ByteBudget::reserve`], counted against `address`'s share of the
    /// budget: an address that holds its share is refused at once (429) rather than made to
    /// wait, so that it cannot take the memory others wait for.
    pub async fn reserve_for(
        &self,
        address: Option<IpAddr>,
        bytes: u64,
    ) -> Result<BytesReserved, CapacityError> {
        let share = self.address_kib(address, self.kib(bytes))?;
        let mut reserved = self.reserve(bytes).await?;
        reserved._share = share;
        Ok(reserved)
    }

    /// Reserves `bytes` (a request larger than the whole budget takes all of it), waiting at most
    /// the budget's `max_wait` for others to finish.
    pub async fn reserve(&self, bytes: u64) -> Result<BytesReserved, CapacityError> {
        let kib = self.kib(bytes);
        if let Ok(permit) = self.semaphore.clone().try_acquire_many_owned(kib) {
            return Ok(BytesReserved {
                _permit: permit,
                _share: None,
            });
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = DecrementOnDrop(&self.waiting);
        let acquire = self.semaphore.clone().acquire_many_owned(kib);
        match tokio::time::timeout(self.max_wait, acquire).await {
            Ok(Ok(permit)) => Ok(BytesReserved {
                _permit: permit,
                _share: None,
            }),
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
            per_address_memory_rejected_total: self.memory.refused(),
            per_address_bodies_rejected_total: self.bodies.refused(),
        }
    }
}

struct DecrementOnDrop<'a>(&'a AtomicUsize);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The number of cores this process may use (at least 1).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests;
