//! Sync: backlog after a cursor, the switch to live, many devices, and restarts.

use crate::harness::{TestServer, messages, no_message};
use confab_client::MessagesQuery;
use std::time::Duration;

#[tokio::test]
async fn an_offline_device_gets_everything_once_in_order() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let (conn, _e) = ada.connect(0).await;
    let mut sends = Vec::new();
    for i in 1..=1000 {
        let conn = conn.clone();
        sends.push(tokio::spawn(async move {
            conn.send(chat.id, Some(format!("o{i}")), format!("message {i}"))
                .await
                .unwrap()
        }));
    }
    for s in sends {
        s.await.unwrap();
    }

    let (_c, mut events) = bob.connect(0).await;
    let got = messages(&mut events, 1000).await;
    let inbox: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        inbox,
        (1..=1000).collect::<Vec<_>>(),
        "every entry once, in inbox order"
    );
    let seqs: Vec<u64> = got.iter().map(|(_, m)| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=1000).collect::<Vec<_>>(),
        "in conversation order too"
    );
    no_message(&mut events, Duration::from_millis(300)).await;

    // From the middle: exactly the rest.
    let (_c2, mut from_middle) = bob.connect(500).await;
    let rest = messages(&mut from_middle, 500).await;
    assert_eq!(rest.first().unwrap().0, 501);
    assert_eq!(rest.last().unwrap().0, 1000);
    no_message(&mut from_middle, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn the_switch_from_backlog_to_live_has_no_gap_and_no_repeat() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let (conn, _e) = ada.connect(0).await;
    for i in 0..300 {
        conn.send(chat.id, Some(format!("pre{i}")), "before")
            .await
            .unwrap();
    }
    // Keep sending while bob connects and syncs.
    let writer = tokio::spawn({
        let conn = conn.clone();
        async move {
            for i in 0..300 {
                conn.send(chat.id, Some(format!("live{i}")), "during")
                    .await
                    .unwrap();
            }
        }
    });
    let (_c, mut events) = bob.connect(0).await;
    writer.await.unwrap();
    let got = messages(&mut events, 600).await;
    let inbox: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(inbox, (1..=600).collect::<Vec<_>>());
    no_message(&mut events, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn every_device_gets_everything_including_what_the_others_sent() {
    let server = TestServer::start().await;
    let phone = server.user("ada").await;
    let laptop = server.login("ada").await;
    let bob = server.user("bob").await;
    let chat = phone.client.direct(bob.id()).await.unwrap();
    let (phone_conn, mut phone_events) = phone.connect(0).await;
    let (laptop_conn, mut laptop_events) = laptop.connect(0).await;
    phone_conn
        .send(chat.id, None, "from the phone")
        .await
        .unwrap();
    laptop_conn
        .send(chat.id, None, "from the laptop")
        .await
        .unwrap();
    bob.client
        .send_http(chat.id, None, "from bob")
        .await
        .unwrap();
    for events in [&mut phone_events, &mut laptop_events] {
        let got: Vec<String> = messages(events, 3)
            .await
            .into_iter()
            .map(|(_, m)| m.body)
            .collect();
        assert_eq!(got, ["from the phone", "from the laptop", "from bob"]);
    }
}

#[tokio::test]
async fn http_sync_pages_the_inbox() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    for i in 0..5 {
        ada.client
            .send_http(chat.id, None, format!("{i}"))
            .await
            .unwrap();
    }
    let page = bob.client.sync(0, Some(3)).await.unwrap();
    assert_eq!(page.inbox_seq, 5);
    assert_eq!(
        page.entries.iter().map(|e| e.inbox_seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let rest = bob.client.sync(3, None).await.unwrap();
    assert_eq!(
        rest.entries
            .iter()
            .map(|e| e.message.body.as_str())
            .collect::<Vec<_>>(),
        vec!["3", "4"]
    );
}

#[tokio::test]
async fn a_graceful_restart_keeps_everything_and_tells_sessions_to_reconnect() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    ada.client
        .send_http(chat.id, Some("k1".into()), "kept")
        .await
        .unwrap();
    let mut raw = crate::gateway::RawWs::hello(&server, &bob.login.token).await;
    assert_eq!(raw.next().await.unwrap()["type"], "message");
    let config = crate::harness::test_config(server.dir.path());
    let stopping = tokio::spawn(server.stop());
    assert_eq!(raw.next().await.unwrap()["type"], "reconnect");
    assert_eq!(raw.close_code().await, Some(1001));
    let dir = stopping.await.unwrap();

    let server = TestServer::on(dir, config).await;
    let again = server.login("bob").await;
    let history = again
        .client
        .messages(chat.id, MessagesQuery::newest())
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].body, "kept");
    // The old token still works after the restart; the retry still dedupes.
    let retry = ada.client.with_token(ada.login.token.clone());
    let retry = confab_client::Client::new(&server.url)
        .unwrap()
        .with_token(retry.token().unwrap().to_owned());
    assert!(
        retry
            .send_http(chat.id, Some("k1".into()), "kept")
            .await
            .unwrap()
            .deduplicated
    );
}
