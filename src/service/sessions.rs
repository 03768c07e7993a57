//! The open sockets of each signed-in user (GraphQL over WebSocket, the legacy chat socket, SSE
//! subscriptions): what ends them all when the user is deactivated or deleted, and what
//! presence hears of a user's first and last socket. Below the transports, which register their
//! sockets here, and the context, which holds the one registry of the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The open sockets (GraphQL and legacy) of each signed-in user, so that all of them end when
/// the user is deactivated or deleted, whoever changed the database: [`watch_owners`] checks
/// the users held here against the database and revokes the sockets of those no longer active.
#[derive(Default)]
pub struct SocketOwners {
    next_key: AtomicU64,
    open: std::sync::Mutex<std::collections::HashMap<i64, std::collections::HashMap<u64, CancellationToken>>>,
    /// Told of each user's first socket and of their last one closing, in order (presence).
    presence: Option<tokio::sync::mpsc::UnboundedSender<crate::service::presence::Transition>>,
}

/// One socket of a user; dropping it (the connection ended) forgets it. `revoked` fires when
/// the user is no longer active.
pub struct OwnedSocket {
    owners: Arc<SocketOwners>,
    user_id: i64,
    key: u64,
    pub revoked: CancellationToken,
}

impl SocketOwners {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Like [`new`](Self::new), reporting users' first and last sockets to `presence`.
    pub fn with_presence(
        presence: tokio::sync::mpsc::UnboundedSender<crate::service::presence::Transition>,
    ) -> Arc<Self> {
        Arc::new(Self { presence: Some(presence), ..Self::default() })
    }

    /// Records a socket of `user_id`.
    pub fn register(self: &Arc<Self>, user_id: i64) -> OwnedSocket {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let revoked = CancellationToken::new();
        let mut open = self.lock();
        let sockets = open.entry(user_id).or_default();
        if sockets.is_empty()
            && let Some(presence) = &self.presence
        {
            let _ = presence.send(crate::service::presence::Transition::Online(user_id));
        }
        sockets.insert(key, revoked.clone());
        drop(open);
        OwnedSocket { owners: self.clone(), user_id, key, revoked }
    }

    /// The users that have at least one socket open here.
    pub fn users(&self) -> Vec<i64> {
        self.lock().keys().copied().collect()
    }

    /// Ends every socket of `user_id`.
    pub fn revoke(&self, user_id: i64) {
        if let Some(sockets) = self.lock().get(&user_id) {
            sockets.values().for_each(CancellationToken::cancel);
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, std::collections::HashMap<u64, CancellationToken>>>
    {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for OwnedSocket {
    fn drop(&mut self) {
        let mut open = self.owners.lock();
        if let Some(sockets) = open.get_mut(&self.user_id) {
            sockets.remove(&self.key);
            if sockets.is_empty() {
                open.remove(&self.user_id);
                if let Some(presence) = &self.owners.presence {
                    let _ = presence.send(crate::service::presence::Transition::Offline(self.user_id));
                }
            }
        }
    }
}

/// Users checked by one statement of [`watch_owners`] (SQLite allows 32,766 parameters).
const CHECK_BATCH: usize = 1000;

/// Every `every` until `shutdown`, revokes the sockets of the users held in `owners` who are no
/// longer active (deactivated, or deleted) in the database: one statement per [`CHECK_BATCH`]
/// users, whatever tool changed them and whichever process they were changed from. A failed
/// check (database unreachable) revokes nothing and is retried next time.
pub async fn watch_owners(
    db: sea_orm::DatabaseConnection,
    owners: Arc<SocketOwners>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let users = owners.users();
        for batch in users.chunks(CHECK_BATCH) {
            match crate::auth::active_users(&db, batch).await {
                Ok(active) => batch.iter().filter(|id| !active.contains(id)).for_each(|&id| {
                    tracing::info!(user_id = id, "closing the sockets of a user no longer active");
                    owners.revoke(id);
                }),
                Err(err) => tracing::warn!(error = %err, "socket owners check failed; retrying later"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_a_user_ends_each_of_their_sockets_and_no_other() {
        let owners = SocketOwners::new();
        let (a1, a2, b) = (owners.register(1), owners.register(1), owners.register(2));
        let mut users = owners.users();
        users.sort();
        assert_eq!(users, vec![1, 2]);
        owners.revoke(1);
        assert!(a1.revoked.is_cancelled() && a2.revoked.is_cancelled());
        assert!(!b.revoked.is_cancelled());
        drop((a1, a2));
        assert_eq!(owners.users(), vec![2]);
    }
}
