//! GraphQL over WebSocket (`/graphql/ws`): both protocols (`graphql-transport-ws` and the older
//! `graphql-ws`), the caller from `connection_init` (or the handshake's headers), at most
//! [`ws_limit::MAX_OPERATIONS`] operations at once per connection.

use std::sync::Arc;

use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::extract::Caller;
use super::{socket, ws_limit};
use crate::auth::{self, Viewer};
use crate::client::ClientIp;
use crate::context::AppContext;
use crate::graphql::{AgoraSchema, loaders};

/// The token of a `connection_init` payload: `{"Authorization": "Bearer …"}` or `{"token": "…"}`.
fn token_from_init(payload: &serde_json::Value) -> Result<Option<String>, auth::AuthError> {
    let header = payload.get("Authorization").or_else(|| payload.get("authorization")).and_then(|v| v.as_str());
    if let Some(header) = header {
        return auth::bearer_token(Some(header)).map(|t| t.map(str::to_owned));
    }
    Ok(payload.get("token").and_then(|v| v.as_str()).map(str::to_owned))
}

pub async fn graphql_ws(
    State(ctx): State<AppContext>,
    axum::Extension(sockets): axum::Extension<std::sync::Arc<socket::SocketLimiter>>,
    client: ClientIp,
    Caller(header_viewer): Caller,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(permit) = sockets.acquire(client.0) else {
        return (axum::http::StatusCode::TOO_MANY_REQUESTS, "Too many open WebSockets from this address.")
            .into_response();
    };
    let schema: AgoraSchema = ctx.schema.clone();
    let wire_protocol = ws_limit::protocol_of(&headers);
    let state = ctx.state.clone();
    let lifecycle = ctx.lifecycle.clone();
    let ping_every = std::time::Duration::from_secs(state.settings.ws_ping_seconds.max(1));
    socket::configure(upgrade)
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let (_permit, _open) = (permit, crate::metrics::websocket_opened("graphql"));
            let (sink, stream) = socket::keepalive(socket, ping_every, &lifecycle);
            let (executor, active) = ws_limit::CountingExecutor::new(schema);
            let stream = ws_limit::gate(stream, active, sink.clone(), wire_protocol);
            let on_init = {
                let state = state.clone();
                move |payload: serde_json::Value| async move {
                    let viewer = match token_from_init(&payload) {
                        Ok(Some(token)) => {
                            let result = auth::authenticate(&state.db, &state.tokens, Some(&token)).await;
                            match result {
                                Ok(user) => Viewer::from_result(Ok(user)),
                                Err(err) => return Err(async_graphql::Error::new(err.to_string())),
                            }
                        }
                        Ok(None) => header_viewer,
                        Err(err) => return Err(async_graphql::Error::new(err.to_string())),
                    };
                    let mut data = Data::default();
                    data.insert(viewer);
                    data.insert(client);
                    data.insert(Arc::new(loaders::uncached(state.db.clone())));
                    Ok(data)
                }
            };
            // No `keepalive_timeout`: async-graphql counts only GraphQL messages from the client
            // (WebSocket pongs are filtered out before it), so it would drop every subscriber
            // that just listens. `socket::keepalive` detects dead connections by their pongs.
            GraphQLWebSocket::new_with_pair(sink, stream, executor, protocol).on_connection_init(on_init).serve().await;
        })
        .into_response()
}
