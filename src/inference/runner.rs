//! The model behind the gate. The gate knows only this trait: the ONNX Runtime sessions
//! (`Embedder`, on the CPU or a GPU), or a fake in tests.

use ndarray::ArrayView3;

use super::device::Device;
use super::embedder::{Embedder, EmbedderError, Embedding};
use super::manifest::ModelManifest;

/// What one model run gives for one photo.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelOutput {
    /// The whole photo's embedding (unit length): the manifest's `embedding` output.
    pub embedding: Embedding,
    /// The class logits (ImageNet-1k), or empty when the graph has none.
    pub logits: Vec<f32>,
    /// The class activation map (square grid, row-major, maximum 1), or empty when none.
    pub cam: Vec<f32>,
    /// The head features pooled by the map (unit length), or empty when none.
    pub cam_embedding: Embedding,
}

impl ModelOutput {
    /// An output that is only an embedding (a model without the other outputs).
    pub fn embedding_only(embedding: Embedding) -> Self {
        ModelOutput {
            embedding,
            ..ModelOutput::default()
        }
    }
}

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
