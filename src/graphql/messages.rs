//! Editing, deleting and reacting to messages in GraphQL: `editMessage`, `deleteMessage`,
//! `react`, `unreact`, and `Message.reactions` (through `loaders`).

use async_graphql::{Context, ID, Object, SimpleObject};

use super::chat::Message;
use super::error::GqlResultExt;
use super::loaders::ReactionsOf;
use super::reads::parse_id;
use super::{loaders, state, viewer};
use crate::service::{edits, reactions};

/// How many reacted to a message with one emoji.
#[derive(SimpleObject)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
    /// Whether the signed-in user is one of them.
    pub mine: bool,
}

/// `Message.reactions` for the caller: per emoji, in order of first use.
pub async fn reactions_of(ctx: &Context<'_>, message_id: i64) -> async_graphql::Result<Vec<ReactionCount>> {
    let viewer = viewer(ctx).require().gql(ctx)?.id;
    let found = loaders::of(ctx).load_one(ReactionsOf { viewer, message_id }).await.gql(ctx)?;
    Ok(found
        .unwrap_or_default()
        .into_iter()
        .map(|r| ReactionCount { emoji: r.emoji, count: r.count, mine: r.mine })
        .collect())
}

#[derive(Default)]
pub struct MessagesMutation;

#[Object]
impl MessagesMutation {
    /// Replaces the content of one's own message (validated as a new message is); sets
    /// `editedAt`. FORBIDDEN for someone else's message, NOT_FOUND for a deleted one.
    async fn edit_message(&self, ctx: &Context<'_>, id: ID, content: String) -> async_graphql::Result<Message> {
        let me = viewer(ctx).require().gql(ctx)?;
        let id = parse_id("id", &id).gql(ctx)?;
        Ok(Message::from(edits::edit_message(state(ctx), me, id, &content).await.gql(ctx)?))
    }

    /// Deletes one's own message: it keeps its place in the history, with no content and no
    /// reactions (`deleted: true`). False when it was deleted already.
    async fn delete_message(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let me = viewer(ctx).require().gql(ctx)?;
        let id = parse_id("id", &id).gql(ctx)?;
        let (_, deleted) = edits::delete_message(state(ctx), me, id).await.gql(ctx)?;
        Ok(deleted)
    }

    /// Reacts to a message of one's rooms with `emoji` (once per emoji; again changes nothing).
    async fn react(&self, ctx: &Context<'_>, message_id: ID, emoji: String) -> async_graphql::Result<Message> {
        let me = viewer(ctx).require().gql(ctx)?;
        let id = parse_id("messageId", &message_id).gql(ctx)?;
        let (message, _) = reactions::react(state(ctx), me, id, &emoji).await.gql(ctx)?;
        Ok(Message::from(message))
    }

    /// Takes one's `emoji` reaction back (none there changes nothing).
    async fn unreact(&self, ctx: &Context<'_>, message_id: ID, emoji: String) -> async_graphql::Result<Message> {
        let me = viewer(ctx).require().gql(ctx)?;
        let id = parse_id("messageId", &message_id).gql(ctx)?;
        let (message, _) = reactions::unreact(state(ctx), me, id, &emoji).await.gql(ctx)?;
        Ok(Message::from(message))
    }
}
