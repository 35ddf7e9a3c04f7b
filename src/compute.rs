//! The compute threads: photo decoding and model runs, on their own thread pool at a lower OS
//! priority (a higher nice value), so that when both want the cores the async runtime's threads
//! win: they answer report creation, searches and health checks in a few milliseconds each,
//! while a decode or a model run takes tens (issue 25: report creation while the gate is
//! saturated). ONNX Runtime's own intra-op threads inherit the priority of the thread that
//! creates the session, so sessions are created here too.
//!
//! Bounded by its callers: every task comes through the decode slots or a gate permit.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

/// The nice value compute threads take when none is configured (`--compute-nice`).
pub const DEFAULT_COMPUTE_NICE: i32 = 10;

/// Most compute threads alive at once: far above the decode slots plus gate permits that bound
/// the work, so that no task ever waits for a thread.
const MAX_THREADS: usize = 256;

static NICE: AtomicI32 = AtomicI32::new(DEFAULT_COMPUTE_NICE);
static POOL: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();

/// Sets the nice value of compute threads started from now on (0: the process's own priority).
/// Values beyond Linux's 0..=19 are clamped.
/// Call it at start, before the first photo or model run.
pub fn set_nice(nice: i32) {
    NICE.store(nice.clamp(0, 19), Ordering::Relaxed);
}

/// The nice value compute threads take.
pub fn nice() -> i32 {
    NICE.load(Ordering::Relaxed)
}

/// Lowers the calling thread's priority to the configured nice value (Linux nice is per thread
/// and inherited by the threads it starts); never raises it (that needs privileges).
fn lower_priority() {
    let nice = nice();
    #[cfg(target_os = "linux")]
    // SAFETY: getpriority/setpriority on the calling thread's id; no memory is touched.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        if libc::getpriority(libc::PRIO_PROCESS, tid) >= nice {
            return;
        }
        if libc::setpriority(libc::PRIO_PROCESS, tid, nice) != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot lower the priority of a compute thread");
        }
    }
}

/// The pool; `None` when its runtime cannot start (then the caller's runtime runs the work).
fn pool() -> Option<&'static tokio::runtime::Runtime> {
    POOL.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(MAX_THREADS)
            .thread_name("lookalike-compute")
            .on_thread_start(lower_priority)
            .build()
            .inspect_err(|e| tracing::warn!(error = %e, "no compute pool: decoding and model runs share the async runtime's blocking threads"))
            .ok()
    })
    .as_ref()
}

/// Runs `work` on a compute thread; the handle can be awaited from any runtime. From a
/// current-thread runtime (tests and one-shot tools; the service's runtime is multi-threaded)
/// and with nice 0 it stays on that runtime's own blocking pool, which a paused test clock
/// knows about (it does not jump ahead while blocking work runs).
pub fn spawn<T, F>(work: F) -> tokio::task::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let current_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
    match pool() {
        Some(pool) if !current_thread && nice() > 0 => pool.spawn_blocking(work),
        _ => tokio::task::spawn_blocking(work),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn thread_nice() -> i32 {
        // SAFETY: getpriority on the calling thread's id.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn compute_threads_run_below_the_callers_priority() {
        let own = thread_nice();
        let theirs = spawn(thread_nice).await.unwrap();
        assert_eq!(theirs, own.max(DEFAULT_COMPUTE_NICE), "own {own}");
        assert_eq!(thread_nice(), own, "the caller's thread keeps its priority");
    }
}
