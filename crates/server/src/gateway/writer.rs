//! A session's writing half. It streams the inbox after the device's cursor, registers with
//! the hub, streams once more to catch what was committed meanwhile, then goes live. Any live
//! entry already sent is skipped; one that jumps ahead waits a moment for the entries before
//! it (`ahead.rs`), then fills the gap from the store. So the device sees every entry once,
//! in order, across the switch.

use super::ahead::Ahead;
use super::hub::{Control, Outbound, Registration};
use super::session::{Sink, close_now};
use crate::state::AppState;
use axum::extract::ws::{Message as Ws, Utf8Bytes};
use confab_proto::limits::{PAGE_MAX, close};
use confab_proto::{DeviceId, UserId};
use flume::Receiver;
use futures_util::SinkExt;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// A write that takes longer than this ends the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;

/// What the writer task owns.
pub(super) struct WriterTask {
    pub sink: Sink,
    /// The session's outbound queue.
    pub rx: Receiver<Outbound>,
    /// Goes live once the backlog is sent.
    pub registration: Registration,
    pub control: Arc<Control>,
    pub app: AppState,
    pub user: UserId,
    pub device: DeviceId,
    /// The inbox entry the device has.
    pub cursor: u64,
}

impl WriterTask {
    /// Not `async`: the writer's future goes straight to its task and takes no room in the
    /// session's own.
    pub(super) fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(write_loop(self))
    }
}

async fn write_loop(
    WriterTask {
        mut sink,
        rx,
        registration,
        control,
        app,
        user,
        device,
        cursor,
    }: WriterTask,
) {
    let mut writer = Writer {
        sink: &mut sink,
        app: &app,
        user,
        device,
        last: cursor,
        control: &control,
        ahead: Ahead::default(),
    };
    let live = async {
        writer.backlog().await?;
        registration.go_live();
        writer.backlog().await?;
        // Registered now, so later changes arrive live; these are the ones from before.
        writer.presence().await?;
        let mut recheck = app
            .bus
            .recheck_after()
            .map(|after| tokio::time::Instant::now() + after);
        loop {
            let held = writer.ahead.deadline();
            // Timers first, so a steady stream of frames cannot put them off.
            let first = tokio::select! {
                biased;
                _ = control.closed() => return Ok(()),
                () = until(held) => {
                    writer.fill_ahead().await?;
                    writer.flush().await?;
                    continue;
                }
                () = until(recheck) => {
                    recheck = None;
                    writer.catch_up().await?;
                    writer.flush().await?;
                    continue;
                }
                item = rx.recv_async() => item.ok(),
            };
            let Some(first) = first else { return Ok(()) };
            writer.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                match rx.try_recv() {
                    Ok(item) => writer.feed(item).await?,
                    Err(_) => break,
                }
            }
            writer.flush().await?;
        }
    };
    // Whatever the writer is waiting on (a slow reader, the store), a close (a revocation,
    // a drain, a full queue) ends it at once.
    let result: Result<(), ()> = tokio::select! {
        biased;
        _ = control.closed() => Ok(()),
        result = live => result,
    };
    drop(registration);
    if result.is_err() {
        // The socket or the store failed the writer: the session ends with it (the reader
        // too), so no send is acked into a queue nobody writes.
        control.close(close::INTERNAL);
    }
    let code = control.code().unwrap_or(close::NORMAL);
    if result.is_ok() && (code == close::GOING_AWAY || code == close::NORMAL) {
        // Finished frames queued before the close (a drain's `reconnect`) still go out, best
        // effort. Messages do not: the device gets them from its cursor next time. And a
        // revoked or lagging session gets nothing more at all.
        while let Ok(item) = rx.try_recv() {
            if let Outbound::Frame(_) = item
                && writer.feed(item).await.is_err()
            {
                break;
            }
        }
        let _ = writer.flush().await;
    }

    if result.is_ok() {
        close_now(&mut sink, code).await;
    }
}

/// The writing half's state: the socket and the last inbox entry sent.
struct Writer<'a> {
    sink: &'a mut Sink,
    app: &'a AppState,
    user: UserId,
    device: DeviceId,
    last: u64,
    /// Where the reader learns how far this session has been sent (see `Control::sent`).
    control: &'a Control,
    /// Live entries waiting for the ones before them.
    ahead: Ahead,
}

/// Resolves at `at`, or never. The timer is boxed: a session waits on it rarely, and an idle
/// one should not carry its room.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => Box::pin(tokio::time::sleep_until(at)).await,
        None => std::future::pending().await,
    }
}

// The catch-up steps and gap fills are boxed, so their state takes no room in a live
// session's future. (Not `Box::pin` at the call site: the compiler may still reserve room
// for the unboxed future in the caller's.)
impl Writer<'_> {
    /// The presence of the user's contacts as it was before the session registered.
    fn presence(&mut self) -> BoxFuture<'_, Result<(), ()>> {
        Box::pin(self.presence_frames())
    }

    /// Sends inbox entries after `last` until the store has no more.
    fn backlog(&mut self) -> BoxFuture<'_, Result<(), ()>> {
        Box::pin(self.backlog_pages())
    }

    /// Sends up to one page of entries after `last` and before `before`; how many it sent.
    fn fill(&mut self, before: u64) -> BoxFuture<'_, Result<usize, ()>> {
        Box::pin(self.fill_page(before))
    }

    async fn presence_frames(&mut self) -> Result<(), ()> {
        for frame in self.app.presence.snapshot(self.user).await {
            self.write(Utf8Bytes::from(frame.as_ref())).await?;
        }
        Ok(())
    }

    async fn backlog_pages(&mut self) -> Result<(), ()> {
        loop {
            let sent = self.fill(u64::MAX).await?;
            if sent < PAGE_MAX {
                return Ok(());
            }
        }
    }

    async fn fill_page(&mut self, before: u64) -> Result<usize, ()> {
        let want = usize::try_from(before.saturating_sub(self.last + 1))
            .unwrap_or(usize::MAX)
            .min(PAGE_MAX);
        if want == 0 {
            return Ok(0);
        }
        let entries = self.app.store.inbox_after(self.user, self.last, want).await.map_err(|e| {
            tracing::warn!(user = %self.user, error = %e, "could not read the inbox; closing the session");
        })?;
        let count = entries.len();
        for entry in entries {
            let json = serde_json::to_string(&entry.message).unwrap_or_default();
            self.write(message_frame(entry.inbox_seq, &json)).await?;
            self.sent(entry.inbox_seq);
        }
        self.flush().await?;
        Ok(count)
    }

    /// Queues one item on the socket, in inbox order.
    async fn feed(&mut self, item: Outbound) -> Result<(), ()> {
        match item {
            Outbound::Frame(frame) => self.write(Utf8Bytes::from(frame.as_ref())).await,
            Outbound::CatchUp => {
                self.control.begin_catch_up();
                // Events may have been lost, a logout among them.
                if !self.device_exists().await? {
                    self.control.close(close::UNAUTHORIZED);
                    return Err(());
                }
                self.catch_up().await
            }
            Outbound::Message { inbox_seq, message } => {
                if inbox_seq <= self.last {
                    return Ok(()); // already sent by the backlog or a gap fill
                }
                if inbox_seq > self.last + 1 {
                    // Ahead of its turn: wait a moment for the ones before it.
                    if self.ahead.hold(inbox_seq, message) {
                        return Ok(());
                    }
                    return self.fill_ahead().await;
                }
                self.write(message_frame(inbox_seq, &message.json)).await?;
                self.sent(inbox_seq);
                // Held entries whose turn this was.
                while let Some((inbox_seq, message)) = self.ahead.next_after(self.last) {
                    self.write(message_frame(inbox_seq, &message.json)).await?;
                    self.sent(inbox_seq);
                }
                Ok(())
            }
        }
    }

    /// The wait for entries before the held ones is over (or the hold is full): what is still
    /// missing comes from the store, then the held entries follow, in order.
    async fn fill_ahead(&mut self) -> Result<(), ()> {
        // Gap by gap: the held entries may have gaps between them too.
        while let Some(first) = self.ahead.first() {
            while self.last + 1 < first {
                self.app.metrics.inbox_gap_fills.inc();
                if self.fill(first).await? == 0 {
                    tracing::warn!(user = %self.user, from = self.last, to = first, "inbox gap not in the store");
                    break;
                }
            }
            let mut released = false;
            while let Some((inbox_seq, message)) = self.ahead.next_after(self.last) {
                self.write(message_frame(inbox_seq, &message.json)).await?;
                self.sent(inbox_seq);
                released = true;
            }
            if !released && self.ahead.first() == Some(first) {
                // The entries before it are not in the store, so neither is it (commits
                // come before events): not a real entry. Dropped, never sent.
                tracing::warn!(user = %self.user, inbox_seq = first, "a live entry the store does not have; dropped");
                self.ahead.pop_first();
            }
        }
        Ok(())
    }

    /// Sends what the store has after `last`, then the held entries that follow it.
    async fn catch_up(&mut self) -> Result<(), ()> {
        self.backlog().await?;
        while let Some((inbox_seq, message)) = self.ahead.next_after(self.last) {
            self.write(message_frame(inbox_seq, &message.json)).await?;
            self.sent(inbox_seq);
        }
        Ok(())
    }

    /// Is the session's device still logged in?
    async fn device_exists(&self) -> Result<bool, ()> {
        let devices = self.app.store.devices(self.user).await.map_err(|e| {
            tracing::warn!(user = %self.user, error = %e, "could not read the devices; closing the session");
        })?;
        Ok(devices.iter().any(|d| d.id == self.device))
    }

    /// Notes that the entry `inbox_seq` is on its way to the device.
    fn sent(&mut self, inbox_seq: u64) {
        self.last = inbox_seq;
        self.control.set_sent(inbox_seq);
    }

    async fn write(&mut self, text: Utf8Bytes) -> Result<(), ()> {
        match timeout(WRITE_TIMEOUT, self.sink.feed(Ws::Text(text))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    async fn flush(&mut self) -> Result<(), ()> {
        match timeout(WRITE_TIMEOUT, self.sink.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }
}

fn message_frame(inbox_seq: u64, message_json: &str) -> Utf8Bytes {
    format!(r#"{{"type":"message","inbox_seq":{inbox_seq},"message":{message_json}}}"#).into()
}
