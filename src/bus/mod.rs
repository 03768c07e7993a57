//! Placeholder of the chat event bus (replaced by the full in-process + Redis bus).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatEvent {
    pub message_id: i64,
    pub room_id: i64,
    pub room_seq: i64,
    pub room_name: String,
    pub member_ids: Vec<i64>,
    pub author_id: i64,
    pub author_username: String,
    pub content: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    async fn publish(&self, event: ChatEvent);
    fn subscribe(&self) -> broadcast::Receiver<Arc<ChatEvent>>;
    async fn ready(&self) -> bool;
    fn kind(&self) -> &'static str;
}

pub struct BusConfig {
    pub redis_url: Option<String>,
    pub channel_prefix: String,
    pub capacity: usize,
}

struct LocalBus(broadcast::Sender<Arc<ChatEvent>>);

#[async_trait::async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, event: ChatEvent) {
        let _ = self.0.send(Arc::new(event));
    }
    fn subscribe(&self) -> broadcast::Receiver<Arc<ChatEvent>> {
        self.0.subscribe()
    }
    async fn ready(&self) -> bool {
        true
    }
    fn kind(&self) -> &'static str {
        "in-process"
    }
}

pub async fn connect(config: &BusConfig) -> anyhow::Result<Arc<dyn EventBus>> {
    Ok(Arc::new(LocalBus(broadcast::channel(config.capacity).0)))
}
