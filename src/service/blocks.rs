//! Blocking: someone you blocked cannot open a room with you or send you messages (FORBIDDEN),
//! and does not see your presence or typing. Directional: blocking someone does not stop you.

use std::collections::HashSet;

use chrono::{SubsecRound, Utc};
use entity::{block, user};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Set,
};

use crate::domain::messages;
use crate::error::{AppError, AppResult};
use crate::service::friends::other_user;

/// Blocks `username`; returns them. Blocking twice changes nothing.
pub async fn block_user(db: &impl ConnectionTrait, me: &user::Model, username: &str) -> AppResult<user::Model> {
    let other = other_user(db, me, username, messages::SELF_BLOCK).await?;
    block::Entity::insert(block::ActiveModel {
        blocker_id: Set(me.id),
        blocked_id: Set(other.id),
        created_at: Set(Utc::now().trunc_subsecs(6)),
    })
    .on_conflict(OnConflict::columns([block::Column::BlockerId, block::Column::BlockedId]).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    Ok(other)
}

/// Unblocks `username`; returns them. Unblocking someone not blocked changes nothing.
pub async fn unblock_user(db: &impl ConnectionTrait, me: &user::Model, username: &str) -> AppResult<user::Model> {
    let other = other_user(db, me, username, messages::SELF_UNBLOCK).await?;
    block::Entity::delete_many()
        .filter(block::Column::BlockerId.eq(me.id))
        .filter(block::Column::BlockedId.eq(other.id))
        .exec(db)
        .await?;
    Ok(other)
}

/// The users `me` has blocked, by id.
pub async fn blocked_users(db: &impl ConnectionTrait, me: &user::Model) -> AppResult<Vec<user::Model>> {
    Ok(user::Entity::find()
        .join(sea_orm::JoinType::InnerJoin, block::Relation::Blocked.def().rev())
        .filter(block::Column::BlockerId.eq(me.id))
        .order_by_asc(user::Column::Id)
        .all(db)
        .await?)
}

/// Everyone `user_id` has blocked, in one statement: they see none of `user_id`'s typing or
/// presence.
pub async fn blocked_of(db: &impl ConnectionTrait, user_id: i64) -> Result<HashSet<i64>, DbErr> {
    let rows: Vec<i64> = block::Entity::find()
        .select_only()
        .column(block::Column::BlockedId)
        .filter(block::Column::BlockerId.eq(user_id))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Which of `others` have blocked `user_id`, in one statement.
pub async fn blocked_by(db: &impl ConnectionTrait, user_id: i64, others: &[i64]) -> Result<HashSet<i64>, DbErr> {
    let rows: Vec<i64> = block::Entity::find()
        .select_only()
        .column(block::Column::BlockerId)
        .filter(block::Column::BlockedId.eq(user_id))
        .filter(block::Column::BlockerId.is_in(others.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// FORBIDDEN when any of `others` has blocked `user_id`: they may not open a room with them or
/// write to them.
pub async fn ensure_not_blocked(db: &impl ConnectionTrait, user_id: i64, others: &[i64]) -> AppResult<()> {
    let others: Vec<i64> = others.iter().copied().filter(|id| *id != user_id).collect();
    if others.is_empty() || blocked_by(db, user_id, &others).await?.is_empty() {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}
