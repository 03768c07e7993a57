//! Chat over GraphQL: rooms (naming, one per pair under concurrency), history paging, sending,
//! room lists by activity, and `messageAdded` over both WebSocket protocols.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agora::auth::Viewer;
use agora::bus::{ChatEvent, EventBus, MessageEvent, Topic};
use agora::client::ClientIp;
use agora::state::AppState;
use base64::Engine;
use futures_util::StreamExt;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::{Value, json};

/// The address of requests a test prepares by hand.
const LOCALHOST: ClientIp = ClientIp(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

use crate::helpers::*;

const CREATE: &str = "mutation($r: String!) { createChatRoom(recipient: $r) { created chatRoom { id name displayName createdAt members { id username } } } }";
const SEND: &str = "mutation($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id content timestamp author { username } room { name } } }";
const ROOM: &str =
    "query($n: String!) { chatRoom(name: $n) { id name displayName lastMessage { id content author { username } } } }";
const HISTORY: &str = "query($n: String!, $first: Int, $after: String, $last: Int, $before: String) { chatRoom(name: $n) { messages(first: $first, after: $after, last: $last, before: $before) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id content } } nodes { id } } } }";
const MY_ROOMS: &str = "{ myChatRooms { name } }";
const ADDED: &str = "subscription($room: String) { messageAdded(roomName: $room) { id content timestamp author { username } room { name displayName } } }";
const RESUME: &str =
    "subscription($room: String, $after: String) { messageAdded(roomName: $room, after: $after) { id content } }";

/// A user with exactly this name (each test has a database of its own).
async fn named(app: &TestApp, username: &str) -> TestUser {
    let id = app.register(username).await;
    let (access, refresh) = app.sign_in(username).await;
    TestUser { id, username: username.to_owned(), access, refresh }
}

async fn create_room(app: &TestApp, user: &TestUser, recipient: &str) -> Value {
    app.gql_ok(Some(&user.access), CREATE, json!({"r": recipient})).await["createChatRoom"].clone()
}

async fn room_name(app: &TestApp, user: &TestUser, recipient: &TestUser) -> String {
    create_room(app, user, &recipient.username).await["chatRoom"]["name"].as_str().unwrap().to_owned()
}

/// Sends a message; returns its id.
async fn send(app: &TestApp, user: &TestUser, room: &str, content: &str) -> i64 {
    let data = app.gql_ok(Some(&user.access), SEND, json!({"room": room, "c": content})).await;
    id_of(&data["sendMessage"])
}

fn id_of(node: &Value) -> i64 {
    node["id"].as_str().expect("an id").parse().unwrap()
}

fn message_cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("message:{id}"))
}

fn names(data: &Value) -> Vec<String> {
    data["myChatRooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
}

fn errors_of(body: &Value) -> Vec<(String, Vec<String>)> {
    field_errors(body)
}

fn one_field_error(field: &str, message: &str) -> Vec<(String, Vec<String>)> {
    vec![(field.to_owned(), vec![message.to_owned()])]
}

fn is_timestamp(value: &Value) -> bool {
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$").unwrap();
    value.as_str().is_some_and(|s| re.is_match(s))
}

#[tokio::test]
async fn a_room_is_named_after_both_users_and_found_again_from_either_side() {
    let app = spawn_app().await;
    // Code point order: upper case sorts before lower case.
    let adam = named(&app, "adam").await;
    let zed = named(&app, "Zed").await;

    let opened = create_room(&app, &adam, "Zed").await;
    assert_eq!(opened["created"], true);
    let room = &opened["chatRoom"];
    assert_eq!(room["name"], "Zed_adam");
    assert_eq!(room["displayName"], "Zed");
    assert!(is_timestamp(&room["createdAt"]), "{}", room["createdAt"]);
    let mut by_id = [(adam.id, "adam"), (zed.id, "Zed")];
    by_id.sort();
    let expected: Vec<Value> = by_id.iter().map(|(id, name)| json!({"id": id.to_string(), "username": name})).collect();
    assert_eq!(room["members"], json!(expected), "members by user id");

    let again = create_room(&app, &zed, "adam").await;
    assert_eq!(again["created"], false, "the pair already has a room");
    assert_eq!(again["chatRoom"]["id"], room["id"]);
    assert_eq!(again["chatRoom"]["displayName"], "adam", "as the other member sees it");
    let same_side = create_room(&app, &adam, "Zed").await;
    assert_eq!((same_side["created"].clone(), same_side["chatRoom"]["id"].clone()), (json!(false), room["id"].clone()));

    for user in [&adam, &zed] {
        assert_eq!(names(&app.gql_ok(Some(&user.access), MY_ROOMS, json!({})).await), vec!["Zed_adam"]);
    }
}

#[tokio::test]
async fn a_name_taken_by_another_pair_gets_the_next_suffix() {
    let app = spawn_app().await;
    let users: Vec<TestUser> = futures_util::future::join_all(
        ["a", "b_c_d", "a_b", "c_d", "a_b_c", "d", "ab"].into_iter().map(|n| named(&app, n)),
    )
    .await;
    let [a, b_c_d, a_b, c_d, a_b_c, d, ab] = &users[..] else { unreachable!() };

    assert_eq!(create_room(&app, a, "b_c_d").await["chatRoom"]["name"], "a_b_c_d");
    assert_eq!(create_room(&app, c_d, "a_b").await["chatRoom"]["name"], "a_b_c_d_2");
    assert_eq!(create_room(&app, a_b_c, "d").await["chatRoom"]["name"], "a_b_c_d_3");
    // A pair keeps its suffixed room, whoever asks.
    let again = create_room(&app, a_b, "c_d").await;
    assert_eq!((again["created"].clone(), again["chatRoom"]["name"].clone()), (json!(false), json!("a_b_c_d_2")));
    let again = create_room(&app, b_c_d, "a").await;
    assert_eq!((again["created"].clone(), again["chatRoom"]["name"].clone()), (json!(false), json!("a_b_c_d")));
    // Other names are unaffected.
    assert_eq!(create_room(&app, ab, "d").await["chatRoom"]["name"], "ab_d");
    assert_eq!(create_room(&app, d, "a").await["chatRoom"]["name"], "a_d");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creations_for_one_pair_yield_one_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let calls = (0..20).map(|i| {
        let (from, to) = if i % 2 == 0 { (&alice, &bob) } else { (&bob, &alice) };
        app.gql(Some(&from.access), CREATE, json!({"r": to.username}))
    });
    let results = futures_util::future::join_all(calls).await;
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for body in &results {
        assert!(body.get("errors").is_none(), "{body}");
        let payload = &body["data"]["createChatRoom"];
        created += usize::from(payload["created"] == true);
        ids.insert(payload["chatRoom"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1, "exactly one call created the room");
    assert_eq!(ids.len(), 1, "every call got the same room");
    assert_eq!(names(&app.gql_ok(Some(&alice.access), MY_ROOMS, json!({})).await).len(), 1);
    let rooms = entity::chat_room::Entity::find().all(&app.context.state.db).await.unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(entity::room_member::Entity::find().all(&app.context.state.db).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creations_for_two_pairs_with_one_name_get_two_names() {
    let app = spawn_app().await;
    let users = futures_util::future::join_all(["a_b", "c", "a", "b_c"].into_iter().map(|n| named(&app, n))).await;
    let calls = (0..20).map(|i| {
        let (from, to) = match i % 4 {
            0 => (&users[0], "c"),
            1 => (&users[1], "a_b"),
            2 => (&users[2], "b_c"),
            _ => (&users[3], "a"),
        };
        app.gql(Some(&from.access), CREATE, json!({"r": to}))
    });
    let results = futures_util::future::join_all(calls).await;
    let mut created = 0;
    let mut rooms = std::collections::BTreeSet::new();
    for body in &results {
        assert!(body.get("errors").is_none(), "{body}");
        let payload = &body["data"]["createChatRoom"];
        created += usize::from(payload["created"] == true);
        rooms.insert(payload["chatRoom"]["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 2);
    assert_eq!(rooms.into_iter().collect::<Vec<_>>(), vec!["a_b_c", "a_b_c_2"]);
}

#[tokio::test]
async fn invalid_recipients_are_refused_and_nothing_is_created() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cases = [
        ("", "This field may not be null.".to_owned()),
        ("ghost", "Object with username=ghost does not exist.".to_owned()),
        (alice.username.as_str(), "You cannot start a chat with yourself.".to_owned()),
        // Exact match, as DRF's SlugRelatedField: no case folding, no trimming.
        (&bob.username.to_uppercase(), format!("Object with username={} does not exist.", bob.username.to_uppercase())),
        (&format!(" {}", bob.username), format!("Object with username= {} does not exist.", bob.username)),
        ("   ", "Object with username=    does not exist.".to_owned()),
    ];
    for (recipient, message) in cases {
        let body = app.gql(Some(&alice.access), CREATE, json!({"r": recipient})).await;
        assert_eq!(errors_of(&body), one_field_error("recipient", &message), "recipient {recipient:?}");
        assert_eq!(codes(&body), vec!["BAD_USER_INPUT"]);
        assert_eq!(body["data"], Value::Null);
    }
    let anonymous = app.gql(None, CREATE, json!({"r": bob.username})).await;
    assert_eq!(codes(&anonymous), vec!["UNAUTHENTICATED"]);
    assert_eq!(names(&app.gql_ok(Some(&alice.access), MY_ROOMS, json!({})).await), Vec::<String>::new());
    assert_eq!(codes(&app.gql(None, MY_ROOMS, json!({})).await), vec!["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn messages_are_validated_trimmed_and_stored() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;

    let sent = app.gql_ok(Some(&alice.access), SEND, json!({"room": room, "c": "  hello \n"})).await;
    let message = &sent["sendMessage"];
    assert_eq!(message["content"], "hello");
    assert_eq!(message["author"]["username"], alice.username.as_str());
    assert_eq!(message["room"]["name"], room.as_str());
    assert!(is_timestamp(&message["timestamp"]), "{}", message["timestamp"]);
    // 4,000 characters (not bytes) are fine.
    send(&app, &bob, &room, &"é".repeat(4000)).await;

    let cases = [
        ("   ".to_owned(), "This field may not be blank."),
        ("x".repeat(4001), "Ensure this field has no more than 4000 characters."),
        ("a\u{0}b".to_owned(), "Null characters are not allowed."),
    ];
    for (content, problem) in &cases {
        let body = app.gql(Some(&alice.access), SEND, json!({"room": room, "c": content})).await;
        assert_eq!(errors_of(&body), one_field_error("content", problem));
        assert_eq!(body["data"], Value::Null);
    }
    // As in DRF, the body is validated before the room is looked up.
    let body = app.gql(Some(&alice.access), SEND, json!({"room": "nowhere", "c": " "})).await;
    assert_eq!(errors_of(&body), one_field_error("content", "This field may not be blank."));
    assert_eq!(codes(&app.gql(None, SEND, json!({"room": room, "c": "hi"})).await), vec!["UNAUTHENTICATED"]);

    let history = app.gql_ok(Some(&bob.access), HISTORY, json!({"n": room})).await;
    assert_eq!(history["chatRoom"]["messages"]["totalCount"], 2, "nothing stored by the refused sends");
}

#[tokio::test]
async fn non_members_are_told_the_room_does_not_exist() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = room_name(&app, &alice, &bob).await;
    send(&app, &alice, &room, "private").await;

    for (query, vars) in [
        (ROOM, json!({"n": room})),
        (HISTORY, json!({"n": room})),
        (ROOM, json!({"n": "no_such_room"})),
        (SEND, json!({"room": room, "c": "let me in"})),
        (SEND, json!({"room": "no_such_room", "c": "hello?"})),
    ] {
        let body = app.gql(Some(&carol.access), query, vars.clone()).await;
        assert_eq!(codes(&body), vec!["NOT_FOUND"], "{vars}");
        assert_eq!(body["errors"][0]["message"], "Not found.");
        assert_eq!(body["data"], Value::Null);
    }
    assert_eq!(codes(&app.gql(None, ROOM, json!({"n": room})).await), vec!["UNAUTHENTICATED"]);
    assert_eq!(names(&app.gql_ok(Some(&carol.access), MY_ROOMS, json!({})).await), Vec::<String>::new());
    let history = app.gql_ok(Some(&bob.access), HISTORY, json!({"n": room})).await;
    assert_eq!(history["chatRoom"]["messages"]["totalCount"], 1, "the refused send stored nothing");
}

#[tokio::test]
async fn history_pages_forwards_and_backwards_with_message_cursors() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;

    let empty = app.gql_ok(Some(&alice.access), HISTORY, json!({"n": room})).await;
    assert_eq!(
        empty["chatRoom"]["messages"],
        json!({"totalCount": 0, "pageInfo": {"hasNextPage": false, "hasPreviousPage": false, "startCursor": null, "endCursor": null}, "edges": [], "nodes": []})
    );
    assert_eq!(app.gql_ok(Some(&alice.access), ROOM, json!({"n": room})).await["chatRoom"]["lastMessage"], Value::Null);

    let mut ids = Vec::new();
    for i in 0..25 {
        let author = if i % 2 == 0 { &alice } else { &bob };
        ids.push(send(&app, author, &room, &format!("m{i}")).await);
    }
    let page = |vars: Value| {
        let app = &app;
        let token = alice.access.clone();
        let room = room.clone();
        async move {
            let mut vars = vars;
            vars["n"] = json!(room);
            let data = app.gql_ok(Some(&token), HISTORY, vars).await;
            data["chatRoom"]["messages"].clone()
        }
    };
    let check = |messages: &Value, expected: &[i64], has_previous: bool, has_next: bool| {
        let got: Vec<i64> = messages["edges"].as_array().unwrap().iter().map(|e| id_of(&e["node"])).collect();
        assert_eq!(got, expected, "{messages}");
        let nodes: Vec<i64> = messages["nodes"].as_array().unwrap().iter().map(id_of).collect();
        assert_eq!(nodes, expected);
        for edge in messages["edges"].as_array().unwrap() {
            assert_eq!(edge["cursor"], message_cursor(id_of(&edge["node"])), "cursor = encode_id(\"message\", id)");
        }
        assert_eq!(messages["pageInfo"]["hasPreviousPage"], has_previous, "hasPreviousPage of {got:?}");
        assert_eq!(messages["pageInfo"]["hasNextPage"], has_next, "hasNextPage of {got:?}");
        assert_eq!(messages["totalCount"], 25);
        if let (Some(first), Some(last)) = (expected.first(), expected.last()) {
            assert_eq!(messages["pageInfo"]["startCursor"], message_cursor(*first));
            assert_eq!(messages["pageInfo"]["endCursor"], message_cursor(*last));
        }
    };

    // Backwards from the newest (also the default).
    check(&page(json!({})).await, &ids[5..25], true, false);
    let newest = page(json!({"last": 10})).await;
    check(&newest, &ids[15..25], true, false);
    let older = page(json!({"last": 10, "before": newest["pageInfo"]["startCursor"]})).await;
    check(&older, &ids[5..15], true, true);
    let oldest = page(json!({"last": 10, "before": older["pageInfo"]["startCursor"]})).await;
    check(&oldest, &ids[0..5], false, true);
    check(&page(json!({"before": message_cursor(ids[24])})).await, &ids[4..24], true, true);
    check(&page(json!({"last": 100})).await, &ids, false, false);

    // Forwards from the oldest.
    let first = page(json!({"first": 10})).await;
    check(&first, &ids[0..10], false, true);
    let second = page(json!({"first": 10, "after": first["pageInfo"]["endCursor"]})).await;
    check(&second, &ids[10..20], true, true);
    let third = page(json!({"first": 10, "after": second["pageInfo"]["endCursor"]})).await;
    check(&third, &ids[20..25], true, false);
    check(&page(json!({"after": message_cursor(ids[2])})).await, &ids[3..23], true, true);
    check(&page(json!({"first": 3, "before": message_cursor(ids[10])})).await, &ids[0..3], false, true);
    check(&page(json!({"first": 0})).await, &[], false, true);
    check(
        &page(json!({"after": message_cursor(ids[5]), "before": message_cursor(ids[9])})).await,
        &ids[6..9],
        true,
        true,
    );

    let room_data = app.gql_ok(Some(&bob.access), ROOM, json!({"n": room})).await;
    assert_eq!(id_of(&room_data["chatRoom"]["lastMessage"]), ids[24]);
    assert_eq!(room_data["chatRoom"]["lastMessage"]["author"]["username"], alice.username.as_str());

    let user_cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("user:1");
    let refused = [
        (json!({"first": 101}), "first", "Ensure this value is less than or equal to 100."),
        (json!({"last": -1}), "last", "Ensure this value is greater than or equal to 0."),
        (json!({"first": 1, "last": 1}), "last", "Passing both `first` and `last` is not supported."),
        (json!({"after": "garbage"}), "after", "Invalid cursor."),
        (json!({"before": user_cursor}), "before", "Invalid cursor."),
    ];
    for (mut vars, field, message) in refused {
        vars["n"] = json!(room);
        let body = app.gql(Some(&alice.access), HISTORY, vars.clone()).await;
        assert_eq!(errors_of(&body), one_field_error(field, message), "{vars}");
    }
}

#[tokio::test]
async fn my_rooms_are_ordered_by_last_activity() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let with_bob = room_name(&app, &alice, &bob).await;
    let with_carol = room_name(&app, &carol, &alice).await;
    let with_dave = room_name(&app, &alice, &dave).await;
    let mine = || async { names(&app.gql_ok(Some(&alice.access), MY_ROOMS, json!({})).await) };

    assert_eq!(mine().await, [with_dave.as_str(), with_carol.as_str(), with_bob.as_str()], "newest room first");
    send(&app, &bob, &with_bob, "hi").await;
    assert_eq!(mine().await, [with_bob.as_str(), with_dave.as_str(), with_carol.as_str()]);
    send(&app, &alice, &with_carol, "hi").await;
    assert_eq!(mine().await, [with_carol.as_str(), with_bob.as_str(), with_dave.as_str()]);
    assert_eq!(names(&app.gql_ok(Some(&bob.access), MY_ROOMS, json!({})).await), [with_bob.as_str()], "only one's own");

    // Equal activity: the higher id first.
    let same = chrono::Utc::now();
    entity::chat_room::Entity::update_many()
        .col_expr(entity::chat_room::Column::LastActivityAt, sea_orm::sea_query::Expr::value(same))
        .exec(&app.context.state.db)
        .await
        .unwrap();
    assert_eq!(mine().await, [with_dave.as_str(), with_carol.as_str(), with_bob.as_str()]);

    // Oldest first on request (the legacy list of endpoint 7), whatever the activity.
    send(&app, &alice, &with_dave, "latest").await;
    let created = app.gql_ok(Some(&alice.access), "{ myChatRooms(order: CREATED) { name } }", json!({})).await;
    assert_eq!(names(&created), [with_bob.as_str(), with_carol.as_str(), with_dave.as_str()]);
}

#[tokio::test]
async fn room_lists_cost_a_constant_number_of_statements() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let state = &app.context.state;
    let mut db = state.db.clone();
    let statements = agora::db::count_statements(&mut db);
    let counting = Arc::new(AppState::new(state.settings.clone(), db.clone(), SECRET.as_bytes(), state.bus.clone()));
    let schema = agora::graphql::build_schema(Some(counting.clone()));
    let me = entity::user::Entity::find_by_id(alice.id).one(&db).await.unwrap().unwrap();
    let query =
        "{ myChatRooms { name displayName members { id username } lastMessage { content author { username } } } }";
    let cost = || async {
        statements.store(0, Ordering::SeqCst);
        let request =
            agora::graphql::prepare(async_graphql::Request::new(query), &counting, Viewer::User(me.clone()), LOCALHOST);
        let response = schema.execute(request).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let rooms = response.data.into_json().unwrap()["myChatRooms"].as_array().unwrap().len();
        (rooms, statements.load(Ordering::SeqCst))
    };

    let mut others = Vec::new();
    for round in 0..6 {
        let other = app.user("friend").await;
        let room = room_name(&app, &alice, &other).await;
        send(&app, &other, &room, &format!("hello {round}")).await;
        others.push(other);
    }
    let (six, with_six) = cost().await;
    entity::chat_room::Entity::delete_many()
        .filter(entity::chat_room::Column::Id.gt(0))
        .exec(&app.context.state.db)
        .await
        .unwrap();
    let room = room_name(&app, &alice, &others[0]).await;
    send(&app, &others[0], &room, "again").await;
    let (one, with_one) = cost().await;
    assert_eq!((six, one), (6, 1));
    assert_eq!(with_six, with_one, "statements do not grow with the number of rooms");
    assert!((1..=4).contains(&with_one), "rooms, members, last messages, authors: {with_one} statements");
}

// Live subscriptions.

/// Sends probe messages until every subscriber got one (its subscription is live), then reads
/// each up to the last probe: the next message a subscriber gets is the next one stored.
async fn until_live(app: &TestApp, sender: &TestUser, room: &str, subscribers: &mut [&mut GqlWs]) {
    let mut seen = vec![None; subscribers.len()];
    let mut last_probe = 0;
    for attempt in 0..100 {
        last_probe = send(app, sender, room, &format!("probe {attempt}")).await;
        for (ws, seen) in subscribers.iter_mut().zip(seen.iter_mut()) {
            if seen.is_none()
                && let Ok(Some(message)) = ws.recv_within(Duration::from_millis(200)).await
            {
                assert!(message["payload"]["errors"].is_null(), "{message}");
                *seen = Some(id_of(&message["payload"]["data"]["messageAdded"]));
            }
        }
        if seen.iter().all(Option::is_some) {
            break;
        }
    }
    for (ws, seen) in subscribers.iter_mut().zip(seen) {
        let mut seen = seen.expect("subscription became live");
        while seen != last_probe {
            seen = id_of(&ws.next_payload().await["data"]["messageAdded"]);
        }
    }
}

fn added(payload: &Value) -> &Value {
    assert!(payload["errors"].is_null(), "unexpected errors: {payload}");
    &payload["data"]["messageAdded"]
}

/// The ids of a room's messages in storage order.
async fn stored_ids(app: &TestApp, room: &str) -> Vec<i64> {
    let db = &app.context.state.db;
    let room = entity::chat_room::Entity::find()
        .filter(entity::chat_room::Column::Name.eq(room))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let rows: Vec<(i64, i64)> = entity::message::Entity::find()
        .select_only()
        .column(entity::message::Column::Id)
        .column(entity::message::Column::RoomSeq)
        .filter(entity::message::Column::RoomId.eq(room.id))
        .order_by_asc(entity::message::Column::RoomSeq)
        .into_tuple()
        .all(db)
        .await
        .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>(), "room_seq is 1, 2, 3, ...");
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "room_seq order is id order");
    assert_eq!(room.last_seq, rows.len() as i64);
    ids
}

#[tokio::test]
async fn subscriptions_work_over_both_protocols_with_both_token_forms() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;

    let mut clients = Vec::new();
    for protocol in WsProtocol::BOTH {
        for (user, payload) in [
            (&alice, json!({"Authorization": format!("Bearer {}", alice.access)})),
            (&bob, json!({"token": bob.access})),
        ] {
            let mut ws = GqlWs::connect_with(&app, protocol, payload).await;
            ws.subscribe(ADDED, json!({"room": room})).await;
            clients.push((user, ws));
        }
    }
    let mut sockets: Vec<&mut GqlWs> = clients.iter_mut().map(|(_, ws)| ws).collect();
    until_live(&app, &alice, &room, &mut sockets).await;

    let sent = [
        send(&app, &alice, &room, "one").await,
        send(&app, &bob, &room, "two").await,
        send(&app, &alice, &room, "three").await,
    ];
    for (viewer, ws) in &mut clients {
        for (id, (content, author)) in sent.iter().zip([("one", &alice), ("two", &bob), ("three", &alice)]) {
            let payload = ws.next_payload().await;
            let message = added(&payload);
            assert_eq!(id_of(message), *id, "{:?}", ws.protocol);
            assert_eq!(message["content"], content);
            assert_eq!(message["author"]["username"], author.username.as_str());
            assert_eq!(message["room"]["name"], room.as_str());
            let other = if viewer.id == alice.id { &bob } else { &alice };
            assert_eq!(message["room"]["displayName"], other.username.as_str(), "as the subscriber sees it");
            assert!(is_timestamp(&message["timestamp"]));
        }
    }
    // A stopped subscription gets nothing more; the others carry on.
    let (_, first) = &mut clients[0];
    assert_eq!(first.protocol, WsProtocol::TransportWs, "which sends nothing more after a `complete`");
    first.unsubscribe("1").await;
    let last = send(&app, &bob, &room, "four").await;
    for (_, ws) in &mut clients[1..] {
        assert_eq!(id_of(added(&ws.next_payload().await)), last);
    }
    // A new subscription on the stopped one's socket, from "four" on: the sentinel is the first
    // thing that socket gets, so "four" never came for the stopped one.
    let (_, first) = &mut clients[0];
    first.subscribe(RESUME, json!({"room": room, "after": message_cursor(last)})).await;
    send(&app, &alice, &room, SENTINEL).await;
    for (_, ws) in &mut clients {
        ws.expect_sentinel().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subscribers_get_every_message_once_in_storage_order() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;
    let mut subscribers = Vec::new();
    for (protocol, user) in
        [(WsProtocol::TransportWs, &alice), (WsProtocol::LegacyWs, &bob), (WsProtocol::TransportWs, &bob)]
    {
        let mut ws = GqlWs::connect(&app, protocol, Some(&user.access)).await;
        ws.subscribe(ADDED, json!({"room": room})).await;
        subscribers.push(ws);
    }
    until_live(&app, &alice, &room, &mut subscribers.iter_mut().collect::<Vec<_>>()).await;
    let before = stored_ids(&app, &room).await.len();

    // Both members send at once: storage order is decided by the server.
    const N: usize = 30;
    let sends = (0..N).map(|i| {
        let author = if i % 2 == 0 { &alice } else { &bob };
        let room = room.clone();
        let app = &app;
        async move { send(app, author, &room, &format!("message {i}")).await }
    });
    let mut sent = futures_util::future::join_all(sends).await;
    let stored = stored_ids(&app, &room).await[before..].to_vec();
    sent.sort();
    assert_eq!(stored.len(), N);

    for ws in &mut subscribers {
        let mut received = Vec::new();
        for _ in 0..N {
            received.push(id_of(added(&ws.next_payload().await)));
        }
        assert_eq!(received, stored, "every message, once, in storage order ({:?})", ws.protocol);
    }
    assert_eq!(sent, stored);
    send(&app, &bob, &room, SENTINEL).await;
    for ws in &mut subscribers {
        ws.expect_sentinel().await;
    }
}

#[tokio::test]
async fn a_subscription_without_a_room_follows_all_of_the_subscribers_rooms() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let with_bob = room_name(&app, &alice, &bob).await;
    let bob_carol = room_name(&app, &bob, &carol).await;

    for protocol in WsProtocol::BOTH {
        let mut ws = GqlWs::connect(&app, protocol, Some(&alice.access)).await;
        ws.subscribe(ADDED, json!({})).await;
        until_live(&app, &bob, &with_bob, &mut [&mut ws]).await;

        // A room opened after subscribing is followed too; other people's rooms are not.
        let opened = create_room(&app, &carol, &alice.username).await;
        let with_carol = opened["chatRoom"]["name"].as_str().unwrap().to_owned();
        let mut expected = Vec::new();
        send(&app, &bob, &bob_carol, "not for alice").await;
        expected.push((send(&app, &carol, &with_carol, "hello alice").await, with_carol.clone()));
        expected.push((send(&app, &bob, &with_bob, "hi again").await, with_bob.clone()));
        send(&app, &carol, &bob_carol, "still not for alice").await;
        expected.push((send(&app, &alice, &with_carol, "hi carol").await, with_carol.clone()));
        for (id, room) in &expected {
            let payload = ws.next_payload().await;
            assert_eq!(id_of(added(&payload)), *id);
            assert_eq!(added(&payload)["room"]["name"], room.as_str());
        }
        send(&app, &carol, &bob_carol, "never for alice").await;
        send(&app, &bob, &with_bob, SENTINEL).await;
        ws.expect_sentinel().await;
        ws.close().await;
    }
}

#[tokio::test]
async fn subscriptions_need_a_signed_in_member() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = room_name(&app, &alice, &bob).await;

    for protocol in WsProtocol::BOTH {
        for (token, room, code) in [
            (Some(&carol.access), json!(room), "NOT_FOUND"),
            (Some(&alice.access), json!("no_such_room"), "NOT_FOUND"),
            (None, json!(room), "UNAUTHENTICATED"),
            (None, Value::Null, "UNAUTHENTICATED"),
        ] {
            let mut ws = GqlWs::connect(&app, protocol, token.map(String::as_str)).await;
            let id = ws.subscribe(ADDED, json!({"room": room})).await;
            let payload = ws.next_payload().await;
            assert_eq!(codes(&payload), vec![code], "{protocol:?} {room}: {payload}");
            assert_eq!(payload["data"], Value::Null);
            assert_eq!(ws.recv().await.unwrap(), json!({"type": "complete", "id": id}));
        }
        // A token that is sent but invalid refuses the connection itself.
        let mut ws = GqlWs::open(&app, protocol).await;
        let answer = ws.init(json!({"token": "garbage"})).await;
        assert_ne!(answer.as_ref().map(|a| a["type"].clone()), Some(json!("connection_ack")), "{answer:?}");
    }
}

#[tokio::test]
async fn the_websocket_needs_a_known_subprotocol() {
    use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest};
    let app = spawn_app().await;
    for protocol in [None, Some("graphql-sse")] {
        let mut request = app.ws_url("/graphql/ws").into_client_request().unwrap();
        if let Some(protocol) = protocol {
            request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Err(Error::Http(response)) => assert_eq!(response.status(), 400, "{protocol:?}"),
            other => panic!("{protocol:?} was not refused: {:?}", other.map(|(_, r)| r.status())),
        }
    }
}

#[tokio::test]
async fn idle_subscribers_stay_connected() {
    let app = spawn_app_with(|settings| settings.ws_ping_seconds = 1).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;
    for protocol in WsProtocol::BOTH {
        let mut ws = GqlWs::connect(&app, protocol, Some(&alice.access)).await;
        ws.subscribe(ADDED, json!({"room": room})).await;
        until_live(&app, &bob, &room, &mut [&mut ws]).await;
        // Several ping periods without a GraphQL message from the client (it answers pings).
        ws.stay_idle(Duration::from_millis(3500)).await;
        let id = send(&app, &bob, &room, "still there?").await;
        assert_eq!(id_of(added(&ws.next_payload().await)), id, "{protocol:?}");
    }
}

#[tokio::test]
async fn missed_events_are_filled_from_the_database_and_duplicates_dropped() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;
    let mut subscribers = Vec::new();
    for room in [json!(room), Value::Null] {
        let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
        ws.subscribe(ADDED, json!({"room": room})).await;
        subscribers.push(ws);
    }
    until_live(&app, &bob, &room, &mut subscribers.iter_mut().collect::<Vec<_>>()).await;

    // Two messages stored whose events never reach the bus (as in a Redis outage).
    let db = &app.context.state.db;
    let stored = entity::chat_room::Entity::find()
        .filter(entity::chat_room::Column::Name.eq(room.as_str()))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut lost = Vec::new();
    for (i, seq) in [stored.last_seq + 1, stored.last_seq + 2].into_iter().enumerate() {
        let message = entity::message::ActiveModel {
            room_id: Set(stored.id),
            room_seq: Set(seq),
            author_id: Set(bob.id),
            content: Set(format!("lost {i}")),
            timestamp: Set(chrono::Utc::now()),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        lost.push(message.id);
    }
    entity::chat_room::Entity::update_many()
        .col_expr(entity::chat_room::Column::LastSeq, sea_orm::sea_query::Expr::value(stored.last_seq + 2))
        .filter(entity::chat_room::Column::Id.eq(stored.id))
        .exec(db)
        .await
        .unwrap();

    let next = send(&app, &alice, &room, "after the gap").await;
    for ws in &mut subscribers {
        let contents: Vec<(i64, String)> = {
            let mut got = Vec::new();
            for _ in 0..3 {
                let payload = ws.next_payload().await;
                let message = added(&payload);
                got.push((id_of(message), message["content"].as_str().unwrap().to_owned()));
            }
            got
        };
        assert_eq!(
            contents,
            vec![(lost[0], "lost 0".to_owned()), (lost[1], "lost 1".to_owned()), (next, "after the gap".to_owned())]
        );
    }

    // The same event again (e.g. delivered twice across processes) is dropped.
    let duplicate = ChatEvent::Message(MessageEvent {
        message_id: next,
        room_id: stored.id,
        room_seq: stored.last_seq + 3,
        room_name: room.clone(),
        member_ids: vec![alice.id.min(bob.id), alice.id.max(bob.id)],
        author_id: alice.id,
        author_username: alice.username.clone(),
        content: "after the gap".to_owned(),
        timestamp: chrono::Utc::now(),
        deleted: false,
    });
    app.context.state.bus.publish(duplicate.clone()).await;
    let last = send(&app, &bob, &room, "last").await;
    for ws in &mut subscribers {
        assert_eq!(id_of(added(&ws.next_payload().await)), last, "the duplicate was not delivered");
    }
    assert_eq!(stored_ids(&app, &room).await.len() as i64, stored.last_seq + 4);
    send(&app, &alice, &room, SENTINEL).await;
    for ws in &mut subscribers {
        ws.expect_sentinel().await;
    }
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_gets_an_error_and_the_end_but_never_for_other_rooms() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;
    // A bus that holds only two events per subscriber.
    let bus = Arc::new(agora::bus::LocalBus::new(2));
    let state = &app.context.state;
    let small = Arc::new(AppState::new(state.settings.clone(), state.db.clone(), SECRET.as_bytes(), bus.clone()));
    let schema = agora::graphql::build_schema(Some(small.clone()));
    let me = entity::user::Entity::find_by_id(alice.id).one(&state.db).await.unwrap().unwrap();
    let stored = entity::chat_room::Entity::find()
        .filter(entity::chat_room::Column::Name.eq(room.as_str()))
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    let request =
        async_graphql::Request::new(ADDED).variables(async_graphql::Variables::from_json(json!({"room": room})));
    let mut stream = schema.execute_stream(agora::graphql::prepare(request, &small, Viewer::User(me), LOCALHOST));
    let event = |room_id: i64, room_seq: i64, member_ids: Vec<i64>| {
        ChatEvent::Message(MessageEvent {
            message_id: room_seq,
            room_id,
            room_seq,
            room_name: "r".to_owned(),
            member_ids,
            author_id: alice.id,
            author_username: alice.username.clone(),
            content: format!("m{room_seq}"),
            timestamp: chrono::Utc::now(),
            deleted: false,
        })
    };
    let content = |response: async_graphql::Response| {
        let body = serde_json::to_value(&response).unwrap();
        body["data"]["messageAdded"]["content"].as_str().unwrap_or_default().to_owned()
    };

    // Drive the subscription until its feed is on the bus (nothing is published yet).
    tokio::time::timeout(WS_WAIT, async {
        while bus.subscribers(Topic::Room(stored.id)) == 0 {
            assert!(tokio::time::timeout(Duration::from_millis(10), stream.next()).await.is_err(), "nothing to yield");
        }
    })
    .await
    .expect("the subscription is live");
    let first = stored.last_seq + 1;
    bus.publish(event(stored.id, first, vec![alice.id, bob.id])).await;
    let opened = tokio::time::timeout(WS_WAIT, stream.next()).await.unwrap().unwrap();
    assert_eq!(content(opened), format!("m{first}"));

    // Many more events of another room of the same member than the queue holds: not its topic.
    for seq in 1..=10 {
        bus.publish(event(-1, seq, vec![alice.id])).await;
    }
    bus.publish(event(stored.id, first + 1, vec![alice.id, bob.id])).await;
    let next = tokio::time::timeout(WS_WAIT, stream.next()).await.unwrap().unwrap();
    assert_eq!(content(next), format!("m{}", first + 1), "never cut off for another room");

    // Three of its own room while it does not read: the two its queue holds, then the error.
    for seq in first + 2..=first + 4 {
        bus.publish(event(stored.id, seq, vec![alice.id, bob.id])).await;
    }
    for seq in first + 2..=first + 3 {
        let item = tokio::time::timeout(WS_WAIT, stream.next()).await.unwrap().unwrap();
        assert_eq!(content(item), format!("m{seq}"));
    }
    let response = tokio::time::timeout(WS_WAIT, stream.next()).await.unwrap().expect("an error before the end");
    let body = serde_json::to_value(&response).unwrap();
    assert_eq!(body["errors"][0]["message"], "subscriber fell too far behind; reconnect and catch up from history");
    assert_eq!(body["errors"][0]["extensions"], json!({"code": "INTERNAL_SERVER_ERROR", "reason": "LAGGED"}));
    assert!(tokio::time::timeout(WS_WAIT, stream.next()).await.unwrap().is_none(), "the subscription ended");
}

#[tokio::test]
async fn a_subscription_resumes_after_a_message_with_no_gap() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;
    let first = send(&app, &alice, &room, "one").await;
    let second = send(&app, &bob, &room, "two").await;
    let third = send(&app, &alice, &room, "three").await;

    // Resuming after "one": "two" and "three" come at once, from the database, then live ones.
    let resume = RESUME;
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    ws.subscribe(resume, json!({"room": room, "after": message_cursor(first)})).await;
    assert_eq!(id_of(added(&ws.next_payload().await)), second);
    assert_eq!(id_of(added(&ws.next_payload().await)), third);
    let fourth = send(&app, &bob, &room, "four").await;
    assert_eq!(id_of(added(&ws.next_payload().await)), fourth);

    // After the newest message: nothing to replay, then live (no probing needed). The sentinel
    // is the next message of both subscriptions.
    let mut late = GqlWs::connect(&app, WsProtocol::LegacyWs, Some(&alice.access)).await;
    late.subscribe(resume, json!({"room": room, "after": message_cursor(fourth)})).await;
    send(&app, &alice, &room, SENTINEL).await;
    for ws in [&mut ws, &mut late] {
        ws.expect_sentinel().await;
    }

    // `after` needs a room, and a cursor.
    let mut bad = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
    let id = bad.subscribe(resume, json!({"after": message_cursor(first)})).await;
    let refused = bad.next_payload().await;
    assert_eq!(refused["errors"][0]["extensions"]["field"], "after", "{refused}");
    assert_eq!(bad.recv().await.unwrap(), json!({"type": "complete", "id": id}));
    bad.subscribe(resume, json!({"room": room, "after": "nonsense"})).await;
    let refused = bad.next_payload().await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{refused}");
}

#[tokio::test]
async fn a_history_page_counts_its_messages_only_when_asked() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;
    for content in ["one", "two", "three"] {
        send(&app, &bob, &room, content).await;
    }
    let counter = &app.statements;
    let mut costs = Vec::new();
    for query in [
        "query($n: String!) { chatRoom(name: $n) { messages(last: 2) { nodes { content } } } }",
        "query($n: String!) { chatRoom(name: $n) { messages(last: 2) { nodes { content } totalCount } } }",
    ] {
        let before = counter.load(Ordering::SeqCst);
        let data = app.gql_ok(Some(&alice.access), query, json!({"n": room})).await;
        costs.push(counter.load(Ordering::SeqCst) - before);
        assert_eq!(data["chatRoom"]["messages"]["nodes"], json!([{"content": "two"}, {"content": "three"}]));
        if query.contains("totalCount") {
            assert_eq!(data["chatRoom"]["messages"]["totalCount"], 3);
        }
    }
    assert_eq!(costs[1], costs[0] + 1, "the count is the only extra statement: {costs:?}");
}

/// The chat-list screen every client builds: each room with its last message and a page of its
/// history.
const CHAT_LIST: &str = "{ myChatRooms { name lastMessage { id content } messages(last: 20) { pageInfo { hasPreviousPage } edges { node { id content author { username } } } } } }";

#[tokio::test]
async fn the_chat_list_passes_the_complexity_limit_and_larger_lists_do_not() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;
    send(&app, &bob, &room, "hello").await;

    let data = app.gql_ok(Some(&alice.access), CHAT_LIST, json!({})).await;
    let rooms = data["myChatRooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["lastMessage"]["content"], "hello");
    assert_eq!(rooms[0]["messages"]["edges"][0]["node"]["author"], json!({"username": bob.username}), "{data}");
    // A full history page of every room, with its authors: refused before anything runs.
    let refused = "{ myChatRooms { messages(last: 100) { edges { node { content author { username } } } } } }";
    let refused = app.gql(Some(&alice.access), refused, json!({})).await;
    assert_eq!(refused["errors"][0]["message"], "Query is too complex.", "{refused}");
    assert_eq!(codes(&refused), vec!["GRAPHQL_VALIDATION_FAILED"]);
    let shown = "{ myChatRooms { id name displayName createdAt members { id username } lastMessage { id content timestamp author { username } } } }";
    app.gql_ok(Some(&alice.access), shown, json!({})).await;
}

/// `messages` under a list of rooms is one statement for all of them: the chat list costs the
/// same with two rooms as with six, and exactly two statements more than without `messages`
/// (the pages, and their messages' authors).
#[tokio::test]
async fn the_chat_list_reads_every_rooms_messages_in_one_statement() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let cost = |query: &'static str| {
        let (app, token) = (&app, alice.access.clone());
        async move {
            let before = app.statements.load(Ordering::SeqCst);
            let data = app.gql_ok(Some(&token), query, json!({})).await;
            (data, app.statements.load(Ordering::SeqCst) - before)
        }
    };
    let without_messages = "{ myChatRooms { name lastMessage { id content } } }";
    let mut counts = Vec::new();
    for round in 0..6 {
        let other = app.user("friend").await;
        let room = room_name(&app, &alice, &other).await;
        // The first room has more than a page: its page is the newest 20.
        for n in 0..if round == 0 { 22 } else { 2 } {
            send(&app, &other, &room, &format!("{round}.{n}")).await;
        }
        if round == 1 || round == 5 {
            let (data, with) = cost(CHAT_LIST).await;
            let (_, without) = cost(without_messages).await;
            let listed = data["myChatRooms"].as_array().unwrap();
            assert_eq!(listed.len(), round + 1);
            for room in listed {
                let contents: Vec<&str> = room["messages"]["edges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["node"]["content"].as_str().unwrap())
                    .collect();
                let last = room["lastMessage"]["content"].as_str().unwrap();
                assert_eq!(contents.last(), Some(&last), "{room}");
                let first_room = last.starts_with("0.");
                assert_eq!(contents.len(), if first_room { 20 } else { 2 }, "{room}");
                assert_eq!(room["messages"]["pageInfo"]["hasPreviousPage"], first_room, "{room}");
                if first_room {
                    assert_eq!(contents[0], "0.2");
                }
            }
            assert_eq!(with, without + 2, "the pages of {} rooms and their authors", round + 1);
            counts.push(with);
        }
    }
    assert_eq!(counts[0], counts[1], "statements do not grow with the number of rooms (2, then 6)");
}

/// A room's page read in a list (one statement for all rooms) is the page the room
/// gives on its own: items, order, flags, counts, deleted messages, either direction.
#[tokio::test]
async fn a_room_in_a_list_pages_its_messages_as_it_does_alone() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut names = Vec::new();
    for sent in [0, 1, 5] {
        let other = app.user("friend").await;
        let room = room_name(&app, &alice, &other).await;
        for n in 0..sent {
            let id = send(&app, &other, &room, &format!("m{n}")).await;
            if n == 3 {
                let delete = "mutation($id: ID!) { deleteMessage(id: $id) }";
                app.gql_ok(Some(&other.access), delete, json!({"id": id.to_string()})).await;
            }
        }
        names.push(room);
    }
    for args in ["", "(last: 2)", "(first: 2)", "(last: 3, includeDeleted: false)", "(first: 10)", "(last: 0)"] {
        let selection = format!(
            "messages{args} {{ totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} nodes {{ id content deleted }} }}"
        );
        let list = format!("{{ myChatRooms {{ name {selection} }} }}");
        let listed = app.gql_ok(Some(&alice.access), &list, json!({})).await;
        let listed = listed["myChatRooms"].as_array().unwrap();
        assert_eq!(listed.len(), 3);
        for room in listed {
            let alone = format!("query($n: String!) {{ chatRoom(name: $n) {{ name {selection} }} }}");
            let alone = app.gql_ok(Some(&alice.access), &alone, json!({"n": room["name"]})).await;
            assert_eq!(room, &alone["chatRoom"], "{args}");
        }
    }
}

#[tokio::test]
async fn a_resumed_feed_reads_its_replay_one_chunk_at_a_time() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = room_name(&app, &alice, &bob).await;
    let db = &app.context.state.db;
    let stored = entity::chat_room::Entity::find()
        .filter(entity::chat_room::Column::Name.eq(room.as_str()))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    const STORED: i64 = 450;
    let now = chrono::Utc::now();
    let rows = (1..=STORED).map(|seq| entity::message::ActiveModel {
        room_id: Set(stored.id),
        room_seq: Set(seq),
        author_id: Set(bob.id),
        content: Set(format!("m{seq}")),
        timestamp: Set(now),
        ..Default::default()
    });
    entity::message::Entity::insert_many(rows).exec_without_returning(db).await.unwrap();
    entity::chat_room::Entity::update_many()
        .col_expr(entity::chat_room::Column::LastSeq, sea_orm::sea_query::Expr::value(STORED))
        .filter(entity::chat_room::Column::Id.eq(stored.id))
        .exec(db)
        .await
        .unwrap();
    let ids = stored_ids(&app, &room).await;

    // Resuming after the first message: 449 to replay, read 200 at a time as they are consumed.
    let counter = &app.statements;
    let statements = || counter.load(Ordering::SeqCst);
    let before = statements();
    let mut feed = agora::service::live::room_feed(db, &*app.context.state.bus, &stored, Some(ids[0]))
        .await
        .unwrap()
        .expect("within the replay limit");
    let opened = statements();
    assert!(opened - before <= 3, "opening reads no message: {} statements", opened - before);
    let mut reads = Vec::new();
    for expected in &ids[1..] {
        let event = tokio::time::timeout(WS_WAIT, feed.next()).await.unwrap().unwrap().unwrap();
        let event = event.as_message().unwrap();
        assert_eq!(event.message_id, *expected);
        assert_eq!((event.room_name.as_str(), event.author_username.as_str()), (room.as_str(), bob.username.as_str()));
        reads.push(statements() - opened);
    }
    // Chunks of 200, 200 and 49 messages; the short one is known to be the last.
    let chunks_read_by = |delivered: usize| reads[delivered - 1];
    assert_eq!(chunks_read_by(1), 1, "the first message needs the first chunk only");
    assert_eq!(chunks_read_by(200), 1);
    assert_eq!(chunks_read_by(201), 2);
    assert_eq!(chunks_read_by(400), 2);
    assert_eq!(chunks_read_by(401), 3);
    assert_eq!(chunks_read_by(449), 3);

    // Then live, with no gap and no duplicate.
    let live = send(&app, &alice, &room, "live").await;
    let event = tokio::time::timeout(WS_WAIT, feed.next()).await.unwrap().unwrap().unwrap();
    let event = event.as_message().unwrap();
    assert_eq!((event.message_id, event.room_seq), (live, STORED + 1));
}

/// The result type of each protocol (`next` / `data`).
fn is_result(message: &Value) -> bool {
    matches!(message["type"].as_str(), Some("next" | "data"))
}

#[tokio::test]
async fn one_connection_runs_a_bounded_number_of_operations() {
    use agora::transport::ws_limit::{MAX_OPERATIONS, too_many_message};
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let resume = "subscription($room: String, $after: String) { messageAdded(roomName: $room, after: $after) { id } }";

    for protocol in WsProtocol::BOTH {
        let bob = app.user("bob").await;
        let room = room_name(&app, &alice, &bob).await;
        let first = send(&app, &bob, &room, "one").await;
        let second = send(&app, &bob, &room, "two").await;
        let from_first = json!({"room": room, "after": message_cursor(first)});
        let mut ws = GqlWs::connect(&app, protocol, Some(&alice.access)).await;
        let refusal_of = |message: &Value, id: &str| {
            assert_eq!(message["type"], "error", "{protocol:?}: {message}");
            assert_eq!(message["id"], id);
            let error = match protocol {
                WsProtocol::TransportWs => &message["payload"][0],
                WsProtocol::LegacyWs => &message["payload"],
            };
            assert_eq!(error["message"], too_many_message(), "{message}");
            assert_eq!(error["extensions"]["code"], "TOO_MANY_REQUESTS", "{message}");
        };
        // Up to the cap every subscription runs (each replays "two" at once); one more is refused.
        let mut running = Vec::new();
        for _ in 0..MAX_OPERATIONS {
            running.push(ws.subscribe(resume, from_first.clone()).await);
        }
        let over = ws.subscribe(resume, from_first.clone()).await;
        let mut replayed = Vec::new();
        let mut refused = false;
        while replayed.len() < MAX_OPERATIONS || !refused {
            let message = ws.recv().await.expect("the connection stays open");
            if is_result(&message) {
                assert_eq!(id_of(added(&message["payload"])), second, "{message}");
                replayed.push(message["id"].as_str().unwrap().to_owned());
            } else {
                refusal_of(&message, &over);
                refused = true;
            }
        }
        replayed.sort();
        running.sort();
        assert_eq!(replayed, running, "{protocol:?}: one replay per running subscription");

        // The refused one holds nothing; the running ones go on.
        let third = send(&app, &bob, &room, "three").await;
        for _ in 0..MAX_OPERATIONS {
            let message = ws.recv().await.unwrap();
            assert!(is_result(&message), "{message}");
            assert_eq!(id_of(added(&message["payload"])), third);
        }

        // Stopping one frees its place; so does an operation the server completes (a query, or
        // a subscription that fails), once it has completed.
        ws.unsubscribe(&running[0]).await;
        // subscriptions-transport-ws confirms a stop; graphql-transport-ws sends nothing more.
        if protocol == WsProtocol::LegacyWs {
            assert_eq!(ws.recv().await.unwrap(), json!({"type": "complete", "id": running[0]}));
        }
        for (query, variables) in [
            ("{ me { username } }", json!({})),
            ("{ me { username } }", json!({})),
            (resume, json!({"room": "no_such_room"})),
        ] {
            let id = ws.subscribe(query, variables).await;
            let message = ws.recv().await.unwrap();
            assert!(is_result(&message), "{protocol:?}: a slot was free for {query}: {message}");
            assert_eq!(ws.recv().await.unwrap(), json!({"type": "complete", "id": id}));
        }
        let again = ws.subscribe(resume, from_first.clone()).await;
        for expected in [second, third] {
            let message = ws.recv().await.unwrap();
            assert_eq!((message["id"].as_str(), id_of(added(&message["payload"]))), (Some(again.as_str()), expected));
        }
        let over = ws.subscribe(resume, from_first.clone()).await;
        refusal_of(&ws.recv().await.unwrap(), &over);
        ws.close().await;
    }
}
