//! Schema migrations of Agora, run on every start (`agora serve`) or alone (`agora migrate`).
//!
//! One change per statement, because SeaQuery cannot alter several things at once on SQLite.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_initial;
mod m20261201_000001_chat_features;
mod m20261201_000002_live_events;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_initial::Migration),
            Box::new(m20261201_000001_chat_features::Migration),
            Box::new(m20261201_000002_live_events::Migration),
        ]
    }
}
