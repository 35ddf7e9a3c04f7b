//! SQL of similarity search (pgvector HNSW, cosine) and of stored matches between reports.

use pgvector::Vector;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::filters::{push_breed_filter, push_report_filter};
use super::{Matches, Photos, Reports, StoreError, events, queue};
use crate::domain::event::MatchEvent;
use crate::domain::job::JobPayload;
use crate::domain::report::{PossibleMatch, ReportKind};
use crate::domain::search::{NewMatch, SearchFilter, SearchMode};

/// One photo near the query.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoHit {
    /// Its report.
    pub report_id: Uuid,
    /// The photo.
    pub photo_id: Uuid,
    /// Cosine distance to the query (0 = same direction).
    pub distance: f64,
}

impl Photos<'_> {
    /// The photos nearest to `query` among reports passing `filter`, nearest first. Through the
    /// model's index, an iterative scan stops after `hnsw.max_scan_tuples` tuples: a filter that
    /// few of the model's vectors pass (a small tenant among many) can come back short of
    /// `limit`, and then the exact search (which reads only the rows passing the filter) answers.
    pub async fn nearest(
        self,
        query: &[f32],
        model_id: i32,
        filter: &SearchFilter,
        limit: i64,
        mode: SearchMode,
    ) -> Result<Vec<PhotoHit>, StoreError> {
        let hits = self
            .nearest_by(query, model_id, filter, limit, mode)
            .await?;
        if mode != SearchMode::Exact && (hits.len() as i64) < limit {
            return self
                .nearest_by(query, model_id, filter, limit, SearchMode::Exact)
                .await;
        }
        Ok(hits)
    }

    async fn nearest_by(
        self,
        query: &[f32],
        model_id: i32,
        filter: &SearchFilter,
        limit: i64,
        mode: SearchMode,
    ) -> Result<Vec<PhotoHit>, StoreError> {
        let mut tx = self.pool.begin().await?;
        match mode {
            SearchMode::Index { ef_search } => {
                // SET cannot take bind parameters; the value is an integer we format ourselves.
                sqlx::query(&format!(
                    "SET LOCAL hnsw.ef_search = {}",
                    ef_search.clamp(1, 1000)
                ))
                .execute(&mut *tx)
                .await?;
                sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
                    .execute(&mut *tx)
                    .await?;
            }
            SearchMode::Exact => {
                sqlx::query("SET LOCAL enable_indexscan = off")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let vector = Vector::from(query.to_vec());
        let mut q =
            QueryBuilder::<Postgres>::new("SELECT p.report_id, p.id AS photo_id, e.embedding <=> ");
        // Stored vectors are halfvec (migration 0015): the query is cast to match, so the
        // model's halfvec index serves the ORDER BY.
        q.push_bind(vector.clone()).push("::halfvec");
        // The model id is written into the SQL, not bound: only a literal lets the planner prove
        // that the model's partial index covers the query (a generic plan for a parameter
        // cannot).
        q.push(format!(
            " AS distance FROM embeddings e JOIN photos p ON p.sha256 = e.sha256 JOIN reports r ON r.id = p.report_id
             WHERE e.model_id = {model_id}"
        ));
        push_report_filter(&mut q, filter);
        if !filter.breeds.is_empty() {
            push_breed_filter(&mut q, "r.id", model_id, &filter.breeds);
        }
        q.push(" ORDER BY e.embedding <=> ")
            .push_bind(vector)
            .push("::halfvec LIMIT ")
            .push_bind(limit);
        let rows = q.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(PhotoHit {
                    report_id: r.try_get("report_id")?,
                    photo_id: r.try_get("photo_id")?,
                    distance: r.try_get("distance")?,
                })
            })
            .collect()
    }

    /// The stored embeddings of a report's photos: (photo id, vector).
    pub async fn embeddings_of_report(
        self,
        report_id: Uuid,
        model_id: i32,
    ) -> Result<Vec<(Uuid, Vec<f32>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.id, e.embedding::vector AS embedding FROM photos p JOIN embeddings e ON e.sha256 = p.sha256 AND e.model_id = $2
             WHERE p.report_id = $1 ORDER BY p.position",
        )
        .bind(report_id)
        .bind(model_id)
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get::<Vector, _>("embedding")?.to_vec(),
                ))
            })
            .collect()
    }
}

impl Reports<'_> {
    /// The kind and tenant of a report.
    pub async fn kind(
        self,
        report_id: Uuid,
    ) -> Result<Option<(ReportKind, Option<String>)>, StoreError> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT kind, tenant_id FROM reports WHERE id = $1")
                .bind(report_id)
                .fetch_optional(self.pool)
                .await?;
        Ok(row.and_then(|(kind, tenant)| Some((kind.parse().ok()?, tenant))))
    }
}

impl Matches<'_> {
    /// Replaces a report's stored matches, and records each also on the other report (keeping the
    /// better score there), in one transaction; every report keeps at most `cap` matches, its best.
    /// Only open reports take part. The reports concerned are locked first, by id: two reports
    /// matched at the same moment (each naming the other) wait for each other, never deadlock.
    pub async fn replace(
        self,
        report_id: Uuid,
        model_id: i32,
        matches: &[NewMatch],
        cap: usize,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut concerned: Vec<Uuid> = matches.iter().map(|m| m.other).collect();
        concerned.push(report_id);
        concerned.sort_unstable();
        concerned.dedup();
        let open: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM reports WHERE id = ANY($1) AND status = 'open' ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(&concerned)
        .fetch_all(&mut *tx)
        .await?;
        // What the report had before: a match not among them is new (an event).
        let mut before: Vec<Uuid> = sqlx::query_scalar(
            "DELETE FROM report_matches WHERE report_id = $1 AND model_id = $2 RETURNING matched_report_id",
        )
        .bind(report_id)
        .bind(model_id)
        .fetch_all(&mut *tx)
        .await?;
        before.sort_unstable();
        let mut new_matches: Vec<MatchEvent> = Vec::new();
        if open.binary_search(&report_id).is_err() {
            // Deleted or resolved meanwhile: it shows no matches.
            tx.commit().await?;
            return Ok(());
        }
        for m in matches
            .iter()
            .filter(|m| open.binary_search(&m.other).is_ok())
        {
            for (from, to, from_photo, to_photo) in [
                (report_id, m.other, m.photo_id, m.other_photo_id),
                (m.other, report_id, m.other_photo_id, m.photo_id),
            ] {
                let inserted: Option<bool> = sqlx::query_scalar(
                    "INSERT INTO report_matches (report_id, matched_report_id, model_id, score, photo_id, matched_photo_id)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (report_id, matched_report_id, model_id) DO UPDATE
                         SET score = EXCLUDED.score, photo_id = EXCLUDED.photo_id,
                             matched_photo_id = EXCLUDED.matched_photo_id, created_at = now()
                         WHERE report_matches.score <= EXCLUDED.score OR report_matches.report_id = $7
                     RETURNING xmax = 0",
                )
                .bind(from)
                .bind(to)
                .bind(model_id)
                .bind(m.score)
                .bind(from_photo)
                .bind(to_photo)
                .bind(report_id)
                .fetch_optional(&mut *tx)
                .await?;
                // New on this report: not among its matches before (its own rows were replaced),
                // or a row just inserted on the other report.
                let new = if from == report_id {
                    before.binary_search(&to).is_err()
                } else {
                    inserted == Some(true)
                };
                if new {
                    new_matches.push(MatchEvent {
                        report_id: from,
                        match_report_id: to,
                        score: m.score,
                    });
                }
            }
        }
        // Each report concerned keeps its `cap` best.
        sqlx::query(
            "DELETE FROM report_matches m USING (
                 SELECT report_id, matched_report_id FROM (
                     SELECT report_id, matched_report_id,
                            row_number() OVER (PARTITION BY report_id ORDER BY score DESC, matched_report_id) AS rank
                     FROM report_matches WHERE model_id = $2 AND report_id = ANY($1)) ranked
                 WHERE rank > $3) beyond
             WHERE m.model_id = $2 AND m.report_id = beyond.report_id
               AND m.matched_report_id = beyond.matched_report_id",
        )
        .bind(&open)
        .bind(model_id)
        .bind(i64::try_from(cap).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        events::publish_matches(&mut tx, model_id, &open, new_matches).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A report's stored matches with open reports, best first, at most `limit`.
    pub async fn list(
        self,
        report_id: Uuid,
        model_id: i32,
        limit: usize,
    ) -> Result<Vec<PossibleMatch>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.matched_report_id, r.kind, r.title, m.score, m.photo_id, m.matched_photo_id
             FROM report_matches m JOIN reports r ON r.id = m.matched_report_id
                  JOIN reports own ON own.id = m.report_id
             WHERE m.report_id = $1 AND m.model_id = $2 AND r.status = 'open'
               AND r.tenant_id IS NOT DISTINCT FROM own.tenant_id
             ORDER BY m.score DESC
             LIMIT $3",
        )
        .bind(report_id)
        .bind(model_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(PossibleMatch {
                    report_id: r.try_get("matched_report_id")?,
                    kind: kind.parse().unwrap_or(ReportKind::Sighting),
                    title: r.try_get("title")?,
                    score: r.try_get("score")?,
                    photo_id: r.try_get("photo_id")?,
                    matched_photo_id: r.try_get("matched_photo_id")?,
                })
            })
            .collect()
    }
}

/// Enqueues the matching job of every report containing blob `sha256` whose photos all have
/// embeddings now (inside the caller's transaction, which locks those reports first so that two
/// photos finishing at once cannot both miss the moment).
pub async fn enqueue_ready_matches(
    conn: &mut sqlx::PgConnection,
    sha256: Option<&[u8]>,
    report_id: Option<Uuid>,
    model_id: i32,
    max_attempts: i32,
) -> Result<u64, StoreError> {
    let reports: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM reports WHERE id IN (SELECT report_id FROM photos WHERE sha256 = $1) OR id = $2
         ORDER BY id FOR UPDATE",
    )
    .bind(sha256)
    .bind(report_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut queued = 0;
    for id in reports {
        let ready: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM photos p LEFT JOIN embeddings e ON e.sha256 = p.sha256 AND e.model_id = $2
                                WHERE p.report_id = $1 AND e.sha256 IS NULL)",
        )
        .bind(id)
        .bind(model_id)
        .fetch_one(&mut *conn)
        .await?;
        if ready {
            let job = JobPayload::refresh_matches(id, model_id);
            let attempts = u32::try_from(max_attempts).unwrap_or(5);
            if queue::enqueue(conn, &job, attempts).await?.is_some() {
                queued += 1;
            }
        }
    }
    if queued > 0 {
        queue::notify(conn).await?;
    }
    Ok(queued)
}
