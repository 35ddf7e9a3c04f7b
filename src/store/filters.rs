//! The conditions a filter puts on reports: a search's, shared by the searches of photos
//! (search.rs) and of labels (labels.rs); a list's, shared by the lists newest first
//! (reports.rs) and nearest first (nearby.rs).

use sqlx::{Postgres, QueryBuilder};

use crate::domain::report::ReportFilter;
use crate::domain::search::SearchFilter;

/// Appends the conditions of `filter` on the reports aliased `r` (tenant, kinds, species, status,
/// time, exclusion, place; not breeds, which need the model) to a query with a WHERE clause.
/// Appends the conditions a report list's filter puts on `reports` (tenant, kind, species,
/// breeds for `model_id`, status), after a `WHERE` or an `AND`: shared by the newest-first list
/// and the nearest-first one. Its `before` (the list's cursor) is the caller's.
pub(crate) fn push_list_filter(
    q: &mut QueryBuilder<'_, Postgres>,
    filter: &ReportFilter,
    model_id: i32,
) {
    // `=` and `IS NULL` (not `IS NOT DISTINCT FROM`) so that the tenant's index serves.
    match &filter.tenant {
        Some(tenant) => q.push("tenant_id = ").push_bind(tenant.clone()),
        None => q.push("tenant_id IS NULL"),
    };
    if let Some(kind) = filter.kind {
        q.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(species) = filter.species {
        q.push(" AND species = ").push_bind(species.as_str());
    }
    if !filter.breeds.is_empty() {
        push_breed_filter(q, "reports.id", model_id, &filter.breeds);
    }
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
}

pub(crate) fn push_report_filter(q: &mut QueryBuilder<'_, Postgres>, filter: &SearchFilter) {
    match &filter.tenant {
        Some(tenant) => q.push(" AND r.tenant_id = ").push_bind(tenant.clone()),
        None => q.push(" AND r.tenant_id IS NULL"),
    };
    if !filter.kinds.is_empty() {
        let kinds: Vec<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
        q.push(" AND r.kind = ANY(").push_bind(kinds).push(")");
    }
    if let Some(species) = filter.species {
        q.push(" AND r.species = ").push_bind(species.as_str());
    }
    if let Some(status) = filter.status {
        q.push(" AND r.status = ").push_bind(status.as_str());
    }
    if let Some(since) = filter.since {
        q.push(" AND r.created_at >= ").push_bind(since);
    }
    if let Some(exclude) = filter.exclude {
        q.push(" AND r.id <> ").push_bind(exclude);
    }
    if let Some((lat, lon, radius_km)) = filter.near {
        // Haversine great-circle distance on a 6371 km sphere, to the report's public
        // position (rounded to 0.01°): whether a report is within a radius then depends on
        // nothing finer than what anyone is shown, so no set of searches can triangulate
        // the exact position. Safe for every row: public positions are multiples of 0.01
        // and the centre a multiple of 1e-7 (never a subnormal difference to underflow on),
        // and the haversine term is clamped to asin's domain.
        // The latitude band (1° ≈ 111.2 km) lets an index narrow the rows before the exact test.
        let band = radius_km.min(20_040.0) / 111.2;
        q.push(" AND r.public_latitude BETWEEN ")
            .push_bind(lat - band)
            .push(" AND ")
            .push_bind(lat + band);
        q.push(" AND 2 * 6371 * asin(least(1.0, sqrt(power(sin(radians(r.public_latitude - ")
            .push_bind(lat)
            .push(") / 2), 2) + cos(radians(")
            .push_bind(lat)
            .push(")) * cos(radians(r.public_latitude)) * power(sin(radians(r.public_longitude - ")
            .push_bind(lon)
            .push(") / 2), 2)))) <= ")
            .push_bind(radius_km);
    }
}

/// Appends ` AND <the report whose id is the column `report` has a photo whose listed breeds
/// include one of classes>` (for model_id).
pub(crate) fn push_breed_filter(
    q: &mut QueryBuilder<'_, Postgres>,
    report: &str,
    model_id: i32,
    classes: &[u16],
) {
    let classes: Vec<i16> = classes.iter().map(|&c| c as i16).collect();
    q.push(format!(
        " AND EXISTS (SELECT 1 FROM photos bp JOIN embeddings be ON be.sha256 = bp.sha256 AND be.model_id = {model_id}
              WHERE bp.report_id = {report} AND be.breed_classes && "
    ))
    .push_bind(classes)
    .push(")");
}
