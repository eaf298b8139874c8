//! Which users this node wants events for, as it changes: for a bus that subscribes per
//! user. Sessions going live say so ([`Interest::listen`]) and wait for the bus to confirm;
//! the hub reports users whose last session left ([`Interest::changed`]). The bus takes the
//! changes in batches and compares each user with the hub, so it converges on what the hub
//! holds now whatever order the changes came in.

use confab_proto::UserId;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::{Notify, oneshot};

/// Sessions waiting for a confirmation past this many are pruned of those that gave up.
const WAITERS_PRUNE: usize = 1024;

/// Users whose subscription may need to change, and sessions waiting for theirs.
#[derive(Default)]
pub struct Interest {
    changes: Mutex<Changes>,
    notify: Notify,
}

/// One batch of changes.
#[derive(Default)]
pub struct Changes {
    /// Users to compare with the hub.
    pub users: HashSet<UserId>,
    /// Told once the bus has applied the batch.
    pub waiters: Vec<oneshot::Sender<()>>,
}

impl Interest {
    /// `user`'s sessions here may have come or gone.
    pub fn changed(&self, user: UserId) {
        self.lock().users.insert(user);
        self.notify.notify_one();
    }

    /// A session of `user` went live; the receiver fires once the bus listens for `user` (or
    /// is dropped when the bus lost its connection first).
    pub fn listen(&self, user: UserId) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut changes = self.lock();
        changes.users.insert(user);
        if changes.waiters.len() >= WAITERS_PRUNE {
            changes.waiters.retain(|w| !w.is_closed());
        }
        changes.waiters.push(tx);
        drop(changes);
        self.notify.notify_one();
        rx
    }

    /// The changes since the last call, waiting for some if there are none.
    pub async fn next(&self) -> Changes {
        loop {
            let changes = std::mem::take(&mut *self.lock());
            if !changes.users.is_empty() || !changes.waiters.is_empty() {
                return changes;
            }
            self.notify.notified().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Changes> {
        self.changes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
