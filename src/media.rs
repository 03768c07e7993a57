//! Uploaded files: avatars recognised by their bytes, decoded within limits (a decompression bomb
//! is refused before its pixels are allocated) and stored as a re-encoded copy of the pixels only
//! (metadata such as EXIF, GPS position included, is dropped; a PNG header followed by HTML does not
//! decode and is refused), under the media folder with a random
//! name, served at `/media/` ([`service`]) with `X-Content-Type-Options: nosniff` and a
//! Content-Security-Policy that lets nothing run (a file that is more than its image can never
//! act as a page of the API's origin). Every new profile points at the default avatar
//! ([`DEFAULT_AVATAR`]), written into the folder on start when it is missing.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
/// Widest and tallest accepted avatar, in pixels (a 48-megapixel phone photo is 8064 wide). Checked
/// from the header, before any pixel is decoded.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Most memory one decoding may allocate: a 12-megapixel photo with alpha takes 48 MiB. A 12 KB
/// PNG of 10,000 × 10,000 blank pixels would otherwise take 100 MB.
pub const MAX_IMAGE_DECODE_BYTES: u64 = 96 * 1024 * 1024;
/// JPEG quality of the re-encoded copy.
const JPEG_QUALITY: u8 = 90;
/// GIF palette search speed (1 = slowest and best, 30 = fastest): 10 is the `gif` crate's advice.
const GIF_SPEED: i32 = 10;

#[derive(Clone, Debug)]
pub struct MediaStore {
    root: PathBuf,
    /// Decodings running at once: each is CPU work on the blocking pool and may hold up to
    /// [`MAX_IMAGE_DECODE_BYTES`], so a burst of uploads waits here rather than taking every core
    /// and the memory of the process.
    decoding: Arc<tokio::sync::Semaphore>,
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

    fn format(self) -> image::ImageFormat {
        match self {
            ImageKind::Png => image::ImageFormat::Png,
            ImageKind::Jpeg => image::ImageFormat::Jpeg,
            ImageKind::Gif => image::ImageFormat::Gif,
            ImageKind::Webp => image::ImageFormat::WebP,
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

/// Decodes `bytes` as `kind` within [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_DECODE_BYTES`] and encodes
/// the pixels again in the same format (an animated GIF keeps its first frame). `None` when the
/// bytes are not a whole image of that kind, or one too large to decode. CPU-bound: run it on the
/// blocking pool ([`MediaStore::reencode`] does).
pub fn reencode_blocking(kind: ImageKind, bytes: &[u8]) -> Option<Vec<u8>> {
    use image::{DynamicImage, ExtendedColorType};
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), kind.format());
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_DECODE_BYTES);
    reader.limits(limits);
    let decoded = reader.decode().ok()?;
    // Each encoder takes the colour types it supports; anything else is converted first.
    let eight_bit = |image: DynamicImage| match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        other => DynamicImage::ImageRgba8(other.to_rgba8()),
    };
    let mut out = Vec::new();
    let written = match kind {
        ImageKind::Png => {
            let image = match decoded {
                DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => decoded.to_rgba16().into(),
                other => other,
            };
            image.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        }
        ImageKind::Jpeg => {
            let image = match decoded {
                DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => decoded,
                other => DynamicImage::ImageRgb8(other.to_rgb8()),
            };
            image.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))
        }
        ImageKind::Gif => {
            let rgba = decoded.to_rgba8();
            image::codecs::gif::GifEncoder::new_with_speed(&mut out, GIF_SPEED).encode(
                rgba.as_raw(),
                rgba.width(),
                rgba.height(),
                ExtendedColorType::Rgba8,
            )
        }
        ImageKind::Webp => {
            eight_bit(decoded).write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(&mut out))
        }
    };
    written.ok().map(|()| out)
}

impl MediaStore {
    pub fn new(root: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { root, decoding: Arc::new(tokio::sync::Semaphore::new(cores)) }
    }

    /// [`reencode_blocking`] on the blocking pool, at most one per core at a time.
    pub async fn reencode(&self, kind: ImageKind, bytes: Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
        // The permit goes with the work: a cancelled request does not stop a decoding under way.
        let permit = self.decoding.clone().acquire_owned().await.map_err(std::io::Error::other)?;
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            reencode_blocking(kind, &bytes)
        });
        work.await.map_err(std::io::Error::other)
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
