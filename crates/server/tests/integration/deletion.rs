//! Deleting an account: the password again; then every group left, the profile anonymised,
//! every device logged out, and its devices, push subscriptions, blocks and settings gone
//! from the store, while its messages stay in the others' history. Nobody can write to it,
//! find it by username or add it anywhere; its old username is free again.

use crate::accounts::wait_for_close;
use crate::harness::{TestServer, wait_for};
use crate::push::subscribed;
use confab_client::{ErrorCode, Event, MessageKind, MessagesQuery, Role, SettingsChange};
use std::time::Duration;

#[tokio::test]
async fn a_deleted_account_is_logged_out_everywhere_and_its_messages_stay_for_the_others() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let ada_phone = server.login("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    ada.client
        .send_http(chat, None, "my last words to bob")
        .await
        .unwrap();
    bob.client.send_http(chat, None, "bye ada").await.unwrap();
    let carols = carol
        .client
        .create_group("carol's", &[ada.id(), bob.id()])
        .await
        .unwrap()
        .id;
    ada.client
        .send_http(carols, None, "hello group")
        .await
        .unwrap();
    let adas = ada
        .client
        .create_group("ada's", &[bob.id()])
        .await
        .unwrap()
        .id;
    ada.client.block(dave.id()).await.unwrap();
    carol.client.block(ada.id()).await.unwrap();
    let pinned = SettingsChange {
        pinned: Some(true),
        ..Default::default()
    };
    ada.client.change_settings(chat, pinned).await.unwrap();
    let (_phone, mut phone_events) = ada_phone.connect(0).await;
    let (_carol_ws, mut carol_events) = carol.connect(0).await;
    let ada_rows =
        |table: &str| format!("SELECT count(*) FROM {table} WHERE user_id = {}", ada.id());

    // The password is asked again; a wrong one changes nothing.
    let e = ada
        .client
        .delete_account("not my password")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    assert_eq!(ada.client.me().await.unwrap().username, "ada");

    ada.client.delete_account("password-ada").await.unwrap();

    // Every device is out: tokens dead, sessions closed with 4001, no login.
    assert_eq!(wait_for_close(&mut phone_events).await, Some(4001));
    for device in [&ada, &ada_phone] {
        let e = device.client.me().await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Unauthorized));
    }
    let e = server
        .anon()
        .login("ada", "password-ada", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unauthorized));
    assert_eq!(server.count(&ada_rows("devices")).await, 0);
    assert_eq!(server.count(&ada_rows("conversation_settings")).await, 0);
    let blocks = format!(
        "SELECT count(*) FROM blocks WHERE blocker_id = {0} OR blocked_id = {0}",
        ada.id()
    );
    assert_eq!(server.count(&blocks).await, 0, "blocks either way are gone");
    assert!(carol.client.blocks().await.unwrap().is_empty());

    // Anonymised, and shown so to those who shared a conversation with it.
    let gone = bob.client.user(ada.id()).await.unwrap();
    assert!(gone.deleted);
    assert_eq!(gone.display_name, "Deleted user");
    assert_eq!(gone.username, format!("~deleted-{}", ada.id()));
    let e = bob.client.user_by_username("ada").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    let e = server
        .anon()
        .signup(&gone.username, "password-impostor", None)
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(ErrorCode::InvalidRequest),
        "no one can take a deleted account's username"
    );

    // Its messages stay in the direct conversation, which takes no more writes.
    let history = bob
        .client
        .messages(chat, MessagesQuery::newest())
        .await
        .unwrap();
    assert!(
        history
            .iter()
            .any(|m| m.sender_id == ada.id() && m.body.as_str() == "my last words to bob"),
        "{history:?}"
    );
    let e = bob
        .client
        .send_http(chat, None, "are you there?")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    // Unblocking, even by someone who never blocked, does not reopen it.
    bob.client.unblock(ada.id()).await.unwrap();
    let e = bob
        .client
        .send_http(chat, None, "still there?")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));

    // It left every group, with the usual system message; its own group got a new admin.
    let left = wait_for(&mut carol_events, Duration::from_secs(5), |e| {
        matches!(e, Event::Message { message, .. }
            if message.conversation_id == carols && message.kind == MessageKind::System
                && message.body.contains("member_left"))
    })
    .await;
    assert!(
        matches!(&left, Some(Event::Message { message, .. })
            if message.body.contains(&format!("\"user_id\":\"{}\"", ada.id()))),
        "{left:?}"
    );
    let group = carol.client.conversation(carols).await.unwrap();
    assert!(group.members.iter().all(|m| m.user_id != ada.id()));
    let history = carol
        .client
        .messages(carols, MessagesQuery::newest())
        .await
        .unwrap();
    assert!(history.iter().any(|m| m.body.as_str() == "hello group"));
    let theirs = bob.client.conversation(adas).await.unwrap();
    assert_eq!(
        theirs
            .members
            .iter()
            .map(|m| (m.user_id, m.role))
            .collect::<Vec<_>>(),
        vec![(bob.id(), Role::Admin)]
    );

    // Nobody can add it anywhere, open a new direct conversation with it, or block it.
    let e = carol.client.add_member(carols, ada.id()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    let e = carol
        .client
        .create_group("again", &[ada.id()])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    let e = carol.client.direct(ada.id()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    let e = carol.client.block(ada.id()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));

    // The username is free again, for a new account with a new id.
    let new_ada = server.user("ada").await;
    assert_ne!(new_ada.id(), ada.id());
    assert_eq!(
        bob.client.user_by_username("ada").await.unwrap().id,
        new_ada.id()
    );
}

#[tokio::test]
async fn a_deleted_account_s_push_subscriptions_are_dropped() {
    let s = subscribed(|_| {}).await;
    let subscriptions = format!(
        "SELECT count(*) FROM push_subscriptions WHERE user_id = {}",
        s.alice.id()
    );
    assert_eq!(s.server.count(&subscriptions).await, 1);

    s.alice
        .client
        .delete_account("password-alice")
        .await
        .unwrap();

    assert_eq!(s.server.count(&subscriptions).await, 0);
    let e = s
        .bob
        .client
        .send_http(s.chat, None, "anyone?")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let outbox = format!(
        "SELECT count(*) FROM push_outbox WHERE user_id = {}",
        s.alice.id()
    );
    assert_eq!(s.server.count(&outbox).await, 0);
}

#[tokio::test]
async fn deleting_asks_for_the_password_and_counts_wrong_ones() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(ada.client.delete_account("guess").await.unwrap_err().code());
    }
    assert_eq!(codes[..5], [Some(ErrorCode::Forbidden); 5]);
    assert_eq!(
        codes[5],
        Some(ErrorCode::RateLimited),
        "a stolen session cannot guess the password"
    );
    assert_eq!(ada.client.me().await.unwrap().username, "ada");
}
