//! The connection loop in front of the router: what happens before a handler runs.
//!
//! - At most `max_connections` are open; a connection beyond that gets a short `503` and is
//!   closed, so a flood of sockets cannot take the process's file descriptors or memory.
//! - A connection has `header_timeout` to send a request's headers (from its first byte, or from
//!   the accept for the first request) and may stay idle `keep_alive` between requests. hyper's
//!   own header timer also runs while the connection is idle, so it cannot tell the two apart:
//!   a small watchdog per connection keeps both deadlines instead.
//! - Request bodies have deadlines and a least rate of their own (`body::DeadlineBody`).
//! - Responses: a write that makes no progress for `write_stall` (a client that does not read),
//!   or a response still being written `response_timeout` after it began, closes the
//!   connection, counted as such (not as idle: a connection whose answer is stuck is not idle).
//! - Every connection closes by *lingering*: it stops writing, then reads and discards what the
//!   client still sends, within a time and byte bound. An answer sent before the request body was
//!   read (413, 429, 503, 401, 408) then reaches a client that writes its whole body before it
//!   reads (Python's requests, OkHttp, most SDKs), instead of being destroyed by the reset that the
//!   kernel sends when a socket closes with unread data.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower_service::Service;

use super::body::{BodyDeadlines, DeadlineBody};

mod linger;
mod stats;
use linger::{Closing, LingeringIo, WriteClock};
pub use stats::{ConnectionSnapshot, ConnectionStats};

/// Connections that get the short 503 at once; beyond them a refused connection is just closed.
const MAX_REFUSING: usize = 64;

/// How long after a stop a connection that has not begun a request yet waits for its first one.
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(1);

/// Largest request head (request line and headers) a client may send.
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Settings of the connection loop.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Most open connections.
    pub max_connections: usize,
    /// Deadline for a request's headers.
    pub header_timeout: Duration,
    /// Deadline for an idle kept-alive connection.
    pub keep_alive: Duration,
    /// Deadlines for request bodies.
    pub body: BodyDeadlines,
    /// How long a closing connection keeps draining what the client sends.
    pub linger: Duration,
    /// Most bytes drained per closing connection.
    pub linger_max_bytes: u64,
    /// Longest a response write may make no progress before the connection is closed.
    pub write_stall: Duration,
    /// Longest a response may take to be written, from its first byte.
    pub response_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` turns true, then waits for the open connections to
/// finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    stats: Arc<ConnectionStats>,
    mut stop: watch::Receiver<bool>,
) {
    let max = u32::try_from(settings.max_connections).unwrap_or(u32::MAX >> 4);
    let admission = Admission {
        router,
        slots: Arc::new(Semaphore::new(max as usize)),
        refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        settings: Arc::new(settings),
        stats,
    };
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection that died in the backlog: wait a
                    // moment rather than spin.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        admission.admit(stream, peer, stop.clone());
    }
    // Connections the kernel completed before the stop wait in the backlog, their requests
    // most likely sent: closing the listener would reset them (measured: 8 or 9 requests lost
    // per SIGTERM under 12 clients). They are served too (each answers the request it has, then
    // closes, as every connection does once stopping).
    if let Ok(listener) = listener.into_std() {
        for _ in 0..max {
            match listener.accept() {
                Ok((stream, peer)) => {
                    if let Ok(stream) = stream
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(stream))
                    {
                        admission.admit(stream, peer, stop.clone());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
        }
        // New connections are refused by the kernel from now on, rather than left in the backlog.
        drop(listener);
    }
    // Every connection holds a slot: all are back when all connections are closed.
    let _ = admission.slots.acquire_many(max).await;
}

/// What the accept loop gives each new connection: a slot (or a short refusal), the router and
/// the settings.
struct Admission {
    router: Router,
    slots: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    settings: Arc<ServerSettings>,
    stats: Arc<ConnectionStats>,
}

impl Admission {
    /// Serves `stream` on a task of its own, or refuses it when every slot is taken.
    fn admit(&self, stream: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) {
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let connection = Connection {
                    router: self.router.clone(),
                    settings: self.settings.clone(),
                    stats: self.stats.clone(),
                    peer,
                };
                tokio::spawn(async move {
                    let _slot = slot;
                    connection.run(stream, stop).await;
                });
            }
            Err(_) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                if let Ok(permit) = self.refusing.clone().try_acquire_owned() {
                    let linger = self.settings.linger.min(Duration::from_secs(2));
                    tokio::spawn(async move {
                        let _permit = permit;
                        refuse(stream, linger).await;
                    });
                }
            }
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Answers a connection over the cap with a 503 and closes it, draining briefly.
async fn refuse(mut stream: TcpStream, linger: Duration) {
    const BODY: &str = r#"{"code":"overloaded","message":"too many open connections; retry shortly","reason":"connections","retry_after_seconds":1}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         x-content-type-options: nosniff\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(linger, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// One accepted connection.
struct Connection {
    router: Router,
    settings: Arc<ServerSettings>,
    stats: Arc<ConnectionStats>,
    peer: SocketAddr,
}

/// Why the watchdog ended a connection.
enum Expired {
    /// Idle between requests.
    Idle,
    /// A request's headers did not arrive in time.
    Header,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut stop: watch::Receiver<bool>) {
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        let _open = DecrementOnDrop(&self.stats.open);
        let activity = Arc::new(Activity::new());
        let io = LingeringIo {
            stream,
            activity: activity.clone(),
            linger: self.settings.linger,
            linger_max_bytes: self.settings.linger_max_bytes,
            stats: self.stats.clone(),
            closing: Closing::Open,
            writing: WriteClock::new(self.settings.write_stall, self.settings.response_timeout),
        };
        let service = {
            let (router, activity, timeouts) = (
                self.router.clone(),
                activity.clone(),
                self.stats.body_cuts.clone(),
            );
            let (peer, deadlines) = (self.peer, self.settings.body);
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let busy = activity.begin_request();
                let mut router = router.clone();
                let mut request = request
                    .map(|body| Body::new(DeadlineBody::new(body, deadlines, timeouts.clone())));
                request.extensions_mut().insert(ConnectInfo(peer));
                async move {
                    let response = router.call(request).await?;
                    Ok::<_, Infallible>(
                        response.map(|body| Body::new(Tracked { body, _busy: busy })),
                    )
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // The watchdog keeps the header deadline (see the module doc).
            .header_read_timeout(None)
            .max_header_size(MAX_HEADER_BYTES)
            .keep_alive(true);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let mut connection = std::pin::pin!(connection);
        let first = activity.clone();
        let watchdog = watchdog(
            activity,
            self.settings.header_timeout,
            self.settings.keep_alive,
        );
        let mut watchdog = std::pin::pin!(watchdog);
        // On a graceful shutdown hyper closes at once a connection that has read nothing yet, so
        // a client that has just sent its first request would get no answer (measured: 5 to 10
        // requests per SIGTERM under 12 clients). The stop reaches such a connection once its
        // first request begins (hyper then answers it and closes), or FIRST_REQUEST_WAIT later.
        let shutdown = async {
            stopped(&mut stop).await;
            if !first.used.load(Ordering::SeqCst) {
                let _ = tokio::time::timeout(FIRST_REQUEST_WAIT, first.first_request()).await;
            }
        };
        let mut shutdown = std::pin::pin!(shutdown);
        let (mut closing, mut stopping) = (false, false);
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, peer = %self.peer, "connection ended with an error");
                    }
                    break;
                }
                expired = watchdog.as_mut(), if !closing => match expired {
                    Expired::Idle => {
                        self.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    Expired::Header => {
                        self.stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                },
                () = shutdown.as_mut(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Waits until the connection's current phase outlives its deadline.
async fn watchdog(activity: Arc<Activity>, header: Duration, idle: Duration) -> Expired {
    loop {
        let notified = activity.changed.notified();
        let (phase, since) = activity.state();
        let limit = match phase {
            Phase::Idle => idle,
            Phase::Head => header,
            Phase::Busy => {
                // No deadline while a request runs: its body has its own, and its handler's waits
                // are bounded where they happen.
                notified.await;
                continue;
            }
        };
        tokio::time::sleep_until((activity.epoch + since + limit).into()).await;
        if phase == Phase::Idle && activity.write_blocked.load(Ordering::SeqCst) {
            // The last answer is not delivered: the connection is not idle but stuck, and the
            // write stall bound closes it (counted as that).
            tokio::time::sleep(limit).await;
            continue;
        }
        if activity.state() == (phase, since) {
            return match phase {
                Phase::Idle => Expired::Idle,
                _ => Expired::Header,
            };
        }
    }
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests.
    Idle = 0,
    /// Reading a request's headers (or waiting for the first request).
    Head = 1,
    /// A request is being handled.
    Busy = 2,
}

/// A connection's phase and when it began; written by the IO and the service, read by the watchdog.
struct Activity {
    epoch: Instant,
    phase: AtomicU8,
    /// Milliseconds from `epoch` to the start of the phase.
    since_ms: AtomicU64,
    in_flight: AtomicUsize,
    changed: Notify,
    /// Requests begun on the connection (a new number: a new response to time).
    requests: AtomicU64,
    /// A response write is waiting for the client to read.
    write_blocked: AtomicBool,
    /// A request has begun on the connection.
    used: AtomicBool,
    /// Notified when the first request begins.
    first: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            // The first request's headers are due `header_timeout` after the accept.
            phase: AtomicU8::new(Phase::Head as u8),
            since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
            requests: AtomicU64::new(0),
            write_blocked: AtomicBool::new(false),
            used: AtomicBool::new(false),
            first: Notify::new(),
        }
    }

    /// Resolves once the connection's first request has begun.
    async fn first_request(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches it even if it is not polled yet.
            let begun = self.first.notified();
            if self.used.load(Ordering::SeqCst) {
                return;
            }
            begun.await;
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn state(&self) -> (Phase, Duration) {
        let phase = match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Idle,
            1 => Phase::Head,
            _ => Phase::Busy,
        };
        (
            phase,
            Duration::from_millis(self.since_ms.load(Ordering::SeqCst)),
        )
    }

    fn enter(&self, phase: Phase) {
        self.since_ms.store(self.now_ms(), Ordering::SeqCst);
        self.phase.store(phase as u8, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Bytes arrived: on an idle connection they start a request's headers.
    fn on_read(&self) {
        if self.phase.load(Ordering::SeqCst) == Phase::Idle as u8 {
            self.enter(Phase::Head);
        }
    }

    fn begin_request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.enter(Phase::Busy);
        if !self.used.swap(true, Ordering::SeqCst) {
            self.first.notify_waiters();
        }
        InFlight(self.clone())
    }
}

/// A request in flight on its connection, until its response body is sent (or dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.enter(Phase::Idle);
        }
    }
}

/// A response body that marks its request finished when it is dropped.
struct Tracked {
    body: Body,
    _busy: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked").finish_non_exhaustive()
    }
}

struct DecrementOnDrop<'a>(&'a AtomicUsize);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
