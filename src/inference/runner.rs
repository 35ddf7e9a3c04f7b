//! The model behind the gate. The gate knows only this trait: the ONNX Runtime session
//! (`Embedder`) runs on the CPU today, and another runner (a GPU one, or a fake in tests) slots in
//! beside it.

use ndarray::ArrayView3;

use super::embedder::{Embedder, EmbedderError, Embedding};
use super::manifest::ModelManifest;

/// Embeds batches of prepared photos. Called on a blocking thread, one batch per gate permit.
pub trait BatchRunner: Send + Sync + 'static {
    /// The model's manifest: name, version, dimension, input.
    fn manifest(&self) -> &ModelManifest;

    /// One embedding per photo (`[3, H, W]` each), in order.
    fn run(&self, photos: &[ArrayView3<'_, f32>]) -> Result<Vec<Embedding>, EmbedderError>;
}

impl BatchRunner for Embedder {
    fn manifest(&self) -> &ModelManifest {
        Embedder::manifest(self)
    }

    fn run(&self, photos: &[ArrayView3<'_, f32>]) -> Result<Vec<Embedding>, EmbedderError> {
        self.embed_batch(photos)
    }
}
