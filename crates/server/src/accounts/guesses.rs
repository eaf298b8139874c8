//! Password guessing, per account: after `FREE_FAILURES` wrong passwords in a row for one
//! username, each further attempt must wait a delay that doubles with every failure, up to
//! `MAX_DELAY`, from any address. Unknown usernames count the same, so the answer says
//! nothing about which accounts exist. A right password clears the count. This slows a
//! guesser spread over many addresses (the per-address limit stops one address) to a few
//! hundred guesses a day, while a person who mistypes a few times never notices.
//!
//! Counted in the store, so every node of a cluster counts the same failures and a
//! restart forgets nothing.

use crate::store::{Store, StoreError};
use confab_proto::Timestamp;
use std::sync::Arc;
use std::time::Duration;

const FREE_FAILURES: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Once the waits have begun, one attempt at a time (otherwise many sent together would
/// all pass the check before the first of them failed); an attempt that never reports back
/// lets the next one in after this.
const HOLD: Duration = Duration::from_secs(10);
/// Failures are forgotten once they are this old.
const FORGET: Duration = Duration::from_secs(24 * 60 * 60);

/// The wait after `failures` wrong passwords in a row, if any.
fn delay(failures: u32) -> Option<Duration> {
    let doublings = failures.checked_sub(FREE_FAILURES)?.min(20);
    Some(FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY))
}

/// Why an attempt may not begin.
pub enum Refused {
    /// Too many failures: this long until the next attempt.
    Wait(Duration),
    /// The store could not say.
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Failed logins per username.
pub struct Guesses {
    store: Arc<dyn Store>,
}

/// One password attempt for a username; say how it went with [`Attempt::failed`] or
/// [`Attempt::succeeded`]. Dropped without either (an error on the way), it counts as
/// neither.
pub struct Attempt<'a> {
    guesses: &'a Guesses,
    username: String,
}

impl Guesses {
    /// Counts in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// May `username` try a password now? If not, how long until it may.
    pub async fn begin(&self, username: &str) -> Result<Attempt<'_>, Refused> {
        let now = Timestamp::now();
        if let Some((failures, until)) = self.store.login_failures(username).await? {
            if until > now {
                return Err(Refused::Wait(millis(until.0 - now.0)));
            }
            if failures >= FREE_FAILURES
                && !self
                    .store
                    .hold_login(username, now, later(now, HOLD))
                    .await?
            {
                return Err(Refused::Wait(FIRST_DELAY));
            }
        }
        Ok(Attempt {
            guesses: self,
            username: username.to_owned(),
        })
    }
}

impl Attempt<'_> {
    /// The password was wrong.
    pub async fn failed(self) -> Result<(), StoreError> {
        let store = &self.guesses.store;
        let now = Timestamp::now();
        let forget_before = Timestamp(now.0 - i64::try_from(FORGET.as_millis()).unwrap_or(0));
        let failures = store.login_failed(&self.username, forget_before).await?;
        let until = delay(failures).map_or(now, |d| later(now, d));
        store.login_wait(&self.username, until).await
    }

    /// The password was right: the count starts over.
    pub async fn succeeded(self) -> Result<(), StoreError> {
        self.guesses.store.login_succeeded(&self.username).await
    }
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp(t.0 + i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_past_the_free_failures_up_to_the_cap() {
        assert_eq!(delay(0), None);
        assert_eq!(delay(FREE_FAILURES - 1), None);
        assert_eq!(delay(FREE_FAILURES), Some(FIRST_DELAY));
        assert_eq!(delay(FREE_FAILURES + 1), Some(FIRST_DELAY * 2));
        assert_eq!(delay(FREE_FAILURES + 5), Some(FIRST_DELAY * 32));
        assert_eq!(delay(FREE_FAILURES + 40), Some(MAX_DELAY));
        assert_eq!(delay(u32::MAX), Some(MAX_DELAY));
    }
}
