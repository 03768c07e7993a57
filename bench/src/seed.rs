//! The data every scenario reads, made through the legacy REST API (so the same seed runs
//! against Agora and the Django reference): users, a room for each pair of them, posts.

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

pub const PASSWORD: &str = "load test password";

/// How much to seed.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct Size {
    /// Users (signed up, then signed in); rooms pair user 2i with user 2i+1 (there are at
    /// least twice as many users as rooms).
    #[arg(long, default_value_t = 40)]
    pub users: usize,
    /// Rooms of two members each (the chat scenarios hold a socket per member).
    #[arg(long, default_value_t = 20)]
    pub rooms: usize,
    #[arg(long, default_value_t = 200)]
    pub posts: usize,
}

pub struct User {
    pub username: String,
    pub access: String,
}

/// What was seeded: `room_of[i]` is the name of a room user `i` is a member of (if any).
pub struct World {
    pub users: Vec<User>,
    pub room_of: Vec<Option<String>>,
}

/// A POST of a JSON body to a legacy endpoint, with the caller's token if any.
pub async fn post(http: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("POST {url}: {status} {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// Signs `username` in through `/accounts/api/token/`: the access token.
pub async fn sign_in(http: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<String> {
    let pair =
        post(http, &format!("{base}/accounts/api/token/"), None, json!({"username": username, "password": PASSWORD}))
            .await?;
    pair["access"].as_str().map(str::to_owned).context("no access token")
}

/// Seeds a server; `run` keeps the names of two runs on one server apart.
pub async fn seed(base: &str, run: &str, size: Size) -> anyhow::Result<World> {
    let http = reqwest::Client::new();
    let http = &http;
    // Sign-ups and sign-ins hash: a few at once, as many as the server has cores to spare.
    let users: Vec<User> = stream::iter(0..size.users.max(2 * size.rooms))
        .map(|i| async move {
            let username = format!("{run}_u{i}");
            post(
                http,
                &format!("{base}/accounts/api/users/"),
                None,
                json!({"username": username, "email": format!("{username}@bench.test"), "password": PASSWORD}),
            )
            .await?;
            let access = sign_in(http, base, &username).await?;
            anyhow::Ok(User { username, access })
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    // Rooms in parallel: 1,000 of them one after the other would take long.
    let users_ref = &users;
    let rooms: Vec<String> = stream::iter(0..size.rooms.min(users.len() / 2))
        .map(|pair| async move {
            let (a, b) = (&users_ref[2 * pair], &users_ref[2 * pair + 1]);
            let room = post(
                http,
                &format!("{base}/messenger/api/chatrooms/"),
                Some(&a.access),
                json!({"recipient": b.username}),
            )
            .await?;
            anyhow::Ok(room["name"].as_str().context("room without a name")?.to_owned())
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut room_of = vec![None; users.len()];
    for (pair, name) in rooms.into_iter().enumerate() {
        room_of[2 * pair] = Some(name.clone());
        room_of[2 * pair + 1] = Some(name);
    }

    stream::iter(0..size.posts)
        .map(|i| async move {
            let author = &users_ref[i % users_ref.len()];
            post(
                http,
                &format!("{base}/profiles/api/posts/"),
                Some(&author.access),
                json!({"title": format!("post {i}"), "content": format!("seeded post {i} by {}", author.username)}),
            )
            .await
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(World { users, room_of })
}
