//! A test server started in-process on a free port, stopped on drop, and helpers to make
//! users and connections. The store is the embedded one, or PostgreSQL (a fresh database
//! per server) when `CONFAB_TEST_STORE=postgres`: the one line where the suite chooses
//! its backend.

use crate::pg::TestDatabase;
use confab_client::{Client, Connection, Event, Events, LoginResponse};
use confab_server::{App, Config};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where a test server keeps its data: a directory, and on PostgreSQL a database of its
/// own. A restart hands it to the next server.
pub struct Data {
    dir: tempfile::TempDir,
    db: Option<TestDatabase>,
}

impl Data {
    pub async fn new() -> Self {
        let db = match std::env::var("CONFAB_TEST_STORE").as_deref() {
            Ok("postgres") => Some(TestDatabase::new().await),
            Ok("sqlite") | Err(_) => None,
            Ok(other) => panic!("CONFAB_TEST_STORE={other}: use sqlite or postgres"),
        };
        Self {
            dir: tempfile::tempdir().unwrap(),
            db,
        }
    }

    /// The embedded store, whatever `CONFAB_TEST_STORE` says.
    pub fn sqlite() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            db: None,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Holds the store's write lock for `hold`, as a stalled disk or database would: every
    /// write waits until it is let go.
    pub async fn stall_writes(&self, hold: Duration) {
        match &self.db {
            Some(db) => {
                let client = db.client().await;
                client
                    .batch_execute("BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE")
                    .await
                    .unwrap();
                tokio::time::sleep(hold).await;
                client.batch_execute("ROLLBACK").await.unwrap();
            }
            None => {
                let path = self.dir.path().join("confab.db");
                tokio::task::spawn_blocking(move || {
                    let conn = deadpool_sqlite::rusqlite::Connection::open(path).unwrap();
                    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                    std::thread::sleep(hold);
                    conn.execute_batch("ROLLBACK").unwrap();
                })
                .await
                .unwrap();
            }
        }
    }
}

pub struct TestServer {
    pub url: String,
    /// Where `/metrics` is read: `url`, or `metrics_listen` when the test set one.
    pub metrics_url: String,
    pub dir: Data,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Settings for tests: cheap password hashing and generous rate limits, so tests measure
/// behaviour rather than the limits (which have tests of their own).
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        password_hash_memory_kib: 64,
        password_hash_iterations: 1,
        send_rate_per_sec: 100_000,
        send_burst: 100_000,
        auth_rate_per_min: 100_000,
        lookup_rate_per_min: 100_000,
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Data::new().await;
        let mut config = test_config(dir.path());
        tweak(&mut config);
        Self::on(dir, config).await
    }

    /// Starts a server on `dir` (a restart reuses the same data).
    pub async fn on(dir: Data, mut config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        config.listen = addr;
        config.data_dir = dir.path().to_owned();
        // A test that chose its store (several nodes on one database) keeps it.
        if let (Some(db), true) = (&dir.db, config.store.is_empty()) {
            config.store = db.url();
        }
        let metrics_listen = config.metrics_listen;
        let app = App::open(config).await.unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { confab_server::run(listener, app, shutdown).await.unwrap() }
        });
        Self {
            url: format!("http://{addr}"),
            metrics_url: metrics_listen
                .map_or_else(|| format!("http://{addr}"), |a| format!("http://{a}")),
            dir,
            shutdown,
            task: Some(task),
        }
    }

    /// Stops gracefully and hands back the data.
    pub async fn stop(mut self) -> Data {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        let empty = Data {
            dir: tempfile::tempdir().unwrap(),
            db: None,
        };
        std::mem::replace(&mut self.dir, empty)
    }

    pub fn anon(&self) -> Client {
        Client::new(&self.url).unwrap()
    }

    /// Signs up `name` (password "password-<name>") and logs in one device.
    pub async fn user(&self, name: &str) -> TestUser {
        let anon = self.anon();
        anon.signup(name, &format!("password-{name}"), None)
            .await
            .unwrap();
        self.login(name).await
    }

    /// Another device of an existing user.
    pub async fn login(&self, name: &str) -> TestUser {
        let anon = self.anon();
        let login = anon
            .login(name, &format!("password-{name}"), Some("test"))
            .await
            .unwrap();
        TestUser {
            client: anon.with_token(login.token.clone()),
            login,
            url: self.url.clone(),
        }
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.metrics_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("metric {name} missing from:\n{text}"))
    }
}

impl TestServer {
    /// The number `sql` (a `SELECT count(*)` written for both backends) counts in the
    /// server's own database: what a test checks is truly stored, or truly gone.
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.dir.db {
            Some(db) => db.client().await.query_one(sql, &[]).await.unwrap().get(0),
            None => {
                let path = self.dir.path().join("confab.db");
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    deadpool_sqlite::rusqlite::Connection::open(path)
                        .unwrap()
                        .query_row(&sql, [], |r| r.get(0))
                        .unwrap()
                })
                .await
                .unwrap()
            }
        }
    }

    /// Waits (up to 10 s) until metric `name` satisfies `ok`.
    pub async fn wait_metric(&self, name: &str, ok: impl Fn(f64) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let value = self.metric(name).await;
            if ok(value) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} stayed at {value}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A loopback address with a port free right now, for a second listener.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct TestUser {
    pub client: Client,
    pub login: LoginResponse,
    pub url: String,
}

impl TestUser {
    pub fn id(&self) -> confab_client::UserId {
        self.login.user.id
    }

    /// A WebSocket session from `cursor`, waiting until it is connected.
    pub async fn connect(&self, cursor: u64) -> (Connection, Events) {
        Connection::builder(&self.url, self.login.token.clone())
            .cursor(cursor)
            .connect()
            .await
            .unwrap()
    }
}

/// Waits for the next `message` event, skipping other events; panics after `wait`.
pub async fn next_message(events: &mut Events, wait: Duration) -> (u64, confab_client::Message) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Message { inbox_seq, message })) => return (inbox_seq, message),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no message within {wait:?}"),
        }
    }
}

/// Collects `n` message events.
pub async fn messages(events: &mut Events, n: usize) -> Vec<(u64, confab_client::Message)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(next_message(events, Duration::from_secs(20)).await);
    }
    out
}

/// Asserts that no message event arrives within `wait`.
pub async fn no_message(events: &mut Events, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Message { inbox_seq, message })) => {
                panic!("unexpected message {inbox_seq}: {message:?}")
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}

/// Waits up to `wait` for an event matching `want`, skipping others.
pub async fn wait_for(
    events: &mut Events,
    wait: Duration,
    want: impl Fn(&Event) -> bool,
) -> Option<Event> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if want(&event) => return Some(event),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}
