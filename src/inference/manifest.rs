//! The model manifest: what the model file is (name, version, sha256) and the input contract it expects.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Errors reading or checking a model manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest file could not be read.
    #[error(
        "cannot read the model manifest {path}: {source} (build the model with scripts/setup-model.sh)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("the model manifest {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The manifest describes an input this service cannot feed.
    #[error("the model manifest {path} is unsupported: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    /// The model file's sha256 differs from the manifest's.
    #[error(
        "the model file {path} does not match its manifest: sha256 {actual}, manifest says {expected}"
    )]
    Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// The recipe of [`SubjectMethod::DetectorCrop`] (the crop rule, the vector taken), in the
/// version of every model made with it: a change of the recipe must change this, so that
/// stores reindex.
pub const DETECTOR_CROP_RECIPE: &str = "detector-crop-r2";

/// `models/<name>.manifest.json`, written by `models/build_model.py`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Model name, e.g. `efficientnet-lite0`.
    pub name: String,
    /// Version of the weights/graph; stored with every embedding.
    pub version: String,
    /// Model file name, next to the manifest.
    pub file: String,
    /// Hex sha256 of the model file.
    pub sha256: String,
    /// Input tensor contract.
    pub input: InputSpec,
    /// Names of the graph outputs.
    pub outputs: OutputNames,
    /// Embedding dimension.
    pub dim: usize,
    /// Whether the graph already L2-normalises the embedding.
    #[serde(default)]
    pub embedding_normalized: bool,
    /// How the subject of a photo is found and embedded; none: the whole photo is embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectSettings>,
    /// The model whose vectors this graph's `embedding` output (the whole photo) reproduces:
    /// while the store reindexes for this model, searches answer from that model's vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_photo_of: Option<ModelRef>,
}

/// A model as the store knows it: name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
}

/// The subject method: how a photo's subject is found and embedded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubjectSettings {
    /// The method's name.
    pub method: SubjectMethod,
    /// (`cam-crop`) Cells of the map at or above this fraction of its maximum make the box.
    /// (`detector-crop`) The least animal score whose box is cut out.
    pub threshold: f32,
    /// (`cam-crop`) The box grows by this fraction of its size on each side.
    pub margin: f32,
    /// (`cam-crop`) A box covering more than this fraction of the photo is the whole photo (no
    /// second run).
    pub max_area: f32,
    /// (`detector-crop`) The score from which the crop is the detector's box alone; from
    /// `threshold` up to it, the crop narrows from the whole photo to the box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_score: Option<f32>,
}

impl SubjectSettings {
    /// Whether the method cuts the subject's box out of the photo and runs the model on it again
    /// (otherwise the first run's `cam_embedding` is the subject's vector).
    pub fn crops(&self) -> bool {
        matches!(
            self.method,
            SubjectMethod::CamCrop | SubjectMethod::DetectorCrop
        )
    }
}

/// Subject methods the service knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectMethod {
    /// The box of the class activation map, cropped from the decoded pixels and embedded again.
    CamCrop,
    /// One run: the graph's `cam_embedding` fuses the map-pooled features with the map-weighted
    /// colour of the photo (models/build_model.py); nothing is cut.
    CamColour,
    /// The animal detector's best box (src/inference/detector), cut from the decoded pixels and
    /// embedded by its `cam_embedding`; a photo with no animal: the whole photo's
    /// `cam_embedding`. Never written in a manifest file: [`ModelManifest::with_detector`] makes
    /// it from the embedder's and the detector's.
    DetectorCrop,
}

/// The model's input tensor as the manifest describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputSpec {
    /// Input tensor name.
    pub name: String,
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Tensor layout; only `NCHW` is supported.
    pub layout: String,
    /// Channel order; only `RGB` is supported.
    pub color: String,
    /// Subtracted from each 0..255 channel value.
    pub mean: f32,
    /// Divides each channel value after the mean.
    pub std: f32,
}

/// How pixels become the model's input: the part of the contract the imaging code needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocessing {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Subtracted from each 0..255 channel value.
    pub mean: f32,
    /// Divides each channel value after the mean.
    pub std: f32,
}

/// Output tensor names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputNames {
    /// The embedding output.
    pub embedding: String,
    /// The class logits output, when the graph has one.
    #[serde(default)]
    pub logits: Option<String>,
    /// The class activation map (row-major square grid, maximum 1), when the graph has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cam: Option<String>,
    /// The head features pooled with the map as weights (unit length), when the graph has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cam_embedding: Option<String>,
}

impl ModelManifest {
    /// The manifest path that belongs to a model file: `x.onnx` → `x.manifest.json`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("manifest.json")
    }

    /// Reads and validates the manifest next to `model`.
    pub fn load_for(model: &Path) -> Result<Self, ManifestError> {
        let path = Self::path_for(model);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let manifest: ModelManifest =
            serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
                path: path.clone(),
                source,
            })?;
        let unsupported = |reason: String| ManifestError::Unsupported {
            path: path.clone(),
            reason,
        };
        let input = &manifest.input;
        if input.layout != "NCHW" || input.color != "RGB" {
            return Err(unsupported(format!(
                "input {}/{} (only NCHW/RGB)",
                input.layout, input.color
            )));
        }
        if input.width == 0 || input.height == 0 || input.std == 0.0 || manifest.dim == 0 {
            return Err(unsupported("zero input size, std or dim".into()));
        }
        if let Some(s) = &manifest.subject {
            if s.method == SubjectMethod::DetectorCrop {
                return Err(unsupported(
                    "the subject method detector-crop comes from --detector, not from a manifest"
                        .into(),
                ));
            }
            let outputs = &manifest.outputs;
            if outputs.cam.is_none() || outputs.cam_embedding.is_none() {
                return Err(unsupported(
                    "the subject method needs the outputs cam and cam_embedding".into(),
                ));
            }
            let fraction = |v: f32| v > 0.0 && v <= 1.0;
            if !fraction(s.threshold) || !fraction(s.max_area) || !(0.0..=1.0).contains(&s.margin) {
                return Err(unsupported(format!(
                    "subject threshold {}, margin {}, max_area {} (fractions expected)",
                    s.threshold, s.margin, s.max_area
                )));
            }
        }
        Ok(manifest)
    }

    /// This model with the animal detector `detector` in front: a new model to the store (its
    /// version names the detector's file), embedding a photo by its animal's crop
    /// ([`SubjectMethod::DetectorCrop`]). Its whole-photo vector is this model's own (the whole
    /// photo's `cam_embedding`), so this model's vectors answer while the store reindexes.
    /// Only a `cam-colour` model qualifies: its vector is what a whole photo's run reproduces.
    /// Boxes scoring under `min_score` leave the photo whole, those from `full_score` up are cut
    /// out alone, and in between the crop narrows from the whole photo to the box.
    pub fn with_detector(
        &self,
        detector: &str,
        detector_sha256: &str,
        min_score: f32,
        full_score: f32,
    ) -> Result<Self, String> {
        if !(0.0..1.0).contains(&min_score) || !(min_score..=1.0).contains(&full_score) {
            return Err(format!(
                "detector scores {min_score} and {full_score}: 0 ≤ least score < 1 and least ≤ full ≤ 1 expected"
            ));
        }
        let Some(subject) = self
            .subject
            .filter(|s| s.method == SubjectMethod::CamColour)
        else {
            return Err(format!(
                "the detector needs a model with the subject method cam-colour; {} {} has {:?}",
                self.name,
                self.version,
                self.subject.map(|s| s.method)
            ));
        };
        let file_id = detector_sha256.get(..12).unwrap_or(detector_sha256);
        Ok(ModelManifest {
            // The scores in hundredths: other scores, other vectors, another model.
            version: format!(
                "{}+{DETECTOR_CROP_RECIPE}-s{:02}-{:02}+{detector}-{file_id}",
                self.version,
                (min_score * 100.0).round() as u32,
                (full_score * 100.0).round() as u32
            ),
            subject: Some(SubjectSettings {
                method: SubjectMethod::DetectorCrop,
                threshold: min_score,
                full_score: Some(full_score),
                ..subject
            }),
            whole_photo_of: Some(ModelRef {
                name: self.name.clone(),
                version: self.version.clone(),
            }),
            ..self.clone()
        })
    }

    /// The input contract for the imaging code.
    pub fn preprocessing(&self) -> Preprocessing {
        let i = &self.input;
        Preprocessing {
            width: i.width,
            height: i.height,
            mean: i.mean,
            std: i.std,
        }
    }

    /// Checks that `bytes` (the model file) hash to the manifest's sha256.
    pub fn verify(&self, model: &Path, bytes: &[u8]) -> Result<(), ManifestError> {
        verify_sha256(model, &self.sha256, bytes)
    }
}

/// Checks that `bytes` (the model file at `model`) hash to `expected` (hex sha256).
pub(crate) fn verify_sha256(
    model: &Path,
    expected: &str,
    bytes: &[u8],
) -> Result<(), ManifestError> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ManifestError::Mismatch {
            path: model.to_owned(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> ModelManifest {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/efficientnet_lite0.onnx");
        ModelManifest::load_for(&model).expect("the committed manifest")
    }

    #[test]
    fn a_detector_makes_a_new_model_whose_whole_photo_vectors_are_the_old_ones() {
        let base = shipped();
        let made = base
            .with_detector("nanodet-224-int8", "e27be2bc78cf7556a9", 0.1, 0.4)
            .unwrap();
        assert_eq!(made.name, base.name);
        assert_eq!(
            made.version,
            format!(
                "{}+{DETECTOR_CROP_RECIPE}-s10-40+nanodet-224-int8-e27be2bc78cf",
                base.version
            )
        );
        assert_eq!(
            made.subject.map(|s| s.method),
            Some(SubjectMethod::DetectorCrop)
        );
        assert!(
            made.subject
                .is_some_and(|s| s.crops() && s.threshold == 0.1)
        );
        assert_eq!(
            made.whole_photo_of,
            Some(ModelRef {
                name: base.name.clone(),
                version: base.version.clone()
            })
        );
        // Another detector file, or another least score: another model.
        let other = base
            .with_detector("nanodet-224-int8", "0123456789abcdef", 0.1, 0.4)
            .unwrap();
        assert_ne!(other.version, made.version);
        let lower = base
            .with_detector("nanodet-224-int8", "e27be2bc78cf7556a9", 0.2, 0.4)
            .unwrap();
        assert_ne!(lower.version, made.version);
        assert!(base.with_detector("d", "00", 1.0, 1.0).is_err());
        assert!(base.with_detector("d", "00", 0.4, 0.1).is_err());
        assert!(base.with_detector("d", "00", f32::NAN, 0.4).is_err());
    }

    #[test]
    fn only_a_cam_colour_model_takes_a_detector() {
        let mut plain = shipped();
        plain.subject = None;
        assert!(plain.with_detector("d", "00", 0.1, 0.4).is_err());
        let made = shipped().with_detector("d", "00", 0.1, 0.4).unwrap();
        assert!(
            made.with_detector("d", "00", 0.1, 0.4).is_err(),
            "no detector on a detector"
        );
    }
}
