//! DataLoaders: every relation crossed in a list is fetched in one batched query.
//!
//! One [`Loaders`] per request, never shared (a shared cache would leak between users). Within
//! the request they cache: a list resolver loads the related rows of its whole page in one call
//! (see `posts::prefetch`) and every node then finds them in the cache, so a page costs the same
//! statements at any size (batching by time alone splits when resolving a page takes longer
//! than the loader's delay). A mutation that changes a row a loader may hold clears that
//! loader's cache (`updateProfile` clears [`ProfileOf`]).
//!
//! Every loader of the schema is here, each a key type and its `impl Loader`: keyed by one id,
//! the service's map is re-keyed ([`by_id`]); keyed by a viewer and an id, the keys are grouped by
//! viewer ([`by_viewer`]) so that one statement serves each viewer (in practice, the caller).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{chat_room, message, profile, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::error::AppError;
use crate::service::{chat, friends, reactions, reads};

pub struct Db(pub DatabaseConnection);

pub type Loaders = DataLoader<Db, HashMapCache>;

/// The loaders of one HTTP request: batching and a cache that lives as long as the request.
pub fn loaders(db: DatabaseConnection) -> Loaders {
    DataLoader::with_cache(Db(db), tokio::spawn, HashMapCache::default())
}

/// Loaders for a WebSocket connection, which lives for hours and runs many operations: batching
/// only, since a cache there would serve stale rows and grow without bound.
pub fn uncached(db: DatabaseConnection) -> Loaders {
    let loaders = loaders(db);
    loaders.enable_all_cache(false);
    loaders
}

/// Error type of the loaders: cloneable (every waiter of a batch gets it), with its cause.
#[derive(Clone, Debug, thiserror::Error)]
#[error("batched load failed")]
pub struct LoadError(#[source] Arc<sea_orm::DbErr>);

impl From<sea_orm::DbErr> for LoadError {
    fn from(err: sea_orm::DbErr) -> Self {
        LoadError(Arc::new(err))
    }
}

impl From<LoadError> for AppError {
    fn from(err: LoadError) -> Self {
        AppError::internal(err)
    }
}

/// The ids of `keys`, and the service's answer re-keyed by `key`.
async fn by_id<K, V, E>(
    keys: &[K],
    id: impl Fn(&K) -> i64,
    key: impl Fn(i64) -> K,
    load: impl AsyncFnOnce(Vec<i64>) -> Result<HashMap<i64, V>, E>,
) -> Result<HashMap<K, V>, LoadError>
where
    K: Eq + std::hash::Hash,
    LoadError: From<E>,
{
    let ids = keys.iter().map(id).collect();
    Ok(load(ids).await?.into_iter().map(|(id, value)| (key(id), value)).collect())
}

/// The ids each viewer asks about, among `keys` given as `(viewer, id)`.
fn by_viewer(keys: impl Iterator<Item = (i64, i64)>) -> HashMap<i64, Vec<i64>> {
    let mut grouped: HashMap<i64, Vec<i64>> = HashMap::new();
    for (viewer, id) in keys {
        grouped.entry(viewer).or_default().push(id);
    }
    grouped
}

/// A user by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserId(pub i64);

impl Loader<UserId> for Db {
    type Value = user::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, user::Model>, LoadError> {
        let rows = user::Entity::find().filter(user::Column::Id.is_in(keys.iter().map(|k| k.0))).all(&self.0).await?;
        Ok(rows.into_iter().map(|u| (UserId(u.id), u)).collect())
    }
}

/// The profile of a user id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProfileOf(pub i64);

impl Loader<ProfileOf> for Db {
    type Value = profile::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[ProfileOf]) -> Result<HashMap<ProfileOf, profile::Model>, LoadError> {
        let rows = profile::Entity::find()
            .filter(profile::Column::UserId.is_in(keys.iter().map(|k| k.0)))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|p| (ProfileOf(p.user_id), p)).collect())
    }
}

/// The members of a room (by user id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MembersOf(pub i64);

impl Loader<MembersOf> for Db {
    type Value = Vec<user::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[MembersOf]) -> Result<HashMap<MembersOf, Vec<user::Model>>, LoadError> {
        by_id(keys, |k| k.0, MembersOf, async |ids| chat::members_of(&self.0, &ids).await).await
    }
}

/// The newest message of a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LastMessageOf(pub i64);

impl Loader<LastMessageOf> for Db {
    type Value = message::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[LastMessageOf]) -> Result<HashMap<LastMessageOf, message::Model>, LoadError> {
        by_id(keys, |k| k.0, LastMessageOf, async |ids| chat::last_messages(&self.0, &ids).await).await
    }
}

/// A room by id (the room of a message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoomById(pub i64);

impl Loader<RoomById> for Db {
    type Value = chat_room::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[RoomById]) -> Result<HashMap<RoomById, chat_room::Model>, LoadError> {
        by_id(keys, |k| k.0, RoomById, async |ids| chat::rooms_by_id(&self.0, &ids).await).await
    }
}

/// The friend ids of a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FriendIdsOf(pub i64);

impl Loader<FriendIdsOf> for Db {
    type Value = Vec<i64>;
    type Error = LoadError;

    async fn load(&self, keys: &[FriendIdsOf]) -> Result<HashMap<FriendIdsOf, Vec<i64>>, LoadError> {
        by_id(keys, |k| k.0, FriendIdsOf, async |ids| friends::friend_ids(&self.0, &ids).await).await
    }
}

/// Whether `viewer` has added `user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddedBy {
    pub viewer: i64,
    pub user: i64,
}

impl Loader<AddedBy> for Db {
    type Value = bool;
    type Error = LoadError;

    async fn load(&self, keys: &[AddedBy]) -> Result<HashMap<AddedBy, bool>, LoadError> {
        let mut found = HashMap::new();
        for (viewer, users) in by_viewer(keys.iter().map(|k| (k.viewer, k.user))) {
            let added = friends::added_by(&self.0, viewer, &users).await?;
            found.extend(users.into_iter().map(|user| (AddedBy { viewer, user }, added.contains(&user))));
        }
        Ok(found)
    }
}

/// The reactions of a message as one user sees them (`mine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReactionsOf {
    pub viewer: i64,
    pub message_id: i64,
}

impl Loader<ReactionsOf> for Db {
    type Value = Vec<reactions::ReactionCount>;
    type Error = LoadError;

    async fn load(&self, keys: &[ReactionsOf]) -> Result<HashMap<ReactionsOf, Self::Value>, LoadError> {
        let mut found = HashMap::new();
        for (viewer, ids) in by_viewer(keys.iter().map(|k| (k.viewer, k.message_id))) {
            let counts = reactions::counts(&self.0, viewer, &ids).await?;
            found.extend(counts.into_iter().map(|(message_id, list)| (ReactionsOf { viewer, message_id }, list)));
        }
        Ok(found)
    }
}

/// A room as one member sees it: the key of the per-member loaders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberRoom {
    pub user_id: i64,
    pub room_id: i64,
}

/// Unread messages of a member in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnreadOf(pub MemberRoom);

/// The read marker (a message id) of a member in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MarkerOf(pub MemberRoom);

impl Loader<UnreadOf> for Db {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[UnreadOf]) -> Result<HashMap<UnreadOf, i64>, LoadError> {
        let mut found = HashMap::new();
        for (user_id, room_ids) in by_viewer(keys.iter().map(|k| (k.0.user_id, k.0.room_id))) {
            let counts = reads::unread_counts(&self.0, user_id, Some(&room_ids)).await?;
            found.extend(room_ids.into_iter().map(|room_id| {
                (UnreadOf(MemberRoom { user_id, room_id }), counts.get(&room_id).copied().unwrap_or(0))
            }));
        }
        Ok(found)
    }
}

impl Loader<MarkerOf> for Db {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[MarkerOf]) -> Result<HashMap<MarkerOf, i64>, LoadError> {
        let mut found = HashMap::new();
        for (user_id, room_ids) in by_viewer(keys.iter().map(|k| (k.0.user_id, k.0.room_id))) {
            let markers = reads::markers(&self.0, user_id, &room_ids).await?;
            found.extend(markers.into_iter().map(|(room_id, id)| (MarkerOf(MemberRoom { user_id, room_id }), id)));
        }
        Ok(found)
    }
}

/// Shared by resolvers: the loaders of this request.
pub fn of<'a>(ctx: &async_graphql::Context<'a>) -> &'a Arc<Loaders> {
    ctx.data_unchecked::<Arc<Loaders>>()
}
