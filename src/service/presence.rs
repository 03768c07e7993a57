//! Presence: a user is online while they hold at least one socket (GraphQL WebSocket, legacy
//! chat socket, or a subscription over SSE) on any process. Sockets register with `service::sessions::SocketOwners`, which
//! reports a user's first socket here and their last one gone ([`Transition`], in order, per
//! process); [`run`] records it, and when the user came online or went offline across every
//! process, publishes `PresenceChanged` to those who share a room with them (not to those they
//! blocked) and writes their last-seen time.
//!
//! Across processes (Redis): each user has a sorted set `{prefix}:presence:{user}` of the
//! processes holding their sockets, scored by when the entry lapses. A process renews its
//! entries every third of `AGORA_PRESENCE_TTL_SECONDS` (heartbeat); a process that dies stops
//! renewing, and its users read as offline once their entries lapse (at most that long, a
//! minute by default). Processes also renew their own entry in `{prefix}:presence:processes`
//! and list their users in `{prefix}:presence:process:{id}`: the first live process whose
//! heartbeat finds a process lapsed claims it (ZREM: one claimer) and publishes
//! `PresenceChanged` for those of its users now offline everywhere. Joining and leaving are one
//! MULTI each, so of two processes racing, exactly one sees the user come online (or go
//! offline).
//!
//! In one process (no Redis): the set of users with a socket here is the truth.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use entity::{room_member, user, user_presence};
use redis::aio::ConnectionManager;
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bus::{ChatEvent, EventBus, PresenceEvent};
use crate::state::AppState;

/// Longest wait for Redis.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// A user's sockets on this process: the first opened, or the last closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Online(i64),
    Offline(i64),
}

/// Who is online.
pub struct Presence {
    /// Users with a socket on this process.
    local: Mutex<HashSet<i64>>,
    redis: Option<Shared>,
    ttl: Duration,
}

struct Shared {
    conn: ConnectionManager,
    prefix: String,
    /// This process, in the users' sets.
    process: String,
}

impl Presence {
    /// In this process only, or shared through Redis at `redis_url` (keys under `prefix`).
    pub fn new(redis_url: Option<&str>, prefix: &str, ttl: Duration) -> Self {
        let redis = redis_url.map(str::trim).filter(|url| !url.is_empty()).and_then(|url| {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(REDIS_TIMEOUT))
                .set_response_timeout(Some(REDIS_TIMEOUT));
            let conn = redis::Client::open(url).and_then(|client| client.get_connection_manager_lazy(config));
            conn.inspect_err(|err| tracing::warn!(error = %err, "presence: no Redis, this process only")).ok()
        });
        let redis = redis.map(|conn| Shared {
            conn,
            prefix: format!("{prefix}:presence"),
            process: uuid::Uuid::new_v4().simple().to_string(),
        });
        Self { local: Mutex::default(), redis, ttl: ttl.max(Duration::from_secs(1)) }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.local.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms() -> i64 {
        Utc::now().timestamp_millis()
    }

    /// Which of `user_ids` are online (on any process).
    pub async fn online(&self, user_ids: &[i64]) -> HashSet<i64> {
        let Some(shared) = &self.redis else {
            let local = self.local();
            return user_ids.iter().copied().filter(|id| local.contains(id)).collect();
        };
        let now = Self::now_ms();
        let mut pipe = redis::pipe();
        for id in user_ids {
            pipe.cmd("ZCOUNT").arg(shared.key(*id)).arg(format!("({now}")).arg("+inf");
        }
        match shared.run::<Vec<i64>>(&pipe).await {
            Some(counts) => user_ids.iter().zip(counts).filter(|(_, n)| *n > 0).map(|(id, _)| *id).collect(),
            // Redis unreachable: what this process knows.
            None => {
                let local = self.local();
                user_ids.iter().copied().filter(|id| local.contains(id)).collect()
            }
        }
    }

    /// Records a transition; true when the user came online or went offline everywhere.
    async fn apply(&self, transition: Transition) -> bool {
        let (user_id, online) = match transition {
            Transition::Online(id) => (id, true),
            Transition::Offline(id) => (id, false),
        };
        {
            let mut local = self.local();
            if online {
                local.insert(user_id)
            } else {
                local.remove(&user_id)
            };
        }
        let Some(shared) = &self.redis else { return true };
        let now = Self::now_ms();
        let key = shared.key(user_id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now).ignore();
        if online {
            pipe.cmd("ZCARD").arg(&key);
            pipe.cmd("ZADD").arg(&key).arg(now + self.ttl_ms()).arg(&shared.process).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(self.ttl_ms() * 2).ignore();
            pipe.cmd("SADD").arg(shared.users_of(&shared.process)).arg(user_id).ignore();
        } else {
            pipe.cmd("ZREM").arg(&key).arg(&shared.process).ignore();
            pipe.cmd("ZCARD").arg(&key);
            pipe.cmd("SREM").arg(shared.users_of(&shared.process)).arg(user_id).ignore();
        }
        match shared.run::<(i64,)>(&pipe).await {
            // Online: nobody else held it before; offline: nobody holds it now.
            Some((others,)) => others == 0,
            None => true,
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Renews this process's entries (Redis only), and takes over the users of processes that
    /// stopped renewing theirs: those of them now offline everywhere are returned, for someone
    /// to tell (each dead process is claimed by one process alone).
    async fn heartbeat(&self) -> Vec<i64> {
        let Some(shared) = &self.redis else { return Vec::new() };
        let users: Vec<i64> = self.local().iter().copied().collect();
        let now = Self::now_ms();
        let lapse = now + self.ttl_ms();
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD").arg(shared.processes()).arg(lapse).arg(&shared.process).ignore();
        pipe.cmd("PEXPIRE").arg(shared.users_of(&shared.process)).arg(self.ttl_ms() * 3).ignore();
        pipe.cmd("ZRANGEBYSCORE").arg(shared.processes()).arg("-inf").arg(now);
        let (dead,): (Vec<String>,) = shared.run(&pipe).await.unwrap_or_default();
        for batch in users.chunks(500) {
            let mut pipe = redis::pipe();
            for id in batch {
                let key = shared.key(*id);
                pipe.cmd("ZADD").arg(&key).arg(lapse).arg(&shared.process).ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(self.ttl_ms() * 2).ignore();
            }
            let _: Option<()> = shared.run(&pipe).await;
        }
        let mut orphans = Vec::new();
        for process in dead {
            let mut claim = redis::pipe();
            claim.cmd("ZREM").arg(shared.processes()).arg(&process);
            let Some((claimed,)) = shared.run::<(i64,)>(&claim).await else { continue };
            if claimed == 0 {
                continue; // Another process took it.
            }
            let mut take = redis::pipe();
            take.atomic();
            take.cmd("SMEMBERS").arg(shared.users_of(&process));
            take.cmd("DEL").arg(shared.users_of(&process)).ignore();
            if let Some((users,)) = shared.run::<(Vec<i64>,)>(&take).await {
                tracing::info!(process, users = users.len(), "presence: a process stopped renewing; its users leave");
                // Its entries are void now, even those that have not lapsed yet (a user who came
                // online there after its last heartbeat).
                for batch in users.chunks(500) {
                    let mut void = redis::pipe();
                    for id in batch {
                        void.cmd("ZREM").arg(shared.key(*id)).arg(&process).ignore();
                    }
                    let _: Option<()> = shared.run(&void).await;
                }
                orphans.extend(users);
            }
        }
        if orphans.is_empty() {
            return orphans;
        }
        let online = self.online(&orphans).await;
        orphans.retain(|id| !online.contains(id));
        orphans
    }

    /// This process leaves the shared presence (at shutdown, after its users left).
    async fn leave(&self) {
        let Some(shared) = &self.redis else { return };
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(shared.processes()).arg(&shared.process).ignore();
        pipe.cmd("DEL").arg(shared.users_of(&shared.process)).ignore();
        let _: Option<()> = shared.run(&pipe).await;
    }
}

impl Shared {
    fn key(&self, user_id: i64) -> String {
        format!("{}:{user_id}", self.prefix)
    }

    /// The live processes, scored by when each one's heartbeat lapses.
    fn processes(&self) -> String {
        format!("{}:processes", self.prefix)
    }

    /// The users holding sockets on `process`.
    fn users_of(&self, process: &str) -> String {
        format!("{}:process:{process}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(REDIS_TIMEOUT * 2, pipe.query_async(&mut conn)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "presence: Redis failed");
                None
            }
            Err(_) => {
                tracing::warn!("presence: Redis timed out");
                None
            }
        }
    }
}

/// Applies the transitions of this process's sockets in order, and renews its presence every
/// third of the TTL, until `shutdown`; then its users leave at once (their sockets are closing),
/// rather than lingering online for a TTL in Redis.
pub async fn run(
    state: Arc<AppState>,
    mut transitions: mpsc::UnboundedReceiver<Transition>,
    shutdown: CancellationToken,
) {
    let every = state.presence.ttl / 3;
    // The first tick is at once: the process is listed before any of its users can be.
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            transition = transitions.recv() => {
                let Some(transition) = transition else { return };
                if let Err(err) = changed(&state, transition).await {
                    tracing::warn!(error = %err, ?transition, "presence change not recorded");
                }
            }
            _ = ticker.tick() => {
                for user_id in state.presence.heartbeat().await {
                    if let Err(err) = announce(&state.db, state.bus.as_ref(), user_id, false).await {
                        tracing::warn!(error = %err, user_id, "presence change not recorded");
                    }
                }
            }
            _ = shutdown.cancelled() => {
                let users: Vec<i64> = state.presence.local().iter().copied().collect();
                for user_id in users {
                    if let Err(err) = changed(&state, Transition::Offline(user_id)).await {
                        tracing::warn!(error = %err, user_id, "presence change not recorded at shutdown");
                    }
                }
                state.presence.leave().await;
                return;
            }
        }
    }
}

async fn changed(state: &AppState, transition: Transition) -> Result<(), DbErr> {
    if !state.presence.apply(transition).await {
        return Ok(());
    }
    match transition {
        Transition::Online(id) => announce(&state.db, state.bus.as_ref(), id, true).await,
        Transition::Offline(id) => announce(&state.db, state.bus.as_ref(), id, false).await,
    }
}

/// A user came online or went offline everywhere: their last-seen time, and `PresenceChanged`
/// to those who share a room with them.
async fn announce(db: &impl ConnectionTrait, bus: &dyn EventBus, user_id: i64, online: bool) -> Result<(), DbErr> {
    let now = Utc::now().trunc_subsecs(6);
    user_presence::Entity::insert(user_presence::ActiveModel { user_id: Set(user_id), last_seen: Set(now) })
        .on_conflict(
            OnConflict::column(user_presence::Column::UserId).update_column(user_presence::Column::LastSeen).to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    let username: Option<String> =
        user::Entity::find_by_id(user_id).select_only().column(user::Column::Username).into_tuple().one(db).await?;
    let Some(username) = username else { return Ok(()) };
    let recipients = recipients(db, user_id).await?;
    if recipients.is_empty() {
        return Ok(());
    }
    let last_seen = (!online).then_some(now);
    let event = PresenceEvent { user_id, username, online, last_seen, recipients };
    bus.publish(ChatEvent::Presence(event)).await;
    Ok(())
}

/// Those who share a room with `user_id`, except those `user_id` blocked, ascending.
async fn recipients(db: &impl ConnectionTrait, user_id: i64) -> Result<Vec<i64>, DbErr> {
    let rooms = sea_orm::sea_query::Query::select()
        .column(room_member::Column::RoomId)
        .from(room_member::Entity)
        .and_where(sea_orm::sea_query::Expr::col(room_member::Column::UserId).eq(user_id))
        .to_owned();
    let mut others: Vec<i64> = room_member::Entity::find()
        .select_only()
        .column(room_member::Column::UserId)
        .distinct()
        .filter(room_member::Column::RoomId.in_subquery(rooms))
        .filter(room_member::Column::UserId.ne(user_id))
        .into_tuple()
        .all(db)
        .await?;
    let blocked = crate::service::blocks::blocked_of(db, user_id).await?;
    others.retain(|id| !blocked.contains(id));
    others.sort_unstable();
    Ok(others)
}

/// `online` and `lastSeen` of users as `viewer` sees them: nothing of those who blocked the
/// viewer. One statement each for blocks and last-seen times, one Redis round trip, whatever
/// the number of users.
pub async fn seen_by(
    db: &impl ConnectionTrait,
    presence: &Presence,
    viewer: i64,
    user_ids: &[i64],
) -> Result<HashMap<i64, (bool, Option<DateTime<Utc>>)>, DbErr> {
    let hidden = crate::service::blocks::blocked_by(db, viewer, user_ids).await?;
    let visible: Vec<i64> = user_ids.iter().copied().filter(|id| !hidden.contains(id)).collect();
    if visible.is_empty() {
        return Ok(user_ids.iter().map(|id| (*id, (false, None))).collect());
    }
    let online = presence.online(&visible).await;
    let seen: Vec<(i64, DateTime<Utc>)> = user_presence::Entity::find()
        .select_only()
        .column(user_presence::Column::UserId)
        .column(user_presence::Column::LastSeen)
        .filter(user_presence::Column::UserId.is_in(visible.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    let seen: HashMap<i64, DateTime<Utc>> = seen.into_iter().collect();
    let now = Utc::now().trunc_subsecs(6);
    Ok(user_ids
        .iter()
        .map(|id| {
            let answer = if hidden.contains(id) {
                (false, None)
            } else if online.contains(id) {
                // Online: seen now.
                (true, Some(now))
            } else {
                (false, seen.get(id).copied())
            };
            (*id, answer)
        })
        .collect())
}
