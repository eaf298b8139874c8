//! Admission of sends to the store: under overload a send that would wait longer than the
//! budget for its commit is answered `overloaded` at once, with how long to wait, rather
//! than acknowledged ten seconds late.
//!
//! The wait a new send would see is the sends ahead of it over the rate the store commits
//! them (Little's law). That rate is measured only while the store is saturated: at least
//! [`SATURATED`] sends waiting for a whole window, which lasts until a commit lands, so it
//! spans whole batches (a second without one is a stalled store, which refuses everything).
//! A lightly loaded store commits only what arrives, which says nothing about what it could.
//! Until a saturated window has been seen, and whenever fewer than [`SATURATED`] sends wait,
//! everything is admitted, so admission never refuses what one group commit clears.
//!
//! Refused clients come back: when more come back than the store commits, the wait they
//! are told grows (up to [`MAX_BACKOFF`] times), so that the node does not spend its CPU
//! refusing the same sends over and over instead of committing them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Sends waiting at which the store counts as saturated; below it everything is admitted.
const SATURATED: u64 = 256;
/// How long one measurement of the commit rate lasts at least.
const WINDOW: Duration = Duration::from_millis(100);
/// A saturated store that commits nothing for this long is taken as stalled.
const STALLED: Duration = Duration::from_secs(1);
/// Weight of the newest window in the rate estimate.
const NEWEST_WEIGHT: f64 = 0.3;
/// Bounds on the wait a refused send is told.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// The most the wait told refused sends is stretched while refusals outnumber commits.
const MAX_BACKOFF: f64 = 40.0;

/// The admission of one node's sends to its store.
#[derive(Debug)]
pub struct Admission {
    budget: Duration,
    waiting: AtomicU64,
    committed: AtomicU64,
    refused: AtomicU64,
    /// What the wait told refused sends is multiplied by (an `f64`'s bits), at least 1.
    backoff: AtomicU64,
    rate: Mutex<Rate>,
}

/// The commit rate, measured in saturated windows.
#[derive(Debug)]
struct Rate {
    window_started: Instant,
    committed_at_start: u64,
    refused_at_start: u64,
    /// Whether fewer than [`SATURATED`] sends waited at any point of this window.
    slack: bool,
    /// Commits per second, once measured.
    per_sec: Option<f64>,
}

/// A send admitted to the store; dropping it (once the send is answered) counts it done.
#[must_use = "the send counts as waiting until this is dropped"]
#[derive(Debug)]
pub struct Ticket<'a>(&'a Admission);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
        self.0.committed.fetch_add(1, Ordering::Relaxed);
        self.0.observe(Instant::now());
    }
}

impl Admission {
    /// Admission that refuses sends whose commit would wait longer than `budget`.
    pub fn new(budget: Duration) -> Self {
        Self {
            budget,
            waiting: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            backoff: AtomicU64::new(1.0f64.to_bits()),
            rate: Mutex::new(Rate {
                window_started: Instant::now(),
                committed_at_start: 0,
                refused_at_start: 0,
                slack: true,
                per_sec: None,
            }),
        }
    }

    /// Admits one send, or answers how long to wait (ms) before retrying it.
    pub fn enter(&self) -> Result<Ticket<'_>, u64> {
        self.observe(Instant::now());
        let wait = self.expected_wait();
        if wait > self.budget {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(self.retry_after(wait));
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Ok(Ticket(self))
    }

    /// Whether a send would be admitted now, as far as the queue ahead of it goes.
    pub fn accepting(&self) -> bool {
        self.expected_wait() <= self.budget
    }

    /// The wait a send admitted now is expected to have; zero while it is not known, and
    /// without end while the store, saturated, commits nothing (a stalled disk or database).
    fn expected_wait(&self) -> Duration {
        let ahead = self.waiting();
        if ahead < SATURATED {
            return Duration::ZERO; // the common case: no lock taken on the send path
        }
        match self.rate.lock().map_or(None, |r| r.per_sec) {
            Some(per_sec) if per_sec > 0.0 => Duration::from_secs_f64(ahead as f64 / per_sec),
            Some(_) => Duration::MAX,
            None => Duration::ZERO,
        }
    }

    /// The budget a send's commit is expected to fit in.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// Sends admitted and not yet answered.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Refuses a send without trying to admit it (the node refuses sends, or the session
    /// has too many waiting): how long (ms) it should wait, as far as the queue ahead goes.
    pub fn refuse(&self) -> u64 {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.retry_after(self.expected_wait().max(self.budget))
    }

    /// When the queue will have drained to the budget, spread by up to one budget more so
    /// that refused clients do not all come back at once.
    fn retry_after(&self, wait: Duration) -> u64 {
        let spread = self.budget.mul_f64(rand::random::<f64>());
        let backoff = f64::from_bits(self.backoff.load(Ordering::Relaxed));
        let ms = (wait.saturating_sub(self.budget) + spread)
            .min(RETRY_MAX)
            .mul_f64(backoff)
            .clamp(RETRY_MIN, RETRY_MAX)
            .as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// Notes slack, and closes the window once it has run its length. Skipped when another
    /// thread holds the lock: one observer per moment is enough.
    fn observe(&self, now: Instant) {
        let Ok(mut rate) = self.rate.try_lock() else {
            return;
        };
        let waiting = self.waiting.load(Ordering::Relaxed);
        rate.slack |= waiting < SATURATED;
        let elapsed = now.saturating_duration_since(rate.window_started);
        if elapsed < WINDOW {
            return;
        }
        let committed = self.committed.load(Ordering::Relaxed);
        let delta = committed - rate.committed_at_start;
        // Commits come in batches (a batch of group messages can take half a second): a
        // saturated window lasts until one lands, so it spans whole batches. Only a second
        // of nothing is a sample of nothing: a stalled store.
        if !rate.slack && delta == 0 && elapsed < STALLED {
            return;
        }
        let refused = self.refused.load(Ordering::Relaxed);
        self.adjust_backoff(refused - rate.refused_at_start, delta);
        if !rate.slack {
            let sample = delta as f64 / elapsed.as_secs_f64();
            rate.per_sec = Some(match rate.per_sec {
                Some(old) => old + NEWEST_WEIGHT * (sample - old),
                None => sample,
            });
        }
        rate.window_started = now;
        rate.committed_at_start = committed;
        rate.refused_at_start = refused;
        rate.slack = waiting < SATURATED;
    }

    /// Stretches the wait told refused sends while refusals outnumber commits (the refused
    /// come back faster than they can be let in), at most doubling it per window, and
    /// shrinks it back as they stop.
    fn adjust_backoff(&self, refused: u64, committed: u64) {
        let ratio = refused as f64 / committed.max(1) as f64;
        let old = f64::from_bits(self.backoff.load(Ordering::Relaxed));
        let new = (old * ratio.clamp(0.5, 2.0)).clamp(1.0, MAX_BACKOFF);
        self.backoff.store(new.to_bits(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills the queue to `n` waiting sends.
    fn fill(admission: &Admission, n: u64) -> Vec<Ticket<'_>> {
        (0..n)
            .map(|_| admission.enter().expect("admitted"))
            .collect()
    }

    #[test]
    fn below_saturation_everything_is_admitted() {
        let admission = Admission::new(Duration::from_millis(1));
        let tickets = fill(&admission, SATURATED);
        assert_eq!(admission.waiting(), SATURATED);
        drop(tickets);
        assert_eq!(admission.waiting(), 0);
    }

    #[test]
    fn the_rate_is_measured_only_while_saturated() {
        let admission = Admission::new(Duration::from_millis(500));
        let start = Instant::now() + Duration::from_secs(3600); // no window closes by itself
        admission.rate.lock().unwrap().window_started = start;
        // Light load: 100 commits in a window with the queue short. Nothing learned.
        drop(fill(&admission, 100));
        admission.observe(start + WINDOW);
        assert_eq!(admission.rate.lock().unwrap().per_sec, None);
        // Saturated: 300 waiting throughout, 100 of them committed in the window.
        let mut tickets = fill(&admission, SATURATED + 144);
        admission.observe(start + 2 * WINDOW);
        tickets.truncate(tickets.len() - 100);
        tickets.extend(fill(&admission, 100));
        admission.observe(start + 3 * WINDOW);
        let per_sec = admission.rate.lock().unwrap().per_sec.expect("measured");
        assert!((per_sec - 1000.0).abs() < 1.0, "{per_sec}");
    }

    #[test]
    fn a_stalled_store_refuses_everything_past_saturation() {
        let admission = Admission::new(Duration::from_millis(500));
        let start = Instant::now() + Duration::from_secs(3600);
        admission.rate.lock().unwrap().window_started = start;
        let _tickets = fill(&admission, SATURATED);
        // A second with the queue long and nothing committed; less is not yet a stall.
        admission.observe(start + WINDOW);
        admission.observe(start + 2 * WINDOW);
        assert_eq!(admission.rate.lock().unwrap().per_sec, None);
        admission.observe(start + WINDOW + STALLED);
        assert_eq!(admission.rate.lock().unwrap().per_sec, Some(0.0));
        assert!(!admission.accepting());
        assert_eq!(admission.enter().unwrap_err(), RETRY_MAX.as_millis() as u64);
    }

    #[test]
    fn a_saturated_store_refuses_what_would_wait_past_the_budget() {
        let admission = Admission::new(Duration::from_millis(500));
        {
            let mut rate = admission.rate.lock().unwrap();
            rate.per_sec = Some(1000.0);
            rate.window_started = Instant::now() + Duration::from_secs(3600);
        }
        // At 1,000 commits/s the budget holds 500 waiting sends.
        let mut tickets = fill(&admission, 500);
        let mut refused = 0;
        for _ in 0..100 {
            match admission.enter() {
                Ok(ticket) => tickets.push(ticket),
                Err(ms) => {
                    refused += 1;
                    assert!((50..=10_000).contains(&ms), "retry after {ms} ms");
                }
            }
        }
        assert_eq!(admission.waiting(), 501, "one more fits, then none");
        assert_eq!(refused, 99);
        // Once the queue drains below saturation, sends are admitted again.
        tickets.truncate(10);
        assert!(admission.enter().is_ok());
    }

    #[test]
    fn the_wait_told_grows_while_refusals_outnumber_commits_and_shrinks_after() {
        let admission = Admission::new(Duration::from_millis(500));
        let start = Instant::now() + Duration::from_secs(3600);
        {
            let mut rate = admission.rate.lock().unwrap();
            rate.per_sec = Some(1000.0);
            rate.window_started = start;
        }
        let backoff = || f64::from_bits(admission.backoff.load(Ordering::Relaxed));
        let mut tickets = fill(&admission, 501);
        let mut now = start;
        for _ in 0..3 {
            // Each window: 100 commits, and 400 refusals of sends that came back.
            tickets.truncate(401);
            tickets.extend(fill(&admission, 100));
            for _ in 0..400 {
                assert!(admission.enter().is_err());
            }
            now += WINDOW;
            admission.observe(now);
        }
        assert_eq!(backoff(), 8.0, "doubled in each of three windows");
        // A send that would wait 100 ms past the budget is told at least 8 times that.
        let told = admission.retry_after(Duration::from_millis(600));
        assert!(told >= 800, "the wait told is stretched: {told} ms");
        // Refusals stop: the stretch halves per window, down to none.
        for _ in 0..5 {
            now += WINDOW;
            tickets.truncate(401);
            tickets.extend(fill(&admission, 100));
            admission.observe(now);
        }
        assert_eq!(backoff(), 1.0);
    }
}
