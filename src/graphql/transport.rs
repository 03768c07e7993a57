//! GraphQL over HTTP (`/graphql`, GET and POST, multipart uploads), the GraphiQL page
//! (`/graphiql`) and subscriptions over WebSocket (`/graphql/ws`, both protocols, at most
//! [`ws_limit::MAX_OPERATIONS`] operations at once per connection).

use std::sync::Arc;

use async_graphql::http::{GraphiQLSource, MultipartOptions};
use async_graphql::{Data, ParseRequestError};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{FromRequest, Query, State, WebSocketUpgrade};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use futures_util::TryStreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::{AgoraSchema, ClientAddr, loaders, ws_limit};
use crate::auth::{self, Viewer};
use crate::client::ClientIp;
use crate::startup::AppContext;

/// The caller of an HTTP request, from its `Authorization` header.
pub async fn viewer_from_headers(ctx: &AppContext, headers: &HeaderMap) -> Viewer {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    Viewer::from_result(auth::authenticate_header(&ctx.state.db, &ctx.state.tokens, header).await)
}

/// Most files one request may carry (`updateProfile.image` is the only upload).
pub const MAX_UPLOADS: usize = 1;
/// Room for the `operations` and `map` parts beside the largest accepted avatar, so that a
/// slightly oversized image still reaches the resolver and gets a field error.
pub const MULTIPART_SLACK: usize = 64 * 1024;

/// A GraphQL request (GET, JSON or multipart) with the multipart stream capped: no part and no
/// whole stream larger than an avatar plus [`MULTIPART_SLACK`] (413), at most [`MAX_UPLOADS`]
/// files (400). async-graphql-axum's own extractor has no limits at all.
pub struct LimitedRequest(pub async_graphql::Request);

pub enum LimitedRejection {
    Parse(GraphQLRejection),
    TooManyFiles,
    /// A mutation (or subscription) sent with GET: only queries may be, as GET requests can be
    /// triggered across sites and cached.
    NotAQuery,
}

impl IntoResponse for LimitedRejection {
    fn into_response(self) -> Response {
        match self {
            LimitedRejection::Parse(rejection) => rejection.into_response(),
            LimitedRejection::TooManyFiles => {
                (StatusCode::BAD_REQUEST, format!("Too many files: at most {MAX_UPLOADS}.")).into_response()
            }
            LimitedRejection::NotAQuery => {
                let body = serde_json::json!({"errors": [{
                    "message": "Only queries may be sent with GET; use POST.",
                    "extensions": {"code": super::error::BAD_USER_INPUT},
                }]});
                (StatusCode::METHOD_NOT_ALLOWED, [(axum::http::header::ALLOW, "GET, POST")], axum::Json(body))
                    .into_response()
            }
        }
    }
}

impl From<ParseRequestError> for LimitedRejection {
    fn from(err: ParseRequestError) -> Self {
        LimitedRejection::Parse(GraphQLRejection(err))
    }
}

impl<S: Send + Sync> FromRequest<S> for LimitedRequest {
    type Rejection = LimitedRejection;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET {
            let request = GraphQLRequest::<GraphQLRejection>::from_request(req, state).await;
            let mut request = request.map(|r| r.into_inner()).map_err(LimitedRejection::Parse)?;
            if !is_query(&mut request) {
                return Err(LimitedRejection::NotAQuery);
            }
            return Ok(LimitedRequest(request));
        }
        let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = req.into_body().into_data_stream().map_err(std::io::Error::other);
        let reader = tokio_util::io::StreamReader::new(body).compat();
        let options = MultipartOptions::default()
            .max_file_size(crate::media::MAX_IMAGE_BYTES + MULTIPART_SLACK)
            .max_num_files(MAX_UPLOADS);
        let request = async_graphql::http::receive_batch_body(content_type, reader, options).await?.into_single()?;
        if request.uploads.len() > MAX_UPLOADS {
            return Err(LimitedRejection::TooManyFiles);
        }
        Ok(LimitedRequest(request))
    }
}

/// Whether the operation a request selects is a query (a document that does not parse, or names
/// no operation, counts as one: execution reports the error).
fn is_query(request: &mut async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else { return true };
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name.as_str()),
        (DocumentOperations::Multiple(operations), None) => {
            operations.values().next().filter(|_| operations.len() == 1)
        }
    };
    operation.is_none_or(|operation| operation.node.ty == OperationType::Query)
}

pub async fn graphql_http(
    State(ctx): State<AppContext>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    LimitedRequest(request): LimitedRequest,
) -> GraphQLResponse {
    let viewer = viewer_from_headers(&ctx, &headers).await;
    let request = super::prepare(request, &ctx.state, viewer, Some(ip));
    ctx.schema.execute(request).await.into()
}

/// Query of the playground page: `/graphiql?token=<access>` signs its queries and
/// subscriptions in (GraphiQL sends its headers pane over HTTP only, never in
/// `connection_init`).
#[derive(serde::Deserialize)]
pub struct PlaygroundQuery {
    token: Option<String>,
}

pub async fn graphiql(State(ctx): State<AppContext>, Query(query): Query<PlaygroundQuery>) -> Html<String> {
    // Only a JWT's alphabet is put into the page's script.
    let token = query.token.filter(|t| {
        !t.is_empty() && t.len() < 4096 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    });
    let bearer = token.as_ref().map(|t| format!("Bearer {t}"));
    let mut page =
        GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").title("Agora GraphiQL");
    if let (Some(token), Some(bearer)) = (token.as_deref(), bearer.as_deref()) {
        page = page.header("Authorization", bearer).ws_connection_param("token", token);
    }
    let base = ctx.state.settings.graphiql_cdn.trim_end_matches('/');
    Html(page.finish().replace("https://unpkg.com", base))
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
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(permit) = ctx.state.sockets.acquire(ip) else {
        return (axum::http::StatusCode::TOO_MANY_REQUESTS, "Too many open WebSockets from this address.")
            .into_response();
    };
    let header_viewer = viewer_from_headers(&ctx, &headers).await;
    let schema: AgoraSchema = ctx.schema.clone();
    let wire_protocol = ws_limit::protocol_of(&headers);
    let state = ctx.state.clone();
    let lifecycle = ctx.lifecycle.clone();
    let ping_every = std::time::Duration::from_secs(state.settings.ws_ping_seconds.max(1));
    crate::ws::configure(upgrade)
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let _permit = permit;
            let (sink, stream) = crate::ws::keepalive(socket, ping_every, &lifecycle);
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
                    data.insert(ClientAddr(Some(ip)));
                    data.insert(Arc::new(loaders::uncached(state.db.clone())));
                    Ok(data)
                }
            };
            // No `keepalive_timeout`: async-graphql counts only GraphQL messages from the client
            // (WebSocket pongs are filtered out before it), so it would drop every subscriber
            // that just listens. `ws::keepalive` detects dead connections by their pongs.
            GraphQLWebSocket::new_with_pair(sink, stream, executor, protocol).on_connection_init(on_init).serve().await;
        })
        .into_response()
}
