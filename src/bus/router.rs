//! The routing table both buses deliver through: topic → the queues of this process's
//! subscribers of that topic.
//!
//! Each subscription has its own bounded queue (tokio's mpsc allocates its slots as they fill,
//! so an idle subscription costs a few hundred bytes, not its capacity). Delivering an event
//! touches only the subscribers of its topics and never waits: a full queue means the
//! subscriber fell behind, so it is dropped from the table and, once it has read what its queue
//! still holds, told [`RecvError::Lagged`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::mpsc;

use super::{ChatEvent, Topic};

/// Why [`Subscription::recv`] has no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The subscription fell behind and events were dropped for it; it receives nothing more.
    #[error("subscriber fell behind")]
    Lagged,
    /// The bus was dropped.
    #[error("bus closed")]
    Closed,
}

/// Called, under the table's lock (so in order), when a topic loses its last subscriber.
pub(super) type OnEmpty = Box<dyn Fn(Topic) + Send + Sync>;

pub(super) struct Router {
    capacity: usize,
    topics: Mutex<HashMap<Topic, Vec<Slot>>>,
    next_id: AtomicU64,
    on_empty: Option<OnEmpty>,
}

struct Slot {
    id: u64,
    queue: mpsc::Sender<Arc<ChatEvent>>,
    lagged: Arc<AtomicBool>,
}

impl Router {
    /// `capacity` events queued per subscription before it lags (at least 1).
    pub(super) fn new(capacity: usize, on_empty: Option<OnEmpty>) -> Arc<Self> {
        Arc::new(Router {
            capacity: capacity.max(1),
            topics: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            on_empty,
        })
    }

    fn table(&self) -> MutexGuard<'_, HashMap<Topic, Vec<Slot>>> {
        self.topics.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new subscription of `topic`. `on_first` runs, under the lock, when the topic had no
    /// subscriber before.
    pub(super) fn join(self: &Arc<Self>, topic: Topic, on_first: impl FnOnce(Topic)) -> Subscription {
        let (queue, receiver) = mpsc::channel(self.capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut table = self.table();
        let slots = table.entry(topic).or_default();
        if slots.is_empty() {
            on_first(topic);
        }
        slots.push(Slot { id, queue, lagged: lagged.clone() });
        Subscription { receiver, lagged, topic, id, router: Arc::downgrade(self) }
    }

    fn leave(&self, topic: Topic, id: u64) {
        let mut table = self.table();
        let Some(slots) = table.get_mut(&topic) else { return };
        let before = slots.len();
        slots.retain(|slot| slot.id != id);
        if slots.len() < before && slots.is_empty() {
            table.remove(&topic);
            if let Some(on_empty) = &self.on_empty {
                on_empty(topic);
            }
        }
    }

    /// Queues `event` for every subscriber of `topics`; those whose queue is full lag.
    pub(super) fn deliver(&self, event: &Arc<ChatEvent>, topics: impl IntoIterator<Item = Topic>) {
        let mut table = self.table();
        for topic in topics {
            let Some(slots) = table.get_mut(&topic) else { continue };
            slots.retain(|slot| match slot.queue.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.lagged.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
            if slots.is_empty() {
                table.remove(&topic);
                if let Some(on_empty) = &self.on_empty {
                    on_empty(topic);
                }
            }
        }
    }

    /// The topics with subscribers now.
    pub(super) fn topics(&self) -> Vec<Topic> {
        self.table().keys().copied().collect()
    }
}

/// The events of one topic, for one subscriber. Dropping it unsubscribes.
pub struct Subscription {
    receiver: mpsc::Receiver<Arc<ChatEvent>>,
    lagged: Arc<AtomicBool>,
    topic: Topic,
    id: u64,
    router: Weak<Router>,
}

impl Subscription {
    pub fn topic(&self) -> Topic {
        self.topic
    }

    /// The next event; after an error, the subscription receives nothing more.
    pub async fn recv(&mut self) -> Result<Arc<ChatEvent>, RecvError> {
        match self.receiver.recv().await {
            Some(event) => Ok(event),
            None if self.lagged.load(Ordering::Acquire) => Err(RecvError::Lagged),
            None => Err(RecvError::Closed),
        }
    }

    /// The next event if one is queued (`None` when none is, or the subscription has ended).
    pub fn try_recv(&mut self) -> Option<Arc<ChatEvent>> {
        self.receiver.try_recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(router) = self.router.upgrade() {
            router.leave(self.topic, self.id);
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("topic", &self.topic).field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::test_support::event;

    fn seq(event: &ChatEvent) -> i64 {
        event.room_seq().unwrap()
    }

    #[tokio::test]
    async fn delivers_only_to_the_topics_given() {
        let router = Router::new(8, None);
        let mut room = router.join(Topic::Room(7), |_| {});
        let mut other = router.join(Topic::Room(8), |_| {});
        router.deliver(&Arc::new(event(1)), [Topic::Room(7)]);
        assert_eq!(seq(&room.recv().await.unwrap()), 1);
        assert!(other.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_full_queue_lags_after_what_it_holds_and_others_go_on() {
        let router = Router::new(2, None);
        let mut slow = router.join(Topic::Room(7), |_| {});
        let mut quick = router.join(Topic::Room(7), |_| {});
        for n in 1..=2 {
            router.deliver(&Arc::new(event(n)), [Topic::Room(7)]);
            assert_eq!(seq(&quick.recv().await.unwrap()), n);
        }
        router.deliver(&Arc::new(event(3)), [Topic::Room(7)]);
        assert_eq!(seq(&quick.recv().await.unwrap()), 3);
        assert_eq!(seq(&slow.recv().await.unwrap()), 1);
        assert_eq!(seq(&slow.recv().await.unwrap()), 2);
        assert_eq!(slow.recv().await.unwrap_err(), RecvError::Lagged);
    }

    #[tokio::test]
    async fn first_and_last_subscribers_are_announced_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let router = Router::new(1, Some(Box::new(move |topic| log.lock().unwrap().push(("empty", topic)))));
        let join = |router: &Arc<Router>| {
            let log = seen.clone();
            router.join(Topic::Member(1), move |topic| log.lock().unwrap().push(("first", topic)))
        };
        let a = join(&router);
        let b = join(&router);
        drop(a);
        assert_eq!(router.topics(), vec![Topic::Member(1)]);
        drop(b);
        assert!(router.topics().is_empty());
        let _c = join(&router);
        // A lagging subscriber leaves too.
        router.deliver(&Arc::new(event(1)), [Topic::Member(1)]);
        router.deliver(&Arc::new(event(2)), [Topic::Member(1)]);
        let topic = Topic::Member(1);
        assert_eq!(*seen.lock().unwrap(), vec![("first", topic), ("empty", topic), ("first", topic), ("empty", topic)]);
    }

    #[tokio::test]
    async fn subscribers_see_closed_when_the_router_is_dropped() {
        let router = Router::new(4, None);
        let mut sub = router.join(Topic::Room(1), |_| {});
        drop(router);
        assert_eq!(sub.recv().await.unwrap_err(), RecvError::Closed);
    }
}
