//! Similarity search: the nearest reports to a query photo (interactive, through the gate), and
//! matches between reports from their stored embeddings (no inference).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use crate::domain::search::{DEFAULT_MIN_SCORE, QuerySpecies};
use crate::inference::{BreedQuery, ModelRef, PhotoLabels, Ticket, parse_breed_query};
use crate::pipeline::{EmbeddedPhoto, Pipeline, PipelineError};
use crate::reports::{Report, ReportKind, ReportStatus, Species, ValidationError};
use crate::store::{NewMatch, SearchFilter, SearchMode, Store, StoreError};

/// What a report of the query's detected species gains in ranking (not in its shown score).
pub const SPECIES_BOOST: f32 = 0.1;
use crate::telemetry::timing::{self, Stage};

mod matcher;
pub use matcher::Matcher;

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query photo could not be embedded.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such report.
    #[error("no such report")]
    NotFound,
}

/// Search and matching settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchSettings {
    /// HNSW candidate list size (`hnsw.ef_search`).
    pub ef_search: u32,
    /// Most photos a report can have: a search asks for k × this many photos to fill k reports.
    pub max_photos_per_report: usize,
    /// The relevance floor: lowest similarity shown by a search and kept as a match between
    /// reports (unless the client passes its own).
    pub min_score: f32,
    /// How a search by photo uses the query photo's detected species.
    pub query_species: QuerySpecies,
    /// Most matches kept per report.
    pub match_limit: usize,
}

/// A report near the query: its best photo and that photo's similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportHit {
    /// The report.
    pub report_id: Uuid,
    /// Its photo nearest to the query.
    pub photo_id: Uuid,
    /// Cosine similarity (1 = same direction).
    pub score: f32,
}

/// One search result: a report, its best photo and the similarity.
#[derive(Debug, Clone)]
pub struct SearchResult {
    /// The report.
    pub report: Report,
    /// Its photo nearest to the query.
    pub photo_id: Uuid,
    /// Cosine similarity.
    pub score: f32,
}

/// Where a photo's embedding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingSource {
    /// A model run, now.
    Model,
    /// The store: the same bytes were embedded before (no decode, no model run).
    Store,
}

/// A photo's embedding and where it came from.
#[derive(Debug, Clone)]
pub struct SourcedEmbedding {
    /// The photo's format, size and embedding.
    pub photo: EmbeddedPhoto,
    /// Where the embedding came from.
    pub source: EmbeddingSource,
}

/// Photos answered per source since start.
#[derive(Debug, Default)]
pub struct SourceCounts {
    model: AtomicU64,
    store: AtomicU64,
}

impl SourceCounts {
    /// Prometheus lines: request photos embedded, by source.
    pub fn render(&self, out: &mut crate::telemetry::prometheus::Exposition) {
        let (by_model, from_store) = self.get();
        out.help(
            "lookalike_photos_embedded_total",
            "counter",
            "Request photos embedded, by source: a model run, or the store (the same bytes embedded before).",
        );
        out.sample(
            "lookalike_photos_embedded_total",
            &[("source", "model")],
            by_model as f64,
        );
        out.sample(
            "lookalike_photos_embedded_total",
            &[("source", "store")],
            from_store as f64,
        );
    }

    /// (by the model, from the store).
    pub fn get(&self) -> (u64, u64) {
        (
            self.model.load(Ordering::Relaxed),
            self.store.load(Ordering::Relaxed),
        )
    }
}

/// Search by photo, and the embedding of request photos; cheap to clone.
#[derive(Clone)]
pub struct SearchService {
    pipeline: Pipeline,
    matcher: Matcher,
    store: Store,
    sources: Arc<SourceCounts>,
}

impl SearchService {
    /// A search service over the pipeline (for the query photo) and the matcher.
    pub fn new(pipeline: Pipeline, matcher: Matcher, store: Store) -> Self {
        SearchService {
            pipeline,
            matcher,
            store,
            sources: Arc::default(),
        }
    }

    /// Photos embedded by the model and answered from the store, since start.
    pub fn sources(&self) -> &SourceCounts {
        &self.sources
    }

    /// Embeds request photos, in order. A photo whose bytes were embedded before (by sha256,
    /// for the current model) is answered from the store: no decode, no model run. The others go
    /// through the gate with the place `admission` holds (taken before the body was read), or,
    /// when the gate refused that place, fail with its refusal: a full gate still answers every
    /// photo it can without the model.
    pub async fn embed_photos(
        &self,
        admission: Result<Ticket, PipelineError>,
        photos: Vec<Bytes>,
    ) -> Result<Vec<SourcedEmbedding>, SearchError> {
        self.embed_photos_of(self.matcher.model_id, admission, photos)
            .await
    }

    /// [`SearchService::embed_photos`], answering from model `model_id`'s stored vectors.
    async fn embed_photos_of(
        &self,
        model_id: i32,
        admission: Result<Ticket, PipelineError>,
        photos: Vec<Bytes>,
    ) -> Result<Vec<SourcedEmbedding>, SearchError> {
        let hashing = photos.clone();
        let hashes: Vec<[u8; 32]> = tokio::task::spawn_blocking(move || {
            hashing
                .iter()
                .map(|p| Sha256::digest(p).into())
                .collect::<Vec<[u8; 32]>>()
        })
        .await
        .map_err(|_| StoreError::Unavailable("hashing the photos failed".into()))?;
        let mut stored = timing::measure(
            Stage::Database,
            self.store.photos().stored_embeddings(&hashes, model_id),
        )
        .await?;
        let mut answers: Vec<Option<SourcedEmbedding>> = hashes
            .iter()
            .map(|h| {
                let known = stored.remove(h)?;
                Some(SourcedEmbedding {
                    photo: EmbeddedPhoto {
                        labels: known.labels,
                        ..EmbeddedPhoto::stored(
                            known.format,
                            u32::try_from(known.width).ok()?,
                            u32::try_from(known.height).ok()?,
                            known.embedding,
                        )
                    },
                    source: EmbeddingSource::Store,
                })
            })
            .collect();
        let missing: Vec<(usize, Bytes)> = photos
            .into_iter()
            .enumerate()
            .filter(|(i, _)| answers[*i].is_none())
            .collect();
        self.sources
            .store
            .fetch_add((answers.len() - missing.len()) as u64, Ordering::Relaxed);
        if !missing.is_empty() {
            let ticket = admission?;
            let (indexes, bytes): (Vec<usize>, Vec<Bytes>) = missing.into_iter().unzip();
            let embedded = self.pipeline.embed_all_admitted(ticket, bytes).await?;
            self.sources
                .model
                .fetch_add(embedded.len() as u64, Ordering::Relaxed);
            for (i, photo) in indexes.into_iter().zip(embedded) {
                answers[i] = Some(SourcedEmbedding {
                    photo,
                    source: EmbeddingSource::Model,
                });
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// The matcher (for matches between reports).
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// A report's matches (see [`Matcher::matches`]) for a caller of `tenant`; another tenant's
    /// report is not found.
    pub async fn matches_of(
        &self,
        report_id: Uuid,
        tenant: Option<&str>,
        kinds: Option<Vec<ReportKind>>,
        threshold: Option<f32>,
        limit: Option<usize>,
    ) -> Result<Vec<NewMatch>, SearchError> {
        let report = match self.store.reports().kind(report_id).await? {
            Some(report) if report.1.as_deref() == tenant => report,
            _ => return Err(SearchError::NotFound),
        };
        self.matcher
            .matches_of_known(report_id, report, kinds, threshold, limit)
            .await
    }

    /// Embeds the query photo (see [`SearchService::embed_photos`]: from the store when its
    /// bytes were embedded before, else with the gate place `admission` holds) and returns the
    /// nearest reports at or above the floor, with what was read from the query photo.
    pub async fn search(
        &self,
        admission: Result<Ticket, PipelineError>,
        photo: Bytes,
        ask: &PhotoSearch,
    ) -> Result<SearchAnswer, SearchError> {
        // While the store reindexes for a new way of embedding, the previous model's vectors
        // answer, searched with the query's whole-photo vector (the same model run gives both).
        let answering = self.matcher.answering().await;
        let sourced = self
            .embed_photos_of(answering.model_id, admission, vec![photo])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Unavailable("the query photo got no embedding".into()))?;
        let query = sourced.photo;
        let vector = match &query.whole {
            Some(whole) if answering.whole_photo => whole,
            // No whole-photo run was made: the store had caught up when the photo was embedded,
            // after `answering` was read (once, at the switch).
            _ => &query.embedding,
        };
        let settings = self.matcher.settings;
        let mode = if ask.use_species && ask.filter.species.is_none() {
            settings.query_species
        } else {
            QuerySpecies::Off
        };
        let species = query
            .labels
            .as_ref()
            .map(|l| l.predicted_species)
            .filter(|s| *s != Species::Other && mode != QuerySpecies::Off);
        let mut filter = ask.filter.clone();
        let mut fetch = ask.k;
        match mode {
            QuerySpecies::Filter => filter.species = species,
            // Room for reports of the species to rise into the first k.
            QuerySpecies::Boost if species.is_some() => fetch = ask.k.saturating_mul(2),
            _ => {}
        }
        let (hits, mut reports) = timing::measure(Stage::Database, async {
            let hits = self
                .matcher
                .nearest_reports_of(answering.model_id, vector, &filter, fetch, None)
                .await?;
            let reports = self.reports_of(hits.iter().map(|h| h.report_id)).await?;
            Ok::<_, SearchError>((hits, reports))
        })
        .await?;
        let mut results: Vec<SearchResult> = hits
            .into_iter()
            .filter_map(|h| {
                reports.remove(&h.report_id).map(|report| SearchResult {
                    report,
                    photo_id: h.photo_id,
                    score: h.score,
                })
            })
            .collect();
        if mode == QuerySpecies::Boost
            && let Some(species) = species
        {
            let ranked = |r: &SearchResult| {
                r.score
                    + if r.report.species == species {
                        SPECIES_BOOST
                    } else {
                        0.0
                    }
            };
            results.sort_by(|a, b| ranked(b).total_cmp(&ranked(a)));
        }
        results.truncate(ask.k);
        let min_score = ask.min_score.unwrap_or(settings.min_score);
        let shown = results.len();
        if min_score > 0.0 {
            results.retain(|r| r.score >= min_score);
        }
        Ok(SearchAnswer {
            below_min_score: shown - results.len(),
            results,
            source: sourced.source,
            labels: query.labels,
            species: species.map(|s| (s, mode)),
            min_score: min_score.max(0.0),
        })
    }

    /// The reports `ids`, by id, with what the matcher's model made of their photos.
    async fn reports_of(
        &self,
        ids: impl Iterator<Item = Uuid>,
    ) -> Result<HashMap<Uuid, Report>, StoreError> {
        let ids: Vec<Uuid> = ids.collect();
        self.store
            .reports()
            .by_id(&ids, self.matcher.model_id)
            .await
    }

    /// Reports passing `filter` whose photos the model reads as one of the breeds asked, most
    /// likely first, at most `k` (no model run: the labels were stored with the embeddings).
    pub async fn search_by_breed(
        &self,
        breeds: &BreedQuery,
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<BreedResult>, SearchError> {
        if breeds.is_empty() {
            return Ok(Vec::new());
        }
        let (hits, mut reports) = timing::measure(Stage::Database, async {
            let hits = self
                .store
                .reports()
                .by_breed(
                    &breeds.classes,
                    self.matcher.model_id,
                    filter,
                    i64::try_from(k).unwrap_or(i64::MAX),
                )
                .await?;
            let reports = self.reports_of(hits.iter().map(|h| h.report_id)).await?;
            Ok::<_, SearchError>((hits, reports))
        })
        .await?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                reports.remove(&h.report_id).map(|report| BreedResult {
                    report,
                    photo_id: h.photo_id,
                    probability: h.probability,
                })
            })
            .collect())
    }
}

/// A search by photo: its filters, size and floor.
#[derive(Debug, Clone, Default)]
pub struct PhotoSearch {
    /// Which reports may be returned.
    pub filter: SearchFilter,
    /// Most reports.
    pub k: usize,
    /// The floor for this search (`None`: the configured one; 0 or less: no floor).
    pub min_score: Option<f32>,
    /// Whether the species read in the query photo may be used (see [`QuerySpecies`]); the
    /// client's own species filter always wins.
    pub use_species: bool,
}

/// A search by photo's answer.
#[derive(Debug, Clone)]
pub struct SearchAnswer {
    /// At or above the floor, best first.
    pub results: Vec<SearchResult>,
    /// Where the query's embedding came from.
    pub source: EmbeddingSource,
    /// What the model read in the query photo.
    pub labels: Option<PhotoLabels>,
    /// The detected species that narrowed or ranked the search, and how.
    pub species: Option<(Species, QuerySpecies)>,
    /// The floor applied (0: none).
    pub min_score: f32,
    /// Results among the first k left out for being below the floor.
    pub below_min_score: usize,
}

/// A report found by breed.
#[derive(Debug, Clone)]
pub struct BreedResult {
    /// The report.
    pub report: Report,
    /// Its photo most likely of the breeds asked.
    pub photo_id: Uuid,
    /// That photo's probability of being one of them.
    pub probability: f32,
}

/// Longest text query or `breed` parameter, in characters.
pub const MAX_QUERY: usize = 200;

/// The ImageNet classes a `breed` parameter names (a breed, a group such as `poodle`, a plural,
/// a synonym or a translation); unknown names are refused.
pub fn breed_classes(value: &str) -> Result<Vec<u16>, ValidationError> {
    if value.chars().count() > MAX_QUERY {
        return Err(ValidationError::new(
            "breed",
            format!("at most {MAX_QUERY} characters"),
        ));
    }
    let query = parse_breed_query(value);
    if query.is_empty() {
        return Err(ValidationError::new(
            "breed",
            format!("`{value}` names no known dog or cat breed"),
        ));
    }
    Ok(query.classes)
}
