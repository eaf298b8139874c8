//! A fresh PostgreSQL database per test, made on the machine's server and dropped when the
//! test ends, so parallel tests and reruns never see each other's rows. The server is
//! `CONFAB_TEST_POSTGRES` (an admin URL), by default the local one `scripts/test` starts:
//! `postgres://postgres@127.0.0.1:5432/postgres`. A server that cannot be reached fails the
//! test, loudly; nothing is skipped.

use std::sync::atomic::{AtomicU32, Ordering};
use tokio_postgres::NoTls;

fn admin_url() -> String {
    std::env::var("CONFAB_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin() -> tokio_postgres::Client {
    let url = admin_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url} ({e}). The PostgreSQL tests need it: \
             `scripts/test` starts the local cluster; or set CONFAB_TEST_POSTGRES"
            )
        });
    tokio::spawn(connection);
    client
}

/// A database of its own for one test; dropped (with any connections left) on drop.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    pub async fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "confab_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Self { name }
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        let mut config: tokio_postgres::Config = admin_url().parse().unwrap();
        config.dbname(&self.name);
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres");
        format!("postgres://{user}@{host}:{port}/{}", self.name)
    }

    /// A plain connection, for checking what the store wrote.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime's reach: a thread with its own does the work.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                admin()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok();
            });
        })
        .join();
    }
}
