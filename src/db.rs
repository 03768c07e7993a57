//! Database connection and migrations.
//!
//! SQLite gets WAL, `synchronous=NORMAL`, a busy timeout and foreign keys on every pooled
//! connection (sqlx does none of it by default), and writes begin IMMEDIATE (see
//! [`begin_write`]) so that a read-then-write transaction never fails at once with
//! SQLITE_BUSY. PostgreSQL goes through the same entities and migrations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

pub async fn connect(url: &str, pool: u32) -> Result<DatabaseConnection, DbErr> {
    let sqlite = url.starts_with("sqlite:");
    if sqlite
        && let Some(path) = sqlite_path(url)
        && let Some(parent) = std::path::Path::new(&path).parent()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(if sqlite { pool.clamp(1, 8) } else { pool })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    if sqlite {
        options.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(20))
                .foreign_keys(true)
        });
    }
    let mut db = Database::connect(options).await?;
    report_statements(&mut db);
    Ok(db)
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.to_owned())
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// A write transaction: IMMEDIATE on SQLite (takes the write lock up front), the default on
/// PostgreSQL.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let sqlite_transaction_mode =
        (db.get_database_backend() == DbBackend::Sqlite).then_some(SqliteTransactionMode::Immediate);
    db.begin_with_options(TransactionOptions {
        isolation_level: None,
        access_mode: Some(AccessMode::ReadWrite).filter(|_| sqlite_transaction_mode.is_none()),
        sqlite_transaction_mode,
    })
    .await
}

/// Every statement sent through `db` (clones made afterwards included) reports its duration to
/// the metrics. Installed by [`connect`].
fn report_statements(db: &mut DatabaseConnection) {
    db.set_metric_callback(|info| crate::metrics::db_statement(info.elapsed));
}

/// Like [`report_statements`], and also counts every statement in the returned counter. Only
/// tests install it (through `startup::Application::build_with`): they prove with it that
/// DataLoaders keep a query's statements constant whatever the page size.
pub fn count_statements(db: &mut DatabaseConnection) -> Arc<AtomicU64> {
    let counter = Arc::new(AtomicU64::new(0));
    let seen = counter.clone();
    db.set_metric_callback(move |info| {
        seen.fetch_add(1, Ordering::Relaxed);
        crate::metrics::db_statement(info.elapsed);
    });
    counter
}

/// Whether a database error is a unique-constraint violation (a lost race for a name).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Reachability, for `/readyz`.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}
