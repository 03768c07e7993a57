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
/// An automatic persisted query's hash is not known (yet): the client sends the document.
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";

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

/// An authentication failure as an error of the request as a whole (no field ran).
pub fn auth_server_error(err: &AuthError) -> async_graphql::ServerError {
    let error = auth_error(err);
    let mut server_error = async_graphql::ServerError::new(error.message, None);
    server_error.extensions = error.extensions;
    server_error
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
            let last = errors
                .pop()
                .unwrap_or_else(|| field_error("input", &[crate::domain::messages::INVALID_INPUT.to_owned()]));
            for extra in errors {
                ctx.add_error(ctx.set_error_path(extra.into_server_error(ctx.item.pos)));
            }
            last
        }
        AppError::Internal(cause) => {
            // The one place an internal error is logged: with its cause, and where it happened.
            let path = ctx.path_node.map(|node| node.to_string()).unwrap_or_default();
            tracing::error!(error = format!("{cause:#}"), path, "internal error");
            async_graphql::Error::new(crate::domain::messages::INTERNAL)
                .extend_with(|_, e| e.set("code", INTERNAL_SERVER_ERROR))
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

/// Gives every error a code and caps how many one response carries.
///
/// Errors async-graphql raises itself before any resolver runs carry none: a document that does
/// not parse gets `GRAPHQL_PARSE_FAILED`; one that does not validate (unknown fields, variables
/// of the wrong type, too deep or too complex, an unknown operation name) `GRAPHQL_VALIDATION_FAILED`;
/// an argument that fails to convert while a field resolves (it has a path) `BAD_USER_INPUT`.
///
/// A document can make thousands of errors (one per unused variable, say): a response keeps
/// the first `max_errors` and then one error saying how many more there were.
#[derive(Clone, Copy)]
pub struct EveryErrorHasACode {
    pub max_errors: usize,
}

/// Sets `code` on every error of `errors` that has none.
fn default_code(errors: &mut [async_graphql::ServerError], code: &str) {
    for error in errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", code);
        }
    }
}

/// An error of the request as a whole (no path) with `extensions.code`.
pub fn coded(message: impl Into<String>, code: &str) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", code);
    error
}

/// The code of an error, if it has one.
pub fn code_of(error: &async_graphql::ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code),
        _ => None,
    }
}

/// Whether these errors refused the request as a whole, before anything was executed (the
/// document, its variables, or its persisted-query hash), rather than reported failed fields.
pub fn is_request_error(errors: &[async_graphql::ServerError]) -> bool {
    !errors.is_empty()
        && errors.iter().all(|error| {
            matches!(code_of(error), Some(GRAPHQL_PARSE_FAILED | GRAPHQL_VALIDATION_FAILED | PERSISTED_QUERY_NOT_FOUND))
        })
}

/// The message async-graphql gives a document past its recursion limit: a limit, not a
/// syntax error.
const RECURSION_LIMIT: &str = "The recursion depth of the query cannot be greater than";

impl EveryErrorHasACode {
    /// A response as it leaves the schema: every error coded, at most `max_errors` of them.
    pub fn finish(&self, mut response: async_graphql::Response) -> async_graphql::Response {
        // Errors without a path were raised before execution (the operation's name, say).
        for error in &mut response.errors {
            let code = if error.path.is_empty() { GRAPHQL_VALIDATION_FAILED } else { BAD_USER_INPUT };
            default_code(std::slice::from_mut(error), code);
        }
        if response.errors.len() > self.max_errors {
            let left_out = response.errors.split_off(self.max_errors);
            let code = code_of(&left_out[0]).unwrap_or(BAD_USER_INPUT).to_owned();
            let summary =
                format!("{} more errors were left out (at most {} are listed).", left_out.len(), self.max_errors);
            response.errors.push(coded(summary, &code));
        }
        response
    }

    /// A document that did not parse (or was refused while parsing): `GRAPHQL_PARSE_FAILED`,
    /// unless it was too deep, which is a limit.
    pub fn parse_error(mut error: async_graphql::ServerError) -> async_graphql::ServerError {
        let code =
            if error.message.starts_with(RECURSION_LIMIT) { GRAPHQL_VALIDATION_FAILED } else { GRAPHQL_PARSE_FAILED };
        default_code(std::slice::from_mut(&mut error), code);
        error
    }

    /// A document that did not validate.
    pub fn validation_errors(mut errors: Vec<async_graphql::ServerError>) -> Vec<async_graphql::ServerError> {
        default_code(&mut errors, GRAPHQL_VALIDATION_FAILED);
        errors
    }

    /// Every response of a subscription, finished as a single response is.
    pub fn stream<'s>(
        &self,
        stream: futures_util::stream::BoxStream<'s, async_graphql::Response>,
    ) -> futures_util::stream::BoxStream<'s, async_graphql::Response> {
        use futures_util::StreamExt;
        let this = *self;
        stream.map(move |response| this.finish(response)).boxed()
    }
}
