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
