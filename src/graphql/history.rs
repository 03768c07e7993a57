//! `ChatRoom.messages` under a list of rooms: one statement for all of them.
//!
//! The chat list every client builds selects a page of each room's messages
//! (`myChatRooms { messages(last: 20) { … } }`). Pages without a cursor go through the
//! [`FirstPageOf`] DataLoader, keyed by the room and the page's shape, which reads the pages of
//! every room of the batch with one statement ([`service::first_pages`]). A page with a
//! cursor (one room scrolled back or forth) reads that room alone ([`service::history`]).

use std::collections::HashMap;

use async_graphql::Context;
use async_graphql::dataloader::Loader;
use entity::message;

use super::error::GqlResultExt;
use super::loaders::{self, Db, LoadError};
use super::state;
use crate::service::chat::{self as service, HistoryPage};
use crate::service::page::{Page, Total};

/// The first page (no cursor) of a room's history, of a given size, direction and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FirstPageOf {
    pub room: i64,
    pub limit: u64,
    pub forwards: bool,
    pub hide_deleted: bool,
    /// Whether `totalCount` is selected (counted in the same statement).
    pub count: bool,
}

impl Loader<FirstPageOf> for Db {
    type Value = Page<message::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[FirstPageOf]) -> Result<HashMap<FirstPageOf, Page<message::Model>>, LoadError> {
        // One statement per shape of page asked (aliases may ask for several).
        let mut shapes: HashMap<(u64, bool, bool, bool), Vec<i64>> = HashMap::new();
        for key in keys {
            shapes.entry((key.limit, key.forwards, key.hide_deleted, key.count)).or_default().push(key.room);
        }
        let mut pages = HashMap::new();
        for ((limit, forwards, hide_deleted, count), rooms) in shapes {
            let total = if count { Total::Count } else { Total::Skip };
            let found = if let [room] = rooms[..] {
                // One room (`chatRoom`, the legacy history): the plain indexed read.
                let size = Some(i32::try_from(limit).unwrap_or(i32::MAX));
                let (first, last) = if forwards { (size, None) } else { (None, size) };
                let page = HistoryPage { first, last, after: None, before: None, hide_deleted };
                let page = service::history(&self.0, room, page, total).await?;
                HashMap::from([(room, page)])
            } else {
                service::first_pages(&self.0, &rooms, (limit, forwards), hide_deleted, total).await?
            };
            pages.extend(
                found
                    .into_iter()
                    .map(|(room, page)| (FirstPageOf { room, limit, forwards, hide_deleted, count }, page)),
            );
        }
        Ok(pages)
    }
}

/// A page of the room's history as `ChatRoom.messages` asks for it.
pub async fn page(
    ctx: &Context<'_>,
    room: i64,
    page: HistoryPage,
    total: Total,
) -> async_graphql::Result<Page<message::Model>> {
    if page.after.is_some() || page.before.is_some() {
        return service::history(&state(ctx).db, room, page, total).await.gql(ctx);
    }
    let (limit, forwards) = page.shape().gql(ctx)?;
    let key = FirstPageOf { room, limit, forwards, hide_deleted: page.hide_deleted, count: total == Total::Count };
    let found = loaders::of(ctx).load_one(key).await.gql(ctx)?;
    Ok(found.unwrap_or(Page { items: Vec::new(), has_next: false, has_previous: false, total_count: Some(0) }))
}
