//! Accounts and tokens over GraphQL: register, sign in, refresh, revoke, me, users, user.

use serde_json::json;

use crate::helpers::*;

const REGISTER: &str = "mutation($u: String!, $e: String!, $p: String!) { register(input: {username: $u, email: $e, password: $p}) { id username email profile { image bio } } }";
const ME: &str = "{ me { id username email profile { image bio } } }";

#[tokio::test]
async fn register_sign_in_and_query_me() {
    let app = spawn_app().await;
    let name = unique("alice");
    let data = app
        .gql_ok(None, REGISTER, json!({"u": format!("  {name} "), "e": format!("{name}@Example.com"), "p": PASSWORD}))
        .await;
    assert_eq!(data["register"]["username"], name, "trimmed");
    assert_eq!(data["register"]["profile"], json!({"image": "/media/user_images/default.jpg", "bio": ""}));

    let (access, _) = app.sign_in(&name).await;
    let me = app.gql_ok(Some(&access), ME, json!({})).await;
    assert_eq!(me["me"]["username"], name);
    assert_eq!(me["me"]["email"], format!("{name}@example.com"), "domain lower-cased, as Django stores it");
    assert_eq!(me["me"]["id"], data["register"]["id"]);
}

#[tokio::test]
async fn usernames_are_stored_nfkc_normalised() {
    let app = spawn_app().await;
    // Fullwidth letters, as Django's user manager normalises them.
    let data = app.gql_ok(None, REGISTER, json!({"u": "ｎｆｋｃ_user", "e": "nfkc@example.com", "p": PASSWORD})).await;
    assert_eq!(data["register"]["username"], "nfkc_user");
    // The normalised form is what must be unique, and what must fit.
    let again = app.gql(None, REGISTER, json!({"u": "nfkc_ｕｓｅｒ", "e": "nfkc2@example.com", "p": PASSWORD})).await;
    assert_eq!(
        field_errors(&again),
        vec![("username".to_owned(), vec!["A user with that username already exists.".to_owned()])]
    );
    // U+FDFA is one letter that NFKC expands to 18 characters.
    let long =
        app.gql(None, REGISTER, json!({"u": "\u{FDFA}".repeat(10), "e": "nfkc3@example.com", "p": PASSWORD})).await;
    assert_eq!(
        field_errors(&long),
        vec![("username".to_owned(), vec!["Ensure this field has no more than 150 characters.".to_owned()])]
    );
}

#[tokio::test]
async fn every_invalid_field_is_reported_and_nothing_is_written() {
    let app = spawn_app().await;
    let body = app.gql(None, REGISTER, json!({"u": "bad name!", "e": "not-an-email", "p": "123"})).await;
    assert_eq!(
        field_errors(&body),
        vec![
            (
                "username".to_owned(),
                vec![
                    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
                        .to_owned()
                ]
            ),
            ("email".to_owned(), vec!["Enter a valid email address.".to_owned()]),
            (
                "password".to_owned(),
                vec![
                    "This password is too short. It must contain at least 8 characters.".to_owned(),
                    "This password is entirely numeric.".to_owned()
                ]
            ),
        ]
    );
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"; 3]);

    let blank = app.gql(None, REGISTER, json!({"u": "  ", "e": "", "p": " "})).await;
    let blank_fields = field_errors(&blank);
    assert_eq!(blank_fields.len(), 3);
    assert!(blank_fields.iter().all(|(_, m)| m == &vec!["This field may not be blank.".to_owned()]));

    let long = app
        .gql(
            None,
            REGISTER,
            json!({"u": "a".repeat(151), "e": format!("{}@example.com", "e".repeat(243)), "p": "x".repeat(129)}),
        )
        .await;
    assert_eq!(
        field_errors(&long),
        vec![
            ("username".to_owned(), vec!["Ensure this field has no more than 150 characters.".to_owned()]),
            ("email".to_owned(), vec!["Ensure this field has no more than 254 characters.".to_owned()]),
            ("password".to_owned(), vec!["Ensure this field has no more than 128 characters.".to_owned()]),
        ]
    );

    let similar = app.gql(None, REGISTER, json!({"u": "similarname", "e": "s@example.com", "p": "similarname"})).await;
    assert_eq!(
        field_errors(&similar),
        vec![("password".to_owned(), vec!["The password is too similar to the username.".to_owned()])]
    );

    // Nothing was stored by any of these.
    let viewer = app.user("viewer").await;
    let users = app.gql_ok(Some(&viewer.access), "{ users { totalCount } }", json!({})).await;
    assert_eq!(users["users"]["totalCount"], 1);
}

#[tokio::test]
async fn usernames_and_emails_are_unique_regardless_of_case() {
    let app = spawn_app().await;
    let name = unique("Carol");
    app.register(&name).await;
    let body = app
        .gql(
            None,
            REGISTER,
            json!({"u": name.to_uppercase(), "e": format!("{}@EXAMPLE.com", name.to_lowercase()), "p": PASSWORD}),
        )
        .await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("username".to_owned(), vec!["A user with that username already exists.".to_owned()]),
            ("email".to_owned(), vec!["A user with that email already exists.".to_owned()]),
        ]
    );
}

#[tokio::test]
async fn case_is_folded_beyond_ascii_on_every_database() {
    let app = spawn_app().await;
    app.gql_ok(None, REGISTER, json!({"u": "Émile", "e": "Emile@Exemple.fr", "p": PASSWORD})).await;
    let body = app.gql(None, REGISTER, json!({"u": "émile", "e": "EMILE@exemple.FR", "p": PASSWORD})).await;
    assert_eq!(
        field_errors(&body),
        vec![
            ("username".to_owned(), vec!["A user with that username already exists.".to_owned()]),
            ("email".to_owned(), vec!["A user with that email already exists.".to_owned()]),
        ]
    );
    let viewer = app.user("viewer").await;
    let found = app.gql_ok(Some(&viewer.access), "{ users(search: \"éM\") { nodes { username } } }", json!({})).await;
    assert_eq!(found["users"]["nodes"], json!([{"username": "Émile"}]));
}

#[tokio::test]
async fn concurrent_sign_ups_of_one_name_create_one_user() {
    let app = spawn_app().await;
    let name = unique("race");
    let attempts = (0..6)
        .map(|i| app.gql(None, REGISTER, json!({"u": name, "e": format!("{name}{i}@example.com"), "p": PASSWORD})));
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|b| b.get("errors").is_none()).count();
    assert_eq!(created, 1, "{results:?}");
    for body in results.iter().filter(|b| b.get("errors").is_some()) {
        assert_eq!(field_errors(body)[0].0, "username");
    }
}

#[tokio::test]
async fn wrong_credentials_are_refused_alike() {
    let app = spawn_app().await;
    let user = app.user("dave").await;
    let query = "mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { access } }";
    for (u, p) in [(user.username.as_str(), "wrong password!"), ("nobody_here", PASSWORD)] {
        let body = app.gql(None, query, json!({"u": u, "p": p})).await;
        assert_eq!(codes(&body), vec!["UNAUTHENTICATED"]);
        assert_eq!(body["errors"][0]["message"], "No active account found with the given credentials");
    }
    let blank = app.gql(None, query, json!({"u": " ", "p": ""})).await;
    assert_eq!(field_errors(&blank).len(), 2);
}

#[tokio::test]
async fn refresh_and_revoke() {
    let app = spawn_app().await;
    let user = app.user("erin").await;
    let refresh = "mutation($r: String!) { refreshToken(refresh: $r) { access } }";
    let revoke = "mutation($r: String!) { revokeToken(refresh: $r) }";

    let data = app.gql_ok(None, refresh, json!({"r": user.refresh})).await;
    let access = data["refreshToken"]["access"].as_str().unwrap();
    let me = app.gql_ok(Some(access), "{ me { username } }", json!({})).await;
    assert_eq!(me["me"]["username"], user.username);

    // An access token is not a refresh token.
    let wrong = app.gql(None, refresh, json!({"r": user.access})).await;
    assert_eq!(codes(&wrong), vec!["UNAUTHENTICATED"]);
    assert_eq!(wrong["errors"][0]["message"], "Token has wrong type");
    assert_eq!(wrong["errors"][0]["extensions"]["reason"], "token_not_valid");

    let revoked = app.gql_ok(None, revoke, json!({"r": user.refresh})).await;
    assert_eq!(revoked["revokeToken"], true);
    let again = app.gql_ok(None, revoke, json!({"r": user.refresh})).await;
    assert_eq!(again["revokeToken"], false, "already revoked");
    let garbage = app.gql_ok(None, revoke, json!({"r": "garbage"})).await;
    assert_eq!(garbage["revokeToken"], false);

    let refused = app.gql(None, refresh, json!({"r": user.refresh})).await;
    assert_eq!(codes(&refused), vec!["UNAUTHENTICATED"]);
    assert_eq!(refused["errors"][0]["message"], "Token is blacklisted");
}

#[tokio::test]
async fn protected_fields_need_a_valid_access_token() {
    let app = spawn_app().await;
    let user = app.user("frank").await;
    let now = now();
    let claims = |extra: serde_json::Value| {
        let mut c = json!({"token_type": "access", "exp": now + 300, "iat": now, "jti": "0123456789abcdef0123456789abcdef", "user_id": user.id.to_string()});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let cases = [
        (None, "Authentication credentials were not provided."),
        (Some(user.refresh.clone()), "Token has wrong type"),
        (Some("garbage".to_owned()), "Token is invalid"),
        (Some(mint(JWT_HEADER, claims(json!({})), "another secret")), "Token is invalid"),
        (Some(mint(r#"{"alg":"HS512","typ":"JWT"}"#, claims(json!({})), SECRET)), "Token is invalid"),
        (Some(mint(JWT_HEADER, claims(json!({"exp": now - 5})), SECRET)), "Token is expired"),
        (Some(mint(JWT_HEADER, claims(json!({"user_id": "999999"})), SECRET)), "User not found"),
    ];
    for (token, message) in cases {
        let body = app.gql(token.as_deref(), ME, json!({})).await;
        assert_eq!(codes(&body), vec!["UNAUTHENTICATED"], "{message}");
        assert_eq!(body["errors"][0]["message"], message);
    }
    // alg: none is never accepted.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none =
        format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), b64.encode(claims(json!({})).to_string()));
    assert_eq!(codes(&app.gql(Some(&none), ME, json!({})).await), vec!["UNAUTHENTICATED"]);

    // A token minted by the legacy service with the same secret (numeric user_id from older
    // SimpleJWT, string from 5.5) is accepted.
    for user_id in [json!(user.id), json!(user.id.to_string())] {
        let legacy = mint(JWT_HEADER, claims(json!({"user_id": user_id})), SECRET);
        let me = app.gql_ok(Some(&legacy), "{ me { username } }", json!({})).await;
        assert_eq!(me["me"]["username"], user.username);
    }
}

#[tokio::test]
async fn users_is_a_relay_connection() {
    let app = spawn_app().await;
    let viewer = app.user("zed").await;
    let mut names = Vec::new();
    for i in 0..5 {
        let name = unique(&format!("pg{i}_"));
        app.register(&name).await;
        names.push(name);
    }
    let query = "query($s: String, $f: Int, $a: String) { users(search: $s, first: $f, after: $a) { totalCount edges { cursor node { username } } nodes { username } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";
    let page1 = app.gql_ok(Some(&viewer.access), query, json!({"s": "PG", "f": 2})).await["users"].clone();
    assert_eq!(page1["totalCount"], 5);
    assert_eq!(page1["nodes"], json!([{"username": names[0]}, {"username": names[1]}]));
    assert_eq!(page1["pageInfo"]["hasNextPage"], true);
    assert_eq!(page1["pageInfo"]["hasPreviousPage"], false);
    let after = page1["pageInfo"]["endCursor"].as_str().unwrap();
    let page2 = app.gql_ok(Some(&viewer.access), query, json!({"s": "pg", "f": 10, "a": after})).await["users"].clone();
    assert_eq!(page2["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(page2["pageInfo"]["hasNextPage"], false);
    assert_eq!(page2["pageInfo"]["hasPreviousPage"], true);

    let all = app.gql_ok(Some(&viewer.access), query, json!({})).await["users"].clone();
    assert_eq!(all["totalCount"], 6);

    // `_` and `%` in a search are literal characters.
    let literal = app.gql_ok(Some(&viewer.access), query, json!({"s": "p_"})).await["users"].clone();
    assert_eq!(literal["totalCount"], 0);

    let too_many = app.gql(Some(&viewer.access), query, json!({"f": 101})).await;
    assert_eq!(field_errors(&too_many)[0].0, "first");
    let bad_cursor = app.gql(Some(&viewer.access), query, json!({"a": "nonsense"})).await;
    assert_eq!(field_errors(&bad_cursor)[0].0, "after");
    assert_eq!(codes(&app.gql(None, query, json!({})).await), vec!["UNAUTHENTICATED"]);

    let one = app
        .gql_ok(Some(&viewer.access), "query($u: String!) { user(username: $u) { username } }", json!({"u": names[2]}))
        .await;
    assert_eq!(one["user"]["username"], names[2]);
    let none = app.gql_ok(Some(&viewer.access), "{ user(username: \"ghost_user\") { username } }", json!({})).await;
    assert_eq!(none["user"], serde_json::Value::Null);
}

#[tokio::test]
async fn sign_in_is_throttled_per_address() {
    let app = spawn_app_with(|s| s.auth_rate_per_minute = 3).await;
    let query = "mutation { tokenAuth(username: \"someone\", password: \"wrong password\") { access } }";
    for _ in 0..3 {
        assert_eq!(codes(&app.gql(None, query, json!({})).await), vec!["UNAUTHENTICATED"]);
    }
    let body = app.gql(None, query, json!({})).await;
    assert_eq!(codes(&body), vec!["TOO_MANY_REQUESTS"]);
    let retry = body["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap();
    assert!((1..=60).contains(&retry));
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["database"], true);
}

#[tokio::test]
async fn graphiql_is_served() {
    let app = spawn_app_with(|s| s.graphiql_cdn = "http://assets.local/cdn".into()).await;
    let page = app.client.get(app.url("/graphiql")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/graphql/ws"));
    assert!(page.contains("http://assets.local/cdn/graphiql"));
    assert!(!page.contains("unpkg.com"));

    // With a token, queries and subscriptions of the page are signed in.
    let signed = app.client.get(app.url("/graphiql?token=abc.def-ghi_j")).send().await.unwrap().text().await.unwrap();
    assert!(signed.contains("'Authorization': 'Bearer abc.def-ghi_j'"), "{signed}");
    assert!(signed.contains("'token': 'abc.def-ghi_j'"));
    // Anything but a token's alphabet is ignored.
    let hostile = app.client.get(app.url("/graphiql?token=a'%3Balert(1)")).send().await.unwrap().text().await.unwrap();
    assert!(!hostile.contains("alert"));
}

#[tokio::test]
async fn malformed_requests_get_a_code_too() {
    let app = spawn_app().await;
    // Apollo's names for a document that does not parse or validate (a variable of the wrong
    // type included), as the contract lists them.
    for (query, code) in [
        ("{ me { nonsense } }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ me ", "GRAPHQL_PARSE_FAILED"),
        ("query($f: Int) { users(first: $f) { totalCount } }", "GRAPHQL_VALIDATION_FAILED"),
        ("query A { me { id } } query B { me { id } }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let body = app.gql(None, query, json!({"f": "not a number"})).await;
        let codes = codes(&body);
        assert!(!codes.is_empty() && codes.iter().all(|c| c == code), "{query}: {body}");
    }
}

/// The full introspection query codegen tools and GraphiQL send (graphql-js 16 asks for nine
/// levels of `ofType`, 15 levels deep in all): it must pass the depth and complexity limits.
#[tokio::test]
async fn codegen_introspection_passes_the_limits() {
    let app = spawn_app().await;
    let mut type_ref = "kind name".to_owned();
    for _ in 0..9 {
        type_ref = format!("kind name ofType {{ {type_ref} }}");
    }
    let query = format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
           types {{ ...FullType }} directives {{ name description isRepeatable locations args(includeDeprecated: true) {{ ...InputValue }} }} }} }}
         fragment FullType on __Type {{ kind name description specifiedByURL
           fields(includeDeprecated: true) {{ name description args(includeDeprecated: true) {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }}
           inputFields(includeDeprecated: true) {{ ...InputValue }} interfaces {{ ...TypeRef }}
           enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }} possibleTypes {{ ...TypeRef }} }}
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue isDeprecated deprecationReason }}
         fragment TypeRef on __Type {{ {type_ref} }}"
    );
    let data = app.gql_ok(None, &query, json!({})).await;
    let types = data["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "ChatRoom"));
    assert_eq!(data["__schema"]["subscriptionType"]["name"], "Subscription");
}

#[tokio::test]
async fn behind_a_proxy_the_forwarded_address_is_throttled() {
    let app = spawn_app_with(|s| {
        s.auth_rate_per_minute = 2;
        s.trust_forwarded_for = true;
    })
    .await;
    let query =
        json!({"query": "mutation { tokenAuth(username: \"someone\", password: \"wrong password\") { access } }"});
    let attempt = |client: &'static str| {
        app.client.post(app.url("/graphql")).header("X-Forwarded-For", format!("6.6.6.6, {client}")).json(&query).send()
    };
    for _ in 0..2 {
        let body: serde_json::Value = attempt("203.0.113.1").await.unwrap().json().await.unwrap();
        assert_eq!(codes(&body), vec!["UNAUTHENTICATED"]);
    }
    let body: serde_json::Value = attempt("203.0.113.1").await.unwrap().json().await.unwrap();
    assert_eq!(codes(&body), vec!["TOO_MANY_REQUESTS"]);
    // Another client behind the same proxy is not held up.
    let body: serde_json::Value = attempt("203.0.113.2").await.unwrap().json().await.unwrap();
    assert_eq!(codes(&body), vec!["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn get_carries_queries_only() {
    let app = spawn_app().await;
    let get = |query: &'static str| app.client.get(app.url("/graphql")).query(&[("query", query)]).send();
    let ok = get("{ __typename }").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<serde_json::Value>().await.unwrap()["data"]["__typename"], "Query");

    let mutation = "mutation { register(input: {username: \"viaget\", email: \"g@example.com\", password: \"correct horse\"}) { id } }";
    let refused = get(mutation).await.unwrap();
    assert_eq!(refused.status(), 405);
    assert_eq!(refused.headers()["allow"], "GET, POST");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"]);
    // Nothing was registered: the same mutation over POST still succeeds.
    app.gql_ok(None, mutation, json!({})).await;
}
