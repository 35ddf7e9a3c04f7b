//! The path of a photo to its embedding: decode under the decode limit, then the inference gate.
//! Shared by the embeddings endpoint (and later search and the background jobs).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;

use crate::config::ImagingConfig;
use crate::imaging::{self, DecodeLimits, ImagingError, PhotoFormat};
use crate::inference::{Embedding, Gate, GateError, Priority};
use crate::limits::{ConcurrencyLimit, LimitError};

/// Why a photo got no embedding.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The photo itself is the problem (format, size, corrupt).
    #[error(transparent)]
    Imaging(#[from] ImagingError),
    /// The decoders are saturated.
    #[error(transparent)]
    DecodeBusy(#[from] LimitError),
    /// The model gate refused or failed.
    #[error(transparent)]
    Gate(#[from] GateError),
}

/// Photo bytes in, embeddings out.
#[derive(Clone)]
pub struct Pipeline {
    gate: Gate,
    decode: Arc<ConcurrencyLimit>,
    limits: DecodeLimits,
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
        let decode = ConcurrencyLimit::new(
            "decode",
            permits,
            config.decode_max_waiters,
            Duration::from_secs(5),
        );
        Pipeline {
            gate,
            decode: Arc::new(decode),
            limits: DecodeLimits::from_config(config),
        }
    }

    /// The inference gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The decode limit (shared with report uploads, shown on status).
    pub fn decode_limit(&self) -> &Arc<ConcurrencyLimit> {
        &self.decode
    }

    /// The decoding limits in force.
    pub fn decode_limits(&self) -> DecodeLimits {
        self.limits
    }

    /// Refuses at once (503) when the gate has no room at `priority`: lets a handler shed load before
    /// it reads a large body. A hint only; `embed` admits for real.
    pub fn check_capacity(&self, priority: Priority) -> Result<(), PipelineError> {
        Ok(self.gate.check_room(priority)?)
    }

    /// Decodes and embeds one photo at `priority`.
    pub async fn embed(
        &self,
        bytes: impl AsRef<[u8]> + Send + 'static,
        priority: Priority,
    ) -> Result<EmbeddedPhoto, PipelineError> {
        // Admission first: an overloaded gate refuses before any CPU goes into decoding.
        let ticket = self.gate.admit(priority)?;
        let pre = self.gate.embedder().preprocessing();
        let limits = self.limits;
        let prepared = self
            .decode
            .run_blocking(move || imaging::prepare(bytes.as_ref(), &pre, &limits))
            .await?
            // A decoder that panics on a photo has been beaten by that photo: reject it.
            .unwrap_or_else(|_| {
                Err(ImagingError::Decode(
                    "the decoder failed on this photo".into(),
                ))
            })?;
        let embedding = ticket.embed(prepared.tensor).await?;
        Ok(EmbeddedPhoto {
            format: prepared.format,
            width: prepared.width,
            height: prepared.height,
            embedding,
        })
    }

    /// Embeds several photos concurrently (they share model runs when batching is on); fails if any fails.
    pub async fn embed_all<B>(
        &self,
        photos: Vec<B>,
        priority: Priority,
    ) -> Result<Vec<EmbeddedPhoto>, PipelineError>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        try_join_all(photos.into_iter().map(|bytes| self.embed(bytes, priority))).await
    }
}
