//! Each member's settings for a conversation: synced to every device of theirs (a frame
//! live, the list after), their own alone, archived until a message that would notify
//! at the level, a level that ends by itself, every bad change refused, and the push
//! worker obeying the level (a mention still pushes at `mentions`, nothing at `none`).

use crate::harness::{TestServer, TestUser, wait_for};
use crate::push::{Subscribed, subscribed};
use confab_client::{
    Action, Body, ConversationId, ConversationSettings, ErrorCode, Event, NotifyLevel,
    SettingsChange, Timestamp,
};
use serde_json::json;
use std::time::Duration;

async fn change(user: &TestUser, chat: ConversationId, change: SettingsChange) {
    user.client.change_settings(chat, change).await.unwrap();
}

async fn settings(user: &TestUser, chat: ConversationId) -> ConversationSettings {
    user.client.conversation(chat).await.unwrap().settings
}

fn archive() -> SettingsChange {
    SettingsChange {
        archived: Some(true),
        ..Default::default()
    }
}

fn level(notify: NotifyLevel) -> SettingsChange {
    SettingsChange {
        notify: Some(notify),
        ..Default::default()
    }
}

#[tokio::test]
async fn settings_reach_every_device_of_their_owner_only() {
    let server = TestServer::start().await;
    let laptop = server.user("ada").await;
    let phone = server.login("ada").await;
    let bob = server.user("bob").await;
    let chat = laptop.client.direct(bob.id()).await.unwrap().id;
    let (_phone_ws, mut phone_events) = phone.connect(0).await;
    let (_bob_ws, mut bob_events) = bob.connect(0).await;

    let answered = laptop
        .client
        .change_settings(
            chat,
            SettingsChange {
                archived: Some(true),
                pinned: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let expected = ConversationSettings {
        notify: NotifyLevel::All,
        notify_until: None,
        archived: true,
        pinned: true,
    };
    assert_eq!(answered, expected);
    let live = wait_for(&mut phone_events, Duration::from_secs(5), |e| {
        matches!(e, Event::Settings { .. })
    })
    .await
    .expect("the phone hears of it live");
    assert!(
        matches!(live, Event::Settings { conversation_id, settings }
            if conversation_id == chat && settings == expected),
        "{live:?}"
    );
    // A device that was away reads them in the list.
    let listed = phone.client.conversations().await.unwrap();
    assert_eq!(listed[0].settings, expected);
    // Bob's are his own, and he hears nothing of ada's.
    assert_eq!(settings(&bob, chat).await, ConversationSettings::default());
    assert!(
        wait_for(&mut bob_events, Duration::from_millis(500), |e| {
            matches!(e, Event::Settings { .. })
        })
        .await
        .is_none()
    );
}

#[tokio::test]
async fn archived_comes_back_when_a_message_would_notify() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    let first = bob.client.send_http(chat, None, "hello").await.unwrap();

    // At `all`: any new message brings it back; a change does not.
    change(&ada, chat, archive()).await;
    assert!(settings(&ada, chat).await.archived);
    let edit = Action::Edit {
        target: first.message.seq,
        body: Body::new("hello there".into()).unwrap(),
    };
    bob.client.write_http(chat, None, edit).await.unwrap();
    assert!(settings(&ada, chat).await.archived, "an edit is no news");
    bob.client.send_http(chat, None, "news").await.unwrap();
    assert!(!settings(&ada, chat).await.archived);

    // At `none`: it stays archived.
    change(&ada, chat, level(NotifyLevel::None)).await;
    change(&ada, chat, archive()).await;
    bob.client.send_http(chat, None, "more news").await.unwrap();
    assert!(settings(&ada, chat).await.archived);

    // At `mentions`: only a mention brings it back.
    change(&ada, chat, level(NotifyLevel::Mentions)).await;
    assert!(settings(&ada, chat).await.archived);
    bob.client
        .send_http(chat, None, "still news")
        .await
        .unwrap();
    assert!(settings(&ada, chat).await.archived);
    bob.client.send_http(chat, None, "@ada look").await.unwrap();
    let now = settings(&ada, chat).await;
    assert!(!now.archived);
    assert_eq!(now.notify, NotifyLevel::Mentions);

    // Back to `all` while archived: what came while it was muted does not bring it back.
    change(&ada, chat, level(NotifyLevel::None)).await;
    change(&ada, chat, archive()).await;
    bob.client
        .send_http(chat, None, "quiet news")
        .await
        .unwrap();
    change(&ada, chat, level(NotifyLevel::All)).await;
    assert!(settings(&ada, chat).await.archived, "unmuting is no news");
    bob.client.send_http(chat, None, "loud news").await.unwrap();
    assert!(!settings(&ada, chat).await.archived);
}

#[tokio::test]
async fn a_level_with_an_end_goes_back_to_all_by_itself() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    let until = Timestamp(Timestamp::now().0 + 1_000);
    change(
        &ada,
        chat,
        SettingsChange {
            notify: Some(NotifyLevel::None),
            notify_until: Some(until),
            ..Default::default()
        },
    )
    .await;
    let muted = settings(&ada, chat).await;
    assert_eq!(
        (muted.notify, muted.notify_until),
        (NotifyLevel::None, Some(until))
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(settings(&ada, chat).await, ConversationSettings::default());
}

#[tokio::test]
async fn bad_changes_are_refused_with_the_contracts_codes() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    let now = Timestamp::now().0;
    let hour = Timestamp(now + 3_600_000);
    let refused = |change: SettingsChange| {
        let ada = &ada;
        async move {
            let e = ada.client.change_settings(chat, change).await.unwrap_err();
            e.code().expect("an API error")
        }
    };
    for bad in [
        SettingsChange::default(),
        SettingsChange {
            notify_until: Some(hour),
            ..Default::default()
        },
        SettingsChange {
            notify: Some(NotifyLevel::All),
            notify_until: Some(hour),
            ..Default::default()
        },
        SettingsChange {
            notify: Some(NotifyLevel::None),
            notify_until: Some(Timestamp(now - 1)),
            ..Default::default()
        },
        SettingsChange {
            notify: Some(NotifyLevel::None),
            notify_until: Some(Timestamp(now + 400 * 24 * 3_600_000)),
            ..Default::default()
        },
    ] {
        assert_eq!(refused(bad).await, ErrorCode::InvalidRequest, "{bad:?}");
    }
    // A misspelt field is an error, not a silent no-op.
    let answer = reqwest::Client::new()
        .patch(format!("{}/v1/conversations/{chat}/settings", ada.url))
        .bearer_auth(&ada.login.token)
        .json(&json!({"archive": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    // Not hers: as her history would answer.
    let e = eve
        .client
        .change_settings(chat, archive())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = eve
        .client
        .change_settings(ConversationId(999_999), archive())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    assert_eq!(settings(&ada, chat).await, ConversationSettings::default());
}

#[tokio::test]
async fn the_push_worker_obeys_the_level() {
    let Subscribed {
        receiver,
        browser,
        alice,
        bob,
        chat,
        server: _server,
    } = subscribed(|c| c.push_preview = true).await;
    let pushes = || receiver.requests("/push/").len();
    // The worker looks every few hundred ms and holds a conversation for 300 ms after a
    // push (`pushy`): a second is ample for a push that was going to come.
    let settle = || tokio::time::sleep(Duration::from_millis(1_000));

    change(&alice, chat, level(NotifyLevel::None)).await;
    bob.client
        .send_http(chat, None, "@alice lunch?")
        .await
        .unwrap();
    settle().await;
    assert_eq!(pushes(), 0, "nothing at none, not even a mention");

    change(&alice, chat, level(NotifyLevel::Mentions)).await;
    bob.client.send_http(chat, None, "anyone?").await.unwrap();
    settle().await;
    assert_eq!(pushes(), 0, "at mentions, a plain message is quiet");
    bob.client
        .send_http(chat, None, "@alice the table is booked")
        .await
        .unwrap();
    let got = receiver.wait("/push/", 1).await;
    let mention = browser.decrypt(&got[0].body);
    assert_eq!(mention["kind"], "new");
    assert_eq!(mention["preview"], "@alice the table is booked");
    assert_eq!(mention["count"], 2, "her unread mentions");

    change(&alice, chat, level(NotifyLevel::All)).await;
    settle().await;
    bob.client
        .send_http(chat, None, "see you there")
        .await
        .unwrap();
    let got = receiver.wait("/push/", 2).await;
    let plain = browser.decrypt(&got[1].body);
    assert_eq!(plain["preview"], "see you there");
    assert_eq!(plain["count"], 4, "every unread message");
}
