//! The legacy chat WebSocket (API.md "Legacy WebSocket") against the Django reference's observed
//! behaviour, over real WebSockets: handshake refusals with REST's bodies, fan-out to every
//! socket of the room in storage order, bad frames, shutdown; and a legacy client's whole flow.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;
use crate::legacy_rest::{Reply, get, legacy_user, post};

const NO_CREDENTIALS: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
const NOT_FOUND: &str = r#"{"detail":"Not found."}"#;
const CREATE_ROOM: &str = "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }";
const SEND: &str = "mutation($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id } }";

pub fn chat_path(room: &str) -> String {
    format!("/messenger/ws/ws/chat/{room}/")
}

fn messages_path(room: &str) -> String {
    format!("/messenger/api/chatrooms/{room}/messages/")
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A legacy chat client on a real WebSocket.
pub struct LegacyWs {
    socket: Socket,
}

/// One frame from the server, as a legacy client sees it.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Text(Value),
    Binary(Vec<u8>),
    Close(Option<u16>),
    /// The connection ended without a close frame (or broke).
    Gone,
}

impl LegacyWs {
    /// Connects with `?token=` (on any server); panics unless the handshake succeeds.
    pub async fn connect_url(url: &str) -> LegacyWs {
        Self::try_connect(url, &[]).await.unwrap_or_else(|status| panic!("handshake refused with {status}"))
    }

    /// Connects `token` to `room` with `?token=`.
    pub async fn connect(app: &TestApp, room: &str, token: &str) -> LegacyWs {
        Self::connect_url(&app.ws_url(&format!("{}?token={token}", chat_path(room)))).await
    }

    /// The handshake; `Err` is the refusal's status.
    pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<LegacyWs, u16> {
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, response)) => {
                assert_eq!(response.headers().get("sec-websocket-protocol"), None, "no subprotocol");
                Ok(LegacyWs { socket })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(err) => panic!("handshake failed: {err}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("frame sent");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.socket.send(Message::binary(bytes.to_vec())).await.expect("frame sent");
    }

    /// Sends `{"message": content}`.
    pub async fn say(&mut self, content: &str) {
        self.send_text(&json!({ "message": content }).to_string()).await;
    }

    /// The next frame (pings and pongs skipped) within `wait`.
    pub async fn frame_within(&mut self, wait: Duration) -> Option<Frame> {
        tokio::time::timeout(wait, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        return Frame::Text(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")));
                    }
                    Some(Ok(Message::Binary(bytes))) => return Frame::Binary(bytes.to_vec()),
                    Some(Ok(Message::Close(frame))) => return Frame::Close(frame.map(|f| u16::from(f.code))),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Frame::Gone,
                }
            }
        })
        .await
        .ok()
    }

    /// The next frame; panics after [`WS_WAIT`].
    pub async fn frame(&mut self) -> Frame {
        self.frame_within(WS_WAIT).await.unwrap_or_else(|| panic!("no frame within {WS_WAIT:?}"))
    }

    /// The next frame, which must be a JSON text frame.
    pub async fn json(&mut self) -> Value {
        match self.frame().await {
            Frame::Text(value) => value,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next broadcast message's content.
    pub async fn content(&mut self) -> String {
        let message = self.json().await;
        message["content"].as_str().unwrap_or_else(|| panic!("not a message: {message}")).to_owned()
    }

    /// The next broadcast is the [`SENTINEL`] the test sent after everything it expected: nothing
    /// else was on its way (see [`GqlWs::expect_sentinel`]).
    pub async fn expect_sentinel(&mut self) {
        assert_eq!(self.content().await, SENTINEL, "expected the sentinel next");
    }

    /// Answers the server's pings for `wait`, asserting that no frame arrives.
    pub async fn stay_idle(&mut self, wait: Duration) {
        if let Some(frame) = self.frame_within(wait).await {
            panic!("expected no frame while idle, got {frame:?}");
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// A WebSocket handshake as a raw HTTP request, so a refusal's status, headers and body can be
/// read in full.
async fn handshake(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = reqwest::Client::new()
        .get(app.url(path))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = if status == 101 { String::new() } else { response.text().await.expect("body") };
    Reply { status, headers, text }
}

/// Two users and their room (created over GraphQL).
async fn pair(app: &TestApp) -> (TestUser, TestUser, String) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let data = app.gql_ok(Some(&alice.access), CREATE_ROOM, json!({"r": bob.username})).await;
    let room = data["createChatRoom"]["chatRoom"]["name"].as_str().unwrap().to_owned();
    (alice, bob, room)
}

async fn history(app: &TestApp, room: &str, token: &str) -> Vec<Value> {
    let reply = get(app, &messages_path(room), Some(token)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json().as_array().unwrap().clone()
}

fn contents(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect()
}

#[track_caller]
fn refused(reply: &Reply, status: u16, body: &str) {
    assert_eq!((reply.status, reply.text.as_str()), (status, body));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let challenge = reply.header("www-authenticate");
    assert_eq!(challenge, (status == 401).then_some(r#"Bearer realm="api""#));
    assert_eq!(reply.header("allow"), None);
}

fn token_invalid(message: &str) -> String {
    json!({"detail": "Given token not valid for any token type", "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}]})
    .to_string()
}

/// A refused handshake: the case, the path, the request headers, the status and the body.
type Refusal<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16, String);

#[tokio::test]
async fn handshakes_are_refused_before_the_upgrade_with_the_rest_bodies() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app).await;
    let carol = app.user("carol").await;
    let path = chat_path(&room);
    let with_token = |token: &str| format!("{path}?token={token}");
    let bob_header = format!("Bearer {}", bob.access);
    let carol_header = format!("Bearer {}", carol.access);
    let expired = mint(
        JWT_HEADER,
        json!({"token_type": "access", "exp": now() - 10, "iat": now() - 310, "jti": "0123456789abcdef0123456789abcdef", "user_id": alice.id.to_string()}),
        SECRET,
    );
    let ghost = mint(
        JWT_HEADER,
        json!({"token_type": "access", "exp": now() + 300, "iat": now(), "jti": "0123456789abcdef0123456789abcdef", "user_id": "987654321"}),
        SECRET,
    );
    let bad_header = r#"{"detail":"Authorization header must contain two space-delimited values","code":"bad_authorization_header"}"#;
    let cases: Vec<Refusal> = vec![
        ("no token", path.clone(), vec![], 401, NO_CREDENTIALS.into()),
        ("another scheme", path.clone(), vec![("authorization", "Token abc")], 401, NO_CREDENTIALS.into()),
        ("lowercase bearer", path.clone(), vec![("authorization", "bearer abc")], 401, NO_CREDENTIALS.into()),
        ("Bearer with two values", path.clone(), vec![("authorization", "Bearer a b")], 401, bad_header.into()),
        ("garbage ?token=", with_token("garbage"), vec![], 401, token_invalid("Token is invalid")),
        (
            "garbage ?token= wins over a good header",
            with_token("garbage"),
            vec![("authorization", &bob_header)],
            401,
            token_invalid("Token is invalid"),
        ),
        ("refresh token", with_token(&alice.refresh), vec![], 401, token_invalid("Token has wrong type")),
        ("expired token", with_token(&expired), vec![], 401, token_invalid("Token is expired")),
        (
            "token of no user",
            with_token(&ghost),
            vec![],
            401,
            r#"{"detail":"User not found","code":"user_not_found"}"#.into(),
        ),
        (
            "unknown room",
            format!("{}?token={}", chat_path("no_such_room"), alice.access),
            vec![],
            404,
            NOT_FOUND.into(),
        ),
        ("unknown room without a token: 401 first", chat_path("no_such_room"), vec![], 401, NO_CREDENTIALS.into()),
        ("room of other users", with_token(&carol.access), vec![], 404, NOT_FOUND.into()),
        (
            "room of other users, token in the header",
            path.clone(),
            vec![("authorization", &carol_header)],
            404,
            NOT_FOUND.into(),
        ),
        (
            "unknown WebSocket path",
            format!("/messenger/ws/nothing/?token={}", alice.access),
            vec![],
            404,
            NOT_FOUND.into(),
        ),
        ("unknown WebSocket path without a token", "/messenger/ws/nothing/".into(), vec![], 404, NOT_FOUND.into()),
        (
            "two segments",
            format!("/messenger/ws/ws/chat/{room}/x/?token={}", alice.access),
            vec![],
            404,
            NOT_FOUND.into(),
        ),
        ("an encoded slash in the name", "/messenger/ws/ws/chat/a%2Fb/".into(), vec![], 404, NOT_FOUND.into()),
        ("empty name", "/messenger/ws/ws/chat//".into(), vec![], 404, NOT_FOUND.into()),
        (
            "a REST path",
            format!("{}?token={}", messages_path(&room), alice.access),
            vec![("authorization", &bob_header)],
            404,
            NOT_FOUND.into(),
        ),
    ];
    for (case, path, headers, status, body) in &cases {
        let reply = handshake(&app, path, headers).await;
        assert_eq!((reply.status, reply.text.as_str()), (*status, body.as_str()), "{case}");
        refused(&reply, *status, body);
    }
    // A real WebSocket client sees the refusal's status too.
    assert_eq!(LegacyWs::try_connect(&app.ws_url(&path), &[]).await.err(), Some(401));
    assert_eq!(LegacyWs::try_connect(&app.ws_url(&with_token(&carol.access)), &[]).await.err(), Some(404));

    // Not a WebSocket handshake at all: Django has no such HTTP route.
    let plain = get(&app, &with_token(&alice.access), Some(&alice.access)).await;
    plain.expect(404, NOT_FOUND).json_content();
    assert_eq!(plain.header("allow"), None);
    let accepted = handshake(&app, &with_token(&alice.access), &[]).await;
    assert_eq!(accepted.status, 101);
}

#[tokio::test]
async fn the_token_comes_from_the_query_or_the_authorization_header() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app).await;
    let bob_header = format!("Bearer {}", bob.access);
    let base = format!("/messenger/ws/ws/chat/{room}");
    let mut by_query = LegacyWs::connect_url(&app.ws_url(&format!("{base}/?token={}", alice.access))).await;
    let mut by_header =
        LegacyWs::try_connect(&app.ws_url(&base), &[("authorization", &bob_header)]).await.expect("header accepted");
    // An empty `?token=` is no token: the header counts (and the first non-empty value wins).
    let mut fallback =
        LegacyWs::try_connect(&app.ws_url(&format!("{base}/?token=")), &[("authorization", &bob_header)])
            .await
            .expect("empty ?token= falls back to the header");
    let mut first_value =
        LegacyWs::connect_url(&app.ws_url(&format!("{base}/?token=&token={}&token=x", alice.access))).await;
    // No Origin check: bearer tokens, not cookies.
    let mut browser = LegacyWs::try_connect(
        &app.ws_url(&format!("{base}/?token={}", alice.access)),
        &[("origin", "https://app.example")],
    )
    .await
    .expect("another origin accepted");

    by_header.say("who is there").await;
    for ws in [&mut by_query, &mut by_header, &mut fallback, &mut first_value, &mut browser] {
        let message = ws.json().await;
        assert_eq!(
            (message["user"].as_str(), message["content"].as_str()),
            (Some(bob.username.as_str()), Some("who is there"))
        );
    }
}

#[tokio::test]
async fn every_socket_of_the_room_gets_every_message_in_order_sender_included() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app).await;
    let mut alice_1 = LegacyWs::connect(&app, &room, &alice.access).await;
    let mut alice_2 = LegacyWs::connect(&app, &room, &alice.access).await;
    let mut bob_1 = LegacyWs::connect(&app, &room, &bob.access).await;

    alice_1.say("Привет!").await;
    let first = alice_1.json().await;
    // The legacy shape, keys in this order, compact UTF-8.
    let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "user", "content", "timestamp"]);
    assert_eq!((first["user"].as_str(), first["content"].as_str()), (Some(alice.username.as_str()), Some("Привет!")));
    assert!(first["id"].is_i64());
    for ws in [&mut alice_2, &mut bob_1] {
        assert_eq!(ws.json().await, first);
    }

    // Bursts from three sockets at once: one order for everyone, the order of storage.
    let mut expected = Vec::new();
    for i in 0..5 {
        alice_1.say(&format!("a1-{i}")).await;
        bob_1.say(&format!("  b-{i}  ")).await;
        alice_2.say(&format!("a2-{i}")).await;
    }
    let mut seen: Vec<Vec<Value>> = Vec::new();
    for ws in [&mut alice_1, &mut alice_2, &mut bob_1] {
        let mut got = Vec::new();
        for _ in 0..15 {
            got.push(ws.json().await);
        }
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    let stored = history(&app, &room, &bob.access).await;
    alice_1.say(SENTINEL).await;
    for ws in [&mut alice_1, &mut alice_2, &mut bob_1] {
        ws.expect_sentinel().await;
    }
    assert_eq!(stored[0], first, "a broadcast equals its history entry");
    assert_eq!(&stored[1..], &seen[0][..], "the order of storage");
    for i in 0..5 {
        expected.extend([format!("a1-{i}"), format!("b-{i}"), format!("a2-{i}")]);
    }
    let mut got = contents(&seen[0]);
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every message once, trimmed");
}

/// A socket keeps reading its feed while its own frame is being sent. It used to wait for the
/// send first: a feed paused in the middle of a read kept its pooled connection, the send then
/// waited for one, and with enough sockets at once the whole pool was checked out by paused
/// feeds and every send stalled until the pool's acquire timeout. With a pool of one
/// connection, one such socket was enough: each socket here sends as soon as it is open,
/// while its feed is still reading where to start.
#[tokio::test]
async fn sockets_sending_at_once_share_a_pool_of_one_connection() {
    let app = spawn_app_with(|settings| settings.db_pool = 1).await;
    let (alice, bob, room) = pair(&app).await;
    let mut sockets = Vec::new();
    for n in 0..6 {
        let token = if n % 2 == 0 { &alice.access } else { &bob.access };
        let mut ws = LegacyWs::connect(&app, &room, token).await;
        for i in 0..3 {
            ws.say(&format!("s{n}-{i}")).await;
        }
        sockets.push(ws);
    }
    let sent: Vec<String> = (0..6).flat_map(|n| (0..3).map(move |i| format!("s{n}-{i}"))).collect();
    // Socket n gets every message sent from socket n on, and perhaps some sent before it opened
    // (whatever was stored after its handshake); each once.
    let mut seen = Vec::new();
    for (n, ws) in sockets.iter_mut().enumerate() {
        let mine: HashSet<&String> = sent.iter().filter(|c| c[1..2].parse::<usize>().unwrap() >= n).collect();
        let mut got = HashSet::new();
        while !mine.iter().all(|c| got.contains(*c)) {
            let content = ws.content().await;
            assert!(sent.contains(&content), "socket {n} got {content}");
            assert!(got.insert(content.clone()), "socket {n} got {content} twice");
        }
        seen.push(got);
    }
    sockets[0].say(SENTINEL).await;
    for (ws, got) in sockets.iter_mut().zip(&mut seen) {
        loop {
            let content = ws.content().await;
            if content == SENTINEL {
                break;
            }
            assert!(got.insert(content.clone()), "{content} twice");
        }
    }
    let mut stored = contents(&history(&app, &room, &bob.access).await);
    stored.sort();
    let mut all: Vec<String> = sent.into_iter().chain([SENTINEL.to_owned()]).collect();
    all.sort();
    assert_eq!(stored, all, "every send stored, once");
}

#[tokio::test]
async fn bad_frames_get_an_error_on_that_socket_only_and_store_nothing() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app).await;
    let mut alice_ws = LegacyWs::connect(&app, &room, &alice.access).await;
    let mut bob_ws = LegacyWs::connect(&app, &room, &bob.access).await;
    let not_a_message = r#"Expected an object with a "message" key."#;
    let long = json!({ "message": "x".repeat(4001) }).to_string();
    let text_cases: Vec<(&str, &str)> = vec![
        ("hello", "Invalid JSON."),
        ("", "Invalid JSON."),
        ("{\"message\": \"x\"", "Invalid JSON."),
        ("{\"message\": \"x\"} x", "Invalid JSON."),
        ("\u{feff}{\"message\": \"x\"}", "Invalid JSON."),
        (r#"{"text":"x"}"#, not_a_message),
        (r#"["message"]"#, not_a_message),
        (r#""message""#, not_a_message),
        ("42", not_a_message),
        ("null", not_a_message),
        (r#"{"message":"   "}"#, "This field may not be blank."),
        (r#"{"message":""}"#, "This field may not be blank."),
        (r#"{"message":null}"#, "This field may not be null."),
        (r#"{"message":true}"#, "Not a valid string."),
        (r#"{"message":{"a":1}}"#, "Not a valid string."),
        (r#"{"message":["x"]}"#, "Not a valid string."),
        (r#"{"message":"x","message":false}"#, "Not a valid string."),
        (&long, "Ensure this field has no more than 4000 characters."),
    ];
    for (frame, error) in &text_cases {
        alice_ws.send_text(frame).await;
        assert_eq!(alice_ws.frame().await, Frame::Text(json!({ "error": error })), "text frame {frame:?}");
    }
    let binary_cases: [(&[u8], &str); 4] = [
        (b"\x80abc", "Invalid JSON."),
        (b"", "Invalid JSON."),
        (b"{\"message\": \"\xc3\"}", "Invalid JSON."),
        (br#"{"message":"  "}"#, "This field may not be blank."),
    ];
    for (frame, error) in binary_cases {
        alice_ws.send_binary(frame).await;
        // Answers are text frames, even to binary ones.
        assert_eq!(alice_ws.frame().await, Frame::Text(json!({ "error": error })), "binary frame {frame:?}");
    }
    assert!(history(&app, &room, &alice.access).await.is_empty(), "nothing stored");

    // The socket is still open and works; and Bob's next frame is this message: no error and
    // no broadcast came to him before it.
    alice_ws.say("still open").await;
    assert_eq!(alice_ws.content().await, "still open");
    assert_eq!(bob_ws.content().await, "still open");
}

/// A frame nested deeper than the parser's limit (a 64 KiB `[[[…` aborted the process before) is
/// "Invalid JSON." like any other, and the socket goes on working; 512 levels are read.
#[tokio::test]
async fn deeply_nested_frames_are_invalid_json_and_the_socket_stays_open() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app).await;
    let mut alice_ws = LegacyWs::connect(&app, &room, &alice.access).await;
    let mut bob_ws = LegacyWs::connect(&app, &room, &bob.access).await;
    let invalid = Frame::Text(json!({"error": "Invalid JSON."}));
    alice_ws.send_text(&"[".repeat(64 * 1024)).await;
    assert_eq!(alice_ws.frame().await, invalid);
    alice_ws.send_binary(format!(r#"{{"message":{}"#, r#"{"a":"#.repeat(10_000)).as_bytes()).await;
    assert_eq!(alice_ws.frame().await, invalid);
    let too_deep = format!(r#"{{"message":{}1{}}}"#, "[".repeat(512), "]".repeat(512));
    alice_ws.send_text(&too_deep).await;
    assert_eq!(alice_ws.frame().await, invalid);
    let deepest = format!(r#"{{"message":{}1{}}}"#, "[".repeat(511), "]".repeat(511));
    alice_ws.send_text(&deepest).await;
    assert_eq!(alice_ws.frame().await, Frame::Text(json!({"error": "Not a valid string."})));

    // Bob's next frame is this message: nothing came to him before it.
    alice_ws.say("still open").await;
    assert_eq!(alice_ws.content().await, "still open");
    assert_eq!(bob_ws.content().await, "still open");
    assert_eq!(contents(&history(&app, &room, &bob.access).await), ["still open"]);
}

#[tokio::test]
async fn binary_frames_numbers_and_extra_keys_are_accepted() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app).await;
    let mut alice_ws = LegacyWs::connect(&app, &room, &alice.access).await;
    let mut bob_ws = LegacyWs::connect(&app, &room, &bob.access).await;
    let long = "é".repeat(4000);
    let utf16: Vec<u8> = r#"{"message":"utf-16"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let cases: Vec<(Vec<u8>, bool, String)> = vec![
        (br#"{"message":"binary"}"#.to_vec(), true, "binary".into()),
        ([&b"\xef\xbb\xbf"[..], br#"{"message":"with a BOM"}"#].concat(), true, "with a BOM".into()),
        (utf16, true, "utf-16".into()),
        (br#"{"message": 42}"#.to_vec(), false, "42".into()),
        (br#"{"message": -1.5e3}"#.to_vec(), false, "-1500.0".into()),
        (br#"{"message": NaN}"#.to_vec(), false, "nan".into()),
        (json!({"message": format!("  {long} \n"), "extra": true}).to_string().into_bytes(), false, long.clone()),
        (br#" {"message": "x", "message": "last wins"} "#.to_vec(), false, "last wins".into()),
    ];
    for (frame, binary, content) in &cases {
        if *binary {
            alice_ws.send_binary(frame).await;
        } else {
            alice_ws.send_text(std::str::from_utf8(frame).unwrap()).await;
        }
        for ws in [&mut alice_ws, &mut bob_ws] {
            // Always a text frame back.
            let message = ws.json().await;
            assert_eq!(message["content"].as_str(), Some(content.as_str()), "{}", String::from_utf8_lossy(frame));
        }
    }
    let stored = contents(&history(&app, &room, &bob.access).await);
    assert_eq!(stored, cases.iter().map(|c| c.2.clone()).collect::<Vec<_>>());
}

#[tokio::test]
async fn messages_sent_over_rest_and_graphql_reach_the_sockets() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app).await;
    let mut alice_ws = LegacyWs::connect(&app, &room, &alice.access).await;
    let mut bob_ws = LegacyWs::connect(&app, &room, &bob.access).await;

    let posted = post(&app, &messages_path(&room), Some(&bob.access), json!({"content": "via REST"})).await;
    assert_eq!(posted.status, 201, "{}", posted.text);
    for ws in [&mut alice_ws, &mut bob_ws] {
        assert_eq!(ws.json().await, posted.json(), "the broadcast is the REST body");
    }
    app.gql_ok(Some(&alice.access), SEND, json!({"room": room, "c": "via GraphQL"})).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        assert_eq!(ws.content().await, "via GraphQL");
    }
}

#[tokio::test]
async fn a_socket_gets_what_is_stored_after_its_handshake_not_before() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app).await;
    // An empty room: a frame sent right after the upgrade comes back to its sender.
    for i in 0..3 {
        let mut ws = LegacyWs::connect(&app, &room, &alice.access).await;
        ws.say(&format!("right away {i}")).await;
        assert_eq!(ws.content().await, format!("right away {i}"));
        ws.close().await;
    }
    // A room with history: the old messages are not replayed.
    let mut bob_ws = LegacyWs::connect(&app, &room, &bob.access).await;
    bob_ws.say("new").await;
    assert_eq!(bob_ws.content().await, "new");
    bob_ws.say(SENTINEL).await;
    bob_ws.expect_sentinel().await;
}

#[tokio::test]
async fn shutdown_closes_legacy_sockets_with_1001() {
    let mut app = spawn_app().await;
    let (alice, bob, room) = pair(&app).await;
    let mut alice_ws = LegacyWs::connect(&app, &room, &alice.access).await;
    let mut bob_ws = LegacyWs::connect(&app, &room, &bob.access).await;
    alice_ws.say("before").await;
    assert_eq!(bob_ws.content().await, "before");
    assert_eq!(alice_ws.content().await, "before");
    tokio::time::timeout(Duration::from_secs(10), app.stop()).await.expect("the server stops promptly");
    for ws in [&mut alice_ws, &mut bob_ws] {
        assert_eq!(ws.frame().await, Frame::Close(Some(1001)));
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_without_holding_up_the_room() {
    // Two sockets per client: the stalled one and the reader; a third fits once one is gone.
    let app = spawn_app_with(|settings| {
        settings.ws_ping_seconds = 1;
        settings.ws_max_per_client = 2;
    })
    .await;
    let (alice, bob, room) = pair(&app).await;
    // A client that never reads, with a tiny receive window so the server's buffers fill.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let url = app.ws_url(&format!("{}?token={}", chat_path(&room), bob.access));
    let (mut stalled, _) = tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
        .expect("handshake");
    let mut reader = LegacyWs::connect(&app, &room, &alice.access).await;

    // ~6 MB in all: more than the kernel holds for a stalled connection (a send buffer of at
    // most 4 MiB, the tiny receive window).
    const COUNT: usize = 800;
    let big = "é".repeat(3990);
    let reading = tokio::spawn(async move {
        let mut got = 0;
        while got < COUNT {
            let message = reader.json().await;
            assert!(message["content"].as_str().unwrap().ends_with(&format!("#{got}")), "in order");
            got += 1;
        }
        reader
    });
    for i in 0..COUNT {
        app.gql_ok(Some(&alice.access), SEND, json!({"room": room, "c": format!("{big}#{i}")})).await;
    }
    let mut reader =
        tokio::time::timeout(Duration::from_secs(60), reading).await.expect("the reader keeps up").unwrap();

    // The server lets go of the stalled connection while its client still reads nothing: its
    // place is free again (429 until then).
    let url = app.ws_url(&format!("{}?token={}", chat_path(&room), alice.access));
    let mut third = None;
    for _ in 0..400 {
        match LegacyWs::try_connect(&url, &[]).await {
            Ok(ws) => {
                third = Some(ws);
                break;
            }
            Err(status) => assert_eq!(status, 429),
        }
        // Waiting by reading: the reader answers the server's pings meanwhile.
        reader.stay_idle(Duration::from_millis(50)).await;
    }
    let mut third = third.expect("the stalled connection was let go");
    reader.say("the room goes on").await;
    assert_eq!(reader.content().await, "the room goes on", "the reader's next frame");
    assert_eq!(third.content().await, "the room goes on");

    // Reading now shows part of the messages, then the end of the connection.
    let mut received = 0;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stalled.next().await {
                Some(Ok(Message::Text(_))) => received += 1,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled connection was closed by the server");
    assert!(received < COUNT, "the stalled client missed messages ({received} of {COUNT})");
}

/// The issue's scenario: a legacy client, start to finish, beside a GraphQL one.
#[tokio::test]
async fn legacy_client_whole_flow() {
    let app = spawn_app().await;
    // Register over REST and get tokens; refresh one.
    let alice = legacy_user(&app, "alice").await;
    let bob = legacy_user(&app, "bob").await;
    let refreshed = post(&app, "/accounts/api/token/refresh/", None, json!({"refresh": alice.refresh})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let alice_access = refreshed.json()["access"].as_str().unwrap().to_owned();
    assert_ne!(alice_access, alice.access);

    // The room, from both sides: 201, then the same room with 200.
    let created =
        post(&app, "/messenger/api/chatrooms/", Some(&alice_access), json!({"recipient": bob.username})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let again = post(&app, "/messenger/api/chatrooms/", Some(&bob.access), json!({"recipient": alice.username})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    for key in ["id", "name", "members"] {
        assert_eq!(again.json()[key], created.json()[key]);
    }
    let room = created.json()["name"].as_str().unwrap().to_owned();
    let mut members: Vec<i64> = vec![alice.id, bob.id];
    members.sort();
    assert_eq!(created.json()["members"], json!(members));

    // Chat over the legacy WebSocket: Alice with ?token=, Bob with the header.
    let mut alice_ws = LegacyWs::connect(&app, &room, &alice_access).await;
    let bob_header = format!("Bearer {}", bob.access);
    let mut bob_ws =
        LegacyWs::try_connect(&app.ws_url(&format!("/messenger/ws/ws/chat/{room}")), &[("authorization", &bob_header)])
            .await
            .expect("bob connects");
    let mut gql = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    // From the room's start (`after` the cursor of id 0), so the subscription misses nothing even
    // if its feed goes live only after the first messages (on Redis, after SUBSCRIBE is confirmed).
    let from_start = agora::graphql::cursor::Cursor::of(agora::graphql::cursor::MessageKey(0));
    gql.subscribe(
        "subscription($room: String, $after: String) { messageAdded(roomName: $room, after: $after) { id author { username } content } }",
        json!({"room": room, "after": from_start}),
    )
    .await;
    let mut said = Vec::new();
    for (i, text) in ["hi bob", "hi alice", "how are you?", "fine, thanks"].into_iter().enumerate() {
        let ws = if i % 2 == 0 { &mut alice_ws } else { &mut bob_ws };
        ws.say(text).await;
        for ws in [&mut alice_ws, &mut bob_ws] {
            assert_eq!(ws.content().await, text);
        }
        said.push(text.to_owned());
    }
    loop {
        let payload = gql.next_payload().await;
        if payload["data"]["messageAdded"]["content"] == "fine, thanks" {
            break;
        }
    }

    // The history over REST, whole and paged.
    let all = history(&app, &room, &bob.access).await;
    assert_eq!(contents(&all), said);
    let last_id = all[3]["id"].as_i64().unwrap();
    let paged = get(&app, &format!("{}?limit=2&before={last_id}", messages_path(&room)), Some(&alice_access)).await;
    assert_eq!(paged.status, 200, "{}", paged.text);
    assert_eq!(paged.json(), json!([all[1], all[2]]));

    // A REST-posted message arrives on both sockets and on the GraphQL subscription.
    let posted = post(&app, &messages_path(&room), Some(&alice_access), json!({"content": "posted over REST"})).await;
    assert_eq!(posted.status, 201, "{}", posted.text);
    for ws in [&mut alice_ws, &mut bob_ws] {
        assert_eq!(ws.json().await, posted.json());
    }
    let payload = gql.next_payload().await;
    assert_eq!(payload["data"]["messageAdded"]["content"], "posted over REST");
    assert_eq!(payload["data"]["messageAdded"]["id"], json!(posted.json()["id"].as_i64().unwrap().to_string()));
    assert_eq!(payload["data"]["messageAdded"]["author"]["username"], json!(alice.username));
    assert_eq!(history(&app, &room, &alice_access).await.len(), 5);
}

#[tokio::test]
async fn open_websockets_are_capped_per_client() {
    let app = spawn_app_with(|s| s.ws_max_per_client = 2).await;
    let (alice, bob, room) = pair(&app).await;
    let url = |token: &str| app.ws_url(&format!("{}?token={token}", chat_path(&room)));
    let first = LegacyWs::connect_url(&url(&alice.access)).await;
    let _second = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;

    // A third socket of the same address, of either kind, is refused before the upgrade.
    assert_eq!(LegacyWs::try_connect(&url(&bob.access), &[]).await.err(), Some(429));
    let refused = handshake(&app, &format!("{}?token={}", chat_path(&room), alice.access), &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.text, r#"{"detail":"Too many open WebSockets from this address."}"#);
    let mut request = app.ws_url("/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected a 429 refusal, got {:?}", other.map(|_| ())),
    }

    // Closing one frees its place.
    first.close().await;
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(socket) = LegacyWs::try_connect(&url(&alice.access), &[]).await {
            reopened = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "the place of a closed socket is given back");
}
