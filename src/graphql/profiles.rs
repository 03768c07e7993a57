//! Profiles in GraphQL: `updateProfile`, with the avatar sent by the GraphQL multipart request
//! specification (limits on the upload itself are set in `transport`).

use async_graphql::{Context, InputObject, Object, Upload};

use super::accounts::User;
use super::error::GqlResultExt;
use super::{loaders, state, viewer};
use crate::error::AppError;
use crate::service::profiles::{self, ProfileUpdate};

#[derive(InputObject)]
pub struct UpdateProfileInput {
    bio: Option<String>,
    /// A new avatar (PNG, JPEG, GIF or WebP).
    image: Option<Upload>,
}

#[derive(Default)]
pub struct ProfilesMutation;

#[Object]
impl ProfilesMutation {
    /// Changes the signed-in user's bio and/or avatar; returns the user.
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> async_graphql::Result<User> {
        let user = viewer(ctx).require().gql(ctx)?;
        let image = match input.image {
            Some(upload) => {
                let file = upload.value(ctx).map_err(AppError::internal).gql(ctx)?;
                Some(profiles::read_image(file.into_read()).await.gql(ctx)?)
            }
            None => None,
        };
        profiles::update(&state(ctx).db, &state(ctx).media, user, ProfileUpdate { bio: input.bio, image })
            .await
            .gql(ctx)?;
        // An earlier field of this request may have loaded the old profile.
        loaders::of(ctx).clear::<loaders::ProfileOf>();
        Ok(User(user.clone()))
    }
}
