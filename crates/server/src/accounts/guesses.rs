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
    /// Once the waits have begun, one attempt at a time: otherwise many sent together
    /// would all pass the check before the first of them failed.
    in_flight: bool,
}

/// Failed logins per username.
#[derive(Default)]
pub struct Guesses {
    failures: Mutex<HashMap<String, Failures>>,
}

/// One password attempt for a username; say how it went with [`Attempt::failed`] or
/// [`Attempt::succeeded`]. Dropped without either (an error on the way), it counts as
/// neither.
pub struct Attempt<'a> {
    guesses: &'a Guesses,
    username: String,
    done: bool,
}

impl Guesses {
    /// May `username` try a password now? If not, how long until it may.
    pub fn begin(&self, username: &str) -> Result<Attempt<'_>, Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = failures.get_mut(username) {
            let now = Instant::now();
            if f.until > now {
                return Err(f.until - now);
            }
            if f.count >= FREE_FAILURES {
                if f.in_flight {
                    return Err(FIRST_DELAY);
                }
                f.in_flight = true;
            }
        }
        Ok(Attempt {
            guesses: self,
            username: username.to_owned(),
            done: false,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Attempt<'_> {
    /// The password was wrong.
    pub fn failed(mut self) {
        self.done = true;
        let mut failures = self.guesses.lock();
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&self.username) {
            failures.retain(|_, f| f.until > now || f.in_flight);
        }
        let f = failures
            .entry(std::mem::take(&mut self.username))
            .or_insert(Failures {
                count: 0,
                until: now,
                in_flight: false,
            });
        f.count += 1;
        f.in_flight = false;
        if f.count >= FREE_FAILURES {
            let doublings = (f.count - FREE_FAILURES).min(20);
            f.until = now + FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
        }
    }

    /// The password was right: the count starts over.
    pub fn succeeded(mut self) {
        self.done = true;
        self.guesses.lock().remove(&self.username);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Some(f) = self.guesses.lock().get_mut(&self.username)
        {
            f.in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_past_the_free_ones_wait_longer_each_time() {
        let guesses = Guesses::default();
        for _ in 0..FREE_FAILURES - 1 {
            guesses.begin("ada").ok().unwrap().failed();
            assert!(guesses.begin("ada").is_ok());
        }
        guesses.begin("ada").ok().unwrap().failed();
        assert_eq!(guesses.begin("ada").err(), Some(FIRST_DELAY));
        assert!(guesses.begin("bob").is_ok(), "per account");
        tokio::time::advance(FIRST_DELAY).await;
        let attempt = guesses.begin("ada").ok().unwrap();
        assert!(
            guesses.begin("ada").is_err(),
            "once waiting has begun, one attempt at a time"
        );
        attempt.failed();
        assert_eq!(guesses.begin("ada").err(), Some(FIRST_DELAY * 2));
        for _ in 0..40 {
            tokio::time::advance(MAX_DELAY).await;
            guesses.begin("ada").ok().unwrap().failed();
        }
        assert_eq!(guesses.begin("ada").err(), Some(MAX_DELAY));
        tokio::time::advance(MAX_DELAY).await;
        let dropped = guesses.begin("ada").ok().unwrap();
        drop(dropped); // an error on the way: neither a failure nor a success
        guesses.begin("ada").ok().unwrap().succeeded();
        assert!(guesses.begin("ada").is_ok());
    }
}
