//! Message ids (Snowflake layout) and bearer tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 2026-01-01T00:00:00Z: ids count milliseconds from here, which lasts 69 years.
const EPOCH_MS: u64 = 1_767_225_600_000;
const NODE_BITS: u32 = 10;
const COUNTER_BITS: u32 = 12;

/// Time-sortable, unique 63-bit ids: 41 bits of milliseconds, 10 of node id, 12 of counter.
/// Ids from one node strictly increase, even if the clock steps back.
#[derive(Debug)]
pub struct Snowflake {
    /// Set once more when the node's id is claimed in the store (`nodes.rs`), before any id
    /// is handed out.
    node: AtomicU64,
    /// (milliseconds << COUNTER_BITS) | counter of the last id.
    last: AtomicU64,
}

impl Snowflake {
    /// A generator for node `node` (0-1023).
    pub fn new(node: u16) -> Self {
        Self {
            node: AtomicU64::new(u64::from(node) & ((1 << NODE_BITS) - 1)),
            last: AtomicU64::new(0),
        }
    }

    /// Makes the ids from now on carry `node` (0-1023).
    pub fn set_node(&self, node: u16) {
        self.node
            .store(u64::from(node) & ((1 << NODE_BITS) - 1), Ordering::Relaxed);
    }

    /// Makes every later id greater than `id`, one already stored: ids keep increasing
    /// across restarts even if the clock stepped back meanwhile (from the millisecond
    /// after `id`'s, whatever node made it).
    pub fn follow(&self, id: i64) {
        let ms = u64::try_from(id).unwrap_or(0) >> (NODE_BITS + COUNTER_BITS);
        self.last
            .fetch_max(((ms + 1) << COUNTER_BITS) - 1, Ordering::Relaxed);
    }

    /// The next id.
    pub fn next(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            .saturating_sub(EPOCH_MS);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            // Past 4096 ids in a millisecond, borrow from the next millisecond.
            let next = (now << COUNTER_BITS).max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let ms = next >> COUNTER_BITS;
                    let counter = next & ((1 << COUNTER_BITS) - 1);
                    return ((ms << (NODE_BITS + COUNTER_BITS))
                        | (self.node.load(Ordering::Relaxed) << COUNTER_BITS)
                        | counter) as i64;
                }
                Err(actual) => last = actual,
            }
        }
    }
}

/// A new bearer token: 32 random bytes, base64url. Only its hash is stored.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token. Tokens are random, so a plain SHA-256 suffices (no salt or
/// slow hash needed) and lookups stay one index probe.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_carry_the_node() {
        let ids = Snowflake::new(5);
        let mut prev = 0;
        for _ in 0..20_000 {
            let id = ids.next();
            assert!(id > prev);
            assert_eq!((id >> COUNTER_BITS) & 0x3ff, 5);
            prev = id;
        }
    }

    #[test]
    fn ids_follow_a_stored_one_made_after_the_clock() {
        let ids = Snowflake::new(0);
        // Made an hour ahead of this clock, by the highest node id.
        let ms = ids.next() >> (NODE_BITS + COUNTER_BITS);
        let stored = ((ms + 3_600_000) << (NODE_BITS + COUNTER_BITS)) | (1023 << COUNTER_BITS) | 7;
        ids.follow(stored);
        assert!(ids.next() > stored);
        ids.follow(1); // an older one changes nothing
        assert!(ids.next() > stored);
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
