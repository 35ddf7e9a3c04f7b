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
use crate::imaging::PhotoFormat;
use crate::inference::{BreedQuery, ModelRef, PhotoLabels, Ticket};
use crate::pipeline::{EmbeddedPhoto, Pipeline, PipelineError};
use crate::reports::{Report, ReportKind, ReportStatus, Species};
use crate::store::{NewMatch, SearchFilter, SearchMode, Store, StoreError};

/// What a report of the query's detected species gains in ranking (not in its shown score).
pub const SPECIES_BOOST: f32 = 0.1;
use crate::telemetry::timing::{self, Stage};

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

/// The kinds a report is matched against: lost ↔ found and sightings.
pub fn opposite_kinds(kind: ReportKind) -> Vec<ReportKind> {
    match kind {
        ReportKind::Lost => vec![ReportKind::Found, ReportKind::Sighting],
        ReportKind::Found | ReportKind::Sighting => vec![ReportKind::Lost],
    }
}

/// Nearest-report queries over stored embeddings; cheap to clone.
#[derive(Debug, Clone)]
pub struct Matcher {
    store: Store,
    model_id: i32,
    settings: SearchSettings,
    previous: Option<Arc<Previous>>,
}

/// How often a reindexing store is asked whether the new model has caught up.
const REINDEX_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The model whose vectors answer searches while the store reindexes for the current one: the
/// model the current one's whole-photo output reproduces (the manifest's `whole_photo_of`).
#[derive(Debug)]
struct Previous {
    model: ModelRef,
    /// Set once the current model has every photo the previous one had: never unset.
    caught_up: AtomicBool,
    /// One check at a time; the others use the last answer.
    checking: AtomicBool,
    /// The previous model's id while it answers, and when that was last checked.
    state: Mutex<(Option<i32>, Option<Instant>)>,
}

/// Which vectors answer a search now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answering {
    /// The model whose vectors are searched.
    pub model_id: i32,
    /// Whether that model is the previous one: the query's whole-photo vector is searched.
    pub whole_photo: bool,
}

impl Matcher {
    /// A matcher over the current model's embeddings.
    pub fn new(store: Store, model_id: i32, settings: SearchSettings) -> Self {
        Matcher {
            store,
            model_id,
            settings,
            previous: None,
        }
    }

    /// Searches answer from `previous`'s vectors (with the query's whole-photo vector) while
    /// the store holds photos the current model has not embedded yet: a new way of embedding
    /// reindexes without a gap in search.
    pub fn with_previous(mut self, previous: Option<ModelRef>) -> Self {
        self.previous = previous.map(|model| {
            Arc::new(Previous {
                model,
                caught_up: AtomicBool::new(false),
                checking: AtomicBool::new(false),
                state: Mutex::new((None, None)),
            })
        });
        self
    }

    /// The vectors that answer a search now: the previous model's while the store reindexes,
    /// else the current model's. Checked at most every couple of seconds; a failed check keeps
    /// the last answer.
    pub async fn answering(&self) -> Answering {
        let current = Answering {
            model_id: self.model_id,
            whole_photo: false,
        };
        let Some(previous) = &self.previous else {
            return current;
        };
        if previous.caught_up.load(Ordering::Acquire) {
            return current;
        }
        let lock = || previous.state.lock().unwrap_or_else(|p| p.into_inner());
        let (old_id, checked) = *lock();
        let due = checked.is_none_or(|at| at.elapsed() >= REINDEX_CHECK_INTERVAL);
        let answer = |id: Option<i32>| match id {
            Some(model_id) if model_id != self.model_id => Answering {
                model_id,
                whole_photo: true,
            },
            _ => current,
        };
        if !due || previous.checking.swap(true, Ordering::AcqRel) {
            return answer(old_id);
        }
        let checked = async {
            let model = &previous.model;
            let Some(id) = self.store.model_id(&model.name, &model.version).await? else {
                return Ok::<_, StoreError>(None);
            };
            let pending = id != self.model_id && self.store.reindexing(id, self.model_id).await?;
            Ok(pending.then_some(id))
        }
        .await;
        previous.checking.store(false, Ordering::Release);
        match checked {
            Ok(id) => {
                *lock() = (id, Some(Instant::now()));
                if id.is_none() {
                    previous.caught_up.store(true, Ordering::Release);
                    tracing::info!(model = %previous.model.name, version = %previous.model.version, "reindexed: the current model answers searches");
                }
                answer(id)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether the store is reindexing");
                answer(old_id)
            }
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &SearchSettings {
        &self.settings
    }

    /// The `k` reports nearest to `query` (by their best photo) among those passing `filter`.
    pub async fn nearest_reports(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
        mode: Option<SearchMode>,
    ) -> Result<Vec<ReportHit>, StoreError> {
        self.nearest_reports_of(self.model_id, query, filter, k, mode)
            .await
    }

    /// [`Matcher::nearest_reports`] among model `model_id`'s vectors.
    async fn nearest_reports_of(
        &self,
        model_id: i32,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
        mode: Option<SearchMode>,
    ) -> Result<Vec<ReportHit>, StoreError> {
        // A place filter keeps few reports: an exact scan of them (through the latitude index)
        // is fast and exact, where the HNSW scan stops early on so selective a filter
        // (measured: recall@10 0.77 with it over 100k vectors).
        let default = if filter.near.is_some() {
            SearchMode::Exact
        } else {
            SearchMode::Index {
                ef_search: self.settings.ef_search,
            }
        };
        let mode = mode.unwrap_or(default);
        // Enough photos that k distinct reports are among them even if every report matches
        // with all of its photos.
        let limit = i64::try_from(k.saturating_mul(self.settings.max_photos_per_report.max(1)))
            .unwrap_or(i64::MAX);
        let hits = self
            .store
            .nearest_photos(query, model_id, filter, limit, mode)
            .await?;
        let mut best: HashMap<Uuid, ReportHit> = HashMap::new();
        for h in hits {
            let score = (1.0 - h.distance) as f32;
            let entry = best.entry(h.report_id).or_insert(ReportHit {
                report_id: h.report_id,
                photo_id: h.photo_id,
                score,
            });
            if score > entry.score {
                *entry = ReportHit {
                    report_id: h.report_id,
                    photo_id: h.photo_id,
                    score,
                };
            }
        }
        let mut ranked: Vec<ReportHit> = best.into_values().collect();
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.report_id.cmp(&b.report_id))
        });
        ranked.truncate(k);
        Ok(ranked)
    }

    /// Open reports similar to `report_id`'s photos (stored embeddings only), of `kinds` (the
    /// opposite kinds by default), at least `threshold` similar, best first.
    pub async fn matches(
        &self,
        report_id: Uuid,
        kinds: Option<Vec<ReportKind>>,
        threshold: Option<f32>,
        limit: Option<usize>,
    ) -> Result<Vec<NewMatch>, SearchError> {
        let (kind, tenant) = self
            .store
            .report_kind(report_id)
            .await?
            .ok_or(SearchError::NotFound)?;
        self.matches_of_known(report_id, (kind, tenant), kinds, threshold, limit)
            .await
    }

    /// [`Matcher::matches`] of a report whose kind and tenant the caller has looked up.
    async fn matches_of_known(
        &self,
        report_id: Uuid,
        (kind, tenant): (ReportKind, Option<String>),
        kinds: Option<Vec<ReportKind>>,
        threshold: Option<f32>,
        limit: Option<usize>,
    ) -> Result<Vec<NewMatch>, SearchError> {
        // A report is matched only with reports of its own tenant.
        let filter = SearchFilter {
            kinds: kinds.unwrap_or_else(|| opposite_kinds(kind)),
            status: Some(ReportStatus::Open),
            exclude: Some(report_id),
            tenant,
            ..SearchFilter::default()
        };
        let threshold = threshold.unwrap_or(self.settings.min_score);
        let limit = limit.unwrap_or(self.settings.match_limit);
        let mut best: HashMap<Uuid, NewMatch> = HashMap::new();
        for (photo_id, embedding) in self
            .store
            .report_embeddings(report_id, self.model_id)
            .await?
        {
            for hit in self
                .nearest_reports(&embedding, &filter, limit, None)
                .await?
            {
                if hit.score < threshold {
                    continue;
                }
                let candidate = NewMatch {
                    other: hit.report_id,
                    score: hit.score,
                    photo_id,
                    other_photo_id: hit.photo_id,
                };
                let entry = best.entry(hit.report_id).or_insert(candidate);
                if hit.score > entry.score {
                    *entry = candidate;
                }
            }
        }
        let mut ranked: Vec<NewMatch> = best.into_values().collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.other.cmp(&b.other)));
        ranked.truncate(limit);
        Ok(ranked)
    }

    /// Computes and stores a report's matches (the background job once its embeddings are ready).
    pub async fn refresh(&self, report_id: Uuid) -> Result<usize, SearchError> {
        let matches = self.matches(report_id, None, None, None).await?;
        self.store
            .store_matches(
                report_id,
                self.model_id,
                &matches,
                self.settings.match_limit,
            )
            .await?;
        Ok(matches.len())
    }
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
            self.store.stored_embeddings(&hashes, model_id),
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
                            PhotoFormat::from_name(&known.format)?,
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
        let report = match self.store.report_kind(report_id).await? {
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
        let vector = if answering.whole_photo {
            &query.whole
        } else {
            &query.embedding
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
            let ids: Vec<Uuid> = hits.iter().map(|h| h.report_id).collect();
            let reports = self
                .store
                .reports_by_id(&ids, self.matcher.model_id)
                .await?;
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
                .reports_by_breed(
                    &breeds.classes,
                    self.matcher.model_id,
                    filter,
                    i64::try_from(k).unwrap_or(i64::MAX),
                )
                .await?;
            let ids: Vec<Uuid> = hits.iter().map(|h| h.report_id).collect();
            let reports = self
                .store
                .reports_by_id(&ids, self.matcher.model_id)
                .await?;
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
