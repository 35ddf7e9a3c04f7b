//! Wiring: configuration → model, gate, database, router; and the serve loop with graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::capacity::{ByteBudget, Slots};
use crate::config::{
    AccessConfig, CoreConfig, DEFAULT_BODY_MEMORY_MAX_WAIT_MS, DEFAULT_BODY_MEMORY_MIB,
    ImagingConfig, JobsConfig, RateLimitConfig, SearchConfig, ServeConfig, SweepConfig,
    UploadConfig, WebhookConfig, WorkConfig,
};
use crate::events::{EventHub, EventSettings};
use crate::http::server::{self, ServerSettings};
use crate::http::{self, AppState, PhotoCaps, Protection};
use crate::inference::Gate;
use crate::jobs::{JobContext, JobSettings, Workers};
use crate::photo_store::PhotoStore;
use crate::pipeline::Pipeline;
use crate::rate_limit::RateLimits;
use crate::reports::{ReportService, ReportSettings};
use crate::search::{Matcher, SearchService, SearchSettings};
use crate::store::Store;
use crate::sweep::Sweeper;
use crate::tenants::ApiKeys;
use crate::webhooks::{WebhookTarget, Webhooks};

mod loading;
pub use loading::{load_gate, load_runner, resolve_precision, served_manifest, with_detector};

/// The parts the HTTP service and the workers share.
#[derive(Clone)]
pub struct Parts {
    /// The database.
    pub store: Store,
    /// The model behind its gate.
    pub gate: Gate,
    /// The photo store.
    pub photo_store: PhotoStore,
    /// The model's id in the database.
    pub model_id: i32,
}

/// The search settings from the configuration.
pub fn search_settings(search: &SearchConfig, max_report_photos: usize) -> SearchSettings {
    SearchSettings {
        ef_search: search.ef_search,
        max_photos_per_report: max_report_photos.max(1),
        min_score: search.min_score,
        query_species: search.query_species,
        match_limit: search.match_limit.max(1),
    }
}

/// The application state from its parts.
pub fn app_state(
    parts: Parts,
    imaging: &ImagingConfig,
    uploads: &UploadConfig,
    search: &SearchConfig,
    max_attempts: u32,
) -> AppState {
    // A new way of embedding answers from the vectors its whole-photo output reproduces until
    // the store has reindexed.
    let previous = parts.gate.model().manifest().whole_photo_of.clone();
    let matcher = Matcher::new(
        parts.store.clone(),
        parts.model_id,
        search_settings(search, uploads.max_report_photos),
    )
    .with_previous(previous);
    // Whole-photo runs for the previous model's vectors end when the matcher sees the store
    // caught up.
    let pipeline = Pipeline::new(parts.gate, imaging).with_whole_vectors_until(matcher.reindexed());
    let upload_slots = Slots::new(
        "upload",
        uploads.upload_permits,
        uploads.upload_max_waiters,
        Duration::from_millis(uploads.upload_max_wait_ms),
    );
    let reports = ReportService::new(
        parts.store.clone(),
        parts.photo_store,
        Arc::new(upload_slots),
        ReportSettings {
            limits: pipeline.decode_caps(),
            // Their own slots (as many, at the async threads' priority): a report's header
            // check takes a millisecond or two and must not queue behind the full decodes of a
            // saturated gate (issue 25).
            decode: Arc::new(Slots::new(
                "check",
                pipeline.decode_slots().snapshot().permits,
                imaging.decode_max_waiters,
                Duration::from_secs(5),
            )),
            model_id: parts.model_id,
            max_attempts,
            match_limit: search.match_limit.max(1),
        },
    );
    let events = Arc::new(EventHub::new(
        parts.store.clone(),
        parts.model_id,
        EventSettings::default(),
    ));
    AppState {
        search: SearchService::new(pipeline.clone(), matcher, parts.store.clone()),
        store: parts.store,
        pipeline,
        reports,
        photo_limits: PhotoCaps {
            max_bytes: uploads.max_photo_bytes,
            max_count: uploads.max_photos.max(1),
        },
        max_report_photos: uploads.max_report_photos.max(1),
        job_stats: None,
        started: Instant::now(),
        http_metrics: Arc::default(),
        protection: Arc::new(Protection::open()),
        body_budget: Arc::new(ByteBudget::new(
            DEFAULT_BODY_MEMORY_MIB << 20,
            Duration::from_millis(DEFAULT_BODY_MEMORY_MAX_WAIT_MS),
        )),
        connections: Arc::default(),
        job_counts: Arc::default(),
        sweeps: Arc::default(),
        events,
        webhooks: Webhooks::default(),
    }
}

/// Writes the webhook targets of this configuration (the service-wide receiver, the tenants'
/// own) to the database, where every process's job workers find them.
pub async fn webhook_targets(
    config: &WebhookConfig,
    keys: &ApiKeys,
    store: &Store,
) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    match (&config.webhook_url, &config.webhook_secret) {
        (None, _) => {}
        (Some(url), Some(secret)) if !secret.is_empty() => {
            crate::webhooks::check_url(url).map_err(anyhow::Error::msg)?;
            targets.push(WebhookTarget::service_wide(
                url,
                secret,
                config.webhook_max_attempts,
            ));
        }
        (Some(_), _) => anyhow::bail!(
            "--webhook-url needs --webhook-secret (LOOKALIKE_WEBHOOK_SECRET) to sign its deliveries"
        ),
    }
    for tenant in keys.tenants() {
        if let Some(hook) = &tenant.webhook {
            targets.push(WebhookTarget::of_tenant(
                &tenant.id,
                &hook.url,
                &hook.secret,
                config.webhook_max_attempts,
            ));
        }
    }
    store
        .webhooks()
        .sync_targets(&targets)
        .await
        .context("recording the webhook targets")?;
    if !targets.is_empty() {
        tracing::info!(targets = targets.len(), "webhooks configured");
    }
    Ok(())
}

/// API keys (their tenants created or updated in the database) and rate limits from the
/// configuration.
pub async fn protection(
    access: &AccessConfig,
    rates: &RateLimitConfig,
    store: &Store,
) -> anyhow::Result<Protection> {
    let keys = ApiKeys::load(
        access.api_keys_file.as_deref(),
        access.api_keys.as_deref(),
        access.tenant_max_storage_bytes,
    )?;
    store
        .tenants()
        .sync(keys.tenants())
        .await
        .context("recording the tenants")?;
    if keys.enabled() {
        tracing::info!(tenants = keys.tenants().count(), "API keys required");
    } else {
        tracing::info!("no API keys configured: the service is open");
    }
    Ok(Protection {
        keys,
        limits: RateLimits::new(&rates.settings()),
        trusted_proxies: rates.trusted_proxies.clone(),
        operator_key: access
            .operator_key
            .as_deref()
            .map(http::protect::operator_key_hash),
    })
}

/// Attempts of a job that removes a stored photo's metadata (outages do not count).
const METADATA_REMOVAL_ATTEMPTS: u32 = 5;

/// Starts the job workers over the state's parts (none when `workers` is 0).
pub fn start_workers(
    state: &mut AppState,
    photo_store: PhotoStore,
    model_id: i32,
    settings: JobSettings,
) -> Option<Workers> {
    if settings.workers == 0 {
        return None;
    }
    let context = JobContext {
        store: state.store.clone(),
        photo_store,
        pipeline: state.pipeline.clone(),
        matcher: state.search.matcher().clone(),
        model_id,
        webhooks: state.webhooks.clone(),
    };
    // Photos stored before uploads were cleaned: one cleaning job each, queued by whichever
    // process runs workers (idempotent: blobs with a job are skipped).
    let store = state.store.clone();
    tokio::spawn(async move {
        match store
            .jobs()
            .enqueue_metadata_removal(METADATA_REMOVAL_ATTEMPTS)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(photos = n, "queued the removal of stored photos' metadata"),
            Err(e) => {
                tracing::warn!(error = %e, "could not queue the removal of stored photos' metadata; the next start will")
            }
        }
    });
    let workers = Workers::start(context, settings);
    state.job_stats = Some(workers.stats_handle());
    Some(workers)
}

impl Parts {
    /// Loads the model, opens the photo store, connects to and migrates the database, and
    /// registers the model: what `serve`, `work` and `import` all start with.
    pub async fn open(core: &CoreConfig) -> anyhow::Result<Parts> {
        let model = &resolve_precision(&core.model)?;
        // The database first: a model it cannot hold is refused before minutes go into loading it.
        let manifest = served_manifest(model)?;
        let photo_store = PhotoStore::from_config(&core.storage)?;
        let store = Store::connect(&core.database)
            .await
            .context("connecting to the database")?;
        store.migrate().await?;
        let model_id = store.models().register(&manifest).await?;
        let gate = load_gate(model, &core.gate).await?;
        Ok(Parts {
            store,
            gate,
            photo_store,
            model_id,
        })
    }

    /// The application state over these parts, as the core configuration sets it up.
    pub fn into_state(self, core: &CoreConfig) -> AppState {
        app_state(
            self,
            &core.imaging,
            &core.uploads,
            &core.search,
            core.jobs.max_attempts,
        )
    }
}

/// `lookalike serve`: model, database (migrated), workers, then HTTP until SIGTERM/Ctrl-C.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    tracing::info!(config = %serde_json::to_string(&config).unwrap_or_default(), "effective configuration");
    let parts = Parts::open(&config.core).await?;
    let (store, photo_store, model_id) = (
        parts.store.clone(),
        parts.photo_store.clone(),
        parts.model_id,
    );
    let mut state = parts.into_state(&config.core);
    // A vector index built with other settings is rebuilt off the start path, the old one
    // answering meanwhile; a rebuild cut short by a stop is taken up at the next start.
    tokio::spawn({
        let store = store.clone();
        async move {
            if let Err(e) = store.models().align_index(model_id).await {
                tracing::warn!(error = %e, "the model's vector index keeps its old settings: rebuilding it failed");
            }
        }
    });
    // Whether the store still reindexes is known from the first check on: made now, so that a
    // caught-up store's photos get no whole-photo runs before the first search.
    tokio::spawn({
        let matcher = state.search.matcher().clone();
        async move { matcher.answering().await }
    });
    state.protection = Arc::new(protection(&config.access, &config.rate_limits, &store).await?);
    webhook_targets(&config.webhooks, &state.protection.keys, &store).await?;
    state.webhooks = Webhooks::new(config.webhooks.delivery.timeout());
    state.events = Arc::new(EventHub::new(
        store.clone(),
        model_id,
        config.events.settings(config.edge.response_timeout()),
    ));
    state.body_budget = Arc::new(config.edge.body_budget());
    state
        .reports
        .upload_slots()
        .set_per_address_cap(config.edge.max_uploads_per_address);
    // The open service's limits are the served binary's (in-process states, for tests, tools
    // and benches, have none: they upload from no address).
    state.reports = state
        .reports
        .clone()
        .with_open_limits(config.open_limits.limits());
    let housekeeping = Housekeeping::start(
        &state,
        &store,
        &photo_store,
        &config.core.jobs,
        &config.sweep,
    );
    let workers = start_workers(
        &mut state,
        photo_store,
        model_id,
        JobSettings::from_config(&config.core.jobs),
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("binding {address} for /metrics"))?,
        ),
        None => None,
    };
    tracing::info!(address = %config.listen, metrics = ?config.metrics_listen, workers = config.core.jobs.workers, "listening");

    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let settings = ServerSettings::from_config(&config.edge);
    let metrics_server = metrics_listener.map(|listener| {
        // Operators' scrapes: a few connections, the same deadlines.
        let settings = ServerSettings {
            max_connections: 16,
            ..settings.clone()
        };
        tokio::spawn(server::serve(
            listener,
            http::metrics_router(state.clone()),
            settings,
            Arc::default(),
            stop_rx.clone(),
        ))
    });
    let metrics = match config.metrics_listen {
        Some(_) => http::MetricsRoute::Elsewhere,
        None => http::MetricsRoute::WithTheApi,
    };
    let router = http::routes(state.clone(), metrics);
    let server = server::serve(
        listener,
        router,
        settings,
        state.connections.clone(),
        stop_rx,
    );
    let mut server = std::pin::pin!(server);
    let mut workers = workers;
    let deadline = tokio::select! {
        () = &mut server => tokio::time::Instant::now() + grace,
        () = shutdown_signal() => {
            // One grace period for everything: the workers stop claiming at once and finish
            // their jobs while the in-flight requests drain.
            tracing::info!(grace_secs = grace.as_secs(), "shutting down: draining in-flight requests");
            let deadline = tokio::time::Instant::now() + grace;
            let _ = stop_tx.send(true);
            // Event streams never end by themselves: ended now, their connections close.
            state.events.close();
            let drain = async {
                if tokio::time::timeout_at(deadline, &mut server).await.is_err() {
                    tracing::warn!("grace period over; dropping the remaining requests");
                }
            };
            let stop_workers = async {
                if let Some(workers) = workers.take() {
                    workers.stop(grace).await;
                }
            };
            tokio::join!(drain, stop_workers);
            deadline
        }
    };
    housekeeping.stop();
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    if let Some(workers) = workers {
        workers.stop(grace).await;
    }
    // Requests dropped at the deadline may still hold connections: do not wait for them.
    if tokio::time::timeout_at(deadline, store.close())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing the remaining database connections");
    }
    tracing::info!("stopped");
    Ok(())
}

/// `lookalike work`: model, database (migrated), job workers, the sweep and the chores, and no
/// API (at most `/metrics` on `--metrics-listen`), until SIGTERM/Ctrl-C; then running jobs get
/// the grace period and the rest is handed back.
pub async fn work(config: WorkConfig) -> anyhow::Result<()> {
    tracing::info!(config = %serde_json::to_string(&config).unwrap_or_default(), "effective configuration");
    if config.core.jobs.workers == 0 {
        anyhow::bail!("--job-workers is 0: a worker process needs at least one worker");
    }
    let parts = Parts::open(&config.core).await?;
    let (store, photo_store, model_id) = (
        parts.store.clone(),
        parts.photo_store.clone(),
        parts.model_id,
    );
    let mut state = parts.into_state(&config.core);
    let housekeeping = Housekeeping::start(
        &state,
        &store,
        &photo_store,
        &config.core.jobs,
        &config.sweep,
    );
    state.webhooks = Webhooks::new(config.webhook_delivery.timeout());
    let workers = start_workers(
        &mut state,
        photo_store,
        model_id,
        JobSettings::from_config(&config.core.jobs),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_server = match config.metrics_listen {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("binding {address} for /metrics"))?;
            let settings = ServerSettings {
                max_connections: 16,
                ..ServerSettings::from_config(&crate::config::EdgeConfig::default())
            };
            Some(tokio::spawn(server::serve(
                listener,
                http::metrics_router(state.clone()),
                settings,
                Arc::default(),
                stop_rx,
            )))
        }
        None => None,
    };
    tracing::info!(workers = config.core.jobs.workers, metrics = ?config.metrics_listen, "working (no API)");
    shutdown_signal().await;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: finishing running jobs"
    );
    let _ = stop_tx.send(true);
    if let Some(workers) = workers {
        workers.stop(grace).await;
    }
    housekeeping.stop();
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    if tokio::time::timeout(Duration::from_secs(1), store.close())
        .await
        .is_err()
    {
        tracing::warn!("closing the remaining database connections");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Gives memory freed after a burst back to the system, every few seconds. glibc's malloc keeps
/// freed memory in its arenas until asked; measured with `make soak`, it stays near its peak
/// without this. (jemalloc gave memory back by itself but ran the mixed load about a third slower
/// here, and mimalloc kept more than glibc: docs/design.md, "The edge".)
async fn give_back_memory() {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim takes no pointers and only walks the allocator's own free lists.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}

/// Housekeeping every minute: idle clients leave the rate limiters' tables, and done jobs older
/// than `retention` leave the database (none when it is zero), a bounded batch at a time.
async fn chores(protection: Arc<Protection>, store: Store, retention: Duration) {
    const PRUNE_BATCH: i64 = 10_000;
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        protection.limits.sweep();
        if let Err(e) = store.usage().prune().await {
            tracing::warn!(error = %e, "pruning past days' upload counts failed; trying again in a minute");
        }
        if retention.is_zero() {
            continue;
        }
        loop {
            match store.jobs().prune_done(retention, PRUNE_BATCH).await {
                Ok(n) if n == PRUNE_BATCH as u64 => continue,
                Ok(0) => {}
                Ok(n) => tracing::debug!(jobs = n, "pruned done jobs"),
                Err(e) => {
                    tracing::warn!(error = %e, "pruning done jobs failed; trying again in a minute")
                }
            }
            break;
        }
    }
}

/// What runs beside the job workers in every process that has them: the chores (pruning, the
/// rate limiters' tables), the sweep of the photo store, and giving memory back.
struct Housekeeping {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Housekeeping {
    fn start(
        state: &AppState,
        store: &Store,
        photo_store: &PhotoStore,
        jobs: &JobsConfig,
        sweep: &SweepConfig,
    ) -> Self {
        let mut tasks = vec![
            tokio::spawn(chores(
                state.protection.clone(),
                store.clone(),
                Duration::from_secs(jobs.retention_hours.saturating_mul(3600)),
            )),
            tokio::spawn(give_back_memory()),
        ];
        if sweep.interval_mins > 0 {
            tasks.push(tokio::spawn(sweep_every(
                sweeper(sweep, store, photo_store, state, jobs.max_attempts),
                Duration::from_secs(sweep.interval_mins.saturating_mul(60)),
            )));
        }
        Housekeeping { tasks }
    }

    fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The sweep of the photo store, over the state's parts.
pub fn sweeper(
    config: &SweepConfig,
    store: &Store,
    photo_store: &PhotoStore,
    state: &AppState,
    max_attempts: u32,
) -> Sweeper {
    Sweeper {
        store: store.clone(),
        photo_store: photo_store.clone(),
        decode: state.pipeline.decode_caps(),
        grace: Duration::from_secs(config.grace_mins.saturating_mul(60)),
        max_attempts,
        totals: state.sweeps.clone(),
    }
}

/// Sweeps the photo store every `interval` (the first a minute after the start, out of the way
/// of a rolling restart), whenever no other replica is sweeping.
async fn sweep_every(sweeper: Sweeper, interval: Duration) {
    let first = tokio::time::Instant::now() + interval.min(Duration::from_secs(60));
    let mut every = tokio::time::interval_at(first, interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match sweeper.sweep_if_free().await {
            Ok(Some(report)) => tracing::info!(?report, "photo store swept"),
            Ok(None) => tracing::debug!("another process is sweeping the photo store"),
            Err(e) => {
                tracing::warn!(error = %e, "sweeping the photo store failed; trying again later")
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
