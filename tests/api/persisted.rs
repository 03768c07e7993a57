//! Automatic persisted queries (Apollo's protocol): a hash alone runs a document the server was
//! sent once, over POST and GET, in this process or (with Redis) any other.

use serde_json::{Value, json};

use crate::helpers::*;

const DOCUMENT: &str = "query Persisted { __typename }";

fn sha256(document: &str) -> String {
    agora::graphql::persisted::hash(document)
}

fn extensions(document: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}})
}

async fn post(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.client.post(app.url("/graphql")).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn get(app: &TestApp, document: &str) -> (u16, Value) {
    let extensions = extensions(document).to_string();
    let response = app.client.get(app.url("/graphql")).query(&[("extensions", extensions)]).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_hash_runs_the_document_it_was_sent_with_once() {
    let app = spawn_app().await;
    let not_found = post(&app, json!({"extensions": extensions(DOCUMENT)})).await;
    assert_eq!(not_found.0, 200);
    assert_eq!(codes(&not_found.1), ["PERSISTED_QUERY_NOT_FOUND"], "{}", not_found.1);
    assert_eq!(not_found.1["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(not_found.1.get("data").is_none());
    assert_eq!(get(&app, DOCUMENT).await.1["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND");

    let sent = post(&app, json!({"query": DOCUMENT, "extensions": extensions(DOCUMENT)})).await;
    assert_eq!(sent, (200, json!({"data": {"__typename": "Query"}})));
    assert_eq!(post(&app, json!({"extensions": extensions(DOCUMENT)})).await, sent);
    assert_eq!(get(&app, DOCUMENT).await, sent);

    // A document that does not match its hash is refused and not kept.
    let wrong = post(&app, json!({"query": "{ me { id } }", "extensions": extensions(DOCUMENT)})).await;
    assert_eq!(codes(&wrong.1), ["BAD_USER_INPUT"], "{}", wrong.1);
    assert_eq!(post(&app, json!({"extensions": extensions(DOCUMENT)})).await, sent);
}

#[tokio::test]
async fn a_persisted_mutation_does_not_run_over_get() {
    let app = spawn_app().await;
    let user = app.user("apq").await;
    let mutation = "mutation { createPost(input: {title: \"t\", content: \"c\"}) { id } }";
    let request = app.client.post(app.url("/graphql")).bearer_auth(&user.access);
    let body = json!({"query": mutation, "extensions": extensions(mutation)});
    let created: Value = request.json(&body).send().await.unwrap().json().await.unwrap();
    assert!(created["data"]["createPost"]["id"].is_string(), "{created}");

    let extensions = extensions(mutation).to_string();
    let request = app.client.get(app.url("/graphql")).bearer_auth(&user.access).query(&[("extensions", extensions)]);
    let refused: Value = request.send().await.unwrap().json().await.unwrap();
    assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    let data = app
        .gql_ok(
            Some(&user.access),
            "query($u: String!) { user(username: $u) { posts { totalCount } } }",
            json!({"u": user.username}),
        )
        .await;
    assert_eq!(data["user"]["posts"]["totalCount"], 1, "only the POST ran");
}

#[tokio::test]
#[ignore = "needs Redis (TEST_REDIS_URL)"]
async fn processes_share_persisted_queries_through_redis() {
    let redis = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL");
    let channel = unique("agora_apq");
    let share = |settings: &mut agora::config::Settings| {
        settings.redis_url = Some(redis.clone());
        settings.redis_channel = channel.clone();
    };
    let first = spawn_app_with(share).await;
    let second = spawn_app_with(share).await;
    let document = format!("query Shared{} {{ __typename }}", unique(""));
    let sent = post(&first, json!({"query": document, "extensions": extensions(&document)})).await;
    assert_eq!(sent, (200, json!({"data": {"__typename": "Query"}})));
    assert_eq!(post(&second, json!({"extensions": extensions(&document)})).await, sent);
}

/// With `AGORA_TRUSTED_DOCUMENTS`, only the listed documents run: by text or by hash (Apollo's
/// persisted-query link), over every transport; any other document is refused before it runs,
/// and sending one with its hash does not add it. The legacy layer's own documents still run.
#[tokio::test]
async fn only_trusted_documents_run_in_the_trusted_mode() {
    const ME: &str = "query Me { me { username } }";
    const CREATE: &str = "mutation Create($c: String!) { createPost(input: {title: \"t\", content: $c}) { id } }";
    let manifest = tempfile::NamedTempFile::new().unwrap();
    let operations = json!([
        {"id": sha256(ME), "name": "Me", "type": "query", "body": ME},
        {"id": sha256(CREATE), "name": "Create", "type": "mutation", "body": CREATE},
    ]);
    let content = json!({"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations});
    std::fs::write(manifest.path(), content.to_string()).unwrap();
    let path = manifest.path().to_owned();
    let app = spawn_app_with(move |s| s.trusted_documents = Some(path)).await;
    // Signing up and in over the legacy REST endpoints: the server's own documents run.
    let username = unique("alice");
    let account = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
    let created = app.client.post(app.url("/accounts/api/users/")).json(&account).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let credentials = json!({"username": username, "password": PASSWORD});
    let tokens = app.client.post(app.url("/accounts/api/token/")).json(&credentials).send().await.unwrap();
    assert_eq!(tokens.status(), 200);
    let tokens: Value = tokens.json().await.unwrap();
    let alice = TestUser {
        id: 0,
        username,
        access: tokens["access"].as_str().unwrap().to_owned(),
        refresh: tokens["refresh"].as_str().unwrap().to_owned(),
    };
    let signed_in = |body: Value| {
        let request = app.client.post(app.url("/graphql")).bearer_auth(&alice.access).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };

    let by_text = signed_in(json!({"query": ME})).await;
    assert_eq!(by_text.1, json!({"data": {"me": {"username": alice.username}}}));
    let by_hash = signed_in(json!({"extensions": extensions(CREATE), "variables": {"c": "trusted"}})).await;
    assert!(by_hash.1["data"]["createPost"]["id"].is_string(), "{}", by_hash.1);

    // Not listed: refused, whether sent as text (even with its hash) or by an unknown hash.
    let other = "mutation { createPost(input: {title: \"t\", content: \"untrusted\"}) { id } }";
    for body in [json!({"query": other}), json!({"query": other, "extensions": extensions(other)})] {
        let (status, refused) = signed_in(body).await;
        assert_eq!(status, 200);
        assert_eq!(codes(&refused), ["GRAPHQL_VALIDATION_FAILED"], "{refused}");
        assert_eq!(refused["errors"][0]["message"], agora::graphql::trusted::NOT_TRUSTED);
        assert!(refused.get("data").is_none(), "{refused}");
    }
    let unknown = signed_in(json!({"extensions": extensions(other)})).await;
    assert_eq!(codes(&unknown.1), ["PERSISTED_QUERY_NOT_FOUND"]);
    // Nor does a listed document's text with a change in it run.
    let changed = signed_in(json!({"query": format!("{ME} ")})).await;
    assert_eq!(codes(&changed.1), ["GRAPHQL_VALIDATION_FAILED"]);

    // Nothing untrusted ran: the one post is the trusted one, as the legacy endpoint lists it.
    let posts = app.client.get(app.url("/profiles/api/posts/")).bearer_auth(&alice.access).send().await.unwrap();
    assert_eq!(posts.status(), 200);
    let posts: Value = posts.json().await.unwrap();
    let contents: Vec<&str> = posts.as_array().unwrap().iter().map(|p| p["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["trusted"]);

    // Over WebSocket too.
    let mut ws = GqlWs::connect(&app, WsProtocol::TransportWs, Some(&alice.access)).await;
    ws.subscribe("subscription { messageAdded { id } }", json!({})).await;
    let error = ws.recv().await.expect("an answer");
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{error}");
}

/// A trusted-documents file that cannot be read or understood stops the server at start.
#[tokio::test]
async fn an_unreadable_trusted_documents_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "[\"not a manifest\"]").unwrap();
    for path in [dir.path().join("missing.json"), broken] {
        let mut settings = test_settings(dir.path(), fresh_database().await);
        settings.trusted_documents = Some(path.clone());
        let built = agora::startup::Application::build(settings).await;
        let err = built.err().unwrap_or_else(|| panic!("{} was accepted", path.display()));
        assert!(format!("{err:#}").contains("trusted documents"), "{err:#}");
    }
}
