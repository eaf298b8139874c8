//! Notifications that follow changes: an edit replaces, and a delete (for everyone, or for
//! me) closes, a notification already shown, on every provider; text deleted for everyone
//! is in no push sent afterwards; reactions push nothing.

use super::harness::{TestServer, TestUser, next_message};
use super::push::{Browser, Receiver, Subscribed, apns, fcm, pair, pushy, subscribe, subscribed};
use confab_client::{Action, Body, ConversationId, Emoji};
use serde_json::{Value, json};
use std::time::Duration;

fn edit(target: u64, body: &str) -> Action {
    Action::Edit {
        target,
        body: Body::new(body.into()).unwrap(),
    }
}

async fn write(user: &TestUser, chat: ConversationId, action: Action) {
    user.client.write_http(chat, None, action).await.unwrap();
}

/// The Web Push payloads `browser` got at `receiver` once there are `n`, with their Topic.
async fn web_pushes(receiver: &Receiver, browser: &Browser, n: usize) -> Vec<(String, Value)> {
    receiver
        .wait("/push/", n)
        .await
        .iter()
        .map(|p| {
            let topic = p.headers["topic"].to_str().unwrap().to_owned();
            (topic, browser.decrypt(&p.body))
        })
        .collect()
}

#[tokio::test]
async fn an_edit_replaces_and_a_delete_closes_the_notification_shown() {
    let Subscribed {
        receiver,
        browser,
        alice,
        bob,
        chat,
        server: _server,
        ..
    } = subscribed(|c| c.push_preview = true).await;
    let topic = format!("c{chat}");

    let sent = bob
        .client
        .send_http(chat, None, "meet at 6 by the north gate")
        .await
        .unwrap();
    let seq = sent.message.seq;
    let (first_topic, first) = web_pushes(&receiver, &browser, 1).await.remove(0);
    assert_eq!(first_topic, topic);
    assert_eq!(first["kind"], "new");
    assert_eq!(first["preview"], "meet at 6 by the north gate");

    // Alice opens the app on her laptop; her phone still shows the notification, so it
    // must follow the edit even though a device of hers is online now.
    let (_laptop, mut events) = alice.connect(0).await;
    next_message(&mut events, Duration::from_secs(5)).await;
    write(&bob, chat, edit(seq, "meet at 7 by the north gate")).await;
    let (update_topic, update) = web_pushes(&receiver, &browser, 2).await.remove(1);
    assert_eq!(update_topic, topic, "the same Topic: it replaces the first");
    assert_eq!(update["kind"], "update", "replaced without alerting again");
    assert_eq!(update["preview"], "meet at 7 by the north gate");
    assert_eq!(
        (update["seq"].as_u64(), update["count"].as_u64()),
        (Some(seq), Some(1))
    );

    write(&bob, chat, Action::Delete { target: seq }).await;
    let (close_topic, close) = web_pushes(&receiver, &browser, 3).await.remove(2);
    assert_eq!(close_topic, topic);
    assert_eq!(
        close,
        json!({"kind": "close", "conversation_id": chat.to_string(),
               "inbox_seq": close["inbox_seq"], "badge": close["badge"]}),
        "a close says nothing of the message"
    );
    // The tombstone still counts as unread, as in her list.
    assert_eq!(close["badge"], 1);
    // Nothing more comes for it: the row is done once the hold is over.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(receiver.requests("/push/").len(), 3);
}

#[tokio::test]
async fn a_message_deleted_before_its_push_is_in_no_payload() {
    let Subscribed {
        receiver,
        browser,
        bob,
        chat,
        server: _server,
        ..
    } = subscribed(|c| {
        c.push_preview = true;
        // Long enough for the second message and its delete to come inside it.
        c.push_collapse_ms = 3_000;
    })
    .await;
    bob.client.send_http(chat, None, "hello").await.unwrap();
    web_pushes(&receiver, &browser, 1).await;
    // Held for the collapse window, then taken back before it went out.
    let secret = bob
        .client
        .send_http(chat, None, "my pin is 4921")
        .await
        .unwrap();
    write(
        &bob,
        chat,
        Action::Delete {
            target: secret.message.seq,
        },
    )
    .await;
    let (_, second) = web_pushes(&receiver, &browser, 2).await.remove(1);
    assert_eq!(second["kind"], "update", "nothing new to alert about");
    assert_eq!(second["preview"], "hello");
    // The hold after it ends with nothing more to push.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let all = web_pushes(&receiver, &browser, 2).await;
    assert_eq!(all.len(), 2);
    for (_, payload) in all {
        assert!(
            !payload.to_string().contains("4921"),
            "deleted text in a push: {payload}"
        );
    }
}

#[tokio::test]
async fn deleting_for_me_closes_my_notification_and_reactions_push_nothing() {
    let Subscribed {
        receiver,
        browser,
        alice,
        bob,
        chat,
        server: _server,
        ..
    } = subscribed(|_| {}).await;
    let sent = bob.client.send_http(chat, None, "psst").await.unwrap();
    let seq = sent.message.seq;
    web_pushes(&receiver, &browser, 1).await;

    // Reactions are not pushed and leave the notification as it is.
    let thumbs = Emoji::new("👍".into()).unwrap();
    write(
        &bob,
        chat,
        Action::React {
            target: seq,
            emoji: thumbs.clone(),
        },
    )
    .await;
    write(
        &alice,
        chat,
        Action::React {
            target: seq,
            emoji: thumbs,
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        receiver.requests("/push/").len(),
        1,
        "a reaction was pushed"
    );

    write(&alice, chat, Action::DeleteForMe { target: seq }).await;
    let (_, close) = web_pushes(&receiver, &browser, 2).await.remove(1);
    assert_eq!(close["kind"], "close");
}

#[tokio::test]
async fn fcm_and_apns_replace_quietly_and_close_in_the_background() {
    let (fcm_receiver, fcm_url) = Receiver::start().await;
    let (apns_receiver, apns_url) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::with(|c| {
        pushy(c);
        fcm(c, dir.path(), &fcm_url);
        apns(c, &apns_url);
    })
    .await;
    let (alice, bob, chat) = pair(&server).await;
    subscribe(&alice, &json!({"kind": "fcm", "token": "android-phone"})).await;
    subscribe(&alice, &json!({"kind": "apns", "token": "ab".repeat(32)})).await;
    let topic = format!("c{chat}");
    let fcm_sent = |n| {
        let receiver = fcm_receiver.clone();
        async move {
            let got = receiver.wait("/v1/projects/", n).await;
            let body: Value = serde_json::from_slice(&got[n - 1].body).unwrap();
            let data: Value =
                serde_json::from_str(body["message"]["data"]["confab"].as_str().unwrap()).unwrap();
            (body["message"].clone(), data)
        }
    };
    let apns_sent = |n| {
        let receiver = apns_receiver.clone();
        async move {
            let got = receiver.wait("/3/device/", n).await;
            let push = &got[n - 1];
            let header = |name: &str| push.headers[name].to_str().unwrap().to_owned();
            let body: Value = serde_json::from_slice(&push.body).unwrap();
            (
                [
                    header("apns-push-type"),
                    header("apns-priority"),
                    header("apns-collapse-id"),
                ],
                body,
            )
        }
    };

    let seq = bob
        .client
        .send_http(chat, None, "hi")
        .await
        .unwrap()
        .message
        .seq;
    let (message, data) = fcm_sent(1).await;
    assert_eq!(data["kind"], "new");
    assert!(
        message["notification"]["title"].is_string(),
        "shown by the system: {message}"
    );
    assert_eq!(message["android"]["notification"]["tag"], topic);
    assert_eq!(message["android"]["notification"]["notification_count"], 1);
    let (headers, body) = apns_sent(1).await;
    assert_eq!(headers, ["alert".to_owned(), "10".into(), topic.clone()]);
    assert_eq!(body["aps"]["sound"], "default");
    assert_eq!(body["aps"]["badge"], 1, "her unread messages");

    write(&bob, chat, edit(seq, "hi there")).await;
    let (message, data) = fcm_sent(2).await;
    assert_eq!(data["kind"], "update");
    assert!(
        message.get("notification").is_none(),
        "data only: the app replaces its notification quietly: {message}"
    );
    assert_eq!(message["android"]["collapse_key"], topic);
    let (headers, body) = apns_sent(2).await;
    assert_eq!(headers, ["alert".to_owned(), "10".into(), topic.clone()]);
    assert!(
        body["aps"].get("sound").is_none(),
        "an update makes no sound: {body}"
    );
    assert_eq!(body["aps"]["interruption-level"], "passive");

    write(&bob, chat, Action::Delete { target: seq }).await;
    let (message, data) = fcm_sent(3).await;
    assert_eq!(data["kind"], "close");
    assert!(message.get("notification").is_none(), "{message}");
    assert_eq!(message["android"]["priority"], "NORMAL", "it shows nothing");
    let (headers, body) = apns_sent(3).await;
    assert_eq!(
        headers,
        ["background".to_owned(), "5".into(), topic.clone()]
    );
    assert_eq!(
        body["aps"],
        json!({"content-available": 1, "badge": 1}),
        "a tombstone still counts as unread"
    );
    assert_eq!(body["confab"]["kind"], "close");
}
