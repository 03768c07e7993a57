//! Live feeds of chat events: a plain [`Stream`](futures_util::Stream) for one room, or for
//! every room of a user (rooms created later included). GraphQL subscriptions (`messageAdded`,
//! `chatEvents`) and, through `messageAdded`, the legacy chat socket read these, so the delivery
//! rules live here once.
//!
//! Guarantee: a feed yields every stored event (a message, or a change: edit, deletion,
//! reaction, read marker; see `service::events`) stored after the feed was opened, once each,
//! in storage order within each room (`room_seq`, which messages and changes share). Typing,
//! presence and new rooms are live only: at most once, never replayed.
//!
//! How: the feed subscribes to the bus *first*, then reads the baseline `last_seq` of its
//! room(s). Each room keeps the last delivered `room_seq`:
//! - `room_seq == last + 1`: delivered;
//! - `room_seq <= last`: a duplicate (or older than the feed), dropped;
//! - `room_seq > last + 1`: a gap (an event lost during a Redis outage, or events reordered
//!   across processes): the missing events are read from the database by `room_seq`, in
//!   chunks, and delivered in order before the event. `room_seq` order is commit order (the
//!   writer holds the room's row lock, or SQLite's write lock, until commit), so they are all
//!   there to read.
//!
//! A room the all-rooms feed has not seen at its baseline read was created after that read,
//! so every event of it is new: its baseline is 0.
//!
//! A feed that resumes (after a message for `messageAdded`; after a cursor for `chatEvents`)
//! starts with a fill of everything stored since then, read by the same chunked path as a gap.
//! The `messageAdded` feeds ([`room_feed`], [`member_feed`]) read messages only, and leave
//! deleted ones out of what they read back; the event feeds ([`room_events`],
//! [`member_events`]) read messages (a deleted one keeps its place, without content) and the
//! change log together.
//!
//! Positions (`chatEvents` cursors): a one-room feed's position is the room's last delivered
//! `room_seq`; an all-rooms feed's is that of each of its rooms (a room absent from it was
//! created after the position was taken: it is replayed from its start, after a `RoomCreated`).
//!
//! Typing: a `typing: true` lasts `ttl_ms` on the receiving feed's clock; unless renewed or
//! ended, the feed then yields `typing: false` itself.
//!
//! Bounded buffers: a feed subscribes to one topic of the bus (its room, or its member) and has
//! its own bounded queue there, so only its own rooms' traffic can make it fall behind. A feed
//! that falls so far behind that the bus drops events for it (`Lagged`) yields a final
//! [`LiveError::Lagged`] and ends, rather than buffering without bound or skipping silently:
//! the client reconnects and catches up from history. A gap is also only noticed when a later event of the room
//! arrives; the last event before a long bus outage reaches the feed with the next one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::bus::{Change, ChangeEvent, ChatEvent, EventBus, MessageEvent, RecvError, RoomInfo, Subscription, Topic};
use entity::{chat_room, message, room_event, room_member, user};
use futures_util::stream::{self, BoxStream, StreamExt};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
};
use tokio::time::Instant;

/// Rows read from the database per query when filling a gap or replaying: the most a feed
/// holds in memory at once (per table).
const GAP_CHUNK: u64 = 200;

/// Why a feed ended early. Either way the client should reconnect and read history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// The bus dropped events for this feed because it did not keep up.
    #[error("subscriber fell too far behind; reconnect and catch up from history")]
    Lagged,
    /// Missing events could not be read from the database (the detail is logged).
    #[error("could not load missed messages; reconnect and catch up from history")]
    Unavailable,
}

/// A live feed of `messageAdded`: stored messages as [`ChatEvent`]s (the same shape whether
/// they came from the bus or were read back to fill a gap), and the live events of other kinds.
/// Ends after an error, or when the bus closes.
pub type Feed = BoxStream<'static, Result<Arc<ChatEvent>, LiveError>>;

/// A feed of `chatEvents`: each event with the feed's position after it (stored events and
/// new rooms; `None` for typing and presence).
pub type EventFeed = BoxStream<'static, Result<Delivered, LiveError>>;

/// An event of an [`EventFeed`].
#[derive(Clone, Debug)]
pub struct Delivered {
    pub event: Arc<ChatEvent>,
    /// Where to resume after this event.
    pub position: Option<Position>,
}

/// A resumable place in a feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// The last delivered `room_seq` of one room.
    Room { room_id: i64, seq: i64 },
    /// The last delivered `room_seq` of each room of the user, by room id ascending.
    Rooms(Vec<(i64, i64)>),
}

/// Which messages a feed carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Room(i64),
    /// Every room this user is a member of.
    Member(i64),
}

/// What a feed reads back from the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Messages, deleted ones left out (`messageAdded`).
    Messages,
    /// Messages and changes (`chatEvents`).
    Events,
}

/// What to do with an event from the bus.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Skip,
    Deliver,
    /// Deliver the events after `after` (and before the event) from the database first.
    Fill {
        after: i64,
    },
}

/// One room of a member's feed: what of the member's topic belongs to it.
#[derive(Debug)]
struct OnlyRoom {
    room_id: i64,
    member_ids: Vec<i64>,
}

/// The delivery bookkeeping of a feed: the last delivered `room_seq` of each room.
#[derive(Debug)]
struct Tracker {
    scope: Scope,
    /// A member's feed narrowed to one room (`chatEvents(roomName:)`).
    only: Option<OnlyRoom>,
    last: HashMap<i64, i64>,
}

impl Tracker {
    fn new(scope: Scope, last: HashMap<i64, i64>) -> Self {
        Tracker { scope, only: None, last }
    }

    fn judge(&mut self, event: &ChatEvent) -> Verdict {
        let in_scope = match self.scope {
            Scope::Room(room_id) => event.room_id() == Some(room_id),
            Scope::Member(user_id) => event.member_ids().contains(&user_id),
        };
        if !in_scope {
            return Verdict::Skip;
        }
        if let Some(only) = &self.only {
            let in_room = match event {
                ChatEvent::Presence(p) => only.member_ids.contains(&p.user_id),
                _ => event.room_id() == Some(only.room_id),
            };
            if !in_room {
                return Verdict::Skip;
            }
        }
        if let ChatEvent::RoomCreated(created) = event {
            // A room known already existed when the feed opened (or was replayed).
            if self.last.contains_key(&created.room_id) {
                return Verdict::Skip;
            }
            self.last.insert(created.room_id, 0);
            return Verdict::Deliver;
        }
        let (Some(seq), Some(room_id)) = (event.room_seq(), event.room_id()) else { return Verdict::Deliver };
        let last = self.last.entry(room_id).or_insert(0);
        if seq <= *last {
            return Verdict::Skip;
        }
        let after = *last;
        *last = seq;
        if seq == after + 1 { Verdict::Deliver } else { Verdict::Fill { after } }
    }
}

/// Events being read back from the database, one chunk at a time as the feed is read (never
/// more than [`GAP_CHUNK`] rows per table in memory): those of `room` after `after` and before
/// `until`, then `then` (the bus event that revealed a gap) if there is one. `lead` comes
/// first (a replayed room's `RoomCreated`).
struct Fill {
    room: RoomInfo,
    after: i64,
    until: i64,
    lead: Option<Arc<ChatEvent>>,
    then: Option<Arc<ChatEvent>>,
}

impl Fill {
    /// The events missing before `event`, after `after`, then the event itself.
    fn gap(event: Arc<ChatEvent>, after: i64) -> Option<Self> {
        let room = event.room()?;
        Some(Fill { room, after, until: event.room_seq().unwrap_or(after + 1), lead: None, then: Some(event) })
    }
}

/// What an event feed keeps to give positions and end typing.
struct Positions {
    /// `Some(room)` for a one-room feed.
    room: Option<i64>,
    delivered: BTreeMap<i64, i64>,
    /// Typists whose `typing: true` was delivered: when it lapses, and the event to end.
    typing: HashMap<(i64, i64), (Instant, Arc<ChatEvent>)>,
}

struct State {
    receiver: Subscription,
    db: DatabaseConnection,
    tracker: Tracker,
    mode: Mode,
    /// At most one chunk of a fill (and the event after it).
    ready: VecDeque<Arc<ChatEvent>>,
    fills: VecDeque<Fill>,
    positions: Option<Positions>,
    finished: bool,
}

/// Most messages a `messageAdded` feed replays when it resumes after a message; further back
/// is history.
pub const MAX_REPLAY: i64 = 1_000;

/// The messages of one room stored from now on — or, resuming, every message stored after
/// message `after` (replayed from the database first, then live, with no gap and no
/// duplicate). `Ok(None)` when `after` is more than [`MAX_REPLAY`] events back. The caller
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
    let (current, baseline) = room_positions(db, room.id, after).await?;
    let tracker = Tracker::new(Scope::Room(room.id), HashMap::from([(room.id, current)]));
    let Some(baseline) = baseline else {
        return Ok(Some(message_feed(state(receiver, db, tracker, Mode::Messages, Vec::new(), None))));
    };
    if current - baseline > MAX_REPLAY {
        return Ok(None);
    }
    // Every message up to `current` is committed (see the module docs): the replay is
    // `(baseline, current]`, and the bus takes over from `current` (the tracker's baseline).
    let mut fills = Vec::new();
    if current > baseline {
        let member_ids = crate::service::chat::member_ids(db, room.id).await?;
        let room = RoomInfo { id: room.id, name: room.name.clone(), member_ids };
        fills.push(Fill { room, after: baseline, until: current + 1, lead: None, then: None });
    }
    Ok(Some(message_feed(state(receiver, db, tracker, Mode::Messages, fills, None))))
}

/// The messages of every room of `user_id` stored from now on, rooms created later included.
pub async fn member_feed(db: &DatabaseConnection, bus: &dyn EventBus, user_id: i64) -> Result<Feed, DbErr> {
    let receiver = bus.subscribe(Topic::Member(user_id)).await;
    let rooms = rooms_of(db, user_id).await?;
    let tracker = Tracker::new(Scope::Member(user_id), rooms.iter().map(|r| (r.0, r.1)).collect());
    Ok(message_feed(state(receiver, db, tracker, Mode::Messages, Vec::new(), None)))
}

/// The stored events of one room from now on, seen by member `viewer` — or, resuming, every
/// one after position `after` (`room_seq`) first — with the typing of the others and the
/// presence of its members. `Ok(None)` when that is more than `max_replay` events back. The
/// caller has checked membership.
pub async fn room_events(
    db: &DatabaseConnection,
    bus: &dyn EventBus,
    room: &chat_room::Model,
    viewer: i64,
    after: Option<i64>,
    max_replay: i64,
) -> Result<Option<EventFeed>, DbErr> {
    // The member's topic carries everything the member may see, typing and presence included.
    let receiver = bus.subscribe(Topic::Member(viewer)).await;
    let (current, _) = room_positions(db, room.id, None).await?;
    let member_ids = crate::service::chat::member_ids(db, room.id).await?;
    let mut tracker = Tracker::new(Scope::Member(viewer), HashMap::from([(room.id, current)]));
    tracker.only = Some(OnlyRoom { room_id: room.id, member_ids: member_ids.clone() });
    let from = after.map_or(current, |after| after.clamp(0, current));
    if current - from > max_replay {
        return Ok(None);
    }
    let mut fills = Vec::new();
    if current > from {
        let info = RoomInfo { id: room.id, name: room.name.clone(), member_ids };
        fills.push(Fill { room: info, after: from, until: current + 1, lead: None, then: None });
    }
    let positions =
        Positions { room: Some(room.id), delivered: BTreeMap::from([(room.id, from)]), typing: HashMap::new() };
    Ok(Some(event_feed(state(receiver, db, tracker, Mode::Events, fills, Some(positions)))))
}

/// The stored events of every room of `viewer` from now on, rooms created later included,
/// with typing and presence — or, resuming, every one after the position `after` (room id →
/// `room_seq`) first; rooms absent from it are replayed from their start, after a
/// `RoomCreated`. `Ok(None)` when that is more than `max_replay` events back in all.
pub async fn member_events(
    db: &DatabaseConnection,
    bus: &dyn EventBus,
    viewer: i64,
    after: Option<&HashMap<i64, i64>>,
    max_replay: i64,
) -> Result<Option<EventFeed>, DbErr> {
    let receiver = bus.subscribe(Topic::Member(viewer)).await;
    let rooms = rooms_of(db, viewer).await?;
    let tracker = Tracker::new(Scope::Member(viewer), rooms.iter().map(|r| (r.0, r.1)).collect());
    let mut delivered = BTreeMap::new();
    let mut behind = 0;
    // (room, from, name, new since the position)
    let mut replay = Vec::new();
    for (room_id, current, name) in rooms {
        match after {
            None => {
                delivered.insert(room_id, current);
            }
            Some(after) => {
                let (from, created) = match after.get(&room_id) {
                    Some(&from) => (from.clamp(0, current), false),
                    None => (0, true),
                };
                if !created {
                    delivered.insert(room_id, from);
                }
                behind += current - from;
                if created || current > from {
                    replay.push((room_id, from, current, name, created));
                }
            }
        }
    }
    if behind > max_replay {
        return Ok(None);
    }
    let ids: Vec<i64> = replay.iter().map(|r| r.0).collect();
    let mut members = member_ids_of(db, &ids).await?;
    let fills = replay
        .into_iter()
        .map(|(room_id, from, current, name, created)| {
            let member_ids = members.remove(&room_id).unwrap_or_default();
            let room = RoomInfo { id: room_id, name, member_ids };
            let lead = created.then(|| {
                Arc::new(ChatEvent::RoomCreated(crate::bus::RoomCreatedEvent {
                    room_id,
                    room_name: room.name.clone(),
                    member_ids: room.member_ids.clone(),
                }))
            });
            Fill { room, after: from, until: current + 1, lead, then: None }
        })
        .collect();
    let positions = Positions { room: None, delivered, typing: HashMap::new() };
    Ok(Some(event_feed(state(receiver, db, tracker, Mode::Events, fills, Some(positions)))))
}

/// The room's `last_seq` and, resuming after message `after`, the `room_seq` of the last
/// message up to it (messages up to `after`, by id, which orders a room like `room_seq`, are
/// old news; 0 when there is none): one statement, so one snapshot and one round trip.
async fn room_positions(
    db: &DatabaseConnection,
    room_id: i64,
    after: Option<i64>,
) -> Result<(i64, Option<i64>), DbErr> {
    let mut query = Query::select();
    query.column(chat_room::Column::LastSeq).from(chat_room::Entity).and_where(chat_room::Column::Id.eq(room_id));
    if let Some(after) = after {
        let baseline = Query::select()
            .expr(Expr::col(message::Column::RoomSeq).max())
            .from(message::Entity)
            .and_where(message::Column::RoomId.eq(room_id))
            .and_where(message::Column::Id.lte(after))
            .to_owned();
        query.expr(Expr::SubQuery(None, Box::new(baseline.into())));
    }
    let Some(row) = db.query_one(&query).await? else { return Ok((0, after.map(|_| 0))) };
    let current: i64 = row.try_get_by_index(0)?;
    let baseline = match after {
        Some(_) => Some(row.try_get_by_index::<Option<i64>>(1)?.unwrap_or(0)),
        None => None,
    };
    Ok((current, baseline))
}

/// The rooms of a user: id, `last_seq`, name.
async fn rooms_of(db: &DatabaseConnection, user_id: i64) -> Result<Vec<(i64, i64, String)>, DbErr> {
    chat_room::Entity::find()
        .select_only()
        .column(chat_room::Column::Id)
        .column(chat_room::Column::LastSeq)
        .column(chat_room::Column::Name)
        .join(sea_orm::JoinType::InnerJoin, chat_room::Relation::RoomMember.def())
        .filter(room_member::Column::UserId.eq(user_id))
        .into_tuple()
        .all(db)
        .await
}

/// The member ids of each room, ascending, in one statement.
async fn member_ids_of(db: &DatabaseConnection, room_ids: &[i64]) -> Result<HashMap<i64, Vec<i64>>, DbErr> {
    if room_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, i64)> = room_member::Entity::find()
        .select_only()
        .column(room_member::Column::RoomId)
        .column(room_member::Column::UserId)
        .filter(room_member::Column::RoomId.is_in(room_ids.iter().copied()))
        .order_by_asc(room_member::Column::UserId)
        .into_tuple()
        .all(db)
        .await?;
    let mut members: HashMap<i64, Vec<i64>> = HashMap::new();
    for (room_id, user_id) in rows {
        members.entry(room_id).or_default().push(user_id);
    }
    Ok(members)
}

fn state(
    receiver: Subscription,
    db: &DatabaseConnection,
    tracker: Tracker,
    mode: Mode,
    fills: Vec<Fill>,
    positions: Option<Positions>,
) -> State {
    State {
        receiver,
        db: db.clone(),
        tracker,
        mode,
        ready: VecDeque::new(),
        fills: fills.into(),
        positions,
        finished: false,
    }
}

/// A `messageAdded` feed: first the fills (if any), then what the bus brings.
fn message_feed(state: State) -> Feed {
    stream::unfold(state, |mut state| async move {
        let item = next(&mut state).await?;
        Some((item, state))
    })
    .boxed()
}

/// A `chatEvents` feed: each event with the position after it.
fn event_feed(state: State) -> EventFeed {
    stream::unfold(state, |mut state| async move {
        let item = next(&mut state).await?;
        let item = item.map(|event| {
            let position = state.positions.as_mut().and_then(|positions| positions.after(&event));
            Delivered { event, position }
        });
        Some((item, state))
    })
    .boxed()
}

impl Positions {
    /// Takes note of a delivered event; its position, for those that have one.
    fn after(&mut self, event: &Arc<ChatEvent>) -> Option<Position> {
        match &**event {
            ChatEvent::Typing(typing) => {
                let key = (typing.room_id, typing.user_id);
                if typing.typing {
                    let lapse = Instant::now() + std::time::Duration::from_millis(typing.ttl_ms);
                    let mut ended = typing.clone();
                    ended.typing = false;
                    self.typing.insert(key, (lapse, Arc::new(ChatEvent::Typing(ended))));
                } else {
                    self.typing.remove(&key);
                }
                return None;
            }
            ChatEvent::Presence(_) => return None,
            ChatEvent::RoomCreated(created) => {
                self.delivered.entry(created.room_id).or_insert(0);
            }
            ChatEvent::Message(_) | ChatEvent::Change(_) => {
                let (room_id, seq) = (event.room_id()?, event.room_seq()?);
                self.delivered.insert(room_id, seq);
            }
        }
        Some(match self.room {
            Some(room_id) => Position::Room { room_id, seq: self.delivered.get(&room_id).copied().unwrap_or(0) },
            None => Position::Rooms(self.delivered.iter().map(|(r, s)| (*r, *s)).collect()),
        })
    }

    /// Whether `event` is a `typing: false` of someone not shown as typing.
    fn typing_ended(&self, event: &ChatEvent) -> bool {
        matches!(event, ChatEvent::Typing(t) if !t.typing && !self.typing.contains_key(&(t.room_id, t.user_id)))
    }

    /// The earliest moment a delivered `typing: true` lapses.
    fn next_lapse(&self) -> Option<Instant> {
        self.typing.values().map(|(at, _)| *at).min()
    }

    /// The `typing: false` of every typist whose time is up.
    fn lapsed(&mut self, now: Instant) -> Vec<Arc<ChatEvent>> {
        let mut ended: Vec<(Instant, Arc<ChatEvent>)> = Vec::new();
        self.typing.retain(|_, (at, event)| {
            if *at <= now {
                ended.push((*at, event.clone()));
                false
            } else {
                true
            }
        });
        ended.sort_by_key(|(at, _)| *at);
        ended.into_iter().map(|(_, event)| event).collect()
    }
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
        if let Some(mut fill) = state.fills.pop_front() {
            if let Some(lead) = fill.lead.take() {
                state.ready.push_back(lead);
            }
            if fill.until <= fill.after + 1 {
                state.ready.extend(fill.then.take());
                continue;
            }
            // Boxed: a feed waits on the bus almost all its life, and the reads of a fill
            // would otherwise be part of every idle feed's size.
            match Box::pin(chunk(&state.db, state.mode, &fill.room, fill.after, fill.until)).await {
                Ok((found, reached)) => {
                    state.ready.extend(found);
                    match reached {
                        // Everything before `until` is delivered: the event itself comes last.
                        None => state.ready.extend(fill.then.take()),
                        Some(reached) => {
                            fill.after = reached;
                            state.fills.push_front(fill);
                        }
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
        let lapse = state.positions.as_ref().and_then(Positions::next_lapse);
        let received = match lapse {
            Some(at) => tokio::select! {
                received = state.receiver.recv() => Some(received),
                () = tokio::time::sleep_until(at) => None,
            },
            None => Some(state.receiver.recv().await),
        };
        let Some(received) = received else {
            if let Some(positions) = state.positions.as_mut() {
                state.ready.extend(positions.lapsed(Instant::now()));
            }
            continue;
        };
        match received {
            Ok(event) => match state.tracker.judge(&event) {
                Verdict::Skip => {}
                // A typist this feed has already shown as not typing (their `true` lapsed here
                // before their `false` came): nothing to tell.
                Verdict::Deliver if state.positions.as_ref().is_some_and(|p| p.typing_ended(&event)) => {}
                Verdict::Deliver => return Some(Ok(event)),
                Verdict::Fill { after } => {
                    crate::metrics::feed_gap_filled();
                    state.fills.extend(Fill::gap(event, after));
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

/// The next chunk of the events of `room` after `after` and before `until`, and where it
/// stopped (`None`: it reached `until`).
async fn chunk(
    db: &DatabaseConnection,
    mode: Mode,
    room: &RoomInfo,
    after: i64,
    until: i64,
) -> Result<(Vec<Arc<ChatEvent>>, Option<i64>), DbErr> {
    let messages = missing_messages(db, mode, room, after, until).await?;
    // A short chunk is the last one: everything before `until` is committed.
    let mut bound = until;
    if messages.len() as u64 == GAP_CHUNK {
        bound = Ord::min(bound, messages.last().and_then(|m| m.room_seq()).unwrap_or(after) + 1);
    }
    let mut found = messages;
    if mode == Mode::Events {
        let changes = missing_changes(db, room, after, until).await?;
        if changes.len() as u64 == GAP_CHUNK {
            bound = Ord::min(bound, changes.last().and_then(|c| c.room_seq()).unwrap_or(after) + 1);
        }
        found.extend(changes);
        found.retain(|event| event.room_seq().is_some_and(|seq| seq < bound));
        found.sort_by_key(|event| event.room_seq());
    }
    Ok((found, (bound < until).then_some(bound - 1)))
}

/// The next chunk (at most [`GAP_CHUNK`]) of messages of `room` after `after` and before
/// `until`; `messageAdded` leaves deleted ones out.
async fn missing_messages(
    db: &DatabaseConnection,
    mode: Mode,
    room: &RoomInfo,
    after: i64,
    until: i64,
) -> Result<Vec<Arc<ChatEvent>>, DbErr> {
    let mut query = message::Entity::find()
        .filter(message::Column::RoomId.eq(room.id))
        .filter(message::Column::RoomSeq.gt(after))
        .filter(message::Column::RoomSeq.lt(until));
    if mode == Mode::Messages {
        query = query.filter(message::Column::Deleted.eq(false));
    }
    let rows =
        query.order_by_asc(message::Column::RoomSeq).limit(GAP_CHUNK).find_also_related(user::Entity).all(db).await?;
    Ok(rows
        .into_iter()
        .map(|(m, author)| {
            let author = author.map(|a| a.username).unwrap_or_default();
            Arc::new(ChatEvent::Message(MessageEvent::stored(m, room, author)))
        })
        .collect())
}

/// The next chunk (at most [`GAP_CHUNK`]) of the change log of `room` after `after` and before
/// `until`, as events: an edit carries the message's content now (empty once deleted).
async fn missing_changes(
    db: &DatabaseConnection,
    room: &RoomInfo,
    after: i64,
    until: i64,
) -> Result<Vec<Arc<ChatEvent>>, DbErr> {
    let e = room_event::Entity;
    let query = Query::select()
        .columns([
            (e, room_event::Column::Seq),
            (e, room_event::Column::Kind),
            (e, room_event::Column::MessageId),
            (e, room_event::Column::UserId),
            (e, room_event::Column::Emoji),
            (e, room_event::Column::Added),
            (e, room_event::Column::CreatedAt),
        ])
        .column((user::Entity, user::Column::Username))
        .column((message::Entity, message::Column::Content))
        .column((message::Entity, message::Column::EditedAt))
        .from(e)
        .left_join(user::Entity, Expr::col((user::Entity, user::Column::Id)).equals((e, room_event::Column::UserId)))
        .left_join(
            message::Entity,
            Expr::col((message::Entity, message::Column::Id)).equals((e, room_event::Column::MessageId)),
        )
        .and_where(Expr::col((e, room_event::Column::RoomId)).eq(room.id))
        .and_where(Expr::col((e, room_event::Column::Seq)).gt(after))
        .and_where(Expr::col((e, room_event::Column::Seq)).lt(until))
        .order_by((e, room_event::Column::Seq), sea_orm::Order::Asc)
        .limit(GAP_CHUNK)
        .to_owned();
    let mut found = Vec::new();
    for row in db.query_all(&query).await? {
        let seq: i64 = row.try_get_by_index(0)?;
        let kind: String = row.try_get_by_index(1)?;
        let message_id: i64 = row.try_get_by_index::<Option<i64>>(2)?.unwrap_or(0);
        let user_id: i64 = row.try_get_by_index::<Option<i64>>(3)?.unwrap_or(0);
        let emoji: Option<String> = row.try_get_by_index(4)?;
        let added: Option<bool> = row.try_get_by_index(5)?;
        let created_at: chrono::DateTime<chrono::Utc> = row.try_get_by_index(6)?;
        let username: String = row.try_get_by_index::<Option<String>>(7)?.unwrap_or_default();
        let content: String = row.try_get_by_index::<Option<String>>(8)?.unwrap_or_default();
        let edited_at: Option<chrono::DateTime<chrono::Utc>> = row.try_get_by_index(9)?;
        let change = match kind.as_str() {
            crate::service::events::EDITED => {
                Change::Edited { message_id, content, edited_at: edited_at.unwrap_or(created_at) }
            }
            crate::service::events::DELETED => Change::Deleted { message_id },
            crate::service::events::REACTION => Change::Reaction {
                message_id,
                user_id,
                username,
                emoji: emoji.unwrap_or_default(),
                added: added.unwrap_or(true),
            },
            crate::service::events::READ => Change::ReadMarker { message_id, user_id, username },
            other => {
                tracing::warn!(kind = other, room_id = room.id, seq, "unknown kind in the room's change log; skipped");
                continue;
            }
        };
        found.push(Arc::new(ChatEvent::Change(ChangeEvent {
            room_id: room.id,
            room_seq: seq,
            room_name: room.name.clone(),
            member_ids: room.member_ids.clone(),
            change,
        })));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bus::test_support::event_of as event;

    #[test]
    fn a_room_feed_delivers_in_sequence_and_drops_duplicates() {
        let mut tracker = Tracker::new(Scope::Room(1), HashMap::from([(1, 4)]));
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
        let mut tracker = Tracker::new(Scope::Member(7), HashMap::from([(1, 3)]));
        assert_eq!(tracker.judge(&event(1, 4, &[7, 8])), Verdict::Deliver);
        assert_eq!(tracker.judge(&event(2, 1, &[8, 9])), Verdict::Skip, "not a member");
        assert_eq!(tracker.judge(&event(3, 1, &[7, 9])), Verdict::Deliver, "a room created later");
        assert_eq!(tracker.judge(&event(4, 3, &[5, 7])), Verdict::Fill { after: 0 });
        assert_eq!(tracker.judge(&event(1, 4, &[7, 8])), Verdict::Skip);
    }

    fn created(room_id: i64, members: &[i64]) -> ChatEvent {
        ChatEvent::RoomCreated(crate::bus::RoomCreatedEvent {
            room_id,
            room_name: "r".to_owned(),
            member_ids: members.to_vec(),
        })
    }

    #[test]
    fn a_new_room_is_announced_once_and_starts_at_zero() {
        let mut tracker = Tracker::new(Scope::Member(7), HashMap::from([(1, 3)]));
        assert_eq!(tracker.judge(&created(1, &[7, 8])), Verdict::Skip, "known when the feed opened");
        assert_eq!(tracker.judge(&created(2, &[8, 9])), Verdict::Skip, "not a member");
        assert_eq!(tracker.judge(&created(3, &[7, 9])), Verdict::Deliver);
        assert_eq!(tracker.judge(&created(3, &[7, 9])), Verdict::Skip, "once");
        assert_eq!(tracker.judge(&event(3, 1, &[7, 9])), Verdict::Deliver, "from seq 1");
    }

    #[test]
    fn a_one_room_feed_of_a_member_keeps_its_room_and_its_members_presence() {
        let mut tracker = Tracker::new(Scope::Member(7), HashMap::from([(1, 0)]));
        tracker.only = Some(OnlyRoom { room_id: 1, member_ids: vec![7, 8] });
        let presence = |user_id: i64| {
            ChatEvent::Presence(crate::bus::PresenceEvent {
                user_id,
                username: "u".to_owned(),
                online: true,
                last_seen: None,
                recipients: vec![7],
            })
        };
        assert_eq!(tracker.judge(&event(1, 1, &[7, 8])), Verdict::Deliver);
        assert_eq!(tracker.judge(&event(2, 1, &[7, 9])), Verdict::Skip, "another room of the member");
        assert_eq!(tracker.judge(&created(3, &[7, 9])), Verdict::Skip);
        assert_eq!(tracker.judge(&presence(8)), Verdict::Deliver, "a member of the room");
        assert_eq!(tracker.judge(&presence(9)), Verdict::Skip, "someone of another room");
    }
}
