//! Friends and blocks in GraphQL: `addFriend`, `removeFriend`, `blockUser`, `unblockUser`,
//! `blockedUsers`, `User.friends`, `User.friendIds` and `User.isFriend` (through `loaders`).

use async_graphql::{Context, ID, Object};

use super::accounts::{User, UserConnection};
use super::cursor::{Cursor, UserKey};
use super::error::GqlResultExt;
use super::loaders::{AddedBy, FriendIdsOf};
use super::{list_complexity, loaders, state, viewer, wanted_total};
use crate::service::page::MAX_PAGE;
use crate::service::{blocks, friends};

/// `User.friends`: the users `user_id` has added, by id.
pub async fn friends_of(
    ctx: &Context<'_>,
    user_id: i64,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<UserConnection> {
    viewer(ctx).require().gql(ctx)?;
    let after = Cursor::<UserKey>::parse("after", after.as_deref()).gql(ctx)?.map(|key| key.0);
    let page = friends::friends(&state(ctx).db, user_id, first, after, wanted_total(ctx)).await.gql(ctx)?;
    Ok(super::connection(page, |u| Cursor(UserKey(u.id)), User))
}

/// `User.friendIds`.
pub async fn friend_ids(ctx: &Context<'_>, user_id: i64) -> async_graphql::Result<Vec<ID>> {
    let ids = loaders::of(ctx).load_one(FriendIdsOf(user_id)).await.gql(ctx)?.unwrap_or_default();
    Ok(ids.into_iter().map(|id| ID(id.to_string())).collect())
}

/// `User.isFriend`: whether the caller has added `user_id`.
pub async fn is_friend(ctx: &Context<'_>, user_id: i64) -> async_graphql::Result<bool> {
    let viewer = viewer(ctx).require().gql(ctx)?.id;
    Ok(loaders::of(ctx).load_one(AddedBy { viewer, user: user_id }).await.gql(ctx)?.unwrap_or(false))
}

#[derive(Default)]
pub struct PeopleQuery;

#[Object]
impl PeopleQuery {
    /// The users the caller has blocked, by id.
    #[graphql(complexity = "list_complexity(MAX_PAGE, child_complexity)")]
    async fn blocked_users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let me = viewer(ctx).require().gql(ctx)?;
        Ok(blocks::blocked_users(&state(ctx).db, me).await.gql(ctx)?.into_iter().map(User).collect())
    }
}

#[derive(Default)]
pub struct PeopleMutation;

#[Object]
impl PeopleMutation {
    /// Adds the user named `username` (in any case) to the caller's friends; one-directional.
    /// Adding twice changes nothing. NOT_FOUND for nobody, BAD_USER_INPUT for oneself.
    async fn add_friend(&self, ctx: &Context<'_>, username: String) -> async_graphql::Result<User> {
        let me = viewer(ctx).require().gql(ctx)?;
        Ok(User(friends::add_friend(&state(ctx).db, me, &username).await.gql(ctx)?))
    }

    /// Removes the user named `username` from the caller's friends (not there: nothing changes).
    async fn remove_friend(&self, ctx: &Context<'_>, username: String) -> async_graphql::Result<User> {
        let me = viewer(ctx).require().gql(ctx)?;
        Ok(User(friends::remove_friend(&state(ctx).db, me, &username).await.gql(ctx)?))
    }

    /// Blocks the user named `username`: they can no longer open a room with the caller or
    /// send them messages (FORBIDDEN), nor see their presence or typing.
    async fn block_user(&self, ctx: &Context<'_>, username: String) -> async_graphql::Result<User> {
        let me = viewer(ctx).require().gql(ctx)?;
        Ok(User(blocks::block_user(&state(ctx).db, me, &username).await.gql(ctx)?))
    }

    /// Lifts a block (none there: nothing changes).
    async fn unblock_user(&self, ctx: &Context<'_>, username: String) -> async_graphql::Result<User> {
        let me = viewer(ctx).require().gql(ctx)?;
        Ok(User(blocks::unblock_user(&state(ctx).db, me, &username).await.gql(ctx)?))
    }
}
