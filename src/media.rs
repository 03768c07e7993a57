//! Uploaded files: avatars checked by their bytes, stored under the media folder with a random
//! name, served at `/media/`.

use std::path::{Path, PathBuf};

use rand::RngCore;

/// Largest accepted avatar.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct MediaStore {
    root: PathBuf,
}

/// An image format Agora accepts, recognised by its leading bytes (never by the file name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageKind {
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageKind::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageKind::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(ImageKind::Gif)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageKind::Webp)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpg",
            ImageKind::Gif => "gif",
            ImageKind::Webp => "webp",
        }
    }
}

impl MediaStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes an avatar under `user_images/` with a random name; returns its relative path.
    pub async fn store_avatar(&self, kind: ImageKind, bytes: &[u8]) -> std::io::Result<String> {
        let mut name = [0u8; 16];
        rand::rng().fill_bytes(&mut name);
        let relative = format!("user_images/{}.{}", hex::encode(name), kind.extension());
        let path = self.root.join(&relative);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, bytes).await?;
        Ok(relative)
    }

    /// Removes a stored file; the shared default image and paths outside the folder are kept.
    pub async fn remove(&self, relative: &str) {
        if relative == entity::profile::DEFAULT_IMAGE || relative.contains("..") || relative.starts_with('/') {
            return;
        }
        if let Err(err) = tokio::fs::remove_file(self.root.join(relative)).await {
            tracing::warn!(error = %err, path = relative, "could not remove a replaced file");
        }
    }

    /// The URL path of a stored file.
    pub fn url(relative: &str) -> String {
        format!("/media/{relative}")
    }
}
