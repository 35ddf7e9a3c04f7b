//! The model behind the gate. The gate knows only this trait: the ONNX Runtime sessions
//! (`Embedder`, on the CPU or a GPU), or a fake in tests.

use ndarray::ArrayView3;

use super::device::Device;
use super::embedder::{Embedder, EmbedderError, ModelOutput};
use super::manifest::ModelManifest;

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
