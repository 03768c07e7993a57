//! One-to-one chat: opening the room of a pair, listing a member's rooms, message history and
//! sending a message (stored, then published on the bus for live subscribers).
//!
//! A room belongs to exactly two users and exists once per pair: the unique `pair_key` index
//! decides races, never a check-then-insert. For anyone else a room does not exist
//! ([`AppError::NotFound`]), as in the legacy API.

use std::collections::HashMap;

use chrono::{SubsecRound, Utc};
use entity::{chat_room, message, room_member, user};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, RelationTrait, Set,
};

use crate::bus::{ChatEvent, EventBus, MessageEvent, RoomCreatedEvent, RoomInfo};
use crate::domain::{self, messages};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::service::page::{DEFAULT_PAGE, Page, Total, page_size};
use crate::state::AppState;

/// `"<lower id>:<higher id>"`, the same for both directions.
pub fn pair_key(a: i64, b: i64) -> String {
    format!("{}:{}", std::cmp::min(a, b), std::cmp::max(a, b))
}

/// The two usernames sorted by code point (byte order of UTF-8 is code point order) and
/// joined by `_`.
pub fn base_name(a: &str, b: &str) -> String {
    if a <= b { format!("{a}_{b}") } else { format!("{b}_{a}") }
}

/// `base`, `base_2`, `base_3`, ...: the lowest one not in `taken`.
fn first_free_name(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|name| name == base) {
        return base.to_owned();
    }
    let prefix = format!("{base}_");
    let mut suffixes: Vec<u64> = taken
        .iter()
        .filter_map(|name| name.strip_prefix(&prefix))
        // Only canonical numbers: "07" is not a suffix we would have written.
        .filter(|rest| !rest.starts_with('0'))
        .filter_map(|rest| rest.parse().ok())
        .collect();
    suffixes.sort_unstable();
    let mut candidate = 2;
    for suffix in suffixes {
        if suffix == candidate {
            candidate += 1;
        } else if suffix > candidate {
            break;
        }
    }
    format!("{base}_{candidate}")
}

/// The names in use that `base` or one of its suffixed forms could collide with.
async fn names_like(db: &impl ConnectionTrait, base: &str) -> Result<Vec<String>, DbErr> {
    let escaped = base.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    // LIKE is case-insensitive on SQLite: a superset, filtered exactly by `first_free_name`.
    chat_room::Entity::find()
        .select_only()
        .column(chat_room::Column::Name)
        .filter(
            chat_room::Column::Name
                .eq(base)
                .or(Expr::col(chat_room::Column::Name).like(LikeExpr::new(format!("{escaped}\\_%")).escape('\\'))),
        )
        .into_tuple()
        .all(db)
        .await
}

async fn room_of_pair(db: &impl ConnectionTrait, key: &str) -> Result<Option<chat_room::Model>, DbErr> {
    chat_room::Entity::find().filter(chat_room::Column::PairKey.eq(key)).one(db).await
}

/// Inserts the room and its two members in one transaction of its own, so that a unique
/// violation (which aborts a PostgreSQL transaction) leaves nothing behind.
async fn insert_room(
    db: &DatabaseConnection,
    key: &str,
    name: &str,
    members: [i64; 2],
) -> Result<chat_room::Model, DbErr> {
    let now = Utc::now().trunc_subsecs(6);
    let room = chat_room::ActiveModel {
        name: Set(name.to_owned()),
        pair_key: Set(key.to_owned()),
        created_at: Set(now),
        last_seq: Set(0),
        last_activity_at: Set(now),
        ..Default::default()
    };
    crate::db::write(
        db,
        Box::new(move |txn| {
            Box::pin(async move {
                let room = room.insert(txn).await?;
                room_member::Entity::insert_many(
                    members.map(|user_id| room_member::ActiveModel { room_id: Set(room.id), user_id: Set(user_id) }),
                )
                .exec_without_returning(txn)
                .await?;
                Ok::<_, DbErr>(room)
            })
        }),
    )
    .await
}

/// Opens the room of `me` and `recipient` (exact username), or returns the existing one.
/// `true` when this call created it.
pub async fn open_room(
    db: &DatabaseConnection,
    bus: &dyn EventBus,
    me: &user::Model,
    recipient: &str,
) -> AppResult<(chat_room::Model, bool)> {
    if recipient.is_empty() {
        // DRF's relational fields turn `""` into `None`, hence "null" for an empty recipient.
        return Err(FieldErrors::single("recipient", messages::NULL));
    }
    if !domain::storable(recipient) {
        return Err(FieldErrors::single("recipient", messages::unknown_username(recipient)));
    }
    let other = user::Entity::find()
        .filter(user::Column::Username.eq(recipient))
        .one(db)
        .await?
        .ok_or_else(|| FieldErrors::single("recipient", messages::unknown_username(recipient)))?;
    if other.id == me.id {
        return Err(FieldErrors::single("recipient", messages::SELF_CHAT));
    }
    crate::service::blocks::ensure_not_blocked(db, me.id, &[other.id]).await?;
    let key = pair_key(me.id, other.id);
    let base = base_name(&me.username, &other.username);
    // Each lost race means another room now exists (ours or another pair's), so this ends;
    // the bound only guards against a bug turning it into a busy loop.
    for _ in 0..100 {
        if let Some(room) = room_of_pair(db, &key).await? {
            return Ok((room, false));
        }
        let name = first_free_name(&base, &names_like(db, &base).await?);
        match insert_room(db, &key, &name, [me.id, other.id]).await {
            Ok(room) => {
                // Feeds of every room of a member (rooms created later included) learn of it.
                let mut member_ids = vec![me.id, other.id];
                member_ids.sort_unstable();
                let created = RoomCreatedEvent { room_id: room.id, room_name: room.name.clone(), member_ids };
                bus.publish(ChatEvent::RoomCreated(created)).await;
                return Ok((room, true));
            }
            // The pair (load the winner's room) or the name (try the next suffix) is taken now.
            Err(err) if crate::db::is_unique_violation(&err) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(AppError::internal(anyhow::anyhow!("could not name the room {base}")))
}

/// The rooms of a user, most recent activity first (ties: the newer room first).
pub async fn rooms_of(db: &impl ConnectionTrait, user_id: i64, order: RoomOrder) -> AppResult<Vec<chat_room::Model>> {
    let query = chat_room::Entity::find()
        .join(sea_orm::JoinType::InnerJoin, chat_room::Relation::RoomMember.def())
        .filter(room_member::Column::UserId.eq(user_id));
    let query = match order {
        RoomOrder::Activity => {
            query.order_by_desc(chat_room::Column::LastActivityAt).order_by_desc(chat_room::Column::Id)
        }
        RoomOrder::Created => query.order_by_asc(chat_room::Column::Id),
    };
    Ok(query.all(db).await?)
}

/// How a user's rooms are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomOrder {
    /// Most recent activity (last message, else creation) first; ties: the newer room first.
    Activity,
    /// Oldest room first (the legacy list of endpoint 7).
    Created,
}

/// The room called `name` if `user_id` is a member; otherwise it does not exist for them.
pub async fn room_of_member(db: &impl ConnectionTrait, user_id: i64, name: &str) -> AppResult<chat_room::Model> {
    if !domain::storable(name) {
        return Err(AppError::NotFound);
    }
    chat_room::Entity::find()
        .join(sea_orm::JoinType::InnerJoin, chat_room::Relation::RoomMember.def())
        .filter(chat_room::Column::Name.eq(name))
        .filter(room_member::Column::UserId.eq(user_id))
        .one(db)
        .await?
        .ok_or(AppError::NotFound)
}

/// Which page of a room's history: Relay's arguments, cursors already decoded to message ids.
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryPage {
    pub first: Option<i32>,
    pub after: Option<i64>,
    pub last: Option<i32>,
    pub before: Option<i64>,
    /// Leave deleted messages out (the legacy history), instead of keeping their place.
    pub hide_deleted: bool,
}

impl HistoryPage {
    /// The page's size and direction (`true`: forwards from the oldest), checked.
    pub fn shape(&self) -> AppResult<(u64, bool)> {
        Ok(match (self.first, self.last) {
            (Some(_), Some(_)) => return Err(FieldErrors::single("last", messages::FIRST_AND_LAST)),
            (Some(first), None) => (page_size("first", Some(first))?, true),
            (None, Some(last)) => (page_size("last", Some(last))?, false),
            (None, None) => (DEFAULT_PAGE, self.after.is_some() && self.before.is_none()),
        })
    }
}

async fn any_message(
    db: &impl ConnectionTrait,
    room_id: i64,
    hide_deleted: bool,
    condition: sea_orm::sea_query::SimpleExpr,
) -> Result<bool, DbErr> {
    let mut query = message::Entity::find().filter(message::Column::RoomId.eq(room_id)).filter(condition);
    if hide_deleted {
        query = query.filter(message::Column::Deleted.eq(false));
    }
    let found: Option<i64> = query.select_only().column(message::Column::Id).limit(1).into_tuple().one(db).await?;
    Ok(found.is_some())
}

/// A page of a room's messages, oldest first. `first`/`after` go forwards from the oldest,
/// `last`/`before` backwards from the newest; with neither `first` nor `last`, `after` alone
/// goes forwards and anything else gives the newest page. Both flags of the page are exact.
pub async fn history(
    db: &impl ConnectionTrait,
    room_id: i64,
    page: HistoryPage,
    total: Total,
) -> AppResult<Page<message::Model>> {
    let (limit, forwards) = page.shape()?;
    let in_room = || {
        let query = message::Entity::find().filter(message::Column::RoomId.eq(room_id));
        if page.hide_deleted { query.filter(message::Column::Deleted.eq(false)) } else { query }
    };
    let total_count = total.of(&in_room(), db).await?;
    let mut query = in_room();
    if let Some(after) = page.after {
        query = query.filter(message::Column::Id.gt(after));
    }
    if let Some(before) = page.before {
        query = query.filter(message::Column::Id.lt(before));
    }
    let query =
        if forwards { query.order_by_asc(message::Column::Id) } else { query.order_by_desc(message::Column::Id) };
    let mut items = query.limit(limit + 1).all(db).await?;
    let more = items.len() as u64 > limit;
    items.truncate(limit as usize);
    if !forwards {
        items.reverse();
    }
    // Past the end the page was cut at, there is more when the fetch ran over; past a cursor,
    // when anything lies at or beyond it (asked only when the answer is not known yet).
    let (mut has_next, mut has_previous) = if forwards { (more, false) } else { (false, more) };
    if !has_next && let Some(before) = page.before {
        has_next = any_message(db, room_id, page.hide_deleted, message::Column::Id.gte(before)).await?;
    }
    if !has_previous && let Some(after) = page.after {
        has_previous = any_message(db, room_id, page.hide_deleted, message::Column::Id.lte(after)).await?;
    }
    Ok(Page { items, has_next, has_previous, total_count })
}

/// Stores a message of `me` in the room `room_name` and publishes it to live subscribers.
///
/// The room's row is updated first (`last_seq + 1`, returning it): on PostgreSQL that row lock
/// serialises the sends of a room until commit (on SQLite the one writer does), so `room_seq`
/// order is commit order, which is what lets subscribers fill gaps from the database. One read
/// ([`room_to_write`]: the room, its members, their blocks), then the write
/// ([`store_message`]). The event is published only after commit.
pub async fn send_message(
    state: &AppState,
    me: &user::Model,
    room_name: &str,
    content: &str,
) -> AppResult<message::Model> {
    state.message_rate.take(me.id).map_err(AppError::Throttled)?;
    // DRF validates the body before it looks the room up.
    let content =
        domain::clean_text(content, domain::MESSAGE_MAX, false).map_err(|problems| invalid("content", problems))?;
    let room = room_to_write(&state.db, me.id, room_name).await?;
    let stored = store_message(state, NewMessage { room_id: room.id, author_id: me.id, content }).await?;
    crate::metrics::chat_message_stored();
    let event = MessageEvent::stored(stored.clone(), &room, me.username.clone());
    state.bus.publish(ChatEvent::Message(event)).await;
    Ok(stored)
}

/// A message about to be stored.
#[derive(Clone)]
struct NewMessage {
    room_id: i64,
    author_id: i64,
    content: String,
}

/// Writes `new` with the room's next sequence number, if its author is still active.
///
/// Two statements, the room's update (`last_seq + 1`, which also checks the author) and the
/// insert. On PostgreSQL they are ONE statement in autocommit (the update as a CTE the insert
/// selects from): the room's row lock is held for one round trip, not for the four of
/// BEGIN/UPDATE/INSERT/COMMIT, which is what bounds a busy room's sends. SQLite has no
/// UPDATE in a CTE and one write lock: there concurrent sends share one transaction of the
/// writer ([`crate::db::Writer`]).
async fn store_message(state: &AppState, new: NewMessage) -> AppResult<message::Model> {
    use sea_orm::DbBackend;
    use sea_orm::sea_query::{Alias, CommonTableExpression, WithClause};
    let now = Utc::now().trunc_subsecs(6);
    let author_active = Query::select()
        .expr(Expr::val(1))
        .from(user::Entity)
        .and_where(user::Column::Id.eq(new.author_id))
        .and_where(user::Column::IsActive.eq(true))
        .to_owned();
    let next_seq = Query::update()
        .table(chat_room::Entity)
        .value(chat_room::Column::LastSeq, Expr::col(chat_room::Column::LastSeq).add(1))
        .value(chat_room::Column::LastActivityAt, now)
        .and_where(chat_room::Column::Id.eq(new.room_id))
        .and_where(Expr::exists(author_active))
        .returning_col(chat_room::Column::LastSeq)
        .to_owned();
    let columns = [
        message::Column::RoomId,
        message::Column::RoomSeq,
        message::Column::AuthorId,
        message::Column::Content,
        message::Column::Timestamp,
    ];
    let stored = move |id: i64, room_seq: i64, new: NewMessage| message::Model {
        id,
        room_id: new.room_id,
        room_seq,
        author_id: new.author_id,
        content: new.content,
        timestamp: now,
        edited_at: None,
        deleted: false,
    };

    if state.db.get_database_backend() == DbBackend::Postgres {
        let seq = Alias::new("next_seq");
        let select = Query::select()
            .expr(Expr::val(new.room_id))
            .column(chat_room::Column::LastSeq)
            .expr(Expr::val(new.author_id))
            .expr(Expr::val(new.content.as_str()))
            .expr(Expr::val(now))
            .from(seq.clone())
            .to_owned();
        let insert = Query::insert()
            .into_table(message::Entity)
            .columns(columns)
            .select_from(select)
            .map_err(|err| DbErr::Custom(err.to_string()))?
            .returning(Query::returning().columns([message::Column::Id, message::Column::RoomSeq]))
            .to_owned()
            .with(
                WithClause::new()
                    .cte(CommonTableExpression::new().table_name(seq).query(next_seq).to_owned())
                    .to_owned(),
            );
        let Some(row) = state.db.query_one(&insert).await? else {
            // Nothing updated: the author is no longer active (or the room is gone).
            ensure_author_active(&state.db, new.author_id).await?;
            return Err(AppError::NotFound);
        };
        let (id, room_seq): (i64, i64) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        return Ok(stored(id, room_seq, new));
    }

    state
        .writer
        .write_repeatable(Box::new(move |txn| {
            let (new, next_seq) = (new.clone(), next_seq.clone());
            Box::pin(async move {
                let Some(row) = txn.query_one(&next_seq).await? else {
                    ensure_author_active(txn, new.author_id).await?;
                    return Err(AppError::NotFound);
                };
                let room_seq: i64 = row.try_get_by_index(0)?;
                let insert = Query::insert()
                    .into_table(message::Entity)
                    .columns(columns)
                    .values_panic([
                        new.room_id.into(),
                        room_seq.into(),
                        new.author_id.into(),
                        new.content.as_str().into(),
                        now.into(),
                    ])
                    .returning_col(message::Column::Id)
                    .to_owned();
                let row = txn.query_one(&insert).await?.ok_or_else(|| DbErr::Custom("INSERT returned no id".into()))?;
                Ok::<_, AppError>(stored(row.try_get_by_index(0)?, room_seq, new))
            })
        }))
        .await
}

/// The room called `name` as a message of `user_id` to it needs it: its members, in ONE
/// statement (the room joined to the caller's membership, to every member and to their blocks
/// of the caller). NOT_FOUND unless `user_id` is a member; FORBIDDEN when another member has
/// blocked `user_id` (as [`crate::service::blocks::ensure_not_blocked`] decides).
pub async fn room_to_write(db: &impl ConnectionTrait, user_id: i64, name: &str) -> AppResult<RoomInfo> {
    use sea_orm::sea_query::{Alias, JoinType};
    if !domain::storable(name) {
        return Err(AppError::NotFound);
    }
    let (me, member, blocks) = (Alias::new("me"), Alias::new("member"), Alias::new("blocks_me"));
    let query = Query::select()
        .column((chat_room::Entity, chat_room::Column::Id))
        .column((chat_room::Entity, chat_room::Column::Name))
        .column((member.clone(), room_member::Column::UserId))
        .column((blocks.clone(), entity::block::Column::BlockerId))
        .from(chat_room::Entity)
        .join_as(
            JoinType::InnerJoin,
            room_member::Entity,
            me.clone(),
            Expr::col((me.clone(), room_member::Column::RoomId))
                .equals((chat_room::Entity, chat_room::Column::Id))
                .and(Expr::col((me, room_member::Column::UserId)).eq(user_id)),
        )
        .join_as(
            JoinType::InnerJoin,
            room_member::Entity,
            member.clone(),
            Expr::col((member.clone(), room_member::Column::RoomId)).equals((chat_room::Entity, chat_room::Column::Id)),
        )
        .join_as(
            JoinType::LeftJoin,
            entity::block::Entity,
            blocks.clone(),
            Expr::col((blocks.clone(), entity::block::Column::BlockerId))
                .equals((member.clone(), room_member::Column::UserId))
                .and(Expr::col((blocks, entity::block::Column::BlockedId)).eq(user_id)),
        )
        .and_where(Expr::col((chat_room::Entity, chat_room::Column::Name)).eq(name))
        .order_by((member, room_member::Column::UserId), sea_orm::Order::Asc)
        .to_owned();
    let rows = db.query_all(&query).await?;
    let Some(first) = rows.first() else { return Err(AppError::NotFound) };
    let (id, name): (i64, String) = (first.try_get_by_index(0)?, first.try_get_by_index(1)?);
    let mut member_ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let member: i64 = row.try_get_by_index(2)?;
        let blocker: Option<i64> = row.try_get_by_index(3)?;
        if blocker.is_some() && member != user_id {
            return Err(AppError::Forbidden);
        }
        member_ids.push(member);
    }
    Ok(RoomInfo { id, name, member_ids })
}

/// The author is still an active user when the message is stored. Sockets hold their user for
/// hours; one deactivated or deleted meanwhile (by any tool writing the database) loses its
/// sockets within seconds (`service::sessions::watch_owners`), and stores nothing before that.
async fn ensure_author_active(txn: &impl ConnectionTrait, author_id: i64) -> AppResult<()> {
    let active: Option<bool> =
        user::Entity::find_by_id(author_id).select_only().column(user::Column::IsActive).into_tuple().one(txn).await?;
    match active {
        Some(true) => Ok(()),
        Some(false) => Err(crate::auth::AuthError::UserInactive.into()),
        None => Err(crate::auth::AuthError::UserNotFound.into()),
    }
}

fn invalid(field: &str, problems: Vec<String>) -> AppError {
    let mut errors = FieldErrors::new();
    for problem in problems {
        errors.add(field, problem);
    }
    AppError::Invalid(errors)
}

/// The member ids of a room, ascending.
pub async fn member_ids(db: &impl ConnectionTrait, room_id: i64) -> Result<Vec<i64>, DbErr> {
    room_member::Entity::find()
        .select_only()
        .column(room_member::Column::UserId)
        .filter(room_member::Column::RoomId.eq(room_id))
        .order_by_asc(room_member::Column::UserId)
        .into_tuple()
        .all(db)
        .await
}

// Batched reads for the DataLoaders: one statement for any number of rooms.

/// The members of each room, ordered by user id.
pub async fn members_of(db: &impl ConnectionTrait, room_ids: &[i64]) -> Result<HashMap<i64, Vec<user::Model>>, DbErr> {
    let rows = room_member::Entity::find()
        .filter(room_member::Column::RoomId.is_in(room_ids.iter().copied()))
        .find_also_related(user::Entity)
        .order_by_asc(room_member::Column::UserId)
        .all(db)
        .await?;
    let mut members: HashMap<i64, Vec<user::Model>> = room_ids.iter().map(|id| (*id, Vec::new())).collect();
    for (membership, user) in rows {
        if let Some(user) = user {
            members.entry(membership.room_id).or_default().push(user);
        }
    }
    Ok(members)
}

/// The newest message of each room that has one.
pub async fn last_messages(db: &impl ConnectionTrait, room_ids: &[i64]) -> Result<HashMap<i64, message::Model>, DbErr> {
    let newest = Query::select()
        .expr(Expr::col(message::Column::Id).max())
        .from(message::Entity)
        .and_where(Expr::col(message::Column::RoomId).is_in(room_ids.iter().copied()))
        .group_by_col(message::Column::RoomId)
        .to_owned();
    let rows = message::Entity::find().filter(message::Column::Id.in_subquery(newest)).all(db).await?;
    Ok(rows.into_iter().map(|m| (m.room_id, m)).collect())
}

/// The same page of each room's history, without cursors (the newest `limit` messages, or with
/// `forwards` the oldest), in ONE statement for a list of rooms: a `UNION ALL` of one branch per
/// room, each reading the room's first `limit + 1` messages through the `(room_id, id)` index
/// (the extra one tells whether there is more) and, when `total` asks, counting the room's
/// messages. Unlike a window over the rooms' messages, no branch reads further back in history
/// than its page. SQLite allows 500 terms in a compound statement, so a list of more rooms than
/// [`ROOMS_PER_STATEMENT`] takes one statement per such batch. Pages come out as [`history`]
/// gives them, oldest first; a room without messages gets an empty page.
pub async fn first_pages(
    db: &impl ConnectionTrait,
    room_ids: &[i64],
    (limit, forwards): (u64, bool),
    hide_deleted: bool,
    total: Total,
) -> Result<HashMap<i64, Page<message::Model>>, DbErr> {
    use sea_orm::sea_query::{Alias, Asterisk, Order, SelectStatement, UnionType};
    use sea_orm::{FromQueryResult, Iterable};
    let order = if forwards { Order::Asc } else { Order::Desc };
    let only_visible = |query: &mut SelectStatement| {
        if hide_deleted {
            query.and_where(Expr::col(message::Column::Deleted).eq(false));
        }
    };
    let branch = |(n, &room): (usize, &i64)| {
        let mut page = Query::select();
        page.columns(message::Column::iter())
            .from(message::Entity)
            .and_where(Expr::col(message::Column::RoomId).eq(room))
            .order_by(message::Column::Id, order.clone())
            .limit(limit + 1);
        only_visible(&mut page);
        let mut branch = Query::select();
        branch.column(Asterisk).from_subquery(page.take(), Alias::new(format!("page{n}")));
        if total == Total::Count {
            let mut count = Query::select();
            count
                .expr(Expr::col(message::Column::Id).count())
                .from(message::Entity)
                .and_where(Expr::col(message::Column::RoomId).eq(room));
            only_visible(&mut count);
            branch.expr_as(Expr::SubQuery(None, Box::new(count.take().into())), Alias::new("room_total"));
        }
        branch.take()
    };
    let mut rows = Vec::new();
    for batch in room_ids.chunks(ROOMS_PER_STATEMENT) {
        let mut branches = batch.iter().enumerate().map(branch);
        let Some(mut query) = branches.next() else { continue };
        query.unions(branches.map(|b| (UnionType::All, b)));
        rows.extend(db.query_all(&query).await?);
    }
    let mut pages: HashMap<i64, Page<message::Model>> = room_ids
        .iter()
        .map(|&room| {
            let total_count = (total == Total::Count).then_some(0);
            (room, Page { items: Vec::new(), has_next: false, has_previous: false, total_count })
        })
        .collect();
    for row in rows {
        let message = message::Model::from_query_result(&row, "")?;
        let page = pages.entry(message.room_id).or_insert_with(|| Page {
            items: Vec::new(),
            has_next: false,
            has_previous: false,
            total_count: None,
        });
        if total == Total::Count {
            let count: i64 = row.try_get("", "room_total")?;
            page.total_count = Some(u64::try_from(count).unwrap_or(0));
        }
        page.items.push(message);
    }
    for page in pages.values_mut() {
        page.items.sort_by_key(|m| m.id);
        // Ascending by id: the extra row is the last one going forwards, the first going back.
        let more = page.items.len() as u64 > limit;
        if more {
            if forwards {
                page.items.pop();
            } else {
                page.items.remove(0);
            }
        }
        if forwards {
            page.has_next = more;
        } else {
            page.has_previous = more;
        }
    }
    Ok(pages)
}

/// Rooms read by one statement of [`first_pages`] (SQLite's limit on compound terms is 500).
pub const ROOMS_PER_STATEMENT: usize = 400;

/// Rooms by id.
pub async fn rooms_by_id(db: &impl ConnectionTrait, ids: &[i64]) -> Result<HashMap<i64, chat_room::Model>, DbErr> {
    let rows = chat_room::Entity::find().filter(chat_room::Column::Id.is_in(ids.iter().copied())).all(db).await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn names_sort_by_code_point() {
        assert_eq!(base_name("bob", "alice"), "alice_bob");
        assert_eq!(base_name("Zed", "adam"), "Zed_adam", "upper case sorts first");
        assert_eq!(base_name("émile", "zoe"), "zoe_émile", "non-ASCII after ASCII");
        assert_eq!(base_name("a_b", "c"), "a_b_c");
    }

    #[test]
    fn suffixes_fill_from_two() {
        assert_eq!(first_free_name("a_b_c", &names(&[])), "a_b_c");
        assert_eq!(first_free_name("a_b_c", &names(&["a_b_c"])), "a_b_c_2");
        assert_eq!(first_free_name("a_b_c", &names(&["a_b_c", "a_b_c_2"])), "a_b_c_3");
        assert_eq!(first_free_name("a_b_c", &names(&["a_b_c", "a_b_c_3"])), "a_b_c_2");
        // Other rooms that merely share the prefix do not count.
        assert_eq!(first_free_name("a_b", &names(&["a_b", "a_b_c", "a_b_02", "A_b_2"])), "a_b_2");
        assert_eq!(first_free_name("a", &names(&["a_2"])), "a");
    }

    #[test]
    fn pair_key_ignores_direction() {
        assert_eq!(pair_key(7, 3), "3:7");
        assert_eq!(pair_key(3, 7), "3:7");
    }
}
