//! The HTTP scenarios: closed loops of keep-alive clients (each its own connection), each
//! sending its next request as soon as the previous answer is read. Latency is from sending to
//! the last byte of the body; the server's CPU time is read from `/proc` at both ends of the
//! measured window (after a warm-up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::procfs;
use crate::report::{Run, Scenario, Side};
use crate::seed::{self, World};

/// The REST and GraphQL scenarios, by the names `--only` takes.
pub const SCENARIOS: [&str; 6] = ["posts", "profile", "rooms", "message", "graphql", "signin"];

/// The GraphQL twin of the posts list (issue 10): a page with authors and their profiles.
pub const GRAPHQL_POSTS: &str = "{ posts(first: 20) { nodes { id title author { username profile { image } } } } }";

/// How hard and how long.
#[derive(Clone, Debug, clap::Args)]
pub struct Load {
    /// Concurrent keep-alive clients per scenario.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Unmeasured seconds before each scenario's window.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Readers of `GET /profiles/api/profile/` running beside the sign-in scenario.
    #[arg(long, default_value_t = 4)]
    pub side_readers: usize,
}

/// Makes one request of a client: (its connection, client number, iteration).
type Build = Arc<dyn Fn(&reqwest::Client, usize, u64) -> reqwest::RequestBuilder + Send + Sync>;

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

/// `clients` closed loops until the window ends; samples of requests started inside it.
async fn closed_loop(clients: usize, window: Window, build: Build) -> Samples {
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let build = build.clone();
            tokio::spawn(async move {
                // One connection per client, kept alive.
                let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
                let mut samples = Samples::default();
                let mut iteration = 0u64;
                while Instant::now() < window.end {
                    let sent = Instant::now();
                    let outcome = match build(&http, client, iteration).send().await {
                        Ok(response) => {
                            let status = response.status();
                            match response.bytes().await {
                                Ok(_) if status.is_success() => Ok(()),
                                Ok(body) => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
                                Err(err) => Err(err.to_string()),
                            }
                        }
                        Err(err) => Err(err.to_string()),
                    };
                    iteration += 1;
                    if sent < window.start {
                        continue;
                    }
                    match outcome {
                        Ok(()) => samples.latencies.push(sent.elapsed()),
                        Err(err) => {
                            samples.errors += 1;
                            samples.first_error.get_or_insert(err);
                        }
                    }
                }
                samples
            })
        })
        .collect();
    let mut all = Samples::default();
    for task in tasks {
        let samples = task.await.expect("client task");
        all.latencies.extend(samples.latencies);
        all.errors += samples.errors;
        if all.first_error.is_none() {
            all.first_error = samples.first_error;
        }
    }
    all.latencies.sort();
    all
}

fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Runs one scenario (and its side readers, if any) and measures the server meanwhile.
async fn measure(name: &str, load: &Load, pids: &[u32], build: Build, side: Option<(&str, usize, Build)>) -> Scenario {
    let now = Instant::now();
    let start = now + Duration::from_secs_f64(load.warmup);
    let window = Window { start, end: start + Duration::from_secs_f64(load.seconds) };
    let pids_owned = pids.to_vec();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(window.start.into()).await;
        let before = procfs::cpu(&pids_owned);
        tokio::time::sleep_until(window.end.into()).await;
        procfs::cpu(&pids_owned).saturating_sub(before)
    });
    let side_task = side.map(|(name, clients, build)| {
        let name = name.to_owned();
        (name, tokio::spawn(closed_loop(clients, window, build)))
    });
    let samples = closed_loop(load.clients, window, build).await;
    let cpu = cpu.await.expect("cpu task");
    let mut side_requests = 0;
    let side = match side_task {
        Some((name, task)) => {
            let s = task.await.expect("side readers");
            side_requests = s.latencies.len() as u64 + s.errors;
            Some(Side {
                name,
                requests: s.latencies.len() as u64,
                errors: s.errors,
                p50_ms: percentile_ms(&s.latencies, 50),
                p99_ms: percentile_ms(&s.latencies, 99),
            })
        }
        None => None,
    };
    let requests = samples.latencies.len() as u64;
    if let Some(err) = &samples.first_error {
        eprintln!("  {name}: {} failed, first: {}", samples.errors, err.chars().take(300).collect::<String>());
    }
    let served = requests + samples.errors + side_requests;
    Scenario {
        name: name.to_owned(),
        clients: load.clients,
        requests,
        errors: samples.errors,
        rps: requests as f64 / load.seconds,
        p50_ms: percentile_ms(&samples.latencies, 50),
        p99_ms: percentile_ms(&samples.latencies, 99),
        // Side readers share the CPU: it is divided over every request of the window.
        cpu_ms_per_request: (!pids.is_empty() && served > 0).then(|| cpu.as_secs_f64() * 1e3 / served as f64),
        side,
        extra: Default::default(),
    }
}

/// A GET with a user's token, round-robin over the users.
fn get(base: &str, path: &str, world: &World) -> Build {
    let url = format!("{base}{path}");
    let tokens: Vec<String> = world.users.iter().map(|u| u.access.clone()).collect();
    Arc::new(move |http, client, _| http.get(&url).bearer_auth(&tokens[client % tokens.len()]))
}

/// Whether the server speaks GraphQL at `/graphql` (the Django reference does not).
async fn has_graphql(base: &str) -> bool {
    let response =
        reqwest::Client::new().post(format!("{base}/graphql")).json(&json!({"query": "{ __typename }"})).send().await;
    match response {
        Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.is_ok_and(|v| v["data"].is_object()),
        _ => false,
    }
}

/// Runs the chosen scenarios against a seeded server.
pub async fn run(base: &str, pids: &[u32], load: &Load, world: &World, only: &[String], run: &mut Run) {
    let graphql = has_graphql(base).await;
    for &name in SCENARIOS.iter().filter(|s| only.is_empty() || only.iter().any(|o| o == *s)) {
        let build: Build = match name {
            "posts" => get(base, "/profiles/api/posts/", world),
            "profile" => get(base, "/profiles/api/profile/", world),
            "rooms" => get(base, "/messenger/api/user/chatrooms/", world),
            "message" => {
                let members: Vec<(String, String)> = world
                    .users
                    .iter()
                    .zip(&world.room_of)
                    .filter_map(|(u, room)| Some((u.access.clone(), room.clone()?)))
                    .collect();
                let base = base.to_owned();
                Arc::new(move |http, client, i| {
                    let (token, room) = &members[client % members.len()];
                    http.post(format!("{base}/messenger/api/chatrooms/{room}/messages/"))
                        .bearer_auth(token)
                        .json(&json!({"content": format!("bench {client} {i}")}))
                })
            }
            "graphql" if !graphql => {
                eprintln!("  graphql: no GraphQL endpoint at {base}/graphql, skipped");
                continue;
            }
            "graphql" => {
                let tokens: Vec<String> = world.users.iter().map(|u| u.access.clone()).collect();
                let url = format!("{base}/graphql");
                Arc::new(move |http, client, _| {
                    http.post(&url).bearer_auth(&tokens[client % tokens.len()]).json(&json!({"query": GRAPHQL_POSTS}))
                })
            }
            "signin" => {
                let names: Vec<String> = world.users.iter().map(|u| u.username.clone()).collect();
                let url = format!("{base}/accounts/api/token/");
                Arc::new(move |http, client, _| {
                    http.post(&url).json(&json!({"username": names[client % names.len()], "password": seed::PASSWORD}))
                })
            }
            _ => unreachable!("every scenario is matched"),
        };
        let side = (name == "signin" && load.side_readers > 0)
            .then(|| ("profile", load.side_readers, get(base, "/profiles/api/profile/", world)));
        let scenario = measure(name, load, pids, build, side).await;
        eprintln!("  {}", scenario.line());
        run.scenarios.push(scenario);
    }
}
