//! What every request can reach: the database, the token and password services, the event bus,
//! the media store and the settings. Built once by `startup` and shared behind an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::auth::{PasswordHasher, Throttle, TokenService};
use crate::bus::EventBus;
use crate::config::Settings;
use crate::media::MediaStore;

pub struct AppState {
    pub settings: Settings,
    pub db: DatabaseConnection,
    pub tokens: TokenService,
    pub passwords: PasswordHasher,
    pub bus: Arc<dyn EventBus>,
    pub media: MediaStore,
    /// Sign-in and registration attempts per client address.
    pub auth_throttle: Throttle,
}

impl AppState {
    pub fn new(settings: Settings, db: DatabaseConnection, secret: &[u8], bus: Arc<dyn EventBus>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            tokens: TokenService::new(secret, settings.access_token_lifetime, settings.refresh_token_lifetime),
            passwords: PasswordHasher::new(settings.hash_concurrency.unwrap_or(cores)),
            media: MediaStore::new(settings.media_dir()),
            auth_throttle: Throttle::new(settings.auth_rate_per_minute, Duration::from_secs(60)),
            bus,
            db,
            settings,
        }
    }
}
