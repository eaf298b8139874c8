//! What the cluster tests share: a cluster (database, NATS, nodes) and raw WebSocket
//! devices that keep every frame they get.

#![allow(dead_code)]

use confab_client::{Client, ConversationId, UserId};
use confab_cluster::database::Database;
use confab_cluster::nats::NatsCluster;
use confab_cluster::node::{Node, NodeConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Settings every test node runs with: cheap password hashing, limits out of the way.
pub const TEST_ENV: &[(&str, &str)] = &[
    ("CONFAB_PASSWORD_HASH_MEMORY_KIB", "64"),
    ("CONFAB_PASSWORD_HASH_ITERATIONS", "1"),
    ("CONFAB_SEND_RATE_PER_SEC", "100000"),
    ("CONFAB_SEND_BURST", "100000"),
    ("CONFAB_AUTH_RATE_PER_MIN", "100000"),
    ("CONFAB_LOOKUP_RATE_PER_MIN", "100000"),
];

/// Nodes on one database and a three-server NATS cluster.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub nats: NatsCluster,
    pub db: Database,
}

/// A logged-in device's HTTP client.
pub struct User {
    pub client: Client,
    pub id: UserId,
    pub token: String,
}

impl Cluster {
    /// `nodes` nodes with the test settings.
    pub async fn start(nodes: usize) -> Self {
        Self::start_with(nodes, &[]).await
    }

    /// `nodes` nodes with the test settings and `env`.
    pub async fn start_with(nodes: usize, env: &[(&str, &str)]) -> Self {
        let db = Database::create("confab_cluster_test").await.unwrap();
        let nats = NatsCluster::start(3).await.unwrap();
        let mut cluster = Self {
            nodes: Vec::new(),
            nats,
            db,
        };
        for _ in 0..nodes {
            cluster.add_node(env).await;
        }
        cluster
    }

    /// One more node.
    pub async fn add_node(&mut self, env: &[(&str, &str)]) {
        let all: Vec<(&str, &str)> = TEST_ENV.iter().chain(env).copied().collect();
        let node = Node::start(&NodeConfig {
            binary: Path::new(env!("CARGO_BIN_EXE_confab")),
            store: &self.db.url(),
            bus: &self.nats.urls(),
            env: &all,
        })
        .await
        .unwrap();
        self.nodes.push(node);
    }

    /// Signs `name` up through node `node` and logs in there.
    pub async fn user(&self, node: usize, name: &str) -> User {
        Client::new(&self.nodes[node].url)
            .unwrap()
            .signup(name, "password-x", None)
            .await
            .unwrap();
        self.login(node, name).await
    }

    /// A new device of `name`, logged in through node `node`.
    pub async fn login(&self, node: usize, name: &str) -> User {
        let anon = Client::new(&self.nodes[node].url).unwrap();
        let login = anon.login(name, "password-x", None).await.unwrap();
        User {
            id: login.user.id,
            client: anon.with_token(login.token.clone()),
            token: login.token,
        }
    }
}

/// An inbox entry as a device got it.
#[derive(Debug, Clone)]
pub struct Got {
    pub inbox_seq: u64,
    pub seq: u64,
    pub client_msg_id: String,
}

impl Got {
    /// The entry a `message` frame carries.
    pub fn from_frame(frame: &Value) -> Self {
        Self {
            inbox_seq: frame["inbox_seq"].as_u64().unwrap(),
            seq: frame["message"]["seq"].as_u64().unwrap(),
            client_msg_id: frame["message"]["client_msg_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket session that keeps every frame it reads until a test asks for it.
pub struct Device {
    ws: Socket,
    frames: VecDeque<Value>,
    /// The `welcome` frame.
    pub welcome: Value,
    /// The close code, once the server closed.
    pub closed: Option<u16>,
}

/// How often a waiting device heartbeats (the fastest interval the tests configure).
const HEARTBEAT: Duration = Duration::from_millis(800);

/// How long a test waits for frames it expects.
const PATIENCE: Duration = Duration::from_secs(30);

impl Device {
    /// Connects to the node at `url` and says hello (from `cursor`, or the stored one).
    pub async fn connect(url: &str, token: &str, cursor: Option<u64>) -> Self {
        let ws_url = format!("{}/v1/ws", url.replace("http://", "ws://"));
        let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
        let mut hello = json!({"type": "hello", "token": token});
        if let Some(cursor) = cursor {
            hello["cursor"] = cursor.into();
        }
        ws.send(Ws::text(hello.to_string())).await.unwrap();
        let mut device = Self {
            ws,
            frames: VecDeque::new(),
            welcome: Value::Null,
            closed: None,
        };
        device.welcome = device
            .take(PATIENCE, |f| f["type"] == "welcome")
            .await
            .expect("welcome");
        device
    }

    /// Sends a message; its `req` is the `client_msg_id`.
    pub async fn send(&mut self, conversation: ConversationId, client_msg_id: &str, body: &str) {
        self.write(json!({
            "type": "send",
            "req": client_msg_id,
            "conversation_id": conversation.to_string(),
            "client_msg_id": client_msg_id,
            "body": body,
        }))
        .await;
    }

    /// Sends a message and waits for its ack: how a client keeps its own messages in order
    /// (a session stores up to 16 sends at once, in any order).
    pub async fn send_in_order(
        &mut self,
        conversation: ConversationId,
        client_msg_id: &str,
        body: &str,
    ) -> Value {
        self.send(conversation, client_msg_id, body).await;
        self.acks(1).await.remove(0)
    }

    /// Sends any frame.
    pub async fn write(&mut self, frame: Value) {
        self.ws.send(Ws::text(frame.to_string())).await.unwrap();
    }

    /// The next `n` acks (error frames fail the test).
    pub async fn acks(&mut self, n: usize) -> Vec<Value> {
        let mut acks = Vec::new();
        while acks.len() < n {
            let frame = self
                .take(PATIENCE, |f| f["type"] == "ack" || f["type"] == "error")
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "only {} of {n} acks came (closed: {:?})",
                        acks.len(),
                        self.closed
                    )
                });
            assert_eq!(frame["type"], "ack", "a send failed: {frame}");
            acks.push(frame);
        }
        acks
    }

    /// The next `n` inbox entries.
    pub async fn messages(&mut self, n: usize) -> Vec<Got> {
        let mut got = Vec::new();
        while got.len() < n {
            let Some(frame) = self.take(PATIENCE, |f| f["type"] == "message").await else {
                panic!(
                    "only {} of {n} messages came: {:?}",
                    got.len(),
                    got.iter().map(|g: &Got| g.inbox_seq).collect::<Vec<_>>()
                )
            };
            got.push(Got::from_frame(&frame));
        }
        got
    }

    /// Asserts that no further inbox entry comes within a moment.
    pub async fn no_more_messages(&mut self) {
        if let Some(extra) = self
            .take(Duration::from_millis(700), |f| f["type"] == "message")
            .await
        {
            panic!("one entry too many: {extra}");
        }
    }

    /// The next frame matching `want` within `wait`, keeping the others for later.
    pub async fn take(&mut self, wait: Duration, want: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.frames.iter().position(&want) {
            return self.frames.remove(i);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Heartbeats while waiting, as a client does, so the session stays alive.
            let beat = tokio::time::Instant::now() + HEARTBEAT;
            let next = match tokio::time::timeout_at(beat.min(deadline), self.ws.next()).await {
                Ok(next) => next,
                Err(_) if beat < deadline => {
                    let heartbeat = json!({"type": "heartbeat"}).to_string();
                    if self.ws.send(Ws::text(heartbeat)).await.is_err() {
                        self.closed.get_or_insert(1006);
                        return None;
                    }
                    continue;
                }
                Err(_) => return None,
            };
            let frame = match next {
                Some(Ok(Ws::Text(text))) => serde_json::from_str::<Value>(&text).unwrap(),
                Some(Ok(Ws::Close(close))) => {
                    self.closed = Some(close.map_or(1005, |c| c.code.into()));
                    return None;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.closed.get_or_insert(1006);
                    return None;
                }
            };
            if want(&frame) {
                return Some(frame);
            }
            if frame["type"] != "heartbeat_ack" {
                self.frames.push_back(frame);
            }
        }
    }
}
