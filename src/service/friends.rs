//! Friends, one-directional as the original service stored them: adding someone puts them in
//! your list only. Adding twice or removing someone not in the list changes nothing.

use std::collections::{HashMap, HashSet};

use chrono::{SubsecRound, Utc};
use entity::{friendship, user};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Set,
};

use crate::domain::messages;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::service::accounts;
use crate::service::page::{Page, Total, page_size};

/// The other user named `username` (case-insensitively): NOT_FOUND when nobody is, and
/// `BAD_USER_INPUT` on `username` with `self_message` when it is `me`.
pub async fn other_user(
    db: &impl ConnectionTrait,
    me: &user::Model,
    username: &str,
    self_message: &str,
) -> AppResult<user::Model> {
    let username = crate::domain::trim(username);
    if username.is_empty() {
        return Err(FieldErrors::single("username", messages::BLANK));
    }
    let other = accounts::find_by_username_ci(db, username).await?.ok_or(AppError::NotFound)?;
    if other.id == me.id {
        return Err(FieldErrors::single("username", self_message));
    }
    Ok(other)
}

/// Adds `username` to `me`'s friends; returns them.
pub async fn add_friend(db: &impl ConnectionTrait, me: &user::Model, username: &str) -> AppResult<user::Model> {
    let friend = other_user(db, me, username, messages::SELF_FRIEND).await?;
    friendship::Entity::insert(friendship::ActiveModel {
        user_id: Set(me.id),
        friend_id: Set(friend.id),
        created_at: Set(Utc::now().trunc_subsecs(6)),
    })
    .on_conflict(
        OnConflict::columns([friendship::Column::UserId, friendship::Column::FriendId]).do_nothing().to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(friend)
}

/// Removes `username` from `me`'s friends; returns them.
pub async fn remove_friend(db: &impl ConnectionTrait, me: &user::Model, username: &str) -> AppResult<user::Model> {
    let friend = other_user(db, me, username, messages::SELF_UNFRIEND).await?;
    friendship::Entity::delete_many()
        .filter(friendship::Column::UserId.eq(me.id))
        .filter(friendship::Column::FriendId.eq(friend.id))
        .exec(db)
        .await?;
    Ok(friend)
}

/// A page of the users `user_id` has added, by id.
pub async fn friends(
    db: &impl ConnectionTrait,
    user_id: i64,
    first: Option<i32>,
    after_id: Option<i64>,
    total: Total,
) -> AppResult<Page<user::Model>> {
    let limit = page_size("first", first)?;
    let base = user::Entity::find()
        .join(sea_orm::JoinType::InnerJoin, friendship::Relation::Friend.def().rev())
        .filter(friendship::Column::UserId.eq(user_id));
    let total = total.of(&base, db).await?;
    let mut query = base.order_by_asc(user::Column::Id);
    if let Some(after) = after_id {
        query = query.filter(user::Column::Id.gt(after));
    }
    let rows = query.limit(limit + 1).all(db).await?;
    Ok(Page::from_overfetch(rows, limit, after_id.is_some(), total))
}

/// The friend ids of each of `user_ids`, ascending, in one statement.
pub async fn friend_ids(db: &impl ConnectionTrait, user_ids: &[i64]) -> Result<HashMap<i64, Vec<i64>>, DbErr> {
    let rows: Vec<(i64, i64)> = friendship::Entity::find()
        .select_only()
        .column(friendship::Column::UserId)
        .column(friendship::Column::FriendId)
        .filter(friendship::Column::UserId.is_in(user_ids.iter().copied()))
        .order_by_asc(friendship::Column::FriendId)
        .into_tuple()
        .all(db)
        .await?;
    let mut ids: HashMap<i64, Vec<i64>> = user_ids.iter().map(|id| (*id, Vec::new())).collect();
    for (user_id, friend_id) in rows {
        ids.entry(user_id).or_default().push(friend_id);
    }
    Ok(ids)
}

/// Which of `others` `viewer` has added, in one statement.
pub async fn added_by(db: &impl ConnectionTrait, viewer: i64, others: &[i64]) -> Result<HashSet<i64>, DbErr> {
    let rows: Vec<i64> = friendship::Entity::find()
        .select_only()
        .column(friendship::Column::FriendId)
        .filter(friendship::Column::UserId.eq(viewer))
        .filter(friendship::Column::FriendId.is_in(others.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}
