//! The schema's one extension: what every request meets on its way through async-graphql, in
//! the order written here. Each concern keeps its rule in its own module and is called from
//! one hook each: error codes and the cap on errors ([`super::error`]), metrics and spans
//! ([`super::observe`]), persisted queries or trusted documents ([`super::persisted`],
//! [`super::trusted`]), the readers' share of the workers and the document limits
//! ([`super::limits`]), the response order ([`super::order`]) and introspection
//! ([`super::introspection`]).
//!
//! One extension rather than one per concern: async-graphql runs the `resolve` hook of every
//! registered extension around every field and every list item, each a boxed future, whether or
//! not the extension overrides it. With seven extensions that chain cost about a tenth of the
//! server's CPU on a 200-post legacy list (perf, issue 10); with one it is a single step.

use std::future::Future;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest, NextRequest,
    NextResolve, NextSubscribe, NextValidation, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Value, Variables};
use futures_util::stream::BoxStream;

use super::error::EveryErrorHasACode;
use super::introspection;
use super::limits::{DocumentReading, Limits, Turn};
use super::observe::Observe;
use super::order::SelectionOrder;
use super::persisted::Store;
use super::trusted::TrustedDocuments;

/// A check (or rewrite) of every request before its document is parsed: it may refuse the
/// request or put a stored document in its place, and otherwise lets it through unchanged.
pub trait Gate: Send + Sync + 'static {
    fn pass(&self, request: Request) -> impl Future<Output = ServerResult<Request>> + Send;
}

/// Where documents may come from besides the request itself.
pub enum Documents {
    /// Automatic persisted queries: any document, or the hash of one sent before.
    Persisted(Box<Store>),
    /// Only the documents of the trusted-documents manifest.
    Trusted(TrustedDocuments),
}

/// The schema's extension: what holds for every request.
pub struct Pipeline(Arc<Settings>);

pub struct Settings {
    pub errors: EveryErrorHasACode,
    pub documents: Documents,
    pub limits: Limits,
    pub reading: DocumentReading,
    /// Whether introspection is answered (otherwise refused with FORBIDDEN).
    pub introspection: bool,
}

impl Pipeline {
    pub fn new(settings: Settings) -> Self {
        Self(Arc::new(settings))
    }
}

impl ExtensionFactory for Pipeline {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Run {
            turn: self.0.reading.turn(),
            settings: self.0.clone(),
            observe: Observe::default(),
            order: SelectionOrder::default(),
        })
    }
}

/// One request on its way through.
struct Run {
    settings: Arc<Settings>,
    observe: Observe,
    order: SelectionOrder,
    turn: Turn,
}

#[async_trait::async_trait]
impl Extension for Run {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = self.observe.request(next.run(ctx)).await;
        self.settings.errors.finish(response)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let ordered = self.order.stream(next.run(ctx, stream));
        self.settings.errors.stream(self.observe.watch(ordered))
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.observe.prepare(&request);
        // The stored document (which may wait for Redis) is looked up before the turn to read.
        let request = match &self.settings.documents {
            Documents::Persisted(store) => store.pass(request).await?,
            Documents::Trusted(trusted) => trusted.pass(request).await?,
        };
        self.turn.take().await;
        let request = self.settings.limits.pass(request).await?;
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let parsed = next.run(ctx, query, variables).await.and_then(|document| {
            if !self.settings.introspection {
                introspection::refuse_introspection(&document)?;
            }
            Ok(document)
        });
        let document = parsed.map_err(EveryErrorHasACode::parse_error)?;
        self.order.keep(&document, variables);
        self.observe.parsed(&document);
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        self.turn.give_back();
        result.map_err(EveryErrorHasACode::validation_errors)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        self.observe
            .execute(async {
                let mut response = next.run(ctx, operation_name).await;
                self.order.apply(operation_name, &mut response);
                response
            })
            .await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if introspection::is_schema_description(&info) {
            return Ok(Some(Value::Null));
        }
        next.run(ctx, info).await
    }
}
