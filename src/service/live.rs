//! Live feeds of chat messages: a plain [`Stream`](futures_util::Stream) of stored messages for one room, or for every
//! room of a user (rooms created later included). GraphQL subscriptions and the legacy chat
//! socket both read these, so the delivery rules live here once.
//!
//! Guarantee: a feed yields every message stored after the feed was opened, once each, in
//! storage order within each room (`room_seq`).
//!
//! How: the feed subscribes to the bus *first*, then reads the baseline `last_seq` of its
//! room(s). Each room keeps the last delivered `room_seq`:
//! - `room_seq == last + 1`: delivered;
//! - `room_seq <= last`: a duplicate (or older than the feed), dropped;
//! - `room_seq > last + 1`: a gap (an event lost during a Redis outage, or events reordered
//!   across processes): the missing messages are read from the database by `room_seq`, in
//!   chunks, and delivered in order before the event. `room_seq` order is commit order (the
//!   sender holds the room's row lock, or SQLite's write lock, until commit), so they are all
//!   there to read.
//!
//! A room the all-rooms feed has not seen at its baseline read was created after that read,
//! so every message of it is new: its baseline is 0.
//!
//! A room feed that resumes after a message starts with a fill of everything stored since
//! then, read by the same chunked path as a gap.
//!
//! Events without a `room_seq` (ephemeral kinds) are delivered as they come, at most once.
//!
//! Bounded buffers: a feed subscribes to one topic of the bus (its room, or its member) and has
//! its own bounded queue there, so only its own rooms' traffic can make it fall behind. A feed
//! that falls so far behind that the bus drops events for it (`Lagged`) yields a final
//! [`LiveError::Lagged`] and ends, rather than buffering without bound or skipping silently:
//! the client reconnects and catches up from history. A gap is also only noticed when a later event of the room
//! arrives; the last message before a long bus outage reaches the feed with the next one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::bus::{ChatEvent, EventBus, MessageEvent, RecvError, RoomInfo, Subscription, Topic};
use entity::{chat_room, message, room_member, user};
use futures_util::stream::{self, BoxStream, StreamExt};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait,
};

/// Messages read from the database per query when filling a gap or replaying: the most a
/// feed holds in memory at once.
const GAP_CHUNK: u64 = 200;

/// Why a feed ended early. Either way the client should reconnect and read history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// The bus dropped events for this feed because it did not keep up.
    #[error("subscriber fell too far behind; reconnect and catch up from history")]
    Lagged,
    /// Missing messages could not be read from the database (the detail is logged).
    #[error("could not load missed messages; reconnect and catch up from history")]
    Unavailable,
}

/// A live feed: stored messages as [`ChatEvent`]s (the same shape whether they came from the
/// bus or were read back to fill a gap). Ends after an error, or when the bus closes.
pub type Feed = BoxStream<'static, Result<Arc<ChatEvent>, LiveError>>;

/// Which messages a feed carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Room(i64),
    /// Every room this user is a member of.
    Member(i64),
}

/// What to do with an event from the bus.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Skip,
    Deliver,
    /// Deliver the messages after `after` (and before the event) from the database first.
    Fill {
        after: i64,
    },
}

/// The delivery bookkeeping of a feed: the last delivered `room_seq` of each room.
#[derive(Debug)]
struct Tracker {
    scope: Scope,
    last: HashMap<i64, i64>,
}

impl Tracker {
    fn judge(&mut self, event: &ChatEvent) -> Verdict {
        let in_scope = match self.scope {
            Scope::Room(room_id) => event.room_id() == room_id,
            Scope::Member(user_id) => event.member_ids().contains(&user_id),
        };
        if !in_scope {
            return Verdict::Skip;
        }
        let Some(seq) = event.room_seq() else { return Verdict::Deliver };
        let last = self.last.entry(event.room_id()).or_insert(0);
        if seq <= *last {
            return Verdict::Skip;
        }
        let after = *last;
        *last = seq;
        if seq == after + 1 { Verdict::Deliver } else { Verdict::Fill { after } }
    }
}

/// Messages being read back from the database, one chunk at a time as the feed is read (never
/// more than [`GAP_CHUNK`] of them in memory): those of `room` after `after` and before
/// `until`, then `then` (the bus event that revealed a gap) if there is one.
struct Fill {
    room: RoomInfo,
    after: i64,
    until: i64,
    then: Option<Arc<ChatEvent>>,
}

impl Fill {
    /// The messages missing before `event`, after `after`, then the event itself.
    fn gap(event: Arc<ChatEvent>, after: i64) -> Self {
        Fill { room: event.room(), after, until: event.room_seq().unwrap_or(after + 1), then: Some(event) }
    }
}

struct State {
    receiver: Subscription,
    db: DatabaseConnection,
    tracker: Tracker,
    /// At most one chunk of a fill (and the event after it).
    ready: VecDeque<Arc<ChatEvent>>,
    fill: Option<Fill>,
    finished: bool,
}

/// Most messages a feed replays when it resumes after a message; further back is history.
pub const MAX_REPLAY: i64 = 1_000;

/// The messages of one room stored from now on — or, resuming, every message stored after
/// message `after` (replayed from the database first, then live, with no gap and no
/// duplicate). `Ok(None)` when `after` is more than [`MAX_REPLAY`] messages back. The caller
/// has checked membership.
///
/// The replay is read lazily, a chunk at a time as the feed is consumed: a subscription that
/// resumes far back holds one chunk in memory, not the whole replay.
pub async fn room_feed(
    db: &DatabaseConnection,
    bus: &dyn EventBus,
    room: &chat_room::Model,
    after: Option<i64>,
) -> Result<Option<Feed>, DbErr> {
    let receiver = bus.subscribe(Topic::Room(room.id)).await;
    let current: i64 = chat_room::Entity::find_by_id(room.id)
        .select_only()
        .column(chat_room::Column::LastSeq)
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or(0);
    let tracker = Tracker { scope: Scope::Room(room.id), last: HashMap::from([(room.id, current)]) };
    let Some(after) = after else {
        return Ok(Some(feed(receiver, db.clone(), tracker, None)));
    };
    // Messages up to `after` (by id, which orders a room like `room_seq`) are old news.
    let baseline: Option<i64> = message::Entity::find()
        .select_only()
        .column_as(message::Column::RoomSeq.max(), "seq")
        .filter(message::Column::RoomId.eq(room.id))
        .filter(message::Column::Id.lte(after))
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    let baseline = baseline.unwrap_or(0);
    if current - baseline > MAX_REPLAY {
        return Ok(None);
    }
    // Every message up to `current` is committed (see the module docs): the replay is
    // `(baseline, current]`, and the bus takes over from `current` (the tracker's baseline).
    let replay = if current > baseline {
        let member_ids = crate::service::chat::member_ids(db, room.id).await?;
        let room = RoomInfo { id: room.id, name: room.name.clone(), member_ids };
        Some(Fill { room, after: baseline, until: current + 1, then: None })
    } else {
        None
    };
    Ok(Some(feed(receiver, db.clone(), tracker, replay)))
}

/// The messages of every room of `user_id` stored from now on, rooms created later included.
pub async fn member_feed(db: &DatabaseConnection, bus: &dyn EventBus, user_id: i64) -> Result<Feed, DbErr> {
    let receiver = bus.subscribe(Topic::Member(user_id)).await;
    let rooms: Vec<(i64, i64)> = chat_room::Entity::find()
        .select_only()
        .column(chat_room::Column::Id)
        .column(chat_room::Column::LastSeq)
        .join(sea_orm::JoinType::InnerJoin, chat_room::Relation::RoomMember.def())
        .filter(room_member::Column::UserId.eq(user_id))
        .into_tuple()
        .all(db)
        .await?;
    let tracker = Tracker { scope: Scope::Member(user_id), last: rooms.into_iter().collect() };
    Ok(feed(receiver, db.clone(), tracker, None))
}

/// A feed that first delivers `fill` (if any), then what the bus brings.
fn feed(receiver: Subscription, db: DatabaseConnection, tracker: Tracker, fill: Option<Fill>) -> Feed {
    let state = State { receiver, db, tracker, ready: VecDeque::new(), fill, finished: false };
    stream::unfold(state, |mut state| async move {
        let item = next(&mut state).await?;
        Some((item, state))
    })
    .boxed()
}

/// The next item of a feed; `None` when it has ended.
async fn next(state: &mut State) -> Option<Result<Arc<ChatEvent>, LiveError>> {
    loop {
        if let Some(event) = state.ready.pop_front() {
            return Some(Ok(event));
        }
        if state.finished {
            return None;
        }
        if let Some(mut fill) = state.fill.take() {
            match missing(&state.db, &fill.room, fill.after, fill.until).await {
                Ok(found) => {
                    // A short chunk is the last one: everything before `until` is committed.
                    let done = (found.len() as u64) < GAP_CHUNK;
                    fill.after = found.last().and_then(|m| m.room_seq()).unwrap_or(fill.after);
                    state.ready.extend(found);
                    if done {
                        // The gap is closed: the event itself comes last.
                        state.ready.extend(fill.then);
                    } else {
                        state.fill = Some(fill);
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, room_id = fill.room.id, "live feed could not fill a gap");
                    state.finished = true;
                    return Some(Err(LiveError::Unavailable));
                }
            }
            continue;
        }
        match state.receiver.recv().await {
            Ok(event) => match state.tracker.judge(&event) {
                Verdict::Skip => {}
                Verdict::Deliver => return Some(Ok(event)),
                Verdict::Fill { after } => {
                    crate::metrics::feed_gap_filled();
                    state.fill = Some(Fill::gap(event, after));
                }
            },
            Err(RecvError::Lagged) => {
                tracing::warn!(topic = ?state.receiver.topic(), "live feed fell behind the bus; ending it");
                crate::metrics::feed_lagged();
                state.finished = true;
                return Some(Err(LiveError::Lagged));
            }
            Err(RecvError::Closed) => return None,
        }
    }
}

/// The next chunk (at most [`GAP_CHUNK`]) of messages of `room` after `after` and before `until`.
async fn missing(
    db: &DatabaseConnection,
    room: &RoomInfo,
    after: i64,
    until: i64,
) -> Result<Vec<Arc<ChatEvent>>, DbErr> {
    let rows = message::Entity::find()
        .filter(message::Column::RoomId.eq(room.id))
        .filter(message::Column::RoomSeq.gt(after))
        .filter(message::Column::RoomSeq.lt(until))
        .order_by_asc(message::Column::RoomSeq)
        .limit(GAP_CHUNK)
        .find_also_related(user::Entity)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(m, author)| {
            let author = author.map(|a| a.username).unwrap_or_default();
            Arc::new(ChatEvent::Message(MessageEvent::stored(m, room, author)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bus::test_support::event_of as event;

    #[test]
    fn a_room_feed_delivers_in_sequence_and_drops_duplicates() {
        let mut tracker = Tracker { scope: Scope::Room(1), last: HashMap::from([(1, 4)]) };
        assert_eq!(tracker.judge(&event(1, 4, &[1, 2])), Verdict::Skip, "at the baseline");
        assert_eq!(tracker.judge(&event(2, 5, &[1, 2])), Verdict::Skip, "another room");
        assert_eq!(tracker.judge(&event(1, 5, &[1, 2])), Verdict::Deliver);
        assert_eq!(tracker.judge(&event(1, 5, &[1, 2])), Verdict::Skip, "duplicate");
        assert_eq!(tracker.judge(&event(1, 8, &[1, 2])), Verdict::Fill { after: 5 });
        assert_eq!(tracker.judge(&event(1, 7, &[1, 2])), Verdict::Skip, "filled already");
        assert_eq!(tracker.judge(&event(1, 9, &[1, 2])), Verdict::Deliver);
    }

    #[test]
    fn a_member_feed_starts_unseen_rooms_at_zero() {
        let mut tracker = Tracker { scope: Scope::Member(7), last: HashMap::from([(1, 3)]) };
        assert_eq!(tracker.judge(&event(1, 4, &[7, 8])), Verdict::Deliver);
        assert_eq!(tracker.judge(&event(2, 1, &[8, 9])), Verdict::Skip, "not a member");
        assert_eq!(tracker.judge(&event(3, 1, &[7, 9])), Verdict::Deliver, "a room created later");
        assert_eq!(tracker.judge(&event(4, 3, &[5, 7])), Verdict::Fill { after: 0 });
        assert_eq!(tracker.judge(&event(1, 4, &[7, 8])), Verdict::Skip);
    }
}
