//! `agora-bench`: side-by-side load benchmarks of Agora and the Django reference (issue 10).
//!
//! `agora-bench http` seeds a running server through its legacy REST API (so the same tool
//! measures both), runs closed-loop HTTP scenarios with keep-alive clients and reads the
//! server's CPU time and resident memory from `/proc` (given its pid; a pid's descendants
//! count too), and writes the run as JSON. `agora-bench chat` runs the chat scenarios.
//! `agora-bench table` prints runs side by side with their ratios to the first and the issue's
//! targets. `tools/bench/compare.sh` does all of it against both servers. Only for servers on
//! this machine or your own test hosts.

mod chat;
mod http;
mod procfs;
mod report;
mod seed;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Side-by-side load benchmarks of Agora and the Django reference")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seed a server, run the REST and GraphQL scenarios, write the run as JSON.
    Http {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        load: http::Load,
        /// Only these scenarios (comma-separated: posts,profile,rooms,message,graphql,signin).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Seed a server, run the chat scenarios, write the run as JSON.
    Chat {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        chat: chat::ChatArgs,
    },
    /// Print runs (JSON files) side by side; the first is the baseline of the ratios.
    Table { runs: Vec<PathBuf> },
}

/// The server under test and where the run goes.
#[derive(clap::Args)]
struct Target {
    /// Base URL of the server; comma-separated for several processes of one deployment (the
    /// chat scenarios spread their sockets and sends over them; the rest uses the first).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    base: String,
    /// The server's pid (repeatable; descendants count too): CPU time and RSS come from /proc.
    #[arg(long)]
    pid: Vec<u32>,
    /// Name of the run in the table.
    #[arg(long, default_value = "server")]
    label: String,
    /// Write the run here as JSON (else only the summary is printed).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    size: seed::Size,
}

/// One Argon2id verification with the parameters both servers use (m=19456, t=2, p=1), the
/// fastest of a few: the unit of the sign-in target.
fn hash_verify_ms() -> f64 {
    let params = argon2::Params::new(19_456, 2, 1, Some(32)).expect("params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    (0..7)
        .map(|_| {
            // Verifying is hashing again with the stored salt and comparing.
            let started = Instant::now();
            argon.hash_password_into(seed::PASSWORD.as_bytes(), b"bench-salt-16byt", &mut out).expect("hash");
            started.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

/// Seeds, measures memory around `scenarios`, prints and writes the run.
async fn measured<F>(target: Target, scenarios: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&[String], &[u32], &seed::World, &mut report::Run) -> anyhow::Result<()>,
{
    let bases: Vec<String> = target.base.split(',').map(|b| b.trim().trim_end_matches('/').to_owned()).collect();
    let base = bases[0].clone();
    let pids = target.pid.clone();
    let mut run = report::Run {
        label: target.label.clone(),
        base: target.base.clone(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        hash_verify_ms: tokio::task::spawn_blocking(hash_verify_ms).await?,
        ..Default::default()
    };
    // Distinct names per run, so that several runs can share a server.
    let tag = format!("b{}", std::process::id());
    eprintln!("{}: seeding {base} ({:?})", run.label, target.size);
    let world = seed::seed(&base, &tag, target.size).await.context("seeding")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.idle_rss_kib = procfs::rss_kib(&pids);
    let peak = procfs::PeakRss::start(pids.clone());
    let outcome = scenarios(&bases, &pids, &world, &mut run).await;
    run.peak_rss_kib = peak.finish().await.max(run.idle_rss_kib);
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.end_rss_kib = procfs::rss_kib(&pids);
    println!("{}", serde_json::to_string_pretty(&run)?);
    if let Some(out) = &target.out {
        std::fs::write(out, serde_json::to_vec_pretty(&run)?).with_context(|| format!("writing {}", out.display()))?;
    }
    outcome
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Http { target, load, only } => {
            for name in &only {
                anyhow::ensure!(http::SCENARIOS.contains(&name.as_str()), "unknown scenario {name}");
            }
            measured(target, async |bases, pids, world, run| {
                http::run(&bases[0], pids, &load, world, &only, run).await;
                Ok(())
            })
            .await
        }
        Command::Chat { target, chat } => {
            measured(target, async |bases, pids, world, run| chat::run(bases, pids, &chat, world, run).await).await
        }
        Command::Table { runs } => {
            let runs = runs
                .iter()
                .map(|path| {
                    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                    Ok(serde_json::from_slice(&text)?)
                })
                .collect::<anyhow::Result<Vec<report::Run>>>()?;
            anyhow::ensure!(!runs.is_empty(), "no run given");
            print!("{}", report::table(&runs));
            Ok(())
        }
    }
}
