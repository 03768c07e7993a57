//! The legacy REST endpoints (API.md 1–9) against the Django reference's observed behaviour:
//! statuses, the headers legacy clients read, and the bodies byte for byte.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const USERS: &str = "/accounts/api/users/";
const TOKEN: &str = "/accounts/api/token/";
const REFRESH: &str = "/accounts/api/token/refresh/";
const PROFILE: &str = "/profiles/api/profile/";
const POSTS: &str = "/profiles/api/posts/";
const ROOMS: &str = "/messenger/api/chatrooms/";
const MY_ROOMS: &str = "/messenger/api/user/chatrooms/";

const ALLOW_LIST_CREATE: &str = "GET, POST, HEAD, OPTIONS";
const ALLOW_TOKEN: &str = "POST, OPTIONS";
const ALLOW_READ: &str = "GET, HEAD, OPTIONS";

const NO_CREDENTIALS: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
const NOT_FOUND: &str = r#"{"detail":"Not found."}"#;

/// A request body, in the forms DRF parses (and some it does not).
pub enum Payload {
    Empty,
    Json(Value),
    Raw(&'static str, Vec<u8>),
    Form(Vec<(&'static str, String)>),
    Multipart(Vec<(&'static str, String)>),
}

/// What a legacy client sees of a response.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts the status and the exact body bytes.
    #[track_caller]
    pub fn expect(&self, status: u16, body: &str) -> &Self {
        assert_eq!((self.status, self.text.as_str()), (status, body));
        self
    }

    /// Asserts the status and the body as compact JSON with the keys in this order.
    #[track_caller]
    pub fn expect_json(&self, status: u16, body: Value) -> &Self {
        self.expect(status, &serde_json::to_string(&body).unwrap())
    }

    #[track_caller]
    pub fn allow(&self, allow: &str) -> &Self {
        assert_eq!(self.header("allow"), Some(allow), "Allow of a {} {}", self.status, self.text);
        self
    }

    #[track_caller]
    pub fn json_content(&self) -> &Self {
        assert_eq!(self.header("content-type"), Some("application/json"));
        self
    }

    /// A 401 carries SimpleJWT's `WWW-Authenticate`.
    #[track_caller]
    pub fn challenged(&self) -> &Self {
        assert_eq!(self.status, 401);
        assert_eq!(self.header("www-authenticate"), Some(r#"Bearer realm="api""#));
        self
    }
}

/// Sends one request as a legacy client would (no redirects followed).
pub async fn rest(app: &TestApp, method: Method, path: &str, token: Option<&str>, payload: Payload) -> Reply {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut request = client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request = match payload {
        Payload::Empty => request,
        Payload::Json(value) => request.json(&value),
        Payload::Raw(content_type, bytes) => {
            let request = if content_type.is_empty() { request } else { request.header("content-type", content_type) };
            request.body(bytes)
        }
        Payload::Form(pairs) => request.form(&pairs),
        Payload::Multipart(pairs) => {
            let form = pairs.into_iter().fold(reqwest::multipart::Form::new(), |form, (k, v)| form.text(k, v));
            request.multipart(form)
        }
    };
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply { status, headers, text }
}

pub async fn get(app: &TestApp, path: &str, token: Option<&str>) -> Reply {
    rest(app, Method::GET, path, token, Payload::Empty).await
}

pub async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Reply {
    rest(app, Method::POST, path, token, Payload::Json(body)).await
}

fn no_slash(path: &str) -> &str {
    path.trim_end_matches('/')
}

fn id_of(reply: &Reply) -> i64 {
    reply.json()["id"].as_i64().unwrap_or_else(|| panic!("no id in {}", reply.text))
}

/// A user registered and signed in through the legacy endpoints.
pub async fn legacy_user(app: &TestApp, prefix: &str) -> TestUser {
    let username = unique(prefix);
    let created = post(
        app,
        USERS,
        None,
        json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let pair = post(app, TOKEN, None, json!({"username": username, "password": PASSWORD})).await;
    assert_eq!(pair.status, 200, "{}", pair.text);
    let pair = pair.json();
    TestUser {
        id: id_of(&created),
        username,
        access: pair["access"].as_str().unwrap().to_owned(),
        refresh: pair["refresh"].as_str().unwrap().to_owned(),
    }
}

fn is_drf_timestamp(value: &Value) -> bool {
    let re = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$").unwrap();
    value.as_str().is_some_and(|s| re.is_match(s))
}

fn access_claims(user_id: Value, exp_offset: i64) -> Value {
    json!({"token_type": "access", "exp": now() + exp_offset, "iat": now(), "jti": "0123456789abcdef0123456789abcdef", "user_id": user_id})
}

// ---- 1. users ----------------------------------------------------------------------------------

#[tokio::test]
async fn register_with_json_form_and_multipart_bodies_then_list_users() {
    let app = spawn_app().await;
    let names = [unique("js"), unique("fm"), unique("mp")];
    let json_reply =
        post(&app, USERS, None, json!({"username": names[0], "email": "js@example.com", "password": PASSWORD})).await;
    let id0 = id_of(&json_reply);
    json_reply
        .expect_json(201, json!({"id": id0, "username": names[0], "email": "js@example.com"}))
        .allow(ALLOW_LIST_CREATE)
        .json_content();
    // Without the trailing slash, answered directly (no redirect); strings are trimmed.
    let form = rest(
        &app,
        Method::POST,
        no_slash(USERS),
        None,
        Payload::Form(vec![
            ("username", format!(" {} ", names[1])),
            ("email", "fm@example.com".into()),
            ("password", PASSWORD.into()),
        ]),
    )
    .await;
    let id1 = id_of(&form);
    form.expect_json(201, json!({"id": id1, "username": names[1], "email": "fm@example.com"}));
    let multipart = rest(
        &app,
        Method::POST,
        USERS,
        None,
        Payload::Multipart(vec![
            ("username", names[2].clone()),
            ("email", "mp@example.com".into()),
            ("password", PASSWORD.into()),
        ]),
    )
    .await;
    let id2 = id_of(&multipart);
    multipart.expect_json(201, json!({"id": id2, "username": names[2], "email": "mp@example.com"}));

    // The user got an empty profile, as GraphQL shows.
    let (access, _) = app.sign_in(&names[2]).await;
    let me = app.gql_ok(Some(&access), "{ me { profile { image bio } } }", json!({})).await;
    assert_eq!(me["me"]["profile"], json!({"image": "/media/user_images/default.jpg", "bio": ""}));

    let expected = json!([
        {"id": id0, "username": names[0], "email": "js@example.com"},
        {"id": id1, "username": names[1], "email": "fm@example.com"},
        {"id": id2, "username": names[2], "email": "mp@example.com"},
    ]);
    for path in [USERS, no_slash(USERS)] {
        get(&app, path, Some(&access)).await.expect_json(200, expected.clone()).allow(ALLOW_LIST_CREATE);
    }
}

#[tokio::test]
async fn the_user_list_is_every_user_by_id_across_pages() {
    let app = spawn_app().await;
    let caller = legacy_user(&app, "pager").await;
    use sea_orm::{ActiveModelTrait, Set};
    for i in 0..130 {
        entity::user::ActiveModel {
            username: Set(format!("bulk{i:03}")),
            email: Set(format!("bulk{i:03}@example.com")),
            username_key: Set(format!("bulk{i:03}")),
            email_key: Set(format!("bulk{i:03}@example.com")),
            password_hash: Set("unusable".into()),
            is_active: Set(true),
            date_joined: Set(chrono::Utc::now()),
            last_login: Set(None),
            ..Default::default()
        }
        .insert(&app.context.state.db)
        .await
        .unwrap();
    }
    let list = get(&app, USERS, Some(&caller.access)).await;
    assert_eq!(list.status, 200);
    let users = list.json();
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 131);
    let ids: Vec<i64> = users.iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by id");
    assert_eq!(
        users[0],
        json!({"id": caller.id, "username": caller.username, "email": format!("{}@example.com", caller.username)})
    );
    assert_eq!(users[130]["username"], "bulk129");
}

#[tokio::test]
async fn registration_errors_are_drf_bodies() {
    let app = spawn_app().await;
    let taken = legacy_user(&app, "taken").await;
    let cases: Vec<(Payload, &str)> = vec![
        (
            Payload::Json(json!({})),
            r#"{"username":["This field is required."],"email":["This field is required."],"password":["This field is required."]}"#,
        ),
        (
            Payload::Json(
                json!({"username": taken.username.to_uppercase(), "email": format!("{}@EXAMPLE.com", taken.username), "password": PASSWORD}),
            ),
            r#"{"username":["A user with that username already exists."],"email":["A user with that email already exists."]}"#,
        ),
        (
            Payload::Json(json!({"username": "bad name!", "email": "not-an-email", "password": PASSWORD})),
            r#"{"username":["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."],"email":["Enter a valid email address."]}"#,
        ),
        (
            Payload::Json(json!({"username": "numeric", "email": "n@example.com", "password": "1234567"})),
            r#"{"password":["This password is too short. It must contain at least 8 characters.","This password is entirely numeric."]}"#,
        ),
        (
            Payload::Json(json!({"username": "margaret", "email": "m@example.com", "password": "margaret"})),
            r#"{"password":["The password is too similar to the username."]}"#,
        ),
        (
            Payload::Json(json!({"username": "", "email": "", "password": ""})),
            r#"{"username":["This field may not be blank."],"email":["This field may not be blank."],"password":["This field may not be blank."]}"#,
        ),
        (
            Payload::Form(vec![("username", "  ".into()), ("email", " ".into()), ("password", "   ".into())]),
            r#"{"username":["This field may not be blank."],"email":["This field may not be blank."],"password":["This field may not be blank."]}"#,
        ),
        (
            Payload::Json(json!({"username": null, "email": null, "password": null})),
            r#"{"username":["This field may not be null."],"email":["This field may not be null."],"password":["This field may not be null."]}"#,
        ),
        (
            Payload::Json(
                json!({"username": "u".repeat(151), "email": format!("{}@example.com", "e".repeat(243)), "password": PASSWORD}),
            ),
            r#"{"username":["Ensure this field has no more than 150 characters."],"email":["Ensure this field has no more than 254 characters."]}"#,
        ),
        (
            Payload::Json(json!({"username": "longpw", "email": "l@example.com", "password": "p".repeat(129)})),
            r#"{"password":["Ensure this field has no more than 128 characters."]}"#,
        ),
        (
            Payload::Json(json!({"username": ["x"], "email": {"a": 1}, "password": true})),
            r#"{"username":["Not a valid string."],"email":["Enter a valid email address."],"password":["Not a valid string."]}"#,
        ),
        (
            Payload::Json(json!([1, 2])),
            r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}"#,
        ),
        (Payload::Json(json!(null)), r#"{"non_field_errors":["No data provided"]}"#),
        // The transport's problems and the service's come together, in the serializer's order.
        (
            Payload::Json(json!({"username": "bad name!", "password": 12345678})),
            r#"{"username":["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."],"email":["This field is required."],"password":["This password is entirely numeric."]}"#,
        ),
    ];
    for (payload, expected) in cases {
        rest(&app, Method::POST, USERS, None, payload).await.expect(400, expected).allow(ALLOW_LIST_CREATE);
    }
    // Nothing was written by any of them.
    let list = get(&app, USERS, Some(&taken.access)).await;
    assert_eq!(list.json().as_array().unwrap().len(), 1);
}

// ---- 2, 3. tokens ------------------------------------------------------------------------------

#[tokio::test]
async fn tokens_are_obtained_and_refreshed() {
    let app = spawn_app().await;
    let user = legacy_user(&app, "tok").await;
    for (path, payload) in [
        (TOKEN, Payload::Json(json!({"username": user.username, "password": PASSWORD}))),
        (no_slash(TOKEN), Payload::Form(vec![("username", user.username.clone()), ("password", PASSWORD.into())])),
        (TOKEN, Payload::Multipart(vec![("username", user.username.clone()), ("password", format!(" {PASSWORD} "))])),
    ] {
        let pair = rest(&app, Method::POST, path, None, payload).await;
        assert_eq!(pair.status, 200, "{}", pair.text);
        pair.allow(ALLOW_TOKEN).json_content();
        assert!(pair.text.starts_with(r#"{"refresh":""#), "refresh first: {}", pair.text);
        let keys: Vec<String> = pair.json().as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["refresh", "access"]);
    }
    // The refreshed access token works; the body is exactly {"access"}.
    for path in [REFRESH, no_slash(REFRESH)] {
        let refreshed = post(&app, path, None, json!({"refresh": user.refresh})).await;
        assert_eq!(refreshed.status, 200);
        refreshed.allow(ALLOW_TOKEN);
        let access = refreshed.json()["access"].as_str().unwrap().to_owned();
        assert_eq!(refreshed.text, format!(r#"{{"access":"{access}"}}"#));
        assert_eq!(get(&app, USERS, Some(&access)).await.status, 200);
    }
    // A repeated form key reads as its last value, as Django's QueryDict does.
    let repeated = rest(
        &app,
        Method::POST,
        TOKEN,
        None,
        Payload::Raw(
            "application/x-www-form-urlencoded",
            format!("username={}&password=wrong&password={}", user.username, PASSWORD.replace(' ', "+")).into_bytes(),
        ),
    )
    .await;
    assert_eq!(repeated.status, 200, "{}", repeated.text);
}

#[tokio::test]
async fn token_errors_are_simplejwt_bodies() {
    let app = spawn_app().await;
    let user = legacy_user(&app, "tokerr").await;
    let wrong = r#"{"detail":"No active account found with the given credentials"}"#;
    post(&app, TOKEN, None, json!({"username": user.username, "password": "wrong-pass"}))
        .await
        .expect(401, wrong)
        .challenged()
        .allow(ALLOW_TOKEN);
    post(&app, TOKEN, None, json!({"username": "nobody", "password": "wrong-pass"}))
        .await
        .expect(401, wrong)
        .challenged();
    post(&app, TOKEN, None, json!({}))
        .await
        .expect(400, r#"{"username":["This field is required."],"password":["This field is required."]}"#)
        .allow(ALLOW_TOKEN);
    post(&app, TOKEN, None, json!({"username": "", "password": ""}))
        .await
        .expect(400, r#"{"username":["This field may not be blank."],"password":["This field may not be blank."]}"#);
    post(&app, TOKEN, None, json!({"username": user.username}))
        .await
        .expect(400, r#"{"password":["This field is required."]}"#);
    // The token views do not authenticate: a bad header is ignored there.
    let ignored = rest(
        &app,
        Method::POST,
        TOKEN,
        Some("garbage"),
        Payload::Json(json!({"username": user.username, "password": PASSWORD})),
    )
    .await;
    assert_eq!(ignored.status, 200);

    post(&app, REFRESH, None, json!({"refresh": "garbage"}))
        .await
        .expect(401, r#"{"detail":"Token is invalid","code":"token_not_valid"}"#)
        .challenged()
        .allow(ALLOW_TOKEN);
    post(&app, REFRESH, None, json!({"refresh": user.access}))
        .await
        .expect(401, r#"{"detail":"Token has wrong type","code":"token_not_valid"}"#)
        .challenged();
    post(&app, REFRESH, None, json!({})).await.expect(400, r#"{"refresh":["This field is required."]}"#);
    let expired = mint(
        JWT_HEADER,
        json!({"token_type": "refresh", "exp": now() - 10, "iat": now() - 100, "jti": "0123456789abcdef0123456789abcdef", "user_id": user.id.to_string()}),
        SECRET,
    );
    post(&app, REFRESH, None, json!({"refresh": expired}))
        .await
        .expect(401, r#"{"detail":"Token is expired","code":"token_not_valid"}"#)
        .challenged();

    get(&app, TOKEN, None).await.expect(405, r#"{"detail":"Method \"GET\" not allowed."}"#).allow(ALLOW_TOKEN);
    rest(&app, Method::PUT, no_slash(REFRESH), None, Payload::Empty)
        .await
        .expect(405, r#"{"detail":"Method \"PUT\" not allowed."}"#)
        .allow(ALLOW_TOKEN);
}

#[tokio::test]
async fn sign_in_and_registration_are_throttled_with_retry_after() {
    let app = spawn_app_with(|settings| settings.auth_rate_per_minute = 2).await;
    // One registration and one successful sign-in (which costs nothing), one failed sign-in.
    let user = legacy_user(&app, "thr").await;
    let wrong = post(&app, TOKEN, None, json!({"username": user.username, "password": "not it"})).await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    let throttled = post(&app, TOKEN, None, json!({"username": user.username, "password": PASSWORD})).await;
    assert_eq!(throttled.status, 429, "{}", throttled.text);
    let seconds: u64 = throttled.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&seconds));
    let unit = if seconds == 1 { "second" } else { "seconds" };
    throttled
        .expect_json(429, json!({"detail": format!("Request was throttled. Expected available in {seconds} {unit}.")}));
    let register =
        post(&app, USERS, None, json!({"username": "late", "email": "late@example.com", "password": PASSWORD})).await;
    assert_eq!(register.status, 429);
}

// ---- authentication of the protected endpoints -------------------------------------------------

#[tokio::test]
async fn protected_endpoints_authenticate_before_anything_else() {
    let app = spawn_app().await;
    let user = legacy_user(&app, "auth").await;
    for (path, allow) in [
        (USERS, ALLOW_LIST_CREATE),
        (PROFILE, ALLOW_READ),
        (POSTS, ALLOW_LIST_CREATE),
        (ROOMS, ALLOW_LIST_CREATE),
        ("/messenger/api/chatrooms/nope/messages/", ALLOW_LIST_CREATE),
        (MY_ROOMS, ALLOW_READ),
    ] {
        for path in [path, no_slash(path)] {
            get(&app, path, None).await.expect(401, NO_CREDENTIALS).challenged().allow(allow).json_content();
        }
    }
    // DRF authenticates before it dispatches on the method, and before it reads a body.
    rest(&app, Method::PUT, USERS, None, Payload::Empty).await.expect(401, NO_CREDENTIALS).allow(ALLOW_LIST_CREATE);
    rest(&app, Method::PUT, USERS, Some(&user.access), Payload::Empty)
        .await
        .expect(405, r#"{"detail":"Method \"PUT\" not allowed."}"#)
        .allow(ALLOW_LIST_CREATE);
    rest(&app, Method::POST, POSTS, None, Payload::Raw("application/json", b"{bad".to_vec()))
        .await
        .expect(401, NO_CREDENTIALS);
    rest(&app, Method::DELETE, POSTS, Some(&user.access), Payload::Empty)
        .await
        .expect(405, r#"{"detail":"Method \"DELETE\" not allowed."}"#);
    rest(&app, Method::POST, MY_ROOMS, Some(&user.access), Payload::Empty)
        .await
        .expect(405, r#"{"detail":"Method \"POST\" not allowed."}"#)
        .allow(ALLOW_READ);
    // Registration is open, but a bad token is refused there too (DRF authenticates every view).
    rest(&app, Method::POST, USERS, Some("garbage"), Payload::Json(json!({})))
        .await
        .expect(401, r#"{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"token_class":"AccessToken","token_type":"access","message":"Token is invalid"}]}"#);
}

#[tokio::test]
async fn bad_tokens_get_simplejwt_bodies() {
    let app = spawn_app().await;
    let user = legacy_user(&app, "badtok").await;
    let invalid = |message: &str| {
        format!(
            r#"{{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{{"token_class":"AccessToken","token_type":"access","message":"{message}"}}]}}"#
        )
    };
    let header = |value: &str| {
        let app = &app;
        let value = value.to_owned();
        async move {
            let response = app.client.get(app.url(USERS)).header("authorization", value).send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            Reply { status, headers, text: response.text().await.unwrap() }
        }
    };
    header("Token abc").await.expect(401, NO_CREDENTIALS).challenged();
    header(&format!("bearer {}", user.access)).await.expect(401, NO_CREDENTIALS);
    let bad_header = r#"{"detail":"Authorization header must contain two space-delimited values","code":"bad_authorization_header"}"#;
    header("Bearer").await.expect(401, bad_header).challenged();
    header("Bearer a b").await.expect(401, bad_header);
    header("Bearer not.a.jwt").await.expect(401, &invalid("Token is invalid")).challenged();
    let mut tampered = user.access.clone();
    tampered.pop();
    tampered.push(if user.access.ends_with('x') { 'y' } else { 'x' });
    header(&format!("Bearer {tampered}")).await.expect(401, &invalid("Token is invalid"));
    header(&format!("Bearer {}", user.refresh)).await.expect(401, &invalid("Token has wrong type"));

    let id = json!(user.id.to_string());
    let none = mint(r#"{"alg":"none","typ":"JWT"}"#, access_claims(id.clone(), 300), SECRET);
    let none = format!("{}.", none.rsplit_once('.').unwrap().0);
    let cases = [
        (none, invalid("Token is invalid")),
        (mint(r#"{"alg":"HS512","typ":"JWT"}"#, access_claims(id.clone(), 300), SECRET), invalid("Token is invalid")),
        (mint(JWT_HEADER, access_claims(id.clone(), 300), "another secret"), invalid("Token is invalid")),
        (mint(JWT_HEADER, access_claims(id.clone(), -10), SECRET), invalid("Token is expired")),
        (
            mint(JWT_HEADER, json!({"token_type": "access", "exp": now() + 300, "iat": now(), "user_id": id}), SECRET),
            invalid("Token has no id"),
        ),
        (
            mint(
                JWT_HEADER,
                json!({"exp": now() + 300, "iat": now(), "jti": "0123456789abcdef0123456789abcdef", "user_id": id}),
                SECRET,
            ),
            invalid("Token has no type"),
        ),
        (
            mint(
                JWT_HEADER,
                json!({"token_type": "access", "iat": now(), "jti": "0123456789abcdef0123456789abcdef", "user_id": id}),
                SECRET,
            ),
            invalid("Token has no 'exp' claim"),
        ),
        (
            mint(JWT_HEADER, access_claims(json!("999999"), 300), SECRET),
            r#"{"detail":"User not found","code":"user_not_found"}"#.to_owned(),
        ),
        (
            mint(
                JWT_HEADER,
                json!({"token_type": "access", "exp": now() + 300, "iat": now(), "jti": "0123456789abcdef0123456789abcdef"}),
                SECRET,
            ),
            r#"{"detail":"Token contained no recognizable user identification","code":"token_not_valid"}"#.to_owned(),
        ),
    ];
    for (token, expected) in cases {
        get(&app, USERS, Some(&token)).await.expect(401, &expected).challenged().allow(ALLOW_LIST_CREATE);
    }

    // Tokens minted the way SimpleJWT did (string user_id, or a number from older versions) work.
    for user_id in [json!(user.id.to_string()), json!(user.id)] {
        let token = mint(JWT_HEADER, access_claims(user_id, 300), SECRET);
        assert_eq!(get(&app, USERS, Some(&token)).await.status, 200);
    }

    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    let found = entity::user::Entity::find_by_id(user.id).one(&app.context.state.db).await.unwrap().unwrap();
    let mut inactive = found.into_active_model();
    inactive.is_active = Set(false);
    inactive.update(&app.context.state.db).await.unwrap();
    get(&app, USERS, Some(&user.access)).await.expect(401, r#"{"detail":"User is inactive","code":"user_inactive"}"#);
}

// ---- transport: bodies, methods, negotiation, unknown paths ------------------------------------

#[tokio::test]
async fn malformed_and_unsupported_bodies() {
    let app = spawn_app().await;
    let user = legacy_user(&app, "body").await;
    let raw = |content_type: &'static str, bytes: &[u8]| Payload::Raw(content_type, bytes.to_vec());
    rest(&app, Method::POST, TOKEN, None, raw("application/json", br#"{"username": "a","#))
        .await
        .expect(
            400,
            r#"{"detail":"JSON parse error - Expecting property name enclosed in double quotes: line 1 column 18 (char 17)"}"#,
        )
        .allow(ALLOW_TOKEN);
    rest(&app, Method::POST, POSTS, Some(&user.access), raw("application/json", b"{bad"))
        .await
        .expect(
            400,
            r#"{"detail":"JSON parse error - Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"}"#,
        )
        .allow(ALLOW_LIST_CREATE);
    rest(&app, Method::POST, TOKEN, None, raw("application/json", b"{} x"))
        .await
        .expect(400, r#"{"detail":"JSON parse error - Extra data: line 1 column 4 (char 3)"}"#);
    rest(&app, Method::POST, TOKEN, None, raw("application/json", br#"{"username": NaN}"#))
        .await
        .expect(400, r#"{"detail":"JSON parse error - Out of range float values are not JSON compliant: 'NaN'"}"#);
    rest(&app, Method::POST, TOKEN, None, raw("application/json", b"\xff{}")).await.expect(
        400,
        r#"{"detail":"JSON parse error - 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"}"#,
    );
    rest(&app, Method::POST, TOKEN, None, raw("text/plain", b"hello"))
        .await
        .expect(415, r#"{"detail":"Unsupported media type \"text/plain\" in request."}"#)
        .allow(ALLOW_TOKEN);
    rest(&app, Method::POST, POSTS, Some(&user.access), raw("application/xml", b"<a/>"))
        .await
        .expect(415, r#"{"detail":"Unsupported media type \"application/xml\" in request."}"#)
        .allow(ALLOW_LIST_CREATE);
    rest(&app, Method::POST, TOKEN, None, raw("application/vnd.api+json", b"{}"))
        .await
        .expect(415, r#"{"detail":"Unsupported media type \"application/vnd.api+json\" in request."}"#);
    rest(&app, Method::POST, TOKEN, None, raw("", b"x"))
        .await
        .expect(415, r#"{"detail":"Unsupported media type \"\" in request."}"#);
    rest(&app, Method::POST, TOKEN, None, raw("multipart/form-data", b"x"))
        .await
        .expect(400, r#"{"detail":"Multipart form parse error - Invalid boundary in multipart: None"}"#);
    // No body at all is an empty dictionary, whatever the declared type.
    rest(&app, Method::POST, TOKEN, None, raw("text/plain", b""))
        .await
        .expect(400, r#"{"username":["This field is required."],"password":["This field is required."]}"#);
    rest(
        &app,
        Method::POST,
        TOKEN,
        None,
        raw("APPLICATION/JSON; charset=utf-8", br#"{"username": 5, "password": [1]}"#),
    )
    .await
    .expect(400, r#"{"password":["Not a valid string."]}"#);
}

/// Django's `bad_request` (its `handler400`), byte for byte.
const BAD_REQUEST: &str = r#"{"error": "Bad Request (400)"}"#;

/// `count` distinct names of at most three characters (many fit in a small body).
fn short_names(count: usize) -> Vec<String> {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..count)
        .map(|mut n| {
            let mut name = vec![DIGITS[n % 62]];
            while n >= 62 {
                n = n / 62 - 1;
                name.push(DIGITS[n % 62]);
            }
            String::from_utf8(name).unwrap()
        })
        .collect()
}

/// A multipart body of `texts` text parts and `files` file parts, boundary `xx`.
fn multipart_parts(texts: usize, files: usize) -> Vec<u8> {
    let text = (0..texts).map(|n| format!("--xx\r\nContent-Disposition: form-data; name=\"k{n}\"\r\n\r\nv\r\n"));
    let file = (0..files)
        .map(|n| format!("--xx\r\nContent-Disposition: form-data; name=\"f{n}\"; filename=\"a.txt\"\r\n\r\nv\r\n"));
    let mut body: String = text.chain(file).collect();
    body.push_str("--xx--\r\n");
    body.into_bytes()
}

/// Bodies built to exhaust the server (a review found a million `[` aborted the process, and
/// 700,000 form fields took minutes of CPU), on the open sign-in endpoint: each is refused,
/// and the server goes on answering (the unit tests of `legacy::body` count the work).
#[tokio::test]
async fn hostile_bodies_are_refused_cheaply_and_the_server_keeps_answering() {
    let app = spawn_app().await;
    let raw = |content_type: &'static str, bytes: Vec<u8>| Payload::Raw(content_type, bytes);
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    let multipart = "multipart/form-data; boundary=xx";
    let required = r#"{"username":["This field is required."],"password":["This field is required."]}"#;

    // Nesting: a million `[` (under the 1 MiB limit), as CPython's RecursionError words it.
    rest(&app, Method::POST, TOKEN, None, raw(json, vec![b'['; 1_000_000]))
        .await
        .expect(
            400,
            r#"{"detail":"JSON parse error - maximum recursion depth exceeded while decoding a JSON array from a unicode string"}"#,
        )
        .allow(ALLOW_TOKEN);
    rest(&app, Method::POST, TOKEN, None, raw(json, r#"{"a":"#.repeat(100_000).into_bytes())).await.expect(
        400,
        r#"{"detail":"JSON parse error - maximum recursion depth exceeded while decoding a JSON object from a unicode string"}"#,
    );
    // 512 levels are read (and the body is then not a dictionary).
    let deepest = format!("{}{}", "[".repeat(512), "]".repeat(512));
    rest(&app, Method::POST, TOKEN, None, raw(json, deepest.into_bytes()))
        .await
        .expect(400, r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}"#);

    // Many fields: 200,000 distinct names in a form under 1 MiB; Django's limit is 1,000.
    let names = short_names(200_000);
    let many = names.join("&").into_bytes();
    assert!(many.len() < 1024 * 1024);
    rest(&app, Method::POST, TOKEN, None, raw(form, many)).await.expect(400, BAD_REQUEST).allow(ALLOW_TOKEN);
    rest(&app, Method::POST, TOKEN, None, raw(form, names[..1001].join("&").into_bytes()))
        .await
        .expect(400, BAD_REQUEST);
    rest(&app, Method::POST, TOKEN, None, raw(form, names[..1000].join("&").into_bytes())).await.expect(400, required);
    rest(&app, Method::POST, TOKEN, None, raw(multipart, multipart_parts(1001, 0))).await.expect(400, BAD_REQUEST);
    rest(&app, Method::POST, TOKEN, None, raw(multipart, multipart_parts(0, 101))).await.expect(400, BAD_REQUEST);
    rest(&app, Method::POST, TOKEN, None, raw(multipart, multipart_parts(1000, 100))).await.expect(400, required);
    // A JSON object has no field limit (nor in Django), but its keys cost linear time.
    let object =
        format!("{{{}}}", names[..120_000].iter().map(|n| format!(r#""{n}":0"#)).collect::<Vec<_>>().join(","));
    rest(&app, Method::POST, TOKEN, None, raw(json, object.into_bytes())).await.expect(400, required);

    // Larger than any legacy body needs: 413 before anything is parsed.
    let over = format!("username={}", "a".repeat(1024 * 1024)).into_bytes();
    rest(&app, Method::POST, TOKEN, None, raw(form, over))
        .await
        .expect(413, r#"{"detail":"Request body is larger than 1048576 bytes."}"#)
        .allow(ALLOW_TOKEN);
    let user = legacy_user(&app, "hostile").await;
    rest(&app, Method::POST, POSTS, Some(&user.access), raw(json, vec![b'['; 2 * 1024 * 1024]))
        .await
        .expect(413, r#"{"detail":"Request body is larger than 1048576 bytes."}"#);

    // Still serving, and the limits leave ordinary bodies alone.
    let content = "é".repeat(10_000);
    let created = post(&app, POSTS, Some(&user.access), json!({"title": "t", "content": content})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let pair = post(&app, TOKEN, None, json!({"username": user.username, "password": PASSWORD})).await;
    assert_eq!(pair.status, 200, "{}", pair.text);
}

#[tokio::test]
async fn unknown_paths_get_drf_404_without_allow() {
    let app = spawn_app().await;
    let user = legacy_user(&app, "nf").await;
    for path in [
        "/nothing/here/",
        "/",
        "/accounts/api/users//",
        "/accounts/api/users/extra/",
        "/Accounts/api/users/",
        "/accounts/api/",
        "/profiles/api/posts/1/",
        "/messenger/api/chatrooms//messages/",
        "/messenger/api/chatrooms/a/b/messages/",
        "/messenger/api/chatrooms/a%2Fb/messages/",
    ] {
        let reply = get(&app, path, Some(&user.access)).await;
        reply.expect(404, NOT_FOUND).json_content();
        assert_eq!(reply.header("allow"), None, "{path}");
    }
    rest(&app, Method::POST, "/nothing", None, Payload::Form(vec![("a", "b".into())])).await.expect(404, NOT_FOUND);
}

#[tokio::test]
async fn head_options_and_content_negotiation() {
    let app = spawn_app().await;
    let user = legacy_user(&app, "meta").await;
    let head = rest(&app, Method::HEAD, USERS, Some(&user.access), Payload::Empty).await;
    let full = get(&app, USERS, Some(&user.access)).await;
    assert_eq!((head.status, head.text.as_str()), (200, ""));
    assert_eq!(head.header("content-length"), Some(full.text.len().to_string().as_str()));
    head.allow(ALLOW_LIST_CREATE);
    rest(&app, Method::HEAD, TOKEN, None, Payload::Empty).await.expect(405, "").allow(ALLOW_TOKEN);

    // DRF's metadata, as the Django reference answers it (recorded with a token and a room),
    // for every endpoint.
    let other = legacy_user(&app, "meta").await;
    let room = post(&app, "/messenger/api/chatrooms/", Some(&user.access), json!({"recipient": other.username})).await;
    let room = room.json()["name"].as_str().unwrap().to_owned();
    let recorded: serde_json::Map<String, Value> =
        serde_json::from_str(include_str!("recorded/drf_options.json")).expect("recorded OPTIONS bodies");
    assert_eq!(recorded.len(), 8, "endpoints 1-9 (the profile's two methods are one view)");
    for (path, body) in &recorded {
        let path = path.replace("{room_name}", &room);
        let answer = rest(&app, Method::OPTIONS, &path, Some(&user.access), Payload::Empty).await;
        answer.expect(200, body.as_str().unwrap());
    }
    let token_metadata = recorded[TOKEN].as_str().unwrap();
    rest(&app, Method::OPTIONS, TOKEN, None, Payload::Empty).await.expect(200, token_metadata).allow(ALLOW_TOKEN);
    // OPTIONS on the user list needs a token (only POST is open there).
    rest(&app, Method::OPTIONS, USERS, None, Payload::Empty).await.expect(401, NO_CREDENTIALS);
    rest(&app, Method::OPTIONS, MY_ROOMS, Some(&user.access), Payload::Empty).await.allow(ALLOW_READ);

    let accept = |value: &'static str| {
        let app = &app;
        let token = user.access.clone();
        async move {
            let response =
                app.client.get(app.url(USERS)).bearer_auth(token).header("accept", value).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    assert_eq!(accept("text/html").await, (406, r#"{"detail":"Could not satisfy the request Accept header."}"#.into()));
    assert_eq!(accept("text/html, application/json;q=0.1").await.0, 200);
    assert_eq!(accept("application/*").await.0, 200);
    get(&app, "/accounts/api/users/?format=xml", Some(&user.access))
        .await
        .expect(404, NOT_FOUND)
        .allow(ALLOW_LIST_CREATE);
    assert_eq!(get(&app, "/accounts/api/users/?format=json", Some(&user.access)).await.status, 200);
}

#[tokio::test]
async fn cors_preflights_are_answered_for_every_route() {
    let app =
        spawn_app_with(|settings| settings.cors_origins = Some("http://localhost:3000, https://app.example".into()))
            .await;
    for path in [TOKEN, POSTS, "/graphql"] {
        let preflight = app
            .client
            .request(Method::OPTIONS, app.url(path))
            .header("origin", "http://localhost:3000")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{path}: {}", preflight.status());
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "http://localhost:3000");
        let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap().to_lowercase();
        assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
        let methods = headers["access-control-allow-methods"].to_str().unwrap();
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(methods.contains(method), "{methods}");
        }
    }
    // The actual request carries the origin back; an unlisted origin gets nothing.
    let listed = app.client.get(app.url(POSTS)).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(listed.status(), 401);
    assert_eq!(listed.headers()["access-control-allow-origin"], "https://app.example");
    let unlisted = app.client.get(app.url(POSTS)).header("origin", "https://evil.example").send().await.unwrap();
    assert!(unlisted.headers().get("access-control-allow-origin").is_none());
    // An OPTIONS that is not a preflight still gets DRF's metadata.
    let metadata = rest(&app, Method::OPTIONS, REFRESH, None, Payload::Empty).await;
    assert_eq!(metadata.status, 200);
    assert_eq!(metadata.json()["name"], "Token Refresh");
}

#[tokio::test]
async fn openapi_field_rules_are_the_servers() {
    let app = spawn_app().await;
    let doc = get(&app, "/openapi.json", None).await.json();
    let rule = |path: &str, field: &str| {
        let schema = &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
        regex::Regex::new(schema["properties"][field]["pattern"].as_str().unwrap()).unwrap()
    };
    let (title, username) = (rule(POSTS, "title"), rule(USERS, "username"));
    let user = app.user("rules").await;
    let long = "é".repeat(255);
    for candidate in [
        "t".to_owned(),
        "  t \n".to_owned(),
        "a b".to_owned(),
        "\u{1c}".to_owned(),
        " \u{1c}t\u{1f} ".to_owned(),
        "\u{a0}\u{3000}".to_owned(),
        "\u{feff}".to_owned(),
        "a\0b".to_owned(),
        "\0".to_owned(),
        long.clone(),
        format!("{long}é"),
        format!(" {long} "),
    ] {
        let reply = post(&app, POSTS, Some(&user.access), json!({"title": candidate, "content": "c"})).await;
        assert_eq!(reply.status == 201, title.is_match(&candidate), "title {candidate:?}: {}", reply.text);
    }
    for (n, candidate) in ["ok.name", " padded@x ", "a b", "a/b", "\u{1c}edge\u{1f}", "x\0y"].into_iter().enumerate() {
        let unique = candidate.replace("ok", &format!("ok{n}"));
        let body = json!({"username": unique, "email": format!("r{n}@example.com"), "password": "a long passphrase 1"});
        let reply = post(&app, USERS, None, body).await;
        assert_eq!(reply.status == 201, username.is_match(&unique), "username {unique:?}: {}", reply.text);
    }
}

#[tokio::test]
async fn openapi_describes_every_legacy_endpoint() {
    let app = spawn_app().await;
    let reply = get(&app, "/openapi.json", None).await;
    assert_eq!(reply.status, 200);
    reply.json_content();
    let doc = reply.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        (USERS, vec!["get", "post"]),
        (TOKEN, vec!["post"]),
        (REFRESH, vec!["post"]),
        (PROFILE, vec!["get"]),
        (POSTS, vec!["get", "post"]),
        (ROOMS, vec!["get", "post"]),
        ("/messenger/api/chatrooms/{room_name}/messages/", vec!["get", "post"]),
        (MY_ROOMS, vec!["get"]),
        ("/profiles/api/search-user/", vec!["get"]),
        ("/profiles/api/add-friend/", vec!["post"]),
        ("/profiles/api/remove-friend/", vec!["post"]),
    ];
    assert_eq!(paths.len(), expected.len());
    for (path, methods) in expected {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
        let mut listed: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        listed.sort();
        assert_eq!(listed, methods, "{path}");
    }
    // Open operations need no token; the others name the bearer scheme.
    assert!(paths[TOKEN]["post"].get("security").is_none());
    assert!(paths[USERS]["post"].get("security").is_none());
    assert_eq!(paths[POSTS]["get"]["security"], json!([{"bearerAuth": []}]));
    assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    assert_eq!(
        paths[ROOMS]["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Room"
    );
    assert!(paths[ROOMS]["post"]["responses"].get("200").is_some());
    // A 400 is either field errors or a malformed body's {"detail"} (found by schemathesis).
    assert_eq!(
        paths[POSTS]["post"]["responses"]["400"]["content"]["application/json"]["schema"]["oneOf"],
        json!([{"$ref": "#/components/schemas/ValidationErrors"}, {"$ref": "#/components/schemas/Detail"}])
    );
    // Body fields are required; their rules are patterns (checked against the server in
    // `openapi_field_rules_are_the_servers`).
    let body = &paths[POSTS]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], json!(["title", "content"]));
    assert_eq!(body["properties"]["title"]["type"], json!(["string", "number"]), "numbers are read as text");
    let multipart = &paths[POSTS]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"];
    assert!(multipart["propertyNames"]["pattern"].is_string(), "part names without control characters");
    let email = &paths[USERS]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["email"];
    assert_eq!((&email["format"], &email["maxLength"]), (&json!("email"), &json!(254)));
    assert_eq!(
        paths[POSTS]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"]["$ref"],
        "#/components/schemas/Post"
    );
    let schemas = &doc["components"]["schemas"];
    for (name, keys) in [
        ("Post", vec!["id", "title", "content", "created_at"]),
        ("Room", vec!["id", "name", "members", "display_name"]),
        ("Message", vec!["id", "user", "content", "timestamp"]),
        ("User", vec!["id", "username", "email"]),
        ("UserProfile", vec!["id", "username", "email", "profile", "posts"]),
        ("TokenPair", vec!["refresh", "access"]),
        ("AccessToken", vec!["access"]),
    ] {
        let properties: Vec<&str> = schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(properties, keys, "{name}");
    }
    for error in ["Detail", "AuthFailure", "ValidationErrors", "ServerError"] {
        assert!(schemas.get(error).is_some(), "{error}");
    }
    let messages = &paths["/messenger/api/chatrooms/{room_name}/messages/"]["get"];
    let params: Vec<&str> =
        messages["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(params, ["room_name", "limit", "before"]);
}

// ---- 4, 5, 6. profile and posts ----------------------------------------------------------------

fn post_shape(reply: &Value) -> (i64, String) {
    let keys: Vec<&str> = reply.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "title", "content", "created_at"]);
    assert!(is_drf_timestamp(&reply["created_at"]), "{reply}");
    (reply["id"].as_i64().unwrap(), reply["created_at"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn posts_are_created_and_listed_newest_first_and_the_profile_shows_its_own() {
    let app = spawn_app().await;
    let alice = legacy_user(&app, "pal").await;
    let bob = legacy_user(&app, "pbo").await;
    let first = post(&app, POSTS, Some(&alice.access), json!({"title": " Hello ", "content": "First post"})).await;
    assert_eq!(first.status, 201, "{}", first.text);
    first.allow(ALLOW_LIST_CREATE).json_content();
    let (id1, at1) = post_shape(&first.json());
    first.expect_json(201, json!({"id": id1, "title": "Hello", "content": "First post", "created_at": at1}));
    let second = rest(
        &app,
        Method::POST,
        no_slash(POSTS),
        Some(&bob.access),
        Payload::Form(vec![("title", "Bob's".into()), ("content", "Second".into())]),
    )
    .await;
    let (id2, at2) = post_shape(&second.json());
    let third = rest(
        &app,
        Method::POST,
        POSTS,
        Some(&alice.access),
        Payload::Multipart(vec![("title", "Third".into()), ("content", "By multipart".into())]),
    )
    .await;
    let (id3, at3) = post_shape(&third.json());

    let all = json!([
        {"id": id3, "title": "Third", "content": "By multipart", "created_at": at3},
        {"id": id2, "title": "Bob's", "content": "Second", "created_at": at2},
        {"id": id1, "title": "Hello", "content": "First post", "created_at": at1},
    ]);
    for path in [POSTS, no_slash(POSTS)] {
        get(&app, path, Some(&bob.access)).await.expect_json(200, all.clone()).allow(ALLOW_LIST_CREATE);
    }
    for path in [PROFILE, no_slash(PROFILE)] {
        get(&app, path, Some(&alice.access))
            .await
            .expect_json(
                200,
                json!({
                    "id": alice.id, "username": alice.username, "email": format!("{}@example.com", alice.username),
                    "profile": {"image": "/media/user_images/default.jpg", "bio": ""},
                    "posts": [
                        {"id": id3, "title": "Third", "content": "By multipart", "created_at": at3},
                        {"id": id1, "title": "Hello", "content": "First post", "created_at": at1},
                    ],
                }),
            )
            .allow(ALLOW_READ);
    }
    rest(&app, Method::POST, PROFILE, Some(&alice.access), Payload::Empty)
        .await
        .expect(405, r#"{"detail":"Method \"POST\" not allowed."}"#)
        .allow(ALLOW_READ);
}

#[tokio::test]
async fn post_validation_errors_and_nothing_written() {
    let app = spawn_app().await;
    let user = legacy_user(&app, "pval").await;
    post(&app, POSTS, Some(&user.access), json!({}))
        .await
        .expect(400, r#"{"title":["This field is required."],"content":["This field is required."]}"#)
        .allow(ALLOW_LIST_CREATE);
    post(&app, POSTS, Some(&user.access), json!({"title": "t".repeat(256), "content": "c".repeat(10_001)}))
        .await
        .expect(
            400,
            r#"{"title":["Ensure this field has no more than 255 characters."],"content":["Ensure this field has no more than 10000 characters."]}"#,
        );
    post(&app, POSTS, Some(&user.access), json!({"title": "  ", "content": null}))
        .await
        .expect(400, r#"{"title":["This field may not be blank."],"content":["This field may not be null."]}"#);
    post(&app, POSTS, Some(&user.access), json!({"title": "ok"}))
        .await
        .expect(400, r#"{"content":["This field is required."]}"#);
    get(&app, POSTS, Some(&user.access)).await.expect(200, "[]");
}

#[tokio::test]
async fn the_post_list_and_the_profile_hold_every_post() {
    let app = spawn_app().await;
    let user = legacy_user(&app, "many").await;
    use sea_orm::{ActiveModelTrait, Set};
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    for i in 0..130 {
        entity::post::ActiveModel {
            author_id: Set(user.id),
            title: Set(format!("post {i:03}")),
            content: Set("x".into()),
            created_at: Set(start + chrono::Duration::seconds(i)),
            ..Default::default()
        }
        .insert(&app.context.state.db)
        .await
        .unwrap();
    }
    let titles = |list: &Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap().to_owned()).collect()
    };
    let expected: Vec<String> = (0..130).rev().map(|i| format!("post {i:03}")).collect();
    let posts = get(&app, POSTS, Some(&user.access)).await;
    assert_eq!(titles(&posts.json()), expected);
    let profile = get(&app, PROFILE, Some(&user.access)).await;
    assert_eq!(titles(&profile.json()["posts"]), expected);
}

// ---- 7, 8, 9. chat -----------------------------------------------------------------------------

fn messages_path(room: &str) -> String {
    format!("/messenger/api/chatrooms/{room}/messages/")
}

#[tokio::test]
async fn rooms_are_opened_once_per_pair_and_listed() {
    let app = spawn_app().await;
    let alice = legacy_user(&app, "ra").await;
    let bob = legacy_user(&app, "rb").await;
    let carol = legacy_user(&app, "rc").await;
    let created = post(&app, ROOMS, Some(&alice.access), json!({"recipient": bob.username})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.allow(ALLOW_LIST_CREATE).json_content();
    let room_ab = id_of(&created);
    let name_ab = {
        let mut pair = [alice.username.clone(), bob.username.clone()];
        pair.sort();
        pair.join("_")
    };
    created.expect_json(
        201,
        json!({"id": room_ab, "name": name_ab, "members": [alice.id, bob.id], "display_name": bob.username}),
    );
    // The same pair from the other side: the existing room, 200, seen from bob.
    rest(
        &app,
        Method::POST,
        no_slash(ROOMS),
        Some(&bob.access),
        Payload::Form(vec![("recipient", alice.username.clone())]),
    )
    .await
    .expect_json(
        200,
        json!({"id": room_ab, "name": name_ab, "members": [alice.id, bob.id], "display_name": alice.username}),
    );
    let room_ac = id_of(
        &rest(
            &app,
            Method::POST,
            ROOMS,
            Some(&carol.access),
            Payload::Multipart(vec![("recipient", alice.username.clone())]),
        )
        .await,
    );
    // A message in the older room makes it the most recently active one.
    post(&app, &messages_path(&name_ab), Some(&bob.access), json!({"content": "hi"})).await;

    let rooms = get(&app, ROOMS, Some(&alice.access)).await;
    rooms.allow(ALLOW_LIST_CREATE);
    let ids: Vec<i64> = rooms.json().as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [room_ab, room_ac], "endpoint 7: by id");
    let recent = get(&app, MY_ROOMS, Some(&alice.access)).await;
    recent.allow(ALLOW_READ);
    let ids: Vec<i64> = recent.json().as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [room_ab, room_ac], "endpoint 9: activity");
    let carol_rooms = get(&app, no_slash(MY_ROOMS), Some(&carol.access)).await;
    let mut members = [alice.id, carol.id];
    members.sort();
    assert_eq!(carol_rooms.json()[0]["members"], json!(members));
    assert_eq!(carol_rooms.json()[0]["display_name"], alice.username);
    // Bob does not see carol's room.
    assert_eq!(get(&app, ROOMS, Some(&bob.access)).await.json().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn room_errors_are_on_recipient() {
    let app = spawn_app().await;
    let alice = legacy_user(&app, "rea").await;
    let token = Some(alice.access.as_str());
    post(&app, ROOMS, token, json!({}))
        .await
        .expect(400, r#"{"recipient":["This field is required."]}"#)
        .allow(ALLOW_LIST_CREATE);
    post(&app, ROOMS, token, json!({"recipient": ""}))
        .await
        .expect(400, r#"{"recipient":["This field may not be null."]}"#);
    post(&app, ROOMS, token, json!({"recipient": null}))
        .await
        .expect(400, r#"{"recipient":["This field may not be null."]}"#);
    post(&app, ROOMS, token, json!({"recipient": "ghost"}))
        .await
        .expect(400, r#"{"recipient":["Object with username=ghost does not exist."]}"#);
    post(&app, ROOMS, token, json!({"recipient": alice.username}))
        .await
        .expect(400, r#"{"recipient":["You cannot start a chat with yourself."]}"#);
    get(&app, ROOMS, token).await.expect(200, "[]");
}

#[tokio::test]
async fn messages_are_sent_and_read_oldest_first_with_paging() {
    let app = spawn_app().await;
    let alice = legacy_user(&app, "ma").await;
    let bob = legacy_user(&app, "mb").await;
    let room = post(&app, ROOMS, Some(&alice.access), json!({"recipient": bob.username})).await.json();
    let name = room["name"].as_str().unwrap().to_owned();
    let path = messages_path(&name);

    let sent = post(&app, &path, Some(&alice.access), json!({"content": "  hello  "})).await;
    assert_eq!(sent.status, 201, "{}", sent.text);
    sent.allow(ALLOW_LIST_CREATE);
    let first = sent.json();
    assert!(is_drf_timestamp(&first["timestamp"]));
    sent.expect_json(
        201,
        json!({"id": first["id"], "user": alice.username, "content": "hello", "timestamp": first["timestamp"]}),
    );
    let by_form = rest(
        &app,
        Method::POST,
        no_slash(&path),
        Some(&bob.access),
        Payload::Form(vec![("content", "hi alice".into())]),
    )
    .await;
    assert_eq!(by_form.status, 201);
    assert_eq!(by_form.json()["user"], bob.username);
    let mut ids = vec![first["id"].as_i64().unwrap(), id_of(&by_form)];
    for i in 0..108 {
        let reply = post(&app, &path, Some(&bob.access), json!({"content": format!("m{i}")})).await;
        ids.push(id_of(&reply));
    }
    let history = |query: &str| {
        let app = &app;
        let url = format!("{path}{query}");
        let token = alice.access.clone();
        async move {
            let reply = get(app, &url, Some(&token)).await;
            assert_eq!(reply.status, 200, "{url}: {}", reply.text);
            reply.allow(ALLOW_LIST_CREATE);
            reply.json().as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect::<Vec<_>>()
        }
    };
    assert_eq!(history("").await, ids, "the whole history, oldest first");
    let whole = get(&app, no_slash(&path), Some(&alice.access)).await.json();
    assert_eq!(whole[0], first);
    assert_eq!(whole[1]["content"], "hi alice");
    assert_eq!(history("?limit=3").await, ids[107..]);
    assert_eq!(history("?limit=105").await, ids[5..], "more than one GraphQL page");
    assert_eq!(history(&format!("?limit=2&before={}", ids[50])).await, ids[48..50]);
    assert_eq!(history(&format!("?before={}", ids[3])).await, ids[..3]);
    assert_eq!(history(&format!("?before={}", ids[0])).await, Vec::<i64>::new());
    assert_eq!(history("?limit=&before=").await, ids, "empty values are absent");

    let token = Some(alice.access.as_str());
    get(&app, &format!("{path}?limit=abc&before=0"), token)
        .await
        .expect(400, r#"{"limit":["A valid integer is required."],"before":["Ensure this value is greater than or equal to 1."]}"#)
        .allow(ALLOW_LIST_CREATE);
    get(&app, &format!("{path}?limit=0"), token)
        .await
        .expect(400, r#"{"limit":["Ensure this value is greater than or equal to 1."]}"#);
    post(&app, &path, token, json!({})).await.expect(400, r#"{"content":["This field is required."]}"#);
    post(&app, &path, token, json!({"content": "   "}))
        .await
        .expect(400, r#"{"content":["This field may not be blank."]}"#);
    post(&app, &path, token, json!({"content": "c".repeat(4001)}))
        .await
        .expect(400, r#"{"content":["Ensure this field has no more than 4000 characters."]}"#);
    assert_eq!(history("").await.len(), 110, "nothing stored by the refused ones");
}

#[tokio::test]
async fn rooms_of_others_do_not_exist() {
    let app = spawn_app().await;
    let alice = legacy_user(&app, "na").await;
    let bob = legacy_user(&app, "nb").await;
    let eve = legacy_user(&app, "ne").await;
    let room = post(&app, ROOMS, Some(&alice.access), json!({"recipient": bob.username})).await.json();
    let path = messages_path(room["name"].as_str().unwrap());
    for (room_path, token) in [(messages_path("nope"), &alice.access), (path.clone(), &eve.access)] {
        get(&app, &room_path, Some(token)).await.expect(404, NOT_FOUND).allow(ALLOW_LIST_CREATE);
        // The room is looked up before the query is read, as DRF does.
        get(&app, &format!("{room_path}?limit=abc"), Some(token)).await.expect(404, NOT_FOUND);
        rest(&app, Method::POST, &room_path, Some(token), Payload::Form(vec![("content", "x".into())]))
            .await
            .expect(404, NOT_FOUND)
            .allow(ALLOW_LIST_CREATE);
    }
    get(&app, &path, Some(&bob.access)).await.expect(200, "[]");
}
