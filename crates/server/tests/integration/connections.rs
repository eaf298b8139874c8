//! Connections that never finish, and addresses that open too many: each is bounded, and
//! the node keeps serving everyone else. Proxies are trusted only when configured.

use crate::gateway::RawWs;
use crate::harness::{TestServer, free_addr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (or 5 s pass); what it sent.
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after 5 s; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn tcp(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

#[tokio::test]
async fn half_sent_requests_and_idle_keep_alives_are_closed() {
    let server = TestServer::with(|c| {
        c.http_header_timeout_ms = 300;
        c.trusted_proxies = Vec::new();
    })
    .await;
    let mut half = tcp(&server).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: confab\r\n")
        .await
        .unwrap();
    read_until_closed(&mut half).await;

    let mut idle = tcp(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: confab\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut silent = tcp(&server).await;
    read_until_closed(&mut silent).await;
    server.anon().healthz().await.unwrap();
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off() {
    let server = TestServer::with(|c| c.http_body_timeout_ms = 300).await;
    let mut slow = tcp(&server).await;
    slow.write_all(
        b"POST /v1/auth/signup HTTP/1.1\r\nHost: confab\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"user",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_request"), "{answer}");
}

#[tokio::test]
async fn one_address_holds_at_most_max_connections_per_ip() {
    let server = TestServer::with(|c| {
        c.max_connections_per_ip = 4;
        c.trusted_proxies = Vec::new();
        c.metrics_listen = Some(free_addr());
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tcp(&server).await);
    }
    let mut fifth = tcp(&server).await;
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: confab\r\n\r\n")
        .await
        .ok();
    assert_eq!(read_until_closed(&mut fifth).await, "", "closed unanswered");
    drop(held);
    // Once they close, the address is served again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.anon().healthz().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.metric("confab_connections_refused_total").await >= 1.0);
}

#[tokio::test]
async fn one_address_may_have_only_a_few_websockets_waiting_to_say_hello() {
    let server = TestServer::with(|c| {
        c.hello_pending_per_ip = 3;
        c.trusted_proxies = Vec::new();
        c.metrics_listen = Some(free_addr());
    })
    .await;
    let ada = server.user("ada").await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(RawWs::open(&server).await);
    }
    let url = format!("{}/v1/ws", server.url.replace("http://", "ws://"));
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("a fourth connection waiting for hello was let in: {other:?}"),
    }
    assert_eq!(server.metric("confab_hellos_refused_total").await, 1.0);
    // A connection that says hello stops counting.
    let mut first = waiting.remove(0);
    first
        .send(serde_json::json!({"type": "hello", "token": ada.login.token, "cursor": 0}))
        .await;
    assert_eq!(first.next().await.unwrap()["type"], "welcome");
    let _fourth = RawWs::hello(&server, &ada.login.token).await;
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    // Loopback is trusted by default (a proxy on the same machine).
    let behind_proxy = TestServer::with(|c| c.auth_rate_per_min = 2).await;
    // Here nothing is: the header is the client's own say-so.
    let direct = TestServer::with(|c| {
        c.auth_rate_per_min = 2;
        c.trusted_proxies = Vec::new();
    })
    .await;
    let login = |server: &TestServer, client: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/v1/auth/login", server.url))
            .header("x-forwarded-for", client)
            .json(&serde_json::json!({"username": "nobody", "password": "password-x"}))
            .send()
    };
    for server in [&behind_proxy, &direct] {
        for _ in 0..2 {
            assert_eq!(login(server, "198.51.100.1").await.unwrap().status(), 401);
        }
        assert_eq!(login(server, "198.51.100.1").await.unwrap().status(), 429);
    }
    // Another client behind the proxy has its own allowance; claiming to be another
    // client without one gets nothing.
    assert_eq!(
        login(&behind_proxy, "198.51.100.2").await.unwrap().status(),
        401
    );
    assert_eq!(login(&direct, "198.51.100.2").await.unwrap().status(), 429);
}

async fn get_status(url: String, forwarded_for: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(url);
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn metrics_are_not_served_to_strangers() {
    // Default: on the main listener, for local clients only.
    let local = TestServer::start().await;
    assert_eq!(
        get_status(format!("{}/metrics", local.url), None).await,
        200
    );
    assert_eq!(
        get_status(format!("{}/metrics", local.url), Some("203.0.113.9")).await,
        404,
        "a client forwarded by the local proxy is a stranger"
    );
    let untrusted = TestServer::with(|c| c.trusted_proxies = Vec::new()).await;
    assert_eq!(
        get_status(format!("{}/metrics", untrusted.url), None).await,
        404
    );

    // Its own listener: only there.
    let apart = free_addr();
    let server = TestServer::with(|c| c.metrics_listen = Some(apart)).await;
    assert_eq!(
        get_status(format!("{}/metrics", server.url), None).await,
        404
    );
    assert_eq!(
        get_status(format!("http://{apart}/metrics"), None).await,
        200
    );
    assert!(server.metric("confab_connections").await >= 0.0);
    assert_eq!(
        get_status(format!("http://{apart}/v1/discovery"), None).await,
        404
    );
}

#[tokio::test]
async fn websocket_sessions_keep_their_place_among_an_addresss_connections() {
    let server = TestServer::with(|c| {
        c.max_connections_per_ip = 3;
        c.trusted_proxies = Vec::new();
    })
    .await;
    let ada = server.user("ada").await;
    let url = format!("{}/v1/ws", server.url.replace("http://", "ws://"));
    let mut sessions = Vec::new();
    while sessions.len() < 3 {
        // The HTTP connections that made the user may take a moment to be closed.
        match tokio_tungstenite::connect_async(&url).await {
            Ok((mut ws, _)) => {
                use futures_util::{SinkExt, StreamExt};
                let hello = serde_json::json!({"type": "hello", "token": ada.login.token});
                ws.send(tokio_tungstenite::tungstenite::Message::text(
                    hello.to_string(),
                ))
                .await
                .unwrap();
                let welcome = ws.next().await.unwrap().unwrap();
                assert!(welcome.to_text().unwrap().contains("welcome"));
                sessions.push(ws);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    // The three sessions fill the address's places.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut probe = tcp(&server).await;
        probe
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: confab\r\nConnection: close\r\n\r\n")
            .await
            .ok();
        if read_until_closed(&mut probe).await.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a fourth connection was let in beside three sessions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One session ends: its place is free again.
    drop(sessions.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.anon().healthz().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
