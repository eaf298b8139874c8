//! Push hosts that do not answer are backed off. A host that misses the deadline or fails to
//! connect `FAILURES_BEFORE_BACKOFF` times in a row is not called again until a backoff that
//! doubles with each further failure (up to `MAX_BACKOFF`); its pushes are rescheduled
//! instead. So a subscription pointing at a server that never answers costs the worker one
//! deadline now and then, not one per push. Any answer, even an error status, clears it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const FAILURES_BEFORE_BACKOFF: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Hosts remembered at most; past it, those not backed off now are forgotten.
const MAX_HOSTS: usize = 10_000;

#[derive(Default)]
struct Health {
    failures: u32,
    until: Option<Instant>,
}

/// Recent failures per host (`name:port`).
#[derive(Default)]
pub struct Hosts {
    health: Mutex<HashMap<String, Health>>,
}

impl Hosts {
    /// How long `host` is still backed off, if it is.
    pub fn backed_off(&self, host: &str) -> Option<Duration> {
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let until = health.get(host)?.until?;
        until
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
    }

    /// Notes whether `host` answered.
    pub fn record(&self, host: &str, answered: bool) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if answered {
            health.remove(host);
            return;
        }
        if health.len() >= MAX_HOSTS && !health.contains_key(host) {
            let now = Instant::now();
            health.retain(|_, h| h.until.is_some_and(|until| until > now));
        }
        let entry = health.entry(host.to_owned()).or_default();
        entry.failures += 1;
        if entry.failures >= FAILURES_BEFORE_BACKOFF {
            let doublings = (entry.failures - FAILURES_BEFORE_BACKOFF).min(16);
            let wait = FIRST_BACKOFF
                .saturating_mul(1 << doublings)
                .min(MAX_BACKOFF);
            entry.until = Some(Instant::now() + wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_host_that_keeps_failing_is_backed_off_and_an_answer_clears_it() {
        let hosts = Hosts::default();
        for _ in 0..FAILURES_BEFORE_BACKOFF - 1 {
            hosts.record("slow:443", false);
            assert_eq!(hosts.backed_off("slow:443"), None);
        }
        hosts.record("slow:443", false);
        assert_eq!(hosts.backed_off("slow:443"), Some(FIRST_BACKOFF));
        assert_eq!(hosts.backed_off("other:443"), None, "per host");

        tokio::time::advance(FIRST_BACKOFF).await;
        assert_eq!(
            hosts.backed_off("slow:443"),
            None,
            "tried again after the wait"
        );
        hosts.record("slow:443", false);
        assert_eq!(
            hosts.backed_off("slow:443"),
            Some(FIRST_BACKOFF * 2),
            "doubled"
        );

        hosts.record("slow:443", true);
        assert_eq!(hosts.backed_off("slow:443"), None);
        hosts.record("slow:443", false);
        assert_eq!(hosts.backed_off("slow:443"), None, "counting starts over");
    }
}
