//! The send path over both transports: ack, delivery, idempotent retries, body limits,
//! and history paging.

use crate::harness::{TestServer, messages, next_message, no_message};
use confab_client::{ErrorCode, MessagesQuery};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn send_acks_then_delivers_to_every_device_of_every_member() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let ada_laptop = server.login("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let (ada_conn, mut ada_events) = ada.connect(0).await;
    let (_l, mut laptop_events) = ada_laptop.connect(0).await;
    let (_b, mut bob_events) = bob.connect(0).await;

    let acked = ada_conn
        .send(chat.id, Some("m-1".into()), "hello bob")
        .await
        .unwrap();
    assert_eq!(
        (acked.seq, acked.body.as_str(), acked.client_msg_id.as_str()),
        (1, "hello bob", "m-1")
    );
    for events in [&mut bob_events, &mut laptop_events, &mut ada_events] {
        let (inbox_seq, got) = next_message(events, Duration::from_secs(5)).await;
        assert_eq!(inbox_seq, 1);
        assert_eq!(got, acked);
    }
    // A message sent over HTTP is delivered live too.
    let sent = bob.client.send_http(chat.id, None, "hi ada").await.unwrap();
    let (inbox_seq, got) = next_message(&mut ada_events, Duration::from_secs(5)).await;
    assert_eq!((inbox_seq, got.id), (2, sent.message.id));
}

#[tokio::test]
async fn retries_return_the_original_over_both_transports() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let first = ada
        .client
        .send_http(chat.id, Some("dup-1".into()), "once")
        .await
        .unwrap();
    let retry = ada
        .client
        .send_http(chat.id, Some("dup-1".into()), "once")
        .await
        .unwrap();
    assert!(!first.deduplicated && retry.deduplicated, "201 then 200");
    assert_eq!(first.message, retry.message);

    let (conn, _events) = ada.connect(0).await;
    let over_ws = conn
        .send(chat.id, Some("dup-1".into()), "once")
        .await
        .unwrap();
    assert_eq!(
        over_ws, first.message,
        "the WebSocket retry gets the original too"
    );
    let ws_first = conn
        .send(chat.id, Some("dup-2".into()), "twice?")
        .await
        .unwrap();
    let ws_again = conn
        .send(chat.id, Some("dup-2".into()), "twice?")
        .await
        .unwrap();
    assert_eq!(ws_first, ws_again);
    let http_again = ada
        .client
        .send_http(chat.id, Some("dup-2".into()), "twice?")
        .await
        .unwrap();
    assert!(http_again.deduplicated);
    assert_eq!(http_again.message, ws_first);

    let history = bob
        .client
        .messages(chat.id, MessagesQuery::newest())
        .await
        .unwrap();
    assert_eq!(
        history.len(),
        2,
        "two distinct messages stored, no duplicates"
    );
    let bob_inbox = bob.client.sync(0, None).await.unwrap();
    assert_eq!(bob_inbox.entries.len(), 2);
}

/// Posts a raw body over HTTP, bypassing the SDK's own length check.
async fn post_raw(
    server: &TestServer,
    token: &str,
    conversation: &str,
    body: &str,
) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/v1/conversations/{conversation}/messages", server.url))
        .bearer_auth(token)
        .json(&json!({"client_msg_id": format!("len-{}-{}", body.chars().count(), body.len()), "body": body}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// The longest legal message, every character outside the BMP and written as a `\uXXXX`
/// surrogate pair (what Python's `json` does by default): 1.2 MB of JSON, accepted over
/// HTTP and the WebSocket; one character more is too long, judged on the decoded text.
#[tokio::test]
async fn the_longest_message_is_accepted_in_any_json_encoding() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id.to_string();
    let token = ada.login.token.clone();
    let escaped = |chars: usize| r"\ud83d\ude00".repeat(chars);
    let post = |id: &str, chars: usize| {
        let body = format!(r#"{{"client_msg_id":"{id}","body":"{}"}}"#, escaped(chars));
        reqwest::Client::new()
            .post(format!("{}/v1/conversations/{chat}/messages", server.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let res = post("escaped-http", 99_999).await.unwrap();
    assert_eq!(res.status(), 201);
    let sent: Value = res.json().await.unwrap();
    let body = sent["message"]["body"].as_str().unwrap();
    assert_eq!(body.chars().count(), 99_999);
    assert!(body.chars().all(|c| c == '😀'));
    let res = post("escaped-http-long", 100_000).await.unwrap();
    assert_eq!(res.status(), 413, "too long, not too large");

    let mut ws = crate::gateway::RawWs::hello(&server, &token).await;
    for (req, chars, want) in [("ws-ok", 99_999, "ack"), ("ws-long", 100_000, "error")] {
        ws.send_text(format!(
            r#"{{"type":"send","req":"{req}","conversation_id":"{chat}","client_msg_id":"{req}","body":"{}"}}"#,
            escaped(chars)
        ))
        .await;
        let reply = ws.reply_to(req).await;
        assert_eq!(reply["type"], want, "{req}: {}", reply["code"]);
        if want == "error" {
            assert_eq!(reply["code"], "message_too_long");
        }
    }
}

#[tokio::test]
async fn bodies_are_1_to_99999_characters_not_bytes() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id.to_string();
    let token = ada.login.token.clone();

    let (status, ok) = post_raw(&server, &token, &chat, &"a".repeat(99_999)).await;
    assert_eq!(status, 201);
    assert_eq!(
        ok["message"]["body"].as_str().unwrap().chars().count(),
        99_999
    );
    let (status, ok) = post_raw(&server, &token, &chat, &"😀".repeat(99_999)).await;
    assert_eq!(
        status, 201,
        "99,999 four-byte characters are 399,996 bytes and allowed"
    );
    assert_eq!(
        ok["message"]["body"].as_str().unwrap().chars().count(),
        99_999
    );
    for too_long in ["a".repeat(100_000), "😀".repeat(100_000)] {
        let (status, err) = post_raw(&server, &token, &chat, &too_long).await;
        assert_eq!(status, 413);
        assert_eq!(err["error"]["code"], "message_too_long");
    }
    // Empty, or with U+0000 (which no store keeps in text; PostgreSQL refuses it).
    for bad in ["", "a\u{0}b"] {
        let (status, err) = post_raw(&server, &token, &chat, bad).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{bad:?}"
        );
    }

    // The same limits over the WebSocket, answered with error frames echoing req.
    let mut ws = crate::gateway::RawWs::hello(&server, &token).await;
    for (req, body, code) in [
        ("w1", "b".repeat(99_999), None),
        ("w2", "😀".repeat(99_999), None),
        ("w3", "b".repeat(100_000), Some("message_too_long")),
        ("w4", "😀".repeat(100_000), Some("message_too_long")),
        ("w5", String::new(), Some("invalid_request")),
        ("w6", "nul \u{0}".into(), Some("invalid_request")),
    ] {
        ws.send(json!({"type": "send", "req": req, "conversation_id": chat, "client_msg_id": req, "body": body})).await;
        let reply = ws.reply_to(req).await;
        match code {
            None => assert_eq!(reply["type"], "ack", "{req}"),
            Some(code) => {
                assert_eq!(reply["type"], "error", "{req}");
                assert_eq!(reply["code"], code, "{req}");
            }
        }
    }
    assert_eq!(
        bob.client
            .messages(
                ada.client.direct(bob.id()).await.unwrap().id,
                MessagesQuery::newest()
            )
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn history_pages_by_seq() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    for i in 1..=250 {
        ada.client
            .send_http(chat.id, Some(format!("p{i}")), format!("message {i}"))
            .await
            .unwrap();
    }
    let seqs = |m: Vec<confab_client::Message>| m.iter().map(|m| m.seq).collect::<Vec<_>>();
    let newest = seqs(
        bob.client
            .messages(chat.id, MessagesQuery::newest())
            .await
            .unwrap(),
    );
    assert_eq!(
        newest,
        (201..=250).collect::<Vec<_>>(),
        "default page: the newest 50, ascending"
    );
    let older = seqs(
        bob.client
            .messages(chat.id, MessagesQuery::before(201).limit(10))
            .await
            .unwrap(),
    );
    assert_eq!(older, (191..=200).collect::<Vec<_>>());
    let after = seqs(
        bob.client
            .messages(chat.id, MessagesQuery::after(245).limit(10))
            .await
            .unwrap(),
    );
    assert_eq!(after, (246..=250).collect::<Vec<_>>());
    let big = seqs(
        bob.client
            .messages(chat.id, MessagesQuery::after(0).limit(500))
            .await
            .unwrap(),
    );
    assert_eq!(big, (1..=200).collect::<Vec<_>>(), "pages hold at most 200");
    let first = seqs(
        bob.client
            .messages(chat.id, MessagesQuery::before(1))
            .await
            .unwrap(),
    );
    assert!(first.is_empty());
    let res = reqwest::Client::new()
        .get(format!(
            "{}/v1/conversations/{}/messages?limit=0",
            server.url, chat.id
        ))
        .bearer_auth(&bob.login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn sends_are_rate_limited_per_user() {
    let server = TestServer::with(|c| {
        c.send_rate_per_sec = 1;
        c.send_burst = 3;
    })
    .await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    for i in 0..3 {
        ada.client
            .send_http(chat.id, None, format!("{i}"))
            .await
            .unwrap();
    }
    let err = ada
        .client
        .send_http(chat.id, None, "one too many")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    // Other users are not affected.
    bob.client
        .send_http(chat.id, None, "still fine")
        .await
        .unwrap();
    assert!(server.metric("confab_rate_limited_total").await >= 1.0);
    let (_c, mut events) = bob.connect(0).await;
    let got = messages(&mut events, 4).await;
    assert_eq!(got.last().unwrap().1.body, "still fine");
    no_message(&mut events, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn sequence_numbers_past_i64_are_bad_requests_not_server_errors() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    ada.client.send_http(chat.id, None, "hi").await.unwrap();
    let huge = [1u64 << 63, u64::MAX];
    let mut paths = Vec::new();
    for n in huge {
        paths.push(format!(
            "/v1/conversations/{}/messages?after_seq={n}",
            chat.id
        ));
        paths.push(format!(
            "/v1/conversations/{}/messages?before_seq={n}",
            chat.id
        ));
        paths.push(format!("/v1/sync?after={n}"));
    }
    for path in paths {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", server.url))
            .bearer_auth(&bob.login.token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{path}: {body}"
        );
    }
    // The largest legal value is an ordinary, empty page.
    let res = reqwest::Client::new()
        .get(format!(
            "{}/v1/conversations/{}/messages?after_seq={}",
            server.url,
            chat.id,
            i64::MAX
        ))
        .bearer_auth(&bob.login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_user_past_their_storage_quota_is_refused_and_others_are_not() {
    let server = TestServer::with(|c| c.user_quota_mb = 1).await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    // The largest legal body in bytes: 99,999 four-byte characters, 399,996 bytes.
    let heavy = "😀".repeat(99_999);
    for i in 0..2 {
        ada.client
            .send_http(chat.id, Some(format!("heavy-{i}")), heavy.clone())
            .await
            .unwrap();
    }
    let refused = ada
        .client
        .send_http(chat.id, Some("heavy-2".into()), heavy.clone())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(confab_client::ErrorCode::QuotaExceeded)
    );
    let (status, body) = post_raw(&server, &ada.login.token, &chat.id.to_string(), &heavy).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("quota_exceeded")),
        "{body}"
    );
    // The same over WebSocket.
    let mut ws = crate::gateway::RawWs::hello(&server, &ada.login.token).await;
    ws.send(
        json!({"type": "send", "req": "q", "conversation_id": chat.id.to_string(),
                   "client_msg_id": "over", "body": heavy}),
    )
    .await;
    assert_eq!(ws.reply_to("q").await["code"], "quota_exceeded");
    // Small messages still fit, and bob is not affected.
    ada.client
        .send_http(chat.id, None, "still room for this")
        .await
        .unwrap();
    bob.client.send_http(chat.id, None, &heavy).await.unwrap();
}
