//! Password guessing, per account: after `FREE_FAILURES` wrong passwords in a row for one
//! username, each further attempt must wait a delay that doubles with every failure, up to
//! `MAX_DELAY`, from any address. Unknown usernames count the same, so the answer says
//! nothing about which accounts exist. A right password clears the count. This slows a
//! guesser spread over many addresses (the per-address limit stops one address) to a few
//! hundred guesses a day, while a person who mistypes a few times never notices.
//!
//! Kept in this node's memory: a restart forgets it, and each node of a cluster counts
//! its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const FREE_FAILURES: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Usernames remembered at most; past it, those free to try again are forgotten.
const MAX_TRACKED: usize = 100_000;

struct Failures {
    count: u32,
    /// No attempt before this.
    until: Instant,
}

/// Failed logins per username.
#[derive(Default)]
pub struct Guesses {
    failures: Mutex<HashMap<String, Failures>>,
}

impl Guesses {
    /// May `username` try a password now? If not, how long until it may.
    pub fn check(&self, username: &str) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(username) {
            Some(f) => match f.until.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => Err(wait),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// A wrong password for `username`.
    pub fn failed(&self, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED && !failures.contains_key(username) {
            failures.retain(|_, f| f.until > now);
        }
        let f = failures.entry(username.to_owned()).or_insert(Failures {
            count: 0,
            until: now,
        });
        f.count += 1;
        if f.count >= FREE_FAILURES {
            let doublings = (f.count - FREE_FAILURES).min(20);
            f.until = now + FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
        }
    }

    /// The right password for `username`.
    pub fn succeeded(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_past_the_free_ones_wait_longer_each_time() {
        let guesses = Guesses::default();
        for _ in 0..FREE_FAILURES - 1 {
            guesses.failed("ada");
            assert_eq!(guesses.check("ada"), Ok(()));
        }
        guesses.failed("ada");
        assert_eq!(guesses.check("ada"), Err(FIRST_DELAY));
        assert_eq!(guesses.check("bob"), Ok(()), "per account");
        tokio::time::advance(FIRST_DELAY).await;
        assert_eq!(guesses.check("ada"), Ok(()));
        guesses.failed("ada");
        assert_eq!(guesses.check("ada"), Err(FIRST_DELAY * 2));
        for _ in 0..40 {
            guesses.failed("ada");
        }
        assert_eq!(guesses.check("ada"), Err(MAX_DELAY));
        guesses.succeeded("ada");
        assert_eq!(guesses.check("ada"), Ok(()));
    }
}
