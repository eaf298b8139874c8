//! The single writer thread and its group commit.
//!
//! Each write is a closure run inside a SAVEPOINT of the current batch transaction, so one
//! failing write does not undo the others. The thread also owns the [`Hot`] cache, which
//! it empties whenever a rollback could have undone something cached. A batch is everything queued when the thread
//! wakes (at most `commit_batch_max`); it is committed with one fsync, and only then are the
//! callers answered: an `Ok` from [`Writer::write`] means the write is on disk.

use super::hot::Hot;
use super::{StoreError, StoreResult};
use crate::ids::Snowflake;
use crate::metrics::StoreMetrics;
use deadpool_sqlite::rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What a write closure gets: the connection inside the batch, the id generator and the
/// writer's cache.
pub struct Tx<'a> {
    /// The connection, inside the batch's transaction.
    pub conn: &'a Connection,
    /// Message ids.
    pub ids: &'a Snowflake,
    /// Member lists and inbox heads; see [`Hot`].
    pub hot: &'a Hot,
}

type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Tx<'_>) -> Answer + Send>;

/// Writes queued beyond this wait (backpressure to the callers), bounding memory.
const QUEUE: usize = 16_384;
/// How often the WAL is checkpointed and truncated, so it cannot grow without bound.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// Handle to the writer thread.
pub struct Writer {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the thread that owns `conn`.
    pub fn start(
        conn: Connection,
        batch_max: usize,
        ids: Arc<Snowflake>,
        metrics: StoreMetrics,
    ) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("confab-store-writer".into())
            .spawn(move || run(conn, rx, batch_max, &ids, &metrics))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `f` in the next batch and answers once that batch is committed.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> StoreResult<T> + Send + 'static,
    {
        let sender = self.sender()?;
        let (answer_tx, answer_rx) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let result = in_savepoint(tx, f);
            Box::new(move |committed: Result<(), String>| {
                let result = committed.map_err(StoreError::Backend).and(result);
                let _ = answer_tx.send(result);
            })
        });
        sender.send(job).await.map_err(|_| StoreError::Closed)?;
        answer_rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops taking writes, lets the thread commit what is queued, and waits for it.
    pub async fn close(&self) {
        drop(self.tx.lock().ok().and_then(|mut tx| tx.take()));
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    fn sender(&self) -> StoreResult<mpsc::Sender<Job>> {
        self.tx
            .lock()
            .ok()
            .and_then(|tx| tx.clone())
            .ok_or(StoreError::Closed)
    }
}

fn in_savepoint<T>(tx: &Tx<'_>, f: impl FnOnce(&Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
    // Cached statements: parsing these three on every write showed in the profile.
    tx.conn.prepare_cached("SAVEPOINT write")?.execute([])?;
    let result = catch_unwind(AssertUnwindSafe(|| f(tx)))
        .unwrap_or_else(|_| Err(StoreError::Backend("a store write panicked".into())));
    if result.is_err() {
        tx.hot.forget_all();
        tx.conn.prepare_cached("ROLLBACK TO write")?.execute([])?;
    }
    tx.conn.prepare_cached("RELEASE write")?.execute([])?;
    result
}

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    batch_max: usize,
    ids: &Snowflake,
    metrics: &StoreMetrics,
) {
    let hot = Hot::default();
    let tx = Tx {
        conn: &conn,
        ids,
        hot: &hot,
    };
    let mut last_checkpoint = Instant::now();
    let mut jobs = Vec::with_capacity(batch_max);
    let mut answers = Vec::with_capacity(batch_max);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let size = jobs.len();
        let committed = match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                answers.extend(jobs.drain(..).map(|job| job(&tx)));
                conn.execute_batch("COMMIT").map_err(|e| {
                    let _ = conn.execute_batch("ROLLBACK");
                    e.to_string()
                })
            }
            Err(e) => {
                // The jobs never ran; dropping them drops their answer channels, which
                // their callers see as a store failure.
                jobs.clear();
                Err(e.to_string())
            }
        };
        if let Err(e) = &committed {
            hot.forget_all();
            tracing::error!(error = %e, batch = size, "store commit failed; the batch's writes were refused");
        }
        metrics.commit_batch_size.observe(size as f64);
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        for answer in answers.drain(..) {
            answer(committed.clone());
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            checkpoint(&conn);
            last_checkpoint = Instant::now();
        }
    }
    checkpoint(&conn);
}

fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
    }
}
