//! The animal detector (issue 22): NanoDet (COCO-80, INT8, `models/nanodet_224_int8.onnx`, built
//! by scripts/setup-detector.sh) finds the best box of an animal class in a photo, so that the
//! pipeline embeds the animal instead of the whole photo (`runner::DetectingRunner` puts it behind
//! the gate beside the embedder). Pure functions (the model input, the decode of the six outputs)
//! and a `Detector` that runs photos; the decode follows `models/quantize_detector.py` (`decode`,
//! `best_box`), which measured it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::RgbImage;
use ndarray::{Array4, ArrayView3, ArrayView4, Axis};
use ort::session::Session;
use serde::Deserialize;

use super::device::DeviceSettings;
use super::embedder::{RuntimeError, init_runtime, open_session};
use super::manifest::ManifestError;

mod decode;

pub use decode::{Detection, HeadOutput, PixelBox, best_animal, crop_area, input_tensor};

/// Errors loading or running the detector.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// The runtime library is missing or unusable.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The manifest is missing, invalid, unsupported or does not match the model file.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The model file could not be read.
    #[error(
        "cannot read the detector model {path}: {source} (build it with scripts/setup-detector.sh)"
    )]
    ReadModel {
        path: PathBuf,
        source: std::io::Error,
    },
    /// ONNX Runtime rejected the model file.
    #[error("ONNX Runtime cannot load the detector model {path}: {message}")]
    LoadModel { path: PathBuf, message: String },
    /// The model's outputs do not match the manifest.
    #[error("the detector model {path} does not match its manifest: {message}")]
    Contract { path: PathBuf, message: String },
    /// The input pixels are not the detector's input size.
    #[error("detector input of {got_width}x{got_height} pixels, expected {width}x{height}")]
    InputSize {
        got_width: u32,
        got_height: u32,
        width: u32,
        height: u32,
    },
    /// A model run failed, or gave outputs of the wrong shape.
    #[error("detector run failed: {0}")]
    Run(String),
}

/// `models/nanodet_<S>_int8.manifest.json`, written by `models/quantize_detector.py`.
#[derive(Debug, Clone, Deserialize)]
pub struct DetectorManifest {
    /// Model name, e.g. `nanodet-224-int8`.
    pub name: String,
    /// Version of the graph (source, converter and quantisation recipe).
    pub version: String,
    /// Model file name, next to the manifest.
    pub file: String,
    /// Hex sha256 of the model file.
    pub sha256: String,
    /// Input tensor contract.
    pub input: DetectorInput,
    /// Names of the graph outputs, one per stride in `decode.strides` order.
    pub outputs: DetectorOutputNames,
    /// How the outputs are read.
    pub decode: DecodeSpec,
    /// Class names, in the order of the scores' last axis.
    pub classes: Vec<String>,
    /// Indices into `classes` of the animal classes (COCO bird..giraffe).
    pub animal_classes: Vec<usize>,
}

/// The detector's input: a square NCHW tensor of BGR pixels, `(v - mean) / std` per channel.
#[derive(Debug, Clone, Deserialize)]
pub struct DetectorInput {
    /// Input tensor name.
    pub name: String,
    /// Width in pixels (equal to `height`, a multiple of the largest stride).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Tensor layout; only `NCHW`.
    pub layout: String,
    /// Channel order; only `BGR`.
    pub color: String,
    /// Per-channel mean, in BGR order, on the 0-255 scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in BGR order, on the 0-255 scale.
    pub std: [f32; 3],
}

/// Output names: class scores and box distributions, one of each per stride.
#[derive(Debug, Clone, Deserialize)]
pub struct DetectorOutputNames {
    /// `[1, cells, classes]` sigmoid scores per stride.
    pub scores: Vec<String>,
    /// `[1, cells, 4 × bins]` GFL box distributions per stride.
    pub boxes: Vec<String>,
}

/// How the outputs are decoded: the strides of the three heads and the GFL bins per side.
#[derive(Debug, Clone, Deserialize)]
pub struct DecodeSpec {
    /// Stride of each head in input pixels (8, 16, 32).
    pub strides: Vec<u32>,
    /// Bins per box side (11: distances 0..=10 strides).
    pub bins: usize,
}

impl DetectorManifest {
    /// Reads and validates the manifest next to `model` (`x.onnx` → `x.manifest.json`).
    pub fn load_for(model: &Path) -> Result<Self, ManifestError> {
        let path = model.with_extension("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let manifest: DetectorManifest =
            serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
                path: path.clone(),
                source,
            })?;
        manifest
            .validate()
            .map_err(|reason| ManifestError::Unsupported { path, reason })?;
        Ok(manifest)
    }

    /// Whether this service can feed the model and read its outputs; the reason when not.
    fn validate(&self) -> Result<(), String> {
        let i = &self.input;
        let fits = |s: &u32| *s > 0 && i.width.is_multiple_of(*s);
        if i.width != i.height || i.width == 0 || !self.decode.strides.iter().all(fits) {
            return Err(format!(
                "input {}x{} is not square or not a multiple of the strides {:?}",
                i.width, i.height, self.decode.strides
            ));
        }
        if i.layout != "NCHW" || i.color != "BGR" {
            return Err(format!("input {} {}, expected NCHW BGR", i.layout, i.color));
        }
        if i.std.iter().any(|s| !s.is_normal() || *s <= 0.0)
            || i.mean.iter().any(|m| !m.is_finite())
        {
            return Err("input mean/std not finite and positive".into());
        }
        let n = self.decode.strides.len();
        if n == 0 || self.outputs.scores.len() != n || self.outputs.boxes.len() != n {
            return Err(format!("{n} strides but outputs {:?}", self.outputs));
        }
        if self.decode.bins < 2 {
            return Err(format!("{} bins per box side", self.decode.bins));
        }
        if self.classes.is_empty() || self.animal_classes.iter().any(|&c| c >= self.classes.len()) {
            return Err("animal classes outside the class list".into());
        }
        Ok(())
    }

    /// Checks `bytes` (the model file's contents) against the recorded sha256.
    pub fn verify(&self, model: &Path, bytes: &[u8]) -> Result<(), ManifestError> {
        super::manifest::verify_sha256(model, &self.sha256, bytes)
    }

    /// The side of the square input in pixels.
    pub fn side(&self) -> u32 {
        self.input.width
    }
}

/// The detector model on the CPU, checked against its manifest: `sessions` runs may proceed at
/// once (one per gate permit, as the embedder has).
pub struct Detector {
    manifest: DetectorManifest,
    sessions: Vec<Mutex<Session>>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("model", &self.manifest.name)
            .finish()
    }
}

impl Detector {
    /// Loads the runtime library, checks the model file against its manifest, opens `sessions`
    /// CPU sessions of `threads` intra-op threads each (0: one per core) and runs one on a blank
    /// input to check the outputs.
    pub fn load(
        library: &Path,
        model: &Path,
        sessions: usize,
        threads: usize,
    ) -> Result<Self, DetectorError> {
        let environment = init_runtime(library)?;
        let manifest = DetectorManifest::load_for(model)?;
        let bytes = std::fs::read(model).map_err(|source| DetectorError::ReadModel {
            path: model.to_owned(),
            source,
        })?;
        manifest.verify(model, &bytes)?;
        let sessions = (0..sessions.max(1))
            .map(|_| {
                open_session(&environment, &bytes, threads, &DeviceSettings::default())
                    .map(Mutex::new)
                    .map_err(|e| DetectorError::LoadModel {
                        path: model.to_owned(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let detector = Detector { manifest, sessions };
        let side = detector.manifest.side() as usize;
        detector
            .run(Array4::zeros((1, 3, side, side)).view(), 1, 1)
            .map_err(|e| DetectorError::Contract {
                path: model.to_owned(),
                message: e.to_string(),
            })?;
        Ok(detector)
    }

    /// The model's manifest (name, version, input contract, classes).
    pub fn manifest(&self) -> &DetectorManifest {
        &self.manifest
    }

    /// The best animal box of a `width` × `height` photo whose pixels, resampled to the
    /// detector's input size, are `resampled`: one model run, blocking. `None`: no animal
    /// score at all (the outputs held none; the box is returned at any score otherwise).
    pub fn detect(
        &self,
        resampled: &RgbImage,
        width: u32,
        height: u32,
    ) -> Result<Option<Detection>, DetectorError> {
        let x = input_tensor(resampled, &self.manifest.input)?;
        self.run(x.view().insert_axis(Axis(0)), width, height)
    }

    /// The best animal box of each prepared input (`[3, S, S]`, [`input_tensor`]), in fractions
    /// of its photo (0..1 on both axes): one run per photo (the graph takes one at a time).
    pub fn detect_inputs(
        &self,
        inputs: &[ArrayView3<'_, f32>],
    ) -> Result<Vec<Option<Detection>>, DetectorError> {
        inputs
            .iter()
            .map(|x| self.run(x.insert_axis(Axis(0)), 1, 1))
            .collect()
    }

    fn run(
        &self,
        batch: ArrayView4<'_, f32>,
        width: u32,
        height: u32,
    ) -> Result<Option<Detection>, DetectorError> {
        let run_error = |e: ort::Error| DetectorError::Run(e.to_string());
        let input = ort::value::TensorRef::from_array_view(batch).map_err(run_error)?;
        // Callers hold a gate permit per run and there are as many sessions as permits, so a free
        // session exists; blocking on the first is only a fallback for callers outside the gate.
        let mut session = self
            .sessions
            .iter()
            .find_map(|s| s.try_lock().ok())
            .map_or_else(|| self.sessions[0].lock(), Ok)
            .unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![self.manifest.input.name.as_str() => input])
            .map_err(run_error)?;
        let side = self.manifest.side();
        let (classes, bins) = (self.manifest.classes.len(), self.manifest.decode.bins);
        // Each output flattened, its shape checked: [1, cells, width].
        let flat = |name: &str, cells: usize, width: usize| -> Result<Vec<f32>, DetectorError> {
            let output = outputs
                .get(name)
                .ok_or_else(|| DetectorError::Run(format!("no output named {name}")))?;
            let array = output.try_extract_array::<f32>().map_err(run_error)?;
            if array.shape() != [1, cells, width] {
                return Err(DetectorError::Run(format!(
                    "output {name} of shape {:?}, expected [1, {cells}, {width}]",
                    array.shape()
                )));
            }
            Ok(array.iter().copied().collect())
        };
        let spec = &self.manifest;
        let mut flats = Vec::with_capacity(spec.decode.strides.len());
        for (i, &stride) in spec.decode.strides.iter().enumerate() {
            let cells = ((side / stride) * (side / stride)) as usize;
            flats.push((
                stride,
                flat(&spec.outputs.scores[i], cells, classes)?,
                flat(&spec.outputs.boxes[i], cells, 4 * bins)?,
            ));
        }
        let heads: Vec<HeadOutput<'_>> = flats
            .iter()
            .map(|(stride, scores, boxes)| HeadOutput {
                stride: *stride,
                scores,
                boxes,
            })
            .collect();
        Ok(best_animal(&heads, spec, width, height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-px, two-head (strides 32 and 64 would not divide: 16 and 32), three-class manifest:
    /// class 0 "person", 1 "cat", 2 "dog"; animals 1 and 2; 11 bins.
    pub(super) fn manifest() -> DetectorManifest {
        serde_json::from_value(serde_json::json!({
            "name": "test", "version": "1", "file": "t.onnx", "sha256": "00",
            "input": {"name": "input", "width": 64, "height": 64, "layout": "NCHW", "color": "BGR",
                      "mean": [103.53, 116.28, 123.675], "std": [57.375, 57.12, 58.395]},
            "outputs": {"scores": ["s16", "s32"], "boxes": ["b16", "b32"]},
            "decode": {"strides": [16, 32], "bins": 11},
            "classes": ["person", "cat", "dog"],
            "animal_classes": [1, 2]
        }))
        .unwrap()
    }

    #[test]
    fn the_manifest_is_checked() {
        let mut m = manifest();
        assert!(m.validate().is_ok());
        m.input.color = "RGB".into();
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.input.width = 60;
        m.input.height = 60;
        assert!(m.validate().is_err(), "not a multiple of the strides");
        let mut m = manifest();
        m.animal_classes.push(3);
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.outputs.boxes.pop();
        assert!(m.validate().is_err());
    }

    #[test]
    fn the_shipped_manifest_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/nanodet_224_int8.onnx");
        let m = DetectorManifest::load_for(&path).unwrap();
        assert_eq!(m.side(), 224);
        let names: Vec<&str> = m
            .animal_classes
            .iter()
            .map(|&c| m.classes[c].as_str())
            .collect();
        assert!(
            names.contains(&"dog") && names.contains(&"cat"),
            "{names:?}"
        );
        assert!(!names.contains(&"person"));
    }
}
