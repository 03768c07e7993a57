//! The chat features of issue 13 that live in the database, over real HTTP and WebSocket
//! clients: read state, edits and deletions, reactions, username search, friends and blocking
//! (GraphQL, and what the legacy REST API and socket show of them).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::legacy_rest::{get, post, rest};
use crate::legacy_ws::LegacyWs;

const CREATE: &str = "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }";
const SEND: &str = "mutation($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id } }";
const READ_STATE: &str = "query($n: String!) { chatRoom(name: $n) { unreadCount lastReadMessageId } unreadTotal }";
const MARK: &str =
    "mutation($n: String!, $m: ID!) { markRead(roomName: $n, messageId: $m) { name unreadCount lastReadMessageId } }";
const HISTORY: &str = "query($n: String!) { chatRoom(name: $n) { messages(first: 100) { nodes { id content deleted editedAt reactions { emoji count mine } } } } }";
const EDIT: &str =
    "mutation($id: ID!, $c: String!) { editMessage(id: $id, content: $c) { id content editedAt deleted } }";
const DELETE: &str = "mutation($id: ID!) { deleteMessage(id: $id) }";
const REACT: &str =
    "mutation($id: ID!, $e: String!) { react(messageId: $id, emoji: $e) { id reactions { emoji count mine } } }";
const UNREACT: &str =
    "mutation($id: ID!, $e: String!) { unreact(messageId: $id, emoji: $e) { id reactions { emoji count mine } } }";

async fn open_room(app: &TestApp, user: &TestUser, other: &TestUser) -> String {
    let data = app.gql_ok(Some(&user.access), CREATE, json!({"r": other.username})).await;
    data["createChatRoom"]["chatRoom"]["name"].as_str().unwrap().to_owned()
}

async fn send(app: &TestApp, user: &TestUser, room: &str, content: &str) -> String {
    let data = app.gql_ok(Some(&user.access), SEND, json!({"room": room, "c": content})).await;
    data["sendMessage"]["id"].as_str().unwrap().to_owned()
}

async fn read_state(app: &TestApp, user: &TestUser, room: &str) -> (i64, Value, i64) {
    let data = app.gql_ok(Some(&user.access), READ_STATE, json!({"n": room})).await;
    let room = &data["chatRoom"];
    (room["unreadCount"].as_i64().unwrap(), room["lastReadMessageId"].clone(), data["unreadTotal"].as_i64().unwrap())
}

async fn history(app: &TestApp, user: &TestUser, room: &str) -> Vec<Value> {
    let data = app.gql_ok(Some(&user.access), HISTORY, json!({"n": room})).await;
    data["chatRoom"]["messages"]["nodes"].as_array().unwrap().clone()
}

// ---- read state ---------------------------------------------------------------------------------

#[tokio::test]
async fn read_markers_move_forward_only_and_unread_counts_follow() {
    let app = spawn_app().await;
    let (alice, bob, carol) = (app.user("alice").await, app.user("bob").await, app.user("carol").await);
    let room = open_room(&app, &alice, &bob).await;
    let other_room = open_room(&app, &carol, &alice).await;
    assert_eq!(read_state(&app, &alice, &room).await, (0, Value::Null, 0));

    let m1 = send(&app, &bob, &room, "one").await;
    let m2 = send(&app, &bob, &room, "two").await;
    let _mine = send(&app, &alice, &room, "mine does not count").await;
    let m3 = send(&app, &bob, &room, "three").await;
    let elsewhere = send(&app, &carol, &other_room, "elsewhere").await;
    assert_eq!(read_state(&app, &alice, &room).await, (3, Value::Null, 4));

    let marked = app.gql_ok(Some(&alice.access), MARK, json!({"n": room, "m": m2})).await;
    assert_eq!(marked["markRead"], json!({"name": room, "unreadCount": 1, "lastReadMessageId": m2}));
    // Backwards changes nothing.
    app.gql_ok(Some(&alice.access), MARK, json!({"n": room, "m": m1})).await;
    assert_eq!(read_state(&app, &alice, &room).await, (1, json!(m2), 2));
    // Bob's own state is his own.
    assert_eq!(read_state(&app, &bob, &room).await, (1, Value::Null, 1));

    // A message of another room, an unknown one, a room of others: not found.
    for (name, message) in [(&room, &elsewhere), (&room, &"999999".to_owned())] {
        let body = app.gql(Some(&alice.access), MARK, json!({"n": name, "m": message})).await;
        assert_eq!(codes(&body), ["NOT_FOUND"], "{body}");
    }
    let body = app.gql(Some(&bob.access), MARK, json!({"n": other_room, "m": elsewhere})).await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);
    let body = app.gql(Some(&alice.access), MARK, json!({"n": room, "m": "x"})).await;
    assert_eq!(field_errors(&body), [("messageId".to_owned(), vec!["Invalid ID.".to_owned()])]);

    // A deleted message is not unread any more.
    assert_eq!(app.gql_ok(Some(&bob.access), DELETE, json!({"id": m3})).await["deleteMessage"], true);
    assert_eq!(read_state(&app, &alice, &room).await, (0, json!(m2), 1));
    app.gql_ok(Some(&alice.access), MARK, json!({"n": other_room, "m": elsewhere})).await;
    assert_eq!(read_state(&app, &alice, &room).await.2, 0);
}

#[tokio::test]
async fn unread_counts_of_a_room_list_cost_the_same_statements_for_any_number_of_rooms() {
    let app = spawn_app().await;
    let me = app.user("me").await;
    let counter = &app.statements;
    let query = "{ myChatRooms { name unreadCount lastReadMessageId } unreadTotal }";
    let mut costs = Vec::new();
    for rooms in [1, 5] {
        while app.gql_ok(Some(&me.access), "{ myChatRooms { name } }", json!({})).await["myChatRooms"]
            .as_array()
            .unwrap()
            .len()
            < rooms
        {
            let other = app.user("other").await;
            let room = open_room(&app, &other, &me).await;
            let id = send(&app, &other, &room, "hello").await;
            send(&app, &other, &room, "again").await;
            app.gql_ok(Some(&me.access), MARK, json!({"n": room, "m": id})).await;
        }
        let before = counter.load(Ordering::SeqCst);
        let data = app.gql_ok(Some(&me.access), query, json!({})).await;
        costs.push(counter.load(Ordering::SeqCst) - before);
        let list = data["myChatRooms"].as_array().unwrap();
        assert!(list.iter().all(|r| r["unreadCount"] == 1 && r["lastReadMessageId"].is_string()), "{data}");
        assert_eq!(data["unreadTotal"], rooms);
    }
    assert_eq!(costs[0], costs[1], "statements for 1 and for 5 rooms: {costs:?}");
}

// ---- edit, delete, react ------------------------------------------------------------------------

#[tokio::test]
async fn authors_edit_and_delete_their_messages_and_deleted_content_is_gone() {
    let app = spawn_app().await;
    let (alice, bob, eve) = (app.user("alice").await, app.user("bob").await, app.user("eve").await);
    let room = open_room(&app, &alice, &bob).await;
    let first = send(&app, &alice, &room, "helo").await;
    let second = send(&app, &alice, &room, "secret").await;
    let third = send(&app, &bob, &room, "bye").await;

    let edited = app.gql_ok(Some(&alice.access), EDIT, json!({"id": first, "c": "  hello  "})).await;
    assert_eq!(edited["editMessage"]["content"], "hello");
    assert!(edited["editMessage"]["editedAt"].as_str().unwrap().ends_with('Z'));
    for (user, id, code) in [(&bob, &first, "FORBIDDEN"), (&eve, &first, "NOT_FOUND")] {
        let body = app.gql(Some(&user.access), EDIT, json!({"id": id, "c": "mine now"})).await;
        assert_eq!(codes(&body), [code]);
        let body = app.gql(Some(&user.access), DELETE, json!({"id": id})).await;
        assert_eq!(codes(&body), [code]);
    }
    let body = app.gql(Some(&alice.access), EDIT, json!({"id": first, "c": "   "})).await;
    assert_eq!(field_errors(&body), [("content".to_owned(), vec!["This field may not be blank.".to_owned()])]);

    app.gql_ok(Some(&bob.access), REACT, json!({"id": second, "e": "👍"})).await;
    assert_eq!(app.gql_ok(Some(&alice.access), DELETE, json!({"id": second})).await["deleteMessage"], true);
    assert_eq!(app.gql_ok(Some(&alice.access), DELETE, json!({"id": second})).await["deleteMessage"], false);
    let body = app.gql(Some(&alice.access), EDIT, json!({"id": second, "c": "back"})).await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);
    let body = app.gql(Some(&bob.access), REACT, json!({"id": second, "e": "👍"})).await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);

    // GraphQL keeps its place, without content or reactions.
    let nodes = history(&app, &bob, &room).await;
    let shown: Vec<(&str, &str, bool, bool)> = nodes
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap(),
                n["content"].as_str().unwrap(),
                n["deleted"].as_bool().unwrap(),
                n["editedAt"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (first.as_str(), "hello", false, true),
            (second.as_str(), "", true, false),
            (third.as_str(), "bye", false, false)
        ]
    );
    assert_eq!(nodes[1]["reactions"], json!([]));

    // Not in the database either.
    use sea_orm::EntityTrait;
    let db = &app.context.state.db;
    let row = entity::message::Entity::find_by_id(second.parse::<i64>().unwrap()).one(db).await.unwrap().unwrap();
    assert_eq!((row.content.as_str(), row.deleted), ("", true));
    let reactions = entity::reaction::Entity::find().all(db).await.unwrap();
    assert!(reactions.is_empty(), "{reactions:?}");

    // The legacy history leaves it out, in the legacy shape.
    let reply = get(&app, &format!("/messenger/api/chatrooms/{room}/messages/"), Some(&bob.access)).await;
    assert_eq!(reply.status, 200);
    let legacy: Vec<Value> = reply.json().as_array().unwrap().clone();
    let ids: Vec<String> = legacy.iter().map(|m| m["id"].to_string()).collect();
    assert_eq!(ids, [first.clone(), third.clone()]);
    let mut keys: Vec<&String> = legacy[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["content", "id", "timestamp", "user"]);
    assert_eq!(legacy[0]["content"], "hello");
    let reply =
        get(&app, &format!("/messenger/api/chatrooms/{room}/messages/?limit=1&before={third}"), Some(&bob.access))
            .await;
    assert_eq!(reply.json().as_array().unwrap().iter().map(|m| m["id"].to_string()).collect::<Vec<_>>(), [first]);
}

#[tokio::test]
async fn reactions_count_once_per_user_and_emoji() {
    let app = spawn_app().await;
    let (alice, bob, eve) = (app.user("alice").await, app.user("bob").await, app.user("eve").await);
    let room = open_room(&app, &alice, &bob).await;
    let id = send(&app, &alice, &room, "react to me").await;

    app.gql_ok(Some(&alice.access), REACT, json!({"id": id, "e": "👍"})).await;
    app.gql_ok(Some(&alice.access), REACT, json!({"id": id, "e": " 👍 "})).await;
    app.gql_ok(Some(&bob.access), REACT, json!({"id": id, "e": "🎉"})).await;
    let data = app.gql_ok(Some(&bob.access), REACT, json!({"id": id, "e": "👍"})).await;
    assert_eq!(
        data["react"]["reactions"],
        json!([{"emoji": "👍", "count": 2, "mine": true}, {"emoji": "🎉", "count": 1, "mine": true}])
    );
    let data = app.gql_ok(Some(&bob.access), UNREACT, json!({"id": id, "e": "🎉"})).await;
    assert_eq!(data["unreact"]["reactions"], json!([{"emoji": "👍", "count": 2, "mine": true}]));
    app.gql_ok(Some(&bob.access), UNREACT, json!({"id": id, "e": "🎉"})).await;
    app.gql_ok(Some(&alice.access), UNREACT, json!({"id": id, "e": "👍"})).await;
    assert_eq!(history(&app, &alice, &room).await[0]["reactions"], json!([{"emoji": "👍", "count": 1, "mine": false}]));

    let body = app.gql(Some(&eve.access), REACT, json!({"id": id, "e": "👍"})).await;
    assert_eq!(codes(&body), ["NOT_FOUND"], "not a member");
    for (emoji, message) in [("  ", "This field may not be blank."), ("a b", "Enter a single emoji.")] {
        let body = app.gql(Some(&alice.access), REACT, json!({"id": id, "e": emoji})).await;
        assert_eq!(field_errors(&body), [("emoji".to_owned(), vec![message.to_owned()])]);
    }
    let body = app.gql(Some(&alice.access), REACT, json!({"id": id, "e": "🙂".repeat(17)})).await;
    assert_eq!(
        field_errors(&body),
        [("emoji".to_owned(), vec!["Ensure this field has no more than 16 characters.".to_owned()])]
    );
}

#[tokio::test]
async fn the_legacy_socket_shows_no_edits_deletions_or_reactions() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let room = open_room(&app, &alice, &bob).await;
    let mut socket = LegacyWs::connect(&app, &room, &bob.access).await;
    let id = send(&app, &alice, &room, "original").await;
    assert_eq!(socket.content().await, "original");

    app.gql_ok(Some(&alice.access), EDIT, json!({"id": id, "c": "edited"})).await;
    app.gql_ok(Some(&bob.access), REACT, json!({"id": id, "e": "👍"})).await;
    let other = send(&app, &alice, &room, "to delete").await;
    assert_eq!(socket.content().await, "to delete");
    app.gql_ok(Some(&alice.access), DELETE, json!({"id": other})).await;
    app.gql_ok(Some(&bob.access), MARK, json!({"n": room, "m": id})).await;
    // The sentinel is the next frame: nothing of the above came before it.
    send(&app, &alice, &room, "sentinel").await;
    assert_eq!(socket.content().await, "sentinel");
    socket.close().await;
}

// ---- people -------------------------------------------------------------------------------------

const USERS: &str = "query($s: String, $first: Int) { users(search: $s, first: $first) { nodes { username } } }";

#[tokio::test]
async fn username_search_matches_prefixes_in_any_case_and_takes_wildcards_literally() {
    let app = spawn_app().await;
    let register = "mutation($u: String!, $e: String!, $p: String!) { register(input: {username: $u, email: $e, password: $p}) { id } }";
    for (i, name) in ["Zebra_one", "zebra.two", "zeBRA", "Émile", "émilie", "zed"].into_iter().enumerate() {
        app.gql_ok(None, register, json!({"u": name, "e": format!("u{i}@example.com"), "p": PASSWORD})).await;
    }
    let me = app.user("me").await;
    let found = |search: &'static str| {
        let (app, me) = (&app, &me);
        async move {
            let data = app.gql_ok(Some(&me.access), USERS, json!({"s": search, "first": 100})).await;
            data["users"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["username"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("ZEBRA").await, ["Zebra_one", "zebra.two", "zeBRA"]);
    assert_eq!(found("zebra_").await, ["Zebra_one"], "`_` is no wildcard");
    assert!(found("z%").await.is_empty(), "`%` is no wildcard");
    assert_eq!(found("ÉMIL").await, ["Émile", "émilie"]);
    assert_eq!(found("zed").await, ["zed"]);
    assert!(found("zz").await.is_empty());
}

#[tokio::test]
#[ignore = "needs PostgreSQL (TEST_DATABASE_URL)"]
async fn username_search_is_an_index_range_on_postgresql() {
    use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};
    let app = spawn_app_with(|s| assert!(s.database_url.is_some(), "TEST_DATABASE_URL must be set")).await;
    let db = &app.context.state.db;
    assert_eq!(db.get_database_backend(), sea_orm::DbBackend::Postgres);
    db.execute_unprepared(
        "INSERT INTO users (username, email, username_key, email_key, password_hash, is_active, date_joined) \
         SELECT 'User' || n, 'u' || n || '@example.com', 'user' || n, 'u' || n || '@example.com', 'x', true, now() \
         FROM generate_series(1, 20000) AS n",
    )
    .await
    .unwrap();
    db.execute_unprepared("ANALYZE users").await.unwrap();
    // The statement `users(search: "USER1234")` runs.
    let query = entity::user::Entity::find()
        .filter(agora::service::accounts::username_prefix(&agora::service::accounts::fold("USER1234")))
        .order_by_asc(entity::user::Column::Id)
        .limit(21)
        .build(sea_orm::DbBackend::Postgres);
    let explain = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        format!("EXPLAIN {}", query.sql),
        query.values.unwrap(),
    );
    let plan: Vec<String> =
        db.query_all_raw(explain).await.unwrap().iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect();
    let plan = plan.join("\n");
    println!("{plan}");
    assert!(plan.contains("ux_users_username_key"), "the username key index is used:\n{plan}");
    assert!(!plan.contains("Seq Scan"), "no table scan:\n{plan}");

    let me = app.user("me").await;
    let data = app.gql_ok(Some(&me.access), USERS, json!({"s": "USER1234", "first": 100})).await;
    assert_eq!(data["users"]["nodes"].as_array().unwrap().len(), 11, "user1234 and user12340..12349");
}

const FRIENDS: &str = "query($u: String!) { user(username: $u) { isFriend profile { friendIds } friends(first: 10) { totalCount nodes { username isFriend } } } }";
const ADD_FRIEND: &str = "mutation($u: String!) { addFriend(username: $u) { username isFriend } }";
const REMOVE_FRIEND: &str = "mutation($u: String!) { removeFriend(username: $u) { username isFriend } }";

#[tokio::test]
async fn friends_are_one_directional_and_idempotent() {
    let app = spawn_app().await;
    let (alice, bob, carol) = (app.user("alice").await, app.user("bob").await, app.user("carol").await);
    for _ in 0..2 {
        let data = app.gql_ok(Some(&alice.access), ADD_FRIEND, json!({"u": bob.username.to_uppercase()})).await;
        assert_eq!(data["addFriend"], json!({"username": bob.username, "isFriend": true}));
    }
    app.gql_ok(Some(&alice.access), ADD_FRIEND, json!({"u": carol.username})).await;

    let data = app.gql_ok(Some(&bob.access), FRIENDS, json!({"u": alice.username})).await;
    let user = &data["user"];
    assert_eq!(user["isFriend"], false, "bob has not added alice");
    assert_eq!(user["profile"]["friendIds"], json!([bob.id.to_string(), carol.id.to_string()]));
    assert_eq!(user["friends"]["totalCount"], 2);
    assert_eq!(
        user["friends"]["nodes"],
        json!([{"username": bob.username, "isFriend": false}, {"username": carol.username, "isFriend": false}])
    );
    let data = app.gql_ok(Some(&alice.access), FRIENDS, json!({"u": bob.username})).await;
    assert_eq!((&data["user"]["isFriend"], &data["user"]["profile"]["friendIds"]), (&json!(true), &json!([])));

    for _ in 0..2 {
        let data = app.gql_ok(Some(&alice.access), REMOVE_FRIEND, json!({"u": bob.username})).await;
        assert_eq!(data["removeFriend"]["isFriend"], false);
    }
    let data = app.gql_ok(Some(&carol.access), FRIENDS, json!({"u": alice.username})).await;
    assert_eq!(data["user"]["profile"]["friendIds"], json!([carol.id.to_string()]));

    let body = app.gql(Some(&alice.access), ADD_FRIEND, json!({"u": alice.username})).await;
    assert_eq!(
        field_errors(&body),
        [("username".to_owned(), vec!["You cannot add yourself to your friends.".to_owned()])]
    );
    let body = app.gql(Some(&alice.access), ADD_FRIEND, json!({"u": "nobody_at_all"})).await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);
    let body = app.gql(None, ADD_FRIEND, json!({"u": bob.username})).await;
    assert_eq!(codes(&body), ["UNAUTHENTICATED"]);
}

const BLOCK: &str = "mutation($u: String!) { blockUser(username: $u) { username } }";
const UNBLOCK: &str = "mutation($u: String!) { unblockUser(username: $u) { username } }";
const BLOCKED: &str = "{ blockedUsers { username } }";

#[tokio::test]
async fn a_blocked_user_cannot_open_a_room_or_write_in_any_transport() {
    let app = spawn_app().await;
    let (alice, bob, carol) = (app.user("alice").await, app.user("bob").await, app.user("carol").await);
    let room = open_room(&app, &alice, &bob).await;
    let mut bobs_socket = LegacyWs::connect(&app, &room, &bob.access).await;
    let mut alices_socket = LegacyWs::connect(&app, &room, &alice.access).await;

    for _ in 0..2 {
        app.gql_ok(Some(&bob.access), BLOCK, json!({"u": alice.username})).await;
    }
    app.gql_ok(Some(&carol.access), BLOCK, json!({"u": alice.username})).await;
    assert_eq!(
        app.gql_ok(Some(&bob.access), BLOCKED, json!({})).await["blockedUsers"],
        json!([{"username": alice.username}])
    );

    // GraphQL.
    let body = app.gql(Some(&alice.access), SEND, json!({"room": room, "c": "hi?"})).await;
    assert_eq!(codes(&body), ["FORBIDDEN"]);
    let body = app.gql(Some(&alice.access), CREATE, json!({"r": bob.username})).await;
    assert_eq!(codes(&body), ["FORBIDDEN"], "not even the existing room");
    let body = app.gql(Some(&alice.access), CREATE, json!({"r": carol.username})).await;
    assert_eq!(codes(&body), ["FORBIDDEN"]);
    // REST.
    let forbidden = r#"{"detail":"You do not have permission to perform this action."}"#;
    post(&app, &format!("/messenger/api/chatrooms/{room}/messages/"), Some(&alice.access), json!({"content": "hi?"}))
        .await
        .expect(403, forbidden);
    post(&app, "/messenger/api/chatrooms/", Some(&alice.access), json!({"recipient": carol.username}))
        .await
        .expect(403, forbidden);
    // The legacy socket: an error frame, and the socket stays open.
    alices_socket.say("hi?").await;
    assert_eq!(alices_socket.json().await, json!({"error": "You do not have permission to perform this action."}));

    // The blocker still writes; nothing of alice's reached anyone.
    send(&app, &bob, &room, "from bob").await;
    assert_eq!(bobs_socket.content().await, "from bob");
    assert_eq!(alices_socket.content().await, "from bob");

    app.gql_ok(Some(&bob.access), UNBLOCK, json!({"u": alice.username})).await;
    assert_eq!(app.gql_ok(Some(&bob.access), BLOCKED, json!({})).await["blockedUsers"], json!([]));
    alices_socket.say("friends again").await;
    assert_eq!(bobs_socket.content().await, "friends again");
    assert_eq!(alices_socket.content().await, "friends again");

    let body = app.gql(Some(&bob.access), BLOCK, json!({"u": bob.username})).await;
    assert_eq!(field_errors(&body), [("username".to_owned(), vec!["You cannot block yourself.".to_owned()])]);
    let body = app.gql(Some(&bob.access), BLOCK, json!({"u": "nobody_at_all"})).await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);
}

#[tokio::test]
async fn the_legacy_friend_endpoints_answer_as_the_original() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let post_body = "mutation($t: String!, $c: String!) { createPost(input: {title: $t, content: $c}) { id } }";
    for title in ["first", "second"] {
        app.gql_ok(Some(&bob.access), post_body, json!({"t": title, "c": "text"})).await;
    }

    for path in ["/profiles/api/add-friend/", "/profiles/api/add-friend"] {
        post(&app, path, Some(&alice.access), json!({"username": bob.username}))
            .await
            .expect_json(200, json!({"message": format!("{} добавлен в друзья.", bob.username)}));
    }
    post(&app, "/profiles/api/add-friend/", Some(&bob.access), json!({"username": "nobody_at_all"}))
        .await
        .expect(404, r#"{"detail":"Not found."}"#);
    post(&app, "/profiles/api/add-friend/", Some(&bob.access), json!({"username": bob.username}))
        .await
        .expect(400, r#"{"username":["You cannot add yourself to your friends."]}"#);
    post(&app, "/profiles/api/add-friend/", Some(&bob.access), json!({}))
        .await
        .expect(400, r#"{"username":["This field is required."]}"#);
    post(&app, "/profiles/api/add-friend/", None, json!({"username": bob.username})).await.challenged();
    let reply = get(&app, "/profiles/api/add-friend/", Some(&alice.access)).await;
    reply.expect(405, r#"{"detail":"Method \"GET\" not allowed."}"#).allow("POST, OPTIONS");

    // Alice's profile as bob finds it (any case): her friends are ids.
    let reply =
        get(&app, &format!("/profiles/api/search-user/?username={}", alice.username.to_uppercase()), Some(&bob.access))
            .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.text,
        format!(
            r#"{{"id":{},"username":"{}","email":"{}@example.com","profile":{{"image":"/media/user_images/default.jpg","bio":"","friends":[{}]}},"posts":[]}}"#,
            alice.id, alice.username, alice.username, bob.id
        )
    );
    let reply = get(&app, &format!("/profiles/api/search-user?username={}", bob.username), Some(&alice.access)).await;
    let found = reply.json();
    assert_eq!(found["profile"]["friends"], json!([]));
    let titles: Vec<&str> = found["posts"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["second", "first"], "newest first");
    get(&app, "/profiles/api/search-user/?username=nobody_at_all", Some(&alice.access))
        .await
        .expect(404, r#"{"detail":"Not found."}"#);
    get(&app, "/profiles/api/search-user/", Some(&alice.access))
        .await
        .expect(400, r#"{"username":["This field is required."]}"#);
    get(&app, "/profiles/api/search-user/?username=%20", Some(&alice.access))
        .await
        .expect(400, r#"{"username":["This field may not be blank."]}"#);
    get(&app, "/profiles/api/search-user/?username=x", None).await.challenged();

    for _ in 0..2 {
        post(&app, "/profiles/api/remove-friend/", Some(&alice.access), json!({"username": bob.username}))
            .await
            .expect_json(200, json!({"message": format!("{} удален из друзей.", bob.username)}));
    }
    let reply = get(&app, &format!("/profiles/api/search-user/?username={}", alice.username), Some(&bob.access)).await;
    assert_eq!(reply.json()["profile"]["friends"], json!([]));

    // And /openapi.json documents the three.
    let reply = rest(&app, reqwest::Method::GET, "/openapi.json", None, crate::legacy_rest::Payload::Empty).await;
    let document = reply.json();
    for path in ["/profiles/api/search-user/", "/profiles/api/add-friend/", "/profiles/api/remove-friend/"] {
        assert!(document["paths"].get(path).is_some(), "{path} in {}", document["paths"]);
    }
    let search = &document["paths"]["/profiles/api/search-user/"]["get"];
    assert!(search["responses"].get("404").is_some());
    assert_eq!(search["parameters"][0]["schema"]["type"], "string");
    let send = &document["paths"]["/messenger/api/chatrooms/{room_name}/messages/"]["post"];
    assert!(send["responses"].get("403").is_some(), "a block refuses a message");
}
