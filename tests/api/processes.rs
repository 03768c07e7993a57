//! Real `agora` processes (the binary this package builds), for the tests that need more than
//! one server or a real signal.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct AgoraProcess {
    child: Child,
    pub base: String,
    pub addr: String,
}

impl AgoraProcess {
    /// Starts `agora serve` on an ephemeral port and waits until it logs its GraphQL endpoint.
    pub async fn start(data_dir: &Path, database_url: Option<&str>, redis_url: Option<&str>, channel: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agora"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AGORA_BIND", "127.0.0.1:0")
            .env("AGORA_DATA_DIR", data_dir)
            .env("AGORA_SECRET_KEY", crate::helpers::SECRET)
            .env("AGORA_REDIS_CHANNEL", channel)
            .env("AGORA_AUTH_RATE_PER_MINUTE", "0")
            .env("AGORA_LOG", "info")
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        if let Some(url) = redis_url {
            command.env("REDIS_URL", url);
        }
        let mut child = command.spawn().expect("agora binary starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("log line") {
                if let Some(rest) = line.split("GraphQL endpoint:").nth(1) {
                    let url = rest.trim();
                    return url.trim_start_matches("http://").trim_end_matches("/graphql").to_owned();
                }
            }
            panic!("agora exited before serving");
        })
        .await
        .expect("agora serves within 60 s");
        // Keep draining the log so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, base: format!("http://{addr}"), addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("agora exits within 15 s of SIGTERM")
            .expect("exit status")
    }
}
