//! Stored chat events other than messages: an edit, a deletion, a reaction change or a read
//! marker move takes the room's next sequence number in its own write transaction (the same
//! `chat_rooms.last_seq` a message takes, so the room's row lock — SQLite's one writer — orders
//! them with the messages in commit order) and is recorded in `room_events`. After commit it
//! is published on the bus. Live feeds resume and fill gaps from `messages` and `room_events`
//! together (`service::live`).

use chrono::{DateTime, Utc};
use entity::{chat_room, room_event};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QuerySelect, Set};

use crate::bus::{Change, ChangeEvent, ChatEvent, EventBus, RoomInfo};
use crate::error::{AppError, AppResult};

/// The kinds of `room_events.kind`.
pub const EDITED: &str = "edited";
pub const DELETED: &str = "deleted";
pub const REACTION: &str = "reaction";
pub const READ: &str = "read";

/// Takes the next sequence number of `room_id` (locking its row until commit on PostgreSQL).
pub async fn next_seq(txn: &impl ConnectionTrait, room_id: i64) -> AppResult<i64> {
    let next = Query::update()
        .table(chat_room::Entity)
        .value(chat_room::Column::LastSeq, Expr::col(chat_room::Column::LastSeq).add(1))
        .and_where(chat_room::Column::Id.eq(room_id))
        .returning_col(chat_room::Column::LastSeq)
        .to_owned();
    let row = txn.query_one(&next).await?.ok_or(AppError::NotFound)?;
    Ok(row.try_get_by_index(0)?)
}

/// What a change records besides its kind.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub message_id: Option<i64>,
    pub user_id: Option<i64>,
    pub emoji: Option<String>,
    pub added: Option<bool>,
}

/// Inside the change's write transaction: its place in the room, recorded. Returns the place.
pub async fn record(
    txn: &impl ConnectionTrait,
    room_id: i64,
    kind: &str,
    what: Record,
    now: DateTime<Utc>,
) -> AppResult<i64> {
    let seq = next_seq(txn, room_id).await?;
    room_event::Entity::insert(room_event::ActiveModel {
        room_id: Set(room_id),
        seq: Set(seq),
        kind: Set(kind.to_owned()),
        message_id: Set(what.message_id),
        user_id: Set(what.user_id),
        emoji: Set(what.emoji),
        added: Set(what.added),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await
    .map_err(AppError::from)?;
    Ok(seq)
}

/// The room of `room_id` as events carry it (name and members).
pub async fn room_info(db: &impl ConnectionTrait, room_id: i64) -> Result<RoomInfo, DbErr> {
    let name: Option<String> = chat_room::Entity::find_by_id(room_id)
        .select_only()
        .column(chat_room::Column::Name)
        .into_tuple()
        .one(db)
        .await?;
    let member_ids = crate::service::chat::member_ids(db, room_id).await?;
    Ok(RoomInfo { id: room_id, name: name.unwrap_or_default(), member_ids })
}

/// Publishes a committed change at `room_seq` of `room`.
pub async fn publish(bus: &dyn EventBus, room: RoomInfo, room_seq: i64, change: Change) {
    let event = ChangeEvent { room_id: room.id, room_seq, room_name: room.name, member_ids: room.member_ids, change };
    bus.publish(ChatEvent::Change(event)).await;
}
