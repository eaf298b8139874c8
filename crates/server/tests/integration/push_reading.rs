//! Notifications that follow reading: a conversation read on one device (or answered from
//! it) updates or closes the notification shown on the others, and every push carries the
//! badge: the user's unread messages, as their conversation list sums them.

use super::harness::TestUser;
use super::push::{Browser, Receiver, Subscribed, subscribed};
use confab_client::ConversationId;
use serde_json::{Value, json};

/// The `n`th Web Push payload (from 1) alice's browser got, with its Topic.
async fn push(receiver: &Receiver, browser: &Browser, n: usize) -> (String, Value) {
    let got = receiver.wait("/push/", n).await;
    let p = &got[n - 1];
    let topic = p.headers["topic"].to_str().unwrap().to_owned();
    (topic, browser.decrypt(&p.body))
}

/// What `user`'s conversation list sums its unread counts to.
async fn unread_sum(user: &TestUser) -> u64 {
    let list = user.client.conversations().await.unwrap();
    list.iter().map(|c| c.unread).sum()
}

fn topic(chat: ConversationId) -> String {
    format!("c{chat}")
}

#[tokio::test]
async fn reading_elsewhere_updates_then_closes_the_notification_and_the_badge_follows() {
    let Subscribed {
        receiver,
        browser,
        alice,
        bob,
        chat,
        server,
    } = subscribed(|c| c.push_preview = true).await;
    let carol = server.user("carol").await;
    let other = carol.client.direct(alice.id()).await.unwrap().id;

    carol
        .client
        .send_http(other, None, "hi alice")
        .await
        .unwrap();
    let (t, first) = push(&receiver, &browser, 1).await;
    assert_eq!(
        (t, &first["kind"], &first["badge"]),
        (topic(other), &json!("new"), &json!(1))
    );
    let one = bob.client.send_http(chat, None, "one").await.unwrap();
    let (t, second) = push(&receiver, &browser, 2).await;
    assert_eq!((t, &second["badge"]), (topic(chat), &json!(2)));
    bob.client.send_http(chat, None, "two").await.unwrap();
    let (_, third) = push(&receiver, &browser, 3).await;
    assert_eq!(
        (&third["kind"], &third["count"]),
        (&json!("new"), &json!(2))
    );
    assert_eq!(third["badge"], unread_sum(&alice).await, "the list's sum");
    assert_eq!(third["badge"], 3);

    // Read partway on her laptop: the phone's notification shows what is left, quietly.
    alice.client.read(chat, one.message.seq).await.unwrap();
    let (t, update) = push(&receiver, &browser, 4).await;
    assert_eq!(t, topic(chat), "the same Topic: it replaces the one shown");
    assert_eq!(
        (&update["kind"], &update["count"]),
        (&json!("update"), &json!(1))
    );
    assert_eq!(
        (&update["preview"], &update["badge"]),
        (&json!("two"), &json!(2))
    );

    // Read to the end: closed.
    alice.client.read(chat, one.message.seq + 1).await.unwrap();
    let (t, close) = push(&receiver, &browser, 5).await;
    assert_eq!(
        (t, &close["kind"], &close["badge"]),
        (topic(chat), &json!("close"), &json!(1))
    );
    assert!(close.get("preview").is_none(), "a close shows nothing");

    // Answering from the laptop reads too: carol's notification closes.
    alice
        .client
        .send_http(other, None, "hi carol")
        .await
        .unwrap();
    let (t, close) = push(&receiver, &browser, 6).await;
    assert_eq!(
        (t, &close["kind"], &close["badge"]),
        (topic(other), &json!("close"), &json!(0))
    );
    assert_eq!(unread_sum(&alice).await, 0);
}
