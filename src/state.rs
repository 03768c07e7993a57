//! What every request can reach: the database, the token and password services, the event bus,
//! the media store and the settings. Built once by `startup` and shared behind an `Arc`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::auth::{PasswordHasher, Throttle, TokenService};
use crate::bus::EventBus;
use crate::config::Settings;
use crate::media::MediaStore;

pub struct AppState {
    pub settings: Settings,
    pub db: DatabaseConnection,
    /// Write transactions (on SQLite: one writer, group commit).
    pub writer: crate::db::Writer,
    pub tokens: TokenService,
    pub passwords: PasswordHasher,
    pub bus: Arc<dyn EventBus>,
    pub media: MediaStore,
    /// Sign-in and registration attempts per client address.
    pub auth_throttle: Throttle,
    /// Open WebSockets per client address.
    pub sockets: Arc<crate::transport::socket::SocketLimiter>,
    /// SQL statements run since start (every statement of `db` and its clones).
    pub db_statements: Arc<AtomicU64>,
}

impl AppState {
    pub fn new(settings: Settings, mut db: DatabaseConnection, secret: &[u8], bus: Arc<dyn EventBus>) -> Self {
        let db_statements = crate::db::count_statements(&mut db);
        let writer = crate::db::Writer::new(db.clone());
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            tokens: TokenService::new(secret, settings.access_token_lifetime, settings.refresh_token_lifetime),
            passwords: PasswordHasher::new(settings.hash_concurrency.unwrap_or(cores)),
            media: MediaStore::new(settings.media_dir()),
            auth_throttle: Throttle::new(settings.auth_rate_per_minute, Duration::from_secs(60)),
            sockets: crate::transport::socket::SocketLimiter::new(settings.ws_max_per_client),
            bus,
            writer,
            db_statements,
            db,
            settings,
        }
    }
}
