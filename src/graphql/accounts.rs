//! Accounts in GraphQL: `register`, `tokenAuth`, `refreshToken`, `revokeToken`, `me`, `users`,
//! `user`, and the `User` and `Profile` types.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use entity::{profile, user};

use super::cursor::{Cursor, UserKey};
use super::error::GqlResultExt;
use super::posts::PostConnection;
use super::{TotalCount, connection_complexity, loaders, state, viewer, wanted_total};
use crate::client::ClientIp;
use crate::media::MediaStore;
use crate::service::accounts;

pub struct User(pub user::Model);

/// `User.online` and `User.lastSeen` as the caller sees them (nothing of those who blocked
/// the caller). Anonymous callers see no one online.
async fn presence_of(ctx: &Context<'_>, user_id: i64) -> async_graphql::Result<loaders::Seen> {
    let Ok(me) = viewer(ctx).require() else { return Ok((false, None)) };
    let seen = loaders::of(ctx).load_one(loaders::PresenceOf { viewer: me.id, user: user_id }).await.gql(ctx)?;
    Ok(seen.unwrap_or((false, None)))
}

/// Loads the presence of a page of users at once, when the query selects it (see `loaders`).
async fn prefetch_presence(ctx: &Context<'_>, user_ids: impl Iterator<Item = i64>) -> async_graphql::Result<()> {
    let Ok(me) = viewer(ctx).require() else { return Ok(()) };
    let look = ctx.look_ahead();
    let wanted = [look.field("nodes"), look.field("edges").field("node")]
        .iter()
        .any(|n| n.field("online").exists() || n.field("lastSeen").exists());
    if wanted {
        let keys = user_ids.map(|user| loaders::PresenceOf { viewer: me.id, user });
        loaders::of(ctx).load_many(keys).await.gql(ctx)?;
    }
    Ok(())
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn username(&self) -> &str {
        &self.0.username
    }

    async fn email(&self) -> &str {
        &self.0.email
    }

    /// Whether the user holds at least one socket (GraphQL or legacy chat) now, on any server.
    /// False, whatever the truth, for someone who blocked the caller.
    async fn online(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(presence_of(ctx, self.0.id).await?.0)
    }

    /// When the user was last online (now, while online); null if never, or if they blocked
    /// the caller.
    async fn last_seen(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<super::scalars::Timestamp>> {
        Ok(presence_of(ctx, self.0.id).await?.1.map(super::scalars::Timestamp))
    }

    async fn profile(&self, ctx: &Context<'_>) -> async_graphql::Result<Profile> {
        let found = loaders::of(ctx).load_one(loaders::ProfileOf(self.0.id)).await.gql(ctx)?;
        // Every user has one (created with the account); an absent row reads as the default.
        Ok(Profile(found.unwrap_or_else(|| profile::Model {
            id: 0,
            user_id: self.0.id,
            image: profile::DEFAULT_IMAGE.to_owned(),
            bio: String::new(),
        })))
    }

    /// This user's posts, newest first.
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PostConnection> {
        super::posts::connection(ctx, Some(self.0.id), first, after).await
    }

    /// The users this user has added to their friends (one-directional), by id.
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn friends(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        super::people::friends_of(ctx, self.0.id, first, after).await
    }

    /// Whether the signed-in user has added this user to their friends.
    async fn is_friend(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        super::people::is_friend(ctx, self.0.id).await
    }
}

pub struct Profile(pub profile::Model);

#[Object]
impl Profile {
    /// Its owner's user id: a user has exactly one profile, so this keys it in normalized
    /// caches (urql Graphcache, Apollo's `Profile:<id>`) and exists before the profile is edited.
    async fn id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }

    /// URL path of the avatar, e.g. /media/user_images/default.jpg.
    async fn image(&self) -> String {
        MediaStore::url(&self.0.image)
    }

    async fn bio(&self) -> &str {
        &self.0.bio
    }

    /// The ids of every user the profile's owner has added to their friends, ascending (the
    /// original's `friends` of the profile).
    async fn friend_ids(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ID>> {
        super::people::friend_ids(ctx, self.0.user_id).await
    }
}

#[derive(SimpleObject)]
pub struct TokenPair {
    access: String,
    refresh: String,
}

#[derive(SimpleObject)]
pub struct AccessToken {
    access: String,
}

#[derive(InputObject)]
pub struct RegisterInput {
    username: String,
    email: String,
    password: String,
}

pub type UserConnection = Connection<Cursor<UserKey>, User, TotalCount>;

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        Ok(User(viewer(ctx).require().gql(ctx)?.clone()))
    }

    /// Users ordered by id; `search` keeps usernames that start with it (case-insensitive).
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        viewer(ctx).require().gql(ctx)?;
        let after = Cursor::<UserKey>::parse("after", after.as_deref()).gql(ctx)?.map(|key| key.0);
        let total = wanted_total(ctx);
        let page = accounts::list(&state(ctx).db, search.as_deref(), first, after, total).await.gql(ctx)?;
        // The profiles of the whole page in one call, before the nodes ask (see `loaders`).
        let look = ctx.look_ahead();
        if [look.field("nodes"), look.field("edges").field("node")].iter().any(|n| n.field("profile").exists()) {
            loaders::of(ctx).load_many(page.items.iter().map(|u| loaders::ProfileOf(u.id))).await.gql(ctx)?;
        }
        prefetch_presence(ctx, page.items.iter().map(|u| u.id)).await?;
        Ok(super::connection(page, |u| Cursor(UserKey(u.id)), User))
    }

    /// The user named exactly `username` (with `ignoreCase: true`, in any case).
    async fn user(
        &self,
        ctx: &Context<'_>,
        username: String,
        #[graphql(default = false)] ignore_case: bool,
    ) -> async_graphql::Result<Option<User>> {
        viewer(ctx).require().gql(ctx)?;
        let found = if ignore_case {
            accounts::find_by_username_ci(&state(ctx).db, &username).await
        } else {
            accounts::find_by_username(&state(ctx).db, &username).await
        };
        Ok(found.gql(ctx)?.map(User))
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Open: no token needed.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> async_graphql::Result<User> {
        let registration =
            accounts::Registration { username: input.username, email: input.email, password: input.password };
        let client = ctx.data_opt::<ClientIp>().map(|c| c.0);
        Ok(User(accounts::register(state(ctx), client, registration).await.gql(ctx)?))
    }

    /// Open: exchanges credentials for an access and a refresh token.
    async fn token_auth(
        &self,
        ctx: &Context<'_>,
        username: String,
        password: String,
    ) -> async_graphql::Result<TokenPair> {
        let client = ctx.data_opt::<ClientIp>().map(|c| c.0);
        let pair = accounts::sign_in(state(ctx), client, &username, &password).await.gql(ctx)?;
        Ok(TokenPair { access: pair.access, refresh: pair.refresh })
    }

    /// Open: a new access token for a valid refresh token.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh: String) -> async_graphql::Result<AccessToken> {
        Ok(AccessToken { access: accounts::refresh(&state(ctx).db, &state(ctx).tokens, &refresh).await.gql(ctx)? })
    }

    /// Revokes a refresh token (sign out); true when it was valid.
    async fn revoke_token(&self, ctx: &Context<'_>, refresh: String) -> async_graphql::Result<bool> {
        accounts::revoke(&state(ctx).db, &state(ctx).tokens, &refresh).await.gql(ctx)
    }
}
