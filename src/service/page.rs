//! Page-size rules of every list (Relay connections and the legacy history).

use crate::domain::messages;
use crate::error::{AppError, FieldErrors};

pub const DEFAULT_PAGE: u64 = 20;
pub const MAX_PAGE: u64 = 100;

/// A checked page size: default 20, at most 100, never negative.
pub fn page_size(field: &str, requested: Option<i32>) -> Result<u64, AppError> {
    match requested {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n < 0 => Err(FieldErrors::single(field, messages::at_least(0))),
        Some(n) if n as u64 > MAX_PAGE => Err(FieldErrors::single(field, messages::at_most(MAX_PAGE))),
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

impl Total {
    /// The number of rows `query` selects when counting was asked for (the one way every
    /// connection counts its total).
    pub async fn of<'db, C, Q>(self, query: &Q, db: &'db C) -> Result<Option<u64>, sea_orm::DbErr>
    where
        C: sea_orm::ConnectionTrait,
        Q: sea_orm::PaginatorTrait<'db, C> + Clone + Send,
    {
        match self {
            Total::Count => Ok(Some(query.clone().count(db).await?)),
            Total::Skip => Ok(None),
        }
    }
}

impl<T> Page<T> {
    /// Cuts a fetched `limit + 1` rows down to `limit`, noting whether there was more.
    pub fn from_overfetch(mut items: Vec<T>, limit: u64, has_previous: bool, total_count: Option<u64>) -> Self {
        let has_next = items.len() as u64 > limit;
        items.truncate(limit as usize);
        Page { items, has_next, has_previous, total_count }
    }
}
