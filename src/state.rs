//! What every request can reach: the database, the token and password services, the event bus,
//! the media store and the settings. Built once by `startup` and shared behind an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::auth::{AccountLimits, AccountThrottle, PasswordHasher, Throttle, TokenService};
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
    /// Failed sign-ins per account (shared through Redis when configured).
    pub account_throttle: AccountThrottle,
    /// Chat messages per user per second.
    pub message_rate: crate::rate_limit::MessageRate,
    /// Who holds sockets, here or (Redis) on any process.
    pub presence: Arc<crate::service::presence::Presence>,
}

impl AppState {
    pub fn new(settings: Settings, db: DatabaseConnection, secret: &[u8], bus: Arc<dyn EventBus>) -> Self {
        let writer = crate::db::Writer::new(db.clone());
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            tokens: TokenService::new(secret, settings.access_token_lifetime, settings.refresh_token_lifetime),
            passwords: PasswordHasher::new(settings.hash_concurrency.unwrap_or(cores)),
            media: MediaStore::new(settings.media_dir()),
            auth_throttle: Throttle::new(settings.auth_rate_per_minute, Duration::from_secs(60)),
            account_throttle: AccountThrottle::new(
                AccountLimits {
                    free_failures: settings.signin_free_failures,
                    max_backoff: Duration::from_secs(settings.signin_max_backoff.max(1)),
                },
                settings.redis_url.as_deref(),
                &settings.redis_channel,
            ),
            message_rate: crate::rate_limit::MessageRate::new(settings.messages_per_second),
            presence: Arc::new(crate::service::presence::Presence::new(
                settings.redis_url.as_deref(),
                &settings.redis_channel,
                Duration::from_secs(settings.presence_ttl_seconds),
            )),
            bus,
            writer,
            db,
            settings,
        }
    }
}
