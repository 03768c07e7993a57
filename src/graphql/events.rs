//! `chatEvents`: one resumable stream of everything that happens in the caller's rooms (or one
//! of them), as the `ChatEvent` union, plus `setTyping`.
//!
//! Stored events (`MessageAdded`, `MessageEdited`, `MessageDeleted`, `ReactionChanged`,
//! `ReadMarkerMoved`) and `RoomCreated` carry a `cursor`; `chatEvents(after: cursor)` resumes
//! right after that event with no gap and no duplicate (`service::live`). A one-room cursor is
//! the room's position (`r<room>.<seq>`); an all-rooms cursor holds the position of each room
//! (`a<room>.<seq>,<room delta>.<seq>,…`, room ids ascending and delta-encoded); both opaque
//! (base64) to clients. Too far back: `TOO_FAR_BEHIND`, and the client reads history.
//!
//! Fields a feed carries (`roomName`, ids, contents, a user's `id` and `username`) cost
//! nothing per subscriber; `room` and other user fields are loaded.

use std::collections::HashMap;

use async_graphql::{Context, ErrorExtensions, ID, Object, Subscription, Union};
use entity::user;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::accounts::User;
use super::chat::{ChatRoom, Message};
use super::error::GqlResultExt;
use super::loaders::{RoomById, UserId};
use super::scalars::Timestamp;
use super::{cursor, loaders, state, viewer};
use crate::bus::{Change, ChangeEvent, ChatEvent as BusEvent, PresenceEvent, RoomCreatedEvent, TypingEvent};
use crate::error::{AppError, FieldErrors};
use crate::service::chat as chat_service;
use crate::service::live::{self, Delivered, Position};

/// The kind of the cursors of `chatEvents`.
pub const EVENT_CURSOR: &str = "chat";

/// `extensions.code` of a resume further back than the server replays: read history instead.
pub const TOO_FAR_BEHIND: &str = "TOO_FAR_BEHIND";

/// The key of a `chatEvents` cursor: a position, as `r<room>.<seq>` or
/// `a<room>.<seq>,<room delta>.<seq>,…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventKey(pub Resume);

impl cursor::Key for EventKey {
    const KIND: &'static str = EVENT_CURSOR;

    fn write(&self) -> String {
        match &self.0 {
            Resume::Room { room_id, seq } => format!("r{room_id}.{seq}"),
            Resume::Rooms(rooms) => {
                let mut sorted: Vec<(i64, i64)> = rooms.iter().map(|(r, s)| (*r, *s)).collect();
                sorted.sort_unstable();
                let mut key = String::from("a");
                let mut previous = 0;
                for (n, (room_id, seq)) in sorted.into_iter().enumerate() {
                    if n > 0 {
                        key.push(',');
                    }
                    key.push_str(&format!("{}.{seq}", room_id - previous));
                    previous = room_id;
                }
                key
            }
        }
    }

    fn read(text: &str) -> Option<Self> {
        let pair = |text: &str| -> Option<(i64, i64)> {
            let (a, b) = text.split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        if let Some(rest) = text.strip_prefix('r') {
            let (room_id, seq) = pair(rest)?;
            return Some(EventKey(Resume::Room { room_id, seq }));
        }
        let rest = text.strip_prefix('a')?;
        let mut rooms = HashMap::new();
        let mut room_id = 0i64;
        for item in rest.split(',').filter(|item| !item.is_empty()) {
            let (delta, seq) = pair(item)?;
            room_id = room_id.checked_add(delta)?;
            rooms.insert(room_id, seq);
        }
        Some(EventKey(Resume::Rooms(rooms)))
    }
}

/// The cursor of a position.
pub fn encode_position(position: &Position) -> String {
    let resume = match position {
        Position::Room { room_id, seq } => Resume::Room { room_id: *room_id, seq: *seq },
        Position::Rooms(rooms) => Resume::Rooms(rooms.iter().copied().collect()),
    };
    cursor::Cursor::of(EventKey(resume))
}

/// A decoded `chatEvents` cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    Room { room_id: i64, seq: i64 },
    Rooms(HashMap<i64, i64>),
}

/// Decodes a cursor of [`encode_position`]; anything else is BAD_USER_INPUT on `after`.
pub fn decode_position(text: &str) -> Result<Resume, AppError> {
    let key = cursor::Cursor::<EventKey>::parse("after", Some(text))?;
    key.map(|k| k.0).ok_or_else(|| FieldErrors::single("after", crate::domain::messages::INVALID_CURSOR))
}

/// Something that happened in the caller's rooms.
#[derive(Union)]
pub enum ChatEvent {
    MessageAdded(MessageAdded),
    MessageEdited(MessageEdited),
    MessageDeleted(MessageDeleted),
    ReactionChanged(ReactionChanged),
    ReadMarkerMoved(ReadMarkerMoved),
    TypingChanged(TypingChanged),
    PresenceChanged(PresenceChanged),
    RoomCreated(RoomCreated),
}

/// The room of an event, as every event of a room declares it: `roomName` as the event carries
/// it, `room` loaded. Flattened into the events (it is no type of the schema itself).
struct RoomRef {
    id: i64,
    name: String,
}

#[Object]
impl RoomRef {
    async fn room_name(&self) -> &str {
        &self.name
    }
    async fn room(&self, ctx: &Context<'_>) -> async_graphql::Result<ChatRoom> {
        let room = loaders::of(ctx).load_one(RoomById(self.id)).await.gql(ctx)?;
        room.map(ChatRoom).ok_or_else(|| super::error::to_graphql(ctx, AppError::NotFound))
    }
}

/// Where a stored event stands: its `cursor` and its room, the first fields of every stored
/// event (flattened into them; `MessageAdded` declares its documented `cursor` itself). A
/// `RoomCreated` event is nothing more, so this is that type of the schema.
pub struct Placed {
    cursor: String,
    room: RoomRef,
}

/// A room with the caller was opened.
pub type RoomCreated = Placed;

#[Object(name = "RoomCreated")]
impl Placed {
    async fn cursor(&self) -> &str {
        &self.cursor
    }
    #[graphql(flatten)]
    async fn in_room(&self) -> &RoomRef {
        &self.room
    }
}

/// A user as an event carries them: `id` and `username` for free, anything else loaded.
async fn carried_user(ctx: &Context<'_>, id: i64, username: &str) -> async_graphql::Result<User> {
    let carried = ctx.field().selection_set().all(|f| matches!(f.name(), "id" | "username" | "__typename"));
    if carried {
        return Ok(User(user::Model {
            id,
            username: username.to_owned(),
            // Never read: only `id` and `username` are selected.
            email: String::new(),
            username_key: String::new(),
            email_key: String::new(),
            password_hash: String::new(),
            is_active: true,
            date_joined: chrono::DateTime::UNIX_EPOCH,
            last_login: None,
        }));
    }
    let found = loaders::of(ctx).load_one(UserId(id)).await.gql(ctx)?;
    found.map(User).ok_or_else(|| super::error::to_graphql(ctx, AppError::NotFound))
}

/// A message was sent (or, replayed, it was sent then: a message deleted since keeps its place
/// with `deleted: true` and no content).
pub struct MessageAdded {
    cursor: String,
    room: RoomRef,
    message: Message,
}

#[Object]
impl MessageAdded {
    /// Resume after this event with `chatEvents(after:)`.
    async fn cursor(&self) -> &str {
        &self.cursor
    }
    #[graphql(flatten)]
    async fn in_room(&self) -> &RoomRef {
        &self.room
    }
    async fn message(&self) -> &Message {
        &self.message
    }
}

/// The author edited a message.
pub struct MessageEdited {
    placed: Placed,
    message_id: i64,
    content: String,
    edited_at: chrono::DateTime<chrono::Utc>,
}

#[Object]
impl MessageEdited {
    #[graphql(flatten)]
    async fn placed(&self) -> &Placed {
        &self.placed
    }
    async fn message_id(&self) -> ID {
        ID(self.message_id.to_string())
    }
    /// The new content (replayed: the content now; empty once deleted).
    async fn content(&self) -> &str {
        &self.content
    }
    async fn edited_at(&self) -> Timestamp {
        Timestamp(self.edited_at)
    }
}

/// The author deleted a message: it keeps its place, without content.
pub struct MessageDeleted {
    placed: Placed,
    message_id: i64,
}

#[Object]
impl MessageDeleted {
    #[graphql(flatten)]
    async fn placed(&self) -> &Placed {
        &self.placed
    }
    async fn message_id(&self) -> ID {
        ID(self.message_id.to_string())
    }
}

/// Someone added (`added: true`) or took back an emoji reaction.
pub struct ReactionChanged {
    placed: Placed,
    message_id: i64,
    user_id: i64,
    username: String,
    emoji: String,
    added: bool,
}

#[Object]
impl ReactionChanged {
    #[graphql(flatten)]
    async fn placed(&self) -> &Placed {
        &self.placed
    }
    async fn message_id(&self) -> ID {
        ID(self.message_id.to_string())
    }
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        carried_user(ctx, self.user_id, &self.username).await
    }
    async fn emoji(&self) -> &str {
        &self.emoji
    }
    async fn added(&self) -> bool {
        self.added
    }
}

/// A member's read marker moved forward.
pub struct ReadMarkerMoved {
    placed: Placed,
    message_id: i64,
    user_id: i64,
    username: String,
}

#[Object]
impl ReadMarkerMoved {
    #[graphql(flatten)]
    async fn placed(&self) -> &Placed {
        &self.placed
    }
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        carried_user(ctx, self.user_id, &self.username).await
    }
    /// The newest message they have read.
    async fn message_id(&self) -> ID {
        ID(self.message_id.to_string())
    }
}

/// Another member started or stopped typing (`typing: false` also when a `typing: true` was
/// not renewed in time). Live only: no cursor, never replayed.
pub struct TypingChanged(TypingEvent);

#[Object]
impl TypingChanged {
    #[graphql(flatten)]
    async fn in_room(&self) -> RoomRef {
        RoomRef { id: self.0.room_id, name: self.0.room_name.clone() }
    }
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        carried_user(ctx, self.0.user_id, &self.0.username).await
    }
    async fn typing(&self) -> bool {
        self.0.typing
    }
}

/// Someone who shares a room with the caller came online or went offline. Live only.
pub struct PresenceChanged(PresenceEvent);

#[Object]
impl PresenceChanged {
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        carried_user(ctx, self.0.user_id, &self.0.username).await
    }
    async fn online(&self) -> bool {
        self.0.online
    }
    async fn last_seen(&self) -> Option<Timestamp> {
        self.0.last_seen.map(Timestamp)
    }
}

impl ChatEvent {
    /// The GraphQL shape of a delivered event.
    fn of(delivered: Delivered) -> Self {
        let cursor = delivered.position.as_ref().map(encode_position).unwrap_or_default();
        match &*delivered.event {
            BusEvent::Message(m) => ChatEvent::MessageAdded(MessageAdded {
                cursor,
                room: RoomRef { id: m.room_id, name: m.room_name.clone() },
                message: Message::from(m),
            }),
            BusEvent::Change(ChangeEvent { room_id, room_name, change, .. }) => {
                let placed = Placed { cursor, room: RoomRef { id: *room_id, name: room_name.clone() } };
                match change.clone() {
                    Change::Edited { message_id, content, edited_at } => {
                        ChatEvent::MessageEdited(MessageEdited { placed, message_id, content, edited_at })
                    }
                    Change::Deleted { message_id } => ChatEvent::MessageDeleted(MessageDeleted { placed, message_id }),
                    Change::Reaction { message_id, user_id, username, emoji, added } => {
                        ChatEvent::ReactionChanged(ReactionChanged {
                            placed,
                            message_id,
                            user_id,
                            username,
                            emoji,
                            added,
                        })
                    }
                    Change::ReadMarker { message_id, user_id, username } => {
                        ChatEvent::ReadMarkerMoved(ReadMarkerMoved { placed, message_id, user_id, username })
                    }
                }
            }
            BusEvent::Typing(t) => ChatEvent::TypingChanged(TypingChanged(t.clone())),
            BusEvent::Presence(p) => ChatEvent::PresenceChanged(PresenceChanged(p.clone())),
            BusEvent::RoomCreated(RoomCreatedEvent { room_id, room_name, .. }) => {
                ChatEvent::RoomCreated(Placed { cursor, room: RoomRef { id: *room_id, name: room_name.clone() } })
            }
        }
    }
}

#[derive(Default)]
pub struct EventsSubscription;

#[Subscription]
impl EventsSubscription {
    /// Everything that happens in the caller's rooms, or in the room `roomName` (NOT_FOUND
    /// unless a member), rooms created later included: stored events (messages, edits,
    /// deletions, reactions, read markers) exactly once and in order within each room, each with
    /// a `cursor`; typing of the others and presence of those sharing a room, live only.
    /// With `after` (a `cursor` of an earlier `chatEvents`, of the same room, or of all rooms):
    /// first every stored event after it, then live, with no gap and no duplicate. More than
    /// the server replays (`AGORA_LIVE_MAX_REPLAY`): TOO_FAR_BEHIND, read history instead.
    async fn chat_events(
        &self,
        ctx: &Context<'_>,
        room_name: Option<String>,
        after: Option<String>,
    ) -> async_graphql::Result<BoxStream<'static, async_graphql::Result<ChatEvent>>> {
        let me = viewer(ctx).require().gql(ctx)?;
        let state = state(ctx);
        let resume = after.as_deref().map(decode_position).transpose().gql(ctx)?;
        let max_replay = state.settings.live_max_replay.max(0);
        let feed = match room_name {
            Some(name) => {
                // Boxed, as in `messageAdded`: this future's space lasts as long as the subscription.
                let room = Box::pin(chat_service::room_of_member(&state.db, me.id, &name)).await.gql(ctx)?;
                let after = match resume {
                    None => None,
                    Some(Resume::Room { room_id, seq }) if room_id == room.id => Some(seq),
                    Some(Resume::Rooms(rooms)) => Some(rooms.get(&room.id).copied().unwrap_or(0)),
                    Some(Resume::Room { .. }) => {
                        return Err(FieldErrors::single("after", "A cursor of another room.")).gql(ctx);
                    }
                };
                Box::pin(live::room_events(&state.db, &*state.bus, &room, me.id, after, max_replay)).await.gql(ctx)?
            }
            None => {
                let after = match resume {
                    None => None,
                    Some(Resume::Rooms(rooms)) => Some(rooms),
                    Some(Resume::Room { .. }) => {
                        return Err(FieldErrors::single("after", "A cursor of one room resumes with its roomName."))
                            .gql(ctx);
                    }
                };
                Box::pin(live::member_events(&state.db, &*state.bus, me.id, after.as_ref(), max_replay))
                    .await
                    .gql(ctx)?
            }
        };
        let Some(feed) = feed else {
            let message = format!("More than {max_replay} events behind: read them from history first.");
            return Err(async_graphql::Error::new(message).extend_with(|_, e| e.set("code", TOO_FAR_BEHIND)));
        };
        Ok(feed
            .map(|item| match item {
                Ok(delivered) => Ok(ChatEvent::of(delivered)),
                Err(err) => Err(super::chat::feed_error(err)),
            })
            .boxed())
    }
}

#[derive(Default)]
pub struct EventsMutation;

#[Object]
impl EventsMutation {
    /// Tells the other members of the room that the caller is typing (`typing: true`, renewed
    /// by calling again; it lapses after 5 s, `AGORA_TYPING_TTL_MS`) or stopped. Not stored.
    async fn set_typing(&self, ctx: &Context<'_>, room_name: String, typing: bool) -> async_graphql::Result<bool> {
        let me = viewer(ctx).require().gql(ctx)?;
        crate::service::typing::set_typing(state(ctx), me, &room_name, typing).await.gql(ctx)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_cursors() {
        let one = Position::Room { room_id: 7, seq: 12 };
        assert_eq!(decode_position(&encode_position(&one)).unwrap(), Resume::Room { room_id: 7, seq: 12 });
        let all = Position::Rooms(vec![(3, 0), (10, 5), (11, 900)]);
        let text = encode_position(&all);
        assert_eq!(decode_position(&text).unwrap(), Resume::Rooms(HashMap::from([(3, 0), (10, 5), (11, 900)])));
        assert_eq!(decode_position(&encode_position(&Position::Rooms(vec![]))).unwrap(), Resume::Rooms(HashMap::new()));
        let raw = |text: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
        };
        for bad in ["nonsense".to_owned(), raw("chat:x1.2"), raw("chat:r1"), raw("message:5")] {
            assert!(decode_position(&bad).is_err(), "{bad}");
        }
    }
}
