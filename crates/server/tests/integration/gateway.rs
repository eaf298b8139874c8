//! The gateway under bad input, spoken to with a plain WebSocket client: every case gets
//! the contract's close code or error frame, and the server keeps serving everyone else.

use crate::harness::{TestServer, next_message};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A bare WebSocket client.
pub struct RawWs {
    socket: Socket,
}

impl RawWs {
    pub async fn open(server: &TestServer) -> Self {
        let url = format!("{}/v1/ws", server.url.replace("http://", "ws://"));
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { socket }
    }

    /// Opens, says hello from cursor 0, and waits for `welcome`.
    pub async fn hello(server: &TestServer, token: &str) -> Self {
        let mut ws = Self::open(server).await;
        ws.send(json!({"type": "hello", "token": token, "cursor": 0}))
            .await;
        let welcome = ws.next().await.expect("welcome");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        ws
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket.send(Ws::text(frame.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Ws::text(text)).await.unwrap();
    }

    /// The next JSON frame; `None` once the server closed.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.socket.next())
                .await
                .expect("no frame in 5 s");
            match frame {
                Some(Ok(Ws::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
                Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The frame answering `req`, skipping message events.
    pub async fn reply_to(&mut self, req: &str) -> Value {
        loop {
            let frame = self.next().await.expect("closed before the reply");
            if frame["req"] == req {
                return frame;
            }
        }
    }

    /// Reads until the server closes; its close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("not closed in 10 s")
            {
                Some(Ok(Ws::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return None,
            }
        }
    }
}

/// Checks that the server still serves a normal user end to end.
async fn others_are_served(server: &TestServer) {
    let name = format!("ok{}", rand_suffix());
    let ada = server.user(&format!("{name}a")).await;
    let bob = server.user(&format!("{name}b")).await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let (_c, mut events) = bob.connect(0).await;
    ada.client
        .send_http(chat.id, None, "still here")
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut events, Duration::from_secs(5))
            .await
            .1
            .body,
        "still here"
    );
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn not_json_closes_with_4009() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut ws = RawWs::hello(&server, &ada.login.token).await;
    ws.send_text("this is not json".into()).await;
    assert_eq!(ws.close_code().await, Some(4009));
    let mut ws = RawWs::hello(&server, &ada.login.token).await;
    ws.send_text("[1, 2, 3]".into()).await;
    assert_eq!(
        ws.close_code().await,
        Some(4009),
        "JSON that is not an object"
    );
    let mut ws = RawWs::open(&server).await;
    ws.send_text("{nope".into()).await;
    assert_eq!(
        ws.close_code().await,
        Some(4009),
        "not JSON instead of hello"
    );
    others_are_served(&server).await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let mut ws = RawWs::hello(&server, &ada.login.token).await;

    ws.send(json!({"type": "launch_rockets", "req": "r1"}))
        .await;
    let err = ws.reply_to("r1").await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("invalid_request"))
    );
    ws.send(json!({"type": "send", "req": "r2", "conversation_id": chat.id.to_string()}))
        .await;
    let err = ws.reply_to("r2").await;
    assert_eq!(err["code"], "invalid_request");
    assert!(
        err["message"].as_str().unwrap().contains("missing field"),
        "{err}"
    );
    ws.send(json!({"type": "send", "req": "r3", "conversation_id": "abc", "client_msg_id": "x", "body": "hi"})).await;
    assert_eq!(ws.reply_to("r3").await["code"], "invalid_request");
    ws.send(json!({"type": "send", "req": "r4", "conversation_id": chat.id.to_string(), "client_msg_id": "has space", "body": "hi"})).await;
    assert_eq!(ws.reply_to("r4").await["code"], "invalid_request");
    ws.send(json!({"type": "send", "req": "r5", "conversation_id": "99999", "client_msg_id": "c5", "body": "hi"})).await;
    assert_eq!(ws.reply_to("r5").await["code"], "not_found");
    ws.send(json!({"type": "hello", "token": "again"})).await;
    assert_eq!(ws.next().await.unwrap()["code"], "invalid_request");
    ws.socket.send(Ws::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(ws.next().await.unwrap()["code"], "invalid_request");

    // Still usable.
    ws.send(json!({"type": "heartbeat"})).await;
    assert_eq!(ws.next().await.unwrap()["type"], "heartbeat_ack");
    ws.send(json!({"type": "send", "req": "ok", "conversation_id": chat.id.to_string(), "client_msg_id": "c-ok", "body": "fine"})).await;
    let ack = ws.reply_to("ok").await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["message"]["seq"], 1);
    others_are_served(&server).await;
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut ws = RawWs::hello(&server, &ada.login.token).await;
    ws.send_text("x".repeat(confab_proto::limits::FRAME_MAX_BYTES + 1))
        .await;
    assert_eq!(ws.close_code().await, Some(1009));
    others_are_served(&server).await;
}

#[tokio::test]
async fn bad_token_closes_with_4001() {
    let server = TestServer::start().await;
    let mut ws = RawWs::open(&server).await;
    ws.send(json!({"type": "hello", "token": "forged", "cursor": 0}))
        .await;
    assert_eq!(ws.close_code().await, Some(4001));
    let mut ws = RawWs::open(&server).await;
    ws.send(json!({"type": "hello"})).await;
    assert_eq!(ws.close_code().await, Some(4001), "a hello without a token");
    others_are_served(&server).await;
}

#[tokio::test]
async fn no_hello_closes_with_4002() {
    let server = TestServer::with(|c| c.hello_timeout_ms = 300).await;
    let mut silent = RawWs::open(&server).await;
    assert_eq!(silent.close_code().await, Some(4002));
    let mut wrong_first = RawWs::open(&server).await;
    wrong_first.send(json!({"type": "heartbeat"})).await;
    assert_eq!(wrong_first.close_code().await, Some(4002));
    others_are_served(&server).await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_with_4008_and_others_go_on() {
    let server = TestServer::with(|c| c.session_queue = 16).await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let mut stalled = RawWs::hello(&server, &bob.login.token).await;
    server.wait_metric("confab_connections", |v| v == 1.0).await;

    // 400 messages of 40 KB to a client that reads nothing: the socket's buffers fill, then
    // its queue, and the server must close it rather than buffer without end. (Memory is
    // measured on a separate server process in crates/confab/tests/process.rs.)
    let body = "y".repeat(40_000);
    for i in 0..400 {
        ada.client
            .send_http(chat.id, Some(format!("flood-{i}")), body.clone())
            .await
            .unwrap();
    }
    server
        .wait_metric("confab_queue_full_closes_total", |v| v >= 1.0)
        .await;
    server.wait_metric("confab_connections", |v| v == 0.0).await;

    // The stalled client, reading at last, finds its session ended after what was in flight.
    let mut got = 0;
    while let Some(frame) = stalled.next().await {
        got += 1;
        assert!(got <= 400, "{frame}");
    }
    assert!(
        got < 400,
        "the server stopped sending to the stalled client"
    );
    others_are_served(&server).await;
}

#[tokio::test]
async fn a_device_revoked_while_its_catch_up_is_stuck_never_receives_or_sends_again() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let stolen = server.login("ada").await;
    let bob = server.user("bob").await;
    let chat = bob.client.direct(ada.id()).await.unwrap();
    // A backlog far larger than the socket's buffers, made as anyone can: big messages into
    // a group of one. Replaying it blocks on a reader that reads nothing.
    let notes = ada.client.create_group("notes", &[]).await.unwrap();
    let body = "z".repeat(99_999);
    for i in 0..200 {
        ada.client
            .send_http(notes.id, Some(format!("big-{i}")), body.clone())
            .await
            .unwrap();
    }
    let mut thief = RawWs::hello(&server, &stolen.login.token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    ada.client
        .remove_device(stolen.login.device_id)
        .await
        .unwrap();
    bob.client
        .send_http(chat.id, Some("after".into()), "sent after the revocation")
        .await
        .unwrap();
    // The socket may already be gone; a send that cannot be written is fine.
    let _ = thief
        .socket
        .send(Ws::text(
            json!({"type": "send", "req": "s1", "conversation_id": chat.id.to_string(),
                   "client_msg_id": "thief-1", "body": "from a revoked device"})
            .to_string(),
        ))
        .await;

    // Reading at last, the thief gets at most what was in flight, then the end.
    let mut frames = 0;
    while let Some(frame) = thief.next().await {
        frames += 1;
        assert_ne!(frame["type"], "ack", "a revoked device's send was accepted");
        assert_ne!(
            frame["message"]["body"], "sent after the revocation",
            "a revoked device received a new message"
        );
        assert!(frames <= 201, "the revoked session kept going: {frame}");
    }
    let history = bob
        .client
        .messages(chat.id, confab_client::MessagesQuery::newest())
        .await
        .unwrap();
    let bodies: Vec<_> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["sent after the revocation"]);
    others_are_served(&server).await;
}

#[tokio::test]
async fn a_delivered_past_what_was_sent_is_refused_and_others_cursors_still_save() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let mallory = server.user("mallory").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let mut attacker = RawWs::hello(&server, &mallory.login.token).await;
    let (_a, mut ada_events) = ada.connect(0).await;
    let mut bob_ws = RawWs::hello(&server, &bob.login.token).await;

    // Past i64, and past anything sent: refused at the frame, the session goes on.
    for bad in [u64::MAX, 1 << 63, 5] {
        attacker
            .send_text(format!(r#"{{"type":"delivered","inbox_seq":{bad}}}"#))
            .await;
        let err = attacker.next().await.expect("an error, not a close");
        assert_eq!(
            (err["type"].as_str(), err["code"].as_str()),
            (Some("error"), Some("invalid_request")),
            "{err}"
        );
    }
    attacker.send(json!({"type": "heartbeat"})).await;
    assert_eq!(attacker.next().await.unwrap()["type"], "heartbeat_ack");

    // Bob's acknowledgement, saved in the same second, still moves his cursor and reaches
    // the sender as a delivered receipt.
    ada.client.send_http(chat.id, None, "hi bob").await.unwrap();
    let message = loop {
        let frame = bob_ws.next().await.expect("bob's message");
        if frame["type"] == "message" {
            break frame;
        }
    };
    attacker
        .send_text(format!(
            r#"{{"type":"delivered","inbox_seq":{}}}"#,
            u64::MAX
        ))
        .await;
    bob_ws
        .send(json!({"type": "delivered", "inbox_seq": message["inbox_seq"]}))
        .await;
    let receipt = crate::harness::wait_for(
        &mut ada_events,
        Duration::from_secs(5),
        |e| matches!(e, confab_client::Event::Receipt { user_id, .. } if *user_id == bob.id()),
    )
    .await;
    assert!(receipt.is_some(), "bob's delivered receipt never came");
}
