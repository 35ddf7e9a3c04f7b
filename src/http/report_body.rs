//! A report as the API shows it (its photos' URLs, a distance in listings near a place), pages
//! of them, and whose eyes they are shown to: shared by the report, search and nearby handlers.

use serde::Serialize;
use uuid::Uuid;

use super::protect::Caller;
use crate::reports::{Audience, Report};

/// A report as the API shows it: the stored report plus the URLs of its photos.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportBody {
    #[serde(flatten)]
    report: Report,
    photo_urls: Vec<PhotoUrls>,
    /// In a listing near a place: kilometres from its centre to the report's public (rounded)
    /// position.
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_km: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PhotoUrls {
    id: Uuid,
    url: String,
    thumbnail_url: String,
}

impl ReportBody {
    /// The report as `audience` may see it (see [`Report::shown_to`]), with its photos' URLs.
    pub fn shown_to(report: Report, audience: Audience) -> Self {
        let report = report.shown_to(audience);
        let photo_urls = report
            .photos
            .iter()
            .map(|p| PhotoUrls {
                id: p.id,
                url: format!("/v1/photos/{}", p.id),
                thumbnail_url: format!("/v1/photos/{}/thumbnail", p.id),
            })
            .collect();
        ReportBody {
            report,
            photo_urls,
            distance_km: None,
        }
    }

    /// The same, `km` from the centre of a listing near a place.
    pub fn at_distance(self, km: f64) -> Self {
        ReportBody {
            distance_km: Some(km),
            ..self
        }
    }
}

/// A page of reports.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportPage {
    pub(super) reports: Vec<ReportBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub(super) next_cursor: Option<String>,
}

/// The audience of a caller's answers about many reports (lists, searches): a tenant sees its
/// own reports whole; anyone else sees them as the public does.
pub fn audience_of(caller: &Caller) -> Audience {
    if caller.tenant.is_some() {
        Audience::Owner
    } else {
        Audience::Public
    }
}
