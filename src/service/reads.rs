//! Read state: each member's read marker per room (the newest message they have read, moved
//! forward only) and the unread counts derived from it.
//!
//! Unread are the messages of others, not deleted, after the marker (every one of them when
//! there is no marker yet). Counts for any number of rooms take one statement.

use std::collections::HashMap;

use entity::{chat_room, message, read_marker, user};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, QueryStatementBuilder};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set};

use chrono::{SubsecRound, Utc};

use crate::bus::Change;
use crate::error::{AppError, AppResult};
use crate::service::chat::room_of_member;
use crate::service::events;
use crate::state::AppState;

/// Moves `me`'s marker in `room_name` to `message_id` (a message of that room), unless it is
/// already there or further. Returns the room and whether the marker moved.
pub async fn mark_read(
    state: &AppState,
    me: &user::Model,
    room_name: &str,
    message_id: i64,
) -> AppResult<(chat_room::Model, bool)> {
    let room = room_of_member(&state.db, me.id, room_name).await?;
    let in_room: Option<i64> = message::Entity::find_by_id(message_id)
        .select_only()
        .column(message::Column::Id)
        .filter(message::Column::RoomId.eq(room.id))
        .into_tuple()
        .one(&state.db)
        .await?;
    if in_room.is_none() {
        return Err(AppError::NotFound);
    }
    let info = events::room_info(&state.db, room.id).await?;
    let now = Utc::now().trunc_subsecs(6);
    let (room_id, user_id) = (room.id, me.id);
    let seq = state
        .writer
        .write(Box::new(move |txn| {
            Box::pin(async move {
                // One statement decides, also against a concurrent mark: insert, or move
                // forward only.
                let moved = read_marker::Entity::insert(read_marker::ActiveModel {
                    room_id: Set(room_id),
                    user_id: Set(user_id),
                    message_id: Set(message_id),
                })
                .on_conflict(
                    OnConflict::columns([read_marker::Column::RoomId, read_marker::Column::UserId])
                        .update_column(read_marker::Column::MessageId)
                        .action_and_where(
                            Expr::col((read_marker::Entity, read_marker::Column::MessageId))
                                .lt(Expr::col((Alias::new("excluded"), read_marker::Column::MessageId))),
                        )
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
                if moved == 0 {
                    return Ok::<_, AppError>(None);
                }
                let what =
                    events::Record { message_id: Some(message_id), user_id: Some(user_id), ..Default::default() };
                Ok(Some(events::record(txn, room_id, events::READ, what, now).await?))
            })
        }))
        .await?;
    if let Some(seq) = seq {
        let change = Change::ReadMarker { message_id, user_id: me.id, username: me.username.clone() };
        events::publish(state.bus.as_ref(), info, seq, change).await;
    }
    Ok((room, seq.is_some()))
}

/// The marker of `user_id` in each of `room_ids` that has one.
pub async fn markers(db: &impl ConnectionTrait, user_id: i64, room_ids: &[i64]) -> Result<HashMap<i64, i64>, DbErr> {
    let rows: Vec<(i64, i64)> = read_marker::Entity::find()
        .select_only()
        .column(read_marker::Column::RoomId)
        .column(read_marker::Column::MessageId)
        .filter(read_marker::Column::UserId.eq(user_id))
        .filter(read_marker::Column::RoomId.is_in(room_ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Unread messages of `user_id` per room, in one statement; `room_ids: None` means every room
/// (for the total). Rooms with nothing unread are absent.
pub async fn unread_counts(
    db: &impl ConnectionTrait,
    user_id: i64,
    room_ids: Option<&[i64]>,
) -> Result<HashMap<i64, i64>, DbErr> {
    let m = Alias::new("m");
    let marker = Query::select()
        .column(read_marker::Column::MessageId)
        .from(read_marker::Entity)
        .and_where(
            Expr::col((read_marker::Entity, read_marker::Column::RoomId)).equals((m.clone(), message::Column::RoomId)),
        )
        .and_where(Expr::col((read_marker::Entity, read_marker::Column::UserId)).eq(user_id))
        .to_owned();
    let mut query = Query::select();
    query
        .column((m.clone(), message::Column::RoomId))
        .expr(Expr::col((m.clone(), message::Column::Id)).count())
        .from_as(message::Entity, m.clone())
        .and_where(Expr::col((m.clone(), message::Column::AuthorId)).ne(user_id))
        .and_where(Expr::col((m.clone(), message::Column::Deleted)).eq(false))
        .and_where(
            Expr::col((m.clone(), message::Column::Id)).gt(Expr::SubQuery(
                None,
                Box::new(marker.into_sub_query_statement()),
            )
            .if_null(0)),
        )
        .group_by_col((m.clone(), message::Column::RoomId));
    match room_ids {
        Some(ids) => {
            query.and_where(Expr::col((m.clone(), message::Column::RoomId)).is_in(ids.iter().copied()));
        }
        None => {
            let mine = Query::select()
                .column(entity::room_member::Column::RoomId)
                .from(entity::room_member::Entity)
                .and_where(Expr::col(entity::room_member::Column::UserId).eq(user_id))
                .to_owned();
            query.and_where(Expr::col((m.clone(), message::Column::RoomId)).in_subquery(mine));
        }
    }
    let rows = db.query_all(&query).await?;
    rows.iter().map(|row| Ok((row.try_get_by_index::<i64>(0)?, row.try_get_by_index::<i64>(1)?))).collect()
}

/// Unread messages of `user_id` across all their rooms.
pub async fn unread_total(db: &impl ConnectionTrait, user_id: i64) -> AppResult<i64> {
    Ok(unread_counts(db, user_id, None).await?.values().sum())
}
