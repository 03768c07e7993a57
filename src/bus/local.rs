//! In-process bus: the routing table alone. Used when no Redis is configured, i.e. a single
//! process serves every subscriber.

use std::sync::Arc;

use super::router::Router;
use super::{ChatEvent, EventBus, Subscription, Topic};

/// Fan-out within this process only.
pub struct LocalBus {
    router: Arc<Router>,
}

impl LocalBus {
    /// `capacity` events are queued per subscription before it lags (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self { router: Router::new(capacity, None) }
    }

    /// How many subscribers `topic` has now (tests wait on it to know a feed is live).
    pub fn subscribers(&self, topic: Topic) -> usize {
        self.router.subscribers(topic)
    }
}

#[async_trait::async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, event: ChatEvent) {
        let event = Arc::new(event);
        self.router.deliver(&event, event.topics());
    }

    async fn subscribe(&self, topic: Topic) -> Subscription {
        self.router.join(topic, |_| {})
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
    use crate::bus::RecvError;
    use crate::bus::test_support::{event, event_in};

    #[tokio::test]
    async fn fans_out_to_the_room_and_its_members_only() {
        let bus = LocalBus::new(16);
        let mut receivers = vec![
            bus.subscribe(Topic::Room(7)).await,
            bus.subscribe(Topic::Room(7)).await,
            bus.subscribe(Topic::Member(2)).await,
        ];
        let mut elsewhere = [bus.subscribe(Topic::Room(8)).await, bus.subscribe(Topic::Member(9)).await];

        bus.publish(event(1)).await;
        bus.publish(event(2)).await;

        for rx in &mut receivers {
            assert_eq!(rx.recv().await.unwrap().room_seq(), Some(1));
            assert_eq!(rx.recv().await.unwrap().room_seq(), Some(2));
            assert!(rx.try_recv().is_none());
        }
        for rx in &mut elsewhere {
            assert!(rx.try_recv().is_none(), "{:?} got an event of another room", rx.topic());
        }
    }

    #[tokio::test]
    async fn publish_without_subscribers_is_fine() {
        let bus = LocalBus::new(4);
        bus.publish(event(1)).await;
        // Subscribers only see what is published after they subscribed.
        let mut rx = bus.subscribe(Topic::Room(7)).await;
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_while_a_quiet_one_of_another_room_does_not() {
        let bus = LocalBus::new(2);
        let mut slow = bus.subscribe(Topic::Room(7)).await;
        let mut quiet = bus.subscribe(Topic::Room(8)).await;
        for seq in 1..=5 {
            bus.publish(event(seq)).await;
        }
        // What fit in its queue, then the news that it fell behind.
        assert_eq!(slow.recv().await.unwrap().room_seq(), Some(1));
        assert_eq!(slow.recv().await.unwrap().room_seq(), Some(2));
        assert_eq!(slow.recv().await.unwrap_err(), RecvError::Lagged);
        assert!(quiet.try_recv().is_none());

        bus.publish(event_in(8, 1)).await;
        assert_eq!(quiet.recv().await.unwrap().room_id(), Some(8), "never cut off by room 7's traffic");
    }

    #[tokio::test]
    async fn subscribers_see_closed_when_bus_is_dropped() {
        let bus = LocalBus::new(0);
        let mut rx = bus.subscribe(Topic::Room(7)).await;
        drop(bus);
        assert_eq!(rx.recv().await.unwrap_err(), RecvError::Closed);
    }
}
