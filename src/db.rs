//! Database connection and migrations.
//!
//! SQLite gets WAL, `synchronous=NORMAL`, a busy timeout and foreign keys on every pooled
//! connection (sqlx does none of it by default), and writes begin IMMEDIATE (see
//! [`begin_write`]) so that a read-then-write transaction never fails at once with
//! SQLITE_BUSY; hot writes go through one [`Writer`] with group commit. PostgreSQL goes through
//! the same entities and migrations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

/// Rows a SQLite statement may run ahead of its reader: a whole page and then some.
const ROW_BUFFER: usize = 512;
/// Each SQLite connection's page cache, in KiB.
const PAGE_CACHE_KIB: u32 = 512;

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
        // sqlx pings a connection on every acquire by default (and on every release, always):
        // on SQLite each ping is a round trip to the connection's worker thread, two thread
        // switches, and sea-orm acquires per statement. Only a connection idle this long
        // (PostgreSQL's may have been dropped by the server) is tested now.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .sqlx_logging(false);
    if sqlite {
        options.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(20))
                .foreign_keys(true)
                // Rows come back from the connection's worker thread through a channel of this
                // many: at sqlx's default (50) a page of 100 stalls the worker twice, each stall
                // two more thread switches.
                .row_buffer_size(ROW_BUFFER)
                // SQLite's page cache is per connection (2 MiB by default, nine connections
                // with the writer's) and stays full once the database outgrows it: a server
                // that had stored a chat run's messages kept 18 MiB more resident after it. The
                // file's pages stay in the kernel's cache either way; a miss is one `pread`.
                .pragma("cache_size", format!("-{PAGE_CACHE_KIB}"))
        });
        options.map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|connection, _| Box::pin(plan_without_bound_values(connection)))
        });
    }
    let mut db = Database::connect(options).await?;
    report_statements(&mut db);
    Ok(db)
}

/// Turns on SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`) for a
/// new connection: plans no longer depend on the values bound to a statement.
///
/// Without it, SQLite 3.51 plans a `LIMIT ?` with the value bound at the time and marks the
/// statement to be planned again whenever that parameter is bound anew: every statement with a
/// `LIMIT` (sea-orm binds it: every `.one()`, every page) was parsed and planned again on every
/// run, its prepared copy in sqlx's cache useless (perf: `sqlite3Reprepare` under the socket
/// handshakes). The same goes for a bound `LIKE` pattern; nothing here needs the plans those
/// values would give (we run no `ANALYZE`, so there are no statistics to plan by either).
async fn plan_without_bound_values(
    connection: &mut sea_orm::sqlx::SqliteConnection,
) -> Result<(), sea_orm::sqlx::Error> {
    use libsqlite3_sys::{SQLITE_DBCONFIG_ENABLE_QPSG, SQLITE_OK, sqlite3_db_config};
    let mut handle = connection.lock_handle().await?;
    let mut enabled: std::ffi::c_int = 0;
    // SAFETY: the handle is the connection's open database, locked for us alone while this
    // runs; this option takes an int and a pointer to an int it writes the new setting to.
    let rc = unsafe {
        sqlite3_db_config(
            handle.as_raw_handle().as_ptr(),
            SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            &mut enabled,
        )
    };
    if rc != SQLITE_OK || enabled != 1 {
        return Err(sea_orm::sqlx::Error::Protocol(format!("SQLITE_DBCONFIG_ENABLE_QPSG failed (code {rc})")));
    }
    Ok(())
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

/// Runs `work` in a write transaction ([`begin_write`]) of its own and commits it; an error from
/// `work` rolls it back. For writes that must not share a transaction with others (see
/// [`Writer`] for the ones that may).
pub async fn write<T, E>(db: &DatabaseConnection, work: Work<T, E>) -> Result<T, E>
where
    E: From<DbErr>,
{
    let txn = begin_write(db).await?;
    match work(&txn).await {
        Ok(done) => {
            txn.commit().await?;
            Ok(done)
        }
        Err(err) => {
            let _ = txn.rollback().await;
            Err(err)
        }
    }
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

/// Work done inside a write transaction by [`write`] or [`Writer::write`].
pub type Work<T, E> = Box<dyn for<'a> FnOnce(&'a DatabaseTransaction) -> BoxFuture<'a, Result<T, E>> + Send>;

/// Work that may run more than once ([`Writer::write_repeatable`]): a run that was rolled back
/// is run again from the start in a new transaction, so it must own (clone) what it writes.
pub type Repeatable<T, E> = Box<dyn for<'a> Fn(&'a DatabaseTransaction) -> BoxFuture<'a, Result<T, E>> + Send + Sync>;

/// A job as the writer task runs it.
trait Job: Send {
    /// Whether it may run again after its transaction was rolled back.
    fn repeatable(&self) -> bool;
    /// Runs it in `txn` (a repeatable one again: what a run before gave is dropped); whether
    /// it succeeded.
    fn run<'a>(&'a mut self, txn: &'a DatabaseTransaction) -> BoxFuture<'a, bool>;
    /// Answers its caller, told whether the group it ran in committed.
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

enum Runs<T, E> {
    Once(Option<Work<T, E>>),
    Repeatable(Repeatable<T, E>),
}

struct Pending<T, E> {
    runs: Runs<T, E>,
    outcome: Option<Result<T, E>>,
    tell: oneshot::Sender<Result<T, E>>,
}

impl<T: Send + 'static, E: From<DbErr> + Send + 'static> Job for Pending<T, E> {
    fn repeatable(&self) -> bool {
        matches!(self.runs, Runs::Repeatable(_))
    }

    fn run<'a>(&'a mut self, txn: &'a DatabaseTransaction) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let outcome = match &mut self.runs {
                Runs::Once(work) => match work.take() {
                    Some(work) => work(txn).await,
                    // Never: only repeatable jobs run twice (see `commit_group`).
                    None => Err(E::from(DbErr::Custom("a write ran twice".to_owned()))),
                },
                Runs::Repeatable(work) => work(txn).await,
            };
            let ok = outcome.is_ok();
            self.outcome = Some(outcome);
            ok
        })
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let answer = match (self.outcome, committed) {
            (Some(Ok(_)), Err(err)) => Err(E::from(DbErr::Custom(err))),
            (Some(outcome), _) => outcome,
            (None, _) => Err(E::from(DbErr::Custom("the write did not run".to_owned()))),
        };
        let _ = self.tell.send(answer);
    }
}

/// Most jobs committed together.
const MAX_GROUP: usize = 256;
/// Jobs waiting for the writer before callers wait to queue.
const QUEUE: usize = 4096;

/// Runs write transactions.
///
/// On PostgreSQL each write is its own transaction on the pool (rows lock what must be
/// serialised, e.g. a room's sequence). On SQLite, where the database has one write lock, every
/// write of the process goes through one writer task: when a pool connection wanted the lock
/// while another held it, it slept in SQLite's busy handler (in steps up to 100 ms) instead of
/// queueing. The writer takes what has queued meanwhile as one group: one IMMEDIATE
/// transaction, each job in a savepoint of its own (a failing job undoes only itself), one
/// commit. A caller is answered after the commit: what is acknowledged is committed.
///
/// A group of repeatable jobs ([`Writer::write_repeatable`], e.g. sending a message) first
/// runs without savepoints, which cost two statements per job, each a round trip to SQLite's
/// worker thread: when every job succeeds it commits as is; when one fails the transaction is
/// rolled back and the group runs again with a savepoint per job.
///
/// A job must not call the writer itself (it would wait for its own group).
#[derive(Clone)]
pub struct Writer {
    route: Route,
}

#[derive(Clone)]
enum Route {
    Pool(DatabaseConnection),
    Queue(mpsc::Sender<Box<dyn Job>>),
}

impl Writer {
    /// For `db`; on SQLite this starts the writer task (it ends when the last clone is dropped).
    pub fn new(db: DatabaseConnection) -> Self {
        let route = match db.get_database_backend() {
            DbBackend::Sqlite => {
                let (queue, jobs) = mpsc::channel(QUEUE);
                tokio::spawn(run_writer(db, jobs));
                Route::Queue(queue)
            }
            _ => Route::Pool(db),
        };
        Writer { route }
    }

    /// Runs `work` in a write transaction and commits it; an error from `work` rolls it back.
    pub async fn write<T, E>(&self, work: Work<T, E>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbErr> + Send + 'static,
    {
        match &self.route {
            Route::Pool(db) => write(db, work).await,
            Route::Queue(queue) => queued(queue, Runs::Once(Some(work))).await,
        }
    }

    /// Like [`write`](Self::write), for work that may run again after a rollback (cheaper in a
    /// group, see [`Writer`]).
    pub async fn write_repeatable<T, E>(&self, work: Repeatable<T, E>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbErr> + Send + 'static,
    {
        match &self.route {
            Route::Pool(db) => write(db, Box::new(move |txn| work(txn))).await,
            Route::Queue(queue) => queued(queue, Runs::Repeatable(work)).await,
        }
    }
}

async fn queued<T, E>(queue: &mpsc::Sender<Box<dyn Job>>, runs: Runs<T, E>) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbErr> + Send + 'static,
{
    let (tell, told) = oneshot::channel::<Result<T, E>>();
    let stopped = || E::from(DbErr::Custom("the database writer stopped (see the log)".to_owned()));
    queue.send(Box::new(Pending { runs, outcome: None, tell })).await.map_err(|_| stopped())?;
    told.await.map_err(|_| stopped())?
}

async fn run_writer(db: DatabaseConnection, mut jobs: mpsc::Receiver<Box<dyn Job>>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while jobs.recv_many(&mut group, MAX_GROUP).await > 0 {
        if let Err(err) = commit_group(&db, std::mem::take(&mut group)).await {
            // The callers of the jobs left unanswered are told the writer failed.
            tracing::error!(error = %err, "database writer: a group of writes failed");
        }
    }
}

/// One transaction for the group and one commit: without savepoints first when every job is
/// repeatable, else (or after a failure) a savepoint per job (a lone job needs none).
async fn commit_group(db: &DatabaseConnection, mut group: Vec<Box<dyn Job>>) -> Result<(), DbErr> {
    if group.len() > 1 && group.iter().all(|job| job.repeatable()) {
        let txn = begin_write(db).await?;
        let mut all_ok = true;
        for job in &mut group {
            if !job.run(&txn).await {
                all_ok = false;
                break;
            }
        }
        if all_ok {
            finish(group, txn.commit().await);
            return Ok(());
        }
        txn.rollback().await?;
    }
    let txn = begin_write(db).await?;
    if let [job] = group.as_mut_slice() {
        if !job.run(&txn).await {
            txn.rollback().await?;
            finish(group, Ok(()));
            return Ok(());
        }
    } else {
        for job in &mut group {
            let savepoint = txn.begin().await?;
            if job.run(&savepoint).await { savepoint.commit().await? } else { savepoint.rollback().await? }
        }
    }
    finish(group, txn.commit().await);
    Ok(())
}

/// Answers every job of a group with whether it committed.
fn finish(group: Vec<Box<dyn Job>>, committed: Result<(), DbErr>) {
    let committed = committed.map_err(|err| err.to_string());
    if let Err(err) = &committed {
        tracing::error!(error = %err, jobs = group.len(), "database writer: commit failed");
    }
    for job in group {
        job.finish(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn count(db: &DatabaseConnection) -> i64 {
        let row = db.query_one_raw(sea_orm::Statement::from_string(DbBackend::Sqlite, "SELECT COUNT(*) FROM t")).await;
        row.unwrap().unwrap().try_get_by_index(0).unwrap()
    }

    #[tokio::test]
    async fn every_pooled_sqlite_connection_plans_without_bound_values() {
        use libsqlite3_sys::{SQLITE_DBCONFIG_ENABLE_QPSG, sqlite3_db_config};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display());
        let db = connect(&url, 3).await.unwrap();
        let pool = db.get_sqlite_connection_pool();
        // Three at once: the pool opens new connections for them.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.acquire().await.unwrap());
        }
        for connection in &mut held {
            let mut handle = connection.lock_handle().await.unwrap();
            let mut setting: std::ffi::c_int = -1;
            // SAFETY: the locked handle of an open connection; -1 only reads the setting.
            unsafe {
                sqlite3_db_config(handle.as_raw_handle().as_ptr(), SQLITE_DBCONFIG_ENABLE_QPSG, -1, &mut setting);
            }
            assert_eq!(setting, 1);
        }
    }

    #[tokio::test]
    async fn concurrent_writes_commit_together_and_a_failing_one_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let db = connect(&url, 4).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER NOT NULL UNIQUE)").await.unwrap();
        let writer = Writer::new(db.clone());
        let insert = |x: i64| {
            let writer = writer.clone();
            async move {
                let work: Work<i64, DbErr> = Box::new(move |txn| {
                    Box::pin(async move {
                        txn.execute_unprepared(&format!("INSERT INTO t (x) VALUES ({x})")).await?;
                        Ok(x)
                    })
                });
                writer.write(work).await
            }
        };
        // 200 at once, one of them a duplicate of another.
        let writes: Vec<_> = (0..200).map(|i| tokio::spawn(insert(if i == 199 { 0 } else { i }))).collect();
        let mut failed = 0;
        for write in writes {
            if write.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 1, "only the duplicate fails");
        assert_eq!(count(&db).await, 199, "every acknowledged write is committed");
        // A lone failing write is rolled back, and the writer goes on.
        assert!(insert(5).await.is_err());
        assert_eq!(insert(1000).await.unwrap(), 1000);
        assert_eq!(count(&db).await, 200);
    }

    #[tokio::test]
    async fn repeatable_writes_without_savepoints_still_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let db = connect(&url, 4).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER NOT NULL UNIQUE)").await.unwrap();
        let writer = Writer::new(db.clone());
        let runs = Arc::new(AtomicU64::new(0));
        let insert = |x: i64| {
            let (writer, runs) = (writer.clone(), runs.clone());
            async move {
                let work: Repeatable<i64, DbErr> = Box::new(move |txn| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    Box::pin(async move {
                        txn.execute_unprepared(&format!("INSERT INTO t (x) VALUES ({x})")).await?;
                        Ok(x)
                    })
                });
                writer.write_repeatable(work).await
            }
        };
        // All succeed: committed, each run once or more.
        let writes: Vec<_> = (0..100).map(|i| tokio::spawn(insert(i))).collect();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        assert_eq!(count(&db).await, 100);
        // A duplicate among them: the group runs again with savepoints, only it fails, and
        // nothing is written twice.
        let writes: Vec<_> = (100..200).chain([5]).map(|i| tokio::spawn(insert(i))).collect();
        let failed = futures_util::future::join_all(writes).await.into_iter().filter(|w| w.as_ref().unwrap().is_err());
        assert_eq!(failed.count(), 1, "only the duplicate fails");
        assert_eq!(count(&db).await, 200, "every acknowledged write is committed once");
        assert!(runs.load(Ordering::Relaxed) >= 201);
    }
}
