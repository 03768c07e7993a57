//! GraphQL over HTTP by the specification (issues 9 and 12): body types, `Accept` negotiation,
//! status codes, and a JSON GraphQL response with `extensions.code` for every answer.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::helpers::*;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// Status, content type (without parameters) and JSON body of a response.
async fn read(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let essence = content_type.split(';').next().unwrap_or("").trim().to_owned();
    let body = response.json().await.expect("a JSON body");
    (status, essence, body)
}

#[tokio::test]
async fn only_json_and_multipart_bodies_are_run() {
    let app = spawn_app().await;
    let user = app.user("posting").await;
    let mutation =
        json!({"query": "mutation { createPost(input: {title: \"t\", content: \"c\"}) { id } }"}).to_string();
    for content_type in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/graphql"), None]
    {
        let mut request = app.client.post(app.url("/graphql")).bearer_auth(&user.access).body(mutation.clone());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let (status, essence, body) = read(request.send().await.unwrap()).await;
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert_eq!(essence, "application/json");
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
        assert!(body.get("data").is_none(), "{body}");
    }
    // Nothing ran: the same request as JSON is the first post.
    let request = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&user.access)
        .header(CONTENT_TYPE, "application/json; charset=utf-8");
    let (status, _, body) = read(request.body(mutation).send().await.unwrap()).await;
    assert_eq!((status, body["errors"].clone()), (200, Value::Null), "{body}");
    let data = app
        .gql_ok(
            Some(&user.access),
            "query($u: String!) { user(username: $u) { posts { totalCount } } }",
            json!({"u": user.username}),
        )
        .await;
    assert_eq!(data["user"]["posts"]["totalCount"], 1);
}

#[tokio::test]
async fn the_response_type_follows_accept() {
    let app = spawn_app().await;
    let cases = [
        (None, "application/json"),
        (Some("*/*"), "application/json"),
        (Some("application/json"), "application/json"),
        (Some("text/html"), "application/json"),
        (Some(GRAPHQL_RESPONSE), GRAPHQL_RESPONSE),
        (Some("application/graphql-response+json, application/json;q=0.9"), GRAPHQL_RESPONSE),
        (Some("application/json, application/graphql-response+json"), "application/json"),
        (Some("application/json;q=0.5, application/graphql-response+json"), GRAPHQL_RESPONSE),
    ];
    for (accept, expected) in cases {
        let mut request = app.client.post(app.url("/graphql")).json(&json!({"query": "{ __typename }"}));
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        let (status, essence, body) = read(request.send().await.unwrap()).await;
        assert_eq!((status, essence.as_str()), (200, expected), "{accept:?}");
        assert_eq!(body, json!({"data": {"__typename": "Query"}}));
    }
}

#[tokio::test]
async fn requests_refused_before_execution_have_no_data() {
    let app = spawn_app().await;
    let cases = [
        ("{ __typename", json!({}), "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", json!({}), "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int) { users(first: $n) { totalCount } }", json!({"n": "ten"}), "GRAPHQL_VALIDATION_FAILED"),
    ];
    for (query, variables, code) in cases {
        for (accept, status) in [(GRAPHQL_RESPONSE, 400), ("application/json", 200)] {
            let request = app.client.post(app.url("/graphql")).header(ACCEPT, accept);
            let response = request.json(&json!({"query": query, "variables": variables})).send().await.unwrap();
            let (got, _, body) = read(response).await;
            assert_eq!(got, status, "{query} with {accept}: {body}");
            assert!(body.get("data").is_none(), "{query}: {body}");
            assert!(codes(&body).iter().all(|c| c == code) && !codes(&body).is_empty(), "{query}: {body}");
        }
    }
    // An error while executing is still a 200 with `data`.
    let request = app.client.post(app.url("/graphql")).header(ACCEPT, GRAPHQL_RESPONSE);
    let (status, _, body) = read(request.json(&json!({"query": "{ me { id } }"})).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(codes(&body), ["UNAUTHENTICATED"]);
    assert!(body.get("data").is_some(), "{body}");
}

#[tokio::test]
async fn transport_errors_are_graphql_responses() {
    let app = spawn_app_with(|settings| settings.max_body_bytes = 4_096).await;
    let post = |body: String| app.client.post(app.url("/graphql")).header(CONTENT_TYPE, "application/json").body(body);
    let cases = [
        ("not JSON", "{\"query\": ".to_owned(), 400),
        ("a batch", json!([{"query": "{ __typename }"}]).to_string(), 400),
        ("no query", json!({"notquery": "{ __typename }"}).to_string(), 400),
        ("a query that is not a string", json!({"query": 1}).to_string(), 400),
        ("variables that are not an object", json!({"query": "{ __typename }", "variables": "x"}).to_string(), 400),
        ("too large", json!({"query": format!("{{ __typename }} # {}", "x".repeat(5_000))}).to_string(), 413),
    ];
    for (what, body, status) in cases {
        let (got, essence, body) = read(post(body).send().await.unwrap()).await;
        assert_eq!((got, essence.as_str()), (status, "application/json"), "{what}: {body}");
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{what}: {body}");
        assert!(body.get("data").is_none(), "{what}: {body}");
    }
    // A body over the limit sent without a length (chunked) too.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /graphql HTTP/1.1\r\nHost: agora\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    socket.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{{\"query\": \"{}\"}}", "x".repeat(1_000));
    for _ in 0..10 {
        let _ = socket.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await;
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = String::new();
    let _ = socket.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"BAD_USER_INPUT\""), "{answer}");
}

#[tokio::test]
async fn a_malformed_multipart_map_is_answered_after_the_body_is_read() {
    let app = spawn_app().await;
    let operations =
        json!({"query": "mutation($f: Upload) { updateProfile(input: {image: $f}) { id } }", "variables": {"f": null}});
    for map in ["not json", "{\"0\": \"variables.f\"}", "[1, 2]"] {
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", map)
            .part("0", reqwest::multipart::Part::bytes(vec![7u8; 200_000]).file_name("a.png"));
        let response =
            app.client.post(app.url("/graphql")).multipart(form).send().await.expect("an answer, not a broken pipe");
        let (status, _, body) = read(response).await;
        assert_eq!(status, 400, "{map}: {body}");
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{map}: {body}");
    }
}

#[tokio::test]
async fn get_reads_the_standard_parameter_names() {
    let app = spawn_app().await;
    let document = "query A { a: __typename } query B { b: __typename }";
    let response =
        app.client.get(app.url("/graphql")).query(&[("query", document), ("operationName", "B")]).send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!((status, body), (200, json!({"data": {"b": "Query"}})));
    let query = "query($n: String!) { __type(name: $n) { name } }";
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", query), ("variables", "{\"n\": \"Query\"}"), ("extensions", "{}")])
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!((status, body), (200, json!({"data": {"__type": {"name": "Query"}}})));
    // A mutation over GET is refused (405), as a GraphQL response.
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "mutation { refreshToken(refresh: \"x\") { access } }")])
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!((status, codes(&body)), (405, vec!["BAD_USER_INPUT".to_owned()]), "{body}");
}

/// The positions of `keys` (as JSON keys) in a response's text.
fn positions(text: &str, keys: &[&str]) -> Vec<usize> {
    keys.iter().map(|key| text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {text}"))).collect()
}

/// async-graphql collects fields in the order they complete: `lastMessage` (a DataLoader,
/// answered after a batch) came after `name`.
#[tokio::test]
async fn fields_come_in_the_order_of_the_selection_set() {
    let app = spawn_app().await;
    let alice = app.user("ordera").await;
    let bob = app.user("orderb").await;
    let create = "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }";
    let room = app.gql_ok(Some(&alice.access), create, json!({"r": bob.username})).await;
    let room = room["createChatRoom"]["chatRoom"]["name"].as_str().unwrap().to_owned();
    let send = "mutation($r: String!) { sendMessage(roomName: $r, content: \"hi\") { id } }";
    app.gql_ok(Some(&alice.access), send, json!({"r": room})).await;

    let cases: [(&str, &[&str]); 3] = [
        ("{ myChatRooms { lastMessage { content id } name } }", &["lastMessage", "content", "id", "name"]),
        (
            "{ myChatRooms { n: name ...F members { username } } } \
             fragment F on ChatRoom { lastMessage { id } ... on ChatRoom { displayName } }",
            &["n", "lastMessage", "displayName", "members"],
        ),
        (
            "{ me { username } myChatRooms { displayName lastMessage { author { username } } } }",
            &["me", "myChatRooms", "displayName", "lastMessage"],
        ),
    ];
    for (query, keys) in cases {
        // Several times: completion order varies from run to run.
        for _ in 0..5 {
            let request = app.client.post(app.url("/graphql")).bearer_auth(&alice.access);
            let text = request.json(&json!({"query": query})).send().await.unwrap().text().await.unwrap();
            let found = positions(&text, keys);
            assert!(found.windows(2).all(|pair| pair[0] < pair[1]), "{query}: {text}");
        }
    }
}
