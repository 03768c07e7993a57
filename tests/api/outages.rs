//! A database that goes away under a running server: callers get an error of the server's
//! (500, `INTERNAL_SERVER_ERROR`, `UNAVAILABLE`, close 1011), never an answer that blames them
//! (401) or a feed that skips messages; `/readyz` says so. The outage is the pool closed under
//! the server, which every backend answers with an error.

use serde_json::{Value, json};

use agora::bus::{ChatEvent, MessageEvent};

use crate::helpers::*;
use crate::legacy_rest::get;
use crate::legacy_ws::{Frame, LegacyWs};

const CREATE: &str = "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { id name } } }";
const SEND: &str = "mutation($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id } }";
const RESUME: &str =
    "subscription($room: String, $after: String) { messageAdded(roomName: $room, after: $after) { id content } }";

/// Closes the server's connection pool: from now on every statement fails.
async fn database_goes_away(app: &TestApp) {
    app.context.state.db.close_by_ref().await.expect("pool closed");
}

#[tokio::test]
async fn readiness_reports_the_database_outage() {
    let app = spawn_app().await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    database_goes_away(&app).await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["database"], false);
    let live = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200, "the process itself is alive");
}

/// A valid token while the user cannot be looked up: a server error on every transport, not
/// "the token is bad" (a client would throw its tokens away and sign the user out).
#[tokio::test]
async fn authenticating_during_a_database_outage_is_a_server_error_not_401() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.gql_ok(Some(&alice.access), CREATE, json!({"r": bob.username})).await;
    let room = room["createChatRoom"]["chatRoom"]["name"].as_str().unwrap().to_owned();
    database_goes_away(&app).await;

    let body = app.gql(Some(&alice.access), "{ me { id } }", json!({})).await;
    assert_eq!(codes(&body), ["INTERNAL_SERVER_ERROR"], "{body}");

    let profile = get(&app, "/profiles/api/profile/", Some(&alice.access)).await;
    assert_eq!(profile.status, 500, "{}", profile.text);

    let url = app.ws_url(&format!("/messenger/ws/ws/chat/{room}/?token={}", alice.access));
    assert_eq!(LegacyWs::try_connect(&url, &[]).await.err(), Some(500));

    let mut ws = GqlWs::open(&app, WsProtocol::TransportWs).await;
    let answer = ws.init(json!({"Authorization": format!("Bearer {}", alice.access)})).await.expect("a close frame");
    assert_eq!((&answer["type"], &answer["reason"]), (&json!("close"), &json!("Internal server error.")), "{answer}");
}

/// A feed that must read missed messages and cannot ends with an error instead of skipping them:
/// `UNAVAILABLE` on a GraphQL subscription, close 1011 on the legacy socket.
#[tokio::test]
async fn a_gap_that_cannot_be_filled_ends_the_feed_with_unavailable() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.gql_ok(Some(&alice.access), CREATE, json!({"r": bob.username})).await;
    let room_id: i64 = room["createChatRoom"]["chatRoom"]["id"].as_str().unwrap().parse().unwrap();
    let room = room["createChatRoom"]["chatRoom"]["name"].as_str().unwrap().to_owned();
    let sent = app.gql_ok(Some(&alice.access), SEND, json!({"room": room, "c": "one"})).await;
    let first: i64 = sent["sendMessage"]["id"].as_str().unwrap().parse().unwrap();

    // Both feeds are live from "one" on (resuming after it replays nothing).
    use base64::Engine;
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("message:{first}"));
    let mut subscriber = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    subscriber.subscribe(RESUME, json!({"room": room, "after": cursor})).await;
    let mut legacy = LegacyWs::connect(&app, &room, &bob.access).await;
    app.gql_ok(Some(&alice.access), SEND, json!({"room": room, "c": SENTINEL})).await;
    subscriber.expect_sentinel().await;
    legacy.expect_sentinel().await;

    // The event of message 4 arrives while 3 was never announced: 3 must be read, and cannot be.
    database_goes_away(&app).await;
    let event = ChatEvent::Message(MessageEvent {
        message_id: first + 3,
        room_id,
        room_seq: 4,
        room_name: room.clone(),
        member_ids: vec![alice.id.min(bob.id), alice.id.max(bob.id)],
        author_id: alice.id,
        author_username: alice.username.clone(),
        content: "four".to_owned(),
        timestamp: chrono::Utc::now(),
        deleted: false,
    });
    app.context.state.bus.publish(event).await;

    let payload = subscriber.next_payload().await;
    assert_eq!(
        payload["errors"][0]["extensions"],
        json!({"code": "INTERNAL_SERVER_ERROR", "reason": "UNAVAILABLE"}),
        "{payload}"
    );
    assert_eq!(subscriber.recv().await.unwrap()["type"], "complete", "the subscription ended");
    assert_eq!(legacy.frame().await, Frame::Close(Some(1011)));
}
