//! The server's lifecycle: WebSocket keep-alive pings, and graceful shutdown (WebSockets closed
//! with 1001, in-flight requests finished).

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
