//! Uploaded files: avatars checked by their bytes, stored under the media folder with a random
//! name, served at `/media/` ([`service`]) with `X-Content-Type-Options: nosniff` and a
//! Content-Security-Policy that lets nothing run (a file that is more than its image can never
//! act as a page of the API's origin). Every new profile points at the default avatar
//! ([`DEFAULT_AVATAR`]), written into the folder on start when it is missing.

use std::path::{Path, PathBuf};

use axum::http::{HeaderValue, header};
use rand::RngCore;
use tower_http::services::ServeDir;
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

/// The default avatar (a grey silhouette, 128×128 JPEG) at `entity::profile::DEFAULT_IMAGE`.
pub const DEFAULT_AVATAR: &[u8] = include_bytes!("../assets/default.jpg");

/// Media files are images to show, never documents: no scripts, styles, frames or plugins.
pub const MEDIA_CSP: &str = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox";

/// Serves the media folder with the headers that keep uploads inert.
pub fn service(root: &Path) -> SetResponseHeader<SetResponseHeader<ServeDir, HeaderValue>, HeaderValue> {
    tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(MEDIA_CSP)))
        .service(ServeDir::new(root))
}

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

    /// Writes the default avatar unless the folder has one.
    pub async fn ensure_default(&self) -> std::io::Result<()> {
        let path = self.root.join(entity::profile::DEFAULT_IMAGE);
        if tokio::fs::try_exists(&path).await? {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, DEFAULT_AVATAR).await
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
