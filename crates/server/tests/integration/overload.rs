//! Overload: a node that cannot commit sends as fast as they come answers `overloaded` with
//! `retry_after_ms` at once instead of acknowledging late; retries with the same
//! `client_msg_id` are stored once. A session that pipelines sends to a node with room is
//! slowed by TCP, never refused.

use crate::gateway::RawWs;
use crate::harness::TestServer;
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_saturated_node_refuses_at_once_and_every_retry_is_stored_once() {
    let server = TestServer::with(|c| c.max_connections_per_ip = 100_000).await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/conversations/{}/messages", server.url, chat.id);
    let post = |id: String| {
        let request = http
            .post(&url)
            .bearer_auth(&ada.login.token)
            .json(&json!({"client_msg_id": id, "body": format!("m {id}")}));
        async move {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            (id, status, retry_after, body, started.elapsed())
        }
    };

    // The store stalls (its write lock held, as a stuck disk or database would) while a
    // stream of sends arrives: once the queue has been long for a while with nothing
    // committed, the rest are refused at once instead of joining it.
    const SENT: usize = 2_000;
    const STALL: Duration = Duration::from_millis(2_500);
    let burst = join_all((0..SENT).map(|i| {
        // Spread over the stall's first two seconds, as sends from many clients would come.
        let post = post(format!("m-{i}"));
        async move {
            let offset = Duration::from_millis(i as u64);
            tokio::time::sleep(offset).await;
            (offset, post.await)
        }
    }));
    let ((), answers) = tokio::join!(server.dir.stall_writes(STALL), burst);
    let mut refused = Vec::new();
    for (offset, (id, status, retry_after, body, took)) in answers {
        match status {
            201 => {}
            503 => {
                assert_eq!(body["error"]["code"], "overloaded", "{body}");
                let ms = body["error"]["retry_after_ms"]
                    .as_u64()
                    .expect("retry_after_ms");
                assert!((1..=10_000).contains(&ms), "retry after {ms} ms");
                assert!(retry_after.is_some(), "Retry-After header");
                // Refused before the stall ended: it did not wait it out. Checked for the
                // sends of the first 1.5 s: a later one may be refused a moment after the end
                // when the whole suite shares the two cores (seen: sent at 1.53 s, 970 ms).
                assert!(
                    offset + took < STALL || offset > STALL - Duration::from_secs(1),
                    "sent at {offset:?}, refused after {took:?}, once the stall was over"
                );
                refused.push((id, ms));
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        !refused.is_empty(),
        "{SENT} sends to a stalled store and none was refused"
    );
    assert!(server.metric("confab_sends_overloaded_total").await >= 1.0);

    // Each refused send, retried with its id after the wait it was told, is stored.
    let retries = refused.into_iter().map(|(id, ms)| {
        let post = &post;
        async move {
            let mut wait = Duration::from_millis(ms);
            for _ in 0..20 {
                tokio::time::sleep(wait).await;
                let (_, status, _, body, _) = post(id.clone()).await;
                match status {
                    200 | 201 => return,
                    503 => {
                        wait =
                            Duration::from_millis(body["error"]["retry_after_ms"].as_u64().unwrap())
                    }
                    other => panic!("{other}: {body}"),
                }
            }
            panic!("{id} was refused 20 times");
        }
    });
    join_all(retries).await;

    // Everything sent is stored exactly once.
    let mut stored = BTreeSet::new();
    let mut before = None;
    loop {
        let page = ada
            .client
            .messages(
                chat.id,
                confab_client::MessagesQuery {
                    before_seq: before,
                    after_seq: None,
                    limit: Some(200),
                },
            )
            .await
            .unwrap();
        let Some(first) = page.first() else { break };
        before = Some(first.seq);
        for m in &page {
            assert!(
                stored.insert(m.client_msg_id.clone()),
                "{} stored twice",
                m.client_msg_id
            );
        }
    }
    assert_eq!(stored.len(), SENT);
}

#[tokio::test]
async fn a_pipelining_session_on_a_node_with_room_is_never_refused() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let mut ws = RawWs::hello(&server, &ada.login.token).await;
    // Far more than the 16 sends a session stores at once, written without waiting.
    const SENDS: usize = 300;
    for i in 0..SENDS {
        ws.send(
            json!({"type": "send", "req": format!("r{i}"), "conversation_id": chat.id.to_string(),
                       "client_msg_id": format!("p-{i}"), "body": "pipelined"}),
        )
        .await;
    }
    let mut acked = BTreeSet::new();
    while acked.len() < SENDS {
        let frame = ws.next().await.expect("the session stays open");
        match frame["type"].as_str() {
            Some("ack") => assert!(acked.insert(frame["req"].as_str().unwrap().to_owned())),
            Some("error") => panic!("refused: {frame}"),
            _ => {}
        }
    }
}
