//! The administration commands that Django's admin site used to serve: `agora users …` over
//! the account services (the same rules as the API, no SQL by hand), and `agora healthcheck`
//! for container images without curl.
//!
//! The user commands change the database only; every serving process notices a deactivated
//! or deleted user by itself and closes their sockets.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::config::Settings;
use crate::error::AppError;
use crate::service::{accounts, page::Total};
use crate::state::AppState;

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// List users (id, username, email, active, joined), by id.
    List {
        /// Only usernames starting with this, case-insensitively.
        #[arg(long)]
        search: Option<String>,
    },
    /// Stop a user from signing in; their open sockets are closed.
    Deactivate { username: String },
    /// Let a deactivated user sign in again.
    Activate { username: String },
    /// Set a user's password, read from standard input (its first line), validated as at
    /// registration.
    SetPassword { username: String },
    /// Delete a user and everything that is theirs.
    Delete { username: String },
}

/// The state the services need, on the configured database (no migrations, no listener).
async fn state(settings: Settings) -> anyhow::Result<AppState> {
    let db = crate::db::connect(&settings.database_url(), 2).await.context("cannot connect to the database")?;
    // These commands issue no tokens and publish no events: an unused key, an in-process bus.
    let unused_key = b"admin commands sign nothing";
    let bus: Arc<dyn crate::bus::EventBus> = Arc::new(crate::bus::LocalBus::new(16));
    Ok(AppState::new(settings, db, unused_key, bus))
}

/// A service error as a one-line message (field errors spelt out).
fn explain(err: AppError, username: &str) -> anyhow::Error {
    match err {
        AppError::NotFound => anyhow::anyhow!("no user named {username:?}"),
        AppError::Invalid(errors) => {
            let lines: Vec<String> =
                errors.iter().map(|(field, problems)| format!("{field}: {}", problems.join(" "))).collect();
            anyhow::anyhow!("{}", lines.join("; "))
        }
        other => anyhow::Error::new(other),
    }
}

pub async fn users(settings: Settings, command: UsersCommand) -> anyhow::Result<()> {
    let state = state(settings).await?;
    match command {
        UsersCommand::List { search } => {
            let mut after = None;
            println!("id\tusername\temail\tactive\tjoined");
            loop {
                let page = accounts::list(&state.db, search.as_deref(), Some(100), after, Total::Skip)
                    .await
                    .map_err(|err| explain(err, ""))?;
                for user in &page.items {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        user.id,
                        user.username,
                        user.email,
                        user.is_active,
                        user.date_joined.to_rfc3339()
                    );
                }
                match page.items.last() {
                    Some(last) if page.has_next => after = Some(last.id),
                    _ => break,
                }
            }
        }
        UsersCommand::Deactivate { username } => {
            accounts::set_active(&state.db, &username, false).await.map_err(|err| explain(err, &username))?;
            println!("deactivated {username}");
        }
        UsersCommand::Activate { username } => {
            accounts::set_active(&state.db, &username, true).await.map_err(|err| explain(err, &username))?;
            println!("activated {username}");
        }
        UsersCommand::SetPassword { username } => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).context("cannot read the password from standard input")?;
            let password = input.lines().next().unwrap_or("");
            accounts::set_password(&state.db, &state.passwords, &username, password)
                .await
                .map_err(|err| explain(err, &username))?;
            println!("password of {username} changed");
        }
        UsersCommand::Delete { username } => {
            accounts::delete(&state.db, &username).await.map_err(|err| explain(err, &username))?;
            println!("deleted {username}");
        }
    }
    Ok(())
}

/// The `host:port` to ask for `/readyz`: `url`'s, else the listener's (a wildcard address
/// asked on loopback).
fn health_target(bind: &str) -> String {
    match bind.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]" | "", port)) => format!("127.0.0.1:{port}"),
        _ => bind.to_owned(),
    }
}

/// Ok when `GET /readyz` on `bind` answers 200 within `timeout`.
pub async fn healthcheck(bind: &str, timeout: Duration) -> anyhow::Result<()> {
    let target = health_target(bind);
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(&target).await?;
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut answer).await?;
        anyhow::Ok(answer)
    };
    let answer = tokio::time::timeout(timeout, ask)
        .await
        .with_context(|| format!("{target} did not answer within {timeout:?}"))?
        .with_context(|| format!("cannot ask {target}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or("");
    anyhow::ensure!(status.split_whitespace().nth(1) == Some("200"), "not ready: {status}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_asked_on_loopback() {
        assert_eq!(health_target("0.0.0.0:8000"), "127.0.0.1:8000");
        assert_eq!(health_target("[::]:8000"), "127.0.0.1:8000");
        assert_eq!(health_target("127.0.0.1:9000"), "127.0.0.1:9000");
    }
}
