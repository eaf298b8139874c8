//! Bookkeeping of an open-loop messaging run: which message goes where and when it was
//! due, which acks and deliveries came back and how late, and what was lost or repeated.
//!
//! Message number `i` is due at `start + i / rate`. Latencies are measured from the moment
//! the scheduler hands the message to its sender's session, at or just after that (the
//! timer's millisecond granularity would otherwise show up as server latency). The
//! scheduler never waits for the server, so a slow server is counted in full; how late the
//! scheduler itself was is recorded apart, as the send lag. The schedule (conversation and
//! sender of every message) is fixed up front; the rest sits behind one mutex, held for a
//! few instructions per event.

use crate::report::Latency;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The most messages one run may schedule (about 64 bytes of bookkeeping each).
pub const MAX_MESSAGES: u64 = 50_000_000;

/// The most members a conversation may have here (the contract's group limit is 100).
pub const MAX_MEMBERS: usize = 128;

const ACKED: u8 = 1;
const FAILED: u8 = 2;

/// Where one message goes.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Index of its conversation.
    pub conv: u32,
    /// The sender's position among the conversation's members.
    pub sender: u8,
}

#[derive(Debug, Clone, Copy, Default)]
struct Msg {
    delivered: u128,
    sent_us: u64,
    /// When the latest attempt was handed over: `sent_us` until a retry.
    attempt_us: u64,
    last_us: u64,
    acked_us: u64,
    flags: u8,
    /// Answers of `overloaded` or `rate_limited` so far.
    refusals: u8,
}

/// What happened to the messages of a run, once it is over.
#[derive(Debug)]
pub struct Totals {
    /// Messages handed to a session for sending.
    pub dispatched: u64,
    /// Messages acked.
    pub acked: u64,
    /// Messages answered with an `error` frame, or that could not be written.
    pub failed: u64,
    /// Failures by error code (`write` for a session that could not send).
    pub errors: BTreeMap<String, u64>,
    /// Dispatched, not failed, never acked.
    pub unacked: u64,
    /// First deliveries to a recipient (one per message and recipient).
    pub deliveries: u64,
    /// Messages that reached every recipient.
    pub complete: u64,
    /// Recipients of acked messages that never got them, though the ack came at least the
    /// grace time before the end.
    pub lost: u64,
    /// Recipients of messages acked within the grace time before the end that did not get
    /// them yet: still in flight when the run stopped, not counted as lost.
    pub pending: u64,
    /// Deliveries of a message to a recipient that already had it.
    pub duplicated: u64,
    /// Deliveries to a session that is not a member, or of a number never sent.
    pub misdelivered: u64,
    /// Acks for a message already acked.
    pub repeated_acks: u64,
    /// Sends answered `overloaded` (each attempt counts).
    pub overloaded: u64,
    /// Sends written again after `overloaded` or `rate_limited`.
    pub retries: u64,
    /// Seconds from the start to the last ack, delivery, and complete delivery.
    pub last_ack_secs: f64,
    /// See `last_ack_secs`.
    pub last_delivery_secs: f64,
    /// See `last_ack_secs`.
    pub last_complete_secs: f64,
    /// Due time to hand-over to the session: how late the scheduler was.
    pub send_lag: Latency,
    /// Hand-over of the accepted attempt to its ack: how long an accepted send waited.
    pub ack: Latency,
    /// Send to delivery, per recipient.
    pub deliver_each: Latency,
    /// Send to delivery to the last recipient, per message.
    pub deliver_last: Latency,
}

#[derive(Debug)]
struct Inner {
    msgs: Vec<Msg>,
    send_lag: Latency,
    ack: Latency,
    deliver_each: Latency,
    deliver_last: Latency,
    acked: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    deliveries: u64,
    complete: u64,
    undeliverable: u64,
    duplicated: u64,
    misdelivered: u64,
    repeated_acks: u64,
    overloaded: u64,
    retries: u64,
    last_ack_us: u64,
    last_delivery_us: u64,
    last_complete_us: u64,
}

/// The shared bookkeeping of one run.
#[derive(Debug)]
pub struct Tracker {
    start: OnceLock<Instant>,
    us_per_message: f64,
    schedule: Vec<Slot>,
    /// Per conversation: one bit per member position.
    members: Vec<u128>,
    dispatched: AtomicU64,
    expected: AtomicU64,
    inner: Mutex<Inner>,
}

impl Tracker {
    /// Bookkeeping for `schedule` at `rate` messages per second; `members[c]` is how many
    /// members conversation `c` has. The clock starts at [`Tracker::begin`].
    pub fn new(rate: f64, schedule: Vec<Slot>, members: &[usize]) -> anyhow::Result<Self> {
        if let Some(m) = members.iter().find(|&&m| m > MAX_MEMBERS) {
            anyhow::bail!("a conversation of {m} members is more than {MAX_MEMBERS}");
        }
        let masks = members
            .iter()
            .map(|&m| {
                if m >= 128 {
                    u128::MAX
                } else {
                    (1u128 << m) - 1
                }
            })
            .collect();
        let inner = Inner {
            msgs: vec![Msg::default(); schedule.len()],
            send_lag: Latency::new()?,
            ack: Latency::new()?,
            deliver_each: Latency::new()?,
            deliver_last: Latency::new()?,
            acked: 0,
            failed: 0,
            errors: BTreeMap::new(),
            deliveries: 0,
            complete: 0,
            undeliverable: 0,
            duplicated: 0,
            misdelivered: 0,
            repeated_acks: 0,
            overloaded: 0,
            retries: 0,
            last_ack_us: 0,
            last_delivery_us: 0,
            last_complete_us: 0,
        };
        Ok(Self {
            start: OnceLock::new(),
            us_per_message: 1e6 / rate,
            schedule,
            members: masks,
            dispatched: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            inner: Mutex::new(inner),
        })
    }

    /// The fixed schedule.
    pub fn schedule(&self) -> &[Slot] {
        &self.schedule
    }

    /// Starts the clock: message 0 is due at `start`. Only the first call counts.
    pub fn begin(&self, start: Instant) -> Instant {
        *self.start.get_or_init(|| start)
    }

    fn start(&self) -> Instant {
        *self.start.get_or_init(Instant::now)
    }

    /// When message `index` is due.
    pub fn due(&self, index: u64) -> Instant {
        self.start() + std::time::Duration::from_micros(self.intended_us(index))
    }

    fn intended_us(&self, index: u64) -> u64 {
        (index as f64 * self.us_per_message) as u64
    }

    fn elapsed_us(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start()).as_micros()).unwrap_or(u64::MAX)
    }

    /// The recipients of a message: every member but the sender.
    fn expected_mask(&self, slot: Slot) -> u128 {
        let all = self.members.get(slot.conv as usize).copied().unwrap_or(0);
        all & !(1u128 << slot.sender)
    }

    /// Message `index` was handed to its sender's session at `now` (in index order).
    pub fn dispatched(&self, index: u64, now: Instant) {
        let Some(&slot) = self.schedule.get(index as usize) else {
            return;
        };
        let at = self.elapsed_us(now);
        let lag = at.saturating_sub(self.intended_us(index));
        {
            let mut inner = self.lock();
            if let Some(msg) = inner.msgs.get_mut(index as usize) {
                msg.sent_us = at;
                msg.attempt_us = at;
            }
            inner.send_lag.record_us(lag);
        }
        self.expected.fetch_add(
            u64::from(self.expected_mask(slot).count_ones()),
            Ordering::Relaxed,
        );
        self.dispatched.fetch_max(index + 1, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `ack` of message `index` arrived at `now`.
    pub fn ack(&self, index: u64, now: Instant) {
        let at = self.elapsed_us(now);
        let mut inner = self.lock();
        let Some(msg) = inner.msgs.get_mut(index as usize) else {
            inner.repeated_acks += 1;
            return;
        };
        if msg.flags & (ACKED | FAILED) != 0 {
            inner.repeated_acks += 1;
            return;
        }
        msg.flags |= ACKED;
        msg.acked_us = at;
        let latency = at.saturating_sub(msg.attempt_us);
        inner.acked += 1;
        inner.last_ack_us = inner.last_ack_us.max(at);
        inner.ack.record_us(latency);
    }

    /// Message `index` was refused for now (`overloaded` or `rate_limited`, by `code`):
    /// how many times so far when it may be tried again; `None` when it has been refused
    /// `max` times (it is then failed) or is already answered.
    pub fn refused(&self, index: u64, code: &str, max: u8) -> Option<u8> {
        let retry = {
            let mut inner = self.lock();
            if code == "overloaded" {
                inner.overloaded += 1;
            }
            let msg = inner.msgs.get_mut(index as usize)?;
            if msg.flags & (ACKED | FAILED) != 0 {
                return None;
            }
            msg.refusals = msg.refusals.saturating_add(1);
            (msg.refusals < max).then_some(msg.refusals)
        };
        if retry.is_none() {
            self.failed(index, code);
        }
        retry
    }

    /// Message `index` was written again at `now`, after a refusal.
    pub fn retried(&self, index: u64, now: Instant) {
        let at = self.elapsed_us(now);
        let mut inner = self.lock();
        inner.retries += 1;
        if let Some(msg) = inner.msgs.get_mut(index as usize) {
            msg.attempt_us = at;
        }
    }

    /// Message `index` failed: an `error` frame with `code`, or `write` when its session
    /// could not send it.
    pub fn failed(&self, index: u64, code: &str) {
        let expected = self
            .schedule
            .get(index as usize)
            .map(|&slot| self.expected_mask(slot));
        let mut inner = self.lock();
        *inner.errors.entry(code.to_owned()).or_default() += 1;
        let Some(msg) = inner.msgs.get_mut(index as usize) else {
            return;
        };
        if msg.flags & (ACKED | FAILED) != 0 {
            return;
        }
        msg.flags |= FAILED;
        let missing = u64::from((expected.unwrap_or(0) & !msg.delivered).count_ones());
        inner.failed += 1;
        inner.undeliverable += missing;
    }

    /// Message `index` reached the member at position `pos` of conversation `conv` at `now`.
    pub fn delivered(&self, index: u64, conv: u32, pos: u8, now: Instant) {
        let at = self.elapsed_us(now);
        let slot = self.schedule.get(index as usize).copied();
        let mut inner = self.lock();
        let Some(slot) = slot.filter(|s| s.conv == conv && s.sender != pos) else {
            inner.misdelivered += 1;
            return;
        };
        let expected = self.expected_mask(slot);
        let bit = 1u128 << pos;
        let Some(msg) = inner.msgs.get_mut(index as usize) else {
            inner.misdelivered += 1;
            return;
        };
        if msg.delivered & bit != 0 {
            inner.duplicated += 1;
            return;
        }
        msg.delivered |= bit;
        let latency = at.saturating_sub(msg.sent_us);
        msg.last_us = msg.last_us.max(latency);
        let complete = msg.delivered & expected == expected;
        let last = msg.last_us;
        inner.deliveries += 1;
        inner.last_delivery_us = inner.last_delivery_us.max(at);
        inner.deliver_each.record_us(latency);
        if complete {
            inner.complete += 1;
            inner.last_complete_us = inner.last_complete_us.max(at);
            inner.deliver_last.record_us(last);
        }
    }

    /// A delivery counted elsewhere as a repeat (the same `inbox_seq` twice).
    pub fn repeated(&self) {
        self.lock().duplicated += 1;
    }

    /// True when every dispatched message was acked or failed and every expected delivery
    /// arrived: nothing more to wait for.
    pub fn settled(&self) -> bool {
        let dispatched = self.dispatched.load(Ordering::Relaxed);
        let expected = self.expected.load(Ordering::Relaxed);
        let inner = self.lock();
        inner.acked + inner.failed >= dispatched
            && inner.deliveries + inner.undeliverable >= expected
    }

    /// The totals at `end`. A recipient still missing an acked message is lost when the
    /// ack came at least `grace` before `end`, and pending otherwise.
    pub fn totals(&self, end: Instant, grace: Duration) -> Totals {
        let dispatched = self.dispatched.load(Ordering::Relaxed);
        let cutoff_us = self
            .elapsed_us(end)
            .saturating_sub(u64::try_from(grace.as_micros()).unwrap_or(u64::MAX));
        let inner = self.lock();
        let (mut lost, mut pending) = (0u64, 0u64);
        for (msg, &slot) in inner.msgs.iter().zip(&self.schedule) {
            if msg.flags & ACKED != 0 {
                let missing = u64::from((self.expected_mask(slot) & !msg.delivered).count_ones());
                if msg.acked_us <= cutoff_us {
                    lost += missing;
                } else {
                    pending += missing;
                }
            }
        }
        Totals {
            dispatched,
            acked: inner.acked,
            failed: inner.failed,
            errors: inner.errors.clone(),
            unacked: dispatched.saturating_sub(inner.acked + inner.failed),
            deliveries: inner.deliveries,
            complete: inner.complete,
            lost,
            pending,
            duplicated: inner.duplicated,
            misdelivered: inner.misdelivered,
            repeated_acks: inner.repeated_acks,
            overloaded: inner.overloaded,
            retries: inner.retries,
            last_ack_secs: inner.last_ack_us as f64 / 1e6,
            last_delivery_secs: inner.last_delivery_us as f64 / 1e6,
            last_complete_secs: inner.last_complete_us as f64 / 1e6,
            send_lag: inner.send_lag.clone(),
            ack: inner.ack.clone(),
            deliver_each: inner.deliver_each.clone(),
            deliver_last: inner.deliver_last.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(members: usize, n: usize) -> Tracker {
        let schedule = (0..n).map(|_| Slot { conv: 0, sender: 0 }).collect();
        let t = Tracker::new(1000.0, schedule, &[members]).unwrap();
        t.begin(Instant::now());
        t
    }

    #[test]
    fn deliveries_to_every_recipient_complete_a_message() {
        let t = tracker(3, 2);
        let now = Instant::now() + Duration::from_millis(5);
        t.dispatched(0, Instant::now());
        t.dispatched(1, Instant::now());
        assert!(!t.settled());
        t.ack(0, now);
        t.ack(1, now);
        t.delivered(0, 0, 1, now);
        t.delivered(0, 0, 2, now);
        t.delivered(0, 0, 2, now); // a repeat
        t.delivered(0, 0, 0, now); // to the sender: not a recipient
        t.delivered(1, 0, 1, now);
        assert!(!t.settled());
        let later = now + Duration::from_millis(10);
        let totals = t.totals(later, Duration::from_millis(1));
        assert_eq!(totals.acked, 2);
        assert_eq!(totals.deliveries, 3);
        assert_eq!(totals.complete, 1);
        assert_eq!(totals.lost, 1);
        assert_eq!(totals.duplicated, 1);
        assert_eq!(totals.misdelivered, 1);
        assert_eq!(totals.deliver_last.count(), 1);
        let late = t.totals(now, Duration::from_secs(1));
        assert_eq!(
            (late.lost, late.pending),
            (0, 1),
            "acked just now: still in flight"
        );
        t.delivered(1, 0, 2, now);
        assert!(t.settled());
        assert_eq!(t.totals(now, Duration::ZERO).lost, 0);
    }

    #[test]
    fn failures_are_not_losses() {
        let t = tracker(2, 1);
        t.dispatched(0, Instant::now());
        t.failed(0, "rate_limited");
        assert!(t.settled());
        let totals = t.totals(Instant::now(), Duration::ZERO);
        assert_eq!(totals.failed, 1);
        assert_eq!(totals.lost, 0);
        assert_eq!(totals.errors["rate_limited"], 1);
        assert_eq!(totals.unacked, 0);
    }

    #[test]
    fn a_refused_send_is_retried_until_accepted_or_out_of_attempts() {
        let t = tracker(2, 2);
        let start = Instant::now();
        t.dispatched(0, start);
        t.dispatched(1, start);
        assert_eq!(t.refused(0, "overloaded", 3), Some(1));
        t.retried(0, start + Duration::from_millis(400));
        t.ack(0, start + Duration::from_millis(410));
        assert_eq!(t.refused(0, "overloaded", 3), None, "already acked");
        assert_eq!(t.refused(1, "overloaded", 2), Some(1));
        assert_eq!(t.refused(1, "overloaded", 2), None, "out of attempts");
        let totals = t.totals(start, Duration::ZERO);
        assert_eq!((totals.acked, totals.failed), (1, 1));
        assert_eq!((totals.overloaded, totals.retries), (4, 1));
        assert_eq!(totals.errors.get("overloaded"), Some(&1));
        // The accepted attempt's own wait, not the time since the first.
        assert!(totals.ack.max_ms().unwrap() < 100.0);
    }
}
