//! Wiring: configuration → model, gate, database, router; and the serve loop with graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{GateConfig, ImagingConfig, ModelConfig, ServeConfig, UploadConfig};
use crate::http::{self, AppState, PhotoLimits};
use crate::inference::{Embedder, Gate, GateSettings};
use crate::pipeline::Pipeline;
use crate::store::Store;

/// Loads the model with one session per gate permit (blocking work, run off the async threads).
pub async fn load_gate(model: &ModelConfig, gate: &GateConfig) -> anyhow::Result<Gate> {
    let settings = GateSettings::from_config(gate);
    let (library, path, sessions, threads) = (
        model.ort_library.clone(),
        model.path.clone(),
        settings.permits,
        model.intra_threads,
    );
    let started = Instant::now();
    let embedder =
        tokio::task::spawn_blocking(move || Embedder::load(&library, &path, sessions, threads))
            .await
            .context("loading the model panicked")??;
    let m = embedder.manifest();
    tracing::info!(model = %m.name, version = %m.version, dim = m.dim, sessions, ms = started.elapsed().as_millis() as u64, "model loaded");
    Ok(Gate::new(Arc::new(embedder), settings))
}

/// The application state from its parts.
pub fn app_state(
    store: Store,
    gate: Gate,
    imaging: &ImagingConfig,
    uploads: &UploadConfig,
) -> AppState {
    AppState {
        store,
        pipeline: Pipeline::new(gate, imaging),
        photo_limits: PhotoLimits {
            max_bytes: uploads.max_photo_bytes,
            max_count: uploads.max_photos.max(1),
        },
        started: Instant::now(),
    }
}

/// `lookalike serve`: model, database (migrated), then HTTP until SIGTERM/Ctrl-C.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    tracing::info!(config = %serde_json::to_string(&config).unwrap_or_default(), "effective configuration");
    let gate = load_gate(&config.model, &config.gate).await?;
    let store = Store::connect(&config.database)
        .await
        .context("connecting to the database")?;
    store.migrate().await?;
    store.register_model(gate.embedder().manifest()).await?;
    let state = app_state(store.clone(), gate, &config.imaging, &config.uploads);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(address = %config.listen, "listening");

    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, http::router(state)).with_graceful_shutdown(async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result?,
        () = shutdown_signal() => {
            tracing::info!(grace_secs = grace.as_secs(), "shutting down: draining in-flight requests");
            let _ = stop_tx.send(true);
            if tokio::time::timeout(grace, &mut server).await.is_err() {
                tracing::warn!("grace period over; dropping the remaining requests");
            }
        }
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
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
