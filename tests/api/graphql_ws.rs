//! `/graphql/ws` by the book: graphql-transport-ws's MUSTs (PROTOCOL.md: close codes 4400, 4401,
//! 4403, 4408, 4409, 4429, `error` for an operation that does not validate), the older
//! `graphql-ws` protocol's answers, and sockets that end with their credentials (token expiry,
//! deactivated or deleted users) on both socket kinds.

use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::legacy_ws::{Frame, LegacyWs};

const ME: &str = "{ me { username } }";
const SEND: &str = "mutation($r: String!, $c: String!) { sendMessage(roomName: $r, content: $c) { id } }";
const ADDED: &str = "subscription($room: String) { messageAdded(roomName: $room) { id content } }";

/// The close frame a socket ends with: `(code, reason)`.
async fn closed_with(ws: &mut GqlWs) -> (u16, String) {
    loop {
        let message = ws.recv().await.expect("a close frame, not a broken connection");
        if message["type"] == "close" {
            return (message["code"].as_u64().unwrap() as u16, message["reason"].as_str().unwrap_or("").to_owned());
        }
    }
}

async fn room_of(app: &TestApp, alice: &TestUser, bob: &TestUser) -> String {
    let data = app
        .gql_ok(
            Some(&alice.access),
            "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }",
            json!({"r": bob.username}),
        )
        .await;
    data["createChatRoom"]["chatRoom"]["name"].as_str().unwrap().to_owned()
}

/// A `me` query's result on an initialised socket: proves everything sent before it was answered.
async fn sentinel(ws: &mut GqlWs, username: &str) {
    let id = ws.subscribe(ME, json!({})).await;
    let message = ws.recv().await.unwrap();
    assert_eq!(message["id"], id.as_str(), "nothing else came first: {message}");
    assert_eq!(message["payload"]["data"]["me"]["username"], username, "{message}");
    assert_eq!(ws.recv().await.unwrap(), json!({"type": "complete", "id": id}));
}

#[tokio::test]
async fn a_socket_without_connection_init_is_closed_with_4408() {
    let app = spawn_app_with(|settings| settings.ws_init_timeout_seconds = 1).await;
    for protocol in WsProtocol::BOTH {
        let mut ws = GqlWs::open(&app, protocol).await;
        assert_eq!(closed_with(&mut ws).await, (4408, "Connection initialisation timeout".into()), "{protocol:?}");
    }
}

#[tokio::test]
async fn graphql_transport_ws_closes_on_protocol_violations_with_its_codes() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let auth = json!({"type": "connection_init", "payload": {"token": alice.access}});
    let subscribe = |id: &str| json!({"type": "subscribe", "id": id, "payload": {"query": ADDED}});

    // subscribe before connection_ack: 4401.
    let mut ws = GqlWs::open(&app, WsProtocol::TransportWs).await;
    ws.send(subscribe("1")).await;
    assert_eq!(closed_with(&mut ws).await, (4401, "Unauthorized".into()));

    // A second subscribe with the id of a running one: 4409.
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
    ws.send(subscribe("dup")).await;
    ws.send(subscribe("dup")).await;
    assert_eq!(closed_with(&mut ws).await, (4409, "Subscriber for dup already exists".into()));

    // A second connection_init: 4429.
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
    ws.send(auth.clone()).await;
    assert_eq!(closed_with(&mut ws).await.0, 4429);

    // A refused connection_init: 4403.
    for payload in [json!({"token": "garbage"}), json!({"Authorization": "Bearer a b"})] {
        let mut ws = GqlWs::open(&app, WsProtocol::TransportWs).await;
        ws.send(json!({"type": "connection_init", "payload": payload})).await;
        assert_eq!(closed_with(&mut ws).await.0, 4403, "{payload}");
    }

    // Messages that cannot be read: 4400, with a reason a close frame can carry.
    let long_type = "x".repeat(300);
    for bad in [
        "not json".to_owned(),
        json!({"type": long_type}).to_string(),
        json!({"type": "subscribe", "id": "1"}).to_string(),
        json!({"type": "subscribe", "id": "1", "payload": {"variables": {}}}).to_string(),
        json!({"type": "connection_init", "payload": "token"}).to_string(),
        json!({"id": "1"}).to_string(),
    ] {
        let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
        ws.send_raw(&bad).await;
        let (code, reason) = closed_with(&mut ws).await;
        assert_eq!(code, 4400, "{bad}: {reason}");
        assert!(!reason.is_empty() && reason.len() <= 123, "{bad}: {reason}");
    }
}

#[tokio::test]
async fn graphql_transport_ws_answers_pings_and_stops_quietly() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_of(&app, &alice, &bob).await;
    let mut ws = GqlWs::open(&app, WsProtocol::TransportWs).await;
    // Pings are allowed before connection_init.
    ws.send(json!({"type": "ping", "payload": {"n": 1}})).await;
    assert_eq!(ws.recv_raw().await, json!({"type": "pong", "payload": {"n": 1}}));
    let ack = ws.init(json!({"token": alice.access})).await.unwrap();
    assert_eq!(ack, json!({"type": "connection_ack"}));

    // A client that completes a subscription gets nothing more for it (no `complete` echo), and
    // may reuse its id at once.
    let id = ws.subscribe(ADDED, json!({"room": room})).await;
    ws.unsubscribe(&id).await;
    sentinel(&mut ws, &alice.username).await;
    ws.send(json!({"type": "subscribe", "id": id, "payload": {"query": ME}})).await;
    assert_eq!(ws.next_payload().await["data"]["me"]["username"], alice.username.as_str());
    assert_eq!(ws.recv().await.unwrap(), json!({"type": "complete", "id": id}));
}

#[tokio::test]
async fn an_operation_that_does_not_validate_gets_one_error_message_and_nothing_after() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for protocol in WsProtocol::BOTH {
        let mut ws = GqlWs::connect(&app, protocol, Some(&alice.access)).await;
        for (query, variables) in [
            ("subscription { noSuchField }", json!({})),
            ("subscription {", json!({})),
            ("subscription($room: String) { messageAdded(roomName: $room) { id } }", json!({"room": 5})),
        ] {
            let id = ws.subscribe(query, variables).await;
            let message = ws.recv().await.unwrap();
            assert_eq!(message["type"], "error", "{protocol:?} {query}: {message}");
            assert_eq!(message["id"], id.as_str());
            let first = match protocol {
                WsProtocol::TransportWs => {
                    assert!(message["payload"].as_array().is_some_and(|e| !e.is_empty()), "{message}");
                    &message["payload"][0]
                }
                WsProtocol::LegacyWs => &message["payload"],
            };
            assert!(first["message"].as_str().is_some_and(|m| !m.is_empty()), "{message}");
            assert!(first["extensions"]["code"].is_string(), "{message}");
            sentinel(&mut ws, &alice.username).await;
        }
    }
}

#[tokio::test]
async fn graphql_ws_answers_bad_messages_and_stays_open() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = GqlWs::connect(&app, WsProtocol::LegacyWs, Some(&alice.access)).await;
    ws.send_raw("not json").await;
    let message = ws.recv().await.unwrap();
    assert_eq!(message["type"], "connection_error", "{message}");
    assert!(message["payload"]["message"].is_string());
    ws.send(json!({"type": "nonsense", "id": "9"})).await;
    let message = ws.recv().await.unwrap();
    assert_eq!((message["type"].as_str(), message["id"].as_str()), (Some("error"), Some("9")), "{message}");
    sentinel(&mut ws, &alice.username).await;

    // A refused connection_init: `connection_error`, then the socket closes.
    let mut ws = GqlWs::open(&app, WsProtocol::LegacyWs).await;
    let answer = ws.init(json!({"token": "garbage"})).await.unwrap();
    assert_eq!(answer["type"], "connection_error", "{answer}");
    assert_eq!(closed_with(&mut ws).await.0, 4403);
}

#[tokio::test]
async fn a_graphql_socket_ends_with_4401_when_its_access_token_expires() {
    let app = spawn_app_with(|settings| settings.access_token_lifetime = 2).await;
    let alice = app.user("alice").await;
    for protocol in WsProtocol::BOTH {
        let (access, _) = app.sign_in(&alice.username).await;
        let mut ws = GqlWs::connect(&app, protocol, Some(&access)).await;
        assert_eq!(closed_with(&mut ws).await.0, 4401, "{protocol:?}");
    }
}

/// Marks a user inactive (or deletes them) straight in the database, as another tool would.
async fn deactivate(app: &TestApp, user: &TestUser, delete: bool) {
    let db = &app.context.state.db;
    let model = entity::user::Entity::find_by_id(user.id).one(db).await.unwrap().unwrap();
    if delete {
        entity::user::Entity::delete_by_id(user.id).exec(db).await.unwrap();
    } else {
        let mut active = model.into_active_model();
        active.is_active = Set(false);
        active.update(db).await.unwrap();
    }
}

#[tokio::test]
async fn every_socket_of_a_deactivated_or_deleted_user_is_closed() {
    let app = spawn_app_with(|settings| settings.ws_user_check_seconds = 1).await;
    for delete in [false, true] {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let carol = app.user("carol").await;
        // Carol has no room, so deleting her touches no other row.
        let (gone, room) = if delete { (&carol, None) } else { (&alice, Some(room_of(&app, &alice, &bob).await)) };
        let mut sockets = Vec::new();
        for protocol in WsProtocol::BOTH {
            sockets.push(GqlWs::connect(&app, protocol, Some(&gone.access)).await);
        }
        let mut others = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
        let mut legacy = match &room {
            Some(room) => Some(LegacyWs::connect(&app, room, &gone.access).await),
            None => None,
        };
        deactivate(&app, gone, delete).await;
        for ws in &mut sockets {
            assert_eq!(closed_with(ws).await.0, 4403, "delete: {delete}");
        }
        if let Some(legacy) = legacy.as_mut() {
            loop {
                match legacy.frame().await {
                    Frame::Text(_) => continue,
                    frame => break assert_eq!(frame, Frame::Close(Some(4403))),
                }
            }
        }
        // Other users' sockets go on.
        sentinel(&mut others, &bob.username).await;
    }
}

#[tokio::test]
async fn a_deactivated_user_stores_nothing_before_their_sockets_close() {
    // No check during the test: only the service's own check stands between them and the room.
    let app = spawn_app_with(|settings| settings.ws_user_check_seconds = 3600).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_of(&app, &alice, &bob).await;
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
    let mut legacy = LegacyWs::connect(&app, &room, &alice.access).await;
    deactivate(&app, &alice, false).await;

    ws.subscribe(SEND, json!({"r": room, "c": "over GraphQL"})).await;
    let payload = ws.next_payload().await;
    assert_eq!(codes(&payload), vec!["UNAUTHENTICATED"], "{payload}");
    legacy.say("over the legacy socket").await;
    assert_eq!(legacy.frame().await, Frame::Close(Some(4403)));

    let history = app
        .gql_ok(
            Some(&bob.access),
            "query($r: String!) { chatRoom(name: $r) { lastMessage { id } } }",
            json!({"r": room}),
        )
        .await;
    assert_eq!(history["chatRoom"]["lastMessage"], Value::Null, "nothing was stored: {history}");
}

#[tokio::test]
async fn legacy_sockets_outlive_their_access_token() {
    // Django's socket lives as long as the connection: only deactivation ends it.
    let app = spawn_app_with(|settings| settings.access_token_lifetime = 3).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (bob_access, _) = app.sign_in(&bob.username).await;
    let room = room_of(&app, &TestUser { access: bob_access.clone(), ..bob }, &alice).await;
    let mut legacy = LegacyWs::connect(&app, &room, &bob_access).await;
    // The GraphQL socket opened with the same kind of token closes; the legacy one does not.
    let (access, _) = app.sign_in(&alice.username).await;
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&access)).await;
    assert_eq!(closed_with(&mut ws).await.0, 4401);
    legacy.say("still here").await;
    assert_eq!(legacy.content().await, "still here");
}

#[tokio::test]
async fn no_mutation_sent_over_a_socket_after_deactivation_changes_anything() {
    // No watcher check during the test: only the socket's own check stands in the way.
    let app = spawn_app_with(|settings| settings.ws_user_check_seconds = 3600).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = room_of(&app, &alice, &bob).await;
    let send = |token: &str, content: &str| {
        let (token, content, room) = (token.to_owned(), content.to_owned(), room.clone());
        let app = &app;
        async move {
            let data = app.gql_ok(Some(&token), SEND, json!({"r": room, "c": content})).await;
            data["sendMessage"]["id"].as_str().unwrap().to_owned()
        }
    };
    let mine = send(&alice.access, "alice's").await;
    let theirs = send(&bob.access, "bob's").await;
    let state = &app.context.state;
    let mutations = [
        ("mutation { createPost(input: {title: \"t\", content: \"c\"}) { id } }".to_owned(), json!({})),
        ("mutation { updateProfile(input: {bio: \"changed\"}) { id } }".to_owned(), json!({})),
        (
            "mutation($u: String!) { createChatRoom(recipient: $u) { chatRoom { name } } }".to_owned(),
            json!({"u": carol.username}),
        ),
        (SEND.to_owned(), json!({"r": room, "c": "stored?"})),
        (
            "mutation($r: String!, $m: ID!) { markRead(roomName: $r, messageId: $m) { id } }".to_owned(),
            json!({"r": room, "m": theirs}),
        ),
        ("mutation($m: ID!) { editMessage(id: $m, content: \"edited\") { id } }".to_owned(), json!({"m": mine})),
        ("mutation($m: ID!) { deleteMessage(id: $m) }".to_owned(), json!({"m": mine})),
        ("mutation($m: ID!) { react(messageId: $m, emoji: \"👍\") { id } }".to_owned(), json!({"m": theirs})),
        ("mutation($u: String!) { addFriend(username: $u) { id } }".to_owned(), json!({"u": carol.username})),
        ("mutation($u: String!) { blockUser(username: $u) { id } }".to_owned(), json!({"u": carol.username})),
        // A named operation among several: the selected one decides.
        (
            "query A { me { id } } mutation B { createPost(input: {title: \"b\", content: \"b\"}) { id } }".to_owned(),
            json!({}),
        ),
    ];
    for (n, (mutation, variables)) in mutations.into_iter().enumerate() {
        agora::service::accounts::set_active(&state.db, &alice.username, true).await.unwrap();
        let protocol = WsProtocol::BOTH[n % 2];
        let mut ws = GqlWs::connect(&app, protocol, Some(&alice.access)).await;
        let mut second = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
        // Deactivated by another path than this socket: the admin service, or a tool writing
        // the database.
        if n % 2 == 0 {
            agora::service::accounts::set_active(&state.db, &alice.username, false).await.unwrap();
        } else {
            deactivate(&app, &alice, false).await;
        }
        let operation = if mutation.starts_with("query A") { Some("B") } else { None };
        let kind = protocol.subscribe_type();
        ws.send(json!({"type": kind, "id": "m", "payload": {"query": mutation, "variables": variables, "operationName": operation}}))
            .await;
        let payload = ws.next_payload().await;
        assert_eq!(codes(&payload), vec!["UNAUTHENTICATED"], "{mutation}: {payload}");
        assert_eq!(payload["errors"][0]["extensions"]["reason"], "user_inactive", "{payload}");
        assert_eq!(payload["data"], Value::Null, "nothing ran: {payload}");
        // Every socket of the user here closes at once, the watcher's next round not awaited.
        assert_eq!(closed_with(&mut ws).await.0, 4403, "{mutation}");
        assert_eq!(closed_with(&mut second).await.0, 4403, "{mutation}");
    }

    agora::service::accounts::set_active(&state.db, &alice.username, true).await.unwrap();
    let after = app
        .gql_ok(
            Some(&alice.access),
            "query($r: String!) { me { profile { bio friendIds } posts { totalCount } } myChatRooms { name } blockedUsers { id }
               chatRoom(name: $r) { lastReadMessageId messages { edges { node { id content deleted reactions { emoji } } } } } }",
            json!({"r": room}),
        )
        .await;
    assert_eq!(after["me"], json!({"profile": {"bio": "", "friendIds": []}, "posts": {"totalCount": 0}}), "{after}");
    assert_eq!(after["myChatRooms"], json!([{"name": room}]), "no new room: {after}");
    assert_eq!(after["blockedUsers"], json!([]));
    let room_after = &after["chatRoom"];
    assert_ne!(room_after["lastReadMessageId"], json!(theirs), "not marked read: {after}");
    let messages: Vec<&Value> =
        room_after["messages"]["edges"].as_array().unwrap().iter().map(|e| &e["node"]).collect();
    assert_eq!(
        messages,
        vec![
            &json!({"id": mine, "content": "alice's", "deleted": false, "reactions": []}),
            &json!({"id": theirs, "content": "bob's", "deleted": false, "reactions": []}),
        ],
        "nothing sent, edited, deleted or reacted to"
    );
    // Queries of an active user over a socket run as before.
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
    sentinel(&mut ws, &alice.username).await;
}
