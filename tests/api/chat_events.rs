//! The live half of issue 13 over real WebSocket clients: `chatEvents` (each kind, in order,
//! with cursors), resuming one room and all rooms while others keep writing (no gap, no
//! duplicate), too far behind, typing and its expiry, presence, and what blocked users do not
//! see. Processes on PostgreSQL and Redis: `scale_out.rs`.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::*;

pub const EVENTS: &str = r#"subscription($room: String, $after: String) { chatEvents(roomName: $room, after: $after) {
  __typename
  ... on MessageAdded { cursor roomName message { id content deleted author { username } } }
  ... on MessageEdited { cursor roomName messageId content }
  ... on MessageDeleted { cursor roomName messageId }
  ... on ReactionChanged { cursor roomName messageId emoji added user { username } }
  ... on ReadMarkerMoved { cursor roomName messageId user { username } }
  ... on TypingChanged { roomName typing user { username } }
  ... on PresenceChanged { online lastSeen user { username } }
  ... on RoomCreated { cursor roomName room { name } }
} }"#;
const CREATE: &str = "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }";
const SEND: &str = "mutation($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id } }";
const EDIT: &str = "mutation($id: ID!, $c: String!) { editMessage(id: $id, content: $c) { id } }";
const DELETE: &str = "mutation($id: ID!) { deleteMessage(id: $id) }";
const REACT: &str = "mutation($id: ID!, $e: String!) { react(messageId: $id, emoji: $e) { id } }";
const UNREACT: &str = "mutation($id: ID!, $e: String!) { unreact(messageId: $id, emoji: $e) { id } }";
const MARK: &str = "mutation($n: String!, $m: ID!) { markRead(roomName: $n, messageId: $m) { name } }";
const TYPING: &str = "mutation($n: String!, $t: Boolean!) { setTyping(roomName: $n, typing: $t) }";
const BLOCK: &str = "mutation($u: String!) { blockUser(username: $u) { id } }";

/// The cursor of "every room from its start": resuming from it replays everything, so a test
/// needs no probing to know its subscription missed nothing.
pub fn from_start() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("chat:a")
}

pub async fn open_room(app: &TestApp, user: &TestUser, other: &TestUser) -> String {
    let data = app.gql_ok(Some(&user.access), CREATE, json!({"r": other.username})).await;
    data["createChatRoom"]["chatRoom"]["name"].as_str().unwrap().to_owned()
}

pub async fn send(app: &TestApp, user: &TestUser, room: &str, content: &str) -> String {
    let data = app.gql_ok(Some(&user.access), SEND, json!({"room": room, "c": content})).await;
    data["sendMessage"]["id"].as_str().unwrap().to_owned()
}

/// The next `chatEvents` event of a socket (panics on errors).
pub async fn next_event(ws: &mut GqlWs) -> Value {
    let payload = ws.next_payload().await;
    assert!(payload["errors"].is_null(), "unexpected errors: {payload}");
    payload["data"]["chatEvents"].clone()
}

/// An event in a line: its kind and what changed.
pub fn label(event: &Value) -> String {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    match event["__typename"].as_str().unwrap() {
        "MessageAdded" => {
            let m = &event["message"];
            let deleted = if m["deleted"] == true { " (deleted)" } else { "" };
            format!("added {} {}{deleted}", s(&event["roomName"]), s(&m["content"]))
        }
        "MessageEdited" => format!("edited {} {}", s(&event["roomName"]), s(&event["content"])),
        "MessageDeleted" => format!("deleted {} {}", s(&event["roomName"]), s(&event["messageId"])),
        "ReactionChanged" => format!(
            "reaction {} {} {} {}",
            s(&event["roomName"]),
            s(&event["user"]["username"]),
            s(&event["emoji"]),
            event["added"]
        ),
        "ReadMarkerMoved" => format!("read {} {}", s(&event["roomName"]), s(&event["user"]["username"])),
        "TypingChanged" => {
            format!("typing {} {} {}", s(&event["roomName"]), s(&event["user"]["username"]), event["typing"])
        }
        "PresenceChanged" => format!("presence {} {}", s(&event["user"]["username"]), event["online"]),
        "RoomCreated" => format!("room {}", s(&event["roomName"])),
        other => panic!("unknown event {other}"),
    }
}

/// The next event that is not presence.
async fn next_but_presence(ws: &mut GqlWs) -> Value {
    loop {
        let event = next_event(ws).await;
        if event["__typename"] != "PresenceChanged" {
            return event;
        }
    }
}

/// An event by what it is about (ids), not by contents: a replayed message shows its content
/// as it is now, a live one as it was sent.
fn key(event: &Value) -> String {
    match event["__typename"].as_str().unwrap() {
        "MessageAdded" => format!("added {}", event["message"]["id"].as_str().unwrap()),
        "MessageEdited" => format!("edited {}", event["messageId"].as_str().unwrap()),
        _ => label(event),
    }
}

/// The next event must be the sentinel message: nothing else came before it.
pub async fn expect_event_sentinel(ws: &mut GqlWs) {
    let event = next_event(ws).await;
    assert_eq!(
        (event["__typename"].as_str(), event["message"]["content"].as_str()),
        (Some("MessageAdded"), Some(SENTINEL)),
        "expected the sentinel next, got {event}"
    );
}

#[tokio::test]
async fn chat_events_carry_every_kind_in_order_with_cursors() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = open_room(&app, &alice, &bob).await;

    let mut bob_ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    bob_ws.subscribe(EVENTS, json!({"after": from_start()})).await;
    // Replayed from the start: the room itself (for the all-rooms feed).
    assert_eq!(label(&next_event(&mut bob_ws).await), format!("room {room}"));
    // Alice's socket brings her online.
    let mut alice_ws = GqlWs::connect(&app, WsProtocol::LegacyWs, Some(&alice.access)).await;
    alice_ws.subscribe(EVENTS, json!({"room": room, "after": from_start()})).await;
    assert_eq!(label(&next_event(&mut bob_ws).await), format!("presence {} true", alice.username));

    let id = send(&app, &alice, &room, "hello").await;
    app.gql_ok(Some(&alice.access), EDIT, json!({"id": id, "c": "hello, bob"})).await;
    app.gql_ok(Some(&bob.access), REACT, json!({"id": id, "e": "👍"})).await;
    app.gql_ok(Some(&bob.access), REACT, json!({"id": id, "e": "👍"})).await; // no change, no event
    app.gql_ok(Some(&bob.access), UNREACT, json!({"id": id, "e": "👍"})).await;
    app.gql_ok(Some(&bob.access), MARK, json!({"n": room, "m": id})).await;
    app.gql_ok(Some(&alice.access), DELETE, json!({"id": id})).await;
    // Alice types: Bob sees it, Alice (the typist) does not.
    assert_eq!(app.gql_ok(Some(&alice.access), TYPING, json!({"n": room, "t": true})).await["setTyping"], true);
    let other = open_room(&app, &carol, &bob).await;
    send(&app, &alice, &room, SENTINEL).await;

    let stored = [
        format!("added {room} hello"),
        format!("edited {room} hello, bob"),
        format!("reaction {room} {} 👍 true", bob.username),
        format!("reaction {room} {} 👍 false", bob.username),
        format!("read {room} {}", bob.username),
        format!("deleted {room} {id}"),
    ];
    let mut cursors = Vec::new();
    for expected in &stored {
        let event = next_event(&mut bob_ws).await;
        assert_eq!(&label(&event), expected);
        cursors.push(event["cursor"].as_str().unwrap().to_owned());
        // Bob's own socket may bring him online on Alice's feed at any point (it opened as she
        // subscribed): presence is not what this test is about.
        assert_eq!(&label(&next_but_presence(&mut alice_ws).await), expected);
    }
    assert_eq!(label(&next_event(&mut bob_ws).await), format!("typing {room} {} true", alice.username));
    assert_eq!(label(&next_event(&mut bob_ws).await), format!("room {other}"));
    expect_event_sentinel(&mut bob_ws).await;
    assert_eq!(label(&next_but_presence(&mut alice_ws).await), format!("added {room} {SENTINEL}"));
    let unique: std::collections::HashSet<_> = cursors.iter().collect();
    assert_eq!(unique.len(), cursors.len(), "each event has its own cursor");

    // Replayed, a deleted message keeps its place without content.
    let mut late = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    late.subscribe(EVENTS, json!({"room": room, "after": from_start()})).await;
    assert_eq!(label(&next_event(&mut late).await), format!("added {room}  (deleted)"));
    assert_eq!(label(&next_event(&mut late).await), format!("edited {room} "));
}

/// A writer on its own HTTP client, for writes that go on while a test reconnects.
async fn post(client: &reqwest::Client, url: &str, token: &str, query: &str, variables: Value) -> Value {
    let body: Value = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["errors"].is_null(), "{body}");
    body["data"].clone()
}

/// Messages, and an edit of every third, in `room` by `token`'s user.
async fn keep_writing(client: reqwest::Client, url: String, token: String, room: String, count: usize) {
    for n in 0..count {
        let data = post(&client, &url, &token, SEND, json!({"room": room, "c": format!("w{n}")})).await;
        if n % 3 == 0 {
            let id = data["sendMessage"]["id"].clone();
            post(&client, &url, &token, EDIT, json!({"id": id, "c": format!("w{n} edited")})).await;
        }
    }
}

/// Events of a socket until the sentinel of each of `rooms` came, by room.
async fn until_sentinels(ws: &mut GqlWs, rooms: &[&str], seen: &mut HashMap<String, Vec<String>>) {
    let mut done = 0;
    while done < rooms.len() {
        let event = next_event(ws).await;
        let room = event["roomName"].as_str().unwrap().to_owned();
        if event["__typename"] == "MessageAdded" && event["message"]["content"] == SENTINEL {
            done += 1;
        }
        seen.entry(room).or_default().push(key(&event));
    }
}

#[tokio::test]
async fn chat_events_resume_one_room_and_all_rooms_with_no_gap_and_no_duplicate() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let first = open_room(&app, &alice, &bob).await;
    let second = open_room(&app, &carol, &bob).await;
    send(&app, &alice, &first, "before").await;

    // A reference that never disconnects, one all-rooms and one one-room subscriber that will.
    let mut reference = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    reference.subscribe(EVENTS, json!({"after": from_start()})).await;
    let mut all = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    all.subscribe(EVENTS, json!({"after": from_start()})).await;
    let mut one = GqlWs::connect(&app, WsProtocol::LegacyWs, Some(&bob.access)).await;
    one.subscribe(EVENTS, json!({"room": first, "after": from_start()})).await;

    let url = app.url("/graphql");
    let writers = [
        tokio::spawn(keep_writing(app.client.clone(), url.clone(), alice.access.clone(), first.clone(), 30)),
        tokio::spawn(keep_writing(app.client.clone(), url.clone(), carol.access.clone(), second.clone(), 30)),
    ];

    // Each reads a few events, keeps the last cursor and goes away while the writes go on.
    let mut before_all: HashMap<String, Vec<String>> = HashMap::new();
    let mut cursor_all = String::new();
    for _ in 0..8 {
        let event = next_event(&mut all).await;
        before_all.entry(event["roomName"].as_str().unwrap().to_owned()).or_default().push(key(&event));
        cursor_all = event["cursor"].as_str().unwrap().to_owned();
    }
    all.close().await;
    let mut before_one: Vec<String> = Vec::new();
    let mut cursor_one = String::new();
    for _ in 0..5 {
        let event = next_event(&mut one).await;
        before_one.push(key(&event));
        cursor_one = event["cursor"].as_str().unwrap().to_owned();
    }
    one.close().await;

    let mut all = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    all.subscribe(EVENTS, json!({"after": cursor_all})).await;
    let mut one = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    one.subscribe(EVENTS, json!({"room": first, "after": cursor_one})).await;

    for writer in writers {
        writer.await.unwrap();
    }
    send(&app, &alice, &first, SENTINEL).await;
    send(&app, &carol, &second, SENTINEL).await;

    let mut expected = HashMap::new();
    until_sentinels(&mut reference, &[&first, &second], &mut expected).await;
    assert_eq!(expected[&first].len(), 1 + 1 + 30 + 10 + 1, "room, before, writes, edits, sentinel");

    let mut resumed = HashMap::new();
    until_sentinels(&mut all, &[&first, &second], &mut resumed).await;
    for room in [&first, &second] {
        let mut joined = before_all.remove(room).unwrap_or_default();
        joined.extend(resumed.remove(room).unwrap_or_default());
        assert_eq!(&joined, &expected[room], "all rooms, room {room}");
    }

    let mut resumed = HashMap::new();
    until_sentinels(&mut one, &[&first], &mut resumed).await;
    before_one.extend(resumed.remove(&first).unwrap());
    // The one-room feed has no RoomCreated.
    assert_eq!(before_one, expected[&first][1..], "one room");
}

#[tokio::test]
async fn a_client_too_far_behind_is_told_to_read_history() {
    let app = spawn_app_with(|s| s.live_max_replay = 3).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = open_room(&app, &alice, &bob).await;
    for n in 0..4 {
        send(&app, &alice, &room, &format!("m{n}")).await;
    }
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    for variables in [json!({"after": from_start()}), json!({"room": room, "after": from_start()})] {
        let id = ws.subscribe(EVENTS, variables).await;
        let refused = ws.next_payload().await;
        assert_eq!(refused["errors"][0]["extensions"]["code"], "TOO_FAR_BEHIND", "{refused}");
        assert_eq!(ws.recv().await.unwrap(), json!({"type": "complete", "id": id}));
    }
    // Within the limit it resumes: from an all-rooms position where this room stands at its
    // second message, the third and fourth are replayed.
    let room_id = app
        .gql_ok(Some(&bob.access), "query($n: String!) { chatRoom(name: $n) { id } }", json!({"n": room}))
        .await["chatRoom"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let position = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("chat:a{room_id}.2"));
    ws.subscribe(EVENTS, json!({"room": room, "after": position})).await;
    assert_eq!(label(&next_event(&mut ws).await), format!("added {room} m2"));
    assert_eq!(label(&next_event(&mut ws).await), format!("added {room} m3"));
    send(&app, &alice, &room, "m4").await;
    let seen = next_event(&mut ws).await;
    assert_eq!(label(&seen), format!("added {room} m4"));
    let cursor = seen["cursor"].as_str().unwrap().to_owned();
    let mut resumed = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    resumed.subscribe(EVENTS, json!({"room": room, "after": cursor})).await;
    send(&app, &alice, &room, SENTINEL).await;
    expect_event_sentinel(&mut resumed).await;
    // A one-room cursor resumes its room only; other lists' cursors are no cursors here.
    let message_cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("message:1");
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    for variables in [json!({"after": cursor}), json!({"room": room, "after": message_cursor})] {
        ws.subscribe(EVENTS, variables).await;
        let refused = ws.next_payload().await;
        assert_eq!(refused["errors"][0]["extensions"]["field"], "after", "{refused}");
        assert!(ws.recv().await.unwrap()["type"] == "complete");
    }
}

#[tokio::test]
async fn typing_reaches_the_others_and_lapses_unless_renewed() {
    let app = spawn_app_with(|s| s.typing_ttl_ms = 300).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = open_room(&app, &alice, &bob).await;
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    ws.subscribe(EVENTS, json!({"room": room, "after": from_start()})).await;
    // Live once the first stored event arrives.
    send(&app, &alice, &room, "live?").await;
    assert_eq!(label(&next_event(&mut ws).await), format!("added {room} live?"));

    app.gql_ok(Some(&alice.access), TYPING, json!({"n": room, "t": true})).await;
    assert_eq!(label(&next_event(&mut ws).await), format!("typing {room} {} true", alice.username));
    // Not renewed: the feed ends it itself, once.
    assert_eq!(label(&next_event(&mut ws).await), format!("typing {room} {} false", alice.username));
    // Ended by the typist: one false, and nothing lapses later.
    app.gql_ok(Some(&alice.access), TYPING, json!({"n": room, "t": true})).await;
    app.gql_ok(Some(&alice.access), TYPING, json!({"n": room, "t": false})).await;
    assert_eq!(label(&next_event(&mut ws).await), format!("typing {room} {} true", alice.username));
    assert_eq!(label(&next_event(&mut ws).await), format!("typing {room} {} false", alice.username));
    ws.stay_idle(std::time::Duration::from_millis(600)).await;
    send(&app, &alice, &room, SENTINEL).await;
    expect_event_sentinel(&mut ws).await;

    // Only members type.
    let carol = app.user("carol").await;
    let refused = app.gql(Some(&carol.access), TYPING, json!({"n": room, "t": true})).await;
    assert_eq!(codes(&refused), vec!["NOT_FOUND"]);
}

#[tokio::test]
async fn blocked_users_do_not_see_the_typing_of_those_who_blocked_them() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = open_room(&app, &alice, &bob).await;
    app.gql_ok(Some(&bob.access), BLOCK, json!({"u": alice.username})).await;
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
    ws.subscribe(EVENTS, json!({"after": from_start()})).await;
    assert_eq!(label(&next_event(&mut ws).await), format!("room {room}"));
    send(&app, &bob, &room, "live?").await;
    assert_eq!(label(&next_event(&mut ws).await), format!("added {room} live?"));
    app.gql_ok(Some(&bob.access), TYPING, json!({"n": room, "t": true})).await;
    send(&app, &bob, &room, SENTINEL).await;
    expect_event_sentinel(&mut ws).await;
}

#[tokio::test]
async fn message_added_resumes_past_deleted_messages() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = open_room(&app, &alice, &bob).await;
    let first = send(&app, &alice, &room, "one").await;
    let second = send(&app, &alice, &room, "two").await;
    send(&app, &alice, &room, "three").await;
    app.gql_ok(Some(&alice.access), DELETE, json!({"id": second})).await;
    let after = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("message:{first}"));
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    ws.subscribe(
        "subscription($room: String, $after: String) { messageAdded(roomName: $room, after: $after) { content } }",
        json!({"room": room, "after": after}),
    )
    .await;
    assert_eq!(ws.next_payload().await["data"]["messageAdded"]["content"], "three");
    send(&app, &alice, &room, SENTINEL).await;
    ws.expect_sentinel().await;
}

const PRESENCE: &str = "query($u: String!) { user(username: $u) { online lastSeen } }";

async fn presence(app: &TestApp, viewer: &TestUser, of: &TestUser) -> (bool, Value) {
    let data = app.gql_ok(Some(&viewer.access), PRESENCE, json!({"u": of.username})).await;
    (data["user"]["online"].as_bool().unwrap(), data["user"]["lastSeen"].clone())
}

#[tokio::test]
async fn presence_follows_sockets_of_every_kind_and_reaches_those_sharing_a_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = open_room(&app, &alice, &bob).await;
    open_room(&app, &carol, &bob).await;
    app.gql_ok(Some(&carol.access), BLOCK, json!({"u": bob.username})).await;
    assert_eq!(presence(&app, &bob, &alice).await, (false, Value::Null), "never seen");

    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    ws.subscribe(EVENTS, json!({"after": from_start()})).await;
    for _ in 0..2 {
        assert_eq!(next_event(&mut ws).await["__typename"], "RoomCreated");
    }

    // Alice's first socket brings her online; a second one (the legacy chat socket) changes
    // nothing, nor does closing the first while the second is open.
    let first = GqlWs::connect(&app, WsProtocol::LegacyWs, Some(&alice.access)).await;
    assert_eq!(label(&next_event(&mut ws).await), format!("presence {} true", alice.username));
    let (online, last_seen) = presence(&app, &bob, &alice).await;
    assert!(online && last_seen.is_string(), "{last_seen}");
    let mut second = crate::legacy_ws::LegacyWs::connect(&app, &room, &alice.access).await;
    // The legacy socket registers before its feed delivers: once a message reaches it, it counts.
    send(&app, &alice, &room, "legacy live?").await;
    assert_eq!(second.content().await, "legacy live?");
    assert_eq!(label(&next_event(&mut ws).await), format!("added {room} legacy live?"));
    first.close().await;

    // Carol blocked Bob: he sees nothing of her, though Alice does.
    let carols = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&carol.access)).await;
    let mut waited = 0;
    while !presence(&app, &alice, &carol).await.0 {
        waited += 1;
        assert!(waited < 500, "carol never came online");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(presence(&app, &bob, &carol).await, (false, Value::Null));

    second.close().await;
    let offline = next_event(&mut ws).await;
    assert_eq!(label(&offline), format!("presence {} false", alice.username));
    assert!(offline["lastSeen"].is_string(), "{offline}");
    let (online, last_seen) = presence(&app, &bob, &alice).await;
    assert!(!online && last_seen.is_string());
    send(&app, &alice, &room, SENTINEL).await;
    expect_event_sentinel(&mut ws).await;
    carols.close().await;
}

#[tokio::test]
async fn presence_of_a_list_of_users_costs_the_same_statements_for_any_length() {
    // Nothing else may run a statement while one is counted: the check of the socket owners
    // waits an hour, and each socket's own presence change (written by the presence task, in
    // order, after the socket is answered) is known done once a later one has reached `me`.
    let app = spawn_app_with(|s| s.ws_user_check_seconds = 3600).await;
    let me = app.user("me").await;
    let mut events = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&me.access)).await;
    events.subscribe(EVENTS, json!({})).await;
    let prefix = unique("crowd");
    let query = "query($s: String!) { users(search: $s, first: 50) { nodes { username online lastSeen } } }";
    let mut costs = Vec::new();
    let mut sockets = Vec::new();
    for size in [2, 6] {
        while sockets.len() < size {
            let user = app.user(&prefix).await;
            // Half of them online.
            if sockets.len() % 2 == 0 {
                sockets.push(Some(GqlWs::connect(&app, WsProtocol::TransportWs, Some(&user.access)).await));
            } else {
                sockets.push(None);
            }
        }
        // The sentinel: a witness sharing a room with `me` comes online after the crowd.
        let witness = app.user("witness").await;
        open_room(&app, &witness, &me).await;
        let _witness_socket = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&witness.access)).await;
        let expected = format!("presence {} true", witness.username);
        while label(&next_event(&mut events).await) != expected {}

        let before = app.statements.load(std::sync::atomic::Ordering::SeqCst);
        let data = app.gql_ok(Some(&me.access), query, json!({"s": prefix})).await;
        costs.push(app.statements.load(std::sync::atomic::Ordering::SeqCst) - before);
        assert_eq!(data["users"]["nodes"].as_array().unwrap().len(), size);
    }
    assert_eq!(costs[0], costs[1], "statements for 2 and for 6 users: {costs:?}");
}
