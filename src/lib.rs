//! Agora: a GraphQL-first social network and chat backend, with a compatibility layer for the
//! clients of the Django REST Framework service it replaces.
//!
//! One path for every request:
//!
//! ```text
//! legacy REST  ─┐                                   ┌─> GraphQL subscriptions (both WS protocols)
//! legacy WS    ─┼─> graphql (schema) ─> service ─> SeaORM (SQLite | PostgreSQL)
//! GraphQL HTTP ─┘    resolvers          rules   └─> bus (in-process | Redis) ─┴─> legacy chat sockets
//! ```
//!
//! - [`startup`]: settings in, router and server out; graceful shutdown.
//! - [`graphql`]: the schema (the core), its transports and DataLoaders.
//! - [`service`]: business rules over [`entity`]; [`domain`]: validation with DRF's messages.
//! - [`auth`]: Argon2id passwords, SimpleJWT-compatible tokens, the caller's [`auth::Viewer`].
//! - [`bus`]: live chat events after commit; the database stays the record.
//! - [`error`]: the one error type, mapped once to GraphQL and once (from GraphQL) to DRF.
//! - [`legacy`]: the Django REST endpoints as a table of GraphQL operations, DRF's bodies and
//!   errors, `/openapi.json`; every unknown path gets DRF's 404.

pub mod auth;
pub mod bus;
pub mod client;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod legacy;
pub mod media;
pub mod service;
pub mod startup;
pub mod state;
pub mod ws;
