//! The connection task against a scripted in-process WebSocket peer: hello and cursor,
//! dropping repeats, `delivered`, send retries with the same `client_msg_id`, errors,
//! 4001 and close. No Confab server is involved; the live suite lives with the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_client::proto::{ClientFrame, FrameError, ServerFrame};
use confab_client::{
    Connection, ConversationId, DeviceId, DisconnectReason, Error, ErrorCode, Event, Events,
    Message, MessageId, MessageKind, Timestamp, UserId,
};
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{WebSocketStream, accept_async};

type Peer = WebSocketStream<TcpStream>;

const WAIT: Duration = Duration::from_secs(5);

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

async fn accept(listener: &TcpListener) -> Peer {
    let (tcp, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    accept_async(tcp).await.unwrap()
}

/// The next client frame, skipping control frames.
async fn recv(peer: &mut Peer) -> ClientFrame {
    loop {
        let msg = timeout(WAIT, peer.next()).await.unwrap().unwrap().unwrap();
        if let WsMessage::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The next client frame that is not a heartbeat.
async fn recv_app(peer: &mut Peer) -> ClientFrame {
    loop {
        match recv(peer).await {
            ClientFrame::Heartbeat => continue,
            frame => return frame,
        }
    }
}

async fn send(peer: &mut Peer, frame: &ServerFrame) {
    let text = serde_json::to_string(frame).unwrap();
    peer.send(WsMessage::text(text)).await.unwrap();
}

async fn welcome(peer: &mut Peer, inbox_seq: u64) {
    send(
        peer,
        &ServerFrame::Welcome {
            user_id: UserId(1),
            device_id: DeviceId(2),
            inbox_seq,
            heartbeat_interval_ms: 5000,
        },
    )
    .await;
}

fn message(seq: u64, client_msg_id: &str) -> Message {
    Message::new(
        MessageId(1000 + seq as i64),
        ConversationId(9),
        seq,
        UserId(3),
        client_msg_id.into(),
        MessageKind::Text,
        format!("m{seq}"),
        Timestamp(0),
    )
}

async fn inbox(peer: &mut Peer, inbox_seq: u64) {
    send(
        peer,
        &ServerFrame::Message {
            inbox_seq,
            message: message(inbox_seq, &format!("x{inbox_seq}")),
        },
    )
    .await;
}

async fn next_event(events: &mut Events) -> Event {
    timeout(WAIT, events.recv()).await.unwrap().unwrap()
}

/// Reads client frames until `delivered` reaches `inbox_seq`.
async fn expect_delivered(peer: &mut Peer, inbox_seq: u64) {
    loop {
        match recv_app(peer).await {
            ClientFrame::Delivered { inbox_seq: got } if got == inbox_seq => return,
            ClientFrame::Delivered { inbox_seq: got } if got < inbox_seq => continue,
            other => panic!("expected delivered {inbox_seq}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn resumes_from_its_cursor_drops_repeats_and_retries_sends() {
    let (listener, base) = listen().await;
    let server = tokio::spawn(async move {
        let mut peer = accept(&listener).await;
        assert_eq!(
            recv(&mut peer).await,
            ClientFrame::Hello {
                token: "tok".into(),
                cursor: Some(5)
            }
        );
        welcome(&mut peer, 7).await;
        for seq in [5, 6, 7] {
            inbox(&mut peer, seq).await;
        }
        expect_delivered(&mut peer, 7).await;
        // A send arrives; the connection dies before the ack.
        let ClientFrame::Send { client_msg_id, .. } = recv_app(&mut peer).await else {
            panic!("expected send");
        };
        assert_eq!(client_msg_id, "c1");
        drop(peer);

        let mut peer = accept(&listener).await;
        assert_eq!(
            recv(&mut peer).await,
            ClientFrame::Hello {
                token: "tok".into(),
                cursor: Some(7)
            }
        );
        welcome(&mut peer, 8).await;
        let ClientFrame::Send {
            req, client_msg_id, ..
        } = recv_app(&mut peer).await
        else {
            panic!("expected the send again");
        };
        assert_eq!(client_msg_id, "c1");
        send(
            &mut peer,
            &ServerFrame::Ack {
                req,
                message: message(4, "c1"),
            },
        )
        .await;
        inbox(&mut peer, 7).await;
        inbox(&mut peer, 8).await;
        // A requested close says what we have, then closes.
        expect_delivered(&mut peer, 8).await;
        loop {
            match timeout(WAIT, peer.next()).await.unwrap() {
                Some(Ok(WsMessage::Close(_))) | None => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("{e}"),
            }
        }
    });

    // The fake speaks only the WebSocket; there is no discovery to ask.
    let (connection, mut events) = Connection::builder(&base, "tok")
        .discovery(false)
        .cursor(5)
        .delivered_batch(2, Duration::from_millis(20))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected {
            inbox_seq: 7,
            cursor: Some(5),
            ..
        }
    ));
    for want in [6, 7] {
        match next_event(&mut events).await {
            Event::Message { inbox_seq, .. } => assert_eq!(inbox_seq, want),
            other => panic!("expected message {want}, got {other:?}"),
        }
    }
    assert_eq!(connection.cursor(), Some(7));

    let sender = connection.clone();
    let sent = tokio::spawn(async move {
        sender
            .send(ConversationId(9), Some("c1".into()), "hello")
            .await
    });
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected {
            reason: DisconnectReason::Transport(_)
        }
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected {
            cursor: Some(7),
            ..
        }
    ));
    let message = timeout(WAIT, sent).await.unwrap().unwrap().unwrap();
    assert_eq!(message.client_msg_id, "c1");
    match next_event(&mut events).await {
        Event::Message { inbox_seq, .. } => assert_eq!(inbox_seq, 8),
        other => panic!("expected message 8, got {other:?}"),
    }

    connection.close().await;
    assert!(connection.is_closed());
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected {
            reason: DisconnectReason::Requested
        }
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Terminated { error: None }
    ));
    assert!(events.recv().await.is_none());
    assert!(matches!(
        connection.send(ConversationId(9), None, "late").await,
        Err(Error::Closed)
    ));
    timeout(WAIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn send_errors_are_returned_and_rate_limits_retried() {
    let (listener, base) = listen().await;
    let server = tokio::spawn(async move {
        let mut peer = accept(&listener).await;
        recv(&mut peer).await;
        welcome(&mut peer, 0).await;

        let ClientFrame::Send { req, .. } = recv_app(&mut peer).await else {
            panic!("expected send");
        };
        let refusal = FrameError {
            req,
            code: ErrorCode::Forbidden,
            message: "not a member".into(),
            retry_after_ms: None,
        };
        send(&mut peer, &ServerFrame::Error(refusal)).await;

        let ClientFrame::Send {
            req, client_msg_id, ..
        } = recv_app(&mut peer).await
        else {
            panic!("expected send");
        };
        let slow_down = FrameError {
            req: req.clone(),
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms: Some(20),
        };
        send(&mut peer, &ServerFrame::Error(slow_down)).await;
        let ClientFrame::Send {
            req: again,
            client_msg_id: same,
            ..
        } = recv_app(&mut peer).await
        else {
            panic!("expected the send again");
        };
        assert_eq!(same, client_msg_id);
        send(
            &mut peer,
            &ServerFrame::Ack {
                req: again,
                message: message(1, &same),
            },
        )
        .await;

        // An error for a frame that is not a send is an event.
        let unrelated = FrameError {
            req: None,
            code: ErrorCode::NotFound,
            message: "no such conversation".into(),
            retry_after_ms: None,
        };
        send(&mut peer, &ServerFrame::Error(unrelated)).await;
        peer
    });

    let (connection, mut events) = Connection::builder(&base, "tok")
        .discovery(false)
        .connect()
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { cursor: None, .. }
    ));
    let refused = connection
        .send(ConversationId(9), None, "hi")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
    let stored = connection
        .send(ConversationId(9), None, "hi again")
        .await
        .unwrap();
    assert_eq!(stored.seq, 1);
    assert!(matches!(
        next_event(&mut events).await,
        Event::Error(FrameError {
            code: ErrorCode::NotFound,
            ..
        })
    ));
    let _peer = timeout(WAIT, server).await.unwrap().unwrap();
    connection.close().await;
}

#[tokio::test]
async fn overloaded_sends_back_off_and_retry_with_the_same_id() {
    let (listener, base) = listen().await;
    let server = tokio::spawn(async move {
        let mut peer = accept(&listener).await;
        recv(&mut peer).await;
        welcome(&mut peer, 0).await;
        let mut gaps = Vec::new();
        let mut ids = Vec::new();
        let mut refused_at = None;
        // Refused twice, with the same hint each time; stored the third time.
        for attempt in 0..3 {
            let ClientFrame::Send {
                req, client_msg_id, ..
            } = recv_app(&mut peer).await
            else {
                panic!("expected send");
            };
            if let Some(at) = refused_at {
                gaps.push(Instant::now().duration_since(at));
            }
            ids.push(client_msg_id.clone());
            let answer = if attempt < 2 {
                refused_at = Some(Instant::now());
                ServerFrame::Error(FrameError {
                    req,
                    code: ErrorCode::Overloaded,
                    message: "busy".into(),
                    retry_after_ms: Some(100),
                })
            } else {
                ServerFrame::Ack {
                    req,
                    message: message(1, &client_msg_id),
                }
            };
            send(&mut peer, &answer).await;
        }
        (peer, gaps, ids)
    });

    let (connection, _events) = Connection::builder(&base, "tok")
        .discovery(false)
        .connect()
        .await
        .unwrap();
    let stored = connection
        .send(ConversationId(9), None, "hi")
        .await
        .unwrap();
    assert_eq!(stored.seq, 1);
    let (_peer, gaps, ids) = timeout(WAIT, server).await.unwrap().unwrap();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one client_msg_id: {ids:?}"
    );
    // The hint, then twice the hint.
    assert!(gaps[0] >= Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(200), "{gaps:?}");
    connection.close().await;
}

#[tokio::test]
async fn close_code_4001_is_final() {
    let (listener, base) = listen().await;
    let server = tokio::spawn(async move {
        let mut peer = accept(&listener).await;
        recv(&mut peer).await;
        welcome(&mut peer, 0).await;
        let bye = CloseFrame {
            code: 4001.into(),
            reason: "logged out".into(),
        };
        peer.close(Some(bye)).await.unwrap();
        // Nobody may come back with this token.
        assert!(
            timeout(Duration::from_millis(300), listener.accept())
                .await
                .is_err()
        );

        // And a first connect refused with 4001 fails at once.
        let accepting = tokio::spawn(async move {
            let mut peer = accept(&listener).await;
            recv(&mut peer).await;
            let bye = CloseFrame {
                code: 4001.into(),
                reason: "bad token".into(),
            };
            let _ = peer.close(Some(bye)).await;
            while let Some(Ok(_)) = peer.next().await {}
        });
        accepting.await.unwrap();
    });

    // The fake speaks only the WebSocket; there is no discovery to ask.
    let (connection, mut events) = Connection::builder(&base, "tok")
        .discovery(false)
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .connect()
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    match next_event(&mut events).await {
        Event::Disconnected { reason } => assert_eq!(reason.close_code(), Some(4001)),
        other => panic!("expected disconnected, got {other:?}"),
    }
    match next_event(&mut events).await {
        Event::Terminated { error: Some(e) } => {
            assert_eq!(e.code(), Some(ErrorCode::Unauthorized))
        }
        other => panic!("expected terminated, got {other:?}"),
    }
    assert!(events.recv().await.is_none());
    timeout(WAIT, connection.closed()).await.unwrap();

    // Give the server's assertion on "no reconnect" time to pass first.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let refused = Connection::builder(&base, "bad")
        .discovery(false)
        .connect()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized));
    timeout(WAIT, server).await.unwrap().unwrap();
}
