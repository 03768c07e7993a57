//! The network edge of the GraphQL API: GraphQL over HTTP (JSON, or an event stream: SSE) and over
//! WebSocket, the extractors
//! every HTTP handler shares (the caller and their address), and the WebSocket plumbing both
//! socket kinds use (this module's and the legacy chat socket's). Handlers here only translate
//! a transport into a `graphql` request; the legacy layer (`crate::legacy`) stands beside it.
//! [`http_server`] accepts the connections of both and bounds what each may hold.

pub mod extract;
pub mod graphql_http;
pub mod graphql_sse;
pub mod graphql_ws;
pub mod http_server;
pub mod socket;
pub mod ws_limit;
pub mod ws_protocol;
