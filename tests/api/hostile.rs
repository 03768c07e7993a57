//! Hostile input (issue 9): strings no stored value can hold. PostgreSQL's `text` refuses NUL,
//! so each of these was a 500 there; every case answers as DRF does on SQLite, on both databases
//! (these tests run on PostgreSQL when `TEST_DATABASE_URL` is set).

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;
use crate::legacy_rest::{Payload, get, post, rest};
use crate::legacy_ws::{LegacyWs, chat_path};

const NUL: &str = "Null characters are not allowed.";
const USERNAME_INVALID: &str =
    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
const EMAIL_INVALID: &str = "Enter a valid email address.";
const REGISTER: &str = "mutation($u: String!, $e: String!, $p: String!) { register(input: {username: $u, email: $e, password: $p}) { id } }";
const TOKEN_AUTH: &str = "mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { access } }";

fn strings(messages: &[&str]) -> Vec<String> {
    messages.iter().map(|m| (*m).to_owned()).collect()
}

#[tokio::test]
async fn nul_in_registration_fields_is_refused_with_drf_messages() {
    let app = spawn_app().await;
    let body =
        app.gql(None, REGISTER, json!({"u": "a\u{0}b", "e": "a\u{0}b@example.com", "p": "pass\u{0}word x"})).await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("username".to_owned(), strings(&[USERNAME_INVALID, NUL])),
            ("email".to_owned(), strings(&[NUL, EMAIL_INVALID])),
            ("password".to_owned(), strings(&[NUL])),
        ]
    );
    // A valid username and email with a NUL password alone: refused too (it was accepted).
    let name = unique("nulpw");
    let body =
        app.gql(None, REGISTER, json!({"u": name, "e": format!("{name}@example.com"), "p": "pass\u{0}word x"})).await;
    assert_eq!(field_errors(&body), vec![("password".to_owned(), strings(&[NUL]))]);

    // The legacy endpoint, JSON and form.
    let users = "/accounts/api/users/";
    let reply =
        post(&app, users, None, json!({"username": "a\u{0}b", "email": "x@example.com", "password": PASSWORD})).await;
    reply.expect_json(400, json!({"username": [USERNAME_INVALID, NUL]}));
    let form =
        vec![("username", name.clone()), ("email", "x\u{0}@example.com".to_owned()), ("password", PASSWORD.to_owned())];
    let reply = rest(&app, Method::POST, users, None, Payload::Form(form)).await;
    reply.expect_json(400, json!({"email": [NUL, EMAIL_INVALID]}));
    // Nothing was written: the name is still free.
    app.register(&name).await;
}

#[tokio::test]
async fn nul_in_credentials_is_a_field_error_not_a_crash() {
    let app = spawn_app().await;
    let user = app.user("nulsign").await;
    let body = app.gql(None, TOKEN_AUTH, json!({"u": format!("{}\u{0}", user.username), "p": "x\u{0}y"})).await;
    assert_eq!(
        field_errors(&body),
        vec![("username".to_owned(), strings(&[NUL])), ("password".to_owned(), strings(&[NUL]))]
    );
    let token = "/accounts/api/token/";
    post(&app, token, None, json!({"username": "a\u{0}", "password": PASSWORD}))
        .await
        .expect_json(400, json!({"username": [NUL]}));
    let form = vec![("username", user.username.clone()), ("password", format!("{PASSWORD}\u{0}"))];
    rest(&app, Method::POST, token, None, Payload::Form(form)).await.expect_json(400, json!({"password": [NUL]}));
    // The account still signs in.
    app.sign_in(&user.username).await;
}

#[tokio::test]
async fn lookups_by_a_name_with_nul_find_nothing() {
    let app = spawn_app().await;
    let me = app.user("nullook").await;
    let other = app.user("nulpeer").await;
    let token = Some(me.access.as_str());

    let data = app.gql_ok(token, "query($u: String!) { user(username: $u) { id } }", json!({"u": "a\u{0}b"})).await;
    assert_eq!(data["user"], json!(null));
    let data = app
        .gql_ok(
            token,
            "query($s: String) { users(search: $s) { totalCount edges { node { id } } } }",
            json!({"s": "n\u{0}"}),
        )
        .await;
    assert_eq!(data["users"], json!({"totalCount": 0, "edges": []}));

    let body = app.gql(token, "query($n: String!) { chatRoom(name: $n) { name } }", json!({"n": "a\u{0}b"})).await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);
    let body = app
        .gql(
            token,
            "mutation($n: String!) { sendMessage(roomName: $n, content: \"hi\") { id } }",
            json!({"n": "a\u{0}b"}),
        )
        .await;
    assert_eq!(codes(&body), ["NOT_FOUND"]);
    let recipient = format!("{}\u{0}", other.username);
    let body = app
        .gql(token, "mutation($r: String!) { createChatRoom(recipient: $r) { created } }", json!({"r": recipient}))
        .await;
    assert_eq!(
        field_errors(&body),
        vec![("recipient".to_owned(), vec![format!("Object with username={recipient} does not exist.")])]
    );

    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&me.access)).await;
    ws.subscribe("subscription($n: String!) { messageAdded(roomName: $n) { id } }", json!({"n": "a\u{0}b"})).await;
    let reply = ws.recv().await.expect("an answer");
    assert_eq!(reply["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND", "{reply}");

    // REST: the room paths are 404s, a recipient with NUL does not exist, search finds nothing.
    get(&app, "/messenger/api/chatrooms/a%00b/messages/", token).await.expect(404, r#"{"detail":"Not found."}"#);
    post(&app, "/messenger/api/chatrooms/a%00b/messages/", token, json!({"content": "hi"}))
        .await
        .expect(404, r#"{"detail":"Not found."}"#);
    post(&app, "/messenger/api/chatrooms/", token, json!({"recipient": recipient}))
        .await
        .expect_json(400, json!({"recipient": [format!("Object with username={recipient} does not exist.")]}));
    let found = get(&app, "/accounts/api/users/?search=n%00", token).await;
    assert_eq!(found.status, 200, "{}", found.text);

    // The legacy socket's path.
    let url = app.ws_url(&format!("{}?token={}", chat_path("a%00b"), me.access));
    assert_eq!(LegacyWs::try_connect(&url, &[]).await.err(), Some(404));
}
