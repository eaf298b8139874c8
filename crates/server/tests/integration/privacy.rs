//! What a user shares: last seen and read receipts, each hidden both ways (who hides theirs
//! sees nobody's), in presence events, presence lookups, receipt events and the members'
//! watermarks of a conversation; the reader's own devices still get their read receipts.

use crate::harness::{TestServer, TestUser, wait_for};
use confab_client::{ErrorCode, Event, PresenceStatus, PrivacyChange, ReceiptKind, UserId};
use std::time::Duration;

async fn server() -> TestServer {
    TestServer::with(|c| {
        c.presence_timeout_ms = 2_000;
        c.heartbeat_interval_ms = 100;
    })
    .await
}

fn last_seen(on: bool) -> PrivacyChange {
    PrivacyChange {
        last_seen: Some(on),
        ..Default::default()
    }
}

fn receipts(on: bool) -> PrivacyChange {
    PrivacyChange {
        read_receipts: Some(on),
        ..Default::default()
    }
}

/// The `last_active_at` `viewer` is told of `subject` when it goes offline.
async fn offline_seen_by(
    viewer_events: &mut confab_client::Events,
    subject: &TestUser,
) -> Option<confab_client::Timestamp> {
    let (conn, _events) = subject.connect(0).await;
    let id = subject.id();
    let online = |e: &Event| matches!(e, Event::Presence(p) if p.user_id == id && p.status == PresenceStatus::Online);
    wait_for(viewer_events, Duration::from_secs(5), online)
        .await
        .expect("online");
    conn.close().await;
    match wait_for(viewer_events, Duration::from_secs(10), |e| {
        matches!(e, Event::Presence(p) if p.user_id == id && p.status == PresenceStatus::Offline)
    })
    .await
    {
        Some(Event::Presence(p)) => p.last_active_at,
        other => panic!("no offline: {other:?}"),
    }
}

async fn last_active(viewer: &TestUser, subject: UserId) -> Option<confab_client::Timestamp> {
    viewer.client.presence(&[subject]).await.unwrap()[0].last_active_at
}

#[tokio::test]
async fn hidden_last_seen_is_hidden_both_ways() {
    let server = server().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    ada.client.direct(bob.id()).await.unwrap();
    let (bob_ws, mut bob_events) = bob.connect(0).await;
    assert!(
        offline_seen_by(&mut bob_events, &ada).await.is_some(),
        "shared by default"
    );

    let privacy = ada.client.change_privacy(last_seen(false)).await.unwrap();
    assert!(!privacy.last_seen && privacy.read_receipts);
    assert_eq!(ada.client.privacy().await.unwrap(), privacy);
    assert_eq!(offline_seen_by(&mut bob_events, &ada).await, None);
    assert_eq!(last_active(&bob, ada.id()).await, None);
    // Hiding hers hides bob's from her.
    bob_ws.close().await;
    let (ada_ws, mut ada_events) = ada.connect(0).await;
    assert_eq!(offline_seen_by(&mut ada_events, &bob).await, None);
    assert_eq!(last_active(&ada, bob.id()).await, None);
    // Shared again: back both ways.
    ada.client.change_privacy(last_seen(true)).await.unwrap();
    assert!(last_active(&ada, bob.id()).await.is_some());
    ada_ws.close().await;
    let (_bob_ws, mut bob_events) = bob.connect(0).await;
    assert!(offline_seen_by(&mut bob_events, &ada).await.is_some());
    // Nothing to change is refused.
    let e = ada
        .client
        .change_privacy(PrivacyChange::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidRequest));
}

#[tokio::test]
async fn read_receipts_off_are_off_both_ways_but_reach_your_own_devices() {
    let server = server().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let bob_phone = server.login("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    let read = |who: UserId| move |e: &Event| matches!(e, Event::Receipt { user_id, kind: ReceiptKind::Read, .. } if *user_id == who);
    let (_ada_ws, mut ada_events) = ada.connect(0).await;
    let (_phone_ws, mut phone_events) = bob_phone.connect(0).await;
    bob.client.change_privacy(receipts(false)).await.unwrap();

    let first = ada.client.send_http(chat, None, "one").await.unwrap();
    bob.client.read(chat, first.message.seq).await.unwrap();
    assert!(
        wait_for(&mut phone_events, Duration::from_secs(5), read(bob.id()))
            .await
            .is_some(),
        "his own phone clears its unread count"
    );
    assert!(
        wait_for(&mut ada_events, Duration::from_millis(500), read(bob.id()))
            .await
            .is_none(),
        "ada is not told"
    );
    let seen_by_ada = ada.client.conversation(chat).await.unwrap();
    let bob_row = seen_by_ada
        .members
        .iter()
        .find(|m| m.user_id == bob.id())
        .unwrap();
    assert_eq!(bob_row.read_seq, 0, "his read watermark is not shown");
    assert!(bob_row.delivered_seq <= first.message.seq);
    // Bob sees none of ada's either.
    let reply = bob.client.send_http(chat, None, "two").await.unwrap();
    ada.client.read(chat, reply.message.seq).await.unwrap();
    assert!(
        wait_for(
            &mut phone_events,
            Duration::from_millis(500),
            read(ada.id())
        )
        .await
        .is_none()
    );
    let seen_by_bob = bob.client.conversation(chat).await.unwrap();
    let ada_row = seen_by_bob
        .members
        .iter()
        .find(|m| m.user_id == ada.id())
        .unwrap();
    assert_eq!(ada_row.read_seq, 0);
    // His own watermark is his to see.
    assert_eq!(seen_by_bob.read_seq, reply.message.seq);

    // On again: receipts flow both ways.
    bob.client.change_privacy(receipts(true)).await.unwrap();
    let three = ada.client.send_http(chat, None, "three").await.unwrap();
    bob.client.read(chat, three.message.seq).await.unwrap();
    assert!(
        wait_for(&mut ada_events, Duration::from_secs(5), read(bob.id()))
            .await
            .is_some()
    );
    let seen_by_ada = ada.client.conversation(chat).await.unwrap();
    let bob_row = seen_by_ada
        .members
        .iter()
        .find(|m| m.user_id == bob.id())
        .unwrap();
    assert_eq!(bob_row.read_seq, three.message.seq);
}
