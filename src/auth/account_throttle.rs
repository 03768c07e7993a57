//! Failed sign-ins per account, so that guesses at one password from many addresses are slowed
//! down as much as guesses from one.
//!
//! The first [`AccountLimits::free_failures`] failures cost nothing; each further one makes the
//! account wait before its password is checked again: 1 s, then twice as long after each
//! failure, up to [`AccountLimits::max_backoff`]. An attempt while the account waits is refused
//! (429) without checking the password and without counting, so hammering a waiting account
//! does not lengthen its wait. A success, and a quarter of an hour without a failure, forget the
//! failures.
//!
//! The owner is not locked out by strangers: a client network (an IPv4 address, an IPv6 /64)
//! that signed in to the account successfully in the last 30 days is "known" to it and keeps
//! its own count for that account, untouched by everyone else's failures. Only an owner on a
//! network they never signed in from shares the account's wait, at most `max_backoff` at a time.
//!
//! In memory for one process; in Redis (shared by every process) when `REDIS_URL` is set. If
//! Redis cannot be reached the attempt is allowed (the per-address throttle still applies) and
//! the problem logged: an outage must not stop everyone from signing in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// How long a network that signed in stays known to the account.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// A Redis command that takes longer than this is given up (the attempt is allowed).
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug)]
pub struct AccountLimits {
    /// Failures before the account starts to wait; 0 turns the limit off.
    pub free_failures: u32,
    /// The longest wait after a failure.
    pub max_backoff: Duration,
}

impl AccountLimits {
    /// The wait after the `failures`-th failure in a row.
    pub fn backoff(&self, failures: u32) -> Option<Duration> {
        if self.free_failures == 0 || failures < self.free_failures {
            return None;
        }
        let doublings = (failures - self.free_failures).min(30);
        Some(Duration::from_secs(1u64 << doublings).min(self.max_backoff))
    }
}

pub struct AccountThrottle {
    limits: AccountLimits,
    store: Store,
}

enum Store {
    Memory(Mutex<Memory>),
    Redis { conn: ConnectionManager, prefix: String },
}

#[derive(Default)]
struct Memory {
    /// Per key: failures in a row, when the last one was, until when the key waits.
    failures: HashMap<String, (u32, Instant, Instant)>,
    /// `account|network` keys that signed in, and when.
    known: HashMap<String, Instant>,
}

impl AccountThrottle {
    /// In memory, or in Redis at `redis_url` (keys under `prefix`).
    pub fn new(limits: AccountLimits, redis_url: Option<&str>, prefix: &str) -> Self {
        let redis = redis_url.and_then(|url| {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(REDIS_TIMEOUT))
                .set_response_timeout(Some(REDIS_TIMEOUT))
                .set_number_of_retries(0);
            let conn = redis::Client::open(url).and_then(|client| client.get_connection_manager_lazy(config));
            conn.inspect_err(|err| tracing::warn!(error = %err, "sign-in limits: no Redis, counting in memory")).ok()
        });
        let store = match redis {
            Some(conn) => Store::Redis { conn, prefix: format!("{prefix}:signin") },
            None => Store::Memory(Mutex::default()),
        };
        Self { limits, store }
    }

    /// `Err(seconds)` while the account (as seen from `client`) waits after failures.
    pub async fn check(&self, account: &str, client: Option<IpAddr>) -> Result<(), u64> {
        if self.limits.free_failures == 0 {
            return Ok(());
        }
        let key = self.key(account, client).await;
        let wait = match &self.store {
            Store::Memory(memory) => {
                let memory = memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let now = Instant::now();
                memory.failures.get(&key).map_or(Duration::ZERO, |(_, _, until)| until.saturating_duration_since(now))
            }
            Store::Redis { conn, prefix } => {
                let mut cmd = redis::cmd("PTTL");
                cmd.arg(format!("{prefix}:until:{key}"));
                let millis: i64 = self.redis(conn, &cmd).await.unwrap_or(-2);
                Duration::from_millis(millis.max(0) as u64)
            }
        };
        if wait.is_zero() { Ok(()) } else { Err(wait.as_secs_f64().ceil().max(1.0) as u64) }
    }

    /// Counts a failed sign-in at `account` from `client`.
    pub async fn failed(&self, account: &str, client: Option<IpAddr>) {
        if self.limits.free_failures == 0 {
            return;
        }
        let key = self.key(account, client).await;
        match &self.store {
            Store::Memory(memory) => {
                let mut memory = memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let now = Instant::now();
                if memory.failures.len() > 10_000 {
                    memory.failures.retain(|_, (_, last, _)| now.duration_since(*last) < FORGET_AFTER);
                }
                let entry = memory.failures.entry(key).or_insert((0, now, now));
                if now.duration_since(entry.1) >= FORGET_AFTER {
                    *entry = (0, now, now);
                }
                entry.0 += 1;
                entry.1 = now;
                if let Some(wait) = self.limits.backoff(entry.0) {
                    entry.2 = now + wait;
                }
            }
            Store::Redis { conn, prefix } => {
                let count_key = format!("{prefix}:count:{key}");
                let mut pipe = redis::pipe();
                pipe.atomic().incr(&count_key, 1).expire(&count_key, FORGET_AFTER.as_secs() as i64).ignore();
                let Some((failures,)) = self.redis::<(u32,)>(conn, &pipe).await else { return };
                if let Some(wait) = self.limits.backoff(failures) {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(format!("{prefix}:until:{key}")).arg(1).arg("PX").arg(wait.as_millis() as u64);
                    let _: Option<()> = self.redis(conn, &cmd).await;
                }
            }
        }
    }

    /// A successful sign-in: the account's failures are forgotten, and `client`'s network is
    /// known to the account from now on.
    pub async fn succeeded(&self, account: &str, client: Option<IpAddr>) {
        if self.limits.free_failures == 0 {
            return;
        }
        let shared = Self::shared_key(account);
        let own = client.map(|ip| Self::network_key(account, ip));
        match &self.store {
            Store::Memory(memory) => {
                let mut memory = memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                memory.failures.remove(&shared);
                if let Some(own) = own {
                    memory.failures.remove(&own);
                    let now = Instant::now();
                    if memory.known.len() > 100_000 {
                        memory.known.retain(|_, since| now.duration_since(*since) < KNOWN_FOR);
                    }
                    memory.known.insert(own, now);
                }
            }
            Store::Redis { conn, prefix } => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for key in std::iter::once(&shared).chain(own.as_ref()) {
                    pipe.del(format!("{prefix}:count:{key}")).ignore().del(format!("{prefix}:until:{key}")).ignore();
                }
                if let Some(own) = &own {
                    pipe.set_ex(format!("{prefix}:known:{own}"), 1, KNOWN_FOR.as_secs()).ignore();
                }
                let _: Option<()> = self.redis(conn, &pipe).await;
            }
        }
    }

    /// The counter an attempt from `client` uses: the network's own when it is known to the
    /// account, else the account's shared one.
    async fn key(&self, account: &str, client: Option<IpAddr>) -> String {
        let Some(ip) = client else { return Self::shared_key(account) };
        let own = Self::network_key(account, ip);
        let known = match &self.store {
            Store::Memory(memory) => {
                let memory = memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                memory.known.get(&own).is_some_and(|since| since.elapsed() < KNOWN_FOR)
            }
            Store::Redis { conn, prefix } => {
                let mut cmd = redis::cmd("EXISTS");
                cmd.arg(format!("{prefix}:known:{own}"));
                self.redis::<u32>(conn, &cmd).await.unwrap_or(0) > 0
            }
        };
        if known { own } else { Self::shared_key(account) }
    }

    fn shared_key(account: &str) -> String {
        format!("a:{account}")
    }

    fn network_key(account: &str, ip: IpAddr) -> String {
        format!("n:{}:{account}", crate::client::network(ip))
    }

    /// Runs a command or pipeline; `None` (logged) when Redis does not answer in time.
    async fn redis<T: redis::FromRedisValue>(&self, conn: &ConnectionManager, cmd: &impl Query) -> Option<T> {
        let mut conn = conn.clone();
        match tokio::time::timeout(REDIS_TIMEOUT * 2, cmd.run(&mut conn)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "sign-in limits: Redis failed; the attempt is allowed");
                None
            }
            Err(_) => {
                tracing::warn!("sign-in limits: Redis timed out; the attempt is allowed");
                None
            }
        }
    }
}

/// A command or a pipeline, run the same way.
trait Query {
    fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut ConnectionManager,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send;
}

impl Query for redis::Cmd {
    async fn run<T: redis::FromRedisValue>(&self, conn: &mut ConnectionManager) -> redis::RedisResult<T> {
        self.query_async(conn).await
    }
}

impl Query for redis::Pipeline {
    async fn run<T: redis::FromRedisValue>(&self, conn: &mut ConnectionManager) -> redis::RedisResult<T> {
        self.query_async(conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AccountLimits {
        AccountLimits { free_failures: 3, max_backoff: Duration::from_secs(60) }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<_> = (1..=12).map(|n| limits().backoff(n).map(|d| d.as_secs())).collect();
        assert_eq!(
            waits,
            [
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60),
                Some(60),
                Some(60),
                Some(60)
            ]
        );
        assert_eq!(AccountLimits { free_failures: 0, ..limits() }.backoff(100), None);
    }

    #[tokio::test]
    async fn failures_from_anywhere_make_the_account_wait_but_not_a_known_network() {
        let throttle = AccountThrottle::new(limits(), None, "t");
        let owner: IpAddr = "198.51.100.7".parse().unwrap();
        throttle.succeeded("alice", Some(owner)).await;
        for n in 0..3 {
            let stranger: IpAddr = format!("203.0.113.{n}").parse().unwrap();
            assert_eq!(throttle.check("alice", Some(stranger)).await, Ok(()));
            throttle.failed("alice", Some(stranger)).await;
        }
        let elsewhere: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(throttle.check("alice", Some(elsewhere)).await.is_err(), "a fourth address waits too");
        assert_eq!(throttle.check("alice", Some(owner)).await, Ok(()), "the owner's network does not");
        assert_eq!(throttle.check("bob", Some(elsewhere)).await, Ok(()), "another account does not");
        throttle.succeeded("alice", Some(owner)).await;
        assert_eq!(throttle.check("alice", Some(elsewhere)).await, Ok(()), "a success forgets the failures");
    }
}
