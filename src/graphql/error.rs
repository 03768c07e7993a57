//! The one mapping from [`AppError`] to GraphQL errors and their `extensions.code`.

use async_graphql::{Context, ErrorExtensions};

use crate::auth::AuthError;
use crate::error::AppError;

/// Error codes of the contract.
pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
pub const FORBIDDEN: &str = "FORBIDDEN";
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
pub const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";
pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
/// The document does not parse.
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The document is not valid for the schema, or exceeds a limit.
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";

fn auth_error(err: &AuthError) -> async_graphql::Error {
    if *err == AuthError::Unavailable {
        return async_graphql::Error::new(err.to_string()).extend_with(|_, e| e.set("code", INTERNAL_SERVER_ERROR));
    }
    // An access-token failure names its problem, as SimpleJWT's `messages` do.
    let message = match err {
        AuthError::BadAccessToken(problem) => problem.message().to_owned(),
        other => other.to_string(),
    };
    async_graphql::Error::new(message).extend_with(|_, e| {
        e.set("code", UNAUTHENTICATED);
        if let Some(reason) = err.code() {
            e.set("reason", reason);
        }
    })
}

fn field_error(field: &str, messages: &[String]) -> async_graphql::Error {
    let text = format!("{field}: {}", messages.join(" "));
    let messages = messages.to_vec();
    let field = field.to_owned();
    async_graphql::Error::new(text).extend_with(move |_, e| {
        e.set("code", BAD_USER_INPUT);
        e.set("field", field.as_str());
        e.set("messages", messages.clone());
    })
}

/// Converts a service error; an invalid input with several fields gives one error per field.
pub fn to_graphql(ctx: &Context<'_>, err: AppError) -> async_graphql::Error {
    match err {
        AppError::Unauthenticated(err) => auth_error(&err),
        AppError::Forbidden => async_graphql::Error::new(err.to_string()).extend_with(|_, e| e.set("code", FORBIDDEN)),
        AppError::NotFound => async_graphql::Error::new(err.to_string()).extend_with(|_, e| e.set("code", NOT_FOUND)),
        AppError::Throttled(seconds) => async_graphql::Error::new(err.to_string()).extend_with(|_, e| {
            e.set("code", TOO_MANY_REQUESTS);
            e.set("retryAfter", seconds);
        }),
        AppError::Invalid(fields) => {
            // The resolver's own error lands after the added ones: return the last field so
            // the response lists the fields in the order they were checked.
            let mut errors: Vec<_> = fields.iter().map(|(field, messages)| field_error(field, messages)).collect();
            let last = errors.pop().unwrap_or_else(|| field_error("input", &["Invalid input.".to_owned()]));
            for extra in errors {
                ctx.add_error(ctx.set_error_path(extra.into_server_error(ctx.item.pos)));
            }
            last
        }
        AppError::Internal(_) => {
            async_graphql::Error::new("Internal server error.").extend_with(|_, e| e.set("code", INTERNAL_SERVER_ERROR))
        }
    }
}

/// `?` for resolvers: `service_call().await.gql(ctx)?`.
pub trait GqlResultExt<T> {
    fn gql(self, ctx: &Context<'_>) -> async_graphql::Result<T>;
}

impl<T, E: Into<AppError>> GqlResultExt<T> for Result<T, E> {
    fn gql(self, ctx: &Context<'_>) -> async_graphql::Result<T> {
        self.map_err(|err| to_graphql(ctx, err.into()))
    }
}

/// Gives every error a code: those async-graphql raises itself before any resolver runs (a
/// query that does not parse or validate, is too deep or too complex, or has an argument of
/// the wrong type) carry none, and they are all about the request the client sent.
pub struct EveryErrorHasACode;

impl async_graphql::extensions::ExtensionFactory for EveryErrorHasACode {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(EveryErrorHasACode)
    }
}

fn ensure_code(mut response: async_graphql::Response) -> async_graphql::Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", BAD_USER_INPUT);
        }
    }
    response
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for EveryErrorHasACode {
    async fn request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextRequest<'_>,
    ) -> async_graphql::Response {
        ensure_code(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        stream: futures_util::stream::BoxStream<'s, async_graphql::Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures_util::stream::BoxStream<'s, async_graphql::Response> {
        use futures_util::StreamExt;
        next.run(ctx, stream).map(ensure_code).boxed()
    }
}
