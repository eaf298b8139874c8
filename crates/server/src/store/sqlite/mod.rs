//! The embedded store: SQLite in WAL mode with `synchronous=FULL`. All writes go through
//! one writer thread that commits concurrent writes together (group commit, `writer.rs`);
//! reads use a small pool of read-only connections.

mod conversations;
mod devices;
mod hot;
mod inbox;
mod members;
mod messages;
mod nodes;
mod push;
mod rows;
mod schema;
mod users;
mod writer;

use super::{Store, StoreError, StoreResult};
use crate::ids::Snowflake;
use crate::metrics::StoreMetrics;
use async_trait::async_trait;
use deadpool_sqlite::rusqlite::{self, Connection};
use deadpool_sqlite::{Hook, HookError, Pool, Runtime};
use std::path::Path;
use std::sync::Arc;
use writer::Writer;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    writer: Writer,
    readers: Pool,
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
        let path = dir.join("confab.db");
        crate::files::private_file(&path)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
        let mut conn = Connection::open(&path).map_err(backend)?;
        configure(&conn).map_err(backend)?;
        schema::migrate(&mut conn).map_err(backend)?;
        let writer = Writer::start(conn, commit_batch_max, snowflake, metrics)?;

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
        Ok(Self { writer, readers })
    }

    /// The database under `dir`, which must exist, with its schema brought up to date: for
    /// reading it whole (`store/copy.rs`) while no node runs on it.
    pub(crate) fn open_existing(dir: &Path) -> StoreResult<Connection> {
        let path = dir.join("confab.db");
        if !path.exists() {
            return Err(StoreError::Backend(format!(
                "no embedded store at {}",
                path.display()
            )));
        }
        let mut conn = Connection::open(&path).map_err(backend)?;
        configure(&conn).map_err(backend)?;
        schema::migrate(&mut conn).map_err(backend)?;
        Ok(conn)
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

/// Settings every connection of the writer gets.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
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
        self.writer.close().await;
        self.readers.close();
    }
}
