//! The checkpointer: a thread with a connection of its own that copies committed pages
//! from the WAL into the database file, so the writer thread only ever commits.
//!
//! Left to SQLite, the connection that commits the frame crossing the auto-checkpoint
//! threshold does the copy (and its fsync) inside that commit: on the writer, a tenth of
//! its time under load, with the sends of that batch waiting. A passive checkpoint here
//! runs beside the writer (WAL lets checkpoints and a writer work at once), and once the
//! WAL is copied the writer starts it over at its next transaction, so the file stays
//! bounded (`journal_size_limit`).

use deadpool_sqlite::rusqlite::Connection;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the WAL is copied: a few hundred commits' worth at full speed, so a hot page
/// written by many of them is copied once.
const EVERY: Duration = Duration::from_millis(200);

/// Handle to the checkpointer thread; stopping it is dropping the sender.
pub struct Checkpointer {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the thread that owns `conn` (a connection to the writer's database).
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("confab-store-checkpoint".into())
            .spawn(move || run(&conn, &stopped))?;
        Ok(Self {
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread after its current checkpoint and waits for it.
    pub async fn close(&self) {
        drop(self.stop.lock().ok().and_then(|mut s| s.take()));
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
        }
    }
}
