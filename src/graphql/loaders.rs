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
//! the service's map is re-keyed (`id_loader!`); keyed by a viewer and an id, the keys are grouped by
//! viewer ([`by_viewer`]) so that one statement serves each viewer (in practice, the caller).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{chat_room, message, profile, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::error::AppError;
use crate::service::{chat, friends, reactions, reads};

/// What the loaders read: the database, and who is online (`User.online`; absent in loaders
/// made from a connection alone, which then cannot answer it).
pub struct Db(pub DatabaseConnection, pub Option<Arc<crate::service::presence::Presence>>);

pub type Loaders = DataLoader<Db, HashMapCache>;

/// The loaders of one HTTP request: batching and a cache that lives as long as the request.
pub fn loaders(db: DatabaseConnection) -> Loaders {
    DataLoader::with_cache(Db(db, None), tokio::spawn, HashMapCache::default())
}

/// Loaders for a WebSocket connection, which lives for hours and runs many operations: batching
/// only, since a cache there would serve stale rows and grow without bound.
pub fn uncached(db: DatabaseConnection) -> Loaders {
    let loaders = loaders(db);
    loaders.enable_all_cache(false);
    loaders
}

/// [`loaders`] (`cached`) or [`uncached`] of the application, presence included.
pub fn of_state(state: &crate::state::AppState, cached: bool) -> Loaders {
    let loaders = DataLoader::with_cache(
        Db(state.db.clone(), Some(state.presence.clone())),
        tokio::spawn,
        HashMapCache::default(),
    );
    loaders.enable_all_cache(cached);
    loaders
}

/// Error type of the loaders: cloneable (every waiter of a batch gets it), with its cause.
#[derive(Clone, Debug, thiserror::Error)]
#[error("batched load failed")]
pub struct LoadError(#[source] Arc<dyn std::error::Error + Send + Sync>);

impl From<sea_orm::DbErr> for LoadError {
    fn from(err: sea_orm::DbErr) -> Self {
        LoadError(Arc::new(err))
    }
}

/// A service call made by a loader.
impl From<AppError> for LoadError {
    fn from(err: AppError) -> Self {
        LoadError(Arc::new(err))
    }
}

impl From<LoadError> for AppError {
    fn from(err: LoadError) -> Self {
        AppError::internal(err)
    }
}

/// A loader keyed by one id, answered by a service function from `&[id]` to a map by id.
macro_rules! id_loader {
    ($(#[$doc:meta])* $key:ident => $value:ty, $load:path) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for Db {
            type Value = $value;
            type Error = LoadError;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, $value>, LoadError> {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                Ok($load(&self.0, &ids).await?.into_iter().map(|(id, value)| ($key(id), value)).collect())
            }
        }
    };
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

id_loader!(
    /// The members of a room (by user id).
    MembersOf => Vec<user::Model>, chat::members_of
);

id_loader!(
    /// The newest message of a room.
    LastMessageOf => message::Model, chat::last_messages
);

id_loader!(
    /// A room by id (the room of a message).
    RoomById => chat_room::Model, chat::rooms_by_id
);

id_loader!(
    /// The friend ids of a user.
    FriendIdsOf => Vec<i64>, friends::friend_ids
);

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

/// `User.online` and `User.lastSeen` of a user as a viewer sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PresenceOf {
    pub viewer: i64,
    pub user: i64,
}

/// Whether a user is online, and when they were last.
pub type Seen = (bool, Option<chrono::DateTime<chrono::Utc>>);

impl Loader<PresenceOf> for Db {
    type Value = Seen;
    type Error = LoadError;

    async fn load(&self, keys: &[PresenceOf]) -> Result<HashMap<PresenceOf, Seen>, LoadError> {
        let Some(presence) = &self.1 else {
            let bug = AppError::internal(anyhow::anyhow!("User.online asked of loaders without presence"));
            return Err(LoadError::from(bug));
        };
        let mut found = HashMap::new();
        for (viewer, users) in by_viewer(keys.iter().map(|k| (k.viewer, k.user))) {
            let seen = crate::service::presence::seen_by(&self.0, presence, viewer, &users).await?;
            found.extend(seen.into_iter().map(|(user, seen)| (PresenceOf { viewer, user }, seen)));
        }
        Ok(found)
    }
}

/// Shared by resolvers: the loaders of this request.
pub fn of<'a>(ctx: &async_graphql::Context<'a>) -> &'a Arc<Loaders> {
    ctx.data_unchecked::<Arc<Loaders>>()
}
