//! The model behind the gate. The gate knows only this trait: the ONNX Runtime sessions
//! (`Embedder`, on the CPU or a GPU), or a fake in tests.

use ndarray::ArrayView3;

use super::device::Device;
use super::embedder::{Embedder, EmbedderError, Embedding, PhotoOutput};
use super::manifest::ModelManifest;

/// Embeds batches of prepared photos. Called on a blocking thread, one batch per gate permit.
pub trait BatchRunner: Send + Sync + 'static {
    /// The model's manifest: name, version, dimension, input.
    fn manifest(&self) -> &ModelManifest;

    /// One embedding per photo (`[3, H, W]` each), in order.
    fn run(&self, photos: &[ArrayView3<'_, f32>]) -> Result<Vec<Embedding>, EmbedderError>;

    /// As `run`, with each photo's species and breeds where the model reads them (the gate
    /// calls this; a model without labels needs only `run`).
    fn run_labelled(
        &self,
        photos: &[ArrayView3<'_, f32>],
    ) -> Result<Vec<PhotoOutput>, EmbedderError> {
        Ok(self
            .run(photos)?
            .into_iter()
            .map(|embedding| PhotoOutput {
                embedding,
                labels: None,
            })
            .collect())
    }

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

    fn run(&self, photos: &[ArrayView3<'_, f32>]) -> Result<Vec<Embedding>, EmbedderError> {
        self.embed_batch(photos)
    }

    fn run_labelled(
        &self,
        photos: &[ArrayView3<'_, f32>],
    ) -> Result<Vec<PhotoOutput>, EmbedderError> {
        self.embed_batch_labelled(photos)
    }

    fn device(&self) -> Device {
        Embedder::device(self)
    }

    fn runs_by_batch_size(&self) -> Vec<(usize, u64)> {
        Embedder::runs_by_batch_size(self)
    }
}
