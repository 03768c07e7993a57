//! The `agora` command: serve (the default), export the schema, run migrations, administer
//! users, or check a running server's health.

use std::path::PathBuf;

use agora::config::Settings;
use clap::{Parser, Subcommand};

/// jemalloc rather than glibc's malloc: a request makes many small, short-lived allocations
/// (async-graphql boxes a future per field), and glibc's malloc and free were a quarter of the
/// server's CPU on the legacy posts list (perf, issue 10). Measured with `agora-bench http` on
/// one build (2 cores): jemalloc spent about 20 % less CPU per request than glibc and held a few
/// MiB more; mimalloc saved as much CPU but held 20–30 MiB more after a run; glibc keeps freed
/// memory in its per-thread arenas unless trimmed.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings: a background thread hands pages unused for a second back to the
/// system, so an idle server shrinks without any request having to pay for it.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

#[derive(Parser)]
#[command(name = "agora", version, about = "GraphQL-first social network and chat backend")]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run pending migrations, then serve (the default).
    Serve,
    /// Write the GraphQL schema (SDL) to a file, or to standard output.
    ExportSchema {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run pending migrations and exit.
    Migrate,
    /// Administer users (what Django's admin site did).
    Users {
        #[command(subcommand)]
        command: agora::admin::UsersCommand,
    },
    /// Exit 0 when the server on AGORA_BIND answers /readyz with 200 (for container health
    /// checks).
    Healthcheck {
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let mut cli = Cli::parse();
    let serving = matches!(cli.command, None | Some(Command::Serve));
    let to = if serving { agora::telemetry::LogTo::Stdout } else { agora::telemetry::LogTo::Stderr };
    let telemetry = agora::telemetry::init(cli.settings.log_format, to)?;
    cli.settings.load_secret_files()?;
    let result = run(cli).await;
    telemetry.shutdown();
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = agora::startup::Application::build(cli.settings).await?;
            app.run(shutdown_signal()).await?;
        }
        Command::ExportSchema { out } => {
            let sdl = agora::graphql::sdl();
            match out {
                Some(path) => std::fs::write(path, sdl)?,
                None => print!("{sdl}"),
            }
        }
        Command::Migrate => {
            let db = agora::db::connect(&cli.settings.database_url(), 1).await?;
            agora::db::migrate(&db).await?;
            tracing::info!("migrations applied");
        }
        Command::Users { command } => agora::admin::users(cli.settings, command).await?,
        Command::Healthcheck { timeout } => {
            agora::admin::healthcheck(&cli.settings.bind, std::time::Duration::from_secs(timeout)).await?
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
