//! Request bodies at the edge: deadlines and a minimum rate while they arrive, a size limit per
//! route checked against `Content-Length` before anything is read, and the memory a handler
//! reserves for a body: its declared size at once, or, for a body of undeclared size (chunked),
//! as its chunks arrive.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRef, FromRequestParts, Request, State};
use axum::http::{HeaderMap, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::MethodRouter;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

pub use super::body_errors::{BodyRefused, BodyTimeout, BodyTooLarge};
use super::protect::Protection;
use crate::capacity::{AddressShare, BodyPlace, ByteBudget, BytesReserved, CapacityError};

/// Framing and text fields of a multipart body, on top of its photos.
pub const MULTIPART_OVERHEAD: usize = 256 * 1024;

/// Deadlines of a request body, counted from the handler's first read.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlines {
    /// The whole body.
    pub total: Duration,
    /// The longest pause between two chunks.
    pub idle: Duration,
    /// The least a body must send per second, averaged over `rate_window` (0: no floor).
    pub min_bytes_per_sec: u64,
    /// The window the rate is averaged over.
    pub rate_window: Duration,
}

/// Bodies cut at the edge, by cause (shared with the connection loop's counters).
#[derive(Debug, Default)]
pub struct BodyCuts {
    /// Cut at a deadline (total or pause).
    pub timeouts: AtomicU64,
    /// Cut for arriving below the minimum rate.
    pub too_slow: AtomicU64,
}

/// A request body with a total deadline, a deadline between chunks and a minimum rate averaged
/// over a window. All start when the handler first reads it, so time spent waiting for a slot
/// before reading does not count against the client; once reading, a client that stalls or
/// trickles loses its place: a byte every few seconds keeps no place for the whole deadline.
pub struct DeadlineBody {
    inner: Incoming,
    deadlines: BodyDeadlines,
    total: Option<Pin<Box<Sleep>>>,
    pause: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    expired: bool,
    /// The end of the current rate window, and the bytes received in it.
    window: Option<Pin<Box<Sleep>>>,
    window_bytes: u64,
    /// Bodies cut (shown as `lookalike_body_timeouts_total` and `lookalike_body_too_slow_total`).
    cuts: Arc<BodyCuts>,
}

impl DeadlineBody {
    /// `inner` under `deadlines`; cuts are counted in `cuts`.
    pub fn new(inner: Incoming, deadlines: BodyDeadlines, cuts: Arc<BodyCuts>) -> Self {
        DeadlineBody {
            inner,
            deadlines,
            total: None,
            pause: None,
            waiting: false,
            expired: false,
            window: None,
            window_bytes: 0,
            cuts,
        }
    }

    fn expire(&mut self, what: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.expired = true;
        self.cuts.timeouts.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Some(Err(Box::new(BodyTimeout { what }))))
    }

    /// At the end of each window: too few bytes in it cut the body (408), else a new window.
    fn check_rate(&mut self, cx: &mut Context<'_>) -> Option<String> {
        let floor = self.deadlines.min_bytes_per_sec;
        if floor == 0 {
            return None;
        }
        let length = self.deadlines.rate_window;
        let window = self
            .window
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(length)));
        if window.as_mut().poll(cx).is_pending() {
            return None;
        }
        let least = floor.saturating_mul(length.as_secs().max(1));
        if self.window_bytes < least {
            return Some(format!(
                "{} bytes in {length:?}, below the least rate of {floor} bytes/s",
                self.window_bytes
            ));
        }
        self.window_bytes = 0;
        window.as_mut().reset(Instant::now() + length);
        // Registers the new window's wake-up.
        let _ = window.as_mut().poll(cx);
        None
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(None);
        }
        if this.total.is_none() {
            this.total = Some(Box::pin(tokio::time::sleep(this.deadlines.total)));
            this.window = Some(Box::pin(tokio::time::sleep(this.deadlines.rate_window)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                if let Some(data) = frame.data_ref() {
                    this.window_bytes += data.len() as u64;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(other) => return Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {}
        }
        if let Some(what) = this.check_rate(cx) {
            this.expired = true;
            this.cuts.too_slow.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout { what }))));
        }
        if let Some(total) = this.total.as_mut()
            && total.as_mut().poll(cx).is_ready()
        {
            let what = format!("the whole body takes more than {:?}", this.deadlines.total);
            return this.expire(what);
        }
        // The pause clock starts when the reader starts waiting, not when it last got data: a
        // handler busy with one chunk is not the client's delay.
        let pause_limit = this.deadlines.idle;
        let pause = this
            .pause
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause_limit)));
        if !this.waiting {
            this.waiting = true;
            pause.as_mut().reset(Instant::now() + pause_limit);
        }
        if pause.as_mut().poll(cx).is_ready() {
            let what = format!("no data for {pause_limit:?}");
            return this.expire(what);
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The most a route's body may hold.
#[derive(Debug, Clone, Copy)]
struct BodyLimit(usize);

/// A request body's size as its client declared it, the most its route allows, and who sent
/// it: what a handler reserves body memory for, with [`BodySize::reserve`], before reading.
#[derive(Debug, Clone)]
pub struct BodySize {
    /// `Content-Length`, when given (already checked against `limit`).
    pub declared: Option<u64>,
    /// The route's limit.
    pub limit: usize,
    /// The client's address (the peer, or its `X-Forwarded-For` from a trusted proxy); none
    /// for a request made in-process.
    pub client: Option<IpAddr>,
    /// Meters a body of undeclared size as it arrives (set by the route's body limit).
    meter: Option<Arc<Meter>>,
}

impl BodySize {
    /// Bytes a body may grow to: the declared size, or the route's limit for a body of unknown
    /// size.
    pub fn to_reserve(&self) -> u64 {
        self.declared.unwrap_or(self.limit as u64)
    }

    /// Memory for this body from `budget`, held until the returned guard is dropped. A body
    /// holds about what it sent, so that a trickled body holds no memory that others wait for:
    /// - a declared size reserves its first [`METER_STEP`] at once (waiting, bounded, for room:
    ///   a body that fits in it, most bodies but photos, is served exactly as reserved), and the
    ///   rest in one piece once that much has arrived; the whole declared size counts at once
    ///   against the client's share of the memory;
    /// - a body of undeclared size (chunked) reserves as its chunks arrive, step by step, not its
    ///   route's whole limit, each step counted against the client's share.
    ///
    /// Either counts against the client's most bodies in flight; beyond a share, 429.
    pub async fn reserve(&self, budget: &Arc<ByteBudget>) -> Result<BodyMemory, CapacityError> {
        let place = budget.body_place(self.client)?;
        let Some(meter) = &self.meter else {
            // A body this layer did not see (an in-process request without a body limit).
            return Ok(BodyMemory {
                _place: place,
                _share: None,
                _reserved: Some(budget.reserve_for(self.client, self.to_reserve()).await?),
                _meter: None,
            });
        };
        let share = match self.declared {
            Some(declared) => {
                let share = budget.address_share(self.client, declared)?;
                let first = declared.min(METER_STEP);
                meter.add(budget.reserve(first).await?, first);
                share
            }
            None => None,
        };
        // Set once: a request's body is read by one handler.
        let _ = meter.attached.set(Attached {
            budget: budget.clone(),
            client: self.client,
            limit: self.limit as u64,
            declared: self.declared,
        });
        Ok(BodyMemory {
            _place: place,
            _share: share,
            _reserved: None,
            _meter: Some(meter.clone()),
        })
    }
}

/// A body's memory and its place among its client's bodies; returned when dropped (after the
/// handler is done with what it read, not when the body ends).
#[derive(Debug)]
pub struct BodyMemory {
    _place: BodyPlace,
    _share: Option<AddressShare>,
    _reserved: Option<BytesReserved>,
    _meter: Option<Arc<Meter>>,
}

impl<S> FromRequestParts<S> for BodySize
where
    Arc<Protection>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|peer| {
                Arc::<Protection>::from_ref(state).client_address(peer.0.ip(), &parts.headers)
            });
        let mut size = parts
            .extensions
            .get::<BodySize>()
            .cloned()
            .unwrap_or(BodySize {
                declared: content_length(&parts.headers),
                limit: usize::MAX,
                client: None,
                meter: None,
            });
        size.client = client;
        Ok(size)
    }
}

/// Gives `route` a body limit of `max` bytes: a declared `Content-Length` beyond it is refused
/// with 413 before anything is read, and a body of undeclared size is cut at `max` (413 too).
pub fn with_body_limit<S>(route: MethodRouter<S>, max: usize) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route
        .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
            BodyLimit(max),
            check_declared_size,
        ))
        .layer(DefaultBodyLimit::max(max))
}

async fn check_declared_size(
    State(BodyLimit(max)): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Result<Response, BodyTooLarge> {
    // The header, or the body's own exact size (a body built in-process has no header).
    let declared = content_length(request.headers()).or(request.body().size_hint().exact());
    if let Some(size) = declared.filter(|&size| size > max as u64) {
        return Err(BodyTooLarge { size, max });
    }
    // The body is metered as it arrives (see `BodySize::reserve`).
    let meter = Arc::<Meter>::default();
    let mut request = {
        let meter = meter.clone();
        request.map(|body| Body::new(MeteredBody::new(body, meter)))
    };
    request.extensions_mut().insert(BodySize {
        declared,
        limit: max,
        client: None,
        meter: Some(meter),
    });
    Ok(next.run(request).await)
}

/// Where a metered body reserves from, once its handler asked for memory.
#[derive(Debug)]
struct Attached {
    budget: Arc<ByteBudget>,
    client: Option<IpAddr>,
    limit: u64,
    /// The declared size, whose share of the client's memory is already counted.
    declared: Option<u64>,
}

/// The memory reserved so far for a body of undeclared size, shared by the body (which grows
/// it) and the handler's [`BodyMemory`] (which keeps it until the handler is done).
#[derive(Debug, Default)]
pub struct Meter {
    attached: OnceLock<Attached>,
    reserved: Mutex<Vec<BytesReserved>>,
    reserved_bytes: AtomicU64,
}

/// The first reservation of a declared body, and the least step of an undeclared one's, so that
/// a body of many small chunks makes few.
const METER_STEP: u64 = 256 * 1024;

type Reserving = Pin<Box<dyn Future<Output = Result<BytesReserved, CapacityError>> + Send>>;

/// What growing a meter to cover what arrived came to.
enum Grow {
    /// What arrived is covered.
    Covered,
    /// Wait for this reservation of this many bytes.
    Wait(Reserving, u64),
}

impl Meter {
    /// Makes the reservation cover `received` bytes: at once when the budget has room, else a
    /// wait (bounded by the budget's own wait).
    fn grow(&self, received: u64) -> Result<Grow, CapacityError> {
        let Some(attached) = self.attached.get() else {
            // No handler reserved memory for this body (a route that does not): nothing to do.
            return Ok(Grow::Covered);
        };
        let reserved = self.reserved_bytes.load(Ordering::SeqCst);
        if received <= reserved {
            return Ok(Grow::Covered);
        }
        let need = received - reserved;
        let (step, client) = match attached.declared {
            // The rest of a declared body, once its first step arrived; its client's share was
            // counted for all of it.
            Some(declared) => (declared.saturating_sub(reserved).max(need), None),
            None => (
                need.max(METER_STEP)
                    .min(attached.limit.saturating_sub(reserved))
                    .max(need),
                attached.client,
            ),
        };
        match attached.budget.try_reserve_for(client, step)? {
            Some(bytes) => {
                self.add(bytes, step);
                Ok(Grow::Covered)
            }
            None => {
                let budget = attached.budget.clone();
                let reserving = Box::pin(async move { budget.reserve_for(client, step).await });
                Ok(Grow::Wait(reserving, step))
            }
        }
    }

    fn add(&self, bytes: BytesReserved, size: u64) {
        self.reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(bytes);
        self.reserved_bytes.fetch_add(size, Ordering::SeqCst);
    }
}

/// A body of undeclared size whose memory is reserved as its chunks arrive: each chunk is held
/// back until the reservation covers it.
struct MeteredBody {
    inner: Body,
    meter: Arc<Meter>,
    received: u64,
    held: Option<Frame<Bytes>>,
    waiting: Option<(Reserving, u64)>,
    failed: bool,
}

impl MeteredBody {
    fn new(inner: Body, meter: Arc<Meter>) -> Self {
        MeteredBody {
            inner,
            meter,
            received: 0,
            held: None,
            waiting: None,
            failed: false,
        }
    }
}

impl HttpBody for MeteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            if let Some((reserving, size)) = &mut this.waiting {
                match reserving.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(bytes)) => {
                        this.meter.add(bytes, *size);
                        this.waiting = None;
                    }
                    Poll::Ready(Err(e)) => {
                        this.failed = true;
                        return Poll::Ready(Some(Err(Box::new(BodyRefused(e)))));
                    }
                }
            }
            if let Some(frame) = this.held.take() {
                match this.meter.grow(this.received) {
                    Ok(Grow::Covered) => return Poll::Ready(Some(Ok(frame))),
                    Ok(Grow::Wait(reserving, step)) => {
                        this.held = Some(frame);
                        this.waiting = Some((reserving, step));
                        continue;
                    }
                    Err(e) => {
                        this.failed = true;
                        return Poll::Ready(Some(Err(Box::new(BodyRefused(e)))));
                    }
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        this.received += data.len() as u64;
                    }
                    this.held = Some(frame);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.held.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests;
