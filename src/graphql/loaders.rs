//! DataLoaders: every relation crossed in a list is fetched in one batched query.
//!
//! One [`Loaders`] per request, never shared (a shared cache would leak between users). Within
//! the request they cache: a list resolver loads the related rows of its whole page in one call
//! (see `posts::prefetch`) and every node then finds them in the cache, so a page costs the same
//! statements at any size (batching by time alone splits when resolving a page takes longer
//! than the loader's delay). A mutation that changes a row a loader may hold clears that
//! loader's cache (`updateProfile` clears [`ProfileOf`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{profile, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::error::AppError;

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

/// Shared by resolvers: the loaders of this request.
pub fn of<'a>(ctx: &async_graphql::Context<'a>) -> &'a Arc<Loaders> {
    ctx.data_unchecked::<Arc<Loaders>>()
}
