//! Inference: the ONNX model (`Embedder`), the animal detector in front of it (`detector`,
//! `DetectingRunner`) and the gate that every run of either passes (`Gate`).
//! Knows nothing of HTTP or SQL.

mod breed_words;
pub mod detector;
mod device;
mod embedder;
mod gate;
pub mod labels;
mod manifest;
mod precision;
mod queue;
mod runner;
mod subject;

pub use crate::domain::report::BreedGuess;
pub use breed_words::{BreedQuery, parse_breed_query};
pub use device::{ConvSearch, Device, DeviceSettings, batch_buckets, bucket_for};
pub use embedder::ModelOutput;
pub use embedder::{
    Embedder, EmbedderError, Embedding, RuntimeError, cosine, init_runtime, l2_normalize,
};
pub use gate::{Gate, GateError, GateSettings, GateSnapshot, Priority, Ticket, default_permits};
pub use labels::{PhotoLabels, labels_from_logits};
pub use manifest::{
    DETECTOR_CROP_RECIPE, ManifestError, ModelManifest, ModelRef, Preprocessing, SubjectMethod,
    SubjectSettings,
};
pub use precision::{
    Precision, PrecisionChoice, choose as choose_precision, int8_cpu_feature, int8_variant,
};
pub use queue::{Batch, GateQueue, QueueId};
pub use runner::{BatchRunner, DetectingRunner, render_model};
pub use subject::{SubjectBox, crop, subject_box};
