//! Real processes: graceful shutdown on SIGTERM, and several processes on one PostgreSQL and
//! one Redis serving one chat (those run when `TEST_DATABASE_URL` and `TEST_REDIS_URL` are set).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;
use crate::processes::AgoraProcess;

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database().await;
    let mut process = AgoraProcess::start(dir.path(), database.as_deref(), None, &unique("agora_sig")).await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(process.url("/healthz")).send().await.unwrap().status(), 200);

    let mut request = process.ws_url("/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket.send(Message::text(json!({"type": "connection_init", "payload": {}}).to_string())).await.unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap().unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"));

    let status = process.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    let mut close_code = None;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        if let Message::Close(Some(frame)) = frame {
            close_code = Some(u16::from(frame.code));
            break;
        }
    }
    assert_eq!(close_code, Some(1001));
}
