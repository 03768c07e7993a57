//! Hostile input (issue 9): strings no stored value can hold. PostgreSQL's `text` refuses NUL,
//! so each of these was a 500 there; every case answers as DRF does on SQLite, on both databases
//! (these tests run on PostgreSQL when `TEST_DATABASE_URL` is set). And clients that hold
//! connections: HTTP deadlines and the per-client connection cap.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

// ---- HTTP deadlines and the per-client connection cap (raw TCP clients) ----

/// Everything the server sends until it closes the connection; `None` if it is still open
/// after [`WS_WAIT`].
async fn until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(WS_WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| String::from_utf8_lossy(&received).into_owned())
}

/// A server whose deadlines are all long except the ones `adjust` shortens.
async fn app_with_deadlines(adjust: impl FnOnce(&mut agora::config::Settings)) -> TestApp {
    spawn_app_with(|settings| {
        settings.http_header_timeout = 60;
        settings.http_body_timeout = 60;
        settings.http_idle_timeout = 60;
        adjust(settings);
    })
    .await
}

#[tokio::test]
async fn a_header_trickled_byte_by_byte_is_cut_off() {
    let app = app_with_deadlines(|s| s.http_header_timeout = 1).await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let trickle = tokio::spawn(async move {
        // One header byte at a time, never the end of the head, until the server hangs up.
        while writer.write_all(b"X").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let read = tokio::time::timeout(WS_WAIT, async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection is still open");
    trickle.abort();
}

#[tokio::test]
async fn a_request_line_alone_is_cut_off_but_an_idle_wait_is_not_a_header_wait() {
    let app = app_with_deadlines(|s| s.http_header_timeout = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    assert!(until_closed(&mut stream).await.is_some(), "the connection is still open");

    // The header deadline starts with the request's first byte, not when the connection opens.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let answer = until_closed(&mut stream).await.expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_fresh_or_kept_alive() {
    let app = app_with_deadlines(|s| s.http_idle_timeout = 1).await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(until_closed(&mut silent).await.as_deref(), Some(""), "closed without an answer");

    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answer = until_closed(&mut kept).await.expect("closed after the idle deadline");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408() {
    let app = app_with_deadlines(|s| s.http_body_timeout = 1).await;
    for path in ["/graphql", "/accounts/api/token/"] {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"query\""
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = until_closed(&mut stream).await.expect("answered and closed");
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
    }
}

#[tokio::test]
async fn connections_per_client_address_are_capped() {
    let app = spawn_app_with(|s| s.http_max_connections_per_client = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let mut refused = TcpStream::connect(app.addr).await.unwrap();
    let answer = until_closed(&mut refused).await.expect("refused at once");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.ends_with(r#"{"detail":"Too many open connections from this address."}"#), "{answer}");

    // A closed connection frees its place (once the server has seen it close).
    drop(held.pop());
    let freed = tokio::time::timeout(WS_WAIT, async {
        loop {
            if app.client.get(app.url("/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "no place freed");
}

#[tokio::test]
async fn upgraded_websockets_outlive_the_http_deadlines() {
    let app = spawn_app_with(|s| {
        s.http_header_timeout = 1;
        s.http_body_timeout = 1;
        s.http_idle_timeout = 1;
    })
    .await;
    let me = app.user("wsdeadline").await;
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&me.access)).await;
    // Longer than every HTTP deadline, without a frame.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.send(json!({"id": "1", "type": "subscribe", "payload": {"query": "{ me { username } }"}})).await;
    let reply = ws.recv().await.expect("the socket still answers");
    assert_eq!(reply["payload"]["data"]["me"]["username"], me.username.as_str(), "{reply}");
}
