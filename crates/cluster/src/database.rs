//! A fresh PostgreSQL database, made on a server and dropped (with any connections left)
//! on drop. The server is an admin URL, by default the local one at 127.0.0.1:5432 as
//! `scripts/test` starts it, or `CONFAB_TEST_POSTGRES`.

use anyhow::Context;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio_postgres::NoTls;

/// The admin URL: `CONFAB_TEST_POSTGRES`, or the local server.
pub fn admin_url() -> String {
    std::env::var("CONFAB_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin() -> anyhow::Result<tokio_postgres::Client> {
    let url = admin_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .with_context(|| {
            format!(
                "PostgreSQL is not reachable at {url}: start it (scripts/test does), or set \
                 CONFAB_TEST_POSTGRES to an admin URL"
            )
        })?;
    tokio::spawn(connection);
    Ok(client)
}

/// A database of its own.
pub struct Database {
    name: String,
}

impl Database {
    /// Makes a database named after `prefix`, this process and a counter.
    pub async fn create(prefix: &str) -> anyhow::Result<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin().await?;
        // A leftover of an earlier run with the same process id.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        Ok(Self { name })
    }

    /// Its URL, for `confab serve --store`.
    pub fn url(&self) -> String {
        let mut config: tokio_postgres::Config = admin_url()
            .parse()
            .unwrap_or_else(|_| tokio_postgres::Config::new());
        config.dbname(&self.name);
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres");
        format!("postgres://{user}@{host}:{port}/{}", self.name)
    }

    /// A plain connection, for looking at what the nodes wrote.
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run outside any runtime: a thread with its own does the work.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(admin) = admin().await {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
