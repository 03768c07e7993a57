//! Posts over GraphQL: createPost, posts, post, User.posts; paging, ordering, batching (counted
//! SQL statements) and the query limits (depth, complexity, introspection).

use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use entity::post;
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
use serde_json::{Value, json};

use crate::helpers::*;

const CREATE: &str = "mutation($t: String!, $c: String!) { createPost(input: {title: $t, content: $c}) { id title content createdAt author { id username } } }";
const POSTS: &str = "query($first: Int, $after: String) { posts(first: $first, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id title } } nodes { id title createdAt author { username } } } }";
const POST: &str = "query($id: ID!) { post(id: $id) { id title content createdAt author { username } } }";
const USER_POSTS: &str = "query($u: String!, $first: Int, $after: String) { user(username: $u) { posts(first: $first, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } nodes { title author { username } } } } }";

async fn create(app: &TestApp, user: &TestUser, title: &str) -> Value {
    app.gql_ok(Some(&user.access), CREATE, json!({"t": title, "c": format!("content of {title}")})).await["createPost"]
        .clone()
}

async fn count_posts(app: &TestApp) -> u64 {
    post::Entity::find().count(&app.context.state.db).await.unwrap()
}

/// Inserts a post directly, with a chosen creation time.
async fn insert(app: &TestApp, author: i64, title: &str, created_at: DateTime<Utc>) -> i64 {
    post::ActiveModel {
        author_id: Set(author),
        title: Set(title.to_owned()),
        content: Set("x".to_owned()),
        created_at: Set(created_at),
        ..Default::default()
    }
    .insert(&app.context.state.db)
    .await
    .unwrap()
    .id
}

fn titles(connection: &Value) -> Vec<String> {
    connection["nodes"].as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn create_post_and_read_it_back() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let before = Utc::now().trunc_subsecs(6);
    let created =
        app.gql_ok(Some(&alice.access), CREATE, json!({"t": "  Hello  ", "c": "\n World \t"})).await["createPost"]
            .clone();
    assert_eq!(created["title"], "Hello", "trimmed");
    assert_eq!(created["content"], "World", "trimmed");
    assert_eq!(created["author"], json!({"id": alice.id.to_string(), "username": alice.username}));
    let stamp = created["createdAt"].as_str().unwrap();
    assert_eq!(stamp.len(), "2026-11-24T18:42:09.605799Z".len(), "six digits of microseconds: {stamp}");
    assert!(stamp.ends_with('Z'));
    let at = DateTime::parse_from_rfc3339(stamp).unwrap().with_timezone(&Utc);
    assert!(at >= before && at <= Utc::now(), "created now: {stamp}");

    let id = created["id"].as_str().unwrap();
    let stored = post::Entity::find_by_id(id.parse::<i64>().unwrap()).one(&app.context.state.db).await.unwrap();
    assert_eq!(stored.unwrap().created_at, at, "stored exactly as shown");

    let bob = app.user("bob").await;
    let found = app.gql_ok(Some(&bob.access), POST, json!({"id": id})).await;
    assert_eq!(
        found["post"],
        json!({"id": id, "title": "Hello", "content": "World", "createdAt": stamp, "author": {"username": alice.username}})
    );
    let absent = app.gql_ok(Some(&bob.access), POST, json!({"id": "999999"})).await;
    assert_eq!(absent["post"], Value::Null);
    let malformed = app.gql(Some(&bob.access), POST, json!({"id": "abc"})).await;
    assert_eq!(field_errors(&malformed), vec![("id".to_owned(), vec!["A valid integer is required.".to_owned()])]);
    assert_eq!(malformed["data"]["post"], Value::Null);
}

#[tokio::test]
async fn every_invalid_field_of_a_post_is_reported_and_nothing_is_stored() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let blank = app.gql(Some(&alice.access), CREATE, json!({"t": "   ", "c": ""})).await;
    assert_eq!(
        field_errors(&blank),
        vec![
            ("title".to_owned(), vec!["This field may not be blank.".to_owned()]),
            ("content".to_owned(), vec!["This field may not be blank.".to_owned()]),
        ]
    );
    assert_eq!(codes(&blank), vec!["BAD_USER_INPUT"; 2]);

    let long = app.gql(Some(&alice.access), CREATE, json!({"t": "é".repeat(256), "c": "c".repeat(10_001)})).await;
    assert_eq!(
        field_errors(&long),
        vec![
            ("title".to_owned(), vec!["Ensure this field has no more than 255 characters.".to_owned()]),
            ("content".to_owned(), vec!["Ensure this field has no more than 10000 characters.".to_owned()]),
        ]
    );
    let one_bad = app.gql(Some(&alice.access), CREATE, json!({"t": "fine", "c": " "})).await;
    assert_eq!(field_errors(&one_bad), vec![("content".to_owned(), vec!["This field may not be blank.".to_owned()])]);
    assert_eq!(count_posts(&app).await, 0, "nothing stored");

    // The limits themselves are accepted (counted in characters, after trimming).
    let longest = app
        .gql_ok(Some(&alice.access), CREATE, json!({"t": format!(" {} ", "é".repeat(255)), "c": "c".repeat(10_000)}))
        .await;
    assert_eq!(longest["createPost"]["title"].as_str().unwrap().chars().count(), 255);
    assert_eq!(count_posts(&app).await, 1);
}

#[tokio::test]
async fn posts_need_a_signed_in_user() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let id = create(&app, &alice, "mine").await["id"].clone();
    for token in [None, Some("not-a-token")] {
        let created = app.gql(token, CREATE, json!({"t": "t", "c": "c"})).await;
        assert_eq!(codes(&created), vec!["UNAUTHENTICATED"], "{created}");
        let listed = app.gql(token, POSTS, json!({})).await;
        assert_eq!(codes(&listed), vec!["UNAUTHENTICATED"], "{listed}");
        assert_eq!(listed["data"], Value::Null);
        let one = app.gql(token, POST, json!({"id": id})).await;
        assert_eq!(codes(&one), vec!["UNAUTHENTICATED"], "{one}");
    }
    assert_eq!(count_posts(&app).await, 1);
}

#[tokio::test]
async fn posts_are_newest_first_and_pages_stay_stable() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    for i in 1..=5 {
        create(&app, if i % 2 == 0 { &bob } else { &alice }, &format!("p{i}")).await;
    }

    let first = app.gql_ok(Some(&alice.access), POSTS, json!({"first": 2})).await["posts"].clone();
    assert_eq!(titles(&first), ["p5", "p4"]);
    assert_eq!(first["totalCount"], 5);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(first["pageInfo"]["endCursor"], first["edges"][1]["cursor"]);
    assert_eq!(first["pageInfo"]["startCursor"], first["edges"][0]["cursor"]);
    assert_eq!(first["nodes"][0]["author"]["username"], alice.username);
    assert_eq!(first["nodes"][1]["author"]["username"], bob.username);
    let stamps: Vec<&str> =
        first["nodes"].as_array().unwrap().iter().map(|n| n["createdAt"].as_str().unwrap()).collect();
    assert!(stamps[0] >= stamps[1], "newest first: {stamps:?}");

    // A post published meanwhile does not shift the next page.
    create(&app, &bob, "p6").await;
    let second = app
        .gql_ok(Some(&alice.access), POSTS, json!({"first": 2, "after": first["pageInfo"]["endCursor"]}))
        .await["posts"]
        .clone();
    assert_eq!(titles(&second), ["p3", "p2"]);
    assert_eq!(second["totalCount"], 6);
    assert_eq!(second["pageInfo"]["hasNextPage"], true);
    assert_eq!(second["pageInfo"]["hasPreviousPage"], true);
    let last = app
        .gql_ok(Some(&alice.access), POSTS, json!({"first": 2, "after": second["pageInfo"]["endCursor"]}))
        .await["posts"]
        .clone();
    assert_eq!(titles(&last), ["p1"]);
    assert_eq!(last["pageInfo"]["hasNextPage"], false);

    // The default page is 20.
    let all = app.gql_ok(Some(&alice.access), POSTS, json!({})).await["posts"].clone();
    assert_eq!(titles(&all), ["p6", "p5", "p4", "p3", "p2", "p1"]);
    assert_eq!(all["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn equal_times_are_ordered_by_id_and_paging_crosses_them() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let whole = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap().with_timezone(&Utc);
    // Whole seconds, milliseconds and microseconds are stored alike and compare in time order.
    let a = insert(&app, alice.id, "a", whole).await;
    let b = insert(&app, alice.id, "b", whole + Duration::microseconds(1)).await;
    let c = insert(&app, alice.id, "c", whole + Duration::milliseconds(500)).await;
    let d = insert(&app, alice.id, "d", whole + Duration::milliseconds(500)).await;
    let e = insert(&app, alice.id, "e", whole + Duration::microseconds(500_001)).await;
    let f = insert(&app, alice.id, "f", whole + Duration::seconds(1)).await;
    let g = insert(&app, alice.id, "g", whole - Duration::microseconds(1)).await;
    assert!(a < b && b < c && c < d && d < e && e < f && f < g);

    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app.gql_ok(Some(&alice.access), POSTS, json!({"first": 1, "after": after})).await["posts"].clone();
        seen.extend(titles(&page));
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, ["f", "e", "d", "c", "b", "a", "g"]);
    // The same order in one page.
    let all = app.gql_ok(Some(&alice.access), POSTS, json!({"first": 100})).await["posts"].clone();
    assert_eq!(titles(&all), seen);
}

#[tokio::test]
async fn a_users_posts_are_theirs_newest_first() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    for i in 1..=3 {
        create(&app, &alice, &format!("a{i}")).await;
        create(&app, &bob, &format!("b{i}")).await;
    }
    let first =
        app.gql_ok(Some(&bob.access), USER_POSTS, json!({"u": alice.username, "first": 2})).await["user"]["posts"]
            .clone();
    assert_eq!(titles(&first), ["a3", "a2"]);
    assert_eq!(first["totalCount"], 3);
    assert!(first["nodes"].as_array().unwrap().iter().all(|n| n["author"]["username"] == alice.username.as_str()));
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let rest = app
        .gql_ok(
            Some(&bob.access),
            USER_POSTS,
            json!({"u": alice.username, "first": 2, "after": first["pageInfo"]["endCursor"]}),
        )
        .await["user"]["posts"]
        .clone();
    assert_eq!(titles(&rest), ["a1"]);
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    assert_eq!(rest["pageInfo"]["hasPreviousPage"], true);

    let mine = app.gql_ok(Some(&bob.access), "{ me { posts { totalCount nodes { title } } } }", json!({})).await;
    assert_eq!(titles(&mine["me"]["posts"]), ["b3", "b2", "b1"]);
    let carol = app.user("carol").await;
    let none = app.gql_ok(Some(&carol.access), "{ me { posts { totalCount nodes { title } } } }", json!({})).await;
    assert_eq!(none["me"]["posts"], json!({"totalCount": 0, "nodes": []}));
}

#[tokio::test]
async fn page_sizes_and_cursors_are_checked() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    create(&app, &alice, "only").await;
    for (first, message) in [
        (101, "Ensure this value is less than or equal to 100."),
        (-1, "Ensure this value is greater than or equal to 0."),
    ] {
        let body = app.gql(Some(&alice.access), POSTS, json!({"first": first})).await;
        assert_eq!(field_errors(&body), vec![("first".to_owned(), vec![message.to_owned()])]);
        let body = app.gql(Some(&alice.access), USER_POSTS, json!({"u": alice.username, "first": first})).await;
        assert_eq!(field_errors(&body), vec![("first".to_owned(), vec![message.to_owned()])]);
    }
    let empty = app.gql_ok(Some(&alice.access), POSTS, json!({"first": 0})).await["posts"].clone();
    assert_eq!(titles(&empty), Vec::<String>::new());
    assert_eq!(empty["totalCount"], 1);

    let users = app.gql_ok(Some(&alice.access), "{ users { edges { cursor } } }", json!({})).await;
    let user_cursor = users["users"]["edges"][0]["cursor"].clone();
    for bad in [json!("garbage"), user_cursor, json!("cG9zdDo0Mg")] {
        let body = app.gql(Some(&alice.access), POSTS, json!({"after": bad})).await;
        assert_eq!(field_errors(&body), vec![("after".to_owned(), vec!["Invalid cursor.".to_owned()])], "{bad}");
    }
}

const FEED: &str =
    "query($first: Int) { posts(first: $first) { nodes { title author { username profile { bio image } } } } }";
const FEED_EDGES: &str = "query($first: Int) { posts(first: $first) { edges { node { ...P } } nodes { title author { username profile { bio image } } } } } fragment P on Post { author { profile { bio } } }";

#[tokio::test]
async fn a_page_with_authors_and_profiles_costs_the_same_few_statements_at_any_size() {
    let app = spawn_app().await;
    let mut authors = Vec::new();
    for i in 0..4 {
        authors.push(app.user(&format!("author{i}_")).await);
    }
    let start = Utc::now().trunc_subsecs(6);
    for i in 0..120 {
        let author = &authors[i % authors.len()];
        insert(&app, author.id, &format!("t{i}"), start + Duration::milliseconds(i as i64)).await;
    }
    let counter = &app.statements;
    let mut costs = Vec::new();
    // Repeated, and through `edges` too: batching must not depend on timing.
    for (first, query) in [(10, FEED), (100, FEED), (10, FEED_EDGES), (100, FEED_EDGES), (100, FEED)] {
        let before = counter.load(Ordering::SeqCst);
        let data = app.gql_ok(Some(&authors[0].access), query, json!({"first": first})).await;
        costs.push(counter.load(Ordering::SeqCst) - before);
        let nodes = data["posts"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), first);
        for (offset, node) in nodes.iter().enumerate() {
            let i = 119 - offset;
            assert_eq!(node["title"], format!("t{i}"));
            assert_eq!(node["author"]["username"], authors[i % authors.len()].username.as_str());
            assert_eq!(node["author"]["profile"]["image"], "/media/user_images/default.jpg");
        }
    }
    assert!(costs.iter().all(|&c| c == costs[0]), "statements for 10 and for 100 posts: {costs:?}");
    assert!(costs[0] <= 6, "a small constant: {costs:?}");
    assert!(costs[0] >= 3, "the counter counts (page, authors, profiles at least): {costs:?}");

    // The same for a page of users with their profiles.
    let mut costs = Vec::new();
    for first in [1, 4, 2, 4] {
        let before = counter.load(Ordering::SeqCst);
        let query = "query($first: Int) { users(first: $first) { nodes { username profile { bio image } } } }";
        let data = app.gql_ok(Some(&authors[0].access), query, json!({"first": first})).await;
        costs.push(counter.load(Ordering::SeqCst) - before);
        assert_eq!(data["users"]["nodes"].as_array().unwrap().len(), first);
    }
    assert!(costs.iter().all(|&c| c == costs[0]), "statements for 1 to 4 users: {costs:?}");
}

#[tokio::test]
async fn too_deep_and_too_complex_queries_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    create(&app, &alice, "p").await;

    // 16 levels pass, 17 are refused.
    let hop = "posts(first: 1) { nodes { author { ";
    let sixteen = format!("{{ {} username {} }}", hop.repeat(5), "} } } ".repeat(5));
    let ok = app.gql_ok(Some(&alice.access), &sixteen, json!({})).await;
    let innermost = (0..5).fold(&ok, |node, _| &node["posts"]["nodes"][0]["author"]);
    assert_eq!(innermost["username"], alice.username.as_str());
    let seventeen = format!("{{ {} profile {{ bio }} {} }}", hop.repeat(5), "} } } ".repeat(5));
    let deep = app.gql(Some(&alice.access), &seventeen, json!({})).await;
    assert_eq!(deep["errors"][0]["message"], "Query is nested too deep.", "{deep}");
    assert_eq!(codes(&deep), vec!["GRAPHQL_VALIDATION_FAILED"], "every error carries a code");
    assert!(deep.get("data").is_none_or(Value::is_null), "{deep}");

    // Page sizes multiply: 100 posts, each with 100 posts of its author, is refused up front.
    let fan_out = "{ posts(first: 100) { nodes { author { posts(first: 100) { nodes { author { username } } } } } } }";
    let complex = app.gql(Some(&alice.access), fan_out, json!({})).await;
    assert_eq!(complex["errors"][0]["message"], "Query is too complex.", "{complex}");
    assert_eq!(codes(&complex), vec!["GRAPHQL_VALIDATION_FAILED"]);
    let fan_out_users = "{ users(first: 100) { nodes { posts(first: 100) { nodes { title content } } } } }";
    let complex = app.gql(Some(&alice.access), fan_out_users, json!({})).await;
    assert_eq!(complex["errors"][0]["message"], "Query is too complex.", "{complex}");
    // The default page (20) counts too.
    let defaults = "{ posts { nodes { author { posts { nodes { author { posts { nodes { title } } } } } } } } }";
    let complex = app.gql(Some(&alice.access), defaults, json!({})).await;
    assert_eq!(complex["errors"][0]["message"], "Query is too complex.", "{complex}");
    // A full page with authors and profiles is fine.
    app.gql_ok(Some(&alice.access), FEED, json!({"first": 100})).await;
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    const SCHEMA: &str = "{ __schema { queryType { name } } }";
    let open = spawn_app().await;
    let data = open.gql_ok(None, SCHEMA, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");

    let closed = spawn_app_with(|s| s.introspection = false).await;
    for query in [
        SCHEMA,
        "{ __type(name: \"Post\") { name } }",
        "query { ...Q } fragment Q on Query { __schema { types { name } } }",
        "{ ... on Query { __type(name: \"User\") { fields { name } } } }",
    ] {
        let refused = closed.gql(None, query, json!({})).await;
        assert_eq!(refused["errors"][0]["message"], "Introspection is disabled.", "{query}: {refused}");
        assert_eq!(codes(&refused), vec!["FORBIDDEN"], "{refused}");
        assert!(refused.get("data").is_none_or(Value::is_null), "{refused}");
    }
    // `__typename` is not introspection of the schema.
    let typename = closed.gql_ok(None, "{ __typename }", json!({})).await;
    assert_eq!(typename["__typename"], "Query");

    let alice = closed.user("alice").await;
    create(&closed, &alice, "still works").await;
    let posts = closed.gql_ok(Some(&alice.access), POSTS, json!({})).await;
    assert_eq!(titles(&posts["posts"]), ["still works"]);
}

#[tokio::test]
async fn total_count_is_counted_only_when_selected() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    for title in ["a1", "a2"] {
        create(&app, &alice, title).await;
    }
    create(&app, &bob, "b1").await;
    let (app, alice, counter) = (&app, &alice, &app.statements);
    let cost = |query: &'static str| async move {
        let before = counter.load(Ordering::SeqCst);
        let data = app.gql_ok(Some(&alice.access), query, json!({"u": alice.username})).await;
        (counter.load(Ordering::SeqCst) - before, data)
    };

    // The same page without and with `totalCount`: the count is the one extra statement.
    for (without, with, pointer, total) in [
        ("{ posts(first: 2) { nodes { title } } }", "{ posts(first: 2) { totalCount nodes { title } } }", "/posts", 3),
        (
            "query($u: String!) { user(username: $u) { posts(first: 1) { nodes { title } } } }",
            "query($u: String!) { user(username: $u) { posts(first: 1) { nodes { title } totalCount } } }",
            "/user/posts",
            2,
        ),
        (
            "{ users(first: 1) { pageInfo { hasNextPage } } }",
            "{ users(first: 1) { pageInfo { hasNextPage } totalCount } }",
            "/users",
            2,
        ),
    ] {
        let (plain, data) = cost(without).await;
        assert!(data.pointer(pointer).unwrap().get("totalCount").is_none(), "{data}");
        let (counted, data) = cost(with).await;
        assert_eq!(data.pointer(pointer).unwrap()["totalCount"], total, "{with}: {data}");
        assert_eq!(counted, plain + 1, "{without}: {plain} statements, with totalCount {counted}");
    }

    // Selected through fragments, or in one of two merged selections, it is still counted.
    for query in [
        "{ posts(first: 1) { ...Total nodes { title } } } fragment Total on PostConnection { totalCount }",
        "{ posts(first: 1) { ... on PostConnection { totalCount } } }",
        "{ posts(first: 1) { nodes { title } } posts(first: 1) { totalCount } }",
        "{ posts(first: 1) { ... @include(if: true) { totalCount } } }",
    ] {
        let data = app.gql_ok(Some(&alice.access), query, json!({})).await;
        assert_eq!(data["posts"]["totalCount"], 3, "{query}: {data}");
    }
}
