//! In-process bus: one tokio broadcast channel. Used when no Redis is
//! configured, i.e. a single process serves every subscriber.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{ChatEvent, EventBus};

/// Fan-out within this process only.
pub struct LocalBus {
    tx: broadcast::Sender<Arc<ChatEvent>>,
}

impl LocalBus {
    /// `capacity` events are buffered per receiver before it lags (a zero
    /// capacity is raised to 1, which tokio requires).
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }
}

#[async_trait::async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, event: ChatEvent) {
        // `send` only fails when nobody is subscribed, which is not an error.
        let _ = self.tx.send(Arc::new(event));
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<ChatEvent>> {
        self.tx.subscribe()
    }

    async fn ready(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::test_support::event;
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};

    #[tokio::test]
    async fn fans_out_to_every_receiver() {
        let bus = LocalBus::new(16);
        let mut receivers: Vec<_> = (0..3).map(|_| bus.subscribe()).collect();

        bus.publish(event(1)).await;
        bus.publish(event(2)).await;

        for rx in &mut receivers {
            assert_eq!(rx.recv().await.unwrap().room_seq, 1);
            assert_eq!(rx.recv().await.unwrap().room_seq, 2);
            assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        }
    }

    #[tokio::test]
    async fn publish_without_subscribers_is_fine() {
        let bus = LocalBus::new(4);
        bus.publish(event(1)).await;
        // Subscribers only see what is published after they subscribed.
        let mut rx = bus.subscribe();
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }

    #[tokio::test]
    async fn slow_receiver_lags_then_continues_with_newest() {
        let bus = LocalBus::new(2);
        let mut rx = bus.subscribe();
        for seq in 1..=5 {
            bus.publish(event(seq)).await;
        }

        // The three oldest events were overwritten; the receiver is told how
        // many it missed, then resumes with what is still buffered.
        assert!(matches!(rx.recv().await, Err(RecvError::Lagged(3))));
        assert_eq!(rx.recv().await.unwrap().room_seq, 4);
        assert_eq!(rx.recv().await.unwrap().room_seq, 5);
    }

    #[tokio::test]
    async fn receivers_see_closed_when_bus_is_dropped() {
        let bus = LocalBus::new(0);
        let mut rx = bus.subscribe();
        drop(bus);
        assert!(matches!(rx.recv().await, Err(RecvError::Closed)));
    }
}
