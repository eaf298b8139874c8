//! Tests of the real `confab` binary as a separate process: what only a process shows
//! (SIGKILL, restart on the same data dir, the server's own memory).

#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with the server's tests.
#[allow(dead_code)]
#[path = "../../server/tests/support/postgres.rs"]
mod pg;

use confab_client::{Client, ConversationId, MessagesQuery};
use futures_util::{SinkExt, StreamExt};
use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Node {
    child: Child,
    url: String,
}

impl Node {
    /// Starts `confab serve` on a free port and `dir`, waiting until it answers.
    async fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Node {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port, dir, extra_env).await
    }

    /// Starts `confab serve` on `port`.
    async fn start_on(port: u16, dir: &Path, extra_env: &[(&str, &str)]) -> Node {
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab"));
        cmd.args(["serve", "--listen", &listen, "--data-dir"])
            .arg(dir)
            .env("CONFAB_PASSWORD_HASH_MEMORY_KIB", "64")
            .env("CONFAB_PASSWORD_HASH_ITERATIONS", "1")
            .env("CONFAB_SEND_RATE_PER_SEC", "100000")
            .env("CONFAB_SEND_BURST", "100000")
            .env("CONFAB_AUTH_RATE_PER_MIN", "100000")
            .env("CONFAB_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let url = format!("http://{listen}");
        // Killed and waited for on drop, also when it never comes up.
        let node = Node {
            child: cmd.spawn().unwrap(),
            url,
        };
        let client = Client::new(&node.url).unwrap();
        for _ in 0..200 {
            if client.healthz().await.is_ok() {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("confab did not start on {listen}");
    }

    /// SIGTERM, and waits for the clean stop.
    fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success(), "a clean stop exits 0");
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn user(url: &str, name: &str) -> (Client, confab_client::UserId) {
    let anon = Client::new(url).unwrap();
    let user = anon.signup(name, "password-x", None).await.unwrap();
    let login = anon.login(name, "password-x", None).await.unwrap();
    (anon.with_token(login.token), user.id)
}

async fn all_messages(client: &Client, chat: ConversationId) -> Vec<confab_client::Message> {
    let mut out: Vec<confab_client::Message> = Vec::new();
    loop {
        let after = out.last().map_or(0, |m| m.seq);
        let page = client
            .messages(chat, MessagesQuery::after(after).limit(200))
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_stream_loses_nothing_acknowledged() {
    sigkill_mid_stream(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_stream_on_postgres_loses_nothing_acknowledged() {
    let db = pg::TestDatabase::new().await;
    sigkill_mid_stream(&[("CONFAB_STORE", &db.url())]).await;
}

/// 16 senders as fast as acks come back; SIGKILL after 500 acks; a restart on the same
/// store has every acked message at its seq, gap-free, and a resend of every attempted id
/// stores each exactly once.
async fn sigkill_mid_stream(store: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), store).await;
    let (ada, _) = user(&node.url, "ada").await;
    let (_bob, bob_id) = user(&node.url, "bob").await;
    let chat = ada.direct(bob_id).await.unwrap().id;

    // 16 senders, each sending its own numbered messages as fast as acks come back.
    let attempted = Arc::new(Mutex::new(BTreeSet::new()));
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let mut senders = Vec::new();
    for s in 0..16 {
        let (ada, attempted, acked) = (ada.clone(), attempted.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("s{s}-{n}");
                attempted.lock().unwrap().insert(id.clone());
                match ada
                    .send_http(chat, Some(id.clone()), format!("body {id}"))
                    .await
                {
                    Ok(sent) => acked.lock().unwrap().insert(id, sent.message.seq),
                    Err(_) => return,
                };
            }
        }));
    }
    // Let it run, then kill -9 mid-stream.
    while acked.lock().unwrap().len() < 500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.kill9();
    for s in senders {
        s.await.unwrap();
    }
    let attempted = attempted.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 500);

    // The killed node's id stays leased for a while: the restart takes another (unset
    // node_id), as an operator's supervisor would.
    let node = Node::start(dir.path(), store).await;
    let ada = Client::new(&node.url)
        .unwrap()
        .with_token(ada.token().unwrap().to_owned());
    let stored = all_messages(&ada, chat).await;
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "seq is gap-free"
    );
    let by_id: HashMap<&str, u64> = stored
        .iter()
        .map(|m| (m.client_msg_id.as_str(), m.seq))
        .collect();
    assert_eq!(by_id.len(), stored.len(), "no client_msg_id stored twice");
    for (id, seq) in &acked {
        assert_eq!(
            by_id.get(id.as_str()),
            Some(seq),
            "acknowledged {id} is present at its seq"
        );
    }

    // Resending every attempted id stores nothing twice.
    for id in &attempted {
        let sent = ada
            .send_http(chat, Some(id.clone()), format!("body {id}"))
            .await
            .unwrap();
        assert_eq!(sent.deduplicated, by_id.contains_key(id.as_str()), "{id}");
    }
    let after = all_messages(&ada, chat).await;
    assert_eq!(
        after.len(),
        attempted.len(),
        "exactly one message per attempted client_msg_id"
    );
    let seqs: Vec<u64> = after.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=after.len() as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_costs_the_server_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[("CONFAB_SESSION_QUEUE", "64")]).await;
    let (ada, _) = user(&node.url, "ada").await;
    let (bob, bob_id) = user(&node.url, "bob").await;
    let bob_token = bob.token().unwrap().to_owned();
    let chat = ada.direct(bob_id).await.unwrap().id;

    // Warm up: the same traffic with nobody connected, so caches and allocator pools are
    // already grown when the stalled reader arrives.
    let body = "z".repeat(40_000);
    for i in 0..500 {
        ada.send_http(chat, Some(format!("warm-{i}")), body.clone())
            .await
            .unwrap();
    }
    let before = node.metric("process_resident_memory_bytes").await;

    let ws_url = format!("{}/v1/ws", node.url.replace("http://", "ws://"));
    let (mut stalled, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    // From the inbox head, so the flood arrives live rather than as backlog.
    let hello = serde_json::json!({"type": "hello", "token": bob_token, "cursor": 500}).to_string();
    stalled
        .send(tokio_tungstenite::tungstenite::Message::text(hello))
        .await
        .unwrap();
    // 80 MB sent to a reader that never reads. Buffering it would grow the server by as much.
    for i in 0..2000 {
        ada.send_http(chat, Some(format!("flood-{i}")), body.clone())
            .await
            .unwrap();
    }
    let after = node.metric("process_resident_memory_bytes").await;
    assert!(
        node.metric("confab_queue_full_closes_total").await >= 1.0,
        "closed with 4008"
    );
    assert_eq!(node.metric("confab_connections").await, 0.0);
    let grown_mb = (after - before) / 1e6;
    eprintln!("server RSS grew {grown_mb:.1} MB while 80 MB went to a stalled reader");
    assert!(
        grown_mb < 40.0,
        "server memory grew {grown_mb:.1} MB for one stalled reader"
    );
    drop(stalled.next());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_rides_out_a_server_crash_without_loss_or_duplicates() {
    use confab_client::{Connection, Event};
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut node = Node::start_on(port, dir.path(), &[]).await;
    let (ada, _) = user(&node.url, "ada").await;
    let (bob, bob_id) = user(&node.url, "bob").await;
    let bob_token = bob.token().unwrap().to_owned();
    let chat = ada.direct(bob_id).await.unwrap().id;
    let fast = std::time::Duration::from_millis(50);
    let (ada_conn, _ada_events) = Connection::builder(&node.url, ada.token().unwrap())
        .reconnect_backoff(fast, fast * 4)
        .connect()
        .await
        .unwrap();
    let (_bob_conn, mut bob_events) = Connection::builder(&node.url, bob_token)
        .cursor(0)
        .reconnect_backoff(fast, fast * 4)
        .connect()
        .await
        .unwrap();
    for i in 0..20 {
        ada_conn
            .send(chat, Some(format!("before-{i}")), format!("before {i}"))
            .await
            .unwrap();
    }
    node.kill9();
    // Sends made while the server is down complete once it is back, each stored once.
    let during = tokio::spawn({
        let ada_conn = ada_conn.clone();
        async move {
            for i in 0..20 {
                ada_conn
                    .send(chat, Some(format!("during-{i}")), format!("during {i}"))
                    .await
                    .unwrap();
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = Node::start_on(port, dir.path(), &[]).await;
    during.await.unwrap();

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 40 {
        match tokio::time::timeout_at(deadline, bob_events.recv())
            .await
            .expect("bob got all 40 in 20 s")
        {
            Some(Event::Message { inbox_seq, message }) => {
                seen.push((inbox_seq, message.client_msg_id))
            }
            Some(_) => {}
            None => panic!("bob's events ended"),
        }
    }
    let inbox: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        inbox,
        (1..=40).collect::<Vec<_>>(),
        "bob saw every entry once, in order, across the crash"
    );
    let stored = all_messages(
        &Client::new(&node.url)
            .unwrap()
            .with_token(ada.token().unwrap()),
        chat,
    )
    .await;
    assert_eq!(stored.len(), 40, "no send stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_cheap() {
    // Measures (and prints) the server's resident memory per idle, authenticated session.
    // The benchmark figure is in docs/benchmarks.md; this test guards against falling back
    // to tungstenite's default buffers (about 135 KiB a session).
    const SESSIONS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    // A device holds at most 8 sessions and a user 32 devices: 8 sessions per login.
    let anon = Client::new(&node.url).unwrap();
    let mut tokens = Vec::new();
    for u in 0..(SESSIONS + 200).div_ceil(8 * 30) {
        let name = format!("idle{u}");
        anon.signup(&name, "password-x", None).await.unwrap();
        for _ in 0..30 {
            tokens.push(anon.login(&name, "password-x", None).await.unwrap().token);
        }
    }
    let tokens = std::sync::Arc::new(tokens);
    let ws_url = format!("{}/v1/ws", node.url.replace("http://", "ws://"));
    // Warm the runtime and allocator with a first round, then measure a second one.
    let mut sockets = Vec::with_capacity(2 * SESSIONS);
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let open = |n: usize| {
        let (ws_url, tokens, opened) = (ws_url.clone(), tokens.clone(), opened.clone());
        async move {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let i = opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let token = &tokens[i / 8];
                let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
                let hello = serde_json::json!({"type": "hello", "token": token}).to_string();
                ws.send(tokio_tungstenite::tungstenite::Message::text(hello))
                    .await
                    .unwrap();
                let welcome = ws.next().await.unwrap().unwrap();
                assert!(welcome.to_text().unwrap().contains("welcome"));
                out.push(ws);
            }
            out
        }
    };
    sockets.extend(open(200).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = node.metric("process_resident_memory_bytes").await;
    sockets.extend(open(SESSIONS).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = node.metric("process_resident_memory_bytes").await;
    assert_eq!(
        node.metric("confab_connections").await as usize,
        SESSIONS + 200
    );
    let per_session_kib = (after - before) / SESSIONS as f64 / 1024.0;
    eprintln!("idle session: {per_session_kib:.1} KiB of server memory each ({SESSIONS} sessions)");
    assert!(
        per_session_kib < 64.0,
        "{per_session_kib:.1} KiB per idle session"
    );
}

/// A Web Push service that holds the first request forever (the push is in flight when
/// the server dies) and accepts every later one.
async fn push_service() -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::http::HeaderMap;
    let topics = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().fallback({
        let topics = topics.clone();
        move |headers: HeaderMap| {
            let topics = topics.clone();
            async move {
                let topic = headers
                    .get("topic")
                    .and_then(|t| t.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let first = {
                    let mut topics = topics.lock().unwrap();
                    topics.push(topic);
                    topics.len() == 1
                };
                if first {
                    std::future::pending::<()>().await;
                }
                axum::http::StatusCode::CREATED
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, topics)
}

/// The killed node's claim on the outbox row runs out (twice `push_timeout_ms` plus 10 s,
/// here 14 s), and the restarted node pushes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_interrupted_by_sigkill_is_sent_after_restart() {
    let (push_url, topics) = push_service().await;
    let dir = tempfile::tempdir().unwrap();
    // Proxies from the environment must not carry pushes: one would connect on the
    // server's behalf, past its address checks. (This one refuses every connection.)
    let env = [
        ("CONFAB_PUSH_ALLOW_HTTP_ENDPOINTS", "true"),
        ("CONFAB_PUSH_TIMEOUT_MS", "2000"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("ALL_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
    ];
    let mut node = Node::start(dir.path(), &env).await;
    let (bob, _) = user(&node.url, "bob").await;
    let anon = Client::new(&node.url).unwrap();
    let alice = anon.signup("alice", "password-x", None).await.unwrap();
    let login = anon.login("alice", "password-x", None).await.unwrap();
    // The P-256 base point: a valid browser key; this service does not decrypt.
    let p256dh =
        "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
    let subscribed = reqwest::Client::new()
        .post(format!("{}/v1/push/subscriptions", node.url))
        .bearer_auth(&login.token)
        .json(&serde_json::json!({
            "kind": "webpush",
            "endpoint": format!("{push_url}/push/alice"),
            "keys": {"p256dh": p256dh, "auth": "AAAAAAAAAAAAAAAAAAAAAA"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        subscribed.status(),
        201,
        "{}",
        subscribed.text().await.unwrap()
    );
    let chat = bob.direct(alice.id).await.unwrap();
    bob.send_http(chat.id, None, "wake up").await.unwrap();

    let wait_for = |n: usize| {
        let topics = topics.clone();
        async move {
            for _ in 0..1200 {
                if topics.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("the push service got fewer than {n} requests");
        }
    };
    wait_for(1).await; // in flight, never answered
    node.kill9();
    let node = Node::start(dir.path(), &env).await;
    wait_for(2).await;
    let topics = topics.lock().unwrap().clone();
    assert_eq!(topics[0], format!("c{}", chat.id));
    assert_eq!(
        topics[1], topics[0],
        "the same notification, after the restart"
    );
    drop(node);
}

/// `confab copy-store`: a stopped node's embedded store into an empty PostgreSQL database,
/// then a node on it serves what was there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_store_moves_an_embedded_store_into_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), &[]).await;
    let (ada, _) = user(&node.url, "ada").await;
    let (_bob, bob_id) = user(&node.url, "bob").await;
    let chat = ada.direct(bob_id).await.unwrap().id;
    ada.send_http(chat, None, "before the move").await.unwrap();
    node.stop();

    let db = pg::TestDatabase::new().await;
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["copy-store", "--data-dir"])
        .arg(dir.path())
        .args(["--to", &db.url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("messages  1 rows"), "{stdout}");
    // Again: refused, with a reason, and a failing exit status.
    let again = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["copy-store", "--data-dir"])
        .arg(dir.path())
        .args(["--to", &db.url()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty database"));

    let elsewhere = tempfile::tempdir().unwrap();
    let node = Node::start(elsewhere.path(), &[("CONFAB_STORE", &db.url())]).await;
    let ada = Client::new(&node.url)
        .unwrap()
        .with_token(ada.token().unwrap().to_owned());
    let history = all_messages(&ada, chat).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].body, "before the move");
}
