//! Metrics and spans of every GraphQL operation, whatever the transport (HTTP, GraphQL
//! WebSocket, the legacy REST table and chat socket all run operations through the schema).
//!
//! Each operation gets a span `graphql.operation` with its type and (sanitised) name, which are
//! also recorded on the enclosing HTTP request span; queries and mutations are counted and
//! timed when they finish, subscriptions are counted in `agora_subscriptions{kind}` while they
//! run and in `graphql_operations_total` when they end. An operation refused before execution
//! (syntax, validation, limits) counts with outcome `error`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, Response};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use tracing::Instrument;

use crate::metrics;

/// Request data naming the transport of an operation for `agora_subscriptions{kind}`
/// (`graphql` when absent).
#[derive(Clone, Copy)]
pub struct Transport(pub &'static str);

/// What is learnt about one operation as it goes through the hooks.
#[derive(Default)]
struct Operation {
    name: Option<String>,
    kind: Option<&'static str>,
    transport: Option<&'static str>,
    counted: bool,
}

/// One operation's observation.
#[derive(Default)]
pub struct Observe {
    operation: Arc<Mutex<Operation>>,
}

fn kind_of(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

impl Operation {
    /// The type and label name, once known (`unknown` before the document parsed).
    fn labels(&self) -> (&'static str, String) {
        (self.kind.unwrap_or("unknown"), metrics::operation_label(self.name.as_deref()))
    }
}

fn lock(operation: &Mutex<Operation>) -> std::sync::MutexGuard<'_, Operation> {
    operation.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn operation_span() -> tracing::Span {
    tracing::info_span!(
        "graphql.operation",
        otel.name = tracing::field::Empty,
        graphql.operation.type = tracing::field::Empty,
        graphql.operation.name = tracing::field::Empty,
    )
}

/// Puts the type and name on `span` and on the enclosing request's span.
fn record(span: &tracing::Span, kind: &str, name: &str) {
    span.record("otel.name", format!("{kind} {name}"));
    for span in [span, &tracing::Span::current()] {
        span.record("graphql.operation.type", kind);
        span.record("graphql.operation.name", name);
    }
}

/// The hooks, in the order a request meets them ([`super::pipeline`] calls them).
impl Observe {
    /// Around the whole request: an operation refused before it ran is counted here.
    pub async fn request(&self, run: impl Future<Output = Response>) -> Response {
        let started = Instant::now();
        let response = run.await;
        let mut operation = lock(&self.operation);
        if !operation.counted {
            operation.counted = true;
            let (kind, name) = operation.labels();
            metrics::graphql_operation(kind, &name, false, Some(started.elapsed()));
        }
        response
    }

    /// Before anything is read: the operation's name and transport, as the request gives them.
    pub fn prepare(&self, request: &Request) {
        let mut operation = lock(&self.operation);
        operation.name = request.operation_name.clone();
        operation.transport = request
            .data
            .get(&std::any::TypeId::of::<Transport>())
            .and_then(|data| data.downcast_ref::<Transport>())
            .map(|transport| transport.0);
    }

    /// Once parsed: the operation's type (and its name, when only the document names it).
    pub fn parsed(&self, document: &ExecutableDocument) {
        let mut operation = lock(&self.operation);
        let selected = match &operation.name {
            Some(name) => document.operations.iter().find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
            None => document.operations.iter().next(),
        };
        operation.kind = selected.map(|(_, op)| kind_of(op.node.ty));
        // Clients often name the operation in the document only.
        if operation.name.is_none() {
            operation.name = selected.and_then(|(name, _)| name).map(|name| name.to_string());
        }
    }

    /// Around the execution of a query or mutation (or one event of a subscription): its span,
    /// count and time.
    pub async fn execute(&self, run: impl Future<Output = Response>) -> Response {
        let (kind, name) = lock(&self.operation).labels();
        if kind == "subscription" {
            // One event of a running subscription (polled inside its span): the subscription
            // itself is counted when it ends.
            return run.await;
        }
        let span = operation_span();
        record(&span, kind, &name);
        let started = Instant::now();
        let response = run.instrument(span).await;
        lock(&self.operation).counted = true;
        metrics::graphql_operation(kind, &name, response.errors.is_empty(), Some(started.elapsed()));
        response
    }

    /// A stream of responses (any operation over a WebSocket), counted while it runs.
    pub fn watch<'s>(&self, stream: BoxStream<'s, Response>) -> BoxStream<'s, Response> {
        Watched {
            inner: stream,
            operation: self.operation.clone(),
            span: operation_span(),
            running: None,
            failed: false,
        }
        .boxed()
    }
}

/// A stream of responses over a WebSocket (any operation type): a subscription is counted
/// running from its first poll (when its document has been parsed) until it is dropped.
struct Watched<'s> {
    inner: BoxStream<'s, Response>,
    operation: Arc<Mutex<Operation>>,
    span: tracing::Span,
    running: Option<metrics::InFlight>,
    failed: bool,
}

impl Stream for Watched<'_> {
    type Item = Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        let this = &mut *self;
        let polled = this.span.in_scope(|| this.inner.poll_next_unpin(cx));
        if this.running.is_none() {
            let operation = lock(&this.operation);
            if operation.kind == Some("subscription") {
                let (kind, name) = operation.labels();
                this.span.in_scope(|| record(&this.span, kind, &name));
                this.running = Some(metrics::subscription_started(operation.transport.unwrap_or("graphql")));
            }
        }
        if let Poll::Ready(Some(response)) = &polled {
            this.failed |= !response.errors.is_empty();
        }
        polled
    }
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        let mut operation = lock(&self.operation);
        if operation.counted {
            return;
        }
        operation.counted = true;
        let (kind, name) = operation.labels();
        // A subscription's lifetime is no latency: it is counted, not timed.
        let ok = kind == "subscription" && !self.failed;
        metrics::graphql_operation(kind, &name, ok, None);
    }
}
