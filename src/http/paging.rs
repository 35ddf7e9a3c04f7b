//! Pages of a listing: the page size a query asks for, and the cursor of the next page.

use super::error::ApiError;

/// Most items per page.
const MAX_PAGE: u32 = 100;

/// Items per page when the query names no `limit`.
const DEFAULT_PAGE: u32 = 20;

/// The page size `limit` asks for (20 when absent); a 422 naming `limit` outside 1 to 100.
pub fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            ApiError::validation(format!("limit must be between 1 and {MAX_PAGE}"))
                .with("field", "limit"),
        );
    }
    Ok(limit)
}

/// The cursor of the page after `items`, `cursor_of` its last item, when `items` is a full page
/// of `limit`; none after a shorter, last page.
pub fn next_cursor<T>(items: &[T], limit: u32, cursor_of: impl Fn(&T) -> String) -> Option<String> {
    if items.len() == limit as usize {
        items.last().map(cursor_of)
    } else {
        None
    }
}
