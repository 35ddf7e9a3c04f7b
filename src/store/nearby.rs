//! Reports near a place, nearest first (`GET /v1/reports?latitude=&longitude=&radius_km=`): the
//! distance is to the report's public position (rounded to 0.01°), never to the exact one.
//! Positions are points on the unit sphere (migration 0014's GiST index): the chord between two
//! of them orders like the great-circle distance, so the index walks reports nearest first.

use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::filters::push_list_filter;
use super::report_rows::{REPORT_COLUMNS, reports_of_rows};
use super::{Reports, StoreError};
use crate::domain::report::{Report, ReportFilter};

/// A place and a radius, with a position in the nearest-first order to start after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    /// Latitude of the centre in degrees.
    pub latitude: f64,
    /// Longitude of the centre in degrees.
    pub longitude: f64,
    /// Radius in kilometres (above 0).
    pub radius_km: f64,
    /// Reports after this (chord, id) in the nearest-first order (a previous page's last).
    pub after: Option<(f64, Uuid)>,
}

/// Mean Earth radius, km (as in place searches).
const EARTH_RADIUS_KM: f64 = 6371.0;

/// The unit-sphere point of a public position: must stay the expression of migration 0014's
/// index, which the planner matches by its text.
const SPHERE_POINT: &str = "cube(ARRAY[cos(radians(public_latitude)) * cos(radians(public_longitude)), \
     cos(radians(public_latitude)) * sin(radians(public_longitude)), sin(radians(public_latitude))])";

/// Great-circle kilometres of a chord of the unit sphere.
pub fn chord_to_km(chord: f64) -> f64 {
    2.0 * EARTH_RADIUS_KM * (chord / 2.0).clamp(0.0, 1.0).asin()
}

/// The chord of the unit sphere that `km` of great circle spans (2 for half the Earth or more).
fn km_to_chord(km: f64) -> f64 {
    let half_angle = (km / EARTH_RADIUS_KM / 2.0).min(std::f64::consts::FRAC_PI_2);
    2.0 * half_angle.sin()
}

impl Reports<'_> {
    /// A page of reports matching `filter` (its `before` is ignored) within `near`, nearest
    /// first (ties by id), each with its chord to the centre (see [`chord_to_km`]).
    pub async fn near(
        self,
        filter: &ReportFilter,
        near: &Near,
        model_id: i32,
    ) -> Result<Vec<(Report, f64)>, StoreError> {
        let (lat, lon) = (near.latitude.to_radians(), near.longitude.to_radians());
        let centre = [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()];
        // A hair more than the radius' chord: the edge of the radius is in.
        let chord = km_to_chord(near.radius_km) + 1e-12;
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT * FROM (SELECT {REPORT_COLUMNS}, {SPHERE_POINT} <-> cube("
        ));
        q.push_bind(centre.to_vec())
            .push("::float8[]) AS chord FROM reports WHERE public_latitude IS NOT NULL AND ");
        push_list_filter(&mut q, filter, model_id);
        // The box around the radius' ball is what the index can bound the walk with.
        q.push(format!(" AND {SPHERE_POINT} <@ cube_enlarge(cube("))
            .push_bind(centre.to_vec())
            .push("::float8[]), ")
            .push_bind(chord)
            .push(", 3)");
        q.push(") near WHERE chord <= ").push_bind(chord);
        if let Some((after, id)) = near.after {
            q.push(" AND (chord, id) > (")
                .push_bind(after)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        q.push(" ORDER BY chord, id LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(self.pool).await?;
        reports_of_rows(self.pool, &rows, model_id)
            .await?
            .into_iter()
            .map(|(report, row)| Ok((report, row.try_get("chord")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chords_and_kilometres_agree() {
        for km in [0.0, 1.0, 100.0, 10_000.0] {
            assert!((chord_to_km(km_to_chord(km)) - km).abs() < 1e-6, "{km}");
        }
        // Half the Earth or more is the whole sphere.
        assert_eq!(km_to_chord(20_040.0), 2.0);
    }
}
