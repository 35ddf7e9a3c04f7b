//! The model a process serves: its precision chosen, the detector in front when it is on, its
//! sessions loaded off the async threads, and its manifest as the store knows it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::config::{DetectorConfig, GateConfig, ModelConfig};
use crate::inference::detector::{Detector, DetectorManifest};
use crate::inference::{
    BatchRunner, DetectingRunner, Embedder, Gate, GateSettings, ModelManifest, choose_precision,
    int8_cpu_feature, int8_variant,
};

/// The model configuration with its precision decided and logged (issue 25): `path` becomes the
/// file that runs (the INT8 one where the CPU qualifies, unless a flag says otherwise).
pub fn resolve_precision(model: &ModelConfig) -> anyhow::Result<ModelConfig> {
    let choice = choose_precision(
        model.precision,
        &model.path,
        model.device,
        int8_cpu_feature(),
        int8_variant(&model.path).is_file(),
    )
    .map_err(anyhow::Error::msg)?;
    tracing::info!(precision = ?choice.precision, model = %choice.model.display(), reason = %choice.reason, "model precision chosen");
    let mut resolved = model.clone();
    resolved.path = choice.model;
    resolved.precision = choice.precision;
    Ok(resolved)
}

/// Loads the model on its device with one session per gate permit (blocking work, run off the
/// async threads). `model.path` is loaded as it is: [`resolve_precision`] first.
pub async fn load_gate(model: &ModelConfig, gate: &GateConfig) -> anyhow::Result<Gate> {
    let settings = GateSettings::for_device(gate, model.device);
    let runner = load_runner(model, settings.permits, settings.max_batch).await?;
    Ok(Gate::new(runner, settings))
}

/// The model `model` configures, with the animal detector in front when it is on: `sessions`
/// runs at once, batches up to `max_batch` warmed on a GPU.
pub async fn load_runner(
    model: &ModelConfig,
    sessions: usize,
    max_batch: usize,
) -> anyhow::Result<Arc<dyn BatchRunner>> {
    let device = model.device_settings();
    let (library, path, threads) = (
        model.ort_library.clone(),
        model.path.clone(),
        model.intra_threads,
    );
    let started = Instant::now();
    // On a compute thread: ONNX Runtime's threads inherit its priority.
    crate::compute::set_nice(model.compute_nice);
    let embedder = crate::compute::spawn(move || {
        Embedder::load_on(&library, &path, sessions, threads, &device, max_batch)
    })
    .await
    .context("loading the model panicked")??;
    let m = embedder.manifest();
    tracing::info!(model = %m.name, version = %m.version, dim = m.dim, device = %embedder.device(), sessions, max_batch, ms = started.elapsed().as_millis() as u64, "model loaded");
    if !model.detector.enabled {
        return Ok(Arc::new(embedder));
    }
    let (library, path) = (model.ort_library.clone(), model.detector.path.clone());
    let detector =
        crate::compute::spawn(move || Detector::load(&library, &path, sessions, threads))
            .await
            .context("loading the detector panicked")??;
    let d = detector.manifest();
    tracing::info!(detector = %d.name, version = %d.version, sessions, "animal detector loaded");
    let scores = (model.detector.min_score, model.detector.full_score);
    let runner =
        DetectingRunner::new(Arc::new(embedder), detector, scores).map_err(anyhow::Error::msg)?;
    tracing::info!(version = %runner.manifest().version, "photos are embedded by their animal");
    Ok(Arc::new(runner))
}

/// The manifest of the model `model` serves, as the store knows it: the model file's, or with
/// the detector on, the model made of both ([`ModelManifest::with_detector`]). `model.path` as
/// [`resolve_precision`] left it.
pub fn served_manifest(model: &ModelConfig) -> anyhow::Result<ModelManifest> {
    with_detector(ModelManifest::load_for(&model.path)?, &model.detector)
}

/// `manifest` with the detector `detector` configures, if it is on.
pub fn with_detector(
    manifest: ModelManifest,
    detector: &DetectorConfig,
) -> anyhow::Result<ModelManifest> {
    if !detector.enabled {
        return Ok(manifest);
    }
    let found = DetectorManifest::load_for(&detector.path)?;
    manifest
        .with_detector(
            &found.name,
            &found.sha256,
            detector.min_score,
            detector.full_score,
        )
        .map_err(anyhow::Error::msg)
}
