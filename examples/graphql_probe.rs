//! A probe of the GraphQL document limits (README "Limits"): 16 clients send, over and over,
//! the costliest documents that still fit under the default caps (built from
//! `graphql::limits::Limits::default()`), while another client reads `/healthz`. It prints the
//! server's peak resident memory (its `VmHWM`, given its pid) and the `/healthz` latencies.
//!
//! ```sh
//! cargo run --release &                                       # the server under test
//! cargo run --release --example graphql_probe -- http://127.0.0.1:8000 --pid $(pgrep -n agora) [--seconds 20]
//! ```
//! Only for servers on this machine or your own test hosts: it runs for a bounded time.

use std::time::{Duration, Instant};

use agora::graphql::limits::Limits;
use serde_json::{Value, json};

struct Args {
    base: String,
    pid: Option<u32>,
    seconds: u64,
    clients: usize,
}

fn args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args { base: "http://127.0.0.1:8000".into(), pid: None, seconds: 20, clients: 16 };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pid" => parsed.pid = args.next().and_then(|p| p.parse().ok()),
            "--seconds" => parsed.seconds = args.next().and_then(|p| p.parse().ok()).unwrap_or(20),
            "--clients" => parsed.clients = args.next().and_then(|p| p.parse().ok()).unwrap_or(16).max(1),
            base => parsed.base = base.trim_end_matches('/').to_owned(),
        }
    }
    parsed
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
}

/// Repeats `unit` as often as the token and byte caps allow, given its tokens and the
/// document's fixed part (`tokens` / `bytes` of the frame around it).
fn fill(limits: &Limits, unit: &str, unit_tokens: usize, frame_tokens: usize, frame_bytes: usize) -> String {
    let by_tokens = (limits.max_tokens - frame_tokens) / unit_tokens;
    let by_bytes = (limits.max_bytes - frame_bytes) / unit.len();
    unit.repeat(by_tokens.min(by_bytes))
}

/// The worst cases: each within every default cap, each aimed at a different cost.
fn documents(limits: &Limits) -> Vec<(&'static str, String)> {
    let directives = "@skip(if: false) ".repeat(limits.max_directives);
    let directive_tokens = 1 + 6 * limits.max_directives;
    let variables: String = (0..(limits.max_tokens - 10) / 4).map(|i| format!("$v{i}:Int ")).collect();
    let nest = limits.max_nesting - 3;
    let list_values = fill(limits, "1,", 1, 2 * nest + 12, 2 * nest + 64);
    let bomb: String = (0..30).map(|i| format!("fragment F{i} on Query {{ ...F{} ...F{} }} ", i + 1, i + 1)).collect();
    let hops = "ofType { ".repeat(12);
    vec![
        ("repeated fields", format!("{{ {} }}", fill(limits, "me ", 1, 2, 4))),
        ("directives", format!("{{ {} }}", fill(limits, &format!("__typename {directives}"), directive_tokens, 2, 4))),
        (
            "unused variables",
            format!("query({}) {{ __typename }}", &variables[..variables.len().min(limits.max_bytes - 64)]),
        ),
        ("unknown fields", format!("{{ {} }}", fill(limits, "nope ", 1, 2, 4))),
        ("fragment bomb", format!("{{ ...F0 }} {bomb} fragment F30 on Query {{ __typename }}")),
        (
            "nested list values",
            format!("{{ user(username: {}{list_values}{}) {{ id }} }}", "[".repeat(nest), "]".repeat(nest)),
        ),
        ("long string", format!("{{ user(username: \"{}\") {{ id }} }}", "a".repeat(limits.max_bytes - 64))),
        (
            "deep introspection",
            format!("{{ __schema {{ types {{ fields {{ type {{ {hops} name {} }} }} }} }} }}", "} ".repeat(12)),
        ),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let args = args();
    let limits = Limits::default();
    let documents = documents(&limits);
    println!(
        "server {} · {} clients for {} s · rss before: {:?} KiB",
        args.base,
        args.clients,
        args.seconds,
        status_kib(args.pid, "VmRSS:")
    );
    for (name, document) in &documents {
        println!("  {name}: {} bytes", document.len());
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);

    let mut workers = Vec::new();
    for i in 0..args.clients {
        let (name, document) = documents[i % documents.len()].clone();
        let url = format!("{}/graphql", args.base);
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let body = json!({"query": document}).to_string();
            let (mut sent, mut first) = (0u32, None::<String>);
            while Instant::now() < deadline {
                let response =
                    http.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
                let answer = match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        let bytes = body.to_string().len();
                        let error = body["errors"][0]["message"]
                            .as_str()
                            .unwrap_or("no error")
                            .chars()
                            .take(70)
                            .collect::<String>();
                        format!(
                            "{status}, {bytes} bytes, {} errors: {error}",
                            body["errors"].as_array().map_or(0, Vec::len)
                        )
                    }
                    Err(err) => format!("failed: {err}"),
                };
                first.get_or_insert(answer);
                sent += 1;
            }
            (name, sent, first.unwrap_or_default())
        }));
    }

    // Another client's view: `/healthz` every 10 ms on its own connection.
    let health = {
        let url = format!("{}/healthz", args.base);
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let start = Instant::now();
                let ok = http.get(&url).send().await.is_ok_and(|r| r.status().is_success());
                latencies.push((start.elapsed(), ok));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies
        })
    };

    for worker in workers {
        let (name, sent, first) = worker.await.expect("worker");
        println!("  {name:<20} {sent:>6} requests · first answer: {first}");
    }
    let health = health.await.expect("health client");
    let failed = health.iter().filter(|(_, ok)| !ok).count();
    let mut latencies: Vec<Duration> = health.into_iter().map(|(latency, _)| latency).collect();
    latencies.sort();
    println!(
        "/healthz: {} requests, {failed} failed · p50 {:?} · p99 {:?} · max {:?}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "server rss after: {:?} KiB · peak rss (VmHWM): {:?} KiB",
        status_kib(args.pid, "VmRSS:"),
        status_kib(args.pid, "VmHWM:")
    );
    let alive = reqwest::get(format!("{}/healthz", args.base)).await.is_ok_and(|r| r.status().is_success());
    println!("server alive afterwards: {alive}");
}
