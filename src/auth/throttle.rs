//! A fixed-window rate limit per key (the client's address), for the open operations that an
//! attacker would hammer: signing in and registering.
//!
//! IPv6 clients are counted per /64 (one subscriber's whole network), so rotating addresses
//! inside it does not get around the limit. In memory, per process: behind a load balancer each process counts its own share, which is
//! enough to stop password guessing at scale without a round trip to Redis per attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    limit: u32,
    window: Duration,
    counters: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Map size at which finished windows are swept out (doubles with the live entries).
    next_sweep: std::sync::atomic::AtomicUsize,
}

impl Throttle {
    /// `limit` attempts per `window` per address; a limit of 0 disables throttling.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, counters: Mutex::new(HashMap::new()), next_sweep: 1_000.into() }
    }

    /// Counts one attempt; `Err(seconds)` tells how long until the next one is allowed.
    pub fn check(&self, key: Option<IpAddr>) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    /// [`check`](Self::check) at `now` (tests move the clock).
    fn check_at(&self, key: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let Some(key) = key.filter(|_| self.limit > 0).map(crate::client::network) else { return Ok(()) };
        let mut counters = self.counters.lock().expect("throttle lock");
        // Forget finished windows now and then, so the map stays as large as the live clients.
        if counters.len() >= self.next_sweep.load(std::sync::atomic::Ordering::Relaxed) {
            counters.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            self.next_sweep.store(counters.len().max(1_000) * 2, std::sync::atomic::Ordering::Relaxed);
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

    /// A window counts from its first attempt; once it is over, the count starts again, and the
    /// wait announced meanwhile is what is left of it (rounded up).
    #[test]
    fn the_window_resets() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        let a = Some("127.0.0.1".parse().unwrap());
        let start = Instant::now();
        let at = |seconds: f64| start + Duration::from_secs_f64(seconds);
        assert!(throttle.check_at(a, at(0.0)).is_ok());
        assert!(throttle.check_at(a, at(10.0)).is_ok());
        assert_eq!(throttle.check_at(a, at(10.5)), Err(50));
        assert_eq!(throttle.check_at(a, at(59.2)), Err(1));
        assert!(throttle.check_at(a, at(60.0)).is_ok(), "a new window");
        assert!(throttle.check_at(a, at(61.0)).is_ok());
        assert_eq!(throttle.check_at(a, at(62.0)), Err(58), "counted from the new window's start");
        assert!(throttle.check_at(a, at(120.0)).is_ok());
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let throttle = Throttle::new(1, Duration::from_secs(60));
        assert!(throttle.check(Some("2001:db8:1:2::1".parse().unwrap())).is_ok());
        assert!(throttle.check(Some("2001:db8:1:2:ffff::9".parse().unwrap())).is_err(), "same /64");
        assert!(throttle.check(Some("2001:db8:1:3::1".parse().unwrap())).is_ok(), "another /64");
    }
}
