//! Inference: the ONNX model (`Embedder`) and the gate that every model run passes (`Gate`).
//! Knows nothing of HTTP or SQL.

mod embedder;
mod gate;
mod manifest;

pub use embedder::{
    Embedder, EmbedderError, Embedding, RuntimeError, cosine, init_runtime, l2_normalize,
};
pub use gate::{Gate, GateError, GateSettings, GateSnapshot, Priority, Ticket, default_permits};
pub use manifest::{ManifestError, ModelManifest, Preprocessing};
