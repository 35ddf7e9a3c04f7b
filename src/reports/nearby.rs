//! Reports near a place, nearest first, without a photo.

use super::{Report, ReportError, ReportFilter, ReportService};
use crate::store::Near;

impl ReportService {
    /// A page of reports matching `filter` within `near`, nearest first, each with its chord to
    /// the centre (`crate::store::chord_to_km` makes it kilometres to its public position).
    pub async fn list_near(
        &self,
        filter: &ReportFilter,
        near: &Near,
    ) -> Result<Vec<(Report, f64)>, ReportError> {
        Ok(self
            .store
            .reports()
            .near(filter, near, self.model_id)
            .await?)
    }
}
