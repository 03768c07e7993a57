//! The `agora` command: serve (the default), export the schema, or run migrations.

use std::path::PathBuf;

use agora::config::Settings;
use clap::{Parser, Subcommand};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGORA_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        .init();
    let cli = Cli::parse();
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
