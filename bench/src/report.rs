//! Results: one JSON document per run (per server), and the side-by-side table of several runs
//! with the ratios to the first (the baseline, the Django reference) and issue 10's targets.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One server's run.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Run {
    pub label: String,
    pub base: String,
    pub cores: usize,
    /// One Argon2id verification (m=19456, t=2, p=1) on this machine, measured by the tool.
    pub hash_verify_ms: f64,
    /// Resident memory of the server's processes after seeding, at rest.
    pub idle_rss_kib: u64,
    /// Highest resident memory sampled (every 100 ms) during the scenarios.
    pub peak_rss_kib: u64,
    /// At rest again after the scenarios.
    pub end_rss_kib: u64,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub clients: usize,
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    /// Latencies; infinite (written as `null` in JSON) when nothing was answered.
    #[serde(deserialize_with = "null_as_infinity")]
    pub p50_ms: f64,
    #[serde(deserialize_with = "null_as_infinity")]
    pub p99_ms: f64,
    /// Server CPU (user + system, every process of the server) over the window, per request.
    pub cpu_ms_per_request: Option<f64>,
    /// Requests of another kind running meanwhile (reads during the sign-in storm).
    pub side: Option<Side>,
    /// Room for other kinds of scenario (chat) to report what they measure.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// JSON has no infinity: serde_json writes it as `null`, which reads back as infinity here.
fn null_as_infinity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

impl Run {
    /// The hashing limit: sign-ins per second if every core did nothing but verify passwords.
    pub fn hash_limit(&self) -> f64 {
        self.cores as f64 * 1e3 / self.hash_verify_ms
    }

    fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }
}

impl Scenario {
    /// A number of `extra` (NaN when absent).
    pub fn number(&self, key: &str) -> f64 {
        self.extra.get(key).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN)
    }

    /// Chat scenarios: nothing lost, duplicated or reordered, no socket dropped.
    fn lossless(&self) -> bool {
        ["lost", "duplicates", "reordered", "dropped_sockets"].iter().all(|k| self.number(k) == 0.0)
            && self.number("stored_pct") >= 100.0
    }

    pub fn line(&self) -> String {
        let mut line = format!(
            "{:<8} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  cpu/req {}  errors {}",
            self.name,
            self.rps,
            self.p50_ms,
            self.p99_ms,
            self.cpu_ms_per_request.map_or("-".into(), |c| format!("{c:.3} ms")),
            self.errors
        );
        if let Some(side) = &self.side {
            let _ = write!(line, "  | {} meanwhile: p50 {:.2} ms p99 {:.2} ms", side.name, side.p50_ms, side.p99_ms);
        }
        line
    }
}

/// Issue 10's CPU targets: the server CPU per request at most 1/N of the baseline's.
const CPU_TARGETS: [(&str, f64); 4] = [("posts", 12.0), ("profile", 50.0), ("rooms", 60.0), ("message", 14.0)];

const TITLES: [(&str, &str); 6] = [
    ("posts", "`GET /profiles/api/posts/`"),
    ("profile", "`GET /profiles/api/profile/`"),
    ("rooms", "`GET /messenger/api/user/chatrooms/`"),
    ("message", "`POST` a message (REST)"),
    ("graphql", "GraphQL `posts(first: 20)`"),
    ("signin", "sign-in (`POST /accounts/api/token/`)"),
];

fn title(name: &str) -> String {
    TITLES.iter().find(|(n, _)| *n == name).map_or_else(|| name.to_owned(), |(_, t)| (*t).to_owned())
}

/// `; peak N MiB` when the scenario recorded the servers' peak resident memory, and `(M while
/// chatting)` when it also recorded the peak before its history read.
fn peak(s: &Scenario) -> String {
    let mib = |key: &str| s.extra.get(key).and_then(serde_json::Value::as_f64).map(|kib| kib / 1024.0);
    match (mib("peak_rss_kib"), mib("peak_rss_chatting_kib")) {
        (Some(peak), Some(chatting)) => format!("; peak {peak:.0} MiB ({chatting:.0} while chatting)"),
        (Some(peak), None) => format!("; peak {peak:.0} MiB"),
        _ => String::new(),
    }
}

fn cell(s: Option<&Scenario>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.extra.contains_key("kib_per_socket") => {
            format!("{:.0} handshakes/s, {:.1} KiB per socket{}", s.rps, s.number("kib_per_socket"), peak(s))
        }
        Some(s) if s.extra.contains_key("delivered_pct") => format!(
            "delivered {:.1} %, stored {:.1} %, p50 {:.1} p99 {:.1} ms, CPU {:.3} ms/msg; lost {}, dup {}, reordered {}, dropped sockets {}{}{}",
            s.number("delivered_pct"),
            s.number("stored_pct"),
            s.p50_ms,
            s.p99_ms,
            s.cpu_ms_per_request.unwrap_or(f64::NAN),
            s.number("lost"),
            s.number("duplicates"),
            s.number("reordered"),
            s.number("dropped_sockets"),
            peak(s),
            if s.errors > 0 { format!(", **{} errors**", s.errors) } else { String::new() }
        ),
        Some(s) => format!(
            "{:.0}/s, p50 {:.1} p99 {:.1} ms, CPU {}{}",
            s.rps,
            s.p50_ms,
            s.p99_ms,
            s.cpu_ms_per_request.map_or("-".into(), |c| format!("{c:.3} ms")),
            if s.errors > 0 { format!(", **{} errors**", s.errors) } else { String::new() }
        ),
    }
}

/// A Markdown table of the runs side by side, with each later run's ratios to the first, then
/// issue 10's targets checked for the last run against the first.
pub fn table(runs: &[Run]) -> String {
    let mut out = String::new();
    let mut header = "| scenario |".to_owned();
    let mut rule = "|---|".to_owned();
    for run in runs {
        let _ = write!(header, " {} |", run.label);
        rule.push_str("---|");
    }
    for run in &runs[1..] {
        let _ = write!(header, " {} vs {}: req/s ×, CPU/req ÷ |", run.label, runs[0].label);
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let mut names: Vec<&str> = Vec::new();
    for run in runs {
        for s in &run.scenarios {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    for name in names {
        let _ = write!(out, "| {} |", title(name));
        for run in runs {
            let _ = write!(out, " {} |", cell(run.scenario(name)));
        }
        for run in &runs[1..] {
            let ratio = match (runs[0].scenario(name), run.scenario(name)) {
                (Some(base), Some(s)) => {
                    let cpu = match (base.cpu_ms_per_request, s.cpu_ms_per_request) {
                        (Some(b), Some(c)) if c > 0.0 => format!("{:.1}", b / c),
                        _ => "-".into(),
                    };
                    format!("{:.1}, {cpu}", s.rps / base.rps)
                }
                _ => "—".into(),
            };
            let _ = write!(out, " {ratio} |");
        }
        out.push('\n');
    }
    let _ = write!(out, "| signin during: profile p99 |");
    for run in runs {
        let side = run.scenario("signin").and_then(|s| s.side.as_ref());
        let _ = write!(out, " {} |", side.map_or("—".into(), |s| format!("{:.1} ms", s.p99_ms)));
    }
    out.push_str(&" |".repeat(runs.len() - 1));
    out.push('\n');
    let _ = write!(out, "| RSS idle / peak / after |");
    for run in runs {
        let mib = |k: u64| k as f64 / 1024.0;
        let _ = write!(
            out,
            " {:.0} / {:.0} / {:.0} MiB |",
            mib(run.idle_rss_kib),
            mib(run.peak_rss_kib),
            mib(run.end_rss_kib)
        );
    }
    out.push_str(&" |".repeat(runs.len() - 1));
    out.push('\n');
    if runs.len() >= 2 {
        out.push('\n');
        out.push_str(&targets(&runs[0], &runs[runs.len() - 1]));
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**NOT met**" }
}

/// Issue 10's REST targets for `run` against the baseline of the same run.
pub fn targets(base: &Run, run: &Run) -> String {
    let mut out = format!("Targets of issue 10 ({} against {}):\n\n", run.label, base.label);
    for (name, target) in CPU_TARGETS {
        let (Some(b), Some(s)) = (base.scenario(name), run.scenario(name)) else { continue };
        if let (Some(bc), Some(c)) = (b.cpu_ms_per_request, s.cpu_ms_per_request) {
            let ratio = bc / c;
            let _ = writeln!(
                out,
                "- {}: CPU/request 1/{ratio:.1} of {}'s, target 1/{target}: {}",
                title(name),
                base.label,
                verdict(ratio >= target)
            );
        }
        let _ = writeln!(
            out,
            "- {}: p99 {:.1} ms, under {}'s p50 {:.1} ms: {}",
            title(name),
            s.p99_ms,
            base.label,
            b.p50_ms,
            verdict(s.p99_ms < b.p50_ms)
        );
    }
    if let (Some(g), Some(p)) = (run.scenario("graphql"), run.scenario("posts")) {
        let _ = writeln!(
            out,
            "- GraphQL `posts(first: 20)` {:.0}/s, at least the REST posts list's {:.0}/s: {}",
            g.rps,
            p.rps,
            verdict(g.rps >= p.rps)
        );
    }
    if let Some(s) = run.scenario("signin") {
        let limit = run.hash_limit();
        let _ = writeln!(
            out,
            "- sign-in {:.0}/s = {:.0} % of the hashing limit {limit:.0}/s ({} cores / {:.1} ms): {}",
            s.rps,
            100.0 * s.rps / limit,
            run.cores,
            run.hash_verify_ms,
            verdict(s.rps >= 0.85 * limit)
        );
        if let Some(side) = &s.side {
            let _ = writeln!(
                out,
                "- {} p99 during sign-in {:.1} ms, under 50 ms: {}",
                side.name,
                side.p99_ms,
                verdict(side.p99_ms < 50.0)
            );
        }
    }
    for s in run.scenarios.iter().filter(|s| s.extra.contains_key("delivered_pct")) {
        let _ = writeln!(
            out,
            "- {}: lossless and in order {}, p99 {:.1} ms under 50 ms: {}",
            s.name,
            verdict(s.lossless()),
            s.p99_ms,
            verdict(s.p99_ms < 50.0)
        );
    }
    for s in run.scenarios.iter().filter(|s| s.extra.contains_key("kib_per_socket")) {
        let handshakes = base.scenario(&s.name).map_or(String::new(), |b| {
            format!(
                ", handshakes {:.1}x {}'s, at least 12x: {}",
                s.rps / b.rps,
                base.label,
                verdict(s.rps >= 12.0 * b.rps)
            )
        });
        let _ = writeln!(
            out,
            "- {}: {:.1} KiB per socket, at most 12: {}{handshakes}",
            s.name,
            s.number("kib_per_socket"),
            verdict(s.number("kib_per_socket") <= 12.0)
        );
    }
    let mib = |k: u64| k as f64 / 1024.0;
    let _ = writeln!(
        out,
        "- peak RSS {:.0} MiB, under 100 MiB: {}",
        mib(run.peak_rss_kib),
        verdict(mib(run.peak_rss_kib) < 100.0)
    );
    let chatting = run.scenarios.iter().filter_map(|s| s.extra.get("peak_rss_chatting_kib")?.as_u64()).max();
    if let Some(chatting) = chatting {
        let _ = writeln!(out, "  (while chatting, without the history checks: {:.0} MiB)", mib(chatting));
    }
    let idle = run.idle_rss_kib.max(run.end_rss_kib);
    let _ = writeln!(out, "- idle RSS {:.0} MiB, under 40 MiB: {}", mib(idle), verdict(mib(idle) < 40.0));
    out
}
