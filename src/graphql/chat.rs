//! Chat in GraphQL: `createChatRoom`, `sendMessage`, `myChatRooms`, `chatRoom`, the
//! `messageAdded` subscription, and the `ChatRoom` and `Message` types.
//!
//! Every relation crossed in a list goes through a DataLoader of `loaders` (members, last
//! message, message room and author), so a list of rooms costs a fixed number of statements.

use async_graphql::connection::Connection;
use async_graphql::{Context, ErrorExtensions, ID, Object, SimpleObject, Subscription};
use entity::{chat_room, message, user};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::accounts::User;
use super::cursor::{Cursor, MessageKey};
use super::error::{GqlResultExt, INTERNAL_SERVER_ERROR};
use super::loaders::{LastMessageOf, MembersOf, RoomById, UserId};
use super::scalars::Timestamp;
use super::{TotalCount, connection_complexity, list_complexity, loaders, state, viewer, wanted_total};
use crate::bus::MessageEvent;
use crate::service::chat::{self as service, HistoryPage};
use crate::service::live::{self, LiveError};
use crate::service::page::DEFAULT_PAGE;

pub type MessageConnection = Connection<Cursor<MessageKey>, Message, TotalCount>;

pub struct ChatRoom(pub chat_room::Model);

#[Object]
impl ChatRoom {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Stable name used in URLs, e.g. alice_bob.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Both members, by user id.
    async fn members(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        Ok(self.load_members(ctx).await?.into_iter().map(User).collect())
    }

    /// The other member's username, as the signed-in user sees the room.
    async fn display_name(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let me = viewer(ctx).require().gql(ctx)?.id;
        let members = self.load_members(ctx).await?;
        // Like the reference: the other member, or oneself for a room of one.
        let other = members.iter().find(|u| u.id != me).or(members.first());
        Ok(other.map(|u| u.username.clone()).unwrap_or_default())
    }

    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }

    /// Messages, oldest first within a page. `last`/`before` page backwards from the
    /// newest message; `first`/`after` page forwards from the oldest. With neither `first`
    /// nor `last`: the newest 20 (or, with only `after`, the 20 after it). Pages hold at most
    /// 100 messages.
    /// Deleted messages keep their place (`deleted: true`) unless `includeDeleted: false`.
    #[graphql(complexity = "connection_complexity(first.or(last), child_complexity)")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default = true)] include_deleted: bool,
    ) -> async_graphql::Result<MessageConnection> {
        let page = HistoryPage {
            first,
            after: Cursor::<MessageKey>::parse("after", after.as_deref()).gql(ctx)?.map(|key| key.0),
            last,
            before: Cursor::<MessageKey>::parse("before", before.as_deref()).gql(ctx)?.map(|key| key.0),
            hide_deleted: !include_deleted,
        };
        let total = wanted_total(ctx);
        let page = super::history::page(ctx, self.0.id, page, total).await?;
        Ok(super::connection(page, |m| Cursor(MessageKey(m.id)), Message::from))
    }

    async fn last_message(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Message>> {
        Ok(loaders::of(ctx).load_one(LastMessageOf(self.0.id)).await.gql(ctx)?.map(Message::from))
    }

    /// Messages of the other member after the caller's read marker (all of them before the
    /// first `markRead`); deleted ones do not count.
    async fn unread_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        super::reads::unread_count(ctx, self.0.id).await
    }

    /// The newest message the caller has marked read here, if any.
    async fn last_read_message_id(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ID>> {
        super::reads::last_read(ctx, self.0.id).await
    }
}

impl ChatRoom {
    async fn load_members(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<user::Model>> {
        Ok(loaders::of(ctx).load_one(MembersOf(self.0.id)).await.gql(ctx)?.unwrap_or_default())
    }
}

pub struct Message {
    pub row: message::Model,
    /// The author's username when the message comes from a live event, which carries it.
    pub author_username: Option<String>,
}

impl From<message::Model> for Message {
    fn from(row: message::Model) -> Self {
        Message { row, author_username: None }
    }
}

#[Object]
impl Message {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn room(&self, ctx: &Context<'_>) -> async_graphql::Result<ChatRoom> {
        let room = loaders::of(ctx).load_one(RoomById(self.row.room_id)).await.gql(ctx)?;
        room.map(ChatRoom).ok_or_else(|| super::error::to_graphql(ctx, crate::error::AppError::NotFound))
    }

    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        if let Some(author) = self.carried_author(ctx) {
            return Ok(author);
        }
        let author = loaders::of(ctx).load_one(UserId(self.row.author_id)).await.gql(ctx)?;
        author.map(User).ok_or_else(|| super::error::to_graphql(ctx, crate::error::AppError::NotFound))
    }

    async fn content(&self) -> &str {
        &self.row.content
    }

    async fn timestamp(&self) -> Timestamp {
        Timestamp(self.row.timestamp)
    }

    /// When the author last edited it (null: never).
    async fn edited_at(&self) -> Option<Timestamp> {
        self.row.edited_at.map(Timestamp)
    }

    /// Deleted by its author: it keeps its place, its `content` is empty.
    async fn deleted(&self) -> bool {
        self.row.deleted
    }

    /// Reactions per emoji, in order of first use.
    async fn reactions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<super::messages::ReactionCount>> {
        super::messages::reactions_of(ctx, self.row.id).await
    }
}

impl Message {
    /// The author of a live message as its event carries it, when only that is selected (`id`,
    /// `username`): a feed renders every message once per subscriber, and a read of the users
    /// table for each was what made chat collapse under load. Anything else selected is loaded.
    fn carried_author(&self, ctx: &Context<'_>) -> Option<User> {
        let username = self.author_username.as_ref()?;
        let carried = ctx.field().selection_set().all(|f| matches!(f.name(), "id" | "username" | "__typename"));
        carried.then(|| {
            User(user::Model {
                id: self.row.author_id,
                username: username.clone(),
                // Never read: only `id` and `username` are selected.
                email: String::new(),
                username_key: String::new(),
                email_key: String::new(),
                password_hash: String::new(),
                is_active: true,
                date_joined: chrono::DateTime::UNIX_EPOCH,
                last_login: None,
            })
        })
    }
}

impl From<&MessageEvent> for Message {
    fn from(event: &MessageEvent) -> Self {
        Message {
            row: message::Model {
                id: event.message_id,
                room_id: event.room_id,
                room_seq: event.room_seq,
                author_id: event.author_id,
                content: event.content.clone(),
                timestamp: event.timestamp,
                // A live message is new: not edited yet. One read back may be deleted since.
                edited_at: None,
                deleted: event.deleted,
            },
            author_username: Some(event.author_username.clone()),
        }
    }
}

#[derive(SimpleObject)]
pub struct CreateChatRoomPayload {
    chat_room: ChatRoom,
    /// False when the room between the two users already existed.
    created: bool,
}

#[derive(Default)]
pub struct ChatQuery;

/// The order of `myChatRooms`.
#[derive(async_graphql::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChatRoomOrder {
    /// Most recent activity (last message, else creation) first.
    #[default]
    Activity,
    /// Oldest room first.
    Created,
}

#[Object]
impl ChatQuery {
    /// The rooms the signed-in user belongs to, most recent activity first (or, with
    /// `order: CREATED`, oldest first).
    // Not paged (the contract's plain list): counted as a default page of rooms, like a
    // connection without `first`. What each room selects is batched (members, last message and
    // a page of `messages` are one statement each for all rooms), so the count bounds the size
    // of the answer, and the chat list's `messages(last: 20)` per room fits.
    #[graphql(complexity = "list_complexity(DEFAULT_PAGE, child_complexity)")]
    async fn my_chat_rooms(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] order: ChatRoomOrder,
    ) -> async_graphql::Result<Vec<ChatRoom>> {
        let me = viewer(ctx).require().gql(ctx)?;
        let order = match order {
            ChatRoomOrder::Activity => service::RoomOrder::Activity,
            ChatRoomOrder::Created => service::RoomOrder::Created,
        };
        let rooms: Vec<ChatRoom> =
            service::rooms_of(&state(ctx).db, me.id, order).await.gql(ctx)?.into_iter().map(ChatRoom).collect();
        super::reads::prefetch(ctx, &rooms).await?;
        Ok(rooms)
    }

    /// A room by name; NOT_FOUND when it does not exist or the caller is not a member.
    async fn chat_room(&self, ctx: &Context<'_>, name: String) -> async_graphql::Result<ChatRoom> {
        let me = viewer(ctx).require().gql(ctx)?;
        Ok(ChatRoom(service::room_of_member(&state(ctx).db, me.id, &name).await.gql(ctx)?))
    }
}

#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Opens the one-to-one room with `recipient`, or returns the existing one.
    async fn create_chat_room(
        &self,
        ctx: &Context<'_>,
        recipient: String,
    ) -> async_graphql::Result<CreateChatRoomPayload> {
        let me = viewer(ctx).require().gql(ctx)?;
        let state = state(ctx);
        let (room, created) = service::open_room(&state.db, state.bus.as_ref(), me, &recipient).await.gql(ctx)?;
        Ok(CreateChatRoomPayload { chat_room: ChatRoom(room), created })
    }

    /// Stores a message (members only) and pushes it to every live subscriber.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        room_name: String,
        content: String,
    ) -> async_graphql::Result<Message> {
        let me = viewer(ctx).require().gql(ctx)?;
        Ok(Message::from(service::send_message(state(ctx), me, &room_name, &content).await.gql(ctx)?))
    }
}

#[derive(Default)]
pub struct ChatSubscription;

#[Subscription]
impl ChatSubscription {
    /// Every message added to the room, however it was sent (GraphQL, REST or the
    /// legacy WebSocket). With no `roomName`: every message in any of the
    /// subscriber's rooms. A room the subscriber is not a member of is NOT_FOUND.
    /// With `after` (a cursor of `ChatRoom.messages`, with `roomName` only): first every
    /// message stored after that one, then live — a reconnecting client misses nothing.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        room_name: Option<String>,
        after: Option<String>,
    ) -> async_graphql::Result<BoxStream<'static, async_graphql::Result<Message>>> {
        let me = viewer(ctx).require().gql(ctx)?;
        let state = state(ctx);
        let after = Cursor::<MessageKey>::parse("after", after.as_deref()).gql(ctx)?.map(|key| key.0);
        // The reads are boxed: async-graphql keeps this future's space for the subscription's
        // whole life (it is part of the field's stream), and an idle socket should not pay for it.
        let feed = match room_name {
            Some(name) => {
                let room = Box::pin(service::room_of_member(&state.db, me.id, &name)).await.gql(ctx)?;
                Box::pin(live::room_feed(&state.db, &*state.bus, &room, after))
                    .await
                    .gql(ctx)?
                    .ok_or_else(|| {
                        crate::error::FieldErrors::single(
                            "after",
                            format!("More than {} messages behind: read them from history first.", live::MAX_REPLAY),
                        )
                    })
                    .gql(ctx)?
            }
            None if after.is_some() => {
                return Err(crate::error::FieldErrors::single("after", "Only with roomName.")).gql(ctx);
            }
            None => Box::pin(live::member_feed(&state.db, &*state.bus, me.id)).await.gql(ctx)?,
        };
        // Other kinds of chat events are not messages: this subscription skips them.
        let messages = feed.filter_map(|item| {
            futures_util::future::ready(match item {
                Ok(event) => event.as_message().map(|m| {
                    crate::metrics::chat_delivered(m.timestamp);
                    Ok(Message::from(m))
                }),
                Err(err) => Some(Err(feed_error(err))),
            })
        });
        Ok(messages.boxed())
    }
}

/// The last item of a feed that ended early. Not a server fault, but no other contract code
/// fits; `reason` tells clients to reconnect and read history.
pub(super) fn feed_error(err: LiveError) -> async_graphql::Error {
    let reason = match err {
        LiveError::Lagged => "LAGGED",
        LiveError::Unavailable => "UNAVAILABLE",
    };
    async_graphql::Error::new(err.to_string()).extend_with(move |_, e| {
        e.set("code", INTERNAL_SERVER_ERROR);
        e.set("reason", reason);
    })
}
