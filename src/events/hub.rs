//! The live event streams of one process: one `LISTEN` connection (started with the first
//! stream), its notifications fanned out in memory through a bounded broadcast channel to every
//! open stream, each of which keeps its own report's events.
//!
//! Bounded: streams in all and per client address, a lifetime after which a stream ends (the
//! client reconnects; kept below the connection loop's response deadline), a broadcast buffer (a
//! stream that falls behind it is closed, counted, and its client reconnects to the current state).
//! A stream also ends when the process shuts down, when its report is deleted, and when the
//! `LISTEN` connection is lost (events may have been missed meanwhile).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::{EVENTS_CHANNEL, Notice, ReportEvent};
use crate::store::{Store, StoreError};
use crate::telemetry::prometheus::Exposition;

/// Limits and timings of the live streams.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// Interval of the heartbeat comments (`: hb`) on an idle stream.
    pub heartbeat: Duration,
    /// Streams open at once in this process.
    pub max_streams: usize,
    /// Streams open at once per client address (0: no cap).
    pub max_streams_per_address: usize,
    /// Longest a stream stays open; its client then reconnects.
    pub max_lifetime: Duration,
    /// Events buffered for the streams; a stream further behind is closed.
    pub buffer: usize,
    /// Longest a new stream waits for the `LISTEN` connection before it is refused (503).
    pub listen_wait: Duration,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            heartbeat: Duration::from_secs(15),
            max_streams: 1000,
            max_streams_per_address: 8,
            max_lifetime: Duration::from_secs(100),
            buffer: 1024,
            listen_wait: Duration::from_secs(3),
        }
    }
}

/// Why a stream was not opened.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// No such report for this caller.
    #[error("no such report")]
    NotFound,
    /// The process holds all the streams it may.
    #[error("{max} event streams are open, the most this process holds; retry shortly")]
    Full {
        /// The cap.
        max: usize,
    },
    /// The client address holds all the streams it may.
    #[error("this address already holds {max} event streams, the most it may; close one first")]
    AddressFull {
        /// The cap.
        max: usize,
    },
    /// Events cannot be heard now (no `LISTEN` connection, or the process is stopping).
    #[error("live events are unavailable now; retry shortly")]
    Unavailable,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the broadcast carries.
#[derive(Debug, Clone)]
enum Message {
    /// An event heard.
    Event(Arc<Notice>),
    /// The `LISTEN` connection was lost: events may have been missed.
    Lost,
}

/// Counters of the live streams.
#[derive(Debug, Default)]
pub struct EventStats {
    open: AtomicUsize,
    opened: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    lagged_closed: AtomicU64,
    refused_full: AtomicU64,
    refused_address: AtomicU64,
    notifications: AtomicU64,
    listens_lost: AtomicU64,
}

impl EventStats {
    /// Prometheus lines of the live streams.
    pub fn render(&self, out: &mut Exposition) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        out.single(
            "lookalike_event_streams",
            "gauge",
            "Live event streams (GET /v1/reports/{id}/events) open in this process.",
            self.open.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "lookalike_event_streams_opened_total",
            "counter",
            "Live event streams opened.",
            get(&self.opened),
        );
        out.single(
            "lookalike_events_sent_total",
            "counter",
            "Events sent on live streams (the first status of each stream included).",
            get(&self.sent),
        );
        out.single(
            "lookalike_events_dropped_total",
            "counter",
            "Events a lagging stream missed (it is closed; its client reconnects).",
            get(&self.dropped),
        );
        out.single(
            "lookalike_event_streams_lagging_closed_total",
            "counter",
            "Live streams closed because they fell behind the event buffer.",
            get(&self.lagged_closed),
        );
        out.help(
            "lookalike_event_streams_refused_total",
            "counter",
            "Live streams refused, by the cap that was full.",
        );
        for (scope, n) in [
            ("process", get(&self.refused_full)),
            ("address", get(&self.refused_address)),
        ] {
            out.sample(
                "lookalike_event_streams_refused_total",
                &[("scope", scope)],
                n,
            );
        }
        out.single(
            "lookalike_event_notifications_total",
            "counter",
            "Report events heard through LISTEN/NOTIFY.",
            get(&self.notifications),
        );
        out.single(
            "lookalike_event_listen_lost_total",
            "counter",
            "Times the LISTEN connection of the live streams was lost (their streams are closed).",
            get(&self.listens_lost),
        );
    }
}

/// The live streams of this process; cheap to share (`Arc`).
pub struct EventHub {
    store: Store,
    model_id: i32,
    settings: EventSettings,
    sender: broadcast::Sender<Message>,
    listening: watch::Sender<bool>,
    closed: watch::Sender<bool>,
    listener: Mutex<Option<JoinHandle<()>>>,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    stats: Arc<EventStats>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EventHub {
    /// The streams of reports in `store`, showing `model_id`'s embedding state.
    pub fn new(store: Store, model_id: i32, settings: EventSettings) -> Self {
        let (sender, _) = broadcast::channel(settings.buffer.max(1));
        EventHub {
            store,
            model_id,
            settings,
            sender,
            listening: watch::channel(false).0,
            closed: watch::channel(false).0,
            listener: Mutex::new(None),
            by_address: Mutex::default(),
            stats: Arc::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &EventSettings {
        &self.settings
    }

    /// The counters.
    pub fn stats(&self) -> &EventStats {
        &self.stats
    }

    /// Ends every stream and refuses new ones (the process is stopping: its graceful shutdown
    /// must not wait for streams that never end by themselves).
    pub fn close(&self) {
        self.closed.send_replace(true);
        if let Some(task) = self.lock_listener().take() {
            task.abort();
        }
    }

    /// Opens the stream of report `id` for a caller of `tenant` at `address`: first the
    /// report's current state, then its events as they happen.
    pub async fn subscribe(
        self: &Arc<Self>,
        id: Uuid,
        tenant: Option<&str>,
        address: IpAddr,
    ) -> Result<EventStream, SubscribeError> {
        if *self.closed.borrow() {
            return Err(SubscribeError::Unavailable);
        }
        let slot = self.take_slot(address)?;
        self.start_listening();
        let mut listening = self.listening.subscribe();
        match tokio::time::timeout(self.settings.listen_wait, listening.wait_for(|on| *on)).await {
            Ok(Ok(_)) => {}
            _ => return Err(SubscribeError::Unavailable),
        }
        // Subscribed before the state is read: nothing that happens after the read is missed.
        let events = self.sender.subscribe();
        let first = self
            .store
            .reports()
            .status(id, tenant, self.model_id)
            .await?
            .ok_or(SubscribeError::NotFound)?;
        self.stats.opened.fetch_add(1, Ordering::Relaxed);
        Ok(EventStream {
            report_id: id,
            model_id: self.model_id,
            first: Some(ReportEvent::Status(first)),
            events,
            closed: self.closed.subscribe(),
            deadline: Instant::now() + self.settings.max_lifetime,
            ended: false,
            stats: self.stats.clone(),
            _slot: slot,
        })
    }

    fn take_slot(self: &Arc<Self>, address: IpAddr) -> Result<Slot, SubscribeError> {
        let mut by_address = self
            .by_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = self.stats.open.load(Ordering::SeqCst);
        if open >= self.settings.max_streams {
            self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
            return Err(SubscribeError::Full {
                max: self.settings.max_streams,
            });
        }
        let cap = self.settings.max_streams_per_address;
        let held = by_address.entry(address).or_insert(0);
        if cap > 0 && *held >= cap {
            self.stats.refused_address.fetch_add(1, Ordering::Relaxed);
            return Err(SubscribeError::AddressFull { max: cap });
        }
        *held += 1;
        self.stats.open.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            hub: self.clone(),
            address,
        })
    }

    fn lock_listener(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the `LISTEN` task unless it runs (or the hub is closed).
    fn start_listening(self: &Arc<Self>) {
        let mut task = self.lock_listener();
        if task.is_none() && !*self.closed.borrow() {
            *task = Some(tokio::spawn(listen(self.clone())));
        }
    }
}

/// A stream's place in the caps, given back when the stream is dropped.
struct Slot {
    hub: Arc<EventHub>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_address = self
            .hub
            .by_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = by_address.get_mut(&self.address) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                by_address.remove(&self.address);
            }
        }
        self.hub.stats.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One report's live events.
pub struct EventStream {
    report_id: Uuid,
    model_id: i32,
    first: Option<ReportEvent>,
    events: broadcast::Receiver<Message>,
    closed: watch::Receiver<bool>,
    deadline: Instant,
    ended: bool,
    stats: Arc<EventStats>,
    _slot: Slot,
}

impl EventStream {
    /// The next event of the report; `None` when the stream ends (its lifetime is over, the
    /// process stops, the report was deleted, it fell behind, or events may have been missed).
    pub async fn next(&mut self) -> Option<ReportEvent> {
        if self.ended {
            return None;
        }
        if let Some(first) = self.first.take() {
            self.stats.sent.fetch_add(1, Ordering::Relaxed);
            return Some(first);
        }
        loop {
            let message = tokio::select! {
                closed = self.closed.wait_for(|closed| *closed) => {
                    drop(closed);
                    None
                }
                () = tokio::time::sleep_until(self.deadline) => None,
                message = self.events.recv() => Some(message),
            };
            let Some(message) = message else {
                return self.end();
            };
            match message {
                Ok(Message::Event(notice)) => {
                    let event = &notice.event;
                    let ours = event.report_id() == self.report_id
                        && notice.model_id.is_none_or(|m| m == self.model_id);
                    if ours {
                        // Nothing follows a deletion.
                        self.ended = matches!(event, ReportEvent::Deleted(_));
                        self.stats.sent.fetch_add(1, Ordering::Relaxed);
                        return Some(event.clone());
                    }
                }
                Ok(Message::Lost) | Err(broadcast::error::RecvError::Closed) => return self.end(),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.stats.dropped.fetch_add(missed, Ordering::Relaxed);
                    self.stats.lagged_closed.fetch_add(1, Ordering::Relaxed);
                    return self.end();
                }
            }
        }
    }

    fn end(&mut self) -> Option<ReportEvent> {
        self.ended = true;
        None
    }
}

/// Listens for report events and broadcasts them, reconnecting after a loss (after which the
/// open streams are closed: their clients reconnect to the current state).
async fn listen(hub: Arc<EventHub>) {
    loop {
        let session = async {
            let mut listener = PgListener::connect_with(hub.store.pool()).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            hub.listening.send_replace(true);
            // `try_recv` says when the connection was lost (`recv` would reconnect silently).
            while let Some(notification) = listener.try_recv().await? {
                hub.stats.notifications.fetch_add(1, Ordering::Relaxed);
                match serde_json::from_str::<Notice>(notification.payload()) {
                    // No stream open is not an error.
                    Ok(notice) => drop(hub.sender.send(Message::Event(Arc::new(notice)))),
                    Err(e) => tracing::warn!(error = %e, "unreadable report event; ignored"),
                }
            }
            Ok::<(), sqlx::Error>(())
        };
        let result = session.await;
        hub.listening.send_replace(false);
        hub.stats.listens_lost.fetch_add(1, Ordering::Relaxed);
        let _ = hub.sender.send(Message::Lost);
        match result {
            Ok(()) => tracing::warn!("report events: LISTEN connection lost; reconnecting"),
            Err(e) => {
                tracing::warn!(error = %e, "report events: cannot LISTEN; retrying in a second")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
