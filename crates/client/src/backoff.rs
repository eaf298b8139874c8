//! Exponential reconnect backoff with jitter. Pure arithmetic plus a random draw; the
//! waiting itself happens in the connection task.

use std::time::Duration;

/// Delays that double from `min` up to `max`. Each delay is drawn from the upper half of
/// its ceiling ("equal jitter"): clients that lost the same node spread out, and delays
/// still grow instead of collapsing towards zero as full jitter allows.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    /// A backoff between `min` and `max` (`max` below `min` is raised to `min`; a zero
    /// `min` is taken as 1 ms so that doubling goes somewhere).
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let min_ms = duration_ms(min).max(1);
        Self {
            min_ms,
            max_ms: duration_ms(max).max(min_ms),
            attempt: 0,
        }
    }

    /// Starts over from `min`, after a connection that lasted.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The largest delay the next call can return: `min * 2^attempt`, capped at `max`.
    pub(crate) fn ceiling(&self) -> Duration {
        let factor = 1u64.checked_shl(self.attempt).unwrap_or(u64::MAX);
        Duration::from_millis(self.min_ms.saturating_mul(factor).min(self.max_ms))
    }

    /// The delay before the next attempt, between half the ceiling and the ceiling.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = duration_ms(self.ceiling());
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        Duration::from_millis(ceiling - half + rand::random_range(0..=half))
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_bounds_and_reset() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut b = Backoff::new(min, max);
        let mut last_ceiling = Duration::ZERO;
        for _ in 0..200 {
            let ceiling = b.ceiling();
            assert!(ceiling >= last_ceiling && ceiling <= max);
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}");
            last_ceiling = ceiling;
        }
        assert_eq!(b.ceiling(), max);
        b.reset();
        assert_eq!(b.ceiling(), min);
        let d = b.next_delay();
        assert!(d >= min / 2 && d <= min);
        assert_eq!(b.ceiling(), min * 2);
    }

    #[test]
    fn odd_bounds_are_repaired() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.ceiling(), Duration::from_millis(1));
        assert!(b.next_delay() <= Duration::from_millis(1));
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.ceiling(), Duration::from_secs(2));
    }
}
