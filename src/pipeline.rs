//! The path of a photo to its embedding: a decode slot, then the inference gate.
//! Shared by the embeddings endpoint, search and the background jobs.
//!
//! With a manifest that names a subject method (issue 22), a photo is embedded by its subject:
//! `cam-colour` takes the first run's `cam_embedding` (the subject's features and colour, one
//! run); `cam-crop` cuts the box of the first run's class activation map from the decoded pixels
//! and runs it again (same gate place), a photo whose box covers most of it embedded whole;
//! `detector-crop` first runs the animal detector (same gate place) and embeds the animal's crop
//! instead of the whole photo (one model run either way, plus the whole photo's while the store
//! still answers from the previous model's vectors). A model without a method embeds the whole
//! photo.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::try_join_all;

use crate::capacity::{CapacityError, Slots};
use image::RgbImage;

use crate::imaging::{self, DecodeCaps, DecodedPhoto, ImagingError, PhotoFormat};
use crate::inference::detector::{self, Detection, DetectorInput, PixelBox};
use crate::inference::{
    Embedding, Gate, GateError, ModelOutput, PhotoLabels, Preprocessing, Priority, SubjectBox,
    SubjectSettings, Ticket, labels_from_logits,
};
use crate::telemetry::timing::{self, Stage};

/// Why a photo got no embedding.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The photo itself is the problem (format, size, corrupt).
    #[error(transparent)]
    Imaging(#[from] ImagingError),
    /// The decoders are saturated.
    #[error(transparent)]
    DecodeBusy(#[from] CapacityError),
    /// The model gate refused or failed.
    #[error(transparent)]
    Gate(#[from] GateError),
}

impl PipelineError {
    /// Whether waiting may help: the gate or the decoders are saturated (or closing), rather
    /// than the photo bad or the model broken.
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Imaging(_) => false,
            PipelineError::DecodeBusy(_) => true,
            PipelineError::Gate(g) => !matches!(g, GateError::Run(_)),
        }
    }

    /// When to retry, for the errors that are about load.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PipelineError::Imaging(_) => None,
            PipelineError::DecodeBusy(l) => Some(l.retry_after()),
            PipelineError::Gate(g) => g.retry_after(),
        }
    }
}

/// Photo bytes in, embeddings out.
#[derive(Clone)]
pub struct Pipeline {
    gate: Gate,
    decode: Arc<Slots>,
    limits: DecodeCaps,
    /// Set once no vector of the previous model is needed any more (the store has reindexed):
    /// until then a photo whose animal is embedded also gets its whole photo's run. None: always.
    whole_done: Option<Arc<AtomicBool>>,
}

/// One embedded photo.
#[derive(Debug, Clone)]
pub struct EmbeddedPhoto {
    /// Detected format.
    pub format: PhotoFormat,
    /// Original width, upright.
    pub width: u32,
    /// Original height, upright.
    pub height: u32,
    /// The embedding (unit length): the subject's, or the whole photo's.
    pub embedding: Embedding,
    /// The vector of the model the manifest's `whole_photo_of` names, which answers while the
    /// store reindexes: the whole photo's run. None when it was not needed (see
    /// [`Pipeline::with_whole_vectors_until`]) and a subject's run gave the embedding.
    pub whole: Option<Embedding>,
    /// Species and breeds read from the subject's run (the whole photo's when no subject was
    /// found); `None` for a model without logits.
    pub labels: Option<PhotoLabels>,
    /// Where the subject was found, in the decoded pixels' scale; none: embedded whole.
    pub subject: Option<SubjectBox>,
}

impl EmbeddedPhoto {
    /// A photo known only by one stored vector (no model run now).
    pub fn stored(format: PhotoFormat, width: u32, height: u32, embedding: Embedding) -> Self {
        EmbeddedPhoto {
            format,
            width,
            height,
            whole: Some(embedding.clone()),
            embedding,
            labels: None,
            subject: None,
        }
    }
}

/// Longest side of the pixels kept for cropping the subject after the first run: a JPEG is
/// already decoded near the model's size (DCT scaling), a large PNG or WebP is reduced to this.
const SUBJECT_SOURCE_SIDE: u32 = 1024;

/// A decoded photo ready for its first run, with the pixels its subject is cut from.
struct Decoded {
    format: PhotoFormat,
    width: u32,
    height: u32,
    tensor: ndarray::Array3<f32>,
    pixels: Option<RgbImage>,
    /// The animal detector's input, with a detector in front of the model.
    detector_input: Option<ndarray::Array3<f32>>,
}

impl Decoded {
    /// The model input of `photo` (and the detector's, given its contract), keeping (bounded)
    /// pixels when the subject will be cut.
    fn new(
        photo: DecodedPhoto,
        pre: &Preprocessing,
        keep: bool,
        detector: Option<&DetectorInput>,
    ) -> Result<Self, ImagingError> {
        let (tensor, detector_input) = match detector {
            Some(input) => {
                // One resample serves both models when their inputs have the same size.
                let (w, h) = (input.width, input.height);
                let resampled = RgbImage::from_raw(w, h, imaging::resize(&photo.pixels, w, h)?)
                    .ok_or_else(|| ImagingError::Decode("short RGB data".into()))?;
                let tensor = if (pre.width, pre.height) == (w, h) {
                    imaging::to_tensor(&resampled, pre)?
                } else {
                    imaging::to_tensor(&photo.pixels, pre)?
                };
                let detector_input = detector::input_tensor(&resampled, input)
                    .map_err(|e| ImagingError::Decode(e.to_string()))?;
                (tensor, Some(detector_input))
            }
            None => (imaging::to_tensor(&photo.pixels, pre)?, None),
        };
        let pixels = if keep {
            let (w, h) = photo.pixels.dimensions();
            let long = w.max(h);
            Some(if long > SUBJECT_SOURCE_SIDE {
                let k = f64::from(SUBJECT_SOURCE_SIDE) / f64::from(long);
                let (nw, nh) = (
                    ((f64::from(w) * k).round() as u32).max(1),
                    ((f64::from(h) * k).round() as u32).max(1),
                );
                RgbImage::from_raw(nw, nh, imaging::resize(&photo.pixels, nw, nh)?)
                    .ok_or_else(|| ImagingError::Decode("short RGB data".into()))?
            } else {
                photo.pixels
            })
        } else {
            None
        };
        Ok(Decoded {
            format: photo.format,
            width: photo.width,
            height: photo.height,
            tensor,
            pixels,
            detector_input,
        })
    }
}

/// Each side of the detector's box loses this fraction of its size before the crop: the rule
/// that did best for hand-drawn boxes (benches/detector_eval.py, `shrunk_crop`).
const DETECTION_SHRINK: f32 = 0.1;

impl Pipeline {
    /// A pipeline over `gate`, decoding in `decode`'s slots under `limits`
    /// (`Pipeline::new` builds them from the configuration).
    pub fn with_decode(gate: Gate, decode: Slots, limits: DecodeCaps) -> Self {
        Pipeline {
            gate,
            decode: Arc::new(decode),
            limits,
            whole_done: None,
        }
    }

    /// Whole-photo runs for the previous model's vectors stop once `done` is set (by the
    /// matcher, when the store has reindexed): before, a photo embedded by its animal costs a
    /// second run, after, one.
    pub fn with_whole_vectors_until(mut self, done: Arc<AtomicBool>) -> Self {
        self.whole_done = Some(done);
        self
    }

    /// Whether a photo embedded by its subject also needs its whole photo's run now.
    fn whole_wanted(&self) -> bool {
        self.whole_done
            .as_ref()
            .is_none_or(|done| !done.load(Ordering::Acquire))
    }

    /// The animal detector's input contract, with a detector in front of the model.
    fn detector_input(&self) -> Option<DetectorInput> {
        self.gate.model().detector().map(|d| d.input.clone())
    }

    /// The inference gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The decode slots (shared with report uploads, shown on status).
    pub fn decode_slots(&self) -> &Arc<Slots> {
        &self.decode
    }

    /// The caps a decode works under (pixels, memory).
    pub fn decode_caps(&self) -> DecodeCaps {
        self.limits
    }

    /// Takes a place in the gate at `priority`, or refuses at once (503) when its waiters are
    /// full: a handler admits before it reads a request body, so an overloaded service reads no
    /// bodies it would turn away.
    pub fn admit(&self, priority: Priority) -> Result<Ticket, PipelineError> {
        Ok(self.gate.admit(priority)?)
    }

    /// Decodes and embeds one photo at `priority`.
    pub async fn embed(
        &self,
        bytes: impl AsRef<[u8]> + Send + 'static,
        priority: Priority,
    ) -> Result<EmbeddedPhoto, PipelineError> {
        // Admission first: an overloaded gate refuses before any CPU goes into decoding.
        let ticket = self.admit(priority)?;
        self.embed_admitted(ticket, bytes).await
    }

    /// Decodes and embeds one photo with the place `ticket` holds in the gate.
    pub async fn embed_admitted(
        &self,
        ticket: Ticket,
        bytes: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<EmbeddedPhoto, PipelineError> {
        let pre = self.gate.model().manifest().preprocessing();
        let limits = self.limits;
        let keep = self.subject_method();
        let detector = self.detector_input();
        let decoded = self
            .decode(move || {
                let photo = imaging::decode(bytes.as_ref(), &limits, (pre.width, pre.height))?;
                Decoded::new(photo, &pre, keep, detector.as_ref())
            })
            .await?;
        self.finish(ticket, decoded).await
    }

    /// Whether a photo's subject is cut out and run again (the manifest's method crops), so
    /// its decoded pixels are kept after the first run.
    fn subject_method(&self) -> bool {
        self.gate
            .model()
            .manifest()
            .subject
            .is_some_and(|s| s.crops())
    }

    /// Decodes one photo once for both its embedding and its thumbnail, and embeds it at
    /// `priority`: an upload's photo, checked only by its header at upload, is decoded here.
    pub async fn embed_with_thumbnail(
        &self,
        bytes: impl AsRef<[u8]> + Send + 'static,
        priority: Priority,
    ) -> Result<(EmbeddedPhoto, Vec<u8>), PipelineError> {
        let ticket = self.admit(priority)?;
        let pre = self.gate.model().manifest().preprocessing();
        let limits = self.limits;
        let keep = self.subject_method();
        let detector = self.detector_input();
        let (decoded, thumbnail) = self
            .decode(move || {
                // One decode covering both the model input and the thumbnail.
                let side = imaging::THUMBNAIL_SIDE;
                let target = (pre.width.max(side), pre.height.max(side));
                let photo = imaging::decode(bytes.as_ref(), &limits, target)?;
                let thumbnail = imaging::thumbnail(&photo.pixels, side)?;
                Ok((
                    Decoded::new(photo, &pre, keep, detector.as_ref())?,
                    thumbnail,
                ))
            })
            .await?;
        Ok((self.finish(ticket, decoded).await?, thumbnail))
    }

    /// Runs `decoding` on a decode slot, on a compute thread (below the async threads).
    async fn decode<T: Send + 'static>(
        &self,
        decoding: impl FnOnce() -> Result<T, ImagingError> + Send + 'static,
    ) -> Result<T, PipelineError> {
        let decoding = self.decode.run_compute(decoding);
        Ok(timing::measure(Stage::Decode, decoding)
            .await?
            // A decoder that panics on a photo has been beaten by that photo: reject it.
            .unwrap_or_else(|_| {
                Err(ImagingError::Decode(
                    "the decoder failed on this photo".into(),
                ))
            })?)
    }

    /// The model runs of one decoded photo, with the place `ticket` holds: the whole photo,
    /// then (with a subject method) its subject's box, cut from the kept pixels on a decode
    /// slot and run again.
    async fn finish(
        &self,
        ticket: Ticket,
        decoded: Decoded,
    ) -> Result<EmbeddedPhoto, PipelineError> {
        let Decoded {
            format,
            width,
            height,
            tensor,
            pixels,
            detector_input,
        } = decoded;
        if let Some(input) = detector_input {
            let (embedding, whole, logits, subject) =
                self.embed_animal(&ticket, input, tensor, pixels).await?;
            return Ok(EmbeddedPhoto {
                format,
                width,
                height,
                embedding,
                whole,
                labels: labels_from_logits(&logits),
                subject,
            });
        }
        let first = ticket.infer(tensor).await?;
        let manifest = self.gate.model().manifest();
        let area = match (&manifest.subject, &pixels) {
            (Some(settings), Some(pixels)) => {
                crate::inference::subject_box(&first.cam, settings, pixels.width(), pixels.height())
            }
            _ => None,
        };
        let (embedding, subject, logits) = match (area, pixels) {
            (Some(area), Some(pixels)) => {
                let pre = manifest.preprocessing();
                let tensor = self
                    .decode(move || {
                        imaging::to_tensor(&crate::inference::crop(&pixels, area), &pre)
                    })
                    .await?;
                let mut second = ticket.infer(tensor).await?;
                let logits = std::mem::take(&mut second.logits);
                (subject_vector(second), Some(area), logits)
            }
            _ if manifest.subject.is_some() => {
                (subject_vector(first.clone()), None, first.logits.clone())
            }
            _ => (first.embedding.clone(), None, first.logits.clone()),
        };
        Ok(EmbeddedPhoto {
            format,
            width,
            height,
            embedding,
            whole: Some(first.embedding),
            labels: labels_from_logits(&logits),
            subject,
        })
    }

    /// `detector-crop`: the detector's run on `input`, then one model run on the animal's crop
    /// (cut from `pixels` on a decode slot) or, when no animal is boxed, on the whole photo
    /// (`tensor`). The embedding, the whole-photo vector, the logits read, and the crop.
    async fn embed_animal(
        &self,
        ticket: &Ticket,
        input: ndarray::Array3<f32>,
        tensor: ndarray::Array3<f32>,
        pixels: Option<RgbImage>,
    ) -> Result<(Embedding, Option<Embedding>, Vec<f32>, Option<SubjectBox>), PipelineError> {
        let found = ticket.detect(input).await?;
        let settings = self.gate.model().manifest().subject;
        let area = match (&found, &pixels, settings) {
            (Some(found), Some(pixels), Some(settings)) => {
                animal_area(found, &settings, pixels.width(), pixels.height())
            }
            _ => None,
        };
        let (Some(area), Some(pixels)) = (area, pixels) else {
            let mut whole = ticket.infer(tensor).await?;
            let logits = std::mem::take(&mut whole.logits);
            let vector = subject_vector(whole);
            return Ok((vector.clone(), Some(vector), logits, None));
        };
        let pre = self.gate.model().manifest().preprocessing();
        let crop = self
            .decode(move || imaging::to_tensor(&crate::inference::crop(&pixels, area), &pre))
            .await?;
        // Both runs may share one batch.
        let (mut animal, whole) = if self.whole_wanted() {
            let (animal, whole) = tokio::try_join!(ticket.infer(crop), ticket.infer(tensor))?;
            (animal, Some(subject_vector(whole)))
        } else {
            (ticket.infer(crop).await?, None)
        };
        let logits = std::mem::take(&mut animal.logits);
        Ok((subject_vector(animal), whole, logits, Some(area)))
    }

    /// Embeds several photos concurrently (they share model runs when batching is on), the first
    /// with the place `first` holds, the others with places taken now; fails if any fails.
    pub async fn embed_all_admitted<B>(
        &self,
        first: Ticket,
        photos: Vec<B>,
    ) -> Result<Vec<EmbeddedPhoto>, PipelineError>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        let priority = first.priority();
        let mut tickets = vec![first];
        for _ in 1..photos.len() {
            tickets.push(self.admit(priority)?);
        }
        try_join_all(
            photos
                .into_iter()
                .zip(tickets)
                .map(|(bytes, ticket)| self.embed_admitted(ticket, bytes)),
        )
        .await
    }
}

/// The crop of a `width` × `height` photo that a detection (in fractions of the photo) gives:
/// none under the least score (`settings.threshold`); the box (shrunk, squared) from the full
/// score up; in between, the rectangle that far from the whole photo toward the box, so that an
/// unsure box (a score that an edit of the photo moves) moves the vector little.
fn animal_area(
    found: &Detection,
    settings: &SubjectSettings,
    width: u32,
    height: u32,
) -> Option<SubjectBox> {
    let (least, full) = (settings.threshold, settings.full_score?);
    if found.score.is_nan() || found.score < least {
        return None;
    }
    let (w, h) = (width as f32, height as f32);
    let a = found.area;
    let pixels = PixelBox {
        x0: a.x0 * w,
        y0: a.y0 * h,
        x1: a.x1 * w,
        y1: a.y1 * h,
    };
    let tight = detector::crop_area(&pixels, DETECTION_SHRINK, width, height)?;
    let t = if full > least {
        ((found.score - least) / (full - least)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let toward = |whole: f32, boxed: u32| whole + (boxed as f32 - whole) * t;
    let x = (toward(0.0, tight.x).floor() as u32).min(width - 1);
    let y = (toward(0.0, tight.y).floor() as u32).min(height - 1);
    let right = (toward(w, tight.x + tight.width).round() as u32).clamp(x + 1, width);
    let bottom = (toward(h, tight.y + tight.height).round() as u32).clamp(y + 1, height);
    Some(SubjectBox {
        x,
        y,
        width: right - x,
        height: bottom - y,
    })
}

/// The subject's vector from a run: the map-pooled embedding (the whole-photo one from a
/// model that has none).
fn subject_vector(output: ModelOutput) -> Embedding {
    if output.cam_embedding.is_empty() {
        output.embedding
    } else {
        output.cam_embedding
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::SubjectMethod;
    use crate::inference::detector::PixelBox;

    const SETTINGS: SubjectSettings = SubjectSettings {
        method: SubjectMethod::DetectorCrop,
        threshold: 0.1,
        margin: 0.0,
        max_area: 1.0,
        full_score: Some(0.4),
    };

    /// A dog in the right half of the photo (fractions), at `score`.
    fn dog(score: f32) -> Detection {
        Detection {
            class: 16,
            class_name: "dog".into(),
            score,
            area: PixelBox {
                x0: 0.6,
                y0: 0.3,
                x1: 0.9,
                y1: 0.7,
            },
        }
    }

    #[test]
    fn a_sure_box_is_cut_alone_an_unsure_one_widens_toward_the_whole_photo() {
        let (w, h) = (1000, 500);
        assert_eq!(
            animal_area(&dog(0.05), &SETTINGS, w, h),
            None,
            "under the least score"
        );
        assert_eq!(animal_area(&dog(f32::NAN), &SETTINGS, w, h), None);
        let sure = animal_area(&dog(0.9), &SETTINGS, w, h).unwrap();
        let tight = detector::crop_area(
            &PixelBox {
                x0: 600.0,
                y0: 150.0,
                x1: 900.0,
                y1: 350.0,
            },
            DETECTION_SHRINK,
            w,
            h,
        )
        .unwrap();
        assert_eq!(sure, tight, "from the full score up: the box alone");
        assert_eq!(animal_area(&dog(0.4), &SETTINGS, w, h), Some(tight));
        let least = animal_area(&dog(0.1), &SETTINGS, w, h).unwrap();
        assert_eq!(
            (least.x, least.y, least.width, least.height),
            (0, 0, w, h),
            "at the least score: the whole photo"
        );
        // Halfway: halfway between the whole photo and the box, on every side.
        let half = animal_area(&dog(0.25), &SETTINGS, w, h).unwrap();
        assert_eq!(half.x, tight.x / 2);
        assert_eq!(half.y, tight.y / 2);
        let right = (w + tight.x + tight.width) / 2;
        assert!((half.x + half.width).abs_diff(right) <= 1, "{half:?}");
        assert!(half.width > tight.width && half.width < w);
    }

    #[test]
    fn crops_stay_within_tiny_photos() {
        for (w, h) in [(1, 1), (2, 1), (1, 300), (300, 1)] {
            for score in [0.1, 0.2, 0.4, 1.0] {
                let a = animal_area(&dog(score), &SETTINGS, w, h).unwrap();
                assert!(a.width >= 1 && a.height >= 1, "{a:?}");
                assert!(
                    a.x + a.width <= w && a.y + a.height <= h,
                    "{a:?} in {w}x{h}"
                );
            }
        }
    }
}
