//! updateProfile over GraphQL: the bio, and avatars sent as real multipart requests (the GraphQL
//! multipart request specification), checked on disk and served under /media/.

use std::path::PathBuf;

use agora::media::MAX_IMAGE_BYTES;
use agora::service::profiles::{self, ProfileUpdate};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::*;

const BIO: &str = "mutation($bio: String) { updateProfile(input: {bio: $bio}) { id username profile { bio image } } }";
const IMAGE: &str = "mutation($file: Upload) { updateProfile(input: {image: $file}) { profile { bio image } } }";
const BOTH: &str = "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { profile { bio image } } }";
const PROFILE: &str = "{ me { profile { bio image } } }";
const DEFAULT: &str = "/media/user_images/default.jpg";
const INVALID_IMAGE: &str = "Upload a valid image. The file you uploaded was either not an image or a corrupted image.";

/// A small picture (a gradient, so that each pixel differs) with alpha.
fn picture(width: u32, height: u32) -> image::RgbaImage {
    image::RgbaImage::from_fn(width, height, |x, y| image::Rgba([(x * 40) as u8, (y * 40) as u8, 128, 255]))
}

/// `picture` encoded as `format`: real images, built in memory.
fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let picture = image::DynamicImage::ImageRgba8(picture(6, 4));
    let picture =
        if format == image::ImageFormat::Jpeg { image::DynamicImage::ImageRgb8(picture.to_rgb8()) } else { picture };
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}
fn png() -> Vec<u8> {
    encoded(image::ImageFormat::Png)
}
fn jpeg() -> Vec<u8> {
    encoded(image::ImageFormat::Jpeg)
}
fn gif() -> Vec<u8> {
    encoded(image::ImageFormat::Gif)
}
fn webp() -> Vec<u8> {
    encoded(image::ImageFormat::WebP)
}

/// A JPEG carrying an EXIF block (APP1) whose GPS directory places the camera at 48°51'N.
fn jpeg_with_gps() -> Vec<u8> {
    // TIFF, big-endian: IFD0 at 8 with one entry (GPSInfo -> the GPS IFD at 26); the GPS IFD has
    // GPSLatitudeRef "N" and GPSLatitude (three rationals at 56).
    let mut tiff: Vec<u8> = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend([0, 1, 0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 26, 0, 0, 0, 0]);
    tiff.extend([0, 2]);
    tiff.extend([0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    tiff.extend([0, 2, 0, 5, 0, 0, 0, 3, 0, 0, 0, 56]);
    tiff.extend([0, 0, 0, 0]);
    assert_eq!(tiff.len(), 56);
    for (numerator, denominator) in [(48u32, 1u32), (51, 1), (2400, 100)] {
        tiff.extend(numerator.to_be_bytes());
        tiff.extend(denominator.to_be_bytes());
    }
    let payload = [b"Exif\0\0".as_slice(), &tiff].concat();
    let length = u16::try_from(payload.len() + 2).unwrap().to_be_bytes();
    let plain = jpeg();
    assert_eq!(&plain[..2], &[0xFF, 0xD8]);
    [&plain[..2], &[0xFF, 0xE1], &length, &payload, &plain[2..]].concat()
}

/// The EXIF block a JPEG decoder finds in `bytes`.
fn exif_of(bytes: &[u8]) -> Option<Vec<u8>> {
    use image::ImageDecoder;
    let mut decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(bytes)).unwrap();
    decoder.exif_metadata().unwrap()
}

/// A PNG of `side` × `side` blank pixels, one bit each: a few KB that decode to megabytes.
fn blank_png(side: u32, color: png::ColorType) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, side, side);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::One);
    if color == png::ColorType::Indexed {
        encoder.set_palette(vec![0, 0, 0, 255, 255, 255]);
    }
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&vec![0; side.div_ceil(8) as usize * side as usize]).unwrap();
    writer.finish().unwrap();
    bytes
}

/// One file of a multipart request: (form field, file name, content type, bytes).
type File = (&'static str, &'static str, &'static str, Vec<u8>);

/// A GraphQL multipart request: `operations`, `map` (field -> variable paths), then the files.
async fn multipart(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: Value,
    map: Value,
    files: Vec<File>,
) -> reqwest::Response {
    let mut form = Form::new()
        .text("operations", json!({"query": query, "variables": variables}).to_string())
        .text("map", map.to_string());
    for (field, name, mime, bytes) in files {
        form = form.part(field, Part::bytes(bytes).file_name(name).mime_str(mime).unwrap());
    }
    let mut request = app.client.post(app.url("/graphql")).multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

/// Uploads `bytes` as the avatar; returns the response body.
async fn upload(app: &TestApp, token: &str, name: &'static str, mime: &'static str, bytes: Vec<u8>) -> Value {
    let response = multipart(
        app,
        Some(token),
        IMAGE,
        json!({"file": null}),
        json!({"0": ["variables.file"]}),
        vec![("0", name, mime, bytes)],
    )
    .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn avatars_dir(app: &TestApp) -> PathBuf {
    app.context.state.media.root().join("user_images")
}

/// The files under the media folder's `user_images/`, by name, sorted.
/// The uploaded avatars on disk (the shared default one, written on start, left out).
fn stored_files(app: &TestApp) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(avatars_dir(app)) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "default.jpg")
        .collect();
    names.sort();
    names
}

fn on_disk(app: &TestApp, url: &str) -> PathBuf {
    app.context.state.media.root().join(url.strip_prefix("/media/").expect("a /media/ URL"))
}

#[tokio::test]
async fn bio_is_trimmed_bounded_and_may_be_blank() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let data = app.gql_ok(Some(&alice.access), BIO, json!({"bio": "  Hello there \n"})).await;
    assert_eq!(data["updateProfile"]["username"], alice.username);
    assert_eq!(data["updateProfile"]["id"], alice.id.to_string());
    assert_eq!(data["updateProfile"]["profile"], json!({"bio": "Hello there", "image": DEFAULT}));

    let too_long = app.gql(Some(&alice.access), BIO, json!({"bio": "é".repeat(501)})).await;
    assert_eq!(
        field_errors(&too_long),
        vec![("bio".to_owned(), vec!["Ensure this field has no more than 500 characters.".to_owned()])]
    );
    let unchanged = app.gql_ok(Some(&alice.access), PROFILE, json!({})).await;
    assert_eq!(unchanged["me"]["profile"]["bio"], "Hello there");

    let longest = app.gql_ok(Some(&alice.access), BIO, json!({"bio": "é".repeat(500)})).await;
    assert_eq!(longest["updateProfile"]["profile"]["bio"].as_str().unwrap().chars().count(), 500);
    // An omitted bio is left alone; a blank one clears it.
    let omitted = app.gql_ok(Some(&alice.access), BIO, json!({})).await;
    assert_eq!(omitted["updateProfile"]["profile"]["bio"].as_str().unwrap().chars().count(), 500);
    let cleared = app.gql_ok(Some(&alice.access), BIO, json!({"bio": "   "})).await;
    assert_eq!(cleared["updateProfile"]["profile"], json!({"bio": "", "image": DEFAULT}));

    // Only the caller's profile changed.
    let bob = app.user("bob").await;
    app.gql_ok(Some(&alice.access), BIO, json!({"bio": "alice's"})).await;
    let theirs = app.gql_ok(Some(&bob.access), PROFILE, json!({})).await;
    assert_eq!(theirs["me"]["profile"], json!({"bio": "", "image": DEFAULT}));
}

/// A profile has an `id` (its owner's) so normalized caches can key it: the same through every
/// path that reaches it, different for each user, and there before the profile is ever edited.
#[tokio::test]
async fn a_profile_is_keyed_by_its_owners_id() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let ids = "query($u: String!) { me { profile { id } } user(username: $u) { id profile { id } } }";
    let seen = app.gql_ok(Some(&alice.access), ids, json!({"u": bob.username})).await;
    assert_eq!(seen["me"]["profile"]["id"], alice.id.to_string());
    assert_eq!(seen["user"]["profile"]["id"], bob.id.to_string());
    let edited = "mutation { updateProfile(input: {bio: \"hi\"}) { id profile { id bio } } }";
    let edited = app.gql_ok(Some(&bob.access), edited, json!({})).await;
    assert_eq!(edited["updateProfile"]["profile"], json!({"id": bob.id.to_string(), "bio": "hi"}));
}

#[tokio::test]
async fn a_later_mutation_field_sees_the_earlier_change() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    // The request's loaders cache: the second field must not see the profile the first loaded.
    let data = app
        .gql_ok(
            Some(&alice.access),
            "mutation { a: updateProfile(input: {bio: \"one\"}) { profile { bio } } b: updateProfile(input: {bio: \"two\"}) { profile { bio } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["a"]["profile"]["bio"], "one");
    assert_eq!(data["b"]["profile"]["bio"], "two");
}

#[tokio::test]
async fn a_websocket_connection_sees_later_changes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut request = app.ws_url("/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("WebSocket connects");
    let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {}", alice.access)}});
    socket.send(Message::text(init.to_string())).await.unwrap();

    // Runs PROFILE as operation `id` on the connection; returns the bio it read.
    async fn bio_over(
        socket: &mut (impl SinkExt<Message> + StreamExt<Item = Result<Message, impl std::fmt::Debug>> + Unpin),
        id: &str,
    ) -> Value {
        let subscribe = json!({"id": id, "type": "subscribe", "payload": {"query": PROFILE}});
        assert!(socket.send(Message::text(subscribe.to_string())).await.is_ok());
        loop {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await.unwrap().unwrap();
            let Ok(Message::Text(text)) = frame else { continue };
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] == "next" && message["id"] == id {
                return message["payload"]["data"]["me"]["profile"]["bio"].clone();
            }
        }
    }
    assert_eq!(bio_over(&mut socket, "1").await, "");
    app.gql_ok(Some(&alice.access), BIO, json!({"bio": "changed"})).await;
    // The connection's loaders do not cache: the second operation reads the new bio.
    assert_eq!(bio_over(&mut socket, "2").await, "changed");
}

#[tokio::test]
async fn updating_a_profile_needs_a_signed_in_user() {
    let app = spawn_app().await;
    for token in [None, Some("not-a-token")] {
        let body = app.gql(token, BIO, json!({"bio": "x"})).await;
        assert_eq!(codes(&body), vec!["UNAUTHENTICATED"], "{body}");
        let response = multipart(
            &app,
            token,
            IMAGE,
            json!({"file": null}),
            json!({"0": ["variables.file"]}),
            vec![("0", "a.png", "image/png", png())],
        )
        .await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(codes(&body), vec!["UNAUTHENTICATED"], "{body}");
    }
    assert_eq!(stored_files(&app), Vec::<String>::new(), "nothing stored");
}

#[tokio::test]
async fn each_accepted_format_is_stored_served_and_replaces_the_last() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    // The shared default image must survive the first replacement.
    std::fs::create_dir_all(avatars_dir(&app)).unwrap();
    std::fs::write(avatars_dir(&app).join("default.jpg"), jpeg()).unwrap();
    app.gql_ok(Some(&alice.access), BIO, json!({"bio": "kept"})).await;

    let mut previous: Option<String> = None;
    // The declared name and type do not matter: the bytes decide.
    let cases: [(&str, &str, Vec<u8>, &str); 4] = [
        ("a.png", "image/png", png(), "png"),
        ("b.jpeg", "image/jpeg", jpeg(), "jpg"),
        ("c.bin", "application/octet-stream", gif(), "gif"),
        ("d.png", "image/png", webp(), "webp"),
    ];
    for (name, mime, bytes, extension) in cases {
        let body = upload(&app, &alice.access, name, mime, bytes.clone()).await;
        assert!(body.get("errors").is_none(), "{body}");
        let profile = &body["data"]["updateProfile"]["profile"];
        assert_eq!(profile["bio"], "kept", "bio untouched by an image-only update");
        let url = profile["image"].as_str().unwrap().to_owned();
        let file = url.strip_prefix("/media/user_images/").expect("under /media/user_images/");
        let (stem, ext) = file.rsplit_once('.').unwrap();
        assert_eq!(ext, extension, "{url}");
        assert!(stem.len() >= 16 && stem.chars().all(|c| c.is_ascii_hexdigit()), "a random name: {url}");
        assert_ne!(Some(&url), previous.as_ref(), "a new name every time");

        // A re-encoded copy of the same picture (the lossy JPEG compared by its size only).
        let stored = std::fs::read(on_disk(&app, &url)).unwrap();
        let copy = image::load_from_memory(&stored).expect("the stored file is an image");
        let sent = image::load_from_memory(&bytes).unwrap();
        assert_eq!((copy.width(), copy.height()), (6, 4), "{url}");
        if extension != "jpg" {
            assert_eq!(copy.to_rgba8(), sent.to_rgba8(), "the same pixels: {url}");
        }
        let served = app.client.get(app.url(&url)).send().await.unwrap();
        assert_eq!(served.status(), 200, "{url}");
        assert_eq!(served.bytes().await.unwrap().as_ref(), stored.as_slice());

        if let Some(old) = &previous {
            assert!(!on_disk(&app, old).exists(), "the replaced file {old} is removed");
            assert_eq!(app.client.get(app.url(old)).send().await.unwrap().status(), 404);
        }
        assert_eq!(stored_files(&app), vec![file.to_owned()]);
        let me = app.gql_ok(Some(&alice.access), PROFILE, json!({})).await;
        assert_eq!(me["me"]["profile"]["image"], url);
        previous = Some(url);
    }
    assert!(avatars_dir(&app).join("default.jpg").exists(), "the default image is never removed");
}

#[tokio::test]
async fn bio_and_image_change_together_through_a_nested_variable() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let response = multipart(
        &app,
        Some(&alice.access),
        BOTH,
        json!({"input": {"bio": " both ", "image": null}}),
        json!({"0": ["variables.input.image"]}),
        vec![("0", "me.gif", "image/gif", gif())],
    )
    .await;
    let body: Value = response.json().await.unwrap();
    let profile = &body["data"]["updateProfile"]["profile"];
    assert_eq!(profile["bio"], "both", "{body}");
    assert!(profile["image"].as_str().unwrap().ends_with(".gif"), "{body}");
    assert_eq!(stored_files(&app).len(), 1);
}

#[tokio::test]
async fn a_fake_image_is_refused_with_the_bio_error_and_nothing_is_stored() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.gql_ok(Some(&alice.access), BIO, json!({"bio": "before"})).await;

    let text = upload(&app, &alice.access, "x.png", "image/png", b"just some text, named x.png".to_vec()).await;
    assert_eq!(field_errors(&text), vec![("image".to_owned(), vec![INVALID_IMAGE.to_owned()])]);
    assert_eq!(text["data"], Value::Null);
    let empty = upload(&app, &alice.access, "e.png", "image/png", Vec::new()).await;
    assert_eq!(field_errors(&empty), vec![("image".to_owned(), vec!["The submitted file is empty.".to_owned()])]);
    // A truncated WebP header (RIFF without WEBP) is not an image either.
    let riff = upload(&app, &alice.access, "r.webp", "image/webp", b"RIFF\0\0\0\0WAVE".to_vec()).await;
    assert_eq!(field_errors(&riff), vec![("image".to_owned(), vec![INVALID_IMAGE.to_owned()])]);

    // Both fields at once, in order; neither is applied.
    let response = multipart(
        &app,
        Some(&alice.access),
        BOTH,
        json!({"input": {"bio": "b".repeat(501), "image": null}}),
        json!({"0": ["variables.input.image"]}),
        vec![("0", "x.png", "image/png", b"<svg></svg>".to_vec())],
    )
    .await;
    let both: Value = response.json().await.unwrap();
    assert_eq!(
        field_errors(&both),
        vec![
            ("bio".to_owned(), vec!["Ensure this field has no more than 500 characters.".to_owned()]),
            ("image".to_owned(), vec![INVALID_IMAGE.to_owned()]),
        ]
    );
    assert_eq!(codes(&both), vec!["BAD_USER_INPUT"; 2]);
    // A valid image with an invalid bio is not stored either.
    let response = multipart(
        &app,
        Some(&alice.access),
        BOTH,
        json!({"input": {"bio": "b".repeat(501), "image": null}}),
        json!({"0": ["variables.input.image"]}),
        vec![("0", "ok.png", "image/png", png())],
    )
    .await;
    let bio_only: Value = response.json().await.unwrap();
    assert_eq!(field_errors(&bio_only).len(), 1, "{bio_only}");

    assert_eq!(stored_files(&app), Vec::<String>::new(), "no file left behind");
    let me = app.gql_ok(Some(&alice.access), PROFILE, json!({})).await;
    assert_eq!(me["me"]["profile"], json!({"bio": "before", "image": DEFAULT}));
}

#[tokio::test]
async fn a_png_header_followed_by_html_is_refused_and_a_trailer_is_not_stored() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let html = b"<html><body><script>alert(document.cookie)</script></body></html>";
    // Starts like a PNG (the signature, even a whole IHDR chunk), then is a web page.
    for head in [&png()[..8], &png()[..33]] {
        let polyglot = [head, html.as_slice()].concat();
        let body = upload(&app, &alice.access, "x.png", "image/png", polyglot).await;
        assert_eq!(field_errors(&body), vec![("image".to_owned(), vec![INVALID_IMAGE.to_owned()])], "{body}");
    }
    // Each format's first bytes alone are refused too.
    for fake in [&jpeg()[..20], &gif()[..13], &webp()[..16]] {
        let body = upload(&app, &alice.access, "x.img", "image/png", [fake, html.as_slice()].concat()).await;
        assert_eq!(field_errors(&body), vec![("image".to_owned(), vec![INVALID_IMAGE.to_owned()])], "{body}");
    }
    assert_eq!(stored_files(&app), Vec::<String>::new(), "nothing stored");

    // A whole image with the page appended: the picture is kept, the page is not.
    let body = upload(&app, &alice.access, "x.png", "image/png", [png().as_slice(), html].concat()).await;
    let url = body["data"]["updateProfile"]["profile"]["image"].as_str().expect("stored").to_owned();
    let stored = std::fs::read(on_disk(&app, &url)).unwrap();
    assert!(!stored.windows(6).any(|w| w == b"<html>"), "the appended page is gone");
    assert_eq!(image::load_from_memory(&stored).unwrap().to_rgba8(), picture(6, 4));
}

#[tokio::test]
async fn exif_and_the_gps_position_are_gone_after_the_upload() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sent = jpeg_with_gps();
    let exif = exif_of(&sent).expect("the sent JPEG carries EXIF");
    assert!(exif.windows(2).any(|w| w == [0x88, 0x25]), "with a GPSInfo entry");

    let body = upload(&app, &alice.access, "photo.jpg", "image/jpeg", sent).await;
    let url = body["data"]["updateProfile"]["profile"]["image"].as_str().expect("stored").to_owned();
    let stored = std::fs::read(on_disk(&app, &url)).unwrap();
    assert_eq!(exif_of(&stored), None, "no EXIF in the stored copy");
    assert!(!stored.windows(6).any(|w| w == b"Exif\0\0"), "no EXIF block at all");
    assert!(!stored.windows(2).any(|w| w == [0xFF, 0xE1]), "no APP1 segment");
    let served = app.client.get(app.url(&url)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(served.as_ref(), stored.as_slice());
    let copy = image::load_from_memory(&stored).unwrap();
    assert_eq!((copy.width(), copy.height()), (6, 4));
}

#[tokio::test]
async fn a_decompression_bomb_is_refused() {
    use agora::media::{MAX_IMAGE_DECODE_BYTES, MAX_IMAGE_SIDE};
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.gql_ok(Some(&alice.access), BIO, json!({"bio": "before"})).await;
    // Wider than the side limit: 12 KB that would decode to 100 MB.
    let wide = blank_png(10_000, png::ColorType::Grayscale);
    assert!(10_000 > MAX_IMAGE_SIDE && wide.len() < 64 * 1024, "{}", wide.len());
    // Within the side limit, but its pixels (8,000² RGB after the palette) take 192 MB.
    let deep = blank_png(8_000, png::ColorType::Indexed);
    const { assert!(8_000 <= MAX_IMAGE_SIDE && 8_000u64 * 8_000 * 3 > MAX_IMAGE_DECODE_BYTES) };
    for bomb in [wide, deep] {
        let body = upload(&app, &alice.access, "bomb.png", "image/png", bomb).await;
        assert_eq!(field_errors(&body), vec![("image".to_owned(), vec![INVALID_IMAGE.to_owned()])], "{body}");
    }
    assert_eq!(stored_files(&app), Vec::<String>::new(), "nothing stored");
    // The same kind of image, small, is accepted: the limits, not the shape, refused the bombs.
    let small = upload(&app, &alice.access, "blank.png", "image/png", blank_png(64, png::ColorType::Indexed)).await;
    assert!(small.get("errors").is_none(), "{small}");
    let me = app.gql_ok(Some(&alice.access), PROFILE, json!({})).await;
    assert_eq!(me["me"]["profile"]["bio"], "before");
}

#[tokio::test]
async fn oversize_files_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sized = |len: usize| {
        let mut bytes = png();
        bytes.resize(len, 0x42);
        bytes
    };

    // Exactly the limit is accepted.
    let largest = upload(&app, &alice.access, "big.png", "image/png", sized(MAX_IMAGE_BYTES)).await;
    assert!(largest.get("errors").is_none(), "{largest}");
    let accepted = stored_files(&app);
    assert_eq!(accepted.len(), 1);

    // One byte more reaches the resolver and is a field error.
    let over = upload(&app, &alice.access, "big.png", "image/png", sized(MAX_IMAGE_BYTES + 1)).await;
    assert_eq!(
        field_errors(&over),
        vec![("image".to_owned(), vec![format!("Ensure this file is no larger than {MAX_IMAGE_BYTES} bytes.")])]
    );
    // Well over: the multipart reader stops at the cap (413) before the resolver runs.
    let response = multipart(
        &app,
        Some(&alice.access),
        IMAGE,
        json!({"file": null}),
        json!({"0": ["variables.file"]}),
        vec![("0", "huge.png", "image/png", sized(MAX_IMAGE_BYTES + MAX_IMAGE_BYTES / 10))],
    )
    .await;
    assert_eq!(response.status(), 413);

    assert_eq!(stored_files(&app), accepted, "only the accepted file is stored");
    let me = app.gql_ok(Some(&alice.access), PROFILE, json!({})).await;
    assert_eq!(me["me"]["profile"]["image"], format!("/media/user_images/{}", accepted[0]));
}

#[tokio::test]
async fn one_file_per_request() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let response = multipart(
        &app,
        Some(&alice.access),
        "mutation($a: Upload, $b: Upload) { one: updateProfile(input: {image: $a}) { id } two: updateProfile(input: {image: $b}) { id } }",
        json!({"a": null, "b": null}),
        json!({"0": ["variables.a"], "1": ["variables.b"]}),
        vec![("0", "a.png", "image/png", png()), ("1", "b.gif", "image/gif", gif())],
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(stored_files(&app), Vec::<String>::new());
}

#[tokio::test]
async fn request_bodies_are_capped() {
    let app = spawn_app_with(|s| s.max_body_bytes = 64 * 1024).await;
    let alice = app.user("alice").await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&alice.access)
        .json(&json!({"query": BIO, "variables": {"bio": "x".repeat(100 * 1024)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = multipart(
        &app,
        Some(&alice.access),
        IMAGE,
        json!({"file": null}),
        json!({"0": ["variables.file"]}),
        vec![("0", "a.png", "image/png", [png(), vec![0; 100 * 1024]].concat())],
    )
    .await;
    assert_eq!(response.status(), 413);
    assert_eq!(stored_files(&app), Vec::<String>::new());
    // Small requests still pass.
    app.gql_ok(Some(&alice.access), BIO, json!({"bio": "small"})).await;
}

#[tokio::test]
async fn the_new_file_is_removed_when_the_database_write_fails() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    // A user the database does not know: the profile row cannot be written (foreign key).
    let mut ghost =
        agora::service::accounts::find_by_username(&app.context.state.db, &alice.username).await.unwrap().unwrap();
    ghost.id += 1_000;
    let result = profiles::update(
        &app.context.state.db,
        &app.context.state.media,
        &ghost,
        ProfileUpdate { bio: None, image: Some(png()) },
    )
    .await;
    assert!(matches!(result, Err(agora::error::AppError::Internal(_))), "{result:?}");
    assert_eq!(stored_files(&app), Vec::<String>::new(), "the new file was removed");
}
