//! Documents past the limits (issue 9): refused before they are parsed, on every transport, with
//! the server answering afterwards.

use reqwest::multipart::Form;
use serde_json::{Value, json};

use crate::helpers::*;

/// Nesting far past the depth at which async-graphql's parser overflows a worker's stack (about
/// 2,000 levels).
const DEEP: usize = 50_000;

/// The two shapes of the attack: a list nested in an argument, an object nested in an input.
fn deep_documents(depth: usize) -> [String; 2] {
    [
        format!("{{ user(username: {}\"a\"{}) {{ id }} }}", "[".repeat(depth), "]".repeat(depth)),
        format!(
            "mutation {{ createPost(input: {{title: \"t\", content: {}\"c\"{}}}) {{ id }} }}",
            "{a:".repeat(depth),
            "}".repeat(depth)
        ),
    ]
}

/// A server whose size and token caps are far off, so that only the nesting limit stands
/// between a deep document and the parser.
async fn app_with_only_nesting_limited() -> TestApp {
    spawn_app_with(|settings| {
        settings.graphql_max_bytes = 100 << 20;
        settings.graphql_max_tokens = usize::MAX;
    })
    .await
}

/// Asserts that a GraphQL response refuses a document for its nesting.
fn assert_too_deep(body: &Value) {
    assert_eq!(codes(body), ["GRAPHQL_VALIDATION_FAILED"], "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("nests too deeply"), "{message}");
}

/// The server still serves GraphQL.
async fn assert_alive(app: &TestApp) {
    assert_eq!(app.gql_ok(None, "{ __typename }", json!({})).await, json!({"__typename": "Query"}));
}

#[tokio::test]
async fn deep_documents_are_refused_over_post_and_get() {
    let app = app_with_only_nesting_limited().await;
    for document in deep_documents(DEEP) {
        let body = app.gql(None, &document, json!({})).await;
        assert_too_deep(&body);
        assert_alive(&app).await;
    }
    // GET: the transport parses the document itself (to refuse mutations) after checking it.
    // A URI is at most 64 KiB, so fewer levels, still far past the crash point.
    for document in deep_documents(5_000) {
        let response = app.client.get(app.url("/graphql")).query(&[("query", &document)]).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_too_deep(&response.json().await.unwrap());
        assert_alive(&app).await;
    }
}

#[tokio::test]
async fn deep_documents_are_refused_over_server_sent_events() {
    let app = app_with_only_nesting_limited().await;
    for document in deep_documents(DEEP) {
        let response = app
            .client
            .post(app.url("/graphql"))
            .header("Accept", "text/event-stream")
            .json(&json!({"query": document}))
            .send()
            .await
            .expect("answered, not a dropped connection");
        let text = response.text().await.expect("a whole event stream");
        assert!(text.contains("nests too deeply") && text.contains("GRAPHQL_VALIDATION_FAILED"), "{text}");
        assert_alive(&app).await;
    }
}

#[tokio::test]
async fn deep_documents_are_refused_in_multipart_operations() {
    let app = app_with_only_nesting_limited().await;
    for document in deep_documents(DEEP) {
        let form = Form::new()
            .text("operations", json!({"query": document, "variables": {"file": null}}).to_string())
            .text("map", json!({"0": ["variables.file"]}).to_string())
            .part("0", reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("a.png"));
        let response = app.client.post(app.url("/graphql")).multipart(form).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_too_deep(&response.json().await.unwrap());
        assert_alive(&app).await;
    }
}

/// The next result or error of an operation (the `complete` of earlier ones skipped).
async fn answer(ws: &mut GqlWs) -> Value {
    loop {
        let message = ws.recv().await.expect("socket open");
        if message["type"] != "complete" {
            return message;
        }
    }
}

#[tokio::test]
async fn deep_documents_are_refused_over_both_websocket_protocols() {
    let app = app_with_only_nesting_limited().await;
    for protocol in WsProtocol::BOTH {
        let mut ws = GqlWs::connect(&app, protocol, None).await;
        // A WebSocket message is at most 64 KiB: fewer levels, still far past the crash point.
        for document in deep_documents(10_000) {
            ws.subscribe(&document, json!({})).await;
            let message = answer(&mut ws).await;
            let text = message.to_string();
            assert!(text.len() < 10_000, "{}", &text[..10_000]);
            // `error` carries the errors as its payload (graphql-ws: the first one alone); a
            // result carries them in `errors`.
            let errors = match &message["payload"] {
                _ if message["type"] != "error" => message["payload"]["errors"].clone(),
                Value::Array(errors) => json!(errors),
                error => json!([error]),
            };
            assert_too_deep(&json!({"errors": errors}));
            // The socket still runs operations.
            ws.subscribe("{ __typename }", json!({})).await;
            let message = answer(&mut ws).await;
            assert_eq!(message["payload"]["data"], json!({"__typename": "Query"}), "{message}");
        }
        ws.close().await;
        assert_alive(&app).await;
    }
}

#[tokio::test]
async fn documents_past_the_size_and_token_caps_are_refused() {
    let app = spawn_app_with(|settings| {
        settings.graphql_max_bytes = 1_000;
        settings.graphql_max_tokens = 50;
    })
    .await;
    let long = format!("{{ user(username: \"{}\") {{ id }} }}", "a".repeat(1_000));
    let body = app.gql(None, &long, json!({})).await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("at most 1000 bytes"), "{body}");

    let many = format!("{{ {} }}", "__typename ".repeat(60));
    let body = app.gql(None, &many, json!({})).await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("too many tokens"), "{body}");

    let fits = format!("{{ {} }}", "__typename ".repeat(40));
    assert_eq!(app.gql_ok(None, &fits, json!({})).await, json!({"__typename": "Query"}));
}

#[tokio::test]
async fn aliases_and_root_mutation_fields_are_capped() {
    let app = spawn_app_with(|settings| {
        settings.graphql_max_aliases = 3;
        settings.graphql_max_root_mutation_fields = 2;
    })
    .await;
    let aliases: String = (0..4).map(|i| format!("a{i}: __typename ")).collect();
    let body = app.gql(None, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("too many aliases"), "{body}");

    // Three `createPost` through aliases: refused before any runs, nothing stored.
    let user = app.user("mutator").await;
    let posts: String =
        (0..3).map(|i| format!("p{i}: createPost(input: {{title: \"t{i}\", content: \"c\"}}) {{ id }} ")).collect();
    let body = app.gql(Some(&user.access), &format!("mutation {{ {posts} }}"), json!({})).await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("at most 2 root fields"), "{body}");
    let data = app
        .gql_ok(
            Some(&user.access),
            "query($u: String!) { user(username: $u) { posts { totalCount } } }",
            json!({"u": user.username}),
        )
        .await;
    assert_eq!(data["user"]["posts"]["totalCount"], 0, "{data}");
}

#[tokio::test]
async fn directives_per_field_are_capped() {
    let app = spawn_app_with(|settings| settings.graphql_max_directives = 3).await;
    let three = "{ __typename @skip(if: false) @skip(if: false) @include(if: true) }";
    assert_eq!(app.gql(None, three, json!({})).await["data"], json!({"__typename": "Query"}));
    let four = "{ __typename @skip(if: false) @skip(if: false) @skip(if: false) @include(if: true) }";
    let body = app.gql(None, four, json!({})).await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("Too many directives"), "{body}");
}

#[tokio::test]
async fn a_response_lists_at_most_max_errors_then_how_many_more() {
    let app = spawn_app_with(|settings| settings.graphql_max_errors = 5).await;
    // One validation error per unused variable.
    let variables: String = (0..20).map(|i| format!("$v{i}: Int ")).collect();
    let body = app.gql(None, &format!("query({variables}) {{ __typename }}"), json!({})).await;
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 6, "{body}");
    assert!(errors[..5].iter().all(|e| e["message"].as_str().unwrap().contains("is not used")), "{body}");
    assert_eq!(errors[5]["message"], "15 more errors were left out (at most 5 are listed).");
    assert_eq!(codes(&body), vec!["GRAPHQL_VALIDATION_FAILED"; 6]);
}

/// A few lines that stand for 2^30 fields: each fragment spreads the next one twice (within
/// async-graphql's own recursion limit of 32). Without the cap, 20 levels took 16 s of CPU to
/// answer and 30 would take hours.
#[tokio::test]
async fn fragment_bombs_are_refused_before_validation() {
    let app = spawn_app().await;
    let bomb = |levels: usize| {
        let fragments: String =
            (0..levels).map(|i| format!("fragment F{i} on Query {{ ...F{} ...F{} }} ", i + 1, i + 1)).collect();
        format!("{{ ...F0 }} {fragments} fragment F{levels} on Query {{ __typename }}")
    };
    assert_eq!(app.gql_ok(None, &bomb(4), json!({})).await, json!({"__typename": "Query"}));
    let body = app.gql(None, &bomb(30), json!({})).await;
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("too many selections"), "{body}");
    assert_alive(&app).await;
}
