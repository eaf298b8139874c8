//! One `confab serve` process on a free loopback port, with a data directory of its own;
//! killed on drop.

use anyhow::{Context, bail};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

/// A running node.
pub struct Node {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Kept for the node's files (the embedded store's lock, logs).
    _dir: tempfile::TempDir,
}

/// What a node is started with.
pub struct NodeConfig<'a> {
    /// The `confab` binary.
    pub binary: &'a Path,
    /// `--store`: the shared PostgreSQL database.
    pub store: &'a str,
    /// `CONFAB_BUS`: the NATS servers.
    pub bus: &'a str,
    /// More `CONFAB_*` settings.
    pub env: &'a [(&'a str, &'a str)],
}

impl Node {
    /// Starts a node and waits until it answers `/healthz`.
    pub async fn start(config: &NodeConfig<'_>) -> anyhow::Result<Self> {
        let port = crate::free_port();
        let listen = format!("127.0.0.1:{port}");
        let dir = tempfile::Builder::new().prefix("confab-node-").tempdir()?;
        let log = std::fs::File::create(dir.path().join("confab.log"))?;
        let mut cmd = Command::new(config.binary);
        cmd.args(["serve", "--listen", &listen, "--store", config.store])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Only the settings given here: not the ones of whoever runs the cluster.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CONFAB_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("CONFAB_BUS", config.bus).env("CONFAB_LOG", "warn");
        for (k, v) in config.env {
            cmd.env(k, v);
        }
        let node = Self {
            child: Some(
                cmd.spawn()
                    .with_context(|| format!("cannot run {}", config.binary.display()))?,
            ),
            url: format!("http://{listen}"),
            _dir: dir,
        };
        let health = format!("{}/healthz", node.url);
        for _ in 0..400 {
            if reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(node);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!(
            "confab did not start on {listen}; its log: {}",
            node.log_tail()
        )
    }

    /// The node's whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("confab.log")).unwrap_or_default()
    }

    /// The start of the node's log, for a failure message (a panic's backtrace follows it).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self._dir.path().join("confab.log")).unwrap_or_default();
        text.lines().take(12).collect::<Vec<_>>().join("\n")
    }

    fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{name}"), &child.id().to_string()])
                .status();
        }
    }

    /// SIGTERM: the node drains. Returns once it has exited, with whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        self.signal("TERM");
        self.child
            .take()
            .and_then(|mut c| c.wait().ok())
            .is_some_and(|s| s.success())
    }

    /// SIGTERM without waiting for the exit.
    pub fn begin_terminate(&self) {
        self.signal("TERM");
    }

    /// Waits for the process to exit; whether it exited 0.
    pub fn wait(&mut self) -> bool {
        self.child
            .take()
            .and_then(|mut c| c.wait().ok())
            .is_some_and(|s| s.success())
    }

    /// SIGKILL: the node dies mid-whatever.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A metric's value from `/metrics` (the first sample of that name).
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no metric {name}"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
