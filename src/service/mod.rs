//! The business rules, over SeaORM: one module per domain. Resolvers call these and nothing
//! else writes to the database, so every transport gets the same rules.
//!
//! A function takes what it uses: a connection (`&impl ConnectionTrait`, so it also runs inside
//! a transaction; the pool itself only where it begins a transaction of its own), the bus, the
//! hasher or the token service; `&AppState` only when it needs several of them together (the
//! writer, throttles, the bus).

pub mod accounts;
pub mod blocks;
pub mod chat;
pub mod edits;
pub mod events;
pub mod friends;
pub mod live;
pub mod page;
pub mod posts;
pub mod presence;
pub mod profiles;
pub mod reactions;
pub mod reads;
pub mod sessions;
pub mod typing;
