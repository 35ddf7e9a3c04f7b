//! The socket under a connection: write deadlines (a stalled or endless response closes it) and
//! the lingering close that reads and discards what the client still sends.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::Activity;
use super::stats::ConnectionStats;

/// A connection's socket: reports reads to the watchdog, and lingers when hyper shuts it down.
pub(super) struct LingeringIo {
    pub(super) stream: TcpStream,
    pub(super) activity: Arc<Activity>,
    pub(super) linger: Duration,
    pub(super) linger_max_bytes: u64,
    pub(super) stats: Arc<ConnectionStats>,
    pub(super) closing: Closing,
    pub(super) writing: WriteClock,
}

/// The clocks of a connection's response writes: how long the current write has made no
/// progress, and how long the current response has been written.
pub(super) struct WriteClock {
    pub(super) stall_limit: Duration,
    pub(super) response_limit: Duration,
    /// Fires at the earlier of the two deadlines while a write waits.
    pub(super) timer: Pin<Box<Sleep>>,
    /// When the current write began to wait, if it waits.
    pub(super) stalled_since: Option<Instant>,
    /// The request number whose response is being written, and when its first byte was.
    pub(super) response: Option<(u64, Instant)>,
}

impl WriteClock {
    pub(super) fn new(stall_limit: Duration, response_limit: Duration) -> Self {
        WriteClock {
            stall_limit,
            response_limit,
            timer: Box::pin(tokio::time::sleep(stall_limit)),
            stalled_since: None,
            response: None,
        }
    }
}

/// Why a response write was given up.
pub(super) enum WriteCut {
    Stalled,
    TooLong,
}

pub(super) enum Closing {
    Open,
    Draining {
        deadline: Pin<Box<Sleep>>,
        drained: u64,
    },
    Closed,
}

impl AsyncRead for LingeringIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl LingeringIo {
    /// Runs one write under the write clocks: a write that waits longer than the stall limit,
    /// or a response written longer than its limit, fails (hyper then closes the connection).
    pub(super) fn timed_write(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let now = Instant::now();
        let request = self.activity.requests.load(Ordering::SeqCst);
        let clock = &mut self.writing;
        let began = match clock.response {
            Some((number, began)) if number == request => began,
            _ => {
                clock.response = Some((request, now));
                now
            }
        };
        let polled = write(Pin::new(&mut self.stream), cx);
        let cut = match polled {
            Poll::Pending => {
                let since = *clock.stalled_since.get_or_insert(now);
                if since == now {
                    self.activity.write_blocked.store(true, Ordering::SeqCst);
                    let stall = since + clock.stall_limit;
                    let whole = began + clock.response_limit;
                    clock.timer.as_mut().reset(stall.min(whole).into());
                }
                if clock.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if now.duration_since(since) >= clock.stall_limit {
                    WriteCut::Stalled
                } else {
                    WriteCut::TooLong
                }
            }
            ready => {
                clock.stalled_since = None;
                self.activity.write_blocked.store(false, Ordering::SeqCst);
                if now.duration_since(began) < clock.response_limit {
                    return ready;
                }
                WriteCut::TooLong
            }
        };
        self.activity.write_blocked.store(false, Ordering::SeqCst);
        let (counter, what) = match cut {
            WriteCut::Stalled => (&self.stats.write_stalls, "the client read nothing"),
            WriteCut::TooLong => (
                &self.stats.response_timeouts,
                "the response took too long to write",
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
    }
}

impl AsyncWrite for LingeringIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.timed_write(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.timed_write(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Sends FIN, then reads and discards until the client closes too, or the linger time or
    /// byte bound is spent. Never fails: the connection is over either way.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.closing {
                Closing::Open => {
                    if Pin::new(&mut this.stream).poll_shutdown(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.closing = Closing::Draining {
                        deadline: Box::pin(tokio::time::sleep(this.linger)),
                        drained: 0,
                    };
                }
                Closing::Draining { deadline, drained } => {
                    if deadline.as_mut().poll(cx).is_ready() || *drained > this.linger_max_bytes {
                        this.stats.linger_cut.fetch_add(1, Ordering::Relaxed);
                        this.closing = Closing::Closed;
                        continue;
                    }
                    let mut sink = [0u8; 16 * 1024];
                    let mut buf = ReadBuf::new(&mut sink);
                    match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            let n = buf.filled().len() as u64;
                            *drained += n;
                            this.stats.lingered_bytes.fetch_add(n, Ordering::Relaxed);
                        }
                        // The client closed (or the socket failed): nothing left to protect.
                        Poll::Ready(_) => this.closing = Closing::Closed,
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}
