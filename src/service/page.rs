//! Page-size rules of every list (Relay connections and the legacy history).

use crate::error::{AppError, FieldErrors};

pub const DEFAULT_PAGE: u64 = 20;
pub const MAX_PAGE: u64 = 100;

/// A checked page size: default 20, at most 100, never negative.
pub fn page_size(field: &str, requested: Option<i32>) -> Result<u64, AppError> {
    match requested {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n < 0 => Err(FieldErrors::single(field, "Ensure this value is greater than or equal to 0.")),
        Some(n) if n as u64 > MAX_PAGE => {
            Err(FieldErrors::single(field, format!("Ensure this value is less than or equal to {MAX_PAGE}.")))
        }
        Some(n) => Ok(n as u64),
    }
}

/// One page of a list, in display order.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
    pub has_previous: bool,
    /// Items in the whole list, when the caller asked for it ([`Total::Count`]).
    pub total_count: Option<u64>,
}

/// Whether a page also counts its whole list: a `COUNT(*)` of its own, so only when asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Total {
    Count,
    Skip,
}

impl<T> Page<T> {
    /// Cuts a fetched `limit + 1` rows down to `limit`, noting whether there was more.
    pub fn from_overfetch(mut items: Vec<T>, limit: u64, has_previous: bool, total_count: Option<u64>) -> Self {
        let has_next = items.len() as u64 > limit;
        items.truncate(limit as usize);
        Page { items, has_next, has_previous, total_count }
    }
}
