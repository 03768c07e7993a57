//! Chat event bus: live fan-out of newly stored chat messages to subscribers
//! (GraphQL subscriptions, WebSocket sessions) in this process and, with Redis,
//! in every other process of the deployment.
//!
//! The database is the record; the bus only carries live delivery. A message
//! is published after its storing transaction committed, and delivery is
//! at-most-once: an event can be missed (a slow receiver lags, Redis is down,
//! a process restarts). Subscribers therefore use `room_seq` to drop
//! duplicates and notice gaps, and catch up from history in the database.
//! That is also why publishing never fails the caller.

mod local;
mod redis;

pub use self::local::LocalBus;
pub use self::redis::RedisBus;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// A chat message that was just stored, with what subscribers need to route
/// and render it without a database round trip.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatEvent {
    pub message_id: i64,
    pub room_id: i64,
    /// Per-room sequence number of the message (1, 2, 3, ...) assigned in the
    /// storing transaction; subscribers use it to drop duplicates and detect
    /// gaps.
    pub room_seq: i64,
    pub room_name: String,
    /// Members of the room when the message was stored; subscribers filter on
    /// it so a user only sees rooms they belong to.
    pub member_ids: Vec<i64>,
    pub author_id: i64,
    pub author_username: String,
    pub content: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

/// Live delivery of [`ChatEvent`]s. Shared as `Arc<dyn EventBus>`.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes a stored message (called after its transaction committed).
    /// Never fails the caller: backend errors are logged (`tracing::warn`) and
    /// swallowed, because the database is the record.
    async fn publish(&self, event: ChatEvent);

    /// Every event published from now on, by this process or (Redis) any
    /// other process. Bounded: a receiver that falls behind gets
    /// `RecvError::Lagged` (and should catch up from the database); it gets
    /// `RecvError::Closed` once the bus is dropped.
    fn subscribe(&self) -> broadcast::Receiver<Arc<ChatEvent>>;

    /// For /readyz: true when the backend is reachable (always true
    /// in-process).
    async fn ready(&self) -> bool;

    /// "in-process" or "redis", for logs.
    fn kind(&self) -> &'static str;
}

/// How to build the bus; see [`connect`].
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// `redis://` / `rediss://` URL; `None` (or empty) selects the
    /// in-process bus.
    pub redis_url: Option<String>,
    /// Channel prefix, default "agora"; events travel on `{prefix}:chat`.
    /// Tests use a unique one so parallel test servers on one Redis never
    /// cross-talk.
    pub channel_prefix: String,
    /// Events buffered per receiver before it lags (default 1024).
    pub capacity: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self { redis_url: None, channel_prefix: "agora".to_owned(), capacity: 1024 }
    }
}

/// Picks Redis when a URL is configured, else in-process.
///
/// With Redis this succeeds even when the server is down (a warning is
/// logged and a background task keeps retrying), but fails fast on a
/// malformed URL.
pub async fn connect(config: &BusConfig) -> anyhow::Result<Arc<dyn EventBus>> {
    let bus: Arc<dyn EventBus> = match config.redis_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => {
            Arc::new(RedisBus::connect(url, &config.channel_prefix, config.capacity).await?)
        }
        _ => Arc::new(LocalBus::new(config.capacity)),
    };
    tracing::info!(kind = bus.kind(), "chat event bus ready");
    Ok(bus)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::ChatEvent;

    /// A minimal event whose `room_seq` identifies it in assertions.
    pub fn event(room_seq: i64) -> ChatEvent {
        ChatEvent {
            message_id: 1000 + room_seq,
            room_id: 7,
            room_seq,
            room_name: "general".to_owned(),
            member_ids: vec![1, 2, 3],
            author_id: 1,
            author_username: "alice".to_owned(),
            content: format!("message {room_seq}"),
            timestamp: chrono::Utc::now(),
        }
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
    fn chat_event_json_round_trip() {
        let event = test_support::event(3);
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<ChatEvent>(&json).unwrap(), event);
    }
}
