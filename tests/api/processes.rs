//! Real `agora` processes (the binary this package builds), for the tests that need more than
//! one server or a real signal.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct AgoraProcess {
    child: Child,
    pub base: String,
    pub addr: String,
    /// Every line the process wrote to standard output (its log) so far.
    pub logs: Arc<Mutex<Vec<String>>>,
}

/// The `agora` binary with the environment of a test server (nothing inherited but `PATH`).
pub fn agora_command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agora"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AGORA_BIND", "127.0.0.1:0")
        .env("AGORA_DATA_DIR", data_dir)
        .env("AGORA_SECRET_KEY", crate::helpers::SECRET)
        .env("AGORA_AUTH_RATE_PER_MINUTE", "0")
        .env("AGORA_SIGNIN_FREE_FAILURES", "0")
        .env("AGORA_MESSAGES_PER_SECOND", "0")
        .env("AGORA_LOG", "info")
        .kill_on_drop(true);
    command
}

/// The URL after `label` in a log line (text or JSON).
fn logged_url(line: &str, label: &str) -> Option<String> {
    let rest = line.split(label).nth(1)?.trim_start();
    let url = rest.split(|c: char| c.is_whitespace() || c == '"').next()?;
    Some(url.trim_start_matches("http://").to_owned())
}

impl AgoraProcess {
    /// Starts `agora serve` on an ephemeral port and waits until it logs its GraphQL endpoint.
    pub async fn start(data_dir: &Path, database_url: Option<&str>, redis_url: Option<&str>, channel: &str) -> Self {
        Self::start_with(data_dir, database_url, redis_url, channel, &[]).await
    }

    /// [`start`](Self::start) with more environment (settings a test shortens, say).
    pub async fn start_with(
        data_dir: &Path,
        database_url: Option<&str>,
        redis_url: Option<&str>,
        channel: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = agora_command(data_dir);
        command.envs(env.iter().copied());
        command.env("AGORA_REDIS_CHANNEL", channel).arg("serve");
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        if let Some(url) = redis_url {
            command.env("REDIS_URL", url);
        }
        Self::spawn(command).await
    }

    /// Starts `command` (from [`agora_command`]) and waits until it logs its GraphQL endpoint.
    pub async fn spawn(mut command: Command) -> Self {
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().expect("agora binary starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("log line") {
                logs.lock().unwrap().push(line.clone());
                if let Some(url) = logged_url(&line, "GraphQL endpoint:") {
                    return url.trim_end_matches("/graphql").to_owned();
                }
            }
            panic!("agora exited before serving");
        })
        .await
        .expect("agora serves within 60 s");
        // Keep draining the log so the pipe never fills.
        let kept = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        Self { child, base: format!("http://{addr}"), addr, logs }
    }

    /// The address of `/metrics` (`host:port`), as the process logs it right after starting.
    pub async fn metrics_addr(&self) -> String {
        for _ in 0..200 {
            let logged = self.logs.lock().unwrap().iter().find_map(|line| logged_url(line, "Metrics:"));
            if let Some(url) = logged {
                return url.trim_end_matches("/metrics").to_owned();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no metrics address logged");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// A GraphQL request; returns `data`, panicking on errors.
    pub async fn gql_ok(&self, token: Option<&str>, query: &str, variables: serde_json::Value) -> serde_json::Value {
        let mut request = reqwest::Client::new()
            .post(self.url("/graphql"))
            .json(&serde_json::json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body: serde_json::Value = request.send().await.expect("request sent").json().await.expect("JSON");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Waits until `/readyz` answers 200 (database reachable, bus subscribed).
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = client.get(self.url("/readyz")).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never became ready", self.base);
    }

    /// Kills the process at once (SIGKILL): no shutdown of any kind, as when a machine dies.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("killed");
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

/// A private `redis-server` on a free port, so a test can stop and restart it without
/// disturbing the shared one.
pub struct PrivateRedis {
    child: Option<std::process::Child>,
    pub port: u16,
}

impl PrivateRedis {
    /// `None` when `redis-server` is not installed.
    pub fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let mut redis = Self { child: None, port };
        redis.spawn().then_some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> bool {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "redis-server restarts");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
