//! The model behind the gate. The gate knows only this trait: the ONNX Runtime sessions
//! (`Embedder`, on the CPU or a GPU), or a fake in tests.

use ndarray::ArrayView3;

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
