//! Smoke test of the instrument: every scenario runs briefly against a real server started
//! in this process, and its last stdout line is checked for the promised JSON fields,
//! nothing lost, nothing duplicated, something acked or delivered. No speeds are asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_server::{App, Config};
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A server on a free port, stopped on drop.
struct TestServer {
    url: String,
    _dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl TestServer {
    /// Cheap password hashing and generous rate limits, as a benchmark run needs.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            listen: addr,
            data_dir: dir.path().to_owned(),
            password_hash_memory_kib: 64,
            password_hash_iterations: 1,
            send_rate_per_sec: 1_000_000,
            send_burst: 1_000_000,
            auth_rate_per_min: 1_000_000,
            ..Config::default()
        };
        let app = App::open(config).await.unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move { confab_server::run(listener, app, shutdown).await.unwrap() }
        });
        Self {
            url: format!("http://{addr}"),
            _dir: dir,
            shutdown,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Runs the load generator with `args` against `server`; its last stdout line, parsed.
async fn loadgen(server: &TestServer, args: &[&str]) -> Value {
    let pid = std::process::id().to_string();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_confab-loadgen"))
        .args(args)
        .args(["--url", &server.url, "--quiet", "--timeout-secs", "240"])
        .args(["--server-pid", &pid])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the load generator did not stop by itself")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    let json: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last:?}\n{stdout}\n{stderr}"));
    assert!(
        stdout.contains("lost") && stdout.contains("duplicated")
            || json["scenario"] == "connections",
        "the table shows lost and duplicated:\n{stdout}"
    );
    println!("{stdout}");
    json
}

fn has_fields(json: &Value, fields: &[&str]) {
    for field in fields {
        assert!(json.get(*field).is_some(), "no field {field} in {json}");
    }
}

fn count(json: &Value, field: &str) -> u64 {
    json[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count in {json}"))
}

const MESSAGING_FIELDS: &[&str] = &[
    "scenario",
    "offered_per_sec",
    "acked_per_sec",
    "ack_p50_ms",
    "ack_p99_ms",
    "deliver_p50_ms",
    "deliver_p90_ms",
    "deliver_p99_ms",
    "deliver_p999_ms",
    "deliver_max_ms",
    "lost",
    "duplicated",
];

fn assert_clean_messaging(json: &Value) {
    has_fields(json, MESSAGING_FIELDS);
    assert_eq!(count(json, "lost"), 0, "{json}");
    assert_eq!(count(json, "duplicated"), 0, "{json}");
    assert_eq!(count(json, "send_errors"), 0, "{json}");
    assert_eq!(count(json, "unacked"), 0, "{json}");
    assert_eq!(count(json, "inbox_gaps"), 0, "{json}");
    assert!(count(json, "acked") > 0, "{json}");
    assert_eq!(count(json, "acked"), count(json, "sent"), "{json}");
    assert!(count(json, "deliveries") > 0, "{json}");
    assert!(json["deliver_p50_ms"].is_number(), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections() {
    let server = TestServer::start().await;
    let json = loadgen(
        &server,
        &[
            "connections",
            "--sessions",
            "50",
            "--hold",
            "1",
            "--heartbeat-ms",
            "200",
            "--settle-ms",
            "200",
        ],
    )
    .await;
    has_fields(
        &json,
        &[
            "scenario",
            "sessions",
            "connected",
            "failed",
            "connect_per_sec",
            "server_rss_per_session_bytes",
            "server_cpu_pct",
        ],
    );
    assert_eq!(json["scenario"], "connections");
    assert_eq!(count(&json, "sessions"), 50);
    assert_eq!(count(&json, "connected"), 50, "{json}");
    assert_eq!(count(&json, "failed"), 0, "{json}");
    assert_eq!(count(&json, "users"), 5, "{json}");
    assert_eq!(count(&json, "dropped"), 0, "{json}");
    assert!(json["server_rss_per_session_bytes"].is_number(), "{json}");
    assert!(json["server_cpu_pct"].is_number(), "{json}");
    assert!(count(&json, "heartbeat_acks") > 0, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_two_worker_processes() {
    let server = TestServer::start().await;
    let json = loadgen(
        &server,
        &[
            "connections",
            "--sessions",
            "40",
            "--users",
            "7",
            "--hold",
            "1",
            "--heartbeat-ms",
            "200",
            "--settle-ms",
            "200",
            "--workers",
            "2",
            "--source-ips",
            "2",
        ],
    )
    .await;
    assert_eq!(count(&json, "workers"), 2, "{json}");
    assert_eq!(count(&json, "source_ips"), 2, "{json}");
    assert_eq!(count(&json, "connected"), 40, "{json}");
    assert_eq!(count(&json, "failed"), 0, "{json}");
    assert_eq!(
        count(&json, "connect_samples"),
        40,
        "merged histograms: {json}"
    );
    assert!(count(&json, "heartbeat_acks") > 0, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct() {
    let server = TestServer::start().await;
    let json = loadgen(
        &server,
        &[
            "direct",
            "--pairs",
            "5",
            "--rate",
            "200",
            "--duration",
            "2",
            "--drain",
            "30",
        ],
    )
    .await;
    assert_eq!(json["scenario"], "direct");
    has_fields(&json, &["delivered_per_sec"]);
    assert_clean_messaging(&json);
    assert_eq!(count(&json, "sent"), 400, "{json}");
    assert_eq!(count(&json, "delivered"), 400, "{json}");
    assert_eq!(
        count(&json, "echoes"),
        400,
        "the sender's own device sees each: {json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group() {
    let server = TestServer::start().await;
    let json = loadgen(
        &server,
        &[
            "group",
            "--groups",
            "2",
            "--members",
            "10",
            "--rate",
            "50",
            "--duration",
            "2",
            "--drain",
            "30",
        ],
    )
    .await;
    assert_eq!(json["scenario"], "group");
    has_fields(&json, &["deliveries_per_sec"]);
    assert_clean_messaging(&json);
    assert_eq!(count(&json, "sent"), 100, "{json}");
    assert_eq!(count(&json, "deliveries"), 100 * 9, "{json}");
    assert_eq!(count(&json, "delivered"), 100, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync() {
    let server = TestServer::start().await;
    let json = loadgen(&server, &["sync", "--backlog", "500"]).await;
    assert_eq!(json["scenario"], "sync");
    has_fields(
        &json,
        &["backlog", "seconds", "per_sec", "lost", "duplicated"],
    );
    assert_eq!(count(&json, "backlog"), 500);
    assert_eq!(count(&json, "received"), 500, "{json}");
    assert_eq!(count(&json, "lost"), 0, "{json}");
    assert_eq!(count(&json, "duplicated"), 0, "{json}");
    assert_eq!(json["order_ok"], true, "{json}");
    assert!(json["seconds"].as_f64().is_some_and(|s| s > 0.0), "{json}");
}
