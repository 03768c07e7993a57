//! Messages per user per second, on every channel (GraphQL, legacy REST, legacy socket): the
//! one rule the chat service's send path asks with one call, [`MessageRate::take`].
//!
//! A token bucket per user: `per_second` messages a second on average, bursts of up to
//! `per_second` at once (a person types far slower; a script that sends faster is refused with
//! [`AppError::Throttled`](crate::error::AppError::Throttled), which every transport answers as
//! it answers throttling: `TOO_MANY_REQUESTS`, 429, an `{"error"}` frame). Per process: behind a
//! load balancer a user's sockets and requests may spread over processes, each counting its share.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub struct MessageRate {
    per_second: u32,
    /// Per user: tokens left and when they were counted.
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl MessageRate {
    /// `per_second` messages per user per second; 0 turns the limit off.
    pub fn new(per_second: u32) -> Self {
        Self { per_second, buckets: Mutex::default() }
    }

    /// Takes one message of `user_id`; `Err(seconds)` until the next one is allowed.
    pub fn take(&self, user_id: i64) -> Result<(), u64> {
        if self.per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_second);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() > 10_000 {
            // Full buckets carry nothing worth keeping.
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < rate);
        }
        let (tokens, at) = buckets.entry(user_id).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_rate_then_refused_per_user() {
        let rate = MessageRate::new(3);
        for _ in 0..3 {
            assert_eq!(rate.take(1), Ok(()));
        }
        assert_eq!(rate.take(1), Err(1));
        assert_eq!(rate.take(2), Ok(()), "another user has their own bucket");
        assert_eq!(MessageRate::new(0).take(1), Ok(()), "0: off");
    }
}
