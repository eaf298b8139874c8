//! The embedded store: SQLite in WAL mode with `synchronous=FULL`. All writes go through
//! one writer thread that commits concurrent writes together (group commit, `writer.rs`);
//! reads use a small pool of read-only connections.

mod blocks;
mod changes;
mod checkpoint;
mod conversations;
mod devices;
mod hot;
mod inbox;
mod logins;
mod members;
mod messages;
mod nodes;
mod online;
mod push;
mod rows;
mod schema;
mod search;
mod settings;
mod users;
mod writer;

use super::{Store, StoreError, StoreResult};
use crate::ids::Snowflake;
use crate::metrics::StoreMetrics;
use async_trait::async_trait;
use checkpoint::Checkpointer;
use deadpool_sqlite::rusqlite::{self, Connection};
use deadpool_sqlite::{Hook, HookError, Pool, Runtime};
use std::path::Path;
use std::sync::Arc;
use writer::Writer;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    writer: Writer,
    checkpointer: Checkpointer,
    readers: Pool,
    /// Held until the store is closed: one process per data directory (`lock`).
    lock: std::sync::Mutex<Option<std::fs::File>>,
}

impl SqliteStore {
    /// Opens (or creates) the database under `dir`, migrating its schema.
    pub async fn open(
        dir: &Path,
        read_connections: usize,
        commit_batch_max: usize,
        snowflake: Arc<Snowflake>,
        metrics: StoreMetrics,
    ) -> StoreResult<Self> {
        crate::files::private_dir(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let lock = lock(dir)?;
        let path = dir.join("confab.db");
        crate::files::private_file(&path)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
        let mut conn = Connection::open(&path).map_err(backend)?;
        configure(&conn).map_err(backend)?;
        schema::migrate(&mut conn)?;
        // The search indexer follows the messages by id (search.rs): they must keep
        // increasing across restarts.
        let newest: i64 = conn
            .query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
                r.get(0)
            })
            .map_err(backend)?;
        snowflake.follow(newest);
        // The checkpointer copies the WAL; the writer does only if it falls far behind.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(backend)?;
        let writer = Writer::start(conn, commit_batch_max, snowflake, metrics)?;
        let checkpoints = Connection::open(&path).map_err(backend)?;
        configure(&checkpoints).map_err(backend)?;
        let checkpointer = Checkpointer::start(checkpoints)
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;

        let readers = deadpool_sqlite::Config::new(&path)
            .builder(Runtime::Tokio1)
            .map_err(|e| StoreError::Backend(e.to_string()))?
            .max_size(read_connections)
            .post_create(Hook::async_fn(|conn, _| {
                Box::pin(async move {
                    conn.interact(|c| {
                        c.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
                    })
                    .await
                    .map_err(|e| HookError::message(e.to_string()))?
                    .map_err(HookError::Backend)?;
                    Ok(())
                })
            }))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            writer,
            checkpointer,
            readers,
            lock: std::sync::Mutex::new(Some(lock)),
        })
    }

    /// The database under `dir`, which must exist, with its schema brought up to date: for
    /// reading it whole (`store/copy.rs`) while no node runs on it.
    /// The connection comes with the directory's lock, held as long as the file is.
    pub(crate) fn open_existing(dir: &Path) -> StoreResult<(Connection, std::fs::File)> {
        let path = dir.join("confab.db");
        if !path.exists() {
            return Err(StoreError::Backend(format!(
                "no embedded store at {}",
                path.display()
            )));
        }
        let lock = lock(dir)?;
        let mut conn = Connection::open(&path).map_err(backend)?;
        configure(&conn).map_err(backend)?;
        schema::migrate(&mut conn)?;
        Ok((conn, lock))
    }

    /// Runs `f` on a read connection, off the async runtime's threads.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self
            .readers
            .get()
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        conn.interact(move |c| f(c))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

/// Takes `dir/confab.lock`, exclusively: a second process on the same directory would be a
/// second writer with its own caches of what the first one writes.
fn lock(dir: &Path) -> StoreResult<std::fs::File> {
    let path = dir.join("confab.lock");
    crate::files::private_file(&path)
        .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
    let file = std::fs::File::open(&path)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Backend(format!(
            "another confab process is using {} (it holds {}); one process per data \
             directory: stop that one, or give this one its own --data-dir",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Backend(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// WAL pages after which the writer checkpoints itself: only if the checkpointer
/// (`checkpoint.rs`) cannot keep up, as it bounds the WAL too (`journal_size_limit`).
const WRITER_CHECKPOINT_PAGES: i64 = 16_384;

/// Settings every connection that writes gets (the writer's, the checkpointer's, a copy's).
/// `secure_delete` zeroes what a write frees,
/// so text deleted for everyone leaves the database file (and the WAL at the next
/// checkpoint), not only the rows.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -16384;",
    )?;
    // Room for the writer's multi-row inbox inserts (one statement per chunk size).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            e => StoreError::Backend(e.to_string()),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        // The writer's last checkpoint then has the WAL to itself.
        self.checkpointer.close().await;
        self.writer.close().await;
        self.readers.close();
        // The directory is free for the next process, even while this one winds down.
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
    }
}
