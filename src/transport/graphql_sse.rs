//! GraphQL over Server-Sent Events (`/graphql` with `Accept: text/event-stream`), the
//! `graphql-sse` protocol's "distinct connections mode": one HTTP request per operation, its
//! results streamed back as events, for web clients behind proxies that break WebSockets.
//!
//! The request is read as any GraphQL-over-HTTP request (`graphql_http::read_prepared`: a JSON or
//! multipart POST, or GET, where queries and subscriptions may run but mutations may not), with
//! the same `Authorization` header and the same document limits. What the transport refuses
//! before there is a GraphQL request (a body that is not JSON, too large, a mutation over GET…)
//! is answered as POST answers it, a JSON body with its status. Everything after that is a
//! `200 text/event-stream`: each result an `event: next` whose `data` is the GraphQL response
//! (a document that does not parse or validate included, as the protocol asks: a 400 would only
//! make `EventSource` fail without saying why), then `event: complete`. A comment (`:`) goes out
//! on a quiet stream every `ws_ping_seconds`, so proxies keep it open.
//!
//! The stream ends (the operation with it) when the client goes away; a subscription's stream
//! also ends, without `complete` (the client reconnects), at shutdown, when the access token it
//! was opened with expires, and when its user is deactivated or deleted.

use std::convert::Infallible;
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream;
use tokio::time::Instant;

use super::graphql_http::{self, GetRuns, ResponseType};
use crate::auth::{self, TokenKind, Viewer};
use crate::client::ClientIp;
use crate::context::AppContext;
use crate::graphql::{self, loaders};

const EVENT_STREAM: &str = "text/event-stream";

/// Whether the client asks for an event stream: `text/event-stream` in `Accept`, preferred to
/// (a higher `q`, or listed before at the same `q`) every JSON type it also accepts.
pub fn wanted(headers: &HeaderMap) -> bool {
    let mut stream: Option<(f32, usize)> = None;
    let mut json: Option<(f32, usize)> = None;
    for (position, (media, q)) in graphql_http::accepted(headers).enumerate() {
        let best = match media.as_str() {
            EVENT_STREAM => &mut stream,
            "application/json" | "application/graphql-response+json" | "application/*" | "*/*" => &mut json,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
            *best = Some((q, position));
        }
    }
    stream.is_some_and(|(q, at)| json.is_none_or(|(json_q, json_at)| q > json_q || (q == json_q && at < json_at)))
}

/// Answers a GraphQL request with an event stream.
pub async fn serve(ctx: AppContext, client: ClientIp, viewer: Viewer, request: axum::extract::Request) -> Response {
    let headers = request.headers().clone();
    let user_id = match &viewer {
        Viewer::User(user) => Some(user.id),
        _ => None,
    };
    let runs = GetRuns::QueriesAndSubscriptions;
    let response_type = ResponseType::negotiate(&headers);
    let mut request = match graphql_http::read_prepared(&ctx, request, runs, response_type, viewer, client).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let subscription = graphql::selected_operation(&mut request) == Some(OperationType::Subscription);
    // What may end the stream early: shutdown, and for a subscription (which may run for
    // hours) the token's expiry and the user's deactivation.
    let shutdown = ctx.lifecycle.shutdown.clone();
    let (expires, owner) = if subscription {
        // A subscription's DataLoaders must not cache: they would serve stale rows for hours.
        request = request.data(Arc::new(loaders::of_state(&ctx.state, false)));
        (token_expiry(&ctx, &headers), user_id.map(|id| ctx.socket_owners.register(id)))
    } else {
        (None, None)
    };
    let revoked = owner.as_ref().map(|owner| owner.revoked.clone());
    let ends = async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = until(expires) => {}
            _ = async { match revoked { Some(revoked) => revoked.cancelled().await, None => pending().await } } => {}
        }
    };
    let results = ctx.schema.execute_stream(request).map(move |response| {
        // The stream holds the user's place among the open sockets while it runs.
        let _owner = &owner;
        Ok::<_, Infallible>(Event::default().event("next").data(graphql_http::body(&response).to_string()))
    });
    let complete = stream::once(async { Ok(Event::default().event("complete").data("")) });
    let events = results.chain(complete).take_until(ends);
    let every = Duration::from_secs(ctx.state.settings.ws_ping_seconds.max(1));
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(every)).into_response();
    // nginx buffers responses unless told not to, which would hold every event back.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// When the access token of the request's `Authorization` header expires, if it has one.
fn token_expiry(ctx: &AppContext, headers: &HeaderMap) -> Option<Instant> {
    let header = auth::authorization_header(headers);
    let token = auth::bearer_token(header.as_deref()).ok().flatten()?;
    let exp = ctx.state.tokens.verify(token, TokenKind::Access).ok()?.exp;
    let left = exp.saturating_sub(chrono::Utc::now().timestamp());
    Some(Instant::now() + Duration::from_secs(left.max(0) as u64))
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::ACCEPT;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn an_event_stream_is_served_when_preferred() {
        assert!(wanted(&accept("text/event-stream")));
        assert!(wanted(&accept("text/event-stream, application/json")));
        assert!(wanted(&accept("application/json;q=0.5, text/event-stream")));
        assert!(!wanted(&accept("application/json, text/event-stream")));
        assert!(!wanted(&accept("text/event-stream;q=0, application/json")));
        assert!(!wanted(&accept("*/*")));
        assert!(!wanted(&HeaderMap::new()));
    }
}
