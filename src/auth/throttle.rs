//! A fixed-window rate limit per key (the client's address), for the open operations that an
//! attacker would hammer: signing in and registering.
//!
//! In memory, per process: behind a load balancer each process counts its own share, which is
//! enough to stop password guessing at scale without a round trip to Redis per attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    limit: u32,
    window: Duration,
    counters: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    /// `limit` attempts per `window` per address; a limit of 0 disables throttling.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, counters: Mutex::new(HashMap::new()) }
    }

    /// Counts one attempt; `Err(seconds)` tells how long until the next one is allowed.
    pub fn check(&self, key: Option<IpAddr>) -> Result<(), u64> {
        let Some(key) = key.filter(|_| self.limit > 0) else { return Ok(()) };
        let now = Instant::now();
        let mut counters = self.counters.lock().expect("throttle lock");
        if counters.len() > 100_000 {
            counters.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let (start, count) = counters.entry(key).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= self.limit {
            let wait = self.window.saturating_sub(now.duration_since(*start));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(throttle.check(Some(a)).is_ok());
        assert!(throttle.check(Some(a)).is_ok());
        let wait = throttle.check(Some(a)).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(throttle.check(Some(b)).is_ok());
        assert!(throttle.check(None).is_ok());
    }
}
