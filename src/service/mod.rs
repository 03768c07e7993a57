//! The business rules, over SeaORM: one module per domain. Resolvers call these and nothing
//! else writes to the database, so every transport gets the same rules.

pub mod accounts;
pub mod chat;
pub mod live;
pub mod page;
pub mod posts;
pub mod profiles;
