//! PostgreSQL going away under a running node: sends are answered `overloaded` (with
//! `retry_after_ms`) within seconds, never hang and are never acked; sessions go on for what
//! needs no database (heartbeats); when the database is back the node recovers by itself,
//! and nothing acked before the outage is lost. The same when the database freezes (keeps
//! its connections, answers nothing). The test owns its PostgreSQL cluster (initdb in a
//! temporary directory) so it can stop and freeze it.

use crate::gateway::RawWs;
use crate::harness::TestServer;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL cluster of this test's own, on a free port; stopped on drop.
struct OwnedPostgres {
    dir: tempfile::TempDir,
    port: u16,
}

fn as_postgres(program: &str, args: &[&str]) -> Command {
    // PostgreSQL refuses to run as root; CI runs as root.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let path = format!("{BIN}/{program}");
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(path)
    };
    command.args(args);
    command
}

fn run(mut command: Command) {
    let out = command.output().unwrap_or_else(|e| {
        panic!("cannot run {command:?}: {e}; this test needs PostgreSQL 15's binaries in {BIN}")
    });
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl OwnedPostgres {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::harness::free_addr().port();
        let _ = Command::new("chown")
            .args(["postgres:postgres", &dir.path().display().to_string()])
            .status();
        let data = Self::data(dir.path());
        run(as_postgres(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        ));
        let owned = Self { dir, port };
        owned.up();
        owned
    }

    fn data(dir: &Path) -> PathBuf {
        dir.join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn up(&self) {
        let data = Self::data(self.dir.path()).display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        // The server's output goes to a file: one inheriting our pipes would keep
        // `output()` waiting for it to exit.
        let log = self.dir.path().join("log").display().to_string();
        let mut start = as_postgres(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
        start
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let status = start.status().unwrap();
        assert!(
            status.success(),
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Sends `signal` (STOP, CONT) to the server and every backend: STOP is a database that
    /// still holds its connections but answers nothing (a frozen host, a network cut
    /// without resets).
    fn signal(&self, signal: &str) {
        let pid_file = Self::data(self.dir.path()).join("postmaster.pid");
        let Some(postmaster) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        else {
            return;
        };
        let children = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in std::iter::once(postmaster.as_str()).chain(children.split_whitespace()) {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), pid])
                .status();
        }
    }

    /// An immediate stop: what a crash or a power cut looks like to clients.
    fn down(&self) {
        let data = Self::data(self.dir.path()).display().to_string();
        run(as_postgres(
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        ));
    }
}

impl Drop for OwnedPostgres {
    fn drop(&mut self) {
        self.signal("CONT");
        let data = Self::data(self.dir.path()).display().to_string();
        let _ = as_postgres("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_means_overloaded_then_recovery_and_nothing_lost() {
    let postgres = OwnedPostgres::start();
    let server = TestServer::with(|c| c.store = postgres.url()).await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(
            ada.client
                .send_http(chat.id, Some(format!("before-{i}")), format!("before {i}"))
                .await
                .unwrap()
                .message,
        );
    }
    let mut ws = RawWs::hello(&server, &bob.login.token).await;
    // Live before the database goes: the writer answers frames only once its catch-up from
    // the store is over (a catch-up the outage cut short would end the session).
    ws.send(json!({"type": "heartbeat"})).await;
    for _ in 0..100 {
        match ws.next().await {
            Some(frame) if frame["type"] == "heartbeat_ack" => break,
            Some(_) => continue,
            None => panic!("the session ended before the outage"),
        }
    }

    postgres.down();
    // A send: answered quickly with overloaded, not acked, and the node does not hang.
    let started = Instant::now();
    let refused = ada
        .client
        .send_http(chat.id, Some("during".into()), "during the outage")
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(confab_client::ErrorCode::Overloaded),
        "{refused}"
    );
    assert!(refused.retry_after().is_some(), "{refused}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the send took {:?} to be refused",
        started.elapsed()
    );
    // What needs no database goes on.
    ws.send(json!({"type": "heartbeat"})).await;
    let mut acked_heartbeat = false;
    for _ in 0..100 {
        match ws.next().await {
            Some(frame) if frame["type"] == "heartbeat_ack" => {
                acked_heartbeat = true;
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    assert!(acked_heartbeat, "heartbeats stopped with the database");

    postgres.up();
    // The node recovers by itself: the client's retry of the same message goes through.
    let during = resend_until_stored(&ada.client, chat.id, "during", "during the outage").await;
    let history = bob
        .client
        .messages(chat.id, confab_client::MessagesQuery::after(0).limit(200))
        .await
        .unwrap();
    for message in &acked {
        assert!(
            history.iter().any(|m| m.id == message.id),
            "lost {message:?}"
        );
    }
    assert_eq!(history.last().unwrap().id, during.id);
    assert_eq!(
        history
            .iter()
            .filter(|m| m.client_msg_id == "during")
            .count(),
        1,
        "the retry was stored once"
    );
}

/// A database that keeps its connections open but answers nothing: sends and reads are
/// answered `overloaded` within 5 s, nothing hangs, and the node recovers when it answers
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_means_overloaded_within_5_s() {
    let postgres = OwnedPostgres::start();
    let server = TestServer::with(|c| c.store = postgres.url()).await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let before = ada
        .client
        .send_http(chat.id, Some("before".into()), "before")
        .await
        .unwrap()
        .message;

    postgres.signal("STOP");
    let started = Instant::now();
    let refused = ada
        .client
        .send_http(chat.id, Some("frozen".into()), "while frozen")
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(confab_client::ErrorCode::Overloaded),
        "{refused}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the send took {:?} to be refused",
        started.elapsed()
    );
    let started = Instant::now();
    let refused = bob
        .client
        .messages(chat.id, confab_client::MessagesQuery::after(0).limit(10))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(confab_client::ErrorCode::Overloaded),
        "{refused}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the read took {:?} to be refused",
        started.elapsed()
    );

    postgres.signal("CONT");
    resend_until_stored(&ada.client, chat.id, "frozen", "while frozen").await;
    let history = bob
        .client
        .messages(chat.id, confab_client::MessagesQuery::after(0).limit(10))
        .await
        .unwrap();
    assert_eq!(history.first().map(|m| m.id), Some(before.id));
    assert_eq!(
        history
            .iter()
            .filter(|m| m.client_msg_id == "frozen")
            .count(),
        1,
        "the send given up on, and its retry, are one message"
    );
}

/// Retries a send (the same client id each time) until the node, recovered by itself,
/// stores it; at most 30 s.
async fn resend_until_stored(
    client: &confab_client::Client,
    chat: confab_client::ConversationId,
    client_msg_id: &str,
    body: &str,
) -> confab_client::Message {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .send_http(chat, Some(client_msg_id.into()), body)
            .await
        {
            Ok(sent) => return sent.message,
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
