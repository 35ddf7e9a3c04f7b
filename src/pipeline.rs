//! The path of a photo to its embedding: a decode slot, then the inference gate.
//! Shared by the embeddings endpoint, search and the background jobs.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;

use crate::capacity::{CapacityError, Slots};
use crate::config::ImagingConfig;
use crate::imaging::{self, DecodeCaps, ImagingError, PhotoFormat};
use crate::inference::{Embedding, Gate, GateError, PhotoLabels, Priority, Ticket};
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
    /// The embedding (unit length).
    pub embedding: Embedding,
    /// Species and breeds read from the photo (`None` for a model without logits).
    pub labels: Option<PhotoLabels>,
}

impl Pipeline {
    /// A pipeline over `gate`, decoding under the configured limits.
    pub fn new(gate: Gate, config: &ImagingConfig) -> Self {
        let permits = if config.decode_permits == 0 {
            crate::config::available_cores()
        } else {
            config.decode_permits
        };
        // Decoding a photo takes milliseconds; a decode wait beyond a few seconds means overload.
        let decode = Slots::new(
            "decode",
            permits,
            config.decode_max_waiters,
            Duration::from_secs(5),
        );
        Pipeline {
            gate,
            decode: Arc::new(decode),
            limits: DecodeCaps::from_config(config),
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
        let prepared = self
            .decode(move || imaging::prepare(bytes.as_ref(), &pre, &limits))
            .await?;
        Self::finish(ticket, prepared).await
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
        let (prepared, thumbnail) = self
            .decode(move || imaging::prepare_with_thumbnail(bytes.as_ref(), &pre, &limits))
            .await?;
        Ok((Self::finish(ticket, prepared).await?, thumbnail))
    }

    /// Runs `decoding` on a decode slot.
    async fn decode<T: Send + 'static>(
        &self,
        decoding: impl FnOnce() -> Result<T, ImagingError> + Send + 'static,
    ) -> Result<T, PipelineError> {
        let decoding = self.decode.run_blocking(decoding);
        Ok(timing::measure(Stage::Decode, decoding)
            .await?
            // A decoder that panics on a photo has been beaten by that photo: reject it.
            .unwrap_or_else(|_| {
                Err(ImagingError::Decode(
                    "the decoder failed on this photo".into(),
                ))
            })?)
    }

    async fn finish(
        ticket: Ticket,
        prepared: imaging::PreparedPhoto,
    ) -> Result<EmbeddedPhoto, PipelineError> {
        let output = ticket.embed_labelled(prepared.tensor).await?;
        Ok(EmbeddedPhoto {
            format: prepared.format,
            width: prepared.width,
            height: prepared.height,
            embedding: output.embedding,
            labels: output.labels,
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
