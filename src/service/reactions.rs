//! Reactions: a member reacts to a message of their room with an emoji, at most once per emoji
//! (the primary key decides, also between concurrent requests). Deleted messages take none.

use std::collections::HashMap;

use chrono::{SubsecRound, Utc};
use entity::{message, reaction, user};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::bus::Change;
use crate::domain::messages::{self, BLANK};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::service::edits::message_of_member;
use crate::service::events;
use crate::state::AppState;

/// Longest emoji accepted, in characters (a family or flag sequence is several code points).
pub const EMOJI_MAX: usize = 16;

/// How many reacted to a message with one emoji, and whether the viewer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
    pub mine: bool,
}

/// The emoji, trimmed: one short token without spaces or control characters.
pub fn clean_emoji(raw: &str) -> AppResult<String> {
    let emoji = raw.trim();
    if emoji.is_empty() {
        return Err(FieldErrors::single("emoji", BLANK));
    }
    if emoji.chars().count() > EMOJI_MAX {
        return Err(FieldErrors::single("emoji", messages::too_long(EMOJI_MAX)));
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldErrors::single("emoji", messages::NOT_AN_EMOJI));
    }
    Ok(emoji.to_owned())
}

/// A message of `me`'s rooms that is not deleted.
async fn live_message(db: &impl ConnectionTrait, me: &user::Model, message_id: i64) -> AppResult<message::Model> {
    let found = message_of_member(db, me.id, message_id).await?;
    if found.deleted { Err(AppError::NotFound) } else { Ok(found) }
}

/// Adds `me`'s `emoji` to the message (nothing changes when it is there already); members see
/// `ReactionChanged`. Returns the message and whether a reaction was added.
pub async fn react(
    state: &AppState,
    me: &user::Model,
    message_id: i64,
    emoji: &str,
) -> AppResult<(message::Model, bool)> {
    change(state, me, message_id, emoji, true).await
}

/// Removes `me`'s `emoji` from the message (nothing changes when it is not there); members see
/// `ReactionChanged`. Returns the message and whether a reaction was removed.
pub async fn unreact(
    state: &AppState,
    me: &user::Model,
    message_id: i64,
    emoji: &str,
) -> AppResult<(message::Model, bool)> {
    change(state, me, message_id, emoji, false).await
}

/// Adds (`add`) or removes a reaction, and records and publishes the change when there is one.
async fn change(
    state: &AppState,
    me: &user::Model,
    message_id: i64,
    emoji: &str,
    add: bool,
) -> AppResult<(message::Model, bool)> {
    let emoji = clean_emoji(emoji)?;
    let found = live_message(&state.db, me, message_id).await?;
    let room = events::room_info(&state.db, found.room_id).await?;
    let now = Utc::now().trunc_subsecs(6);
    let (room_id, user_id, stored_emoji) = (found.room_id, me.id, emoji.clone());
    let seq = state
        .writer
        .write(Box::new(move |txn| {
            Box::pin(async move {
                let changed = if add {
                    let inserted = reaction::Entity::insert(reaction::ActiveModel {
                        message_id: Set(message_id),
                        emoji: Set(stored_emoji.clone()),
                        user_id: Set(user_id),
                        created_at: Set(now),
                    })
                    .on_conflict(
                        OnConflict::columns([
                            reaction::Column::MessageId,
                            reaction::Column::Emoji,
                            reaction::Column::UserId,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .exec_without_returning(txn)
                    .await;
                    match inserted {
                        Ok(rows) => rows > 0,
                        // Deleted meanwhile: the reaction's message is gone.
                        Err(err)
                            if matches!(err.sql_err(), Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))) =>
                        {
                            return Err(AppError::NotFound);
                        }
                        Err(err) => return Err(err.into()),
                    }
                } else {
                    let removed = reaction::Entity::delete_many()
                        .filter(reaction::Column::MessageId.eq(message_id))
                        .filter(reaction::Column::Emoji.eq(stored_emoji.clone()))
                        .filter(reaction::Column::UserId.eq(user_id))
                        .exec(txn)
                        .await?;
                    removed.rows_affected > 0
                };
                if !changed {
                    return Ok(None);
                }
                let what = events::Record {
                    message_id: Some(message_id),
                    user_id: Some(user_id),
                    emoji: Some(stored_emoji),
                    added: Some(add),
                };
                Ok(Some(events::record(txn, room_id, events::REACTION, what, now).await?))
            })
        }))
        .await?;
    if let Some(seq) = seq {
        let change = Change::Reaction { message_id, user_id: me.id, username: me.username.clone(), emoji, added: add };
        events::publish(state.bus.as_ref(), room, seq, change).await;
    }
    Ok((found, seq.is_some()))
}

/// The reactions of each message, as `viewer` sees them, in one statement: per emoji, in order
/// of first use. Messages without reactions are absent.
pub async fn counts(
    db: &impl ConnectionTrait,
    viewer: i64,
    message_ids: &[i64],
) -> Result<HashMap<i64, Vec<ReactionCount>>, DbErr> {
    let mine = Expr::case(Expr::col(reaction::Column::UserId).eq(viewer), 1).finally(0);
    let query = Query::select()
        .column(reaction::Column::MessageId)
        .column(reaction::Column::Emoji)
        .expr(Expr::col(reaction::Column::UserId).count())
        .expr(Expr::expr(mine).sum())
        .from(reaction::Entity)
        .and_where(Expr::col(reaction::Column::MessageId).is_in(message_ids.iter().copied()))
        .group_by_col(reaction::Column::MessageId)
        .group_by_col(reaction::Column::Emoji)
        .order_by_expr(Expr::col(reaction::Column::CreatedAt).min(), sea_orm::Order::Asc)
        .order_by(reaction::Column::Emoji, sea_orm::Order::Asc)
        .to_owned();
    let mut counts: HashMap<i64, Vec<ReactionCount>> = HashMap::new();
    for row in db.query_all(&query).await? {
        let message_id: i64 = row.try_get_by_index(0)?;
        let emoji: String = row.try_get_by_index(1)?;
        let count: i64 = row.try_get_by_index(2)?;
        let mine: i64 = row.try_get_by_index(3)?;
        counts.entry(message_id).or_default().push(ReactionCount { emoji, count, mine: mine > 0 });
    }
    Ok(counts)
}
