//! A load tool for a running Agora: sign-in bursts, feed reads, and live chat fan-out, with
//! latency percentiles and (given the server's pid) its resident memory before and after.
//!
//! ```sh
//! AGORA_AUTH_RATE_PER_MINUTE=0 cargo run --release &          # the server under test
//! cargo run --release --example load -- http://127.0.0.1:8000 [--pid PID] [--scale N]
//! ```
//! Only for servers on this machine or your own test hosts: every loop is bounded.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

const PASSWORD: &str = "load test password";

struct Args {
    base: String,
    pid: Option<u32>,
    scale: usize,
}

fn args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args { base: "http://127.0.0.1:8000".into(), pid: None, scale: 1 };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pid" => parsed.pid = args.next().and_then(|p| p.parse().ok()),
            "--scale" => parsed.scale = args.next().and_then(|p| p.parse().ok()).unwrap_or(1).max(1),
            base => parsed.base = base.trim_end_matches('/').to_owned(),
        }
    }
    parsed
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
}

fn report(name: &str, mut samples: Vec<Duration>, wall: Duration) {
    if samples.is_empty() {
        println!("{name}: no samples");
        return;
    }
    samples.sort();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    println!(
        "{name:<34} n={:<6} {:>8.0}/s  p50={:>9.2?} p90={:>9.2?} p99={:>9.2?} max={:>9.2?}",
        samples.len(),
        samples.len() as f64 / wall.as_secs_f64(),
        pct(50),
        pct(90),
        pct(99),
        samples[samples.len() - 1]
    );
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request =
            self.http.post(format!("{}/graphql", self.base)).json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body: Value = request.send().await.expect("server reachable").json().await.expect("JSON");
        if let Some(errors) = body.get("errors") {
            panic!("GraphQL errors: {errors}");
        }
        body["data"].clone()
    }

    async fn user(&self, name: &str) -> String {
        self.gql(
            None,
            "mutation($u: String!, $e: String!, $p: String!) { register(input: {username: $u, email: $e, password: $p}) { id } }",
            json!({"u": name, "e": format!("{name}@load.test"), "p": PASSWORD}),
        )
        .await;
        self.sign_in(name).await
    }

    async fn sign_in(&self, name: &str) -> String {
        let data = self
            .gql(
                None,
                "mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { access } }",
                json!({"u": name, "p": PASSWORD}),
            )
            .await;
        data["tokenAuth"]["access"].as_str().expect("access token").to_owned()
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let client = std::sync::Arc::new(Client { http: reqwest::Client::new(), base: args.base.clone() });
    let run = format!("l{}", std::process::id());
    println!("server {} — resident memory at start: {:?} KiB", args.base, rss_kib(args.pid));

    // 1. Sign-in burst: many concurrent tokenAuth calls (Argon2id verification each).
    let users: Vec<String> = (0..8).map(|i| format!("{run}_u{i}")).collect();
    let mut tokens = Vec::new();
    for name in &users {
        tokens.push(client.user(name).await);
    }
    let burst = 200 * args.scale;
    let started = Instant::now();
    let tasks: Vec<_> = (0..burst)
        .map(|i| {
            let client = client.clone();
            let name = users[i % users.len()].clone();
            tokio::spawn(async move {
                let t = Instant::now();
                client.sign_in(&name).await;
                t.elapsed()
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.push(task.await.expect("task"));
    }
    report("sign-in (tokenAuth), 200 concurrent", samples, started.elapsed());
    println!("resident memory after the sign-in burst: {:?} KiB", rss_kib(args.pid));

    // 2. Feed reads: 100 posts with authors and profiles (DataLoader batching).
    for i in 0..100 {
        client
            .gql(
                Some(&tokens[i % tokens.len()]),
                "mutation($t: String!) { createPost(input: {title: $t, content: \"load\"}) { id } }",
                json!({"t": format!("post {i}")}),
            )
            .await;
    }
    let reads = 500 * args.scale;
    let started = Instant::now();
    let tasks: Vec<_> = (0..reads)
        .map(|i| {
            let client = client.clone();
            let token = tokens[i % tokens.len()].clone();
            tokio::spawn(async move {
                let t = Instant::now();
                client.gql(Some(&token), "{ posts(first: 100) { totalCount nodes { title createdAt author { username profile { image } } } } }", json!({})).await;
                t.elapsed()
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.push(task.await.expect("task"));
    }
    report("posts(first:100) with authors", samples, started.elapsed());

    // 3. Chat fan-out: one room, 3 subscribers over graphql-transport-ws, N messages.
    let room = client
        .gql(
            Some(&tokens[0]),
            "mutation($r: String!) { createChatRoom(recipient: $r) { chatRoom { name } } }",
            json!({"r": users[1]}),
        )
        .await["createChatRoom"]["chatRoom"]["name"]
        .as_str()
        .expect("room name")
        .to_owned();
    let messages = 300 * args.scale;
    let ws_url = format!("{}/graphql/ws", args.base.replacen("http", "ws", 1));
    let mut subscribers = Vec::new();
    for s in 0..3 {
        let token = tokens[s % 2].clone();
        let mut request = ws_url.as_str().into_client_request().expect("ws url");
        request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("ws connect");
        socket
            .send(Message::text(json!({"type": "connection_init", "payload": {"token": token}}).to_string()))
            .await
            .unwrap();
        let _ack = socket.next().await;
        let query = "subscription($r: String) { messageAdded(roomName: $r) { content } }";
        socket
            .send(Message::text(
                json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"r": room}}})
                    .to_string(),
            ))
            .await
            .unwrap();
        subscribers.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_at = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<String, Instant>::new()));
    let receivers: Vec<_> = subscribers
        .into_iter()
        .map(|mut socket| {
            let sent_at = sent_at.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(120);
                while latencies.len() < messages && Instant::now() < deadline {
                    let Ok(Some(Ok(Message::Text(text)))) =
                        tokio::time::timeout(Duration::from_secs(30), socket.next()).await
                    else {
                        break;
                    };
                    let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                    if frame["type"] != "next" {
                        continue;
                    }
                    let content =
                        frame["payload"]["data"]["messageAdded"]["content"].as_str().unwrap_or_default().to_owned();
                    if let Some(t) = sent_at.lock().unwrap().get(&content) {
                        latencies.push(t.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    for i in 0..messages {
        let content = format!("m{i}");
        sent_at.lock().unwrap().insert(content.clone(), Instant::now());
        client
            .gql(
                Some(&tokens[i % 2]),
                "mutation($r: String!, $c: String!) { sendMessage(roomName: $r, content: $c) { id } }",
                json!({"r": room, "c": content}),
            )
            .await;
    }
    let send_wall = started.elapsed();
    println!(
        "{:<34} n={messages:<6} {:>8.0}/s (sequential sends)",
        "sendMessage",
        messages as f64 / send_wall.as_secs_f64()
    );
    let mut all = Vec::new();
    for receiver in receivers {
        let latencies = receiver.await.expect("receiver");
        println!("  subscriber received {}/{messages}", latencies.len());
        all.extend(latencies);
    }
    report("delivery latency (send -> next)", all, started.elapsed());
    println!("resident memory at the end: {:?} KiB", rss_kib(args.pid));
}
