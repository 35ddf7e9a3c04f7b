//! SQL of the species and breeds read from photos (stored beside their embeddings): reading them
//! back, filtering reports by breed, and the text query over breeds.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::filters::push_report_filter;
use super::{Reports, StoreError};
use crate::domain::search::SearchFilter;
use crate::inference::PhotoLabels;

/// The label columns of `embeddings` aliased `e`, for a SELECT list.
pub(crate) const LABEL_COLUMNS: &str =
    "e.species, e.species_probability, e.breed_classes, e.breed_probabilities";

/// A photo's labels from a row carrying `LABEL_COLUMNS`; `None` when it has none (not embedded
/// yet, embedded before labels were stored, or by a model without logits).
pub(crate) fn labels_from_row(row: &PgRow) -> Result<Option<PhotoLabels>, StoreError> {
    let species: Option<String> = row.try_get("species")?;
    let Some(species) = species.and_then(|s| s.parse().ok()) else {
        return Ok(None);
    };
    let probability: Option<f32> = row.try_get("species_probability")?;
    let classes: Option<Vec<i16>> = row.try_get("breed_classes")?;
    let probabilities: Option<Vec<f32>> = row.try_get("breed_probabilities")?;
    Ok(Some(PhotoLabels::from_stored(
        species,
        probability.unwrap_or(0.0),
        &classes.unwrap_or_default(),
        &probabilities.unwrap_or_default(),
    )))
}

/// A report found by breed: its photo most likely of the breeds asked, and that likelihood.
#[derive(Debug, Clone, PartialEq)]
pub struct BreedHit {
    /// The report.
    pub report_id: Uuid,
    /// Its photo most likely of the breeds asked.
    pub photo_id: Uuid,
    /// That photo's probability of being one of them (its listed breeds' probabilities summed).
    pub probability: f32,
}

impl Reports<'_> {
    /// Reports passing `filter` with a photo whose listed breeds include one of `classes`, most
    /// likely first (by the best photo's summed probability of those breeds), at most `limit`.
    pub async fn by_breed(
        self,
        classes: &[u16],
        model_id: i32,
        filter: &SearchFilter,
        limit: i64,
    ) -> Result<Vec<BreedHit>, StoreError> {
        let classes: Vec<i16> = classes.iter().map(|&c| c as i16).collect();
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT report_id, photo_id, probability FROM (
                 SELECT DISTINCT ON (p.report_id) p.report_id, p.id AS photo_id,
                        (SELECT coalesce(sum(b.prob), 0) FROM unnest(e.breed_classes, e.breed_probabilities)
                             AS b(cls, prob) WHERE b.cls = ANY(",
        );
        q.push_bind(classes.clone());
        q.push(format!(
            "))::real AS probability
                 FROM embeddings e JOIN photos p ON p.sha256 = e.sha256 JOIN reports r ON r.id = p.report_id
                 WHERE e.model_id = {model_id} AND e.breed_classes && "
        ));
        q.push_bind(classes);
        push_report_filter(&mut q, filter);
        q.push(
            " ORDER BY p.report_id, probability DESC, p.position) best
             ORDER BY probability DESC, report_id LIMIT ",
        )
        .push_bind(limit);
        let rows = q.build().fetch_all(self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(BreedHit {
                    report_id: r.try_get("report_id")?,
                    photo_id: r.try_get("photo_id")?,
                    probability: r.try_get("probability")?,
                })
            })
            .collect()
    }
}
