//! Chat event bus: live fan-out of chat events (messages, changes, typing, presence, new rooms)
//! to subscribers
//! (GraphQL subscriptions, WebSocket sessions) in this process and, with Redis, in every other
//! process of the deployment.
//!
//! Routing: a subscriber asks for one [`Topic`] — a room, or a member (every room of a user) —
//! and receives only the events of that topic, in its own bounded queue. An event goes to the
//! topic of its room and to the topic of each member ([`ChatEvent::topics`]). So a subscriber
//! wakes only for what it reads, and only what it reads can make it fall behind. With Redis, a
//! process subscribes to a topic's channel only while it has local subscribers there: each
//! process receives only the events its own subscribers need, and adding processes adds
//! delivery capacity.
//!
//! The database is the record; the bus only carries live delivery. A message is published after
//! its storing transaction committed, and delivery is at-most-once: an event can be missed (a
//! slow receiver lags, Redis is down, a process restarts). Subscribers therefore use `room_seq`
//! to drop duplicates and notice gaps, and catch up from history in the database. That is also
//! why publishing never fails the caller.

mod local;
mod redis;
mod router;

pub use self::local::LocalBus;
pub use self::redis::RedisBus;
pub use self::router::{RecvError, Subscription};

use serde::{Deserialize, Serialize};

/// What a subscriber listens to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Every event of one room.
    Room(i64),
    /// Every event of every room this user is a member of (rooms created later included).
    Member(i64),
}

/// A live chat event, with what subscribers need to route and render it without a database
/// round trip. Tagged by `kind` on the wire, so new kinds can be added as variants; a process
/// that does not know a kind (an older version during a rolling deploy) logs and ignores it.
///
/// Stored kinds (`message`, `change`) carry their place in the room's sequence (`room_seq`)
/// and are delivered exactly once and in order, filled from the database when missed. The
/// others (`typing`, `presence`, `room_created`) are live only, delivered at most once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatEvent {
    /// A message was stored.
    Message(MessageEvent),
    /// A message was edited, deleted or reacted to, or a read marker moved.
    Change(ChangeEvent),
    /// A member started or stopped typing.
    Typing(TypingEvent),
    /// A user came online or went offline.
    Presence(PresenceEvent),
    /// A room was opened.
    RoomCreated(RoomCreatedEvent),
}

impl ChatEvent {
    /// The room of the event; `None` for presence, which concerns a user.
    pub fn room_id(&self) -> Option<i64> {
        match self {
            ChatEvent::Message(m) => Some(m.room_id),
            ChatEvent::Change(c) => Some(c.room_id),
            ChatEvent::Typing(t) => Some(t.room_id),
            ChatEvent::RoomCreated(r) => Some(r.room_id),
            ChatEvent::Presence(_) => None,
        }
    }

    /// Who may see the event: the members of its room when it happened (for typing and
    /// presence: the members who may see it, the actor and those they blocked left out).
    pub fn member_ids(&self) -> &[i64] {
        match self {
            ChatEvent::Message(m) => &m.member_ids,
            ChatEvent::Change(c) => &c.member_ids,
            ChatEvent::Typing(t) => &t.recipients,
            ChatEvent::Presence(p) => &p.recipients,
            ChatEvent::RoomCreated(r) => &r.member_ids,
        }
    }

    /// The event's place in its room's sequence (1, 2, 3, ... in commit order), for events a
    /// feed delivers exactly once and in order and fills from the database when missed
    /// (`service::live`). `None` for ephemeral kinds, delivered at most once.
    pub fn room_seq(&self) -> Option<i64> {
        match self {
            ChatEvent::Message(m) => Some(m.room_seq),
            ChatEvent::Change(c) => Some(c.room_seq),
            _ => None,
        }
    }

    /// The room, as the event carries it (`None` for presence).
    pub fn room(&self) -> Option<RoomInfo> {
        let (id, name, member_ids) = match self {
            ChatEvent::Message(m) => (m.room_id, &m.room_name, &m.member_ids),
            ChatEvent::Change(c) => (c.room_id, &c.room_name, &c.member_ids),
            ChatEvent::RoomCreated(r) => (r.room_id, &r.room_name, &r.member_ids),
            ChatEvent::Typing(_) | ChatEvent::Presence(_) => return None,
        };
        Some(RoomInfo { id, name: name.clone(), member_ids: member_ids.clone() })
    }

    /// The message, if this event is one.
    pub fn as_message(&self) -> Option<&MessageEvent> {
        match self {
            ChatEvent::Message(m) => Some(m),
            _ => None,
        }
    }

    /// The topics this event is delivered to: its room (if it has one), and each member who
    /// may see it.
    pub fn topics(&self) -> impl Iterator<Item = Topic> + '_ {
        self.room_id().map(Topic::Room).into_iter().chain(self.member_ids().iter().map(|&id| Topic::Member(id)))
    }
}

/// A stored change of a room other than a new message.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChangeEvent {
    pub room_id: i64,
    /// The change's place in the room's sequence, shared with its messages.
    pub room_seq: i64,
    pub room_name: String,
    pub member_ids: Vec<i64>,
    pub change: Change,
}

/// What changed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// The author replaced the content.
    Edited { message_id: i64, content: String, edited_at: chrono::DateTime<chrono::Utc> },
    /// The author deleted the message: it keeps its place, with no content.
    Deleted { message_id: i64 },
    /// `user_id` added (or took back) their `emoji` on the message.
    Reaction { message_id: i64, user_id: i64, username: String, emoji: String, added: bool },
    /// `user_id`'s read marker moved forward to `message_id`.
    ReadMarker { message_id: i64, user_id: i64, username: String },
}

/// A member typing (or no longer) in a room. Live only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TypingEvent {
    pub room_id: i64,
    pub room_name: String,
    pub user_id: i64,
    pub username: String,
    pub typing: bool,
    /// How long `typing: true` lasts without renewal, in milliseconds: each receiving feed
    /// turns it into `typing: false` itself once that long has passed, on its own clock (so
    /// nothing has to be published when a typist simply stops, and no clocks need agree).
    pub ttl_ms: u64,
    /// The members who may see it: not the typist, not those the typist blocked.
    pub recipients: Vec<i64>,
}

/// A user came online (their first socket on any process) or went offline (their last).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PresenceEvent {
    pub user_id: i64,
    pub username: String,
    pub online: bool,
    pub last_seen: Option<chrono::DateTime<chrono::Utc>>,
    /// Those who share a room with the user, except those the user blocked.
    pub recipients: Vec<i64>,
}

/// A room was opened between its members.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoomCreatedEvent {
    pub room_id: i64,
    pub room_name: String,
    pub member_ids: Vec<i64>,
}

/// A chat message that was just stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MessageEvent {
    pub message_id: i64,
    pub room_id: i64,
    /// Per-room sequence number of the message (1, 2, 3, ...) assigned in the storing
    /// transaction; subscribers use it to drop duplicates and detect gaps.
    pub room_seq: i64,
    pub room_name: String,
    /// Members of the room when the message was stored; subscribers filter on it so a user only
    /// sees rooms they belong to.
    pub member_ids: Vec<i64>,
    pub author_id: i64,
    pub author_username: String,
    pub content: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// Deleted since (only when read back from the database): its content is empty.
    #[serde(default)]
    pub deleted: bool,
}

/// The room a message belongs to, as events carry it.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomInfo {
    pub id: i64,
    pub name: String,
    pub member_ids: Vec<i64>,
}

impl MessageEvent {
    /// The one way to make the event of a stored message (sent now, or read back to fill a gap).
    pub fn stored(message: entity::message::Model, room: &RoomInfo, author_username: String) -> Self {
        MessageEvent {
            message_id: message.id,
            room_id: message.room_id,
            room_seq: message.room_seq,
            room_name: room.name.clone(),
            member_ids: room.member_ids.clone(),
            author_id: message.author_id,
            author_username,
            content: message.content,
            timestamp: message.timestamp,
            deleted: message.deleted,
        }
    }
}

/// Live delivery of [`ChatEvent`]s. Shared as `Arc<dyn EventBus>`.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes an event (for a message: after its transaction committed). Never fails the
    /// caller: backend errors are logged (`tracing::warn`) and swallowed, because the database
    /// is the record.
    async fn publish(&self, event: ChatEvent);

    /// Every event of `topic` published from now on, by this process or (Redis) any other
    /// process. With Redis, returns once the process's subscription to the topic is confirmed
    /// (or at once while Redis is down). Bounded: a subscription that falls behind gets
    /// [`RecvError::Lagged`] after what it still holds (and should catch up from the database);
    /// it gets [`RecvError::Closed`] once the bus is dropped.
    async fn subscribe(&self, topic: Topic) -> Subscription;

    /// For /readyz: true when the backend is reachable (always true in-process).
    async fn ready(&self) -> bool;

    /// "in-process" or "redis", for logs.
    fn kind(&self) -> &'static str;
}

/// How to build the bus; see [`connect`].
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// `redis://` / `rediss://` URL; `None` (or empty) selects the in-process bus.
    pub redis_url: Option<String>,
    /// Channel prefix, default "agora"; events travel on `{prefix}:room:{id}` and
    /// `{prefix}:user:{id}`. Tests use a unique one so parallel test servers on one Redis never
    /// cross-talk.
    pub channel_prefix: String,
    /// Events buffered per subscription before it lags (default 1024).
    pub capacity: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self { redis_url: None, channel_prefix: "agora".to_owned(), capacity: 1024 }
    }
}

/// Picks Redis when a URL is configured, else in-process.
///
/// With Redis this succeeds even when the server is down (a warning is logged and a background
/// task keeps retrying), but fails fast on a malformed URL.
pub async fn connect(config: &BusConfig) -> anyhow::Result<std::sync::Arc<dyn EventBus>> {
    let bus: std::sync::Arc<dyn EventBus> = match config.redis_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => {
            std::sync::Arc::new(RedisBus::connect(url, &config.channel_prefix, config.capacity).await?)
        }
        _ => std::sync::Arc::new(LocalBus::new(config.capacity)),
    };
    tracing::info!(kind = bus.kind(), "chat event bus ready");
    Ok(bus)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{ChatEvent, MessageEvent};

    /// A minimal message event of room 7 (members 1, 2, 3) whose `room_seq` identifies it.
    pub fn event(room_seq: i64) -> ChatEvent {
        event_in(7, room_seq)
    }

    /// The same in another room.
    pub fn event_in(room_id: i64, room_seq: i64) -> ChatEvent {
        event_of(room_id, room_seq, &[1, 2, 3])
    }

    /// The same in another room, of other members.
    pub fn event_of(room_id: i64, room_seq: i64, member_ids: &[i64]) -> ChatEvent {
        ChatEvent::Message(MessageEvent {
            message_id: 1000 + room_seq,
            room_id,
            room_seq,
            room_name: "general".to_owned(),
            member_ids: member_ids.to_vec(),
            author_id: member_ids[0],
            author_username: "alice".to_owned(),
            content: format!("message {room_seq}"),
            timestamp: chrono::Utc::now(),
            deleted: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_without_url_is_in_process() {
        let bus = connect(&BusConfig::default()).await.unwrap();
        assert_eq!(bus.kind(), "in-process");
        assert!(bus.ready().await);

        let blank = BusConfig { redis_url: Some("  ".to_owned()), ..BusConfig::default() };
        assert_eq!(connect(&blank).await.unwrap().kind(), "in-process");
    }

    #[tokio::test]
    async fn connect_rejects_malformed_redis_url() {
        for url in ["not a url", "http://127.0.0.1:6379"] {
            let config = BusConfig { redis_url: Some(url.to_owned()), ..BusConfig::default() };
            assert!(connect(&config).await.is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn chat_event_json_round_trip_names_its_kind() {
        let event = test_support::event(3);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "message");
        assert_eq!(serde_json::from_value::<ChatEvent>(json).unwrap(), event);
    }

    #[test]
    fn an_event_goes_to_its_room_and_each_member() {
        let topics: Vec<Topic> = test_support::event(1).topics().collect();
        assert_eq!(topics, vec![Topic::Room(7), Topic::Member(1), Topic::Member(2), Topic::Member(3)]);
    }
}
