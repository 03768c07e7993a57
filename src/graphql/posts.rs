//! Posts in GraphQL: `posts`, `post`, `createPost`, the `Post` type and the connection behind
//! `Query.posts` and `User.posts`.
//!
//! A post's cursor holds its `(created_at, id)` keyset, so the next page starts exactly after it
//! however many posts were published meanwhile.

use std::collections::HashSet;

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object};
use chrono::DateTime;
use entity::post;

use super::accounts::User;
use super::cursor::{self, Cursor};
use super::error::GqlResultExt;
use super::scalars::Timestamp;
use super::{TotalCount, connection_complexity, loaders, state, viewer, wanted_total};
use crate::domain::messages;
use crate::error::{AppError, FieldErrors};
use crate::service::posts::{self, NewPost, PostKey};

pub struct Post(pub post::Model);

#[Object]
impl Post {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn content(&self) -> &str {
        &self.0.content
    }

    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }

    // Batched: the authors of a whole page are fetched in one query.
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let found = loaders::of(ctx).load_one(loaders::UserId(self.0.author_id)).await.gql(ctx)?;
        // The foreign key (with cascade) keeps every post's author.
        found.map(User).ok_or_else(|| AppError::internal(anyhow::anyhow!("post {} has no author", self.0.id))).gql(ctx)
    }
}

pub type PostConnection = Connection<Cursor<PostKey>, Post, TotalCount>;

/// A post cursor holds its place in newest-first order: `<created_at µs>:<id>`.
impl cursor::Key for PostKey {
    const KIND: &'static str = "post";
    fn write(&self) -> String {
        format!("{}:{}", self.created_at.timestamp_micros(), self.id)
    }
    fn read(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once(':')?;
        Some(PostKey { created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?, id: id.parse().ok()? })
    }
}

/// Loads the authors of a whole page (and their profiles, when the query asks for them) in one
/// call each, before the nodes resolve: every node then finds its author in the request's
/// loader cache, and the page costs the same statements whatever its size.
async fn prefetch(ctx: &Context<'_>, page: &[post::Model]) -> async_graphql::Result<()> {
    let look = ctx.look_ahead();
    let authors = [look.field("nodes").field("author"), look.field("edges").field("node").field("author")];
    if page.is_empty() || !authors.iter().any(|a| a.exists()) {
        return Ok(());
    }
    let ids: HashSet<i64> = page.iter().map(|p| p.author_id).collect();
    let loaders = loaders::of(ctx);
    let users = loaders.load_many(ids.iter().copied().map(loaders::UserId));
    if authors.iter().any(|a| a.field("profile").exists()) {
        let profiles = loaders.load_many(ids.iter().copied().map(loaders::ProfileOf));
        futures_util::future::try_join(users, profiles).await.gql(ctx)?;
    } else {
        users.await.gql(ctx)?;
    }
    Ok(())
}

/// One page of posts (all, or `author`'s) as a Relay connection.
pub(crate) async fn connection(
    ctx: &Context<'_>,
    author: Option<i64>,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<PostConnection> {
    let after = Cursor::<PostKey>::parse("after", after.as_deref()).gql(ctx)?;
    let total = wanted_total(ctx);
    let page = posts::list(&state(ctx).db, author, first, after, total).await.gql(ctx)?;
    prefetch(ctx, &page.items).await?;
    Ok(super::connection(page, |p| Cursor(PostKey::from(p)), Post))
}

#[derive(InputObject)]
pub struct CreatePostInput {
    title: String,
    content: String,
}

#[derive(Default)]
pub struct PostsQuery;

#[Object]
impl PostsQuery {
    /// All posts, newest first.
    #[graphql(complexity = "connection_complexity(first, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PostConnection> {
        viewer(ctx).require().gql(ctx)?;
        connection(ctx, None, first, after).await
    }

    /// A post by id; null when there is none.
    async fn post(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Post>> {
        viewer(ctx).require().gql(ctx)?;
        let id: i64 = id.parse().map_err(|_| FieldErrors::single("id", messages::INVALID_INTEGER)).gql(ctx)?;
        Ok(posts::find(&state(ctx).db, id).await.gql(ctx)?.map(Post))
    }
}

#[derive(Default)]
pub struct PostsMutation;

#[Object]
impl PostsMutation {
    /// Publishes a post as the signed-in user.
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> async_graphql::Result<Post> {
        let author = viewer(ctx).require().gql(ctx)?;
        let post = posts::create(&state(ctx).db, author, NewPost { title: input.title, content: input.content });
        Ok(Post(post.await.gql(ctx)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_others() {
        let key = PostKey { created_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(), id: 42 };
        assert_eq!(Cursor::<PostKey>::parse("after", Some(&Cursor::of(key))).unwrap(), Some(key));
        assert_eq!(Cursor::<PostKey>::parse("after", None).unwrap(), None);
        let bare = async_graphql::connection::CursorType::encode_cursor(&Cursor(cursor::MessageKey(42)));
        for bad in [Cursor::of(cursor::UserKey(42)), bare, "%%%".to_owned()] {
            assert!(matches!(Cursor::<PostKey>::parse("after", Some(&bad)), Err(AppError::Invalid(_))), "{bad}");
        }
    }
}
