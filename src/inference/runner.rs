//! The model behind the gate. The gate knows only this trait: the ONNX Runtime sessions
//! (`Embedder`, on the CPU or a GPU), the embedder with the animal detector in front
//! (`DetectingRunner`), or a fake in tests.

use std::sync::Arc;

use ndarray::ArrayView3;

use super::detector::{Detection, Detector, DetectorManifest};
use super::device::Device;
use super::embedder::{Embedder, EmbedderError, ModelOutput};
use super::manifest::ModelManifest;
use crate::telemetry::prometheus::Exposition;

/// Embeds batches of prepared photos. Called on a blocking thread, one batch per gate permit.
pub trait BatchRunner: Send + Sync + 'static {
    /// The model's manifest: name, version, dimension, input.
    fn manifest(&self) -> &ModelManifest;

    /// One output per photo (`[3, H, W]` each), in order.
    fn run(&self, photos: &[ArrayView3<'_, f32>]) -> Result<Vec<ModelOutput>, EmbedderError>;

    /// Where it runs (`cpu`, `cuda:0`).
    fn device(&self) -> Device {
        Device::Cpu
    }

    /// Runs made, by the batch size actually run (after any padding), smallest first.
    fn runs_by_batch_size(&self) -> Vec<(usize, u64)> {
        Vec::new()
    }

    /// The animal detector in front of the model (its input contract), if there is one.
    fn detector(&self) -> Option<&DetectorManifest> {
        None
    }

    /// The best animal box of each prepared detector input (`[3, S, S]`), in fractions of its
    /// photo, in order. Called on a blocking thread under a gate permit, as `run` is.
    fn detect(
        &self,
        inputs: &[ArrayView3<'_, f32>],
    ) -> Result<Vec<Option<Detection>>, EmbedderError> {
        let _ = inputs;
        Err(EmbedderError::Run("this model has no detector".into()))
    }
}

/// The embedder with the animal detector in front: the model [`ModelManifest::with_detector`]
/// describes (a version of its own, so the store reindexes for it). Both run under the same gate
/// permits: a photo's detection and its crop's run count against one place.
pub struct DetectingRunner {
    embedder: Arc<dyn BatchRunner>,
    detector: Detector,
    manifest: ModelManifest,
}

impl DetectingRunner {
    /// `embedder` with `detector` in front, its scores `(least, full)` as
    /// [`ModelManifest::with_detector`] takes them; refused when the embedder's manifest cannot
    /// carry a detector.
    pub fn new(
        embedder: Arc<dyn BatchRunner>,
        detector: Detector,
        (min_score, full_score): (f32, f32),
    ) -> Result<Self, String> {
        let found = detector.manifest();
        let manifest =
            embedder
                .manifest()
                .with_detector(&found.name, &found.sha256, min_score, full_score)?;
        Ok(DetectingRunner {
            embedder,
            detector,
            manifest,
        })
    }
}

impl BatchRunner for DetectingRunner {
    fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    fn run(&self, photos: &[ArrayView3<'_, f32>]) -> Result<Vec<ModelOutput>, EmbedderError> {
        self.embedder.run(photos)
    }

    fn device(&self) -> Device {
        self.embedder.device()
    }

    fn runs_by_batch_size(&self) -> Vec<(usize, u64)> {
        self.embedder.runs_by_batch_size()
    }

    fn detector(&self) -> Option<&DetectorManifest> {
        Some(self.detector.manifest())
    }

    fn detect(
        &self,
        inputs: &[ArrayView3<'_, f32>],
    ) -> Result<Vec<Option<Detection>>, EmbedderError> {
        self.detector
            .detect_inputs(inputs)
            .map_err(|e| EmbedderError::Run(e.to_string()))
    }
}

/// Prometheus lines of `model`: what it is and where it runs, and its runs by batch size.
pub fn render_model(model: &dyn BatchRunner, out: &mut Exposition) {
    let manifest = model.manifest();
    let device = model.device().to_string();
    out.help(
        "lookalike_model_info",
        "gauge",
        "The model and the device it runs on (always 1).",
    );
    out.sample(
        "lookalike_model_info",
        &[
            ("model", manifest.name.as_str()),
            ("version", manifest.version.as_str()),
            ("device", device.as_str()),
        ],
        1.0,
    );
    if let Some(detector) = model.detector() {
        out.help(
            "lookalike_detector_info",
            "gauge",
            "The animal detector in front of the model (always 1; on the CPU).",
        );
        out.sample(
            "lookalike_detector_info",
            &[
                ("model", detector.name.as_str()),
                ("version", detector.version.as_str()),
            ],
            1.0,
        );
    }
    out.help(
        "lookalike_model_runs_by_batch_size_total",
        "counter",
        "Model runs by the batch size actually run (after padding on a GPU).",
    );
    for (size, runs) in model.runs_by_batch_size() {
        out.sample(
            "lookalike_model_runs_by_batch_size_total",
            &[("size", size.to_string().as_str())],
            runs as f64,
        );
    }
}

impl BatchRunner for Embedder {
    fn manifest(&self) -> &ModelManifest {
        Embedder::manifest(self)
    }

    fn run(&self, photos: &[ArrayView3<'_, f32>]) -> Result<Vec<ModelOutput>, EmbedderError> {
        self.infer_batch(photos)
    }

    fn device(&self) -> Device {
        Embedder::device(self)
    }

    fn runs_by_batch_size(&self) -> Vec<(usize, u64)> {
        Embedder::runs_by_batch_size(self)
    }
}
