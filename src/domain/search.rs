//! What a search asks and finds: its filter, how it scans, the relevance floor, how the query
//! photo's species is used, and the matches it keeps.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::report::{ReportKind, ReportStatus, Species};

/// The relevance floor by default: the least cosine similarity called a look-alike (one constant,
/// also the `--min-score` default). Calibrated for the subject vectors of `cam-colour-r1` by
/// `benches/subject_colour.py` (136 edited copies of 17 real photos against their originals):
/// at 0.6 precision 0.992 and recall 0.971 (at 0.5, 0.767 and 0.993: the colour part raises
/// unrelated photos' scores); one of the two dogs' other photo is kept (both at 0.5).
pub const DEFAULT_MIN_SCORE: f32 = 0.6;

/// How a search by photo uses the species the model reads in the query photo (when the client
/// names no species).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuerySpecies {
    /// Not at all.
    Off,
    /// Only reports of that species.
    Filter,
    /// Reports of that species rank as if `SPECIES_BOOST` more similar (scores shown unchanged).
    Boost,
}

/// Which reports a search may return.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilter {
    /// Only these kinds (any when empty).
    pub kinds: Vec<ReportKind>,
    /// Only this species.
    pub species: Option<Species>,
    /// Only this status (any when `None`).
    pub status: Option<ReportStatus>,
    /// Only reports created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only reports within `radius_km` of (latitude, longitude).
    pub near: Option<(f64, f64, f64)>,
    /// Never this report (a report's own matches).
    pub exclude: Option<Uuid>,
    /// Only reports of this tenant (`None`: of no tenant, when the service runs without API keys).
    pub tenant: Option<String>,
    /// Only reports with a photo whose listed breeds include one of these ImageNet classes.
    pub breeds: Vec<u16>,
}

/// How the nearest photos are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// The HNSW index, with iterative scans so that filtered searches still fill their limit.
    Index {
        /// Candidate list size (`hnsw.ef_search`): higher is slower and more exact.
        ef_search: u32,
    },
    /// A full scan: exact, for small sets and for measuring the index's recall.
    Exact,
}

/// A possible match of a report, as found and stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewMatch {
    /// The other report.
    pub other: Uuid,
    /// Cosine similarity of the best pair of photos.
    pub score: f32,
    /// This report's photo of that pair.
    pub photo_id: Uuid,
    /// The other report's photo of that pair.
    pub other_photo_id: Uuid,
}
