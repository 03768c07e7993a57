//! The legacy chat WebSocket (`/messenger/ws/ws/chat/<room_name>/`, API.md "Legacy WebSocket"):
//! no chat rule is decided here.
//!
//! * Handshake: the token (`?token=` first, else `Authorization: Bearer`) is checked as REST
//!   checks it, then the room as `chatRoom(name:)` checks it (unknown or not a member is 404),
//!   the user and the room in one statement (`service::chat::room_with_member`). A refusal is
//!   the REST JSON answer (401, 404), sent before the upgrade.
//! * Out: the room's live feed (`service::live::room_feed`, the one `messageAdded(roomName:)`
//!   reads), opened before the upgrade is answered, so everything stored from then on arrives
//!   once, in storage order — a frame the client sends right after the upgrade comes back too.
//!   Each message is written from what its event carries as the legacy
//!   `{"id","user","content","timestamp"}` (compact UTF-8 JSON, always a text frame). The feed is
//!   read directly rather than through the GraphQL subscription: a socket holds the feed and
//!   nothing else (no operation, document or variables), and a handshake costs two statements
//!   (the caller with the room, then its last sequence number once the feed listens).
//! * In: `{"message": text}` (a text frame, or a binary one holding JSON) runs the mutation
//!   `sendMessage` as the caller; the message then reaches every socket of the room, this one
//!   included, through the feed. A bad frame gets `{"error": "…"}` on this socket only.
//!
//! Closing: like Django's, the socket lives as long as the connection (an expired token does not
//! end it), except that it is closed with 4403 once its user is deactivated or deleted. When the
//! feed ends early (it fell behind the bus, `reason: LAGGED`, or missed
//! messages could not be read) the socket is closed with **1011** and the feed's message as the
//! reason: the client reconnects and reads what it missed from the history endpoint. On
//! shutdown `ws::keepalive` closes with 1001 (Django's uvicorn sends 1012: a known difference).
//!
//! Each connection owns its feed and polls it in its own task, so a slow client holds up only
//! itself: its outgoing queue is bounded, a socket that does not take a frame within a ping
//! period is dropped by `ws::keepalive`, and a feed that falls too far behind ends (above).
//! The feed is polled while the socket's own frame is being sent (one at a time): a feed
//! paused mid-read would keep its pooled connection from the send that needs one. A send's
//! future is boxed when a frame arrives, so an idle socket's task does not carry its space.

use std::pin::pin;
use std::time::Duration;

use async_graphql::ServerError;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, close_code};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::header::{CONNECTION, UPGRADE};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Fuse, FusedFuture};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::json;

use super::body::{self, Field, Kind};
use super::pyjson::{self, PyValue};
use super::shapes;
use super::{Caller, Document, decorate, errors, query};
use crate::auth::{self, AuthError, Viewer};
use crate::bus::MessageEvent;
use crate::client::ClientIp;
use crate::context::AppContext;
use crate::graphql::error as codes;
use crate::graphql::scalars::format_timestamp;
use crate::service::live::{self, Feed, LiveError};
use crate::transport::socket as ws;

/// The route, with and without its trailing slash.
pub const PATHS: [&str; 2] = ["/messenger/ws/ws/chat/{room_name}", "/messenger/ws/ws/chat/{room_name}/"];

static SEND: Document = Document::new(
    "mutation($name: String!, $content: String!) { sendMessage(roomName: $name, content: $content) { id } }",
);

/// Every document the socket sends (checked against the schema by a test).
pub static DOCUMENTS: [&Document; 1] = [&SEND];

const INVALID_JSON: &str = "Invalid JSON.";
const NOT_A_MESSAGE: &str = "Expected an object with a \"message\" key.";
/// The frame's only field, read as DRF's `CharField` reads a body field.
const MESSAGE_FIELD: [Field; 1] = [Field { name: "message", kind: Kind::Text }];

/// Whether a request asks to become a WebSocket (as uvicorn decides which app scope it gets).
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name, token: &str| {
        headers.get_all(name).iter().any(|value| {
            String::from_utf8_lossy(value.as_bytes()).split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    has_token(CONNECTION, "upgrade") && has_token(UPGRADE, "websocket")
}

/// The handshake: 401 or 404 with REST's bodies before any upgrade, then the bridge.
pub async fn connect(
    State(ctx): State<AppContext>,
    axum::Extension(sockets): axum::Extension<std::sync::Arc<ws::SocketLimiter>>,
    ClientIp(ip): ClientIp,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // Not a WebSocket handshake: Django's URLconf has no such HTTP route.
    let Ok(upgrade) = upgrade else { return decorate(errors::not_found(), None) };
    // Any other WebSocket path is a 404 before authentication.
    let Some(room) = room_name(uri.path()) else { return errors::not_found() };
    let (user, feed) = match caller_in_room(&ctx, &uri, &headers, &room).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    let bridge = Bridge { caller: Caller { ctx, viewer: Viewer::User(user), ip }, room };
    let Some(permit) = sockets.acquire(ip) else {
        return errors::detail(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "Too many open WebSockets from this address.",
        );
    };
    let every = Duration::from_secs(bridge.caller.ctx.state.settings.ws_ping_seconds.max(1));
    let tasks = bridge.caller.ctx.lifecycle.tasks.clone();
    ws::configure(upgrade)
        .on_upgrade(move |socket| {
            tasks.track_future(async move {
                let _counted =
                    (crate::metrics::websocket_opened("legacy"), crate::metrics::subscription_started("legacy"));
                let _permit = permit;
                bridge.run(socket, feed, every).await
            })
        })
        .into_response()
}

/// The room of a path, as Channels routes it: the path percent-decoded (as uvicorn's `unquote`,
/// invalid UTF-8 replaced), then `^/messenger/ws/ws/chat/([^/]+)/?$`.
fn room_name(path: &str) -> Option<String> {
    let tail = path.strip_prefix("/messenger/ws/ws/chat/")?;
    let decoded = percent_decode(tail);
    let name = decoded.strip_suffix('/').unwrap_or(&decoded);
    (!name.is_empty() && !name.contains('/')).then(|| name.to_owned())
}

/// Python's `urllib.parse.unquote`: `%XX` escapes decoded as UTF-8 (a `%` not followed by two
/// hex digits stays as it is), invalid sequences replaced.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The token as the reference's `JWTAuthMiddleware` finds it: the first non-empty `?token=`
/// (Python's `parse_qs` drops empty values), else the `Authorization` header (read as the REST
/// endpoints read it).
fn token_of(uri: &Uri, headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let from_query = query::pairs(uri)
        .into_iter()
        .find(|(name, value)| name == "token" && !value.is_empty())
        .map(|(_, value)| value);
    match from_query {
        Some(token) => Ok(Some(token)),
        None => {
            let header = auth::authorization_header(headers);
            Ok(auth::bearer_token(header.as_deref())?.map(str::to_owned))
        }
    }
}

/// The caller (checked as REST checks a token) and the live feed of `room` from now on, or
/// the refusal of the handshake: 401 as REST answers it, 404 when the room is unknown or the
/// caller is not a member (as `chatRoom(name:)` answers). A member's handshake reads the user
/// and the room in one statement; only a refusal reads the user alone, to tell 401 from 404.
async fn caller_in_room(
    ctx: &AppContext,
    uri: &Uri,
    headers: &HeaderMap,
    room: &str,
) -> Result<(entity::user::Model, Feed), Response> {
    let db = &ctx.state.db;
    let token = token_of(uri, headers).map_err(|err| errors::auth_error(&err))?;
    let Some(token) = token else { return Err(errors::auth_error(&AuthError::NoCredentials)) };
    let user_id = auth::access_user_id(&ctx.state.tokens, &token).map_err(|err| errors::auth_error(&err))?;
    let found = crate::service::chat::room_with_member(db, user_id, room).await.map_err(|err| {
        tracing::error!(error = %err, "legacy chat socket: the room could not be read");
        errors::server_error()
    })?;
    let Some((room, user)) = found else {
        // Not a member, an unknown room, or no such user: the user decides between 401 and 404.
        return Err(match auth::authenticate(db, &ctx.state.tokens, Some(&token)).await {
            Err(err) => errors::auth_error(&err),
            Ok(_) => errors::not_found(),
        });
    };
    let user = auth::active(Some(user)).map_err(|err| errors::auth_error(&err))?;
    match live::room_feed(db, &*ctx.state.bus, &room, None).await {
        Ok(Some(feed)) => Ok((user, feed)),
        // Only a resumed feed can be too far behind.
        Ok(None) => Err(errors::server_error()),
        Err(err) => {
            tracing::error!(error = %err, "legacy chat socket: the feed could not be opened");
            Err(errors::server_error())
        }
    }
}

/// One accepted connection: the caller in one room.
struct Bridge {
    caller: Caller,
    room: String,
}

/// What to send on the connection.
#[derive(Debug, PartialEq)]
enum Reply {
    Nothing,
    Frame(Message),
    Close(Message),
}

impl Bridge {
    async fn run(self, socket: WebSocket, mut feed: Feed, every: Duration) {
        let (mut outgoing, incoming) = ws::keepalive(socket, every, &self.caller.ctx.lifecycle);
        let mut incoming = pin!(incoming);
        let ctx = &self.caller.ctx;
        // Ends when the user is deactivated or deleted (`ws::watch_owners`).
        let owner = match &self.caller.viewer {
            Viewer::User(user) => Some(ctx.socket_owners.register(user.id)),
            _ => None,
        };
        let revoked = owner.as_ref().map(|owner| owner.revoked.clone()).unwrap_or_default();
        // The frame being sent, polled alongside the feed: the feed must never wait for a send.
        // A feed paused mid-read holds a pooled connection (or a pool permit granted while it
        // waited), and a send needs connections (its reads, the writer's transaction): enough
        // sockets sending at once used to check out the whole pool and stall every write until
        // the acquire timeout. One send at a time per socket, as Django's consumer does: the
        // next frame is read once it is done.
        let mut sending: Fuse<BoxFuture<'_, Reply>> = Fuse::terminated();
        loop {
            let reply = tokio::select! {
                _ = revoked.cancelled() => Reply::Close(ws::close(ws::CLOSE_USER_INACTIVE, "User is inactive")),
                item = feed.next() => match item {
                    Some(Ok(event)) => event.as_message().map_or(Reply::Nothing, frame_for),
                    Some(Err(err)) => feed_failed(&self.room, err),
                    None => Reply::Close(self.feed_ended()),
                },
                reply = &mut sending, if !sending.is_terminated() => reply,
                frame = incoming.next(), if sending.is_terminated() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        sending = self.receive(Some(text.to_string())).boxed().fuse();
                        Reply::Nothing
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        sending = self.receive(decode_binary(&bytes)).boxed().fuse();
                        Reply::Nothing
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Reply::Nothing,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                },
            };
            let (frame, last) = match reply {
                Reply::Nothing => continue,
                Reply::Frame(frame) => (frame, false),
                Reply::Close(frame) => (frame, true),
            };
            // Waits while the queue is full; `ws::keepalive` drops a client that stopped reading,
            // and then this fails.
            if outgoing.send(frame).await.is_err() || last {
                return;
            }
        }
    }

    /// The feed ended without an error: the server is stopping (the writer sends 1001
    /// itself), or the bus closed.
    fn feed_ended(&self) -> Message {
        if self.caller.ctx.lifecycle.shutdown.is_cancelled() {
            ws::close(close_code::AWAY, "server shutting down")
        } else {
            ws::close(close_code::ERROR, "live feed ended; reconnect and read the history")
        }
    }

    /// An incoming frame (`None`: bytes that do not decode): sends its message, or says why not.
    async fn receive(&self, text: Option<String>) -> Reply {
        let Some(Ok(frame)) = text.as_deref().map(pyjson::parse_lenient) else { return error(INVALID_JSON) };
        let has_message = matches!(&frame, PyValue::Dict(entries) if entries.iter().any(|(k, _)| k == "message"));
        if !has_message {
            return error(NOT_A_MESSAGE);
        }
        let fields = match body::fields(&frame, &MESSAGE_FIELD) {
            Ok(fields) => fields,
            Err(_) => return error(NOT_A_MESSAGE),
        };
        if let Some(message) = fields.problems.iter().next().and_then(|(_, messages)| messages.first()) {
            return error(message);
        }
        let sent = self.caller.execute(&SEND, json!({"name": self.room, "content": fields.text("message")})).await;
        let Err(errors) = sent else { return Reply::Nothing };
        match field_message(&errors) {
            Some(message) => error(&message),
            // The user was deactivated or deleted since the handshake: nothing was stored.
            None if errors.first().and_then(codes::code_of) == Some(codes::UNAUTHENTICATED) => {
                Reply::Close(ws::close(ws::CLOSE_USER_INACTIVE, "User is inactive"))
            }
            // An internal error was logged with its cause where GraphQL answered it.
            None => {
                let first = errors.first().map(|e| e.message.as_str()).unwrap_or_default();
                tracing::warn!(room = %self.room, error = first, "legacy chat socket: sendMessage failed");
                Reply::Close(ws::close(close_code::ERROR, first))
            }
        }
    }
}

/// A stored message as the legacy frame, from what its event carries.
fn frame_for(message: &MessageEvent) -> Reply {
    crate::metrics::chat_delivered(message.timestamp);
    let shaped = shapes::Message {
        id: message.message_id,
        user: message.author_username.clone(),
        content: message.content.clone(),
        timestamp: format_timestamp(&message.timestamp),
    };
    match serde_json::to_string(&shaped) {
        Ok(text) => Reply::Frame(Message::Text(text.into())),
        Err(err) => {
            tracing::error!(room = %message.room_name, error = %err, "legacy chat socket: a message could not be written");
            Reply::Close(ws::close(close_code::ERROR, crate::domain::messages::INTERNAL))
        }
    }
}

/// The feed ended early (it fell behind, or could not read missed messages): close with 1011
/// and the feed's message, and the client reconnects and reads the history.
fn feed_failed(room: &str, err: LiveError) -> Reply {
    tracing::warn!(room, error = %err, "legacy chat socket: feed ended");
    Reply::Close(ws::close(close_code::ERROR, &err.to_string()))
}

/// `{"error": text}`, compact.
fn error(text: &str) -> Reply {
    Reply::Frame(Message::Text(json!({ "error": text }).to_string().into()))
}

/// The first message of a field error (`BAD_USER_INPUT` naming a field), as DRF's
/// `serializer.errors["content"][0]`, DRF's throttling message (too many messages), or a
/// refusal (`FORBIDDEN`).
fn field_message(errors: &[ServerError]) -> Option<String> {
    let first = errors.first()?;
    match codes::code_of(first)? {
        // Someone who blocked the sender is in the room: refused, the socket stays open.
        codes::FORBIDDEN => Some(first.message.clone()),
        codes::BAD_USER_INPUT => {
            let fields = errors::field_errors(std::slice::from_ref(first));
            fields.iter().next().and_then(|(_, messages)| messages.first().cloned())
        }
        codes::TOO_MANY_REQUESTS => Some(crate::domain::messages::throttled(errors::retry_after(first))),
        _ => None,
    }
}

/// The text of a binary frame as `json.loads(bytes)` decodes it: the encoding is detected as
/// Python's `json.detect_encoding` does (a BOM, else the pattern of NUL bytes in the first
/// four), and decoded strictly. `None` when the bytes do not decode.
pub fn decode_binary(bytes: &[u8]) -> Option<String> {
    let b = bytes;
    if b.starts_with(&[0, 0, 0xFE, 0xFF]) {
        return utf32(&b[4..], true);
    }
    if b.starts_with(&[0xFF, 0xFE, 0, 0]) {
        return utf32(&b[4..], false);
    }
    if b.starts_with(&[0xFE, 0xFF]) {
        return utf16(&b[2..], true);
    }
    if b.starts_with(&[0xFF, 0xFE]) {
        return utf16(&b[2..], false);
    }
    if let Some(rest) = b.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8(rest.to_vec()).ok();
    }
    if b.len() >= 4 {
        if b[0] == 0 {
            return if b[1] != 0 { utf16(b, true) } else { utf32(b, true) };
        }
        if b[1] == 0 {
            return if b[2] != 0 || b[3] != 0 { utf16(b, false) } else { utf32(b, false) };
        }
    } else if b.len() == 2 {
        if b[0] == 0 {
            return utf16(b, true);
        }
        if b[1] == 0 {
            return utf16(b, false);
        }
    }
    String::from_utf8(b.to_vec()).ok()
}

fn utf16(bytes: &[u8], big_endian: bool) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|c| {
        let pair = [c[0], c[1]];
        if big_endian { u16::from_be_bytes(pair) } else { u16::from_le_bytes(pair) }
    });
    char::decode_utf16(units).collect::<Result<String, _>>().ok()
}

fn utf32(bytes: &[u8], big_endian: bool) -> Option<String> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    bytes
        .chunks_exact(4)
        .map(|c| {
            let quad = [c[0], c[1], c[2], c[3]];
            char::from_u32(if big_endian { u32::from_be_bytes(quad) } else { u32::from_le_bytes(quad) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_frames_decode_as_python_json_loads_does() {
        let text = r#"{"message":"é"}"#;
        assert_eq!(decode_binary(text.as_bytes()).as_deref(), Some(text));
        let with_bom = [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat();
        assert_eq!(decode_binary(&with_bom).as_deref(), Some(text));
        let be16: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let le16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(decode_binary(&be16).as_deref(), Some(text));
        assert_eq!(decode_binary(&le16).as_deref(), Some(text));
        assert_eq!(decode_binary(&[&[0xFF, 0xFE][..], &le16].concat()).as_deref(), Some(text));
        let le32: Vec<u8> = text.chars().flat_map(|c| (c as u32).to_le_bytes()).collect();
        assert_eq!(decode_binary(&le32).as_deref(), Some(text));
        assert_eq!(decode_binary(&[0, 0, 0xFE, 0xFF, 0, 0, 0, b'7']).as_deref(), Some("7"));
        assert_eq!(decode_binary(b"\x80abc"), None, "not UTF-8");
        assert_eq!(decode_binary(b"\"\xc3"), None, "a truncated sequence is an error too");
        assert_eq!(decode_binary(b"").as_deref(), Some(""));
    }

    #[test]
    fn upgrade_requests_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!is_websocket_upgrade(&headers));
        headers.insert(CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert!(!is_websocket_upgrade(&headers));
        headers.insert(UPGRADE, "WebSocket".parse().unwrap());
        assert!(is_websocket_upgrade(&headers));
        headers.insert(UPGRADE, "h2c".parse().unwrap());
        assert!(!is_websocket_upgrade(&headers));
    }

    #[test]
    fn room_names_are_routed_as_channels_routes_them() {
        assert_eq!(room_name("/messenger/ws/ws/chat/a_b/").as_deref(), Some("a_b"));
        assert_eq!(room_name("/messenger/ws/ws/chat/a_b").as_deref(), Some("a_b"));
        assert_eq!(room_name("/messenger/ws/ws/chat/%C3%A9+x").as_deref(), Some("é+x"));
        assert_eq!(room_name("/messenger/ws/ws/chat/a%2F").as_deref(), Some("a"), "the decoded path is routed");
        assert_eq!(room_name("/messenger/ws/ws/chat/%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(room_name("/messenger/ws/ws/chat/%ff").as_deref(), Some("\u{fffd}"));
        for path in [
            "/messenger/ws/ws/chat/",
            "/messenger/ws/ws/chat//",
            "/messenger/ws/ws/chat/a%2Fb",
            "/messenger/ws/ws/chat/a//",
        ] {
            assert_eq!(room_name(path), None, "{path}");
        }
    }

    #[test]
    fn messages_become_legacy_frames_and_a_feed_error_closes_with_1011() {
        let timestamp = chrono::DateTime::parse_from_rfc3339("2026-11-24T18:42:09.605799Z").unwrap().to_utc();
        let event = MessageEvent {
            message_id: 7,
            room_id: 1,
            room_seq: 1,
            room_name: "r".into(),
            member_ids: vec![1, 2],
            author_id: 1,
            author_username: "zoë".into(),
            content: "hi".into(),
            timestamp,
            deleted: false,
        };
        assert_eq!(
            frame_for(&event),
            Reply::Frame(Message::Text(
                r#"{"id":7,"user":"zoë","content":"hi","timestamp":"2026-11-24T18:42:09.605799Z"}"#.into()
            ))
        );
        assert_eq!(
            feed_failed("r", LiveError::Lagged),
            Reply::Close(ws::close(
                close_code::ERROR,
                "subscriber fell too far behind; reconnect and catch up from history"
            ))
        );
    }
}
