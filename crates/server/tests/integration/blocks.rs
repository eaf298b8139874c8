//! Blocking, on every path: the blocked user cannot write in the direct conversation (HTTP
//! and WebSocket, messages and changes), start one, or put the blocker in a group; neither
//! sees the other's presence or typing; shared groups carry on; the list syncs to the
//! blocker's devices; unblocking restores everything.

use crate::harness::{TestServer, TestUser, wait_for};
use confab_client::{Action, ConversationId, Emoji, ErrorCode, Event, PresenceStatus};
use std::time::Duration;

async fn refused_send(user: &TestUser, chat: ConversationId) -> confab_client::Error {
    user.client
        .send_http(chat, None, "are you there?")
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_block_stops_every_write_between_the_two_and_lifts_cleanly() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let ada_phone = server.login("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    let hi = bob.client.send_http(chat, None, "hi ada").await.unwrap();
    let shared = carol
        .client
        .create_group("shared", &[ada.id(), bob.id()])
        .await
        .unwrap()
        .id;
    let bobs_group = bob.client.create_group("bob's", &[]).await.unwrap().id;
    let (_phone, mut phone_events) = ada_phone.connect(0).await;

    ada.client.block(bob.id()).await.unwrap();
    ada.client.block(bob.id()).await.unwrap(); // again: harmless
    let told = wait_for(&mut phone_events, Duration::from_secs(5), |e| {
        matches!(e, Event::Block { .. })
    })
    .await;
    assert!(
        matches!(told, Some(Event::Block { user_id, blocked: true }) if user_id == bob.id()),
        "{told:?}"
    );
    let list = ada_phone.client.blocks().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].user_id, bob.id());
    assert!(bob.client.blocks().await.unwrap().is_empty());

    // Bob: HTTP and WebSocket sends, a reaction, a new direct conversation, a group.
    let e = refused_send(&bob, chat).await;
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    assert!(
        !e.to_string().contains("block"),
        "says no more than needed: {e}"
    );
    let (bob_ws, _bob_events) = bob.connect(0).await;
    let e = bob_ws
        .send(chat, None, "over the socket")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let react = Action::React {
        target: hi.message.seq,
        emoji: Emoji::new("👍".into()).unwrap(),
    };
    let e = bob.client.write_http(chat, None, react).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = bob.client.direct(ada.id()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = bob
        .client
        .create_group("trap", &[ada.id()])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = bob
        .client
        .add_member(bobs_group, ada.id())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    // Ada cannot write there either until she unblocks; she may still add bob to a group.
    assert_eq!(
        refused_send(&ada, chat).await.code(),
        Some(ErrorCode::Forbidden)
    );
    ada.client.create_group("ada's", &[bob.id()]).await.unwrap();
    // Shared groups carry on both ways.
    bob.client
        .send_http(shared, None, "in the group")
        .await
        .unwrap();
    ada.client.send_http(shared, None, "seen").await.unwrap();
    let history = ada
        .client
        .messages(shared, confab_client::MessagesQuery::after(0))
        .await
        .unwrap();
    assert!(history.iter().any(|m| m.body == "in the group"));

    // Unblocked: everything is back.
    ada.client.unblock(bob.id()).await.unwrap();
    ada.client.unblock(bob.id()).await.unwrap(); // again: harmless
    assert!(ada.client.blocks().await.unwrap().is_empty());
    bob.client.send_http(chat, None, "sorry").await.unwrap();
    bob_ws.send(chat, None, "really").await.unwrap();
    ada.client.send_http(chat, None, "fine").await.unwrap();
    bob.client.create_group("again", &[ada.id()]).await.unwrap();
    // Blocked both ways, one unblock is not enough.
    ada.client.block(bob.id()).await.unwrap();
    bob.client.block(ada.id()).await.unwrap();
    ada.client.unblock(bob.id()).await.unwrap();
    assert_eq!(
        refused_send(&ada, chat).await.code(),
        Some(ErrorCode::Forbidden)
    );
    bob.client.unblock(ada.id()).await.unwrap();
    ada.client.send_http(chat, None, "at last").await.unwrap();

    // Bad targets.
    let e = ada.client.block(ada.id()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = ada
        .client
        .block(confab_client::UserId(999_999))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
}

/// Blocking tells both people's sessions: a script flipping a block is held to the write
/// rate, as settings and privacy changes are.
#[tokio::test]
async fn blocks_and_settings_count_against_the_write_rate() {
    let server = TestServer::with(|c| {
        c.send_rate_per_sec = 1;
        c.send_burst = 4;
    })
    .await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    for _ in 0..2 {
        ada.client.block(bob.id()).await.unwrap();
        ada.client.unblock(bob.id()).await.unwrap();
    }
    let e = ada.client.block(bob.id()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited));
    let pin = confab_client::SettingsChange {
        pinned: Some(true),
        ..Default::default()
    };
    let e = ada.client.change_settings(chat, pin).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited));
    let privacy = confab_client::PrivacyChange {
        last_seen: Some(false),
        ..Default::default()
    };
    let e = ada.client.change_privacy(privacy).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited));
    assert!(
        ada.client.blocks().await.unwrap().is_empty(),
        "nothing refused was done"
    );
}

#[tokio::test]
async fn a_blocked_pair_sees_no_presence_or_typing_of_each_other() {
    let server = TestServer::with(|c| {
        c.presence_timeout_ms = 2_000;
        c.heartbeat_interval_ms = 100;
    })
    .await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    ada.client.direct(bob.id()).await.unwrap();
    let group = carol
        .client
        .create_group("shared", &[ada.id(), bob.id()])
        .await
        .unwrap()
        .id;
    let (_ada_ws, mut ada_events) = ada.connect(0).await;
    let (bob_ws, mut bob_events) = bob.connect(0).await;
    let (_carol_ws, mut carol_events) = carol.connect(0).await;
    let online = |who: confab_client::UserId| move |e: &Event| matches!(e, Event::Presence(p) if p.user_id == who && p.status == PresenceStatus::Online);
    assert!(
        wait_for(&mut ada_events, Duration::from_secs(5), online(bob.id()))
            .await
            .is_some()
    );
    assert_eq!(ada.client.presence(&[bob.id()]).await.unwrap().len(), 1);

    ada.client.block(bob.id()).await.unwrap();
    // Each sees the other go offline, with no last seen.
    let gone = wait_for(&mut bob_events, Duration::from_secs(5), |e| {
        matches!(e, Event::Presence(p) if p.user_id == ada.id() && p.status == PresenceStatus::Offline)
    })
    .await;
    assert!(
        matches!(&gone, Some(Event::Presence(p)) if p.last_active_at.is_none()),
        "no last seen: {gone:?}"
    );
    // Asked for, each is left out as a stranger is.
    assert!(bob.client.presence(&[ada.id()]).await.unwrap().is_empty());
    assert!(ada.client.presence(&[bob.id()]).await.unwrap().is_empty());
    // Typing in the shared group reaches carol, not ada.
    bob_ws.typing(group).unwrap();
    assert!(
        wait_for(&mut carol_events, Duration::from_secs(2), |e| {
            matches!(e, Event::Typing { user_id, .. } if *user_id == bob.id())
        })
        .await
        .is_some()
    );
    let leak = wait_for(&mut ada_events, Duration::from_millis(500), |e| {
        matches!(e, Event::Typing { .. })
    })
    .await;
    assert!(leak.is_none(), "{leak:?}");
    // Bob going and coming back tells ada nothing.
    bob_ws.close().await;
    let (_bob_again, _events) = bob.connect(0).await;
    let leak = wait_for(
        &mut ada_events,
        Duration::from_millis(1_500),
        |e| matches!(e, Event::Presence(p) if p.user_id == bob.id()),
    )
    .await;
    assert!(leak.is_none(), "{leak:?}");

    // Unblocked: ada sees bob online again.
    ada.client.unblock(bob.id()).await.unwrap();
    assert!(
        wait_for(&mut ada_events, Duration::from_secs(5), online(bob.id()))
            .await
            .is_some()
    );
    assert_eq!(ada.client.presence(&[bob.id()]).await.unwrap().len(), 1);
}
