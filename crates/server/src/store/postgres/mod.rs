//! The PostgreSQL store, for running several nodes on one database (cluster mode, part 1).
//! A `deadpool-postgres` pool of `tokio-postgres` connections; the schema is embedded
//! migrations (`schema.rs`). Each write is one transaction that takes its row locks in one
//! order, conversations by id then users by id, so writes from different nodes never
//! deadlock; one that PostgreSQL aborts anyway (a serialization failure, a deadlock, a
//! unique key another node took first) is retried here and never reaches a client.
//!
//! Sequence numbers are assigned under those locks at commit, never from a PostgreSQL
//! sequence (which can skip and does not follow commit order), so `seq` and `inbox_seq`
//! stay gap-free whichever node commits. Sends, the most frequent write by far, are group
//! committed (`commit.rs`): many in one transaction.

mod accounts;
mod blocks;
mod changes;
mod commit;
mod conversations;
mod logins;
mod messages;
mod nodes;
mod online;
mod push;
mod rows;
pub mod schema;
pub(crate) mod search;
mod settings;

use crate::ids::Snowflake;
use crate::metrics::StoreMetrics;
use crate::store::{Store, StoreError, StoreResult};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::future::BoxFuture;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Transaction};

/// Attempts of one write before a conflict between writers is reported as a fault.
const ATTEMPTS: u32 = 20;
/// The longest a store call waits for a connection, or for its work: past it the caller
/// is told the store is unavailable (clients: `overloaded`), and nothing hangs.
const DEADLINE: Duration = Duration::from_secs(4);
/// The longest a write (a send: from its queueing to its commit) may take before the caller
/// is told the store is unavailable: clients hear `overloaded` within 5 s, whatever the
/// database does.
const WRITE_DEADLINE: Duration = Duration::from_millis(4_500);

/// A pool of connections to one PostgreSQL database whose schema is current.
pub struct PostgresStore {
    pool: Pool,
    ids: Arc<Snowflake>,
    sends: commit::Committer,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`) with up to
    /// `connections` connections and brings the schema up to date. Up to `batch_max` sends
    /// are committed together. Message ids come from `ids`.
    pub async fn connect(
        url: &str,
        connections: usize,
        batch_max: usize,
        ids: Arc<Snowflake>,
        metrics: StoreMetrics,
    ) -> StoreResult<Self> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("not a PostgreSQL URL: {e}")))?;
        config.connect_timeout(DEADLINE);
        // A connection whose server vanished without a reset errors within seconds (the
        // pool then replaces it), not after TCP's quarter of an hour of retransmissions.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(15))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(10));
        // Work a caller gave up on (past its deadline) does not go on holding locks.
        if config.get_options().is_none() {
            config.options("-c statement_timeout=10000");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(DEADLINE))
            .create_timeout(Some(DEADLINE))
            .recycle_timeout(Some(DEADLINE))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let sends = commit::Committer::start(pool.clone(), batch_max.max(1), ids.clone(), metrics);
        let store = Self { pool, ids, sends };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        drop(client);
        Ok(store)
    }

    /// The database's schema version.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        self.with_client(|client| async move { schema::version(&client).await })
            .await
    }

    /// Runs `work` on a pooled connection under the store's deadline: a database that
    /// stops answering (stopped, frozen, cut off without a reset) is `Unavailable` within
    /// it, never a caller left hanging.
    async fn with_client<T, F, Fut>(&self, work: F) -> StoreResult<T>
    where
        F: FnOnce(deadpool_postgres::Client) -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        tokio::time::timeout(DEADLINE, async { work(self.client().await?).await })
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "PostgreSQL did not answer in time".into(),
                ))
            })
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}")))
    }

    /// Runs `work` in a transaction and commits it, again from the start when PostgreSQL
    /// aborts it for a conflict with another writer.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: for<'t> Fn(&'t Transaction<'t>) -> BoxFuture<'t, StoreResult<T>>,
    {
        tokio::time::timeout(WRITE_DEADLINE, self.write_now(work))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "PostgreSQL did not finish a write in time".into(),
                ))
            })
    }

    async fn write_now<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: for<'t> Fn(&'t Transaction<'t>) -> BoxFuture<'t, StoreResult<T>>,
    {
        let mut client = self.client().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let tx = client.transaction().await.map_err(pg)?;
                let value = work(&tx).await?;
                tx.commit().await.map_err(pg)?;
                Ok(value)
            }
            .await;
            match result {
                Err(StoreError::Contended(why)) if attempt < ATTEMPTS => {
                    tracing::debug!(attempt, %why, "write conflicted with another; retrying");
                }
                Err(StoreError::Contended(why)) => {
                    return Err(StoreError::Backend(format!(
                        "a write conflicted {ATTEMPTS} times in a row: {why}"
                    )));
                }
                other => return other,
            }
        }
    }
}

/// A PostgreSQL error as the store's: conflicts between writers are `Contended` (retried by
/// [`PostgresStore::write`]), everything else a fault.
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    // tokio-postgres says only "db error"; the server's own words are in the source.
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    match e.code() {
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreError::Contended(detail)
        }
        // The server going away (shutdown, restart, recovery), or no answer at all.
        Some(code)
            if code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW =>
        {
            StoreError::Unavailable(detail)
        }
        Some(_) => StoreError::Backend(detail),
        None => StoreError::Unavailable(detail),
    }
}

/// Is this a unique-key violation (another writer inserted the same key first)?
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Like [`pg`], but a unique key another writer took first is `Contended`: the write
/// starts over and then finds what the other one stored.
pub(crate) fn pg_raced(e: tokio_postgres::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Contended(e.to_string())
    } else {
        pg(e)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn close(&self) {
        self.pool.close();
    }
}
