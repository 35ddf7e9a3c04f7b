//! The animal detector (issue 22; not wired into the pipeline yet): NanoDet (COCO-80, INT8,
//! `models/nanodet_224_int8.onnx`, built by scripts/setup-detector.sh) finds the best box of an
//! animal class in a photo, so that the pipeline can embed the animal instead of the whole photo.
//! Pure functions (the model input, the decode of the six outputs) and a `Detector` that runs one
//! photo; the decode follows `models/quantize_detector.py` (`decode`, `best_box`), which measured it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::RgbImage;
use ndarray::{Array3, Array4};
use ort::session::Session;
use serde::Deserialize;

use super::device::DeviceSettings;
use super::embedder::{RuntimeError, init_runtime, open_session};
use super::manifest::ManifestError;

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
        use sha2::{Digest, Sha256};
        let actual = hex::encode(Sha256::digest(bytes));
        if actual.eq_ignore_ascii_case(&self.sha256) {
            Ok(())
        } else {
            Err(ManifestError::Mismatch {
                path: model.to_owned(),
                expected: self.sha256.clone(),
                actual,
            })
        }
    }

    /// The side of the square input in pixels.
    pub fn side(&self) -> u32 {
        self.input.width
    }
}

/// A box in a photo's pixel coordinates (`x0 ≤ x1`, `y0 ≤ y1`, within the photo).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelBox {
    /// Left edge.
    pub x0: f32,
    /// Top edge.
    pub y0: f32,
    /// Right edge.
    pub x1: f32,
    /// Bottom edge.
    pub y1: f32,
}

impl PixelBox {
    /// Intersection over union with `other` (0 when either is empty).
    pub fn iou(&self, other: &PixelBox) -> f32 {
        let w = (self.x1.min(other.x1) - self.x0.max(other.x0)).max(0.0);
        let h = (self.y1.min(other.y1) - self.y0.max(other.y0)).max(0.0);
        let inter = w * h;
        let area = |b: &PixelBox| (b.x1 - b.x0) * (b.y1 - b.y0);
        let union = area(self) + area(other) - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// The detector's best box of an animal class in one photo.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index of the class in the manifest's `classes`.
    pub class: usize,
    /// The class name (COCO), e.g. `dog`.
    pub class_name: String,
    /// The class score (sigmoid, 0..1); the box is returned at any score.
    pub score: f32,
    /// The box, in the photo's pixel coordinates.
    pub area: PixelBox,
}

/// The model input `[3, S, S]` from pixels already resampled to the detector's S × S
/// (the pipeline's resample of the decoded photo, stretched): BGR, `(v - mean) / std`.
pub fn input_tensor(
    resampled: &RgbImage,
    input: &DetectorInput,
) -> Result<Array3<f32>, DetectorError> {
    let (w, h) = resampled.dimensions();
    if (w, h) != (input.width, input.height) {
        return Err(DetectorError::InputSize {
            got_width: w,
            got_height: h,
            width: input.width,
            height: input.height,
        });
    }
    let (w, h) = (w as usize, h as usize);
    let plane = w * h;
    // One lookup table per BGR channel: 256 values each.
    let tables: [[f32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 - input.mean[c]) / input.std[c]));
    let mut data = vec![0f32; plane * 3];
    for (i, px) in resampled.as_raw().chunks_exact(3).enumerate() {
        // Channel 0 is blue: the RGB pixel's last byte.
        for c in 0..3 {
            data[c * plane + i] = tables[c][usize::from(px[2 - c])];
        }
    }
    Array3::from_shape_vec((3, h, w), data).map_err(|e| DetectorError::Run(e.to_string()))
}

/// One head's outputs: `scores` `[cells × classes]` and `boxes` `[cells × 4 × bins]`, row-major.
#[derive(Debug, Clone, Copy)]
pub struct HeadOutput<'a> {
    /// The head's stride in input pixels.
    pub stride: u32,
    /// Class scores (already sigmoid), `cells × classes`.
    pub scores: &'a [f32],
    /// GFL distributions, `cells × 4 × bins` (left, top, right, bottom).
    pub boxes: &'a [f32],
}

/// The best box of an animal class over every cell of every head (the highest score of any
/// animal class; ties: the first head, cell and class), at any score, in a `width` × `height`
/// photo's pixels. `None` when the outputs hold no cell or no finite animal score, or their
/// sizes do not fit `side` (the square input's side), the classes and the bins.
pub fn best_animal(
    heads: &[HeadOutput<'_>],
    manifest: &DetectorManifest,
    width: u32,
    height: u32,
) -> Option<Detection> {
    let side = manifest.side();
    let classes = manifest.classes.len();
    let bins = manifest.decode.bins;
    let mut best: Option<(f32, usize, usize, usize)> = None; // score, head, cell, class
    for (h, head) in heads.iter().enumerate() {
        let grid = (side / head.stride.max(1)) as usize;
        let cells = grid * grid;
        if head.stride == 0
            || head.scores.len() != cells * classes
            || head.boxes.len() != cells * 4 * bins
        {
            return None;
        }
        for (cell, row) in head.scores.chunks_exact(classes).enumerate() {
            for &class in &manifest.animal_classes {
                let score = row[class];
                if score.is_finite() && best.is_none_or(|(b, ..)| score > b) {
                    best = Some((score, h, cell, class));
                }
            }
        }
    }
    let (score, h, cell, class) = best?;
    let head = heads[h];
    let grid = side / head.stride;
    let stride = head.stride as f32;
    let d = &head.boxes[cell * 4 * bins..(cell + 1) * 4 * bins];
    let dist: Vec<f32> = d
        .chunks_exact(bins)
        .map(|side| expectation(side) * stride)
        .collect();
    let (cx, cy) = (
        ((cell as u32 % grid) as f32 + 0.5) * stride,
        ((cell as u32 / grid) as f32 + 0.5) * stride,
    );
    let s = side as f32;
    let frac = |v: f32| (v / s).clamp(0.0, 1.0);
    let (w, hgt) = (width as f32, height as f32);
    Some(Detection {
        class,
        class_name: manifest.classes[class].clone(),
        score,
        area: PixelBox {
            x0: frac(cx - dist[0]) * w,
            y0: frac(cy - dist[1]) * hgt,
            x1: frac(cx + dist[2]) * w,
            y1: frac(cy + dist[3]) * hgt,
        },
    })
}

/// The expected bin index under the softmax of `logits` (GFL's distance, in strides); a
/// distribution that is not finite gives 0 (a box of no extent on that side).
fn expectation(logits: &[f32]) -> f32 {
    let peak = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !peak.is_finite() {
        return 0.0;
    }
    let (mut total, mut weighted) = (0f32, 0f32);
    for (i, &v) in logits.iter().enumerate() {
        let p = (v - peak).exp();
        total += p;
        weighted += p * i as f32;
    }
    if total > 0.0 && weighted.is_finite() {
        weighted / total
    } else {
        0.0
    }
}

/// The detector model: one CPU session on one intra-op thread, checked against its manifest.
pub struct Detector {
    manifest: DetectorManifest,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("model", &self.manifest.name)
            .finish()
    }
}

impl Detector {
    /// Loads the runtime library, checks the model file against its manifest, opens one CPU
    /// session (1 intra-op thread) and runs it once on a blank input to check the outputs.
    pub fn load(library: &Path, model: &Path) -> Result<Self, DetectorError> {
        let environment = init_runtime(library)?;
        let manifest = DetectorManifest::load_for(model)?;
        let bytes = std::fs::read(model).map_err(|source| DetectorError::ReadModel {
            path: model.to_owned(),
            source,
        })?;
        manifest.verify(model, &bytes)?;
        let session =
            open_session(&environment, &bytes, 1, &DeviceSettings::default()).map_err(|e| {
                DetectorError::LoadModel {
                    path: model.to_owned(),
                    message: e.to_string(),
                }
            })?;
        let detector = Detector {
            manifest,
            session: Mutex::new(session),
        };
        let side = detector.manifest.side() as usize;
        detector
            .run(Array4::zeros((1, 3, side, side)), 1, 1)
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
        let x = input_tensor(resampled, &self.manifest.input)?.insert_axis(ndarray::Axis(0));
        self.run(x, width, height)
    }

    fn run(
        &self,
        batch: Array4<f32>,
        width: u32,
        height: u32,
    ) -> Result<Option<Detection>, DetectorError> {
        let run_error = |e: ort::Error| DetectorError::Run(e.to_string());
        let input = ort::value::TensorRef::from_array_view(batch.view()).map_err(run_error)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
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
    fn manifest() -> DetectorManifest {
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

    /// Logits whose softmax puts (almost) all mass on bin `k`.
    fn peak_at(k: usize) -> Vec<f32> {
        (0..11).map(|i| if i == k { 50.0 } else { 0.0 }).collect()
    }

    #[test]
    fn the_input_is_bgr_normalised_nchw() {
        let m = manifest();
        let mut img = RgbImage::new(64, 64);
        img.put_pixel(3, 2, image::Rgb([255, 0, 10]));
        let x = input_tensor(&img, &m.input).unwrap();
        assert_eq!(x.dim(), (3, 64, 64));
        // Blue plane first: pixel (3, 2)'s blue is 10.
        assert!((x[[0, 2, 3]] - (10.0 - 103.53) / 57.375).abs() < 1e-5);
        assert!((x[[1, 2, 3]] - (0.0 - 116.28) / 57.12).abs() < 1e-5);
        assert!((x[[2, 2, 3]] - (255.0 - 123.675) / 58.395).abs() < 1e-5);
        assert!((x[[2, 0, 0]] - (0.0 - 123.675) / 58.395).abs() < 1e-5);
        let wrong = RgbImage::new(64, 63);
        assert!(matches!(
            input_tensor(&wrong, &m.input),
            Err(DetectorError::InputSize { .. })
        ));
    }

    #[test]
    fn gfl_expectation_is_the_softmax_mean_of_the_bins() {
        assert!((expectation(&peak_at(3)) - 3.0).abs() < 1e-4);
        assert!(
            (expectation(&[0.0; 11]) - 5.0).abs() < 1e-5,
            "uniform: the middle bin"
        );
        assert!((expectation(&[0.0, 0.0]) - 0.5).abs() < 1e-6);
        assert_eq!(expectation(&[f32::NAN; 11]), 0.0);
        assert_eq!(expectation(&[f32::NEG_INFINITY; 11]), 0.0);
    }

    #[test]
    fn the_best_animal_box_is_decoded_into_the_photos_pixels() {
        let m = manifest();
        // Head 16: 4x4 cells; head 32: 2x2 cells.
        let mut s16 = vec![0.0; 16 * 3];
        let mut b16 = vec![0.0; 16 * 44];
        let mut s32 = vec![0.0; 4 * 3];
        let mut b32 = vec![0.0; 4 * 44];
        s16[5 * 3] = 0.99; // a person, cell (1, 1): never chosen
        s16[6 * 3 + 1] = 0.4; // a cat at cell row 1, col 2
        s32[3 * 3 + 2] = 0.6; // a dog at the stride-32 cell row 1, col 1: the best animal
        // The dog cell's sides: left 1, top 2, right 0, bottom 1 strides (of 32 px).
        let sides = [peak_at(1), peak_at(2), peak_at(0), peak_at(1)].concat();
        b32[3 * 44..4 * 44].copy_from_slice(&sides);
        b16[6 * 44..7 * 44]
            .copy_from_slice(&[peak_at(1), peak_at(1), peak_at(1), peak_at(1)].concat());
        let heads = [
            HeadOutput {
                stride: 16,
                scores: &s16,
                boxes: &b16,
            },
            HeadOutput {
                stride: 32,
                scores: &s32,
                boxes: &b32,
            },
        ];
        // A 640x320 photo: x scales by 10, y by 5.
        let d = best_animal(&heads, &m, 640, 320).expect("a box");
        assert_eq!((d.class, d.class_name.as_str()), (2, "dog"));
        assert!((d.score - 0.6).abs() < 1e-6);
        // Centre (48, 48); box (16, -16 -> 0, 48, 80 -> 64) of the 64 px input.
        let want = PixelBox {
            x0: 160.0,
            y0: 0.0,
            x1: 480.0,
            y1: 320.0,
        };
        assert!(d.area.iou(&want) > 0.999, "{:?}", d.area);

        // Without the dog, the cat of the stride-16 head: centre (40, 24), 16 px each side.
        s32[3 * 3 + 2] = 0.0;
        let heads = [
            HeadOutput {
                stride: 16,
                scores: &s16,
                boxes: &b16,
            },
            HeadOutput {
                stride: 32,
                scores: &s32,
                boxes: &b32,
            },
        ];
        let d = best_animal(&heads, &m, 64, 64).expect("a box");
        assert_eq!(d.class_name, "cat");
        let want = PixelBox {
            x0: 24.0,
            y0: 8.0,
            x1: 56.0,
            y1: 40.0,
        };
        assert!(d.area.iou(&want) > 0.999, "{:?}", d.area);
    }

    #[test]
    fn malformed_or_empty_outputs_give_no_box() {
        let m = manifest();
        let (s16, b16) = (vec![0.1; 16 * 3], vec![0.0; 16 * 44]);
        let (s32, b32) = (vec![0.1; 4 * 3], vec![0.0; 4 * 44]);
        let ok = [
            HeadOutput {
                stride: 16,
                scores: &s16,
                boxes: &b16,
            },
            HeadOutput {
                stride: 32,
                scores: &s32,
                boxes: &b32,
            },
        ];
        assert!(best_animal(&ok, &m, 10, 10).is_some(), "a box at any score");
        let short = [HeadOutput {
            stride: 16,
            scores: &s16[1..],
            boxes: &b16,
        }];
        assert_eq!(best_animal(&short, &m, 10, 10), None);
        let zero = [HeadOutput {
            stride: 0,
            scores: &s16,
            boxes: &b16,
        }];
        assert_eq!(best_animal(&zero, &m, 10, 10), None);
        let nan = vec![f32::NAN; 4 * 3];
        assert_eq!(
            best_animal(
                &[HeadOutput {
                    stride: 32,
                    scores: &nan,
                    boxes: &b32
                }],
                &m,
                10,
                10
            ),
            None
        );
        assert_eq!(best_animal(&[], &m, 10, 10), None);
        // Boxes stay within the photo, even with huge distances (NaN distributions: 0 extent).
        let nan_boxes = vec![f32::NAN; 4 * 44];
        let d = best_animal(
            &[HeadOutput {
                stride: 32,
                scores: &s32,
                boxes: &nan_boxes,
            }],
            &m,
            7,
            9,
        )
        .expect("a box");
        assert!(d.area.x0 >= 0.0 && d.area.x1 <= 7.0 && d.area.y0 >= 0.0 && d.area.y1 <= 9.0);
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
