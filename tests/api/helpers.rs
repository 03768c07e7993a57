//! `spawn_app()` and the small clients the tests share.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use agora::config::Settings;
use agora::context::AppContext;
use agora::startup::Application;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse battery";
/// The secret of the test servers, so tests can mint tokens the way the legacy service did.
pub const SECRET: &str = "test-secret-key-for-agora-integration-tests";

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub context: AppContext,
    /// SQL statements the server has run (a counter installed for the tests only).
    pub statements: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub database_url: String,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub struct TestUser {
    pub id: i64,
    pub username: String,
    pub access: String,
    pub refresh: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name for this test run (users, databases, channels).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A fresh database: a new PostgreSQL database when `TEST_DATABASE_URL` is set, else `None`
/// (an SQLite file in the app's temporary folder). Test databases are named with their
/// creation time and the test process's id; once per test process, those of processes that
/// have ended (or older than an hour) are dropped, so parallel runs never pile them up.
pub async fn fresh_database() -> Option<String> {
    let server = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(&server).await.expect("TEST_DATABASE_URL reachable");
    static CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    CLEANED
        .get_or_init(|| async {
            let rows = admin
                .query_all_raw(sea_orm::Statement::from_string(
                    admin.get_database_backend(),
                    "SELECT datname FROM pg_database WHERE datname LIKE 'agora\\_t\\_%'",
                ))
                .await
                .unwrap_or_default();
            for row in rows {
                let name: String = row.try_get("", "datname").unwrap_or_default();
                let mut parts = name.split('_').skip(2);
                let created: i64 = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
                let owner_alive = parts.next().is_some_and(|pid| std::path::Path::new("/proc").join(pid).exists());
                if !owner_alive || now() - created > 3600 {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            }
        })
        .await;
    let name = format!("agora_t_{}_{}", now(), unique(""));
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
    let (base, _) = server.rsplit_once('/').expect("database URL with a path");
    Some(format!("{base}/{name}"))
}

pub fn test_settings(dir: &std::path::Path, database_url: Option<String>) -> Settings {
    let mut settings = Settings::from_env();
    settings.data_dir = dir.to_path_buf();
    settings.media_dir = None;
    settings.database_url = database_url;
    settings.bind = "127.0.0.1:0".into();
    settings.secret_key = Some(SECRET.into());
    settings.redis_url = std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty());
    settings.redis_channel = unique("agora_test");
    settings.auth_rate_per_minute = 0;
    settings.signin_free_failures = 0;
    settings.messages_per_second = 0;
    settings.db_pool = 4;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server whose settings `adjust` may change.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path(), fresh_database().await);
    adjust(&mut settings);
    start(settings, dir).await
}

pub async fn start(settings: Settings, dir: tempfile::TempDir) -> TestApp {
    let database_url = settings.database_url();
    let mut statements = None;
    let app = Application::build_with(settings, |db| statements = Some(agora::db::count_statements(db)))
        .await
        .expect("application builds");
    let statements = statements.expect("the counter was installed");
    let addr = app.local_addr();
    let context = app.context().clone();
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    let server = tokio::spawn(app.run(async move { signal.cancelled().await }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        context,
        statements,
        database_url,
        shutdown,
        server: Some(server),
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }

    /// A GraphQL request over HTTP POST; returns the whole response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self.client.post(self.url("/graphql")).json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        assert_eq!(response.status(), 200, "GraphQL answers 200");
        response.json().await.expect("JSON body")
    }

    /// Like [`gql`], asserting there were no errors; returns `data`.
    pub async fn gql_ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn register(&self, username: &str) -> i64 {
        let data = self
            .gql_ok(
                None,
                "mutation($u: String!, $e: String!, $p: String!) { register(input: {username: $u, email: $e, password: $p}) { id } }",
                json!({"u": username, "e": format!("{username}@example.com"), "p": PASSWORD}),
            )
            .await;
        data["register"]["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn sign_in(&self, username: &str) -> (String, String) {
        let data = self
            .gql_ok(
                None,
                "mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { access refresh } }",
                json!({"u": username, "p": PASSWORD}),
            )
            .await;
        let pair = &data["tokenAuth"];
        (pair["access"].as_str().unwrap().to_owned(), pair["refresh"].as_str().unwrap().to_owned())
    }

    /// Registers and signs in a user whose name starts with `prefix`.
    pub async fn user(&self, prefix: &str) -> TestUser {
        let username = unique(prefix);
        let id = self.register(&username).await;
        let (access, refresh) = self.sign_in(&username).await;
        TestUser { id, username, access, refresh }
    }
}

/// The error codes of a GraphQL response, in order.
pub fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}

/// `{field: messages}` of the BAD_USER_INPUT errors of a response, in order.
pub fn field_errors(body: &Value) -> Vec<(String, Vec<String>)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter(|e| e["extensions"]["code"] == "BAD_USER_INPUT")
                .map(|e| {
                    let field = e["extensions"]["field"].as_str().unwrap().to_owned();
                    let messages = e["extensions"]["messages"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m.as_str().unwrap().to_owned())
                        .collect();
                    (field, messages)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Signs claims with the test secret, as the legacy Django service (SimpleJWT) would.
pub fn mint(header: &str, claims: Value, secret: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", b64.encode(header), b64.encode(claims.to_string()));
    let alg = if header.contains("HS512") { jsonwebtoken::Algorithm::HS512 } else { jsonwebtoken::Algorithm::HS256 };
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg).unwrap();
    format!("{message}.{signature}")
}

pub const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The two GraphQL-over-WebSocket protocols of `/graphql/ws`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsProtocol {
    /// `graphql-transport-ws` (the graphql-ws library): `subscribe` -> `next`... `complete`.
    TransportWs,
    /// `graphql-ws` (the older subscriptions-transport-ws): `start` -> `data`... `complete`.
    LegacyWs,
}

impl WsProtocol {
    pub const BOTH: [WsProtocol; 2] = [WsProtocol::TransportWs, WsProtocol::LegacyWs];

    /// The `Sec-WebSocket-Protocol` value.
    pub fn name(self) -> &'static str {
        match self {
            WsProtocol::TransportWs => "graphql-transport-ws",
            WsProtocol::LegacyWs => "graphql-ws",
        }
    }

    pub fn subscribe_type(self) -> &'static str {
        match self {
            WsProtocol::TransportWs => "subscribe",
            WsProtocol::LegacyWs => "start",
        }
    }

    fn stop_type(self) -> &'static str {
        match self {
            WsProtocol::TransportWs => "complete",
            WsProtocol::LegacyWs => "stop",
        }
    }

    fn result_type(self) -> &'static str {
        match self {
            WsProtocol::TransportWs => "next",
            WsProtocol::LegacyWs => "data",
        }
    }
}

/// The content of the chat message a test sends last to prove that nothing else arrives:
/// see [`GqlWs::expect_sentinel`].
pub const SENTINEL: &str = "sentinel";

/// How long a test waits for a frame it expects.
pub const WS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A GraphQL subscription client over either protocol, on a real WebSocket.
pub struct GqlWs {
    pub protocol: WsProtocol,
    socket: WsStream,
    next_id: u32,
}

impl GqlWs {
    /// Connects and initialises with `{"Authorization": "Bearer <token>"}` (or an empty payload
    /// without a token); panics unless the server acknowledges.
    pub async fn connect(app: &TestApp, protocol: WsProtocol, token: Option<&str>) -> GqlWs {
        let payload = match token {
            Some(token) => json!({"Authorization": format!("Bearer {token}")}),
            None => json!({}),
        };
        Self::connect_with(app, protocol, payload).await
    }

    /// Connects and initialises with this `connection_init` payload; panics unless acknowledged.
    pub async fn connect_with(app: &TestApp, protocol: WsProtocol, payload: Value) -> GqlWs {
        let mut ws = Self::open(app, protocol).await;
        let answer = ws.init(payload).await;
        assert_eq!(answer.as_ref().map(|a| &a["type"]), Some(&json!("connection_ack")), "no ack: {answer:?}");
        ws
    }

    /// Opens the socket with the protocol's subprotocol header, without `connection_init`.
    pub async fn open(app: &TestApp, protocol: WsProtocol) -> GqlWs {
        Self::open_url(&app.ws_url("/graphql/ws"), protocol).await
    }

    /// [`open`](Self::open) on any server (a separate process, say).
    pub async fn open_url(url: &str, protocol: WsProtocol) -> GqlWs {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.name().parse().unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("WebSocket handshake");
        assert_eq!(
            response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
            Some(protocol.name()),
            "the server speaks the requested protocol"
        );
        GqlWs { protocol, socket, next_id: 0 }
    }

    /// Opens and initialises with `{"token": …}` on any server; panics unless acknowledged.
    pub async fn connect_url(url: &str, protocol: WsProtocol, token: &str) -> GqlWs {
        let mut ws = Self::open_url(url, protocol).await;
        let answer = ws.init(json!({"token": token})).await;
        assert_eq!(answer.as_ref().map(|a| &a["type"]), Some(&json!("connection_ack")), "no ack: {answer:?}");
        ws
    }

    /// Sends `connection_init` and returns the server's answer (`None`: the socket closed).
    pub async fn init(&mut self, payload: Value) -> Option<Value> {
        self.send(json!({"type": "connection_init", "payload": payload})).await;
        self.recv().await
    }

    pub async fn send(&mut self, message: Value) {
        use futures_util::SinkExt;
        self.socket.send(tokio_tungstenite::tungstenite::Message::text(message.to_string())).await.expect("frame sent");
    }

    /// Sends a text frame as it is.
    pub async fn send_raw(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.socket.send(tokio_tungstenite::tungstenite::Message::text(text)).await.expect("frame sent");
    }

    /// The next text frame as JSON, whatever its type (pings and pongs included).
    pub async fn recv_raw(&mut self) -> Value {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let next = tokio::time::timeout(WS_WAIT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON frame"),
                    Some(Ok(_)) => continue,
                    other => panic!("socket ended: {other:?}"),
                }
            }
        });
        next.await.unwrap_or_else(|_| panic!("no WebSocket message within {WS_WAIT:?}"))
    }

    /// Starts a subscription; returns its id.
    pub async fn subscribe(&mut self, query: &str, variables: Value) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let kind = self.protocol.subscribe_type();
        self.send(json!({"type": kind, "id": id, "payload": {"query": query, "variables": variables}})).await;
        id
    }

    /// Ends a subscription.
    pub async fn unsubscribe(&mut self, id: &str) {
        let kind = self.protocol.stop_type();
        self.send(json!({"type": kind, "id": id})).await;
    }

    /// The next GraphQL message from the server (keep-alives skipped, pings answered), or
    /// `None` once the socket is closed. Panics after [`WS_WAIT`].
    pub async fn recv(&mut self) -> Option<Value> {
        match self.recv_within(WS_WAIT).await {
            Ok(message) => message,
            Err(_) => panic!("no WebSocket message within {WS_WAIT:?}"),
        }
    }

    /// Like [`recv`], but `Err` when nothing came within `wait`.
    pub async fn recv_within(
        &mut self,
        wait: std::time::Duration,
    ) -> Result<Option<Value>, tokio::time::error::Elapsed> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        tokio::time::timeout(wait, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let message: Value = serde_json::from_str(&text).expect("JSON frame");
                        match message["type"].as_str() {
                            Some("ka") | Some("pong") => continue,
                            Some("ping") => {
                                self.send(json!({"type": "pong"})).await;
                                continue;
                            }
                            _ => return Some(message),
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Some(json!({"type": "close", "code": frame.as_ref().map(|f| u16::from(f.code)), "reason": frame.map(|f| f.reason.to_string())}));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
    }

    /// The payload (`{"data"}` or `{"errors"}`) of the next result of any subscription; panics on
    /// anything else or after [`WS_WAIT`].
    pub async fn next_payload(&mut self) -> Value {
        let message = self.recv().await.expect("socket open");
        assert_eq!(message["type"], self.protocol.result_type(), "expected a result, got {message}");
        message["payload"].clone()
    }

    /// "Nothing more arrived", proved without waiting: the test has just sent a chat message
    /// with the content [`SENTINEL`] after everything it expected, and live feeds deliver in
    /// storage order, so anything still on its way would come before it.
    pub async fn expect_sentinel(&mut self) {
        let payload = self.next_payload().await;
        assert_eq!(payload["data"]["messageAdded"]["content"], SENTINEL, "expected the sentinel next, got {payload}");
    }

    /// Answers the server's pings for `wait`, asserting that no GraphQL message arrives (an
    /// idle client, for tests about time passing).
    pub async fn stay_idle(&mut self, wait: std::time::Duration) {
        if let Ok(message) = self.recv_within(wait).await {
            panic!("expected no message while idle, got {message:?}");
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
