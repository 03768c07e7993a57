//! Read state in GraphQL: `markRead`, `unreadTotal`, `ChatRoom.unreadCount` and
//! `ChatRoom.lastReadMessageId` (through `loaders`: one statement for a page of rooms).

use async_graphql::{Context, ID, Object};

use super::chat::ChatRoom;
use super::error::GqlResultExt;
use super::loaders::{MarkerOf, MemberRoom, UnreadOf};
use super::{loaders, state, viewer};
use crate::service::reads as service;

/// `ChatRoom.unreadCount` for the caller.
pub async fn unread_count(ctx: &Context<'_>, room_id: i64) -> async_graphql::Result<i64> {
    let user_id = viewer(ctx).require().gql(ctx)?.id;
    let count = loaders::of(ctx).load_one(UnreadOf(MemberRoom { user_id, room_id })).await.gql(ctx)?;
    Ok(count.unwrap_or(0))
}

/// `ChatRoom.lastReadMessageId` for the caller.
pub async fn last_read(ctx: &Context<'_>, room_id: i64) -> async_graphql::Result<Option<ID>> {
    let user_id = viewer(ctx).require().gql(ctx)?.id;
    let marker = loaders::of(ctx).load_one(MarkerOf(MemberRoom { user_id, room_id })).await.gql(ctx)?;
    Ok(marker.map(|id| ID(id.to_string())))
}

/// Loads the read state of a list of rooms at once, when the query selects it (see `loaders`).
pub async fn prefetch(ctx: &Context<'_>, rooms: &[ChatRoom]) -> async_graphql::Result<()> {
    let Ok(user_id) = viewer(ctx).require().map(|u| u.id) else { return Ok(()) };
    let look = ctx.look_ahead();
    let keys = rooms.iter().map(|r| MemberRoom { user_id, room_id: r.0.id });
    if look.field("unreadCount").exists() {
        loaders::of(ctx).load_many(keys.clone().map(UnreadOf)).await.gql(ctx)?;
    }
    if look.field("lastReadMessageId").exists() {
        loaders::of(ctx).load_many(keys.map(MarkerOf)).await.gql(ctx)?;
    }
    Ok(())
}

/// A message id argument: BAD_USER_INPUT on `field` unless it is a number.
pub fn parse_id(field: &str, id: &ID) -> Result<i64, crate::error::AppError> {
    id.parse().map_err(|_| crate::error::FieldErrors::single(field, crate::domain::messages::INVALID_ID))
}

#[derive(Default)]
pub struct ReadsQuery;

#[Object]
impl ReadsQuery {
    /// Unread messages (of others, after the read marker) across all the caller's rooms.
    async fn unread_total(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let me = viewer(ctx).require().gql(ctx)?;
        service::unread_total(&state(ctx).db, me.id).await.gql(ctx)
    }
}

#[derive(Default)]
pub struct ReadsMutation;

#[Object]
impl ReadsMutation {
    /// Marks the room read up to the message `messageId` (of that room): the marker moves
    /// forward only, so an older id changes nothing. The other member sees `ReadMarkerMoved`.
    async fn mark_read(&self, ctx: &Context<'_>, room_name: String, message_id: ID) -> async_graphql::Result<ChatRoom> {
        let me = viewer(ctx).require().gql(ctx)?;
        let message_id = parse_id("messageId", &message_id).gql(ctx)?;
        let (room, _moved) = service::mark_read(state(ctx), me, &room_name, message_id).await.gql(ctx)?;
        Ok(ChatRoom(room))
    }
}
