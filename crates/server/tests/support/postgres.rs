//! A fresh PostgreSQL database per test, made on the machine's server and dropped when the
//! test ends, so parallel tests and reruns never see each other's rows (the same piece
//! `scripts/cluster` uses). The server is `CONFAB_TEST_POSTGRES` (an admin URL), by default
//! the local one `scripts/test` starts: `postgres://postgres@127.0.0.1:5432/postgres`. A
//! server that cannot be reached fails the test, loudly; nothing is skipped.

use confab_cluster::database::Database;

/// A database of its own for one test; dropped (with any connections left) on drop.
pub struct TestDatabase(Database);

impl TestDatabase {
    pub async fn new() -> Self {
        Self(
            Database::create("confab_test")
                .await
                .unwrap_or_else(|e| panic!("{e:#}")),
        )
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// A plain connection, for checking what the store wrote.
    pub async fn client(&self) -> tokio_postgres::Client {
        self.0.client().await.unwrap_or_else(|e| panic!("{e:#}"))
    }
}
