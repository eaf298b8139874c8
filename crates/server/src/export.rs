//! Export: everything a user can see, as one JSON document (`AccountExport`), written while
//! it is read, a page at a time: an account with years of history costs the node a page of
//! memory, not all of it. At most [`AT_ONCE`] exports run on a node, one per user.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use bytes::Bytes;
use confab_proto::{Device, DeviceId, Timestamp, UserId};
use futures_util::Stream;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Exports running at once on a node; more wait (`overloaded`).
const AT_ONCE: usize = 4;
/// Conversations and messages read per store call.
const PAGE: usize = 50;
/// Bytes gathered before they are handed to the connection.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks written ahead of a slow reader.
const CHUNKS_AHEAD: usize = 4;

/// The exports running on this node.
pub struct Exports {
    slots: Arc<Semaphore>,
    running: Arc<Mutex<HashSet<UserId>>>,
}

impl Default for Exports {
    fn default() -> Self {
        Self {
            slots: Arc::new(Semaphore::new(AT_ONCE)),
            running: Arc::default(),
        }
    }
}

/// One export's place: its slot on the node and its user's mark, given back when it ends.
struct Running {
    _slot: OwnedSemaphorePermit,
    running: Arc<Mutex<HashSet<UserId>>>,
    user: UserId,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.user);
    }
}

impl Exports {
    /// Starts `me`'s export: the document's bytes, as they are read. `rate_limited` while
    /// another export of `me` runs; `overloaded` while the node runs [`AT_ONCE`]. A store
    /// failure midway cuts the document short (the JSON does not parse), and is logged.
    pub fn start(
        &self,
        app: AppState,
        me: UserId,
        device: DeviceId,
    ) -> ApiResult<impl Stream<Item = Result<Bytes, std::io::Error>> + use<>> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::overloaded(5_000))?;
        if !self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(me)
        {
            return Err(ApiError::rate_limited_for(
                5_000,
                "an export of this account is running already; wait for it to finish",
            ));
        }
        let running = Running {
            _slot: slot,
            running: self.running.clone(),
            user: me,
        };
        let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
        tokio::spawn(async move {
            let _running = running;
            let mut out = Out {
                tx,
                buf: Vec::with_capacity(CHUNK_BYTES),
            };
            if let Err(e) = write(&app, me, device, &mut out).await
                && !out.tx.is_closed()
            {
                tracing::error!(user = %me, error = %e.message, "an export failed midway");
                let _ = out
                    .tx
                    .send(Err(std::io::Error::other("export failed")))
                    .await;
            }
        });
        Ok(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        }))
    }
}

/// Writes the document, in the field order of `AccountExport`.
async fn write(app: &AppState, me: UserId, device: DeviceId, out: &mut Out) -> ApiResult<()> {
    let user = app
        .store
        .user(me)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let privacy = app.store.privacy(&[me]).await?.pop().unwrap_or_default();
    let devices: Vec<Device> = app
        .store
        .devices(me)
        .await?
        .into_iter()
        .map(|d| d.shown_to(device))
        .collect();
    out.raw(b"{\"format\":\"confab-export-1\",\"exported_at\":");
    out.json(&Timestamp::now())?;
    for (name, value) in [
        ("user", serde_json::to_value(&user)),
        ("privacy", serde_json::to_value(privacy)),
        ("devices", serde_json::to_value(&devices)),
        ("blocks", serde_json::to_value(app.blocks.list(me).await?)),
    ] {
        out.raw(format!(",\"{name}\":").as_bytes());
        out.json(&value.map_err(ApiError::internal)?)?;
    }
    out.raw(b",\"conversations\":[");
    let mut after = None;
    let mut first = true;
    loop {
        let (page, next) = app.conversations.list(me, after, PAGE).await?;
        for conversation in page {
            if !first {
                out.raw(b",");
            }
            first = false;
            out.raw(b"{\"conversation\":");
            out.json(&conversation)?;
            out.raw(b",\"messages\":[");
            let mut seen = 0;
            let mut first_message = true;
            loop {
                let messages = app
                    .conversations
                    .history(me, conversation.id, Some(seen), None, PAGE)
                    .await?;
                for message in &messages {
                    if !first_message {
                        out.raw(b",");
                    }
                    first_message = false;
                    out.json(message)?;
                    out.flush_if_full().await?;
                }
                match messages.last() {
                    Some(last) if messages.len() == PAGE => seen = last.seq,
                    _ => break,
                }
            }
            out.raw(b"]}");
            out.flush_if_full().await?;
        }
        match next {
            Some(position) => after = Some(position),
            None => break,
        }
    }
    out.raw(b"]}");
    out.flush().await
}

/// The document's bytes on their way out, gathered into chunks of about [`CHUNK_BYTES`].
struct Out {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Out {
    fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn json(&mut self, value: &impl Serialize) -> ApiResult<()> {
        serde_json::to_writer(&mut self.buf, value).map_err(ApiError::internal)
    }

    async fn flush_if_full(&mut self) -> ApiResult<()> {
        if self.buf.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Hands the bytes gathered to the connection; fails when the reader went away.
    async fn flush(&mut self) -> ApiResult<()> {
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx
            .send(Ok(chunk))
            .await
            .map_err(|_| ApiError::internal("the reader went away"))
    }
}
