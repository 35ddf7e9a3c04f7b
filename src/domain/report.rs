//! Report types and their validation.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// A pet went missing.
    Lost,
    /// A pet was found.
    Found,
    /// A pet was seen.
    Sighting,
}

/// The animal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Species {
    /// A dog.
    Dog,
    /// A cat.
    Cat,
    /// Anything else.
    Other,
}

/// Whether the report still needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    /// Still looking.
    Open,
    /// Reunited or closed.
    Resolved,
}

/// Where a photo's (or a report's) embedding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingStatus {
    /// Not made yet.
    Pending,
    /// Made.
    Ready,
    /// Given up after the allowed attempts.
    Failed,
}

macro_rules! parse_lowercase {
    ($t:ty, $what:literal, $($name:literal => $v:path),+) => {
        impl FromStr for $t {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($v),)+
                    other => Err(ValidationError::new($what, format!(
                        "`{other}` is not one of: {}", [$($name),+].join(", ")))),
                }
            }
        }
        impl $t {
            /// The name used in the API and the database.
            pub fn as_str(self) -> &'static str {
                match self { $($v => $name,)+ }
            }
        }
    };
}

parse_lowercase!(ReportKind, "kind", "lost" => ReportKind::Lost, "found" => ReportKind::Found, "sighting" => ReportKind::Sighting);
parse_lowercase!(Species, "species", "dog" => Species::Dog, "cat" => Species::Cat, "other" => Species::Other);
parse_lowercase!(ReportStatus, "status", "open" => ReportStatus::Open, "resolved" => ReportStatus::Resolved);

/// A field that fails validation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The offending field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// A validation error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A new report's fields, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReport {
    /// lost, found or sighting.
    pub kind: ReportKind,
    /// dog, cat or other.
    pub species: Species,
    /// Short title.
    pub title: String,
    /// Free text.
    pub description: String,
    /// Latitude and longitude, in degrees.
    pub location: Option<(f64, f64)>,
    /// How to reach the author.
    pub contact: Option<String>,
    /// Whether anyone may see the contact (by default only the owner and the tenant).
    pub contact_public: bool,
}

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 5000;
/// Longest contact, in characters.
pub const MAX_CONTACT: usize = 200;

/// The text fields a report form may carry.
pub const REPORT_FIELDS: [&str; 8] = [
    "kind",
    "species",
    "title",
    "description",
    "latitude",
    "longitude",
    "contact",
    "contact_public",
];

impl NewReport {
    /// Validates form fields (`REPORT_FIELDS`; unknown names are refused).
    pub fn from_fields(fields: &HashMap<String, String>) -> Result<Self, ValidationError> {
        if let Some(unknown) = fields.keys().find(|k| !REPORT_FIELDS.contains(&k.as_str())) {
            return Err(ValidationError::new(unknown.clone(), "unknown field"));
        }
        let required = |name: &str| {
            fields
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ValidationError::new(name, "is required"))
        };
        let optional = |name: &str| {
            fields
                .get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let kind = required("kind")?.parse()?;
        let species = required("species")?.parse()?;
        let title = required("title")?.to_owned();
        check_len("title", &title, MAX_TITLE)?;
        let description = optional("description").unwrap_or_default();
        check_len("description", &description, MAX_DESCRIPTION)?;
        let contact = optional("contact");
        if let Some(c) = &contact {
            check_len("contact", c, MAX_CONTACT)?;
        }
        // A number field sent empty is not a number (its schema says so): refused, not ignored.
        for name in ["latitude", "longitude", "contact_public"] {
            if fields.get(name).is_some_and(|v| v.trim().is_empty()) {
                return Err(ValidationError::new(name, "is empty: leave the field out"));
            }
        }
        let contact_public = optional("contact_public")
            .map(|v| flag("contact_public", &v))
            .transpose()?
            .unwrap_or(false);
        let location = match (optional("latitude"), optional("longitude")) {
            (None, None) => None,
            (Some(lat), Some(lon)) => Some((
                coordinate("latitude", &lat, 90.0)?,
                coordinate("longitude", &lon, 180.0)?,
            )),
            (Some(_), None) => {
                return Err(ValidationError::new(
                    "longitude",
                    "is required with latitude",
                ));
            }
            (None, Some(_)) => {
                return Err(ValidationError::new(
                    "latitude",
                    "is required with longitude",
                ));
            }
        };
        Ok(NewReport {
            kind,
            species,
            title,
            description,
            location,
            contact,
            contact_public,
        })
    }
}

/// `true` or `false` (a form's boolean).
fn flag(field: &str, value: &str) -> Result<bool, ValidationError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ValidationError::new(
            field,
            format!("`{other}` is not true or false"),
        )),
    }
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("at most {max} characters"),
        ));
    }
    Ok(())
}

/// Positions are kept to this many degrees (about 1 cm): finer is noise, and nothing between
/// 0 and it is left for the distance computation to underflow on (a subnormal longitude such as
/// 1e-200 made every place search that reached it fail).
pub const POSITION_STEP_DEG: f64 = 1e-7;

/// The public position's step in degrees: 0.01° is 1.1 km of latitude and at most 1.1 km of
/// longitude. The database computes it (`public_latitude`, `public_longitude`); place filters
/// test it, so that no number of searches reveals a position more finely than it is shown.
pub const PUBLIC_POSITION_STEP_DEG: f64 = 0.01;

/// A latitude (`limit` 90) or longitude (`limit` 180) in degrees: finite, in range, and kept to
/// [`POSITION_STEP_DEG`] (so a subnormal becomes 0).
pub fn coordinate(field: &str, value: &str, limit: f64) -> Result<f64, ValidationError> {
    let v: f64 = value
        .parse()
        .map_err(|_| ValidationError::new(field, format!("`{value}` is not a number")))?;
    checked_coordinate(field, v, limit)
}

/// [`coordinate`] of a number already parsed.
pub fn checked_coordinate(field: &str, v: f64, limit: f64) -> Result<f64, ValidationError> {
    if !v.is_finite() || v.abs() > limit {
        return Err(ValidationError::new(
            field,
            format!("must be a number between -{limit} and {limit}"),
        ));
    }
    // An integer count of steps divided by their number per degree: the nearest double to the
    // decimal value (48.85 stays 48.85).
    let per_degree = 1e7; // 1 / POSITION_STEP_DEG, exact
    let kept = (v * per_degree).round() / per_degree;
    // `+ 0.0` turns -0 into 0.
    Ok(kept.clamp(-limit, limit) + 0.0)
}

/// Changes an owner may make to a report.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportPatch {
    /// New status (e.g. resolved).
    pub status: Option<ReportStatus>,
    /// New title.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub title: Option<String>,
    /// New description.
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// New contact.
    #[schema(max_length = 200)]
    pub contact: Option<String>,
    /// Whether anyone may see the contact (by default only the owner and the tenant do).
    pub contact_public: Option<bool>,
}

impl ReportPatch {
    /// Checks lengths.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(t) = &self.title {
            if t.trim().is_empty() {
                return Err(ValidationError::new("title", "must not be empty"));
            }
            check_len("title", t, MAX_TITLE)?;
        }
        if let Some(d) = &self.description {
            check_len("description", d, MAX_DESCRIPTION)?;
        }
        if let Some(c) = &self.contact {
            check_len("contact", c, MAX_CONTACT)?;
        }
        Ok(())
    }
}

/// A stored photo with its embedding state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Photo {
    /// Photo id.
    pub id: Uuid,
    /// Position in the report (0-based).
    pub position: i32,
    /// Detected format.
    pub format: String,
    /// Width in pixels, upright.
    pub width: i32,
    /// Height in pixels, upright.
    pub height: i32,
    /// Size in bytes.
    pub bytes: i64,
    /// Hex sha256 of the bytes.
    pub sha256: String,
    /// Where its embedding stands.
    pub embedding_status: EmbeddingStatus,
    /// Why embedding failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_error: Option<String>,
    /// The job that makes (or made) its embedding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// The species the model reads in the photo (absent until its embedding is made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_species: Option<Species>,
    /// The probability of `predicted_species`, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub species_probability: Option<f32>,
    /// The most likely breeds of that species, best first (empty for other, or before the
    /// embedding is made).
    pub breeds: Vec<BreedGuess>,
}

/// A report with its photos.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Report id.
    pub id: Uuid,
    /// lost, found or sighting.
    pub kind: ReportKind,
    /// dog, cat or other.
    pub species: Species,
    /// Short title.
    pub title: String,
    /// Free text.
    pub description: String,
    /// Latitude, degrees.
    pub latitude: Option<f64>,
    /// Longitude, degrees.
    pub longitude: Option<f64>,
    /// How to reach the author: only for the owner (owner token), the tenant (API key), or
    /// anyone when `contact_public`.
    pub contact: Option<String>,
    /// Whether the reporter published the contact for anyone to see.
    pub contact_public: bool,
    /// Whether `latitude` and `longitude` are rounded to 0.01° (about 1 km): for anyone but the
    /// owner and the tenant.
    pub location_rounded: bool,
    /// The position as anyone may see it: rounded to [`PUBLIC_POSITION_STEP_DEG`].
    #[serde(skip)]
    pub public_location: Option<(f64, f64)>,
    /// open or resolved.
    pub status: ReportStatus,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
    /// The tenant (API key) that created it; absent when the service runs without API keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Photos, in upload order.
    pub photos: Vec<Photo>,
    /// ready when every photo is, failed when any failed, pending otherwise.
    pub embedding_status: EmbeddingStatus,
    /// Similar reports of the opposite kind, found in the background once the embeddings are
    /// ready (shown on a single report, not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub possible_matches: Option<Vec<PossibleMatch>>,
}

/// Who is looking at a report, which decides what of it they see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The owner (owner token) or the tenant (its own API key): everything.
    Owner,
    /// Anyone else: no contact unless published, and the position rounded to about a kilometre.
    Public,
}

impl Report {
    /// The report as `audience` may see it.
    pub fn shown_to(mut self, audience: Audience) -> Report {
        if audience == Audience::Public {
            if !self.contact_public {
                self.contact = None;
            }
            (self.latitude, self.longitude) = match self.public_location {
                Some((lat, lon)) => (Some(lat), Some(lon)),
                None => (None, None),
            };
            self.location_rounded = self.latitude.is_some();
        }
        self
    }
}

/// The report's embedding state from its photos'.
pub fn overall_status(photos: &[Photo]) -> EmbeddingStatus {
    if photos
        .iter()
        .any(|p| p.embedding_status == EmbeddingStatus::Failed)
    {
        EmbeddingStatus::Failed
    } else if photos
        .iter()
        .all(|p| p.embedding_status == EmbeddingStatus::Ready)
    {
        EmbeddingStatus::Ready
    } else {
        EmbeddingStatus::Pending
    }
}

/// Filters and page of `GET /v1/reports`.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    /// Only this kind.
    pub kind: Option<ReportKind>,
    /// Only this species.
    pub species: Option<Species>,
    /// Only this status.
    pub status: Option<ReportStatus>,
    /// Reports older than this position (created_at, id), newest first.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    /// Page size.
    pub limit: u32,
    /// Only reports of this tenant (`None`: of no tenant, when the service runs without API keys).
    pub tenant: Option<String>,
    /// Only reports with a photo whose listed breeds include one of these ImageNet classes.
    pub breeds: Vec<u16>,
}

/// A possible match of a report, as stored by its matching job and shown with the report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PossibleMatch {
    /// The other report.
    pub report_id: Uuid,
    /// Its kind.
    pub kind: ReportKind,
    /// Its title.
    pub title: String,
    /// Similarity (cosine) of the best pair of photos.
    pub score: f32,
    /// This report's photo of that pair.
    pub photo_id: Uuid,
    /// The other report's photo of that pair.
    pub matched_photo_id: Uuid,
}

/// One breed guess.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BreedGuess {
    /// The breed's ImageNet class (151–268 dogs, 281–285 cats).
    #[serde(skip)]
    pub class: u16,
    /// Its name (the ImageNet label).
    #[schema(example = "beagle")]
    pub name: &'static str,
    /// Its probability (softmax over the 1000 classes), 0 to 1.
    pub probability: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validates_a_report_form() {
        let ok = NewReport::from_fields(&fields(&[
            ("kind", "lost"),
            ("species", "dog"),
            ("title", " Brown dog "),
            ("latitude", "48.85"),
            ("longitude", "2.35"),
        ]))
        .unwrap();
        assert_eq!(
            (ok.kind, ok.species, ok.title.as_str()),
            (ReportKind::Lost, Species::Dog, "Brown dog")
        );
        assert_eq!(ok.location, Some((48.85, 2.35)));
        let err =
            |pairs: &[(&str, &str)]| NewReport::from_fields(&fields(pairs)).unwrap_err().field;
        assert_eq!(err(&[("species", "dog"), ("title", "x")]), "kind");
        assert_eq!(
            err(&[("kind", "stolen"), ("species", "dog"), ("title", "x")]),
            "kind"
        );
        assert_eq!(
            err(&[
                ("kind", "lost"),
                ("species", "dog"),
                ("title", "x"),
                ("latitude", "91"),
                ("longitude", "0")
            ]),
            "latitude"
        );
        assert_eq!(
            err(&[
                ("kind", "lost"),
                ("species", "dog"),
                ("title", "x"),
                ("latitude", "1")
            ]),
            "longitude"
        );
        assert_eq!(
            err(&[
                ("kind", "lost"),
                ("species", "dog"),
                ("title", "x"),
                ("colour", "red")
            ]),
            "colour"
        );
        let long = "x".repeat(MAX_TITLE + 1);
        assert_eq!(
            err(&[("kind", "lost"), ("species", "dog"), ("title", &long)]),
            "title"
        );
    }

    #[test]
    fn positions_are_finite_in_range_and_never_subnormal() {
        let keep = |v: f64| checked_coordinate("longitude", v, 180.0);
        assert_eq!(keep(1e-200), Ok(0.0));
        assert_eq!(keep(-5e-324).map(f64::to_bits), Ok(0.0f64.to_bits()));
        assert_eq!(keep(-0.0).map(f64::to_bits), Ok(0.0f64.to_bits()));
        assert_eq!(keep(2.35224561), Ok(2.3522456));
        assert_eq!(keep(-180.0), Ok(-180.0));
        for bad in [f64::NAN, f64::INFINITY, 180.000001, -1e300] {
            assert!(keep(bad).is_err(), "{bad}");
        }
        assert_eq!(coordinate("latitude", "1e-310", 90.0), Ok(0.0));
        assert!(coordinate("latitude", "NaN", 90.0).is_err());
    }

    #[test]
    fn the_public_sees_no_contact_and_the_rounded_position() {
        let report = Report {
            id: Uuid::nil(),
            kind: ReportKind::Found,
            species: Species::Dog,
            title: "t".into(),
            description: String::new(),
            latitude: Some(48.8566123),
            longitude: Some(2.3522456),
            contact: Some("me@example.org".into()),
            contact_public: false,
            location_rounded: false,
            public_location: Some((48.86, 2.35)),
            status: ReportStatus::Open,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            tenant: None,
            photos: Vec::new(),
            embedding_status: EmbeddingStatus::Pending,
            possible_matches: None,
        };
        let public = report.clone().shown_to(Audience::Public);
        assert_eq!(public.contact, None);
        assert_eq!(
            (public.latitude, public.longitude),
            (Some(48.86), Some(2.35))
        );
        assert!(public.location_rounded);
        let owner = report.clone().shown_to(Audience::Owner);
        assert_eq!(owner.contact.as_deref(), Some("me@example.org"));
        assert_eq!(owner.latitude, Some(48.8566123));
        assert!(!owner.location_rounded);
        let published = Report {
            contact_public: true,
            ..report
        }
        .shown_to(Audience::Public);
        assert_eq!(published.contact.as_deref(), Some("me@example.org"));
        assert_eq!(published.latitude, Some(48.86));
    }
}
