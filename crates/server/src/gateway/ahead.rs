//! Live inbox entries that arrived ahead of their turn. The entries of one commit reach the
//! hub from separate tasks (each sender's), so one may overtake another by a moment; the
//! writer holds it briefly for those before it instead of reading the store at once. Only
//! when they do not come (the bus lost them, or they were committed on a node this one does
//! not hear from) does it fill the gap from the store.

use crate::bus::PreparedMessage;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long an entry waits for the ones before it.
pub const HOLD: Duration = Duration::from_millis(50);
/// Entries held at most; one more ends the wait at once.
const HOLD_MAX: usize = 64;

/// The held entries; nothing at all (one pointer) while none is held, as in almost every
/// session almost all the time.
#[derive(Default)]
pub struct Ahead(Option<Box<Held>>);

struct Held {
    since: Instant,
    entries: BTreeMap<u64, Arc<PreparedMessage>>,
}

impl Ahead {
    /// Holds `message`, the entry `inbox_seq`; false when full (the caller fills the gap
    /// now).
    pub fn hold(&mut self, inbox_seq: u64, message: Arc<PreparedMessage>) -> bool {
        let held = self.0.get_or_insert_with(|| {
            Box::new(Held {
                since: Instant::now(),
                entries: BTreeMap::new(),
            })
        });
        held.entries.insert(inbox_seq, message);
        held.entries.len() <= HOLD_MAX
    }

    /// When the wait for the first held entry's predecessors ends, if one is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.0.as_ref().map(|held| held.since + HOLD)
    }

    /// The lowest held entry.
    pub fn first(&self) -> Option<u64> {
        self.0
            .as_ref()
            .and_then(|held| held.entries.keys().next().copied())
    }

    /// The held entry right after `last`, if it is held; entries at or before `last` (sent
    /// meanwhile) are dropped on the way.
    pub fn next_after(&mut self, last: u64) -> Option<(u64, Arc<PreparedMessage>)> {
        let held = self.0.as_mut()?;
        let next = loop {
            let Some(entry) = held.entries.first_entry() else {
                break None;
            };
            match *entry.key() {
                seq if seq <= last => {
                    entry.remove();
                }
                seq if seq == last + 1 => break Some((seq, entry.remove())),
                _ => break None,
            }
        };
        if held.entries.is_empty() {
            self.0 = None;
        }
        next
    }

    /// The lowest held entry, taken out whatever its turn.
    pub fn pop_first(&mut self) -> Option<(u64, Arc<PreparedMessage>)> {
        let held = self.0.as_mut()?;
        let first = held.entries.pop_first();
        if held.entries.is_empty() {
            self.0 = None;
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::{ConversationId, Message, MessageId, MessageKind, Timestamp, UserId};

    fn message(seq: u64) -> Arc<PreparedMessage> {
        Arc::new(PreparedMessage::new(&Message::new(
            MessageId(seq as i64),
            ConversationId(1),
            seq,
            UserId(1),
            format!("c{seq}"),
            MessageKind::Text,
            "x".into(),
            Timestamp(0),
        )))
    }

    #[test]
    fn held_entries_come_out_in_order_once_their_turn_comes() {
        let mut ahead = Ahead::default();
        assert!(ahead.deadline().is_none());
        assert!(ahead.hold(4, message(4)));
        assert!(ahead.hold(3, message(3)));
        assert!(ahead.deadline().is_some());
        assert_eq!(ahead.first(), Some(3));
        // 2 is not there yet: nothing comes out.
        assert!(ahead.next_after(1).is_none());
        // 2 was sent: 3 and 4 follow, then the hold is empty and costs nothing.
        assert_eq!(ahead.next_after(2).map(|(s, _)| s), Some(3));
        assert_eq!(ahead.next_after(3).map(|(s, _)| s), Some(4));
        assert!(ahead.next_after(4).is_none());
        assert!(ahead.deadline().is_none());
    }

    #[test]
    fn entries_sent_meanwhile_are_dropped_and_the_hold_is_bounded() {
        let mut ahead = Ahead::default();
        ahead.hold(5, message(5));
        ahead.hold(7, message(7));
        // A gap fill sent up to 6: 5 goes, 7 is next.
        assert_eq!(ahead.next_after(6).map(|(s, _)| s), Some(7));
        for seq in 10..10 + HOLD_MAX as u64 {
            assert!(ahead.hold(seq, message(seq)));
        }
        assert!(!ahead.hold(1_000, message(1_000)), "one past the bound");
        let mut taken = Vec::new();
        while let Some((seq, _)) = ahead.pop_first() {
            taken.push(seq);
        }
        assert_eq!(taken.len(), HOLD_MAX + 1);
        assert!(taken.windows(2).all(|w| w[0] < w[1]), "in order");
        assert!(ahead.first().is_none() && ahead.deadline().is_none());
    }
}
