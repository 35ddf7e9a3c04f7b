//! The path of a photo to its embedding: a decode slot, then the inference gate.
//! Shared by the embeddings endpoint, search and the background jobs.
//!
//! With a manifest that names a subject method (issue 22), a photo is embedded by its subject:
//! `cam-colour` takes the first run's `cam_embedding` (the subject's features and colour, one
//! run); `cam-crop` cuts the box of the first run's class activation map from the decoded pixels
//! and runs it again (same gate place), a photo whose box covers most of it embedded whole. A
//! model without a method embeds the whole photo.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;

use crate::capacity::{CapacityError, Slots};
use image::RgbImage;

use crate::imaging::{self, DecodeCaps, DecodedPhoto, ImagingError, PhotoFormat};
use crate::inference::{
    Embedding, Gate, GateError, ModelOutput, PhotoLabels, Preprocessing, Priority, SubjectBox,
    Ticket, labels_from_logits,
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
    /// The whole photo's embedding (the manifest's `embedding` output): the vector of the model
    /// the manifest's `whole_photo_of` names, which answers while the store reindexes.
    pub whole: Embedding,
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
            whole: embedding.clone(),
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
}

impl Decoded {
    /// The model input of `photo`, keeping (bounded) pixels when the subject will be cut.
    fn new(photo: DecodedPhoto, pre: &Preprocessing, keep: bool) -> Result<Self, ImagingError> {
        let tensor = imaging::to_tensor(&photo.pixels, pre)?;
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
        })
    }
}

impl Pipeline {
    /// A pipeline over `gate`, decoding in `decode`'s slots under `limits`
    /// (`Pipeline::new` builds them from the configuration).
    pub fn with_decode(gate: Gate, decode: Slots, limits: DecodeCaps) -> Self {
        Pipeline {
            gate,
            decode: Arc::new(decode),
            limits,
        }
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
        let decoded = self
            .decode(move || {
                let photo = imaging::decode(bytes.as_ref(), &limits, (pre.width, pre.height))?;
                Decoded::new(photo, &pre, keep)
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
        let (decoded, thumbnail) = self
            .decode(move || {
                // One decode covering both the model input and the thumbnail.
                let side = imaging::THUMBNAIL_SIDE;
                let target = (pre.width.max(side), pre.height.max(side));
                let photo = imaging::decode(bytes.as_ref(), &limits, target)?;
                let thumbnail = imaging::thumbnail(&photo.pixels, side)?;
                Ok((Decoded::new(photo, &pre, keep)?, thumbnail))
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
        } = decoded;
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
            whole: first.embedding,
            labels: labels_from_logits(&logits),
            subject,
        })
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

/// The subject's vector from a run: the map-pooled embedding (the whole-photo one from a
/// model that has none).
fn subject_vector(output: ModelOutput) -> Embedding {
    if output.cam_embedding.is_empty() {
        output.embedding
    } else {
        output.cam_embedding
    }
}
