//! Hostile input (issue 9): strings no stored value can hold. PostgreSQL's `text` refuses NUL,
//! so each of these was a 500 there; every case answers as DRF does on SQLite, on both databases
//! (these tests run on PostgreSQL when `TEST_DATABASE_URL` is set). And clients that hold
//! connections: HTTP deadlines (reading and writing) and the per-client connection cap.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::legacy_rest::{Payload, get, legacy_user, post, rest};
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
async fn a_client_that_never_reads_its_response_is_cut_off() {
    let app = app_with_deadlines(|s| {
        s.http_write_timeout = 1;
        s.http_max_connections_per_client = 1;
    })
    .await;
    // A response larger than the socket buffers on both sides can hold.
    const SIZE: usize = 16 * 1024 * 1024;
    std::fs::write(app.context.state.media.root().join("big.bin"), vec![b'x'; SIZE]).unwrap();
    let socket = if app.addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() };
    let socket = socket.unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(app.addr).await.unwrap();
    stalled.write_all(b"GET /media/big.bin HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();

    // The stalled connection holds the address's only place until the server gives up on it.
    let freed = tokio::time::timeout(WS_WAIT, async {
        loop {
            let mut probe = TcpStream::connect(app.addr).await.unwrap();
            probe.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            if until_closed(&mut probe).await.is_some_and(|answer| answer.starts_with("HTTP/1.1 200")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "the connection that does not read is still open");
    // What was already in the buffers arrives, then the end: the rest was never sent.
    let mut received = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let end = tokio::time::timeout(WS_WAIT, async {
        while let Ok(n @ 1..) = stalled.read(&mut buf).await {
            received += n;
        }
    })
    .await;
    assert!(end.is_ok(), "the connection ended");
    assert!(received < SIZE, "cut off: {received} bytes of {SIZE}");
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

// ---- failed sign-ins per account, per address; messages per user per second ----

const WRONG: &str = "not the password";

/// A GraphQL request from `client` (as a trusted proxy's `X-Forwarded-For` says); the body.
async fn gql_from(app: &TestApp, client: &str, query: &str, variables: serde_json::Value) -> serde_json::Value {
    let body = json!({"query": query, "variables": variables});
    let response = app.client.post(app.url("/graphql")).header("X-Forwarded-For", client).json(&body).send().await;
    response.unwrap().json().await.unwrap()
}

/// `tokenAuth` from `client`.
async fn sign_in_from(app: &TestApp, client: &str, username: &str, password: &str) -> serde_json::Value {
    gql_from(app, client, TOKEN_AUTH, json!({"u": username, "p": password})).await
}

#[tokio::test]
async fn guesses_at_one_account_from_many_addresses_back_off_but_not_for_its_known_network() {
    let app = spawn_app_with(|s| {
        s.trust_forwarded_for = true;
        s.signin_free_failures = 3;
    })
    .await;
    let name = unique("target");
    app.register(&name).await;
    // The owner signed in from home before the attack.
    assert!(codes(&sign_in_from(&app, "198.51.100.7", &name, PASSWORD).await).is_empty());
    for n in 0..3 {
        let body = sign_in_from(&app, &format!("203.0.113.{n}"), &name, WRONG).await;
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{body}");
    }
    // Further addresses are made to wait: the account backs off (1 s, then doubling; on a slow
    // machine a guess may land after a wait, and the next wait is longer).
    let body = {
        let mut n = 10;
        loop {
            let body = sign_in_from(&app, &format!("203.0.113.{n}"), &name, WRONG).await;
            if codes(&body) != ["UNAUTHENTICATED"] || n == 20 {
                break body;
            }
            n += 1;
        }
    };
    assert_eq!(codes(&body), ["TOO_MANY_REQUESTS"], "{body}");
    let retry = body["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Even with the right password.
    assert_eq!(codes(&sign_in_from(&app, "192.0.2.9", &name, PASSWORD).await), ["TOO_MANY_REQUESTS"]);
    // Another account is not held up.
    let other = app.user("bystander").await;
    assert!(codes(&sign_in_from(&app, "203.0.113.201", &other.username, PASSWORD).await).is_empty());
    // The owner's network is known to the account: strangers' failures do not lock it out.
    let body = sign_in_from(&app, "198.51.100.7", &name, PASSWORD).await;
    assert!(codes(&body).is_empty(), "{body}");
}

#[tokio::test]
async fn a_crowd_behind_one_address_signs_in_and_only_failures_are_counted() {
    let app = spawn_app_with(|s| {
        s.trust_forwarded_for = true;
        s.auth_rate_per_minute = 3;
    })
    .await;
    let carrier = "100.64.0.1";
    let mut crowd = Vec::new();
    for n in 0..4 {
        let name = unique("crowd");
        let variables = json!({"u": name, "e": format!("{name}@example.com"), "p": PASSWORD});
        let body = gql_from(&app, &format!("192.0.2.{n}"), REGISTER, variables).await;
        assert!(codes(&body).is_empty(), "{body}");
        crowd.push(name);
    }
    // Three times the address budget of successful sign-ins from one carrier address: all answered.
    for _ in 0..3 {
        for name in &crowd {
            let body = sign_in_from(&app, carrier, name, PASSWORD).await;
            assert!(codes(&body).is_empty(), "{body}");
        }
    }
    // Failures are what the address budget counts.
    for name in &crowd[..3] {
        assert_eq!(codes(&sign_in_from(&app, carrier, name, WRONG).await), ["UNAUTHENTICATED"]);
    }
    assert_eq!(codes(&sign_in_from(&app, carrier, &crowd[3], PASSWORD).await), ["TOO_MANY_REQUESTS"]);
    // Registrations count too.
    let variables = json!({"u": "late", "e": "late@example.com", "p": PASSWORD});
    assert_eq!(codes(&gql_from(&app, carrier, REGISTER, variables).await), ["TOO_MANY_REQUESTS"]);
}

#[tokio::test]
#[ignore = "needs Redis (TEST_REDIS_URL)"]
async fn failed_sign_ins_are_counted_across_processes_through_redis() {
    let redis = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL");
    let prefix = unique("agora_signin");
    let settings = |s: &mut agora::config::Settings| {
        s.redis_url = Some(redis.clone());
        s.redis_channel = prefix.clone();
        s.signin_free_failures = 2;
    };
    let first = spawn_app_with(settings).await;
    let second = spawn_app_with(settings).await;
    let name = unique("ghost");
    for app in [&first, &second] {
        assert_eq!(codes(&app.gql(None, TOKEN_AUTH, json!({"u": name, "p": WRONG})).await), ["UNAUTHENTICATED"]);
    }
    for app in [&first, &second] {
        assert_eq!(codes(&app.gql(None, TOKEN_AUTH, json!({"u": name, "p": WRONG})).await), ["TOO_MANY_REQUESTS"]);
    }
}

#[tokio::test]
async fn messages_per_user_per_second_are_capped_on_every_channel() {
    let app = spawn_app_with(|s| s.messages_per_second = 2).await;
    let me = legacy_user(&app, "flood").await;
    let peer = legacy_user(&app, "floodpeer").await;
    let room = app
        .gql_ok(
            Some(&me.access),
            "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }",
            json!({"r": peer.username}),
        )
        .await["createChatRoom"]["chatRoom"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    // GraphQL: ten aliased sends in one request, far past the rate: the first ones are stored,
    // the rest refused.
    let flood = format!(
        "mutation($n: String!) {{ {} }}",
        (0..10)
            .map(|i| format!("m{i}: sendMessage(roomName: $n, content: \"{i}\") {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let body = app.gql(Some(&me.access), &flood, json!({"n": room})).await;
    let refused = codes(&body).len();
    assert!(refused > 0 && codes(&body).iter().all(|c| c == "TOO_MANY_REQUESTS"), "{body}");
    assert!(body["data"]["m0"]["id"].is_string() && body["data"]["m1"]["id"].is_string(), "a burst of two: {body}");
    let stored = app
        .gql_ok(
            Some(&me.access),
            "query($n: String!) { chatRoom(name: $n) { messages { totalCount } } }",
            json!({"n": room}),
        )
        .await;
    assert_eq!(stored["chatRoom"]["messages"]["totalCount"], 10 - refused, "the refused ones are not stored");

    // Another user is not held up; REST answers 429 once their own rate is used up.
    let path = format!("/messenger/api/chatrooms/{room}/messages/");
    assert_eq!(post(&app, &path, Some(&peer.access), json!({"content": "hi"})).await.status, 201);
    let mut refused = None;
    for _ in 0..50 {
        let reply = post(&app, &path, Some(&peer.access), json!({"content": "hi"})).await;
        if reply.status != 201 {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("a refusal");
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.header("retry-after").is_some());

    // The legacy socket: an `{"error"}` frame, and the socket stays open.
    let mut socket = LegacyWs::connect(&app, &room, &peer.access).await;
    let refusal = loop {
        socket.say("again").await;
        match socket.json().await {
            frame if frame.get("error").is_some() => break frame,
            _ => continue,
        }
    };
    assert!(
        refusal["error"].as_str().unwrap().starts_with("Request was throttled. Expected available in"),
        "{refusal}"
    );
}

// ---- the generated signing key ----

#[cfg(unix)]
#[tokio::test]
async fn the_generated_key_is_private_and_a_readable_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path(), fresh_database().await);
    settings.secret_key = None;
    let app = agora::startup::Application::build(settings.clone()).await.expect("builds");
    drop(app);
    let key = dir.path().join("secret_key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    // Still private: starts again with the same key.
    agora::startup::Application::build(settings.clone()).await.expect("builds again");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = agora::startup::Application::build(settings).await.err().expect("refused");
    assert!(refused.to_string().contains("can be read by other users"), "{refused:#}");
}

// ---- multipart part names with control characters ----

#[tokio::test]
async fn a_part_name_with_a_control_character_is_refused_not_read_as_the_end() {
    let app = spawn_app().await;
    let user = app.user("mpctl").await;
    for control in ["\x08", "\x0c", "\x7f"] {
        let body = format!(
            "--xx\r\nContent-Disposition: form-data; name=\"a{control}b\"\r\n\r\nv\r\n\
             --xx\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n{}\r\n\
             --xx\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{PASSWORD}\r\n--xx--\r\n",
            user.username
        );
        let reply = rest(
            &app,
            Method::POST,
            "/accounts/api/token/",
            None,
            Payload::Raw("multipart/form-data; boundary=xx", body.into_bytes()),
        )
        .await;
        reply.expect_json(400, json!({"detail": "Multipart form parse error - Invalid header in a part."}));
    }
}

// ---- media: inert when served, a default avatar ----

#[tokio::test]
async fn media_is_served_inert_and_the_default_avatar_exists() {
    let app = spawn_app().await;
    let user = app.user("avatar").await;
    let me = app.gql_ok(Some(&user.access), "{ me { profile { image } } }", json!({})).await;
    let url = me["me"]["profile"]["image"].as_str().unwrap().to_owned();
    assert_eq!(url, "/media/user_images/default.jpg");
    let served = app.client.get(app.url(&url)).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    let csp = served.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'") && csp.ends_with("sandbox"), "{csp}");
    assert!(served.bytes().await.unwrap().starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
}
