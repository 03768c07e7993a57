//! Profiles: the signed-in user changes their bio and avatar.
//!
//! An avatar is accepted by its bytes (PNG, JPEG, GIF or WebP, at most
//! [`MAX_IMAGE_BYTES`]), never by its name or declared type, and only when it decodes as a whole
//! image within the media limits; what is stored is a re-encoded copy of its pixels
//! ([`crate::media::reencode_blocking`]: no metadata, nothing after the image). The file is written before the
//! database row changes and removed again if the row cannot be written; the replaced file is
//! removed once the new row is committed (never the shared default image). All of that runs in
//! a task of its own, so a cancelled request cannot stop it halfway.

use std::io::Read;

use entity::{profile, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set};

use crate::domain::{self, BIO_MAX, messages};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::media::{ImageKind, MAX_IMAGE_BYTES, MediaStore};

/// What to change; `None` leaves a field as it is.
#[derive(Default)]
pub struct ProfileUpdate {
    pub bio: Option<String>,
    /// The uploaded file, as read by [`read_image`].
    pub image: Option<Vec<u8>>,
}

/// Reads an uploaded file on the blocking pool, never more than one byte past the limit (enough
/// to know it is too large).
pub async fn read_image(file: impl Read + Send + 'static) -> AppResult<Vec<u8>> {
    let read = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        file.take(MAX_IMAGE_BYTES as u64 + 1).read_to_end(&mut bytes).map(|_| bytes)
    });
    read.await.map_err(AppError::internal)?.map_err(AppError::internal)
}

fn check_image(bytes: &[u8]) -> Result<ImageKind, Vec<String>> {
    if bytes.is_empty() {
        return Err(vec![messages::FILE_EMPTY.to_owned()]);
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(vec![messages::file_too_large(MAX_IMAGE_BYTES)]);
    }
    ImageKind::sniff(bytes).ok_or_else(|| vec![messages::IMAGE_INVALID.to_owned()])
}

/// Changes the bio and/or the avatar of `user`. Every invalid field is reported and nothing is
/// stored, on disk or in the database, unless all of them are valid.
pub async fn update(
    db: &DatabaseConnection,
    media: &MediaStore,
    user: &user::Model,
    update: ProfileUpdate,
) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    let bio = update.bio.and_then(|raw| errors.check("bio", domain::clean_text(&raw, BIO_MAX, true)));
    let kind = update.image.as_deref().and_then(|bytes| errors.check("image", check_image(bytes)));
    let image = match (kind, update.image) {
        (Some(kind), Some(bytes)) => {
            let copy = media.reencode(kind, bytes).await.map_err(AppError::internal)?;
            errors.check("image", copy.ok_or_else(|| vec![messages::IMAGE_INVALID.to_owned()]))
        }
        _ => None,
    };
    errors.into_result()?;

    if bio.is_none() && image.is_none() {
        return Ok(());
    }
    // Store, save and clean up in a task of its own: a client that goes away mid-request
    // cancels the request, and must not leave a written file unreferenced or a replaced one
    // behind.
    let (db, media, user_id) = (db.clone(), media.clone(), user.id);
    let job = tokio::spawn(async move {
        let stored = match (kind, image.as_deref()) {
            (Some(kind), Some(bytes)) => Some(media.store_avatar(kind, bytes).await.map_err(AppError::internal)?),
            _ => None,
        };
        let image = stored.clone();
        match crate::db::write(&db, Box::new(move |txn| Box::pin(save(txn, user_id, bio, image)))).await {
            Ok(replaced) => {
                if let Some(old) = replaced
                    && Some(&old) != stored.as_ref()
                {
                    media.remove(&old).await;
                }
                Ok(())
            }
            Err(err) => {
                if let Some(new) = stored {
                    media.remove(&new).await;
                }
                Err(err)
            }
        }
    });
    job.await.map_err(AppError::internal)?
}

/// Writes the new values (in the transaction of `db::write`); returns the image path that was
/// replaced.
async fn save(
    txn: &sea_orm::DatabaseTransaction,
    user_id: i64,
    bio: Option<String>,
    image: Option<String>,
) -> AppResult<Option<String>> {
    // Locked (PostgreSQL; SQLite's IMMEDIATE already serialises writers), so that two concurrent
    // uploads cannot both read the same old image and leave one new file unreferenced.
    let current = profile::Entity::find().filter(profile::Column::UserId.eq(user_id)).lock_exclusive().one(txn).await?;
    let replaced = match current {
        Some(row) => {
            let replaced = image.as_ref().map(|_| row.image.clone());
            let mut active: profile::ActiveModel = row.into();
            if let Some(bio) = bio {
                active.bio = Set(bio);
            }
            if let Some(image) = image {
                active.image = Set(image);
            }
            active.update(txn).await?;
            replaced
        }
        // A user created outside the API has no profile yet (the legacy service did the same).
        None => {
            profile::ActiveModel {
                user_id: Set(user_id),
                bio: Set(bio.unwrap_or_default()),
                image: Set(image.unwrap_or_else(|| profile::DEFAULT_IMAGE.to_owned())),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            None
        }
    };
    Ok(replaced)
}
