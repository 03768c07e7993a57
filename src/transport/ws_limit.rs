//! A cap on the operations one GraphQL WebSocket runs at once. async-graphql starts a stream for
//! every `subscribe`/`start` id with no limit, and each live `messageAdded` holds a bus receiver
//! and up to a chunk of replayed messages, so one socket could otherwise hold without bound.
//!
//! Counting: [`CountingExecutor`] counts the operation streams async-graphql holds; each one's
//! guard lives exactly as long as the stream, so an operation stops counting however it ends
//! (the client stops it, the server completes it or it fails, a duplicate id replaces it, the
//! socket closes). [`gate`] reads the client's frames before async-graphql does and refuses an
//! operation that would go over [`MAX_OPERATIONS`]; async-graphql starts an operation's stream
//! while handling its frame, before it reads the next, so the count it checks is current.
//!
//! Refusing: the operation alone gets an `error` message for its id (graphql-transport-ws: a
//! list of errors; graphql-ws: one error), with `extensions.code` `TOO_MANY_REQUESTS`. The
//! connection and its other operations go on: closing with 4429 would end them all, and
//! graphql-ws clients treat that code as fatal and would not reconnect.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use async_graphql::http::WebSocketProtocols;
use async_graphql::{Data, Executor, Request, Response};
use axum::extract::ws::Message;
use axum::http::HeaderMap;
use axum::http::header::SEC_WEBSOCKET_PROTOCOL;
use futures_channel::mpsc;
use futures_util::SinkExt;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use serde_json::json;

use crate::graphql::AgoraSchema;
use crate::graphql::error::TOO_MANY_REQUESTS;

/// Most operations (subscriptions, and queries or mutations sent over the socket) that one
/// GraphQL WebSocket connection runs at once. A client needs about one per room it shows;
/// twenty `messageAdded` replays hold at most twenty chunks of messages.
pub const MAX_OPERATIONS: usize = 20;

/// The message of a refused operation.
pub fn too_many_message() -> String {
    format!("Too many operations on this connection: at most {MAX_OPERATIONS} at once. Complete one first.")
}

/// The schema, counting the operation streams it has handed out on one connection.
#[derive(Clone)]
pub struct CountingExecutor {
    schema: AgoraSchema,
    active: Arc<AtomicUsize>,
}

impl CountingExecutor {
    /// An executor for one connection, and its count of running operations.
    pub fn new(schema: AgoraSchema) -> (Self, Arc<AtomicUsize>) {
        let active = Arc::new(AtomicUsize::new(0));
        (CountingExecutor { schema, active: active.clone() }, active)
    }
}

impl Executor for CountingExecutor {
    async fn execute(&self, request: Request) -> Response {
        self.schema.execute(request).await
    }

    fn execute_stream(&self, request: Request, session_data: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        // Counted now, while async-graphql handles the frame, not when the stream is first polled.
        let running = Running::start(self.active.clone());
        let inner = Executor::execute_stream(&self.schema, request, session_data);
        Box::pin(Counted { inner, _running: running })
    }
}

/// One running operation: counted from its start until dropped.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(active: Arc<AtomicUsize>) -> Self {
        active.fetch_add(1, Ordering::SeqCst);
        Running(active)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An operation's stream with its count attached.
struct Counted {
    inner: BoxStream<'static, Response>,
    _running: Running,
}

impl Stream for Counted {
    type Item = Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// The protocol async-graphql-axum's `GraphQLProtocol` picks: the first one the client lists
/// that is known (the handler is only reached when there is one).
pub fn protocol_of(headers: &HeaderMap) -> WebSocketProtocols {
    headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.split(',').find_map(|p| p.trim().parse().ok()))
        .unwrap_or(WebSocketProtocols::GraphQLWS)
}

/// The client's frames, less the operations that would go over [`MAX_OPERATIONS`] while
/// `active` are running: each of those is answered on `replies` (the socket's outgoing queue,
/// so a client that does not read them is slowed down, then dropped, like any other).
pub fn gate<S>(
    frames: S,
    active: Arc<AtomicUsize>,
    replies: mpsc::Sender<Message>,
    protocol: WebSocketProtocols,
) -> impl Stream<Item = Result<Message, axum::Error>> + Send + 'static
where
    S: Stream<Item = Result<Message, axum::Error>> + Send + 'static,
{
    stream::unfold((Box::pin(frames), replies), move |(mut frames, mut replies)| {
        let active = active.clone();
        async move {
            loop {
                let frame = frames.next().await?;
                let started = match &frame {
                    Ok(Message::Text(text)) => started_operation(text.as_bytes()),
                    Ok(Message::Binary(bytes)) => started_operation(bytes),
                    _ => None,
                };
                if let Some(id) = started
                    && active.load(Ordering::SeqCst) >= MAX_OPERATIONS
                {
                    if replies.send(refusal(protocol, &id)).await.is_err() {
                        return None;
                    }
                    continue;
                }
                return Some((frame, (frames, replies)));
            }
        }
    })
}

/// The id of the operation a frame starts (`subscribe`, or `start` in graphql-ws).
fn started_operation(frame: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: String,
        id: Option<String>,
    }
    // Anything unreadable goes on to async-graphql, which closes the socket over it.
    let head: Head = serde_json::from_slice(frame).ok()?;
    matches!(head.kind.as_str(), "subscribe" | "start").then_some(head.id).flatten()
}

/// The `error` message that refuses operation `id`.
fn refusal(protocol: WebSocketProtocols, id: &str) -> Message {
    let error = json!({"message": too_many_message(), "extensions": {"code": TOO_MANY_REQUESTS}});
    let payload = match protocol {
        // graphql-transport-ws: `payload: GraphQLError[]`.
        WebSocketProtocols::GraphQLWS => json!([error]),
        // graphql-ws (subscriptions-transport-ws): `payload: Error`.
        WebSocketProtocols::SubscriptionsTransportWS => error,
    };
    Message::Text(json!({"type": "error", "id": id, "payload": payload}).to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_frames_that_start_an_operation_are_counted() {
        let frame = |v: serde_json::Value| v.to_string().into_bytes();
        let query = json!({"query": "{ __typename }"});
        assert_eq!(
            started_operation(&frame(json!({"type": "subscribe", "id": "a", "payload": query}))),
            Some("a".into())
        );
        assert_eq!(started_operation(&frame(json!({"type": "start", "id": "7", "payload": query}))), Some("7".into()));
        for other in [
            json!({"type": "complete", "id": "a"}),
            json!({"type": "stop", "id": "a"}),
            json!({"type": "connection_init", "payload": {}}),
            json!({"type": "ping"}),
            json!({"type": "subscribe", "payload": query}),
        ] {
            assert_eq!(started_operation(&frame(other.clone())), None, "{other}");
        }
        assert_eq!(started_operation(b"not json"), None);
    }

    #[test]
    fn a_refusal_is_an_error_message_of_each_protocol() {
        let text = |m: Message| match m {
            Message::Text(text) => serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            other => panic!("{other:?}"),
        };
        let transport = text(refusal(WebSocketProtocols::GraphQLWS, "3"));
        assert_eq!(transport["type"], "error");
        assert_eq!(transport["id"], "3");
        assert_eq!(transport["payload"][0]["extensions"]["code"], TOO_MANY_REQUESTS);
        let legacy = text(refusal(WebSocketProtocols::SubscriptionsTransportWS, "3"));
        assert_eq!(legacy["type"], "error");
        assert_eq!(legacy["payload"]["message"], too_many_message());
    }

    #[test]
    fn the_protocol_is_the_first_known_one_listed() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(SEC_WEBSOCKET_PROTOCOL, value.parse().unwrap());
            headers
        };
        assert_eq!(protocol_of(&headers("graphql-ws")), WebSocketProtocols::SubscriptionsTransportWS);
        assert_eq!(protocol_of(&headers("graphql-transport-ws")), WebSocketProtocols::GraphQLWS);
        assert_eq!(
            protocol_of(&headers("x, graphql-ws, graphql-transport-ws")),
            WebSocketProtocols::SubscriptionsTransportWS
        );
    }
}
