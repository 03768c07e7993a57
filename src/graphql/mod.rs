//! The GraphQL schema: the core every transport goes through.
//!
//! One `MergedObject` per domain over the services; per-request data is the caller's
//! [`Viewer`], its address (for throttling) and a fresh set of DataLoaders. Limits: the
//! document's size and shape ([`limits`]), depth, complexity and (by configuration) introspection.

pub mod accounts;
pub mod chat;
pub mod cursor;
pub mod error;
pub mod events;
pub mod history;
pub mod introspection;
pub mod limits;
pub mod loaders;
pub mod messages;
pub mod observe;
pub mod order;
pub mod people;
pub mod persisted;
pub mod pipeline;
pub mod posts;
pub mod profiles;
pub mod reads;
pub mod scalars;
pub mod trusted;

use std::sync::Arc;

use async_graphql::{Context, MergedObject, MergedSubscription, Object, Request, Schema};

use crate::auth::Viewer;
use crate::client::ClientIp;
use crate::service::page::Total;
use crate::state::AppState;

#[derive(MergedObject, Default)]
pub struct Query(accounts::AccountsQuery, posts::PostsQuery, chat::ChatQuery, reads::ReadsQuery, people::PeopleQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::AccountsMutation,
    posts::PostsMutation,
    profiles::ProfilesMutation,
    chat::ChatMutation,
    reads::ReadsMutation,
    messages::MessagesMutation,
    people::PeopleMutation,
    events::EventsMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(chat::ChatSubscription, events::EventsSubscription);

pub type AgoraSchema = Schema<Query, Mutation, Subscription>;

/// Deepest query accepted. The standard introspection query of GraphiQL and codegen tools
/// (graphql-js 16, nine levels of `ofType`) is 15 deep; fan-out is bounded by complexity.
pub const MAX_DEPTH: usize = 16;
/// Highest complexity accepted (each field counts 1; lists count their page size).
pub const MAX_COMPLEXITY: usize = 5_000;

/// `totalCount` of every connection. Counting is a statement of its own (a `COUNT(*)` over the
/// whole list), so a connection counts only when the query selects it ([`wanted_total`]):
/// `None` here means it was not selected.
pub struct TotalCount(pub Option<u64>);

#[Object]
impl TotalCount {
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        match self.0 {
            Some(count) => Ok(i64::try_from(count).unwrap_or(i64::MAX)),
            None => {
                let bug = crate::error::AppError::internal(anyhow::anyhow!("totalCount resolved but not counted"));
                Err(error::to_graphql(ctx, bug))
            }
        }
    }
}

/// A Relay connection of a service page: each item becomes a node with the cursor `cursor`
/// gives it.
pub fn connection<T, C, N>(
    page: crate::service::page::Page<T>,
    cursor: impl Fn(&T) -> C,
    node: impl Fn(T) -> N,
) -> async_graphql::connection::Connection<C, N, TotalCount>
where
    C: async_graphql::connection::CursorType + Send + Sync,
    N: async_graphql::OutputType,
{
    let mut connection = async_graphql::connection::Connection::with_additional_fields(
        page.has_previous,
        page.has_next,
        TotalCount(page.total_count),
    );
    connection.edges.extend(page.items.into_iter().map(|item| {
        let cursor = cursor(&item);
        async_graphql::connection::Edge::new(cursor, node(item))
    }));
    connection
}

/// Whether the connection field being resolved selects `totalCount` (through fragments too;
/// each occurrence of a field is resolved, and asked, on its own).
pub fn wanted_total(ctx: &Context<'_>) -> Total {
    if ctx.look_ahead().field("totalCount").exists() { Total::Count } else { Total::Skip }
}

/// Complexity of a connection field: its selection counted once per item of the requested page
/// (`first`: default 20, at most 100), so nested lists multiply and a deep fan-out is refused up front.
pub fn connection_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    use crate::service::page::{DEFAULT_PAGE, MAX_PAGE};
    // Beyond the maximum the resolver refuses the size itself (BAD_USER_INPUT on `first`).
    let page = first.map_or(DEFAULT_PAGE, |n| (n.max(1) as u64).min(MAX_PAGE));
    list_complexity(page, child_complexity)
}

/// Complexity of a list field of (about) `items` items: its selection counted once per item.
pub fn list_complexity(items: u64, child_complexity: usize) -> usize {
    (items as usize).saturating_mul(child_complexity).saturating_add(1)
}

pub fn build_schema(state: Option<Arc<AppState>>) -> AgoraSchema {
    let settings = state.as_ref().map(|state| &state.settings);
    let limits = settings.map_or_else(limits::Limits::default, limits::Limits::from_settings);
    // Trusted documents replace automatic persisted queries (which would let anyone add one).
    let documents = match settings.and_then(|settings| settings.trusted_documents.as_deref()) {
        Some(path) => pipeline::Documents::Trusted(trusted::TrustedDocuments::load(path).unwrap_or_else(|err| {
            // Startup checks the file first; should it fail later, nothing is trusted.
            tracing::error!(error = %format!("{err:#}"), "trusted documents unreadable: refusing every document");
            trusted::TrustedDocuments::default()
        })),
        None => pipeline::Documents::Persisted(Box::new(match settings {
            Some(settings) => persisted::Store::new(
                settings.apq_max_bytes,
                settings.redis_url.as_deref(),
                &settings.redis_channel,
                settings.apq_ttl_seconds,
            ),
            None => persisted::Store::new(0, None, "", 1),
        })),
    };
    let introspection = settings.is_none_or(|settings| settings.introspection);
    let mut builder = Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(pipeline::Pipeline::new(pipeline::Settings {
            errors: error::EveryErrorHasACode { max_errors: limits.max_errors },
            documents,
            limits,
            reading: limits::DocumentReading::new(),
            introspection,
        }));
    if !introspection {
        builder = builder.disable_introspection();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// Whether the operation a request selects is a query (a document that does not parse, or names
/// no operation, counts as one: execution reports the error). GET may run only queries.
pub fn selects_a_query(request: &mut Request) -> bool {
    use async_graphql::parser::types::OperationType;
    selected_operation(request).is_none_or(|ty| ty == OperationType::Query)
}

/// The type of the operation a request selects; `None` when the document does not parse or
/// names no operation of it.
pub fn selected_operation(request: &mut Request) -> Option<async_graphql::parser::types::OperationType> {
    use async_graphql::parser::types::DocumentOperations;
    let name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name.as_str()),
        (DocumentOperations::Multiple(operations), None) => {
            operations.values().next().filter(|_| operations.len() == 1)
        }
    };
    operation.map(|operation| operation.node.ty)
}

/// The schema in SDL, as committed in `schema.graphql`: what introspection shows, `@specifiedBy`
/// included (the `Upload` scalar is specified by the multipart request specification, and
/// introspection gives its `specifiedByURL`).
pub fn sdl() -> String {
    build_schema(None).sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}

/// Attaches what every resolver may need to a request: the caller, their address, DataLoaders.
pub fn prepare(request: Request, state: &AppState, viewer: Viewer, client: ClientIp) -> Request {
    request.data(viewer).data(client).data(Arc::new(loaders::of_state(state, true)))
}

pub fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<Arc<AppState>>()
}

pub fn viewer<'a>(ctx: &Context<'a>) -> &'a Viewer {
    ctx.data_opt::<Viewer>().unwrap_or(&Viewer::Anonymous)
}
