//! `GET /v1/reports` near a place: its query (latitude, longitude and radius_km together), the
//! nearest-first cursor, and the page with each report's distance.

use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::paging::next_cursor;
use super::report_body::{ReportBody, ReportPage};
use super::search::MAX_RADIUS_KM;
use crate::reports::{Audience, ReportFilter, ValidationError, checked_coordinate};
use crate::store::{Near, chord_to_km};

/// The place of a listing from its query (and where its cursor resumes): `None` without one.
pub(super) fn near(
    latitude: Option<&str>,
    longitude: Option<&str>,
    radius_km: Option<&str>,
    cursor: Option<&str>,
) -> Result<Option<Near>, ApiError> {
    let Some((latitude, longitude, radius_km)) = place(latitude, longitude, radius_km)? else {
        return Ok(None);
    };
    Ok(Some(Near {
        latitude,
        longitude,
        radius_km,
        after: cursor.map(decode_cursor).transpose()?,
    }))
}

/// Latitude, longitude and radius from a query: `None` without them; all three go together.
fn place(
    latitude: Option<&str>,
    longitude: Option<&str>,
    radius_km: Option<&str>,
) -> Result<Option<(f64, f64, f64)>, ValidationError> {
    let number = |field: &str, v: Option<&str>| -> Result<Option<f64>, ValidationError> {
        v.map(|v| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| ValidationError::new(field, "must be a number"))
        })
        .transpose()
    };
    let (lat, lon, radius) = (
        number("latitude", latitude)?,
        number("longitude", longitude)?,
        number("radius_km", radius_km)?,
    );
    let (lat, lon, radius) = match (lat, lon, radius) {
        (None, None, None) => return Ok(None),
        (Some(lat), Some(lon), Some(radius)) => (lat, lon, radius),
        (_, _, Some(_)) => {
            return Err(ValidationError::new(
                "radius_km",
                "a radius needs a place: latitude, longitude and radius_km go together",
            ));
        }
        (None, _, None) | (Some(_), None, None) => {
            let missing = if lat.is_none() {
                "latitude"
            } else {
                "longitude"
            };
            return Err(ValidationError::new(
                missing,
                "latitude, longitude and radius_km go together",
            ));
        }
        (Some(_), Some(_), None) => {
            return Err(ValidationError::new(
                "radius_km",
                "latitude, longitude and radius_km go together",
            ));
        }
    };
    if !(radius > 0.0 && radius <= MAX_RADIUS_KM) {
        return Err(ValidationError::new(
            "radius_km",
            format!("must be above 0 and at most {MAX_RADIUS_KM}"),
        ));
    }
    Ok(Some((
        checked_coordinate("latitude", lat, 90.0)?,
        checked_coordinate("longitude", lon, 180.0)?,
        radius,
    )))
}

/// A page of reports near `near`, nearest first, with their distances.
pub(super) async fn page(
    app: &AppState,
    filter: &ReportFilter,
    near: &Near,
    audience: Audience,
) -> Result<ReportPage, ApiError> {
    let found = app.reports.list_near(filter, near).await?;
    let next_cursor = next_cursor(&found, filter.limit, |(r, chord)| {
        encode_cursor(*chord, r.id)
    });
    let reports = found
        .into_iter()
        .map(|(report, chord)| {
            // Metres are plenty: the position it is measured to is rounded to about a kilometre.
            let km = (chord_to_km(chord) * 1e3).round() / 1e3;
            ReportBody::shown_to(report, audience).at_distance(km)
        })
        .collect();
    Ok(ReportPage {
        reports,
        next_cursor,
    })
}

/// `d<16 hex: the chord's bits>_<32 hex: the id>`: where the nearest-first order resumes, exactly.
fn encode_cursor(chord: f64, id: Uuid) -> String {
    format!("d{:016x}_{}", chord.to_bits(), id.simple())
}

/// A cursor of a nearest-first page back; a newest-first one (or a forged one) is a 422.
fn decode_cursor(cursor: &str) -> Result<(f64, Uuid), ApiError> {
    let invalid = || {
        ApiError::validation("invalid cursor for a listing near a place").with("field", "cursor")
    };
    let rest = cursor.strip_prefix('d').ok_or_else(invalid)?;
    let (bits, id) = rest.split_once('_').ok_or_else(invalid)?;
    if bits.len() != 16 || id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let chord = u64::from_str_radix(bits, 16)
        .map(f64::from_bits)
        .map_err(|_| invalid())?;
    // A chord of the unit sphere: 0 to 2 (NaN, infinities and negatives are forged).
    if !(0.0..=2.0).contains(&chord) {
        return Err(invalid());
    }
    Ok((chord, Uuid::parse_str(id).map_err(|_| invalid())?))
}

#[cfg(test)]
mod tests;
