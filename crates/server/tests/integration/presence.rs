//! Presence, last seen and typing, with real WebSocket clients and a short presence
//! timeout (1 s, heartbeats every 100 ms).

use crate::gateway::RawWs;
use crate::harness::{TestServer, wait_for};
use confab_client::{Event, PresenceStatus, UserId};
use serde_json::json;
use std::time::Duration;

const TIMEOUT_MS: u64 = 1000;

async fn server() -> TestServer {
    TestServer::with(|c| {
        c.presence_timeout_ms = TIMEOUT_MS;
        c.heartbeat_interval_ms = 100;
    })
    .await
}

fn presence_of(user: UserId, status: PresenceStatus) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Presence(p) if p.user_id == user && p.status == status)
}

/// Does a `presence` event with `status` for `user` arrive within 2 s?
async fn sees(events: &mut confab_client::Events, user: UserId, status: PresenceStatus) -> bool {
    wait_for(events, Duration::from_secs(2), presence_of(user, status))
        .await
        .is_some()
}

fn any_presence_of(user: UserId) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Presence(p) if p.user_id == user)
}

#[tokio::test]
async fn contacts_see_online_then_offline_only_after_the_timeout() {
    let server = server().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    ada.client.direct(bob.id()).await.unwrap();
    let (_b, mut bob_events) = bob.connect(0).await;

    let raw = RawWs::hello(&server, &ada.login.token).await;
    let online = wait_for(
        &mut bob_events,
        Duration::from_secs(2),
        presence_of(ada.id(), PresenceStatus::Online),
    )
    .await;
    assert!(online.is_some(), "bob sees ada come online");

    drop(raw); // gone without a close frame: a train tunnel, not a goodbye
    let early = wait_for(
        &mut bob_events,
        Duration::from_millis(TIMEOUT_MS / 2),
        presence_of(ada.id(), PresenceStatus::Offline),
    )
    .await;
    assert!(early.is_none(), "no offline before the timeout: {early:?}");
    let offline = wait_for(
        &mut bob_events,
        Duration::from_secs(3),
        presence_of(ada.id(), PresenceStatus::Offline),
    )
    .await;
    match offline {
        Some(Event::Presence(p)) => assert!(p.last_active_at.is_some()),
        other => panic!("no offline event after the timeout: {other:?}"),
    }
}

#[tokio::test]
async fn a_reconnect_inside_the_timeout_does_not_flicker() {
    let server = server().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    ada.client.direct(bob.id()).await.unwrap();
    let (_b, mut bob_events) = bob.connect(0).await;
    let raw = RawWs::hello(&server, &ada.login.token).await;
    assert!(sees(&mut bob_events, ada.id(), PresenceStatus::Online).await);
    drop(raw);
    tokio::time::sleep(Duration::from_millis(TIMEOUT_MS / 3)).await;
    let (_a, _ada_events) = ada.connect(0).await; // heartbeats from here on
    let flicker = wait_for(
        &mut bob_events,
        Duration::from_millis(3 * TIMEOUT_MS),
        presence_of(ada.id(), PresenceStatus::Offline),
    )
    .await;
    assert!(flicker.is_none(), "watchers saw a flicker: {flicker:?}");
}

#[tokio::test]
async fn heartbeats_keep_a_user_online_past_several_timeouts() {
    let server = server().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    ada.client.direct(bob.id()).await.unwrap();
    let (_b, mut bob_events) = bob.connect(0).await;
    let (_a, _ada_events) = ada.connect(0).await;
    assert!(sees(&mut bob_events, ada.id(), PresenceStatus::Online).await);
    let offline = wait_for(
        &mut bob_events,
        Duration::from_millis(4 * TIMEOUT_MS),
        presence_of(ada.id(), PresenceStatus::Offline),
    )
    .await;
    assert!(offline.is_none(), "{offline:?}");
    let now = bob.client.presence(&[ada.id()]).await.unwrap();
    assert_eq!(now[0].status, PresenceStatus::Online);
}

#[tokio::test]
async fn a_user_stays_online_while_any_device_is() {
    let server = server().await;
    let phone = server.user("ada").await;
    let laptop = server.login("ada").await;
    let bob = server.user("bob").await;
    phone.client.direct(bob.id()).await.unwrap();
    let (_b, mut bob_events) = bob.connect(0).await;
    let (_p, _pe) = phone.connect(0).await;
    let (laptop_conn, _le) = laptop.connect(0).await;
    assert!(sees(&mut bob_events, phone.id(), PresenceStatus::Online).await);
    laptop_conn.close().await; // a clean goodbye from one device
    let change = wait_for(
        &mut bob_events,
        Duration::from_millis(2 * TIMEOUT_MS),
        presence_of(phone.id(), PresenceStatus::Offline),
    )
    .await;
    assert!(change.is_none(), "{change:?}");
    assert_eq!(
        bob.client.presence(&[phone.id()]).await.unwrap()[0].status,
        PresenceStatus::Online
    );
}

#[tokio::test]
async fn presence_goes_to_contacts_only_and_lookups_to_peers_only() {
    let server = server().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dan = server.user("dan").await;
    ada.client.direct(bob.id()).await.unwrap();
    ada.client
        .create_group("group only", &[carol.id()])
        .await
        .unwrap();
    let (_b, mut bob_events) = bob.connect(0).await;
    let (_c, mut carol_events) = carol.connect(0).await;
    let (_a, _ae) = ada.connect(0).await;
    assert!(sees(&mut bob_events, ada.id(), PresenceStatus::Online).await);
    let leak = wait_for(
        &mut carol_events,
        Duration::from_millis(500),
        any_presence_of(ada.id()),
    )
    .await;
    assert!(
        leak.is_none(),
        "a group-only member got a presence event: {leak:?}"
    );

    // Group members ask instead; strangers learn nothing.
    let asked = carol.client.presence(&[ada.id()]).await.unwrap();
    assert_eq!(asked[0].status, PresenceStatus::Online);
    assert!(dan.client.presence(&[ada.id()]).await.unwrap().is_empty());
    let too_many: Vec<String> = (1..=201).map(|i| i.to_string()).collect();
    let res = reqwest::Client::new()
        .get(format!(
            "{}/v1/presence?user_ids={}",
            server.url,
            too_many.join(",")
        ))
        .bearer_auth(&dan.login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn last_active_at_survives_a_restart() {
    let server = server().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    ada.client.direct(bob.id()).await.unwrap();
    let (ada_conn, _ae) = ada.connect(0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ada_conn.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let last = loop {
        let p = bob.client.presence(&[ada.id()]).await.unwrap().remove(0);
        if p.status == PresenceStatus::Offline {
            break p.last_active_at.expect("a last activity");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ada never went offline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let config = crate::harness::test_config(server.dir.path());
    let dir = server.stop().await;
    let server = TestServer::on(dir, config).await;
    let bob = server.login("bob").await;
    let after = bob.client.presence(&[ada.id()]).await.unwrap().remove(0);
    assert_eq!(
        (after.status, after.last_active_at),
        (PresenceStatus::Offline, Some(last))
    );
}

#[tokio::test]
async fn typing_reaches_members_and_not_others() {
    let server = server().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let group = ada.client.create_group("crew", &[bob.id()]).await.unwrap();
    ada.client.direct(eve.id()).await.unwrap();
    let (_b, mut bob_events) = bob.connect(0).await;
    let (_e, mut eve_events) = eve.connect(0).await;
    let (ada_conn, _ae) = ada.connect(0).await;
    ada_conn.typing(group.id).unwrap();
    let typing = wait_for(&mut bob_events, Duration::from_secs(2), |e| {
        matches!(e, Event::Typing { .. })
    })
    .await;
    match typing {
        Some(Event::Typing {
            conversation_id,
            user_id,
        }) => assert_eq!((conversation_id, user_id), (group.id, ada.id())),
        other => panic!("bob saw no typing: {other:?}"),
    }
    let leak = wait_for(&mut eve_events, Duration::from_millis(300), |e| {
        matches!(e, Event::Typing { .. })
    })
    .await;
    assert!(leak.is_none(), "{leak:?}");

    // A non-member's typing is refused.
    let mut raw = RawWs::hello(&server, &eve.login.token).await;
    raw.send(json!({"type": "typing", "conversation_id": group.id.to_string()}))
        .await;
    let refused = loop {
        let frame = raw.next().await.expect("an answer");
        if frame["type"] == "error" {
            break frame;
        }
    };
    assert_eq!(refused["code"], "forbidden");
}

#[tokio::test]
async fn new_contacts_learn_each_others_status_at_once() {
    let server = server().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let (_a, mut ada_events) = ada.connect(0).await;
    let (_b, _bob_events) = bob.connect(0).await;
    // Not contacts yet: nothing. Then bob starts a chat with ada.
    tokio::time::sleep(Duration::from_millis(200)).await;
    bob.client.direct(ada.id()).await.unwrap();
    assert!(
        sees(&mut ada_events, bob.id(), PresenceStatus::Online).await,
        "ada learns bob is online"
    );
}
