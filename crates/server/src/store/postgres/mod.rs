//! The PostgreSQL store, for running several nodes on one database (cluster mode, part 1).
//! Built here so far: connecting (a `deadpool-postgres` pool of `tokio-postgres`
//! connections, which pipeline concurrent queries) and the schema with its migrations
//! (`schema.rs`). The `Store` traits come next, with the same conformance suite as the
//! embedded store; until then `App` cannot run on it.

pub mod schema;

use crate::store::{StoreError, StoreResult};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use tokio_postgres::NoTls;

/// A pool of connections to one PostgreSQL database whose schema is current.
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`) with up to
    /// `connections` connections and brings the schema up to date.
    pub async fn connect(url: &str, connections: usize) -> StoreResult<Self> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("not a PostgreSQL URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let store = Self { pool };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        drop(client);
        Ok(store)
    }

    /// The database's schema version.
    pub async fn schema_version(&self) -> StoreResult<i64> {
        schema::version(&*self.client().await?).await
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("cannot reach PostgreSQL: {e}")))
    }
}
