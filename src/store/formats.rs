//! Photo formats in the database: stored by their stable name (`PhotoFormat::name`; migration
//! 0016 rewrote older rows and lets no other value in), and read back accepting that name only.

use super::StoreError;
use crate::imaging::PhotoFormat;

/// The format stored as `name`; a decode error for anything but a stable name.
pub(super) fn format_named(name: &str) -> Result<PhotoFormat, StoreError> {
    PhotoFormat::from_name(name).ok_or_else(|| {
        StoreError::Query(sqlx::Error::Decode(
            format!("unknown photo format `{name}` in the database").into(),
        ))
    })
}
