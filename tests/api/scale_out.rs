//! Real processes: graceful shutdown on SIGTERM, and several processes on one PostgreSQL and
//! one Redis serving one chat (those are `#[ignore]`d: they need `TEST_DATABASE_URL` and
//! `redis-server`, and CI's PostgreSQL pass runs them with `--include-ignored`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;
use crate::legacy_ws::{LegacyWs, chat_path};
use crate::processes::{AgoraProcess, PrivateRedis};

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database().await;
    let mut process = AgoraProcess::start(dir.path(), database.as_deref(), None, &unique("agora_sig")).await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(process.url("/healthz")).send().await.unwrap().status(), 200);

    let mut request = process.ws_url("/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket.send(Message::text(json!({"type": "connection_init", "payload": {}}).to_string())).await.unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap().unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"));

    let status = process.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    let mut close_code = None;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        if let Message::Close(Some(frame)) = frame {
            close_code = Some(u16::from(frame.code));
            break;
        }
    }
    assert_eq!(close_code, Some(1001));
}

const REGISTER: &str = "mutation($u: String!, $e: String!, $p: String!) { register(input: {username: $u, email: $e, password: $p}) { id } }";
const SIGN_IN: &str = "mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { access } }";
const CREATE: &str = "mutation($r: String!) { createChatRoom(recipient: $r) { created chatRoom { id name } } }";
const SEND: &str = "mutation($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id } }";
const RESUME: &str =
    "subscription($room: String, $after: String) { messageAdded(roomName: $room, after: $after) { id content } }";

/// Two processes on one fresh PostgreSQL database and one private Redis.
struct Cluster {
    a: AgoraProcess,
    b: AgoraProcess,
    redis: PrivateRedis,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Cluster {
    /// Panics without `TEST_DATABASE_URL` or `redis-server`: the tests that call it are ignored
    /// unless asked for, and then they must run.
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`start`](Self::start), both processes with more environment.
    async fn start_with(env: &[(&str, &str)]) -> Self {
        let database = fresh_database().await.expect("TEST_DATABASE_URL is set (a PostgreSQL server)");
        let redis = PrivateRedis::start().expect("redis-server is installed");
        let channel = unique("agora_scale");
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = AgoraProcess::start_with(dirs.0.path(), Some(&database), Some(&redis.url()), &channel, env).await;
        let b = AgoraProcess::start_with(dirs.1.path(), Some(&database), Some(&redis.url()), &channel, env).await;
        a.wait_ready().await;
        b.wait_ready().await;
        Self { a, b, redis, _dirs: dirs }
    }

    /// Registers on `a`, signs in on `b`: one account store. Returns (username, access token).
    async fn user(&self, prefix: &str) -> (String, String) {
        let name = unique(prefix);
        let vars = json!({"u": name, "e": format!("{name}@example.com"), "p": PASSWORD});
        self.a.gql_ok(None, REGISTER, vars).await;
        let data = self.b.gql_ok(None, SIGN_IN, json!({"u": name, "p": PASSWORD})).await;
        (name, data["tokenAuth"]["access"].as_str().unwrap().to_owned())
    }
}

impl Cluster {
    /// Opens the room of the token's user with `recipient` (on `a`); returns its name.
    async fn room(&self, token: &str, recipient: &str) -> String {
        let data = self.a.gql_ok(Some(token), CREATE, json!({"r": recipient})).await;
        data["createChatRoom"]["chatRoom"]["name"].as_str().unwrap().to_owned()
    }
}

fn cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("message:{id}"))
}

async fn send(process: &AgoraProcess, token: &str, room: &str, content: &str) -> String {
    let data = process.gql_ok(Some(token), SEND, json!({"room": room, "c": content})).await;
    data["sendMessage"]["id"].as_str().unwrap().to_owned()
}

async fn next_content(ws: &mut GqlWs) -> String {
    let payload = ws.next_payload().await;
    assert!(payload["errors"].is_null(), "{payload}");
    payload["data"]["messageAdded"]["content"].as_str().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs PostgreSQL (TEST_DATABASE_URL) and redis-server"]
async fn messages_reach_subscribers_on_every_process_in_order() {
    let cluster = Cluster::start().await;
    let (alice, alice_token) = cluster.user("alice").await;
    let (bob, bob_token) = cluster.user("bob").await;
    let room = cluster.room(&alice_token, &bob).await;
    let _ = alice;
    let hello = send(&cluster.a, &alice_token, &room, "hello").await;

    // Alice listens on A, Bob on B (each protocol once), both from "hello" on.
    let mut on_a = GqlWs::connect_url(&cluster.a.ws_url("/graphql/ws"), WsProtocol::TransportWs, &alice_token).await;
    let mut on_b = GqlWs::connect_url(&cluster.b.ws_url("/graphql/ws"), WsProtocol::LegacyWs, &bob_token).await;
    for ws in [&mut on_a, &mut on_b] {
        ws.subscribe(RESUME, json!({"room": room, "after": cursor(&hello)})).await;
    }
    // Legacy chat sockets too: Alice's on A (`?token=`), Bob's on B (the header).
    let mut legacy_a =
        LegacyWs::connect_url(&cluster.a.ws_url(&format!("{}?token={alice_token}", chat_path(&room)))).await;
    let bob_header = format!("Bearer {bob_token}");
    let mut legacy_b =
        LegacyWs::try_connect(&cluster.b.ws_url(&chat_path(&room)), &[("authorization", &bob_header)]).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..10 {
        let (process, token) = if i % 2 == 0 { (&cluster.a, &alice_token) } else { (&cluster.b, &bob_token) };
        let content = format!("m{i}");
        send(process, token, &room, &content).await;
        expected.push(content);
    }
    // Over the legacy REST endpoint of each process.
    for (process, token, content) in [(&cluster.a, &bob_token, "rest on A"), (&cluster.b, &alice_token, "rest on B")] {
        let url = process.url(&format!("/messenger/api/chatrooms/{room}/messages/"));
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .json(&json!({"content": content}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        expected.push(content.to_owned());
    }
    for ws in [&mut legacy_a, &mut legacy_b] {
        for content in &expected {
            assert_eq!(&ws.content().await, content);
        }
    }
    // Over the legacy sockets themselves: each frame reaches both processes' sockets.
    for (i, content) in ["ws on A", "ws on B"].into_iter().enumerate() {
        let sender = if i == 0 { &mut legacy_a } else { &mut legacy_b };
        sender.say(content).await;
        for ws in [&mut legacy_a, &mut legacy_b] {
            assert_eq!(ws.content().await, content);
        }
        expected.push(content.to_owned());
    }
    for ws in [&mut on_a, &mut on_b] {
        for content in &expected {
            assert_eq!(&next_content(ws).await, content, "{:?}", ws.protocol);
        }
    }
    send(&cluster.b, &bob_token, &room, SENTINEL).await;
    for ws in [&mut on_a, &mut on_b] {
        ws.expect_sentinel().await;
    }
    for ws in [&mut legacy_a, &mut legacy_b] {
        ws.expect_sentinel().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (TEST_DATABASE_URL) and redis-server"]
async fn both_users_creating_their_room_on_different_processes_get_one_room() {
    let cluster = Cluster::start().await;
    let (alice, alice_token) = cluster.user("alice").await;
    let (bob, bob_token) = cluster.user("bob").await;
    let attempts = (0..10).map(|i| {
        let (process, token, recipient) =
            if i % 2 == 0 { (&cluster.a, &alice_token, &bob) } else { (&cluster.b, &bob_token, &alice) };
        process.gql_ok(Some(token), CREATE, json!({"r": recipient}))
    });
    let results = futures_util::future::join_all(attempts).await;
    let ids: std::collections::HashSet<String> =
        results.iter().map(|r| r["createChatRoom"]["chatRoom"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    let created = results.iter().filter(|r| r["createChatRoom"]["created"] == true).count();
    assert_eq!(created, 1, "{results:?}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (TEST_DATABASE_URL) and redis-server"]
async fn live_delivery_resumes_after_a_redis_restart() {
    let mut cluster = Cluster::start().await;
    let (_, alice_token) = cluster.user("alice").await;
    let (bob, bob_token) = cluster.user("bob").await;
    let room = cluster.room(&alice_token, &bob).await;
    let first = send(&cluster.a, &alice_token, &room, "first").await;
    let mut on_b = GqlWs::connect_url(&cluster.b.ws_url("/graphql/ws"), WsProtocol::TransportWs, &bob_token).await;
    on_b.subscribe(RESUME, json!({"room": room, "after": cursor(&first)})).await;
    send(&cluster.a, &alice_token, &room, "before the outage").await;
    assert_eq!(next_content(&mut on_b).await, "before the outage");

    // Redis goes away: sending still works (the database is the record).
    cluster.redis.stop();
    send(&cluster.a, &alice_token, &room, "during the outage").await;
    let not_ready = reqwest::get(cluster.a.url("/readyz")).await.unwrap().status();
    assert_eq!(not_ready, 503, "readiness reports the outage");

    // Redis comes back: the buses resubscribe by themselves, and the next message brings the
    // missed one with it, in order.
    cluster.redis.restart();
    cluster.a.wait_ready().await;
    cluster.b.wait_ready().await;
    send(&cluster.a, &alice_token, &room, "after the outage").await;
    assert_eq!(next_content(&mut on_b).await, "during the outage");
    assert_eq!(next_content(&mut on_b).await, "after the outage");
    send(&cluster.b, &bob_token, &room, SENTINEL).await;
    on_b.expect_sentinel().await;
}

// chatEvents across processes.

use crate::chat_events::{EVENTS, from_start, label, next_event};

const EDIT: &str = "mutation($id: ID!, $c: String!) { editMessage(id: $id, content: $c) { id } }";
const REACT: &str = "mutation($id: ID!, $e: String!) { react(messageId: $id, emoji: $e) { id } }";
const TYPING: &str = "mutation($n: String!, $t: Boolean!) { setTyping(roomName: $n, typing: $t) }";
const ONLINE: &str = "query($u: String!) { user(username: $u) { online lastSeen } }";

/// The next event that is not presence (sockets of the test users come and go on both sides).
async fn next_but_presence(ws: &mut GqlWs) -> serde_json::Value {
    loop {
        let event = next_event(ws).await;
        if event["__typename"] != "PresenceChanged" {
            return event;
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL (TEST_DATABASE_URL) and redis-server"]
async fn chat_events_cross_processes_and_typing_lapses_on_the_receiving_one() {
    let cluster = Cluster::start_with(&[("AGORA_TYPING_TTL_MS", "300")]).await;
    let (alice, alice_token) = cluster.user("alice").await;
    let (bob, bob_token) = cluster.user("bob").await;
    let room = cluster.room(&alice_token, &bob).await;

    let mut on_b = GqlWs::connect_url(&cluster.b.ws_url("/graphql/ws"), WsProtocol::TransportWs, &bob_token).await;
    on_b.subscribe(EVENTS, json!({"after": from_start()})).await;
    assert_eq!(label(&next_but_presence(&mut on_b).await), format!("room {room}"));
    let id = send(&cluster.a, &alice_token, &room, "hello").await;
    cluster.a.gql_ok(Some(&alice_token), EDIT, json!({"id": id, "c": "hello!"})).await;
    cluster.b.gql_ok(Some(&alice_token), REACT, json!({"id": id, "e": "🎉"})).await;
    cluster.a.gql_ok(Some(&alice_token), TYPING, json!({"n": room, "t": true})).await;
    for expected in [
        format!("added {room} hello"),
        format!("edited {room} hello!"),
        format!("reaction {room} {alice} 🎉 true"),
        format!("typing {room} {alice} true"),
        // Ended by B's feed itself: A never published it.
        format!("typing {room} {alice} false"),
    ] {
        assert_eq!(label(&next_but_presence(&mut on_b).await), expected);
    }
    send(&cluster.a, &alice_token, &room, SENTINEL).await;
    assert_eq!(label(&next_but_presence(&mut on_b).await), format!("added {room} {SENTINEL}"));
}

/// Messages (and an edit of every fourth) through `process`.
async fn write_through(process: &AgoraProcess, token: &str, room: &str, tag: &str, count: usize) {
    for n in 0..count {
        let id = send(process, token, room, &format!("{tag}{n}")).await;
        if n % 4 == 0 {
            process.gql_ok(Some(token), EDIT, json!({"id": id, "c": format!("{tag}{n}!")})).await;
        }
    }
}

/// A stored event by what it is about.
fn key(event: &serde_json::Value) -> String {
    match event["__typename"].as_str().unwrap() {
        "MessageAdded" => format!("added {}", event["message"]["id"].as_str().unwrap()),
        "MessageEdited" => format!("edited {}", event["messageId"].as_str().unwrap()),
        _ => label(event),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (TEST_DATABASE_URL) and redis-server"]
async fn chat_events_resume_on_another_process_while_both_keep_writing() {
    let cluster = Cluster::start().await;
    let (_, alice_token) = cluster.user("alice").await;
    let (bob, bob_token) = cluster.user("bob").await;
    let room = cluster.room(&alice_token, &bob).await;

    let url_a = cluster.a.ws_url("/graphql/ws");
    let mut reference = GqlWs::connect_url(&url_a, WsProtocol::TransportWs, &bob_token).await;
    reference.subscribe(EVENTS, json!({"after": from_start()})).await;
    let mut first = GqlWs::connect_url(&url_a, WsProtocol::TransportWs, &bob_token).await;
    first.subscribe(EVENTS, json!({"after": from_start()})).await;

    // Writers on both processes into one room: commits interleave across two connections pools.
    let (a, b) = (&cluster.a, &cluster.b);
    let writes = async {
        tokio::join!(write_through(a, &alice_token, &room, "a", 25), write_through(b, &bob_token, &room, "b", 25))
    };
    let reconnect = async {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        while seen.len() < 12 {
            let event = next_but_presence(&mut first).await;
            seen.push(key(&event));
            cursor = event["cursor"].as_str().unwrap().to_owned();
        }
        first.close().await;
        let url_b = cluster.b.ws_url("/graphql/ws");
        let mut second = GqlWs::connect_url(&url_b, WsProtocol::LegacyWs, &bob_token).await;
        second.subscribe(EVENTS, json!({"after": cursor})).await;
        (seen, second)
    };
    let ((), (mut seen, mut second)) = tokio::join!(
        async {
            writes.await;
        },
        reconnect
    );
    send(&cluster.a, &alice_token, &room, SENTINEL).await;

    let until_sentinel = async |ws: &mut GqlWs| {
        let mut keys = Vec::new();
        loop {
            let event = next_but_presence(ws).await;
            keys.push(key(&event));
            if event["message"]["content"] == SENTINEL {
                return keys;
            }
        }
    };
    let expected = until_sentinel(&mut reference).await;
    assert_eq!(expected.len(), 1 + 50 + 14 + 1, "room, messages, edits, sentinel");
    seen.extend(until_sentinel(&mut second).await);
    assert_eq!(seen, expected, "no gap and no duplicate at the seam");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (TEST_DATABASE_URL) and redis-server"]
async fn presence_crosses_processes_and_a_dead_process_does_not_keep_users_online() {
    let mut cluster = Cluster::start_with(&[("AGORA_PRESENCE_TTL_SECONDS", "1")]).await;
    let (alice, alice_token) = cluster.user("alice").await;
    let (bob, bob_token) = cluster.user("bob").await;
    cluster.room(&alice_token, &bob).await;

    let mut on_b = GqlWs::connect_url(&cluster.b.ws_url("/graphql/ws"), WsProtocol::TransportWs, &bob_token).await;
    on_b.subscribe(EVENTS, json!({"after": from_start()})).await;
    assert_eq!(next_event(&mut on_b).await["__typename"], "RoomCreated");
    let _on_a = GqlWs::connect_url(&cluster.a.ws_url("/graphql/ws"), WsProtocol::LegacyWs, &alice_token).await;
    assert_eq!(label(&next_event(&mut on_b).await), format!("presence {alice} true"));
    let online = |data: serde_json::Value| data["user"]["online"].as_bool().unwrap();
    assert!(online(cluster.b.gql_ok(Some(&bob_token), ONLINE, json!({"u": alice})).await), "B sees A's socket");

    // A dies with Alice's socket open: nobody says goodbye, yet she is offline within the TTL,
    // and B, finding A's heartbeat lapsed, tells those who share a room with her.
    cluster.a.kill().await;
    assert_eq!(label(&next_event(&mut on_b).await), format!("presence {alice} false"));
    let mut polls = 0;
    while online(cluster.b.gql_ok(Some(&bob_token), ONLINE, json!({"u": alice})).await) {
        polls += 1;
        assert!(polls < 300, "still online long after her process died");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL (TEST_DATABASE_URL) and redis-server"]
async fn a_process_that_stops_takes_its_users_offline_at_once() {
    let mut cluster = Cluster::start().await;
    let (alice, alice_token) = cluster.user("alice").await;
    let (bob, bob_token) = cluster.user("bob").await;
    let room = cluster.room(&alice_token, &bob).await;

    let mut on_b = GqlWs::connect_url(&cluster.b.ws_url("/graphql/ws"), WsProtocol::TransportWs, &bob_token).await;
    on_b.subscribe(EVENTS, json!({"after": from_start()})).await;
    assert_eq!(next_event(&mut on_b).await["__typename"], "RoomCreated");
    let _on_a = GqlWs::connect_url(&cluster.a.ws_url("/graphql/ws"), WsProtocol::TransportWs, &alice_token).await;
    assert_eq!(label(&next_event(&mut on_b).await), format!("presence {alice} true"));

    // SIGTERM: A closes its sockets and says so before it exits (no waiting for the TTL).
    assert!(cluster.a.terminate().await.success());
    let offline = next_event(&mut on_b).await;
    assert_eq!(label(&offline), format!("presence {alice} false"));
    let data = cluster.b.gql_ok(Some(&bob_token), ONLINE, json!({"u": alice})).await;
    assert_eq!(data["user"]["online"], false);
    send(&cluster.b, &alice_token, &room, SENTINEL).await;
    assert_eq!(label(&next_event(&mut on_b).await), format!("added {room} {SENTINEL}"));
}
