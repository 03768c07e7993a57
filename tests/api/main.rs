//! One integration-test binary: every test starts the real server on an ephemeral port with a
//! fresh database (SQLite; PostgreSQL when `TEST_DATABASE_URL` is set; the Redis bus when
//! `TEST_REDIS_URL` is set) and talks to it over real HTTP and WebSocket.

mod helpers;

mod accounts;
mod chat;
mod chat_events;
mod chat_features;
mod graphql_http;
mod graphql_sse;
mod graphql_ws;
mod hostile;
mod legacy_rest;
mod legacy_ws;
mod lifecycle;
mod limits;
mod operating;
mod outages;
mod persisted;
mod posts;
mod processes;
mod profiles;
mod scale_out;
mod schema;
