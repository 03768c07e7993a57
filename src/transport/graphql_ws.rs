//! GraphQL over WebSocket (`/graphql/ws`): both protocols ([`ws_protocol`]), the caller from
//! `connection_init` (`{"Authorization": "Bearer …"}` or `{"token": …}`) or else the handshake's
//! `Authorization` header, at most [`ws_limit::MAX_OPERATIONS`] operations at once.
//!
//! The protocol state machine is ours, over `Schema::execute_stream`: async-graphql's handler
//! has no `connection_init` timeout, lets a duplicate id replace a running operation, answers a
//! failed validation with `next` + `complete` and closes with codes (1011, 1002) and reasons
//! (over 123 bytes) the protocol forbids. One task per connection reads the client's messages
//! and polls every running operation's stream (a `StreamMap` by id), so a slow client holds up
//! only itself (`socket::keepalive` drops one that stopped reading).
//!
//! The connection closes (graphql-transport-ws codes, in both protocols):
//! 4408 without `connection_init` within `ws_init_timeout_seconds`; 4403 when `connection_init`
//! is refused, or when its user is deactivated or deleted (`service::sessions::watch_owners`); 4401 for a
//! `subscribe` before `connection_ack`, and when the access token it opened with expires (the
//! client reconnects with a fresh token in `connectionParams`); 4409 for a `subscribe` whose id
//! is running; 4429 for a second `connection_init`; 4400 for a message it cannot read
//! (graphql-transport-ws only: graphql-ws answers `connection_error` or `error` and goes on);
//! 1001 on shutdown. A mutation first checks that the socket's user is still active (one
//! statement): a deactivated user's mutation is refused and their sockets close with 4403.

use std::future::pending;
use std::ops::ControlFlow;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{Response as GqlResponse, ServerError};
use axum::extract::ws::Message;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_channel::mpsc;
use futures_util::stream::{self, BoxStream};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::time::Instant;
use tokio_stream::StreamMap;

use super::extract::Caller;
use super::socket;
use super::ws_limit;
use super::ws_protocol::{self, ClientMessage, Invalid, Protocol, close_code};
use crate::auth::{self, AuthError, TokenKind, Viewer};
use crate::client::ClientIp;
use crate::context::AppContext;
use crate::graphql::loaders;
use crate::service::sessions::OwnedSocket;

/// The token of a `connection_init` payload: `{"Authorization": "Bearer …"}` or `{"token": "…"}`.
fn token_from_init(payload: &serde_json::Value) -> Result<Option<String>, AuthError> {
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
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = Protocol::negotiate(&headers) else {
        let expected = "Sec-WebSocket-Protocol must be graphql-transport-ws or graphql-ws.";
        return (StatusCode::BAD_REQUEST, expected).into_response();
    };
    let Some(permit) = sockets.acquire(client.0) else {
        return (StatusCode::TOO_MANY_REQUESTS, "Too many open WebSockets from this address.").into_response();
    };
    let header_token =
        auth::bearer_token(auth::authorization_header(&headers).as_deref()).ok().flatten().map(str::to_owned);
    let header_session = Session { expires_at: header_token.and_then(|t| expiry(&ctx, &t)), viewer: header_viewer };
    let tasks = ctx.lifecycle.tasks.clone();
    socket::configure(upgrade)
        .protocols([protocol.name()])
        .on_upgrade(move |socket| {
            tasks.track_future(async move {
                let (_permit, _open) = (permit, crate::metrics::websocket_opened("graphql"));
                let every = Duration::from_secs(ctx.state.settings.ws_ping_seconds.max(1));
                let (out, incoming) = socket::keepalive(socket, every, &ctx.lifecycle);
                let connection = Connection {
                    ctx,
                    protocol,
                    client,
                    header_session: Some(header_session),
                    out,
                    session: None,
                    owner: None,
                    operations: StreamMap::new(),
                };
                connection.run(incoming, every).await
            })
        })
        .into_response()
}

/// The unix time an access token expires at (`None`: not a valid access token).
fn expiry(ctx: &AppContext, token: &str) -> Option<i64> {
    ctx.state.tokens.verify(token, TokenKind::Access).ok().map(|verified| verified.exp)
}

/// Who the connection runs operations as, and until when.
struct Session {
    viewer: Viewer,
    /// Unix time the access token it was opened with expires.
    expires_at: Option<i64>,
}

/// What happens to one running operation.
enum Event {
    Result { first: bool, response: Box<GqlResponse> },
    End,
}

/// What the connection waits for.
enum Input {
    Frame(Option<Result<Message, axum::Error>>),
    Operation(String, Event),
    InitTimeout,
    Expired,
    Revoked,
    KeepAlive,
}

/// Go on, or stop (with this close frame, or silently when the peer is gone).
type Flow = ControlFlow<Option<Message>>;

fn close(code: u16, reason: &str) -> Flow {
    ControlFlow::Break(Some(socket::close(code, reason)))
}

struct Connection {
    ctx: AppContext,
    protocol: Protocol,
    client: ClientIp,
    /// The caller of the handshake's `Authorization` header, for a `connection_init` without a
    /// token (taken by it: an open connection does not keep it).
    header_session: Option<Session>,
    out: mpsc::Sender<Message>,
    /// Set by `connection_ack`.
    session: Option<Session>,
    /// This socket among its user's, while signed in.
    owner: Option<OwnedSocket>,
    operations: StreamMap<String, BoxStream<'static, Event>>,
}

impl Connection {
    async fn run(mut self, incoming: impl Stream<Item = Result<Message, axum::Error>>, every: Duration) {
        let mut incoming = pin!(incoming);
        let init_deadline = Instant::now() + Duration::from_secs(self.ctx.state.settings.ws_init_timeout_seconds);
        // graphql-ws's `ka` messages; graphql-transport-ws has none (no timer held for it).
        let mut keep_alive =
            (self.protocol == Protocol::LegacyWs).then(|| tokio::time::interval_at(Instant::now() + every, every));
        loop {
            let initialised = self.session.is_some();
            let expires = self.session.as_ref().and_then(|s| s.expires_at).map(instant_of);
            let revoked = self.owner.as_ref().map(|owner| owner.revoked.clone());
            let input = tokio::select! {
                frame = incoming.next() => Input::Frame(frame),
                Some((id, event)) = self.operations.next(), if !self.operations.is_empty() => Input::Operation(id, event),
                _ = until(Some(init_deadline)), if !initialised => Input::InitTimeout,
                _ = until(expires) => Input::Expired,
                _ = async { match revoked { Some(token) => token.cancelled().await, None => pending().await } } => Input::Revoked,
                _ = tick(&mut keep_alive), if initialised => Input::KeepAlive,
            };
            let flow = match input {
                // Boxed: an idle connection's task does not carry the space of a receive
                // (authentication, starting an operation) between messages.
                Input::Frame(Some(Ok(Message::Text(text)))) => Box::pin(self.receive(text.as_str())).await,
                Input::Frame(Some(Ok(Message::Binary(bytes)))) => match std::str::from_utf8(&bytes) {
                    Ok(text) => Box::pin(self.receive(text)).await,
                    Err(_) => self.invalid(Invalid::unreadable("Invalid message: not UTF-8")).await,
                },
                Input::Frame(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => ControlFlow::Continue(()),
                Input::Frame(Some(Ok(Message::Close(_)) | Err(_)) | None) => ControlFlow::Break(None),
                Input::Operation(id, event) => self.deliver(id, event).await,
                Input::InitTimeout => close(close_code::INIT_TIMEOUT, "Connection initialisation timeout"),
                Input::Expired => close(close_code::UNAUTHORIZED, "Unauthorized: the access token expired"),
                Input::Revoked => close(socket::CLOSE_USER_INACTIVE, "Forbidden: the user is no longer active"),
                Input::KeepAlive => self.send(ws_protocol::keep_alive()).await,
            };
            if let ControlFlow::Break(frame) = flow {
                if let Some(frame) = frame {
                    let _ = self.out.send(frame).await;
                }
                return;
            }
        }
    }

    async fn send(&mut self, message: Message) -> Flow {
        match self.out.send(message).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(None),
        }
    }

    /// A message the server cannot read: graphql-transport-ws closes with 4400; graphql-ws
    /// (as subscriptions-transport-ws) answers a JSON object with an `error` for its id, anything
    /// else with `connection_error`, and goes on.
    async fn invalid(&mut self, invalid: Invalid) -> Flow {
        match (self.protocol, invalid.json) {
            (Protocol::TransportWs, _) => close(close_code::BAD_REQUEST, &invalid.reason),
            (Protocol::LegacyWs, true) => {
                let id = invalid.id.unwrap_or_default();
                self.send(self.protocol.error(&id, &[ServerError::new(invalid.reason, None)])).await
            }
            (Protocol::LegacyWs, false) => self.send(ws_protocol::connection_error(&invalid.reason)).await,
        }
    }

    async fn receive(&mut self, text: &str) -> Flow {
        let message = match self.protocol.parse(text) {
            Ok(message) => message,
            Err(invalid) => return self.invalid(invalid).await,
        };
        match message {
            ClientMessage::Init(payload) => self.init(payload).await,
            ClientMessage::Subscribe { id, payload } => self.subscribe(id, payload).await,
            ClientMessage::Stop { id } => {
                let running = self.operations.remove(&id).is_some();
                // subscriptions-transport-ws confirms a stop; graphql-ws sends nothing more.
                if running && self.protocol == Protocol::LegacyWs {
                    return self.send(self.protocol.complete(&id)).await;
                }
                ControlFlow::Continue(())
            }
            ClientMessage::Ping(payload) => self.send(ws_protocol::pong(payload)).await,
            ClientMessage::Pong => ControlFlow::Continue(()),
            ClientMessage::Terminate => close(axum::extract::ws::close_code::NORMAL, ""),
        }
    }

    async fn init(&mut self, payload: serde_json::Value) -> Flow {
        if self.session.is_some() {
            return match self.protocol {
                Protocol::TransportWs => close(close_code::TOO_MANY_INITS, "Too many initialisation requests"),
                Protocol::LegacyWs => ControlFlow::Continue(()),
            };
        }
        let header = self.header_session.take().unwrap_or(Session { viewer: Viewer::Anonymous, expires_at: None });
        let session = match authenticate(&self.ctx, header, &payload).await {
            Ok(session) => session,
            Err(AuthError::Unavailable) => {
                return close(axum::extract::ws::close_code::ERROR, &AuthError::Unavailable.to_string());
            }
            Err(err) => {
                let reason = format!("Forbidden: {err}");
                if self.protocol == Protocol::LegacyWs
                    && self.send(ws_protocol::connection_error(&err.to_string())).await.is_break()
                {
                    return ControlFlow::Break(None);
                }
                return close(close_code::FORBIDDEN, &reason);
            }
        };
        if let Viewer::User(user) = &session.viewer {
            self.owner = Some(self.ctx.socket_owners.register(user.id));
        }
        self.session = Some(session);
        self.send(self.protocol.ack()).await?;
        if self.protocol == Protocol::LegacyWs {
            return self.send(ws_protocol::keep_alive()).await;
        }
        ControlFlow::Continue(())
    }

    async fn subscribe(&mut self, id: String, payload: serde_json::Map<String, serde_json::Value>) -> Flow {
        let Some(viewer) = self.session.as_ref().map(|session| session.viewer.clone()) else {
            return match self.protocol {
                Protocol::TransportWs => close(close_code::UNAUTHORIZED, "Unauthorized"),
                Protocol::LegacyWs => {
                    let error = ServerError::new("Send connection_init first.", None);
                    self.send(self.protocol.error(&id, &[error])).await
                }
            };
        };
        if self.operations.contains_key(&id) {
            match self.protocol {
                Protocol::TransportWs => {
                    return close(close_code::SUBSCRIBER_EXISTS, &format!("Subscriber for {id} already exists"));
                }
                // subscriptions-transport-ws replaces the running operation.
                Protocol::LegacyWs => drop(self.operations.remove(&id)),
            }
        }
        if self.operations.len() >= ws_limit::MAX_OPERATIONS {
            return self.send(self.protocol.error(&id, &[ws_limit::too_many()])).await;
        }
        let mut request = match ws_protocol::request_of(payload) {
            Ok(request) => request,
            Err(invalid) => return self.invalid(Invalid { json: true, id: Some(id), ..invalid }).await,
        };
        let writer = match &viewer {
            Viewer::User(user) if self.mutates(&mut request) => Some(user.id),
            _ => None,
        };
        // An operation may live for hours: its loaders batch but do not cache.
        let request = request.data(viewer).data(self.client).data(Arc::new(loaders::of_state(&self.ctx.state, false)));
        let schema = self.ctx.schema.clone();
        let run = move || {
            schema
                .execute_stream(request)
                .enumerate()
                .map(|(n, response)| Event::Result { first: n == 0, response: Box::new(response) })
                .chain(stream::once(async { Event::End }))
                .boxed()
        };
        let events = match writer {
            None => run(),
            // The check is part of the operation, polled with the others: awaited here, it would
            // leave this connection's feeds unpolled, and a feed paused mid-read holds a pooled
            // connection (enough sockets doing both at once would hold the whole pool).
            Some(user_id) => {
                let (db, owners) = (self.ctx.state.db.clone(), self.ctx.socket_owners.clone());
                stream::once(async move {
                    match still_active(&db, &owners, user_id).await {
                        None => run(),
                        Some(response) => stream::iter([Event::Result { first: false, response }, Event::End]).boxed(),
                    }
                })
                .flatten()
                .boxed()
            }
        };
        self.operations.insert(id, events);
        ControlFlow::Continue(())
    }

    /// Whether `request` runs a mutation (a document over the limits is left to the schema,
    /// which refuses it without parsing it).
    fn mutates(&self, request: &mut async_graphql::Request) -> bool {
        let limits = crate::graphql::limits::Limits::from_settings(&self.ctx.state.settings);
        crate::graphql::limits::prescan(&request.query, &limits).is_ok()
            && crate::graphql::selected_operation(request) == Some(OperationType::Mutation)
    }

    async fn deliver(&mut self, id: String, event: Event) -> Flow {
        match event {
            Event::Result { first: true, response } if ws_protocol::is_request_error(&response) => {
                // `error` is the operation's last message.
                self.operations.remove(&id);
                self.send(self.protocol.error(&id, &response.errors)).await
            }
            Event::Result { response, .. } => self.send(self.protocol.result(&id, &response)).await,
            Event::End => {
                self.operations.remove(&id);
                self.send(self.protocol.complete(&id)).await
            }
        }
    }
}

/// The one check that a socket's user may still write: the socket was authenticated when it
/// opened and the watcher (`service::sessions::watch_owners`) closes it within seconds of a
/// deactivation, so every mutation sent over it is preceded by one statement asking whether its
/// user is still active. If not (`Some`: the operation's one result), the operation gets
/// `UNAUTHENTICATED` (as `sendMessage` would) and every socket of the user on this process
/// closes with 4403 at once.
async fn still_active(
    db: &sea_orm::DatabaseConnection,
    owners: &crate::service::sessions::SocketOwners,
    user_id: i64,
) -> Option<Box<GqlResponse>> {
    let refused = match auth::active_users(db, &[user_id]).await {
        Ok(active) if active.contains(&user_id) => return None,
        Ok(_) => AuthError::UserInactive,
        Err(err) => {
            tracing::error!(error = %err, "active user check failed");
            AuthError::Unavailable
        }
    };
    if refused == AuthError::UserInactive {
        owners.revoke(user_id);
    }
    Some(Box::new(GqlResponse::from_errors(vec![crate::graphql::error::auth_server_error(&refused)])))
}

/// The session a `connection_init` payload opens: its token's user, else the handshake's caller.
async fn authenticate(ctx: &AppContext, header: Session, payload: &serde_json::Value) -> Result<Session, AuthError> {
    let Some(token) = token_from_init(payload)? else { return Ok(header) };
    let user = auth::authenticate(&ctx.state.db, &ctx.state.tokens, Some(&token)).await?;
    Ok(Session { viewer: Viewer::from_result(Ok(user)), expires_at: expiry(ctx, &token) })
}

/// The next tick of `interval`; never without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => drop(interval.tick().await),
        None => pending().await,
    }
}

/// Completes at `deadline`; never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => pending().await,
    }
}

/// The instant of a unix time (now, if it has passed).
fn instant_of(unix: i64) -> Instant {
    let left = unix.saturating_sub(chrono::Utc::now().timestamp());
    Instant::now() + Duration::from_secs(left.max(0) as u64)
}
