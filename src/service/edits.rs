//! Editing and deleting a message, by its author only. A deleted message keeps its place (its
//! id and timestamp) but loses its content and reactions, in the database too.

use chrono::{SubsecRound, Utc};
use entity::{message, reaction, room_member, user};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::bus::Change;
use crate::domain;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::service::events;
use crate::state::AppState;

/// Message `id` if `user_id` is a member of its room; otherwise it does not exist for them.
pub async fn message_of_member(db: &impl ConnectionTrait, user_id: i64, id: i64) -> AppResult<message::Model> {
    let rooms = Query::select()
        .column(room_member::Column::RoomId)
        .from(room_member::Entity)
        .and_where(Expr::col(room_member::Column::UserId).eq(user_id))
        .to_owned();
    message::Entity::find_by_id(id)
        .filter(message::Column::RoomId.in_subquery(rooms))
        .one(db)
        .await?
        .ok_or(AppError::NotFound)
}

/// A live (not deleted) message of `me`'s: NOT_FOUND when gone or hidden, FORBIDDEN when
/// someone else wrote it.
async fn own_message(db: &impl ConnectionTrait, me: &user::Model, id: i64) -> AppResult<message::Model> {
    let found = message_of_member(db, me.id, id).await?;
    if found.deleted {
        return Err(AppError::NotFound);
    }
    if found.author_id != me.id {
        return Err(AppError::Forbidden);
    }
    Ok(found)
}

/// Replaces the content of `me`'s message `id` (validated as a new message is); members see
/// `MessageEdited`.
pub async fn edit_message(state: &AppState, me: &user::Model, id: i64, content: &str) -> AppResult<message::Model> {
    let content = domain::clean_text(content, domain::MESSAGE_MAX, false).map_err(|problems| {
        let mut errors = FieldErrors::new();
        for problem in problems {
            errors.add("content", problem);
        }
        AppError::Invalid(errors)
    })?;
    let found = own_message(&state.db, me, id).await?;
    let room = events::room_info(&state.db, found.room_id).await?;
    let now = Utc::now().trunc_subsecs(6);
    let (room_id, new_content) = (found.room_id, content.clone());
    let seq = state
        .writer
        .write(Box::new(move |txn| {
            Box::pin(async move {
                let updated = message::Entity::update_many()
                    .col_expr(message::Column::Content, Expr::value(new_content))
                    .col_expr(message::Column::EditedAt, Expr::value(Some(now)))
                    .filter(message::Column::Id.eq(id))
                    .filter(message::Column::Deleted.eq(false))
                    .exec(txn)
                    .await?;
                if updated.rows_affected == 0 {
                    // Deleted meanwhile.
                    return Err(AppError::NotFound);
                }
                let what = events::Record { message_id: Some(id), ..events::Record::default() };
                events::record(txn, room_id, events::EDITED, what, now).await
            })
        }))
        .await?;
    let change = Change::Edited { message_id: id, content: content.clone(), edited_at: now };
    events::publish(state.bus.as_ref(), room, seq, change).await;
    Ok(message::Model { content, edited_at: Some(now), ..found })
}

/// Deletes `me`'s message `id`: its content and reactions are gone, its place stays; members
/// see `MessageDeleted`. False when it was deleted already.
pub async fn delete_message(state: &AppState, me: &user::Model, id: i64) -> AppResult<(message::Model, bool)> {
    let found = message_of_member(&state.db, me.id, id).await?;
    if found.author_id != me.id {
        return Err(AppError::Forbidden);
    }
    if found.deleted {
        return Ok((found, false));
    }
    let room = events::room_info(&state.db, found.room_id).await?;
    let now = Utc::now().trunc_subsecs(6);
    let room_id = found.room_id;
    let seq = state
        .writer
        .write(Box::new(move |txn| {
            Box::pin(async move {
                let updated = message::Entity::update_many()
                    .col_expr(message::Column::Content, Expr::value(String::new()))
                    .col_expr(message::Column::Deleted, Expr::value(true))
                    .filter(message::Column::Id.eq(id))
                    .filter(message::Column::Deleted.eq(false))
                    .exec(txn)
                    .await?;
                if updated.rows_affected == 0 {
                    // Deleted meanwhile, by another request.
                    return Ok::<_, AppError>(None);
                }
                reaction::Entity::delete_many().filter(reaction::Column::MessageId.eq(id)).exec(txn).await?;
                let what = events::Record { message_id: Some(id), ..events::Record::default() };
                Ok(Some(events::record(txn, room_id, events::DELETED, what, now).await?))
            })
        }))
        .await?;
    let deleted = seq.is_some();
    if let Some(seq) = seq {
        events::publish(state.bus.as_ref(), room, seq, Change::Deleted { message_id: id }).await;
    }
    Ok((message::Model { content: String::new(), deleted: true, ..found }, deleted))
}
