//! The one shape of the schema extensions that see a request before its document is parsed
//! (persisted queries, trusted documents, document limits): each may refuse the request or put
//! a stored document in its place, and otherwise lets it through unchanged.

use std::future::Future;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::{Request, ServerResult};

/// A check (or rewrite) of every request before its document is parsed.
pub trait Gate: Send + Sync + 'static {
    fn pass(&self, request: Request) -> impl Future<Output = ServerResult<Request>> + Send;
}

/// The schema extension that runs a [`Gate`] in async-graphql's `prepare_request` hook, which
/// `execute` and `execute_stream` (every transport, the legacy layer included) pass through.
pub struct Gated<G>(pub Arc<G>);

impl<G: Gate> ExtensionFactory for Gated<G> {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Gated(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl<G: Gate> Extension for Gated<G> {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = self.0.pass(request).await?;
        next.run(ctx, request).await
    }
}
