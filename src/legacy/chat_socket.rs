//! The legacy chat WebSocket (`/messenger/ws/ws/chat/<room_name>/`, API.md "Legacy WebSocket"),
//! as a bridge over the GraphQL schema: no chat rule is decided here.
//!
//! * Handshake: the token (`?token=` first, else `Authorization: Bearer`) is checked as REST
//!   checks it, then the room with the GraphQL query `chatRoom(name:)` (NOT_FOUND: unknown or
//!   not a member). A refusal is the REST JSON answer (401, 404), sent before the upgrade.
//! * Out: the GraphQL subscription `messageAdded(roomName:, after:)`, resumed after the room's
//!   last message at the handshake, so everything stored from then on arrives once, in storage
//!   order — a frame the client sends right after the upgrade comes back too. Each message is
//!   reshaped into the legacy `{"id","user","content","timestamp"}` (compact UTF-8 JSON, always
//!   a text frame).
//! * In: `{"message": text}` (a text frame, or a binary one holding JSON) runs the mutation
//!   `sendMessage` as the caller; the message then reaches every socket of the room, this one
//!   included, through the subscription. A bad frame gets `{"error": "…"}` on this socket only.
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
//! paused mid-read would keep its pooled connection from the send that needs one.

use std::pin::pin;
use std::sync::Arc;
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
use serde_json::{Value, json};

use super::body::{self, Field, Kind};
use super::pyjson::{self, PyValue};
use super::shapes;
use super::{Caller, Document, decorate, errors, query};
use crate::auth::{self, AuthError, Viewer};
use crate::client::ClientIp;
use crate::context::AppContext;
use crate::error::FieldErrors;
use crate::graphql::cursor::{Cursor, MessageKey};
use crate::graphql::{error as codes, loaders};
use crate::transport::socket as ws;

/// The route, with and without its trailing slash.
pub const PATHS: [&str; 2] = ["/messenger/ws/ws/chat/{room_name}", "/messenger/ws/ws/chat/{room_name}/"];

/// Whether the room exists for the caller, and where its history ends.
static ROOM: Document = Document::new("query($name: String!) { chatRoom(name: $name) { lastMessage { id } } }");

static FEED: Document = Document::new(
    "subscription($name: String!, $after: String) {
  messageAdded(roomName: $name, after: $after) { id user: author { username } content timestamp }
}",
);

static SEND: Document = Document::new(
    "mutation($name: String!, $content: String!) { sendMessage(roomName: $name, content: $content) { id } }",
);

/// Every document the socket sends (checked against the schema by a test).
pub static DOCUMENTS: [&Document; 3] = [&ROOM, &FEED, &SEND];

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
    let user = match caller(&ctx, &uri, &headers).await {
        Ok(user) => user,
        Err(err) => return errors::auth_error(&err),
    };
    let bridge = Bridge { caller: Caller { ctx, viewer: Viewer::User(user), ip }, room };
    let after = match bridge.resume_point().await {
        Ok(after) => after,
        Err(refusal) => return refusal,
    };
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
                let (_permit, _open) = (permit, crate::metrics::websocket_opened("legacy"));
                bridge.run(socket, after, every).await
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

/// The caller as the reference's `JWTAuthMiddleware` finds them: the first non-empty `?token=`
/// (Python's `parse_qs` drops empty values), else the `Authorization` header (read as the REST
/// endpoints read it).
async fn caller(ctx: &AppContext, uri: &Uri, headers: &HeaderMap) -> Result<entity::user::Model, AuthError> {
    let from_query = query::pairs(uri)
        .into_iter()
        .find(|(name, value)| name == "token" && !value.is_empty())
        .map(|(_, value)| value);
    let token = match from_query {
        Some(token) => Some(token),
        None => {
            let header = auth::authorization_header(headers);
            auth::bearer_token(header.as_deref())?.map(str::to_owned)
        }
    };
    auth::authenticate(&ctx.state.db, &ctx.state.tokens, token.as_deref()).await?.ok_or(AuthError::NoCredentials)
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
    /// The cursor of the room's last message (of id 0 for an empty room: from its first
    /// message), or the refusal of the handshake.
    async fn resume_point(&self) -> Result<String, Response> {
        let data = self
            .caller
            .execute(&ROOM, json!({"name": self.room}))
            .await
            .map_err(|errors| errors::from_graphql(&errors, &FieldErrors::default(), &[]))?;
        let last = match &data["chatRoom"]["lastMessage"]["id"] {
            Value::Null => Some(0),
            Value::String(id) => id.parse::<i64>().ok(),
            _ => None,
        };
        let Some(last) = last else {
            tracing::error!(%data, "legacy chat socket: unexpected room data");
            return Err(errors::server_error());
        };
        Ok(Cursor::of(MessageKey(last)))
    }

    async fn run(self, socket: WebSocket, after: String, every: Duration) {
        let (mut outgoing, incoming) = ws::keepalive(socket, every, &self.caller.ctx.lifecycle);
        let mut incoming = pin!(incoming);
        // A connection lives for hours: its loaders batch but do not cache.
        let ctx = &self.caller.ctx;
        let request = self
            .caller
            .request(&FEED, json!({"name": self.room, "after": after}))
            .data(Arc::new(loaders::uncached(ctx.state.db.clone())))
            .data(crate::graphql::observe::Transport("legacy"));
        let mut feed = ctx.schema.execute_stream(request);
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
        // next frame is read once it is done. Boxed: a send runs a whole GraphQL operation, and
        // an idle connection's task should not carry the space of one.
        let mut sending: Fuse<BoxFuture<'_, Reply>> = Fuse::terminated();
        loop {
            let reply = tokio::select! {
                _ = revoked.cancelled() => Reply::Close(ws::close(ws::CLOSE_USER_INACTIVE, "User is inactive")),
                item = feed.next() => match item {
                    Some(response) => frame_for(&self.room, response),
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

    /// The subscription ended without an error: the server is stopping (the writer sends 1001
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

/// One result of the subscription as a legacy frame. An error ends the feed (it fell behind,
/// `reason: LAGGED`, or could not read missed messages): close with 1011 and the feed's message,
/// and the client reconnects and reads the history.
fn frame_for(room: &str, response: async_graphql::Response) -> Reply {
    if let Some(error) = response.errors.first() {
        let reason = error.extensions.as_ref().and_then(|e| e.get("reason")).map(|r| r.to_string());
        tracing::warn!(room, message = %error.message, ?reason, "legacy chat socket: feed ended");
        return Reply::Close(ws::close(close_code::ERROR, &error.message));
    }
    let shaped = response
        .data
        .into_json()
        .map_err(|err| err.to_string())
        .and_then(|mut data| {
            serde_json::from_value::<shapes::Message>(data["messageAdded"].take()).map_err(|err| err.to_string())
        })
        .and_then(|message| serde_json::to_string(&message).map_err(|err| err.to_string()));
    match shaped {
        Ok(text) => Reply::Frame(Message::Text(text.into())),
        Err(err) => {
            tracing::error!(room, error = %err, "legacy chat socket: a message does not fit the legacy shape");
            Reply::Close(ws::close(close_code::ERROR, crate::domain::messages::INTERNAL))
        }
    }
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
    fn feed_results_become_legacy_frames_and_a_feed_error_closes_with_1011() {
        let data = async_graphql::Value::from_json(json!({"messageAdded": {
            "id": "7", "user": {"username": "zoë"}, "content": "hi", "timestamp": "2026-11-24T18:42:09.605799Z"
        }}))
        .unwrap();
        assert_eq!(
            frame_for("r", async_graphql::Response::new(data)),
            Reply::Frame(Message::Text(
                r#"{"id":7,"user":"zoë","content":"hi","timestamp":"2026-11-24T18:42:09.605799Z"}"#.into()
            ))
        );
        let mut lagged = ServerError::new("subscriber fell too far behind; reconnect and catch up from history", None);
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", codes::INTERNAL_SERVER_ERROR);
        ext.set("reason", "LAGGED");
        lagged.extensions = Some(ext);
        assert_eq!(
            frame_for("r", async_graphql::Response::from_errors(vec![lagged])),
            Reply::Close(ws::close(
                close_code::ERROR,
                "subscriber fell too far behind; reconnect and catch up from history"
            ))
        );
    }
}
