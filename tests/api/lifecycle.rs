//! The server's lifecycle: WebSocket keep-alive pings, graceful shutdown (WebSockets closed
//! with 1001, in-flight requests finished), restarts (the generated key is kept) and
//! `agora migrate`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

async fn graphql_socket(
    app: &TestApp,
    protocol: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let mut request = app.ws_url("/graphql/ws").into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}

#[tokio::test]
async fn subscriptions_need_a_known_subprotocol() {
    let app = spawn_app().await;
    assert!(graphql_socket(&app, None).await.is_err());
    assert!(graphql_socket(&app, Some("graphql-transport-ws")).await.is_ok());
    assert!(graphql_socket(&app, Some("graphql-ws")).await.is_ok());
}

#[tokio::test]
async fn idle_sockets_are_pinged() {
    let app = spawn_app_with(|s| s.ws_ping_seconds = 1).await;
    let mut socket = graphql_socket(&app, Some("graphql-transport-ws")).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("a frame within 5 s");
    assert!(matches!(frame, Some(Ok(Message::Ping(_)))), "{frame:?}");
}

#[tokio::test]
async fn shutdown_closes_websockets_with_1001() {
    let mut app = spawn_app().await;
    let user = app.user("closer").await;
    let mut socket = graphql_socket(&app, Some("graphql-transport-ws")).await.unwrap();
    socket
        .send(Message::text(json!({"type": "connection_init", "payload": {"token": user.access}}).to_string()))
        .await
        .unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap().unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack:?}");

    let stopping = tokio::spawn(async move {
        app.stop().await;
        app
    });
    let mut close_code = None;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        if let Ok(Message::Close(Some(frame))) = frame {
            close_code = Some(u16::from(frame.code));
            break;
        }
    }
    assert_eq!(close_code, Some(1001));
    let app = tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("server stops").unwrap();
    assert!(app.client.get(app.url("/healthz")).send().await.is_err(), "no longer accepting");
}

/// Without a configured key, the one generated on the first start is kept in the data folder:
/// after a restart the tokens issued before still work. A server with another data folder (so
/// another key) on the same database refuses them.
#[tokio::test]
async fn a_restart_keeps_the_generated_key_and_so_the_tokens() {
    let data = tempfile::tempdir().unwrap();
    let database = fresh_database().await;
    let settings = |dir: &std::path::Path| {
        let mut settings = test_settings(dir, database.clone());
        settings.secret_key = None;
        // SQLite: the database stays in the first data folder.
        settings.database_url = Some(
            settings
                .database_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data.path().join("agora.sqlite3").display())),
        );
        settings
    };
    let mut first = start(settings(data.path()), tempfile::tempdir().unwrap()).await;
    let alice = first.user("alice").await;
    first.stop().await;
    let key = std::fs::read_to_string(data.path().join("secret_key")).expect("a generated key");

    let mut second = start(settings(data.path()), tempfile::tempdir().unwrap()).await;
    let me = second.gql_ok(Some(&alice.access), "{ me { username } }", json!({})).await;
    assert_eq!(me["me"]["username"], alice.username.as_str());
    let refreshed = second
        .gql_ok(None, "mutation($r: String!) { refreshToken(refresh: $r) { access } }", json!({"r": alice.refresh}))
        .await;
    assert!(refreshed["refreshToken"]["access"].is_string());
    second.stop().await;
    assert_eq!(std::fs::read_to_string(data.path().join("secret_key")).unwrap(), key, "the same key");

    let elsewhere = tempfile::tempdir().unwrap();
    let other = start(settings(elsewhere.path()), tempfile::tempdir().unwrap()).await;
    let body = other.gql(Some(&alice.access), "{ me { username } }", json!({})).await;
    assert_eq!(codes(&body), ["UNAUTHENTICATED"], "another key: {body}");
}

/// `agora migrate` applies every migration to an empty database and exits; run again, it has
/// nothing to do.
#[tokio::test]
async fn agora_migrate_applies_every_migration() {
    use migration::MigratorTrait;
    use sea_orm::ConnectionTrait;
    let data = tempfile::tempdir().unwrap();
    let url = fresh_database()
        .await
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data.path().join("migrated.sqlite3").display()));
    for _ in 0..2 {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("AGORA_DATA_DIR", data.path())
            .arg("migrate")
            .output()
            .expect("agora runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let db = sea_orm::Database::connect(&url).await.unwrap();
    let applied = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations",
        ))
        .await
        .unwrap();
    assert_eq!(applied.len(), migration::Migrator::migrations().len());
    let users =
        db.query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), "SELECT id FROM users")).await;
    assert!(users.is_ok_and(|rows| rows.is_empty()), "the tables exist");
}
