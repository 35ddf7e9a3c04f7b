//! Request bodies at the edge: deadlines while they arrive, a size limit per route checked against
//! `Content-Length` before anything is read, and the size a handler reserves memory for.

use std::error::Error as StdError;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::{HeaderMap, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::MethodRouter;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// Framing and text fields of a multipart body, on top of its photos.
pub const MULTIPART_OVERHEAD: usize = 256 * 1024;

/// Deadlines of a request body, counted from the handler's first read.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlines {
    /// The whole body.
    pub total: Duration,
    /// The longest pause between two chunks.
    pub idle: Duration,
}

/// A request body that did not arrive in time (answered 408 `body_timeout`).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time: {what}")]
pub struct BodyTimeout {
    what: String,
}

impl BodyTimeout {
    /// The timeout somewhere in an error's chain of causes, if that is what the error is.
    pub fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a BodyTimeout> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(timeout) = e.downcast_ref::<BodyTimeout>() {
                return Some(timeout);
            }
            next = e.source();
        }
        None
    }
}

/// A request body with a total deadline and a deadline between chunks. Both start when the
/// handler first reads it, so time spent waiting for a slot before reading does not count
/// against the client; once reading, a client that stalls or trickles loses its place.
pub struct DeadlineBody {
    inner: Incoming,
    deadlines: BodyDeadlines,
    total: Option<Pin<Box<Sleep>>>,
    pause: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    expired: bool,
    /// Bodies cut at their deadline (shown as `lookalike_body_timeouts_total`).
    timeouts: Arc<AtomicU64>,
}

impl DeadlineBody {
    /// `inner` under `deadlines`; cuts are counted in `timeouts`.
    pub fn new(inner: Incoming, deadlines: BodyDeadlines, timeouts: Arc<AtomicU64>) -> Self {
        DeadlineBody {
            inner,
            deadlines,
            total: None,
            pause: None,
            waiting: false,
            expired: false,
            timeouts,
        }
    }

    fn expire(&mut self, what: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.expired = true;
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Some(Err(Box::new(BodyTimeout { what }))))
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
        let total = this.deadlines.total;
        let total = this
            .total
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(total)));
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(other) => return Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {}
        }
        if total.as_mut().poll(cx).is_ready() {
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

/// A request body's size as its client declared it, and the most its route allows: what a
/// handler reserves from the body budget before reading. A body of undeclared size (chunked)
/// reserves the route's whole limit: it may grow to that.
#[derive(Debug, Clone, Copy)]
pub struct BodySize {
    /// `Content-Length`, when given (already checked against `limit`).
    pub declared: Option<u64>,
    /// The route's limit.
    pub limit: usize,
}

impl BodySize {
    /// Bytes to reserve: the declared size, or the route's limit for a body of unknown size.
    pub fn to_reserve(self) -> u64 {
        self.declared.unwrap_or(self.limit as u64)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BodySize {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<BodySize>()
            .copied()
            .unwrap_or(BodySize {
                declared: content_length(&parts.headers),
                limit: usize::MAX,
            }))
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
    mut request: Request,
    next: Next,
) -> Result<Response, BodyTooLarge> {
    // The header, or the body's own exact size (a body built in-process has no header).
    let declared = content_length(request.headers()).or(request.body().size_hint().exact());
    if let Some(size) = declared.filter(|&size| size > max as u64) {
        return Err(BodyTooLarge { size, max });
    }
    request.extensions_mut().insert(BodySize {
        declared,
        limit: max,
    });
    Ok(next.run(request).await)
}

/// A body whose declared size is over its route's limit (answered 413 before it is read).
#[derive(Debug, thiserror::Error)]
#[error("the request body ({size} bytes) is larger than this route accepts ({max} bytes)")]
pub struct BodyTooLarge {
    /// The declared size.
    pub size: u64,
    /// The route's limit.
    pub max: usize,
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
