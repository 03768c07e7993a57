//! GraphQL over Server-Sent Events (the `graphql-sse` protocol, distinct connections mode) on
//! `/graphql` with `Accept: text/event-stream`, read by a real HTTP client as a stream.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::helpers::*;

/// An open event stream, read event by event.
struct Events {
    response: reqwest::Response,
    buffer: String,
    /// Comments (keep-alives) seen so far.
    comments: usize,
}

impl Events {
    /// POSTs `body` asking for an event stream; the answer must be one.
    async fn post(app: &TestApp, token: Option<&str>, body: Value) -> Events {
        let mut request = app.client.post(app.url("/graphql")).header(ACCEPT, "text/event-stream").json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Events::open(request).await
    }

    async fn open(request: reqwest::RequestBuilder) -> Events {
        let response = request.send().await.expect("request sent");
        assert_eq!(response.status(), 200);
        let content_type = response.headers().get(CONTENT_TYPE).unwrap().to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        Events { response, buffer: String::new(), comments: 0 }
    }

    /// The next event, `(event, data)`; `None` once the stream has ended.
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), Vec::new());
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim_start().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if !event.is_empty() || !data.is_empty() {
                    return Some((event, data.join("\n")));
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("the stream went silent")
                .expect("the stream reads");
            self.buffer.push_str(std::str::from_utf8(&chunk?).expect("UTF-8"));
        }
    }

    /// The data of the next event, which must be `next`.
    async fn next_payload(&mut self) -> Value {
        let (event, data) = self.next().await.expect("an event");
        assert_eq!(event, "next", "{data}");
        serde_json::from_str(&data).expect("JSON data")
    }

    /// The stream completes, and ends.
    async fn completes(mut self) {
        assert_eq!(self.next().await, Some(("complete".to_owned(), String::new())));
        assert_eq!(self.next().await, None, "nothing after complete");
    }
}

#[tokio::test]
async fn a_query_and_a_mutation_are_one_result_then_complete() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut events = Events::post(&app, Some(&alice.access), json!({"query": "{ me { username } }"})).await;
    assert_eq!(events.next_payload().await, json!({"data": {"me": {"username": alice.username}}}));
    events.completes().await;

    let create =
        "mutation { createPost(input: {title: \"t\", content: \"over SSE\"}) { content author { username } } }";
    let mut events = Events::post(&app, Some(&alice.access), json!({"query": create})).await;
    let created = events.next_payload().await;
    assert_eq!(created["data"]["createPost"], json!({"content": "over SSE", "author": {"username": alice.username}}));
    events.completes().await;

    // GET runs queries (EventSource can only GET); a mutation is refused as over plain GET.
    let get = app.client.get(app.url("/graphql")).query(&[("query", "{ posts(first: 1) { nodes { content } } }")]);
    let mut events = Events::open(get.bearer_auth(&alice.access).header(ACCEPT, "text/event-stream")).await;
    let posts = events.next_payload().await;
    assert_eq!(posts["data"]["posts"]["nodes"], json!([{"content": "over SSE"}]), "{posts}");
    events.completes().await;
    let refused = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", create)])
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 405);
    assert_eq!(codes(&refused.json().await.unwrap()), ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn request_errors_are_a_next_event_and_transport_errors_answer_as_post() {
    let app = spawn_app().await;
    // Does not validate: the protocol reports it through the stream, without `data`.
    let mut events = Events::post(&app, None, json!({"query": "{ noSuchField }"})).await;
    let invalid = events.next_payload().await;
    assert_eq!(codes(&invalid), ["GRAPHQL_VALIDATION_FAILED"], "{invalid}");
    assert!(invalid.get("data").is_none(), "{invalid}");
    events.completes().await;
    // Over the document limits: the same.
    let deep = format!("{{ me {} }}", "{ a ".repeat(40) + &"}".repeat(40));
    let mut events = Events::post(&app, None, json!({"query": deep})).await;
    assert_eq!(codes(&events.next_payload().await), ["GRAPHQL_VALIDATION_FAILED"]);
    events.completes().await;

    // Not a GraphQL request at all: the JSON answer and status of POST.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header(ACCEPT, "text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
    assert_eq!(codes(&response.json().await.unwrap()), ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn a_subscription_without_a_user_is_refused_in_the_stream() {
    let app = spawn_app().await;
    let mut events = Events::post(&app, None, json!({"query": "subscription { messageAdded { id } }"})).await;
    let refused = events.next_payload().await;
    assert_eq!(codes(&refused), ["UNAUTHENTICATED"], "{refused}");
    events.completes().await;
    // Over GET too (EventSource's only method): a subscription may run there.
    let get = app.client.get(app.url("/graphql")).query(&[("query", "subscription { messageAdded { id } }")]);
    let mut events = Events::open(get.header(ACCEPT, "text/event-stream")).await;
    assert_eq!(codes(&events.next_payload().await), ["UNAUTHENTICATED"]);
    events.completes().await;
    // A refused token is not taken for anonymous either.
    let mut events = Events::post(&app, Some("not-a-token"), json!({"query": "{ me { id } }"})).await;
    let refused = events.next_payload().await;
    assert!(!codes(&refused).is_empty(), "{refused}");
    events.completes().await;
}

#[tokio::test]
async fn a_subscription_streams_messages_sent_by_another_user() {
    let app = spawn_app_with(|s| s.ws_ping_seconds = 1).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let create = "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }";
    let room = app.gql_ok(Some(&alice.access), create, json!({"r": bob.username})).await["createChatRoom"]["chatRoom"]
        ["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = "mutation($room: String!, $c: String!) { sendMessage(roomName: $room, content: $c) { id } }";
    let sent = app.gql_ok(Some(&alice.access), send, json!({"room": room, "c": "before"})).await;
    let cursor = {
        use base64::Engine;
        let id = sent["sendMessage"]["id"].as_str().unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("message:{id}"))
    };
    // From the message before: whatever is sent from here on arrives, live or replayed.
    let subscription = "subscription($room: String, $after: String) { messageAdded(roomName: $room, after: $after) { content author { username } } }";
    let mut events = Events::post(
        &app,
        Some(&alice.access),
        json!({"query": subscription, "variables": {"room": room, "after": cursor}}),
    )
    .await;
    app.gql_ok(Some(&bob.access), send, json!({"room": room, "c": "hello alice"})).await;
    let received = events.next_payload().await;
    assert_eq!(
        received,
        json!({"data": {"messageAdded": {"content": "hello alice", "author": {"username": bob.username}}}})
    );
    // Quiet for a while: keep-alive comments, nothing else (the sentinel comes next).
    while events.comments == 0 {
        let chunk = tokio::time::timeout(Duration::from_secs(20), events.response.chunk()).await.unwrap().unwrap();
        let text = String::from_utf8(chunk.expect("the stream is open").to_vec()).unwrap();
        events.comments += text.matches(":\n\n").count();
        events.buffer.push_str(&text.replace(":\n\n", ""));
    }
    app.gql_ok(Some(&bob.access), send, json!({"room": room, "c": "sentinel"})).await;
    assert_eq!(events.next_payload().await["data"]["messageAdded"]["content"], "sentinel");

    // The client goes away: the subscription ends with it (its user has no live stream left).
    assert_eq!(app.context.socket_owners.users(), vec![alice.id]);
    drop(events);
    let gone = async {
        while !app.context.socket_owners.users().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), gone).await.expect("the stream ended when the client left");
}

#[tokio::test]
async fn a_subscription_stream_ends_at_shutdown() {
    let mut app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut events =
        Events::post(&app, Some(&alice.access), json!({"query": "subscription { messageAdded { id } }"})).await;
    // The subscription runs once its user holds a stream.
    let running = async {
        while app.context.socket_owners.users().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), running).await.expect("the subscription started");
    app.stop().await;
    // Ended without `complete`: the operation did not finish, the client reconnects.
    assert_eq!(events.next().await, None);
}

#[tokio::test]
async fn chat_events_stream_over_sse_and_the_stream_counts_for_presence() {
    use crate::chat_events::{EVENTS, from_start, label, next_event, open_room, send};
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = open_room(&app, &alice, &bob).await;
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&bob.access)).await;
    ws.subscribe(EVENTS, json!({"after": from_start()})).await;
    assert_eq!(label(&next_event(&mut ws).await), format!("room {room}"));

    // Alice's only connection is an SSE stream: she is online while it lasts. (From the room's
    // start: what is sent next arrives, live or replayed.)
    let mut events = Events::post(
        &app,
        Some(&alice.access),
        json!({"query": EVENTS, "variables": {"room": room, "after": from_start()}}),
    )
    .await;
    assert_eq!(label(&next_event(&mut ws).await), format!("presence {} true", alice.username));
    send(&app, &bob, &room, "over sse").await;
    // Bob's own presence may come first (his socket opened just before).
    let mut event = events.next_payload().await["data"]["chatEvents"].clone();
    while event["__typename"] == "PresenceChanged" {
        event = events.next_payload().await["data"]["chatEvents"].clone();
    }
    assert_eq!(label(&event), format!("added {room} over sse"));
    drop(events);
    assert_eq!(label(&next_event(&mut ws).await), format!("added {room} over sse"));
    assert_eq!(label(&next_event(&mut ws).await), format!("presence {} false", alice.username));
}
