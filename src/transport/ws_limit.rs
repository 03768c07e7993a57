//! A cap on the operations one GraphQL WebSocket runs at once. Each live `messageAdded` holds a
//! bus receiver and up to a chunk of replayed messages, so without a cap one socket could hold
//! memory without bound.
//!
//! The connection (`graphql_ws`) holds its running operations in one map and checks its size
//! before starting another: an operation stops counting however it ends (the client stops it,
//! the server completes it or it fails, the socket closes). An operation over the cap alone is
//! refused, with an `error` message for its id carrying [`too_many`]: the connection and its
//! other operations go on (closing with 4429 would end them all, and graphql-ws clients treat
//! that code as fatal and would not reconnect).

use async_graphql::{ErrorExtensionValues, ServerError};

use crate::graphql::error::TOO_MANY_REQUESTS;

/// Most operations (subscriptions, and queries or mutations sent over the socket) that one
/// GraphQL WebSocket connection runs at once. A client needs about one per room it shows;
/// twenty `messageAdded` replays hold at most twenty chunks of messages.
pub const MAX_OPERATIONS: usize = 20;

/// The message of a refused operation.
pub fn too_many_message() -> String {
    format!("Too many operations on this connection: at most {MAX_OPERATIONS} at once. Complete one first.")
}

/// The error of an operation refused by the cap (`extensions.code` `TOO_MANY_REQUESTS`).
pub fn too_many() -> ServerError {
    let mut error = ServerError::new(too_many_message(), None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", TOO_MANY_REQUESTS);
    error.extensions = Some(extensions);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_why_with_a_code() {
        let error = serde_json::to_value(too_many()).unwrap();
        assert_eq!(error["message"], too_many_message());
        assert_eq!(error["extensions"]["code"], TOO_MANY_REQUESTS);
    }
}
