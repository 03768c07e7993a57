//! GraphQL over HTTP (`/graphql`, GET and POST, multipart uploads), the GraphiQL page
//! (`/graphiql`) and subscriptions over WebSocket (`/graphql/ws`, both protocols).

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::Data;
use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{Html, IntoResponse, Response};

use super::{AgoraSchema, ClientAddr, loaders};
use crate::auth::{self, Viewer};
use crate::startup::AppContext;

/// The caller of an HTTP request, from its `Authorization` header.
pub async fn viewer_from_headers(ctx: &AppContext, headers: &HeaderMap) -> Viewer {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let result = match auth::bearer_token(header) {
        Ok(token) => auth::authenticate(&ctx.state.db, &ctx.state.tokens, token).await,
        Err(err) => Err(err),
    };
    Viewer::from_result(result)
}

pub async fn graphql_http(
    State(ctx): State<AppContext>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let viewer = viewer_from_headers(&ctx, &headers).await;
    let request = super::prepare(request.into_inner(), &ctx.state, viewer, Some(addr.ip()));
    ctx.schema.execute(request).await.into()
}

pub async fn graphiql(State(ctx): State<AppContext>) -> Html<String> {
    let page = GraphiQLSource::build()
        .endpoint("/graphql")
        .subscription_endpoint("/graphql/ws")
        .title("Agora GraphiQL")
        .finish();
    let base = ctx.state.settings.graphiql_cdn.trim_end_matches('/');
    Html(page.replace("https://unpkg.com", base))
}

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
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header_viewer = viewer_from_headers(&ctx, &headers).await;
    let schema: AgoraSchema = ctx.schema.clone();
    let state = ctx.state.clone();
    let lifecycle = ctx.lifecycle.clone();
    let ping_every = std::time::Duration::from_secs(state.settings.ws_ping_seconds.max(1));
    crate::ws::configure(upgrade)
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = crate::ws::keepalive(socket, ping_every, &lifecycle);
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
                    data.insert(ClientAddr(Some(addr.ip())));
                    data.insert(Arc::new(loaders::loaders(state.db.clone())));
                    Ok(data)
                }
            };
            // No `keepalive_timeout`: async-graphql counts only GraphQL messages from the client
            // (WebSocket pongs are filtered out before it), so it would drop every subscriber
            // that just listens. `ws::keepalive` detects dead connections by their pongs.
            GraphQLWebSocket::new_with_pair(sink, stream, schema, protocol).on_connection_init(on_init).serve().await;
        })
        .into_response()
}
