//! Agora: a GraphQL-first social network and chat backend, with a compatibility layer for the
//! clients of the Django REST Framework service it replaces.
//!
//! One path for every request:
//!
//! ```text
//! legacy REST ──┐  (a table of GraphQL operations)
//! legacy WS ────┤  (messageAdded subscription + sendMessage)
//! GraphQL SSE ──┤  (POST/GET /graphql, Accept: text/event-stream)
//! GraphQL HTTP ─┼─> graphql (schema, resolvers) ─> service (rules) ─> SeaORM (SQLite | PostgreSQL)
//! GraphQL WS ───┘                                      │
//!                                   after commit: bus (in-process | Redis pub/sub)
//!                                                      │
//!                      service::live feeds (dedupe + gap fill) ─> every live socket
//! ```
//!
//! Layers point one way: `main` → [`startup`] → the transports ([`transport`], [`legacy`]) →
//! [`context`] → [`graphql`] → [`service`] → [`auth`], [`bus`], [`db`], [`domain`]. Only `main`
//! and the tests import `startup`.
//!
//! - [`startup`]: settings in, router and server out; graceful shutdown (WebSockets get 1001).
//! - [`context`]: what every handler gets (state, schema, lifecycle).
//! - [`transport`]: GraphQL over HTTP (JSON, or Server-Sent Events) and WebSocket, the shared
//!   extractors (caller, address) and WebSocket plumbing (bounded buffers, pings, 1001); the
//!   HTTP server itself (accept loop, per-phase deadlines, connections per client).
//! - [`graphql`]: the schema (the core), its limits, DataLoaders, persisted queries and trusted
//!   documents (the last three: one [`graphql::pipeline::Gate`] each, run before a document is
//!   parsed); [`graphql::pipeline`], the one schema extension, calls every concern that looks
//!   at a request (codes, metrics, gates, order, introspection) in a stated order.
//! - [`service`]: business rules over [`entity`], each function taking what it uses (a
//!   connection, the bus, the hasher; the whole state only when it needs several);
//!   [`service::live`]: exactly-once, in-order live feeds (`messageAdded`, `chatEvents` with
//!   resumable cursors); [`service::presence`]: who holds sockets, on any process;
//!   [`service::sessions`]: each user's open sockets of every kind, ended together when the
//!   user is deactivated; [`domain`]: validation, with every DRF message in
//!   [`domain::messages`].
//! - [`auth`]: Argon2id passwords, SimpleJWT-compatible tokens, throttling, the caller's
//!   [`auth::Viewer`]; [`client`]: the caller's address.
//! - [`bus`]: live chat events after commit; the database stays the record.
//! - [`error`]: the one error type, mapped once to GraphQL (`graphql::error`) and, from the
//!   GraphQL errors, once to DRF's bodies (`legacy::errors`).
//! - [`legacy`]: the Django REST endpoints as a table of GraphQL operations, DRF's bodies and
//!   errors, `/openapi.json`, the chat socket bridge; every unknown path gets DRF's 404.
//! - [`media`]: uploaded avatars, decoded within limits and stored re-encoded (pixels only).
//! - [`telemetry`]: logs (text or JSON), traces (OTLP), the span, access log line and
//!   metrics of every request; [`metrics`]: the Prometheus registry every instrumentation
//!   point calls into (one line each); `graphql::observe` times and counts operations.
//! - [`admin`]: the `agora users …` commands (over the services) and `agora healthcheck`.
//! - [`rate_limit`]: chat messages per user per second, the one rule every channel's sends pass.

pub mod admin;
pub mod auth;
pub mod bus;
pub mod client;
pub mod config;
pub mod context;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod legacy;
pub mod media;
pub mod metrics;
pub mod rate_limit;
pub mod service;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod transport;
