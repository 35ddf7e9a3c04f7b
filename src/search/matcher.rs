//! Matching between reports: a report's possible matches found and kept, from the current model's
//! vectors or, while the store reindexes, from its predecessor's.

use super::*;

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
    pub(super) store: Store,
    pub(super) model_id: i32,
    pub(super) settings: SearchSettings,
    pub(super) previous: Option<Arc<Previous>>,
}

/// How often a reindexing store is asked whether the new model has caught up.
const REINDEX_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The model whose vectors answer searches while the store reindexes for the current one: the
/// model the current one's whole-photo output reproduces (the manifest's `whole_photo_of`).
#[derive(Debug)]
pub(super) struct Previous {
    pub(super) model: ModelRef,
    /// Set once the current model has every photo the previous one had: never unset.
    pub(super) caught_up: Arc<AtomicBool>,
    /// One check at a time; the others use the last answer.
    pub(super) checking: AtomicBool,
    /// The previous model's id while it answers, and when that was last checked.
    pub(super) state: Mutex<(Option<i32>, Option<Instant>)>,
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
                caught_up: Arc::new(AtomicBool::new(false)),
                checking: AtomicBool::new(false),
                state: Mutex::new((None, None)),
            })
        });
        self
    }

    /// Set once the store has caught up (or there is no previous model): no vector of the
    /// previous model is needed after that.
    pub fn reindexed(&self) -> Arc<AtomicBool> {
        self.previous.as_ref().map_or_else(
            || Arc::new(AtomicBool::new(true)),
            |p| Arc::clone(&p.caught_up),
        )
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
            let Some(id) = self.store.models().id(&model.name, &model.version).await? else {
                return Ok::<_, StoreError>(None);
            };
            let pending =
                id != self.model_id && self.store.models().reindexing(id, self.model_id).await?;
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
    pub(super) async fn nearest_reports_of(
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
            .photos()
            .nearest(query, model_id, filter, limit, mode)
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
            .reports()
            .kind(report_id)
            .await?
            .ok_or(SearchError::NotFound)?;
        self.matches_of_known(report_id, (kind, tenant), kinds, threshold, limit)
            .await
    }

    /// [`Matcher::matches`] of a report whose kind and tenant the caller has looked up.
    pub(super) async fn matches_of_known(
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
            .photos()
            .embeddings_of_report(report_id, self.model_id)
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
            .matches()
            .replace(
                report_id,
                self.model_id,
                &matches,
                self.settings.match_limit,
            )
            .await?;
        Ok(matches.len())
    }
}
