//! Device cursors, moved by `delivered` frames and written to the store in batches (once a
//! second and at shutdown) rather than one write per frame. A cursor lost in a crash only
//! means the device is offered a few messages again, which it drops by `inbox_seq`.

use crate::store::{CursorMove, DeviceRecord, Store};
use confab_proto::{DeviceId, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;

/// Cursors waiting to be saved.
#[derive(Default)]
pub struct CursorBook {
    pending: Mutex<HashMap<DeviceId, u64>>,
}

impl CursorBook {
    /// Notes that `device` has everything up to `inbox_seq`.
    pub fn note(&self, device: DeviceId, inbox_seq: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let cursor = pending.entry(device).or_insert(0);
        *cursor = (*cursor).max(inbox_seq);
    }

    /// Notes that `device` is in use, so its `last_active_at` (what decides which device a
    /// login past the limit logs out) is stamped with the next save; at most once a minute.
    pub fn touch(&self, device: &DeviceRecord) {
        const EVERY_MS: i64 = 60_000;
        if Timestamp::now().millis() - device.last_active_at.millis() >= EVERY_MS {
            self.note(device.id, 0);
        }
    }

    /// Writes the pending cursors; returns those that moved.
    pub async fn flush(&self, store: &dyn Store) -> Vec<CursorMove> {
        let batch: Vec<_> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Vec::new();
        }
        store.save_cursors(&batch).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, devices = batch.len(), "could not save device cursors");
            Vec::new()
        })
    }
}
