//! Per-key rate limits (token buckets from `governor`), answering how long to wait.

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;

/// A keyed token bucket. Cheap to clone.
pub struct RateLimiter<K: Hash + Eq + Clone> {
    inner: Arc<Governor<K, DefaultKeyedStateStore<K>, DefaultClock>>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> Clone for RateLimiter<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_second` sustained with bursts of `burst`.
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        Self::with_quota(Quota::per_second(nonzero(per_second)).allow_burst(nonzero(burst)))
    }

    /// `per_minute` sustained, bursting to the same number.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::with_quota(Quota::per_minute(nonzero(per_minute)))
    }

    fn with_quota(quota: Quota) -> Self {
        Self {
            inner: Arc::new(Governor::keyed(quota)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one token for `key`, or says how many milliseconds until one is free.
    pub fn check(&self, key: K) -> Result<(), u64> {
        self.inner.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
        })
    }

    /// Takes `n` tokens for `key` at once, or says how many milliseconds until they are
    /// free (`u64::MAX` when `n` is more than a whole burst: never).
    pub fn check_n(&self, key: K, n: u32) -> Result<(), u64> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        match self.inner.check_key_n(&key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1))
            }
            Err(_) => Err(u64::MAX),
        }
    }

    /// Forgets keys whose buckets are full again, bounding memory.
    pub fn forget_idle(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}
