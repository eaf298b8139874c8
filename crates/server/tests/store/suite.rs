//! The store conformance suite: every backend must pass every case here. A backend's test
//! file builds a fresh, empty store per case and calls [`run_all`].

use confab_proto::{
    Action, Body, ConversationId, ConversationKind, DeviceId, MessageKind, Role, Timestamp, UserId,
};
use confab_server::store::{
    CursorMove, ListPage, NewDevice, NewGroup, NewMessage, NewSubscription, NewUser, NodeRecord,
    PushTarget, Refusal, SeqWindow, Shown, Store, StoreError,
};
use std::future::Future;
use std::sync::Arc;

/// Runs every case, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    users(make().await).await;
    devices(make().await).await;
    direct_conversations(make().await).await;
    append_sequences_and_fans_out(make().await).await;
    append_is_idempotent(make().await).await;
    append_checks_membership(make().await).await;
    append_counts_the_senders_quota(make().await).await;
    push_subscriptions(make().await).await;
    groups_per_day(make().await).await;
    push_outbox(make().await).await;
    changes_refresh_the_notification_shown(make().await).await;
    reading_refreshes_the_notification_shown(make().await).await;
    concurrent_appends_commit_gap_free(make().await).await;
    concurrent_appends_answer_each_send(make().await).await;
    history_windows(make().await).await;
    groups_and_membership(make().await).await;
    group_size_limit(make().await).await;
    full_group_fans_out_to_every_inbox(make().await).await;
    watermarks_never_go_back(make().await).await;
    shared_secrets(make().await).await;
    node_id_leases(make().await).await;
    node_registry(make().await).await;
    online_across_processes(make().await).await;
    login_failures(make().await).await;
    changes_apply_once_and_history_shows_the_present(make().await).await;
    delete_for_everyone_purges_the_text(make().await).await;
    changes_follow_the_rules(make().await).await;
    delete_for_me_is_the_deleters_alone(make().await).await;
    unread_counts_messages_and_mentions_not_changes(make().await).await;
    the_index_follows_the_queue_and_changes_win(make().await).await;
    settings_are_each_members_own_and_changes_merge(make().await).await;
    blocks_close_the_direct_conversation_either_way(make().await).await;
    privacy_defaults_to_sharing_and_changes_merge(make().await).await;
    a_deleted_account_is_anonymised_and_its_direct_conversations_closed(make().await).await;
    a_user_in_over_a_thousand_conversations_finds_the_newest_and_best(make().await).await;
}

/// A change to the message at `target`.
fn change(
    conversation_id: ConversationId,
    sender_id: UserId,
    client_msg_id: &str,
    kind: MessageKind,
    body: &str,
    target: u64,
) -> NewMessage {
    NewMessage {
        conversation_id,
        sender_id,
        client_msg_id: client_msg_id.into(),
        action: Action::parse(kind, body.into(), Some(target), None).unwrap(),
        mentions: Vec::new(),
        quota_bytes: u64::MAX,
    }
}

/// Every message of a conversation as `viewer` sees it now.
async fn present(
    store: &dyn Store,
    conversation: ConversationId,
    viewer: UserId,
) -> Vec<confab_proto::Message> {
    store
        .messages(
            conversation,
            SeqWindow {
                after: 0,
                before: u64::MAX,
                limit: 200,
                newest: false,
            },
            viewer,
        )
        .await
        .unwrap()
}

fn refused(result: Result<confab_server::store::Appended, StoreError>) -> Refusal {
    match result {
        Err(StoreError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn changes_apply_once_and_history_shows_the_present(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    let mut hi = text(conv.id, ada, "m1", "hi bob");
    hi.mentions = vec![bob];
    store.append(hi).await.unwrap();
    store.append(text(conv.id, bob, "m2", "hey")).await.unwrap();
    let edit = change(conv.id, ada, "e1", MessageKind::Edit, "hi @bob!", 1);
    let edited = store.append(edit.clone()).await.unwrap();
    assert_eq!(edited.message.kind, MessageKind::Edit);
    assert_eq!(
        (edited.message.seq, edited.message.target_seq),
        (3, Some(1))
    );
    assert_eq!(edited.recipients.len(), 2, "both members get the change");
    // A retried change is the same change, applied once.
    let again = store.append(edit).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.seq, 3);
    for (id, who, emoji) in [("r1", bob, "👍"), ("r2", ada, "👍"), ("r3", bob, "❤️")] {
        store
            .append(change(conv.id, who, id, MessageKind::React, emoji, 1))
            .await
            .unwrap();
    }
    // Reacting twice with the same emoji is harmless: still one reaction.
    store
        .append(change(conv.id, bob, "r4", MessageKind::React, "👍", 1))
        .await
        .unwrap();
    store
        .append(change(conv.id, ada, "u1", MessageKind::Unreact, "👍", 1))
        .await
        .unwrap();
    let now = present(&*store, conv.id, bob).await;
    assert_eq!(
        now.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2],
        "history holds messages, not changes"
    );
    let first = &now[0];
    assert_eq!(first.body, "hi @bob!");
    assert!(first.edited_at.is_some());
    assert_eq!(first.changed_seq, 8, "the unreact was the last change");
    let reactions: Vec<_> = first
        .reactions
        .iter()
        .map(|r| (r.emoji.as_str(), r.count, r.me, r.user_ids.clone()))
        .collect();
    assert_eq!(
        reactions,
        [("👍", 1, true, vec![bob]), ("❤️", 1, true, vec![bob])]
    );
    let as_ada = present(&*store, conv.id, ada).await;
    assert!(as_ada[0].reactions.iter().all(|r| !r.me));
    // Every change is in both inboxes, in order, after the messages it changes.
    let kinds: Vec<(MessageKind, Option<u64>)> = store
        .inbox_after(ada, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.message.kind, e.message.target_seq))
        .collect();
    use MessageKind::*;
    assert_eq!(
        kinds,
        [
            (Text, None),
            (Text, None),
            (Edit, Some(1)),
            (React, Some(1)),
            (React, Some(1)),
            (React, Some(1)),
            (React, Some(1)),
            (Unreact, Some(1)),
        ]
    );
    assert_eq!(store.inbox_after(bob, 0, 100).await.unwrap().len(), 8);
}

async fn delete_for_everyone_purges_the_text(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    store
        .append(text(conv.id, ada, "m1", "a secret"))
        .await
        .unwrap();
    store
        .append(change(
            conv.id,
            ada,
            "e1",
            MessageKind::Edit,
            "a bigger secret",
            1,
        ))
        .await
        .unwrap();
    store
        .append(change(conv.id, bob, "r1", MessageKind::React, "😮", 1))
        .await
        .unwrap();
    let deleted = store
        .append(change(conv.id, ada, "d1", MessageKind::Delete, "", 1))
        .await
        .unwrap();
    assert_eq!(deleted.message.seq, 4);
    let now = present(&*store, conv.id, bob).await;
    assert_eq!(now.len(), 1, "the tombstone keeps its seq");
    assert_eq!(now[0].body, "");
    assert!(now[0].deleted_at.is_some() && now[0].edited_at.is_none());
    assert!(now[0].reactions.is_empty());
    // No entry of the log holds the text any more: not the message, not its edit.
    for entry in store.inbox_after(bob, 0, 100).await.unwrap() {
        assert!(
            !entry.message.body.contains("secret"),
            "{:?} still holds the text",
            entry.message
        );
    }
    // A tombstone takes no edit or reaction; deleting it again is harmless.
    assert_eq!(
        refused(
            store
                .append(change(conv.id, ada, "e2", MessageKind::Edit, "back", 1))
                .await
        ),
        Refusal::MessageDeleted
    );
    assert_eq!(
        refused(
            store
                .append(change(conv.id, bob, "r2", MessageKind::React, "👍", 1))
                .await
        ),
        Refusal::MessageDeleted
    );
    store
        .append(change(conv.id, ada, "d2", MessageKind::Delete, "", 1))
        .await
        .unwrap();
}

async fn changes_follow_the_rules(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let (direct, _) = store.direct(ada, bob).await.unwrap();
    store
        .append(text(direct.id, ada, "m1", "mine"))
        .await
        .unwrap();
    let rule = |r: Result<_, _>| refused(r);
    // Only the sender edits; in a direct conversation only the sender deletes.
    assert_eq!(
        rule(
            store
                .append(change(direct.id, bob, "x1", MessageKind::Edit, "yours?", 1))
                .await
        ),
        Refusal::NotSender
    );
    assert_eq!(
        rule(
            store
                .append(change(direct.id, bob, "x2", MessageKind::Delete, "", 1))
                .await
        ),
        Refusal::NotSender
    );
    // A seq with no message, or with a change, is no message to change.
    assert_eq!(
        rule(
            store
                .append(change(direct.id, ada, "x3", MessageKind::Edit, "?", 9))
                .await
        ),
        Refusal::NoSuchMessage
    );
    store
        .append(change(direct.id, bob, "r1", MessageKind::React, "👍", 1))
        .await
        .unwrap();
    assert_eq!(
        rule(
            store
                .append(change(direct.id, ada, "x4", MessageKind::React, "👍", 2))
                .await
        ),
        Refusal::NoSuchMessage
    );
    // Not a member: refused as a send would be.
    assert_eq!(
        rule(
            store
                .append(change(direct.id, carol, "x5", MessageKind::React, "👍", 1))
                .await
        ),
        Refusal::NotMember
    );
    // At most 20 different reactions per user and message; the same one again is fine.
    let emoji: Vec<&str> = [
        "😀", "😃", "😄", "😁", "😆", "😅", "🤣", "😂", "🙂", "🙃", "😉", "😊", "😇", "🥰", "😍",
        "🤩", "😘", "😗", "😚",
    ]
    .to_vec();
    for (i, e) in emoji.iter().enumerate() {
        store
            .append(change(
                direct.id,
                bob,
                &format!("r{}", i + 2),
                MessageKind::React,
                e,
                1,
            ))
            .await
            .unwrap();
    }
    assert_eq!(
        rule(
            store
                .append(change(direct.id, bob, "x6", MessageKind::React, "😙", 1))
                .await
        ),
        Refusal::TooManyReactions
    );
    store
        .append(change(direct.id, bob, "r99", MessageKind::React, "😀", 1))
        .await
        .unwrap();
    // Groups: system messages do not change; an admin deletes anyone's message, a member
    // only their own; someone added later cannot reach what came before they joined.
    let (group, _) = store
        .create_group(NewGroup {
            creator: ada,
            title: "crew".into(),
            members: vec![bob],
            groups_per_day: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        rule(
            store
                .append(change(group.id, ada, "g1", MessageKind::React, "👍", 1))
                .await
        ),
        Refusal::SystemMessage
    );
    assert_eq!(
        rule(
            store
                .append(change(group.id, ada, "g2", MessageKind::Delete, "", 1))
                .await
        ),
        Refusal::SystemMessage
    );
    store
        .append(text(group.id, bob, "g3", "from bob"))
        .await
        .unwrap();
    store
        .append(text(group.id, ada, "g4", "from ada"))
        .await
        .unwrap();
    assert_eq!(
        rule(
            store
                .append(change(group.id, bob, "g5", MessageKind::Delete, "", 3))
                .await
        ),
        Refusal::NotSender
    );
    store
        .append(change(group.id, ada, "g6", MessageKind::Delete, "", 2))
        .await
        .expect("an admin deletes a member's message");
    store.add_member(group.id, ada, carol).await.unwrap();
    assert_eq!(
        rule(
            store
                .append(change(group.id, carol, "g7", MessageKind::React, "👍", 3))
                .await
        ),
        Refusal::NoSuchMessage,
        "before carol joined"
    );
}

async fn delete_for_me_is_the_deleters_alone(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    store.append(text(conv.id, ada, "m1", "one")).await.unwrap();
    store.append(text(conv.id, ada, "m2", "two")).await.unwrap();
    let hidden = store
        .append(change(conv.id, bob, "h1", MessageKind::DeleteForMe, "", 2))
        .await
        .unwrap();
    assert_eq!(hidden.recipients.len(), 1, "only the deleter's inbox");
    assert_eq!(hidden.recipients[0].0, bob);
    let seqs = |v: Vec<confab_proto::Message>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(present(&*store, conv.id, bob).await), [1]);
    assert_eq!(seqs(present(&*store, conv.id, ada).await), [1, 2]);
    assert_eq!(store.inbox_after(ada, 0, 10).await.unwrap().len(), 2);
    let bobs = store.inbox_after(bob, 0, 10).await.unwrap();
    assert_eq!(bobs.len(), 3);
    assert_eq!(bobs[2].message.kind, MessageKind::DeleteForMe);
}

async fn unread_counts_messages_and_mentions_not_changes(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    store.append(text(conv.id, ada, "m1", "one")).await.unwrap();
    let mut two = text(conv.id, ada, "m2", "two @bob");
    two.mentions = vec![bob];
    store.append(two).await.unwrap();
    store
        .append(change(conv.id, ada, "e1", MessageKind::Edit, "one!", 1))
        .await
        .unwrap();
    store
        .append(change(conv.id, ada, "r1", MessageKind::React, "👍", 1))
        .await
        .unwrap();
    let last = store.conversation(conv.id).await.unwrap().unwrap();
    assert_eq!((last.last_seq, last.last_message_seq), (4, 2));
    let unread = store.unread(conv.id, bob, 0, 4).await.unwrap();
    assert_eq!((unread.messages, unread.mentions), (2, 1));
    assert_eq!(store.unread(conv.id, bob, 1, 4).await.unwrap().messages, 1);
    assert_eq!(store.unread(conv.id, bob, 2, 4).await.unwrap().messages, 0);
    // A deleted mention is no longer one.
    store
        .append(change(conv.id, ada, "d1", MessageKind::Delete, "", 2))
        .await
        .unwrap();
    let unread = store.unread(conv.id, bob, 0, 5).await.unwrap();
    assert_eq!((unread.messages, unread.mentions), (2, 0));
}

async fn user(store: &dyn Store, name: &str) -> UserId {
    store
        .create_user(NewUser {
            username: name.into(),
            display_name: name.into(),
            password_hash: "h".into(),
        })
        .await
        .unwrap()
        .id
}

fn text(
    conversation_id: ConversationId,
    sender_id: UserId,
    client_msg_id: &str,
    body: &str,
) -> NewMessage {
    NewMessage {
        conversation_id,
        sender_id,
        client_msg_id: client_msg_id.into(),
        action: Action::Text {
            body: Body::new(body.into()).unwrap(),
            reply_to: None,
        },
        mentions: Vec::new(),
        quota_bytes: u64::MAX,
    }
}

async fn append_counts_the_senders_quota(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    let quota = |mut m: NewMessage, bytes: u64| {
        m.quota_bytes = bytes;
        m
    };
    // "héllo" is 6 bytes of UTF-8: bytes count, not characters.
    store
        .append(quota(text(conv.id, ada, "q1", "héllo"), 10))
        .await
        .unwrap();
    store
        .append(quota(text(conv.id, ada, "q2", "four"), 10))
        .await
        .unwrap();
    assert!(matches!(
        store.append(quota(text(conv.id, ada, "q3", "x"), 10)).await,
        Err(StoreError::Refused(Refusal::QuotaExceeded))
    ));
    // A retry of a stored message is not stored again, so it is not refused.
    let again = store
        .append(quota(text(conv.id, ada, "q2", "four"), 10))
        .await
        .unwrap();
    assert!(again.duplicate);
    // Bob has his own quota, and a refused message took no seq.
    let next = store
        .append(quota(text(conv.id, bob, "b1", "hi"), 10))
        .await
        .unwrap();
    assert_eq!(next.message.seq, 3);
}

async fn groups_per_day(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let new = |title: &str| NewGroup {
        creator: ada,
        title: title.into(),
        groups_per_day: 2,
        members: Vec::new(),
    };
    store.create_group(new("one")).await.unwrap();
    store.create_group(new("two")).await.unwrap();
    assert!(matches!(
        store.create_group(new("three")).await,
        Err(StoreError::Refused(Refusal::GroupsPerDay))
    ));
}

fn webpush(endpoint: &str) -> PushTarget {
    PushTarget::WebPush {
        endpoint: endpoint.into(),
        p256dh: vec![4; 65],
        auth: vec![7; 16],
    }
}

async fn device(store: &dyn Store, user: UserId, token: u8) -> DeviceId {
    store
        .create_device(NewDevice {
            user_id: user,
            name: "d".into(),
            token_hash: vec![token; 32],
        })
        .await
        .unwrap()
        .id
}

async fn push_subscriptions(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let phone = device(&*store, ada, 1).await;
    let laptop = device(&*store, ada, 2).await;
    let new = |device_id, target| NewSubscription {
        user_id: ada,
        device_id,
        target,
    };
    let first = store
        .add_subscription(new(phone, webpush("https://push.example/1")))
        .await
        .unwrap();
    assert_eq!((first.user_id, first.device_id), (ada, phone));
    assert_eq!(first.target, webpush("https://push.example/1"));
    let fcm = store
        .add_subscription(new(laptop, PushTarget::Fcm("tok".into())))
        .await
        .unwrap();
    // The same endpoint again (a new login in the same browser) moves, keeping one row.
    let moved = store
        .add_subscription(new(laptop, webpush("https://push.example/1")))
        .await
        .unwrap();
    assert_eq!(moved.device_id, laptop);
    let mine = store.subscriptions(ada).await.unwrap();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(
        !store.delete_subscription(bob, fcm.id).await.unwrap(),
        "only the owner deletes"
    );
    assert!(store.delete_subscription(ada, fcm.id).await.unwrap());
    assert!(!store.delete_subscription(ada, fcm.id).await.unwrap());
    store.drop_subscription(moved.id).await.unwrap();
    assert!(store.subscriptions(ada).await.unwrap().is_empty());

    // A device keeps its newest PUSH_SUBSCRIPTIONS_PER_DEVICE; removing it removes them.
    let cap = confab_proto::limits::PUSH_SUBSCRIPTIONS_PER_DEVICE;
    for i in 0..cap + 2 {
        store
            .add_subscription(new(phone, webpush(&format!("https://push.example/p{i}"))))
            .await
            .unwrap();
    }
    let kept = store.subscriptions(ada).await.unwrap();
    assert_eq!(kept.len(), cap);
    assert_eq!(kept[0].target, webpush("https://push.example/p2"));
    assert!(store.delete_device(ada, phone).await.unwrap());
    assert!(store.subscriptions(ada).await.unwrap().is_empty());
}

/// Subscribes `user`'s `device` to Web Push.
async fn subscribe(store: &dyn Store, user: UserId, device: DeviceId) {
    store
        .add_subscription(NewSubscription {
            user_id: user,
            device_id: device,
            target: webpush(&format!("https://push.example/{user}")),
        })
        .await
        .unwrap();
}

/// Claims due outbox rows for a minute from `now`.
async fn claim(store: &dyn Store, now: i64, skip: &[UserId]) -> Vec<confab_server::store::PushJob> {
    store
        .claim_pushes(Timestamp(now), Timestamp(now + 60_000), 10, skip)
        .await
        .unwrap()
}

async fn push_outbox(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let phone = device(&*store, ada, 1).await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    // Rows are due from when they are written; the test's clock starts a little later.
    let t = Timestamp::now().0 + 10_000;
    // Nobody has a subscription: no row.
    store
        .append(text(conv.id, bob, "m0", "before"))
        .await
        .unwrap();
    assert!(claim(&*store, t, &[]).await.is_empty());
    subscribe(&*store, ada, phone).await;
    // A message to ada queues one row, in its own transaction; the sender gets none.
    let first = store.append(text(conv.id, bob, "m1", "one")).await.unwrap();
    assert!(first.push_queued);
    assert!(
        claim(&*store, t, &[ada]).await.is_empty(),
        "rows of users being pushed to are left out"
    );
    let due = claim(&*store, t, &[]).await;
    assert_eq!(due.len(), 1, "{due:?}");
    let job = due[0];
    assert_eq!(
        (job.user_id, job.conversation_id, job.seq, job.sender_id),
        (ada, conv.id, 2, bob)
    );
    assert!(job.has_news());
    // Claimed: no other worker gets it while the lease lasts; after it, one does (the
    // first worker died).
    assert!(claim(&*store, t + 59_999, &[]).await.is_empty());
    assert_eq!(claim(&*store, t + 60_000, &[]).await.len(), 1);
    // A burst updates the same row, claimed or not.
    store.append(text(conv.id, bob, "m2", "two")).await.unwrap();
    // Retried: that ends the claim; not due before its time, attempts counted.
    store
        .push_retry(&job, Timestamp(t + 1_000), Shown::Unchanged)
        .await
        .unwrap();
    assert!(claim(&*store, t + 999, &[]).await.is_empty());
    let retried = claim(&*store, t + 1_000, &[]).await;
    assert_eq!((retried[0].attempts, retried[0].seq), (1, 3));
    // Pushed: held until later, with nothing new, then forgotten.
    store
        .push_done(&retried[0], Timestamp(t + 2_000), Shown::Unchanged)
        .await
        .unwrap();
    let held = claim(&*store, t + 2_000, &[]).await;
    assert_eq!(held.len(), 1);
    assert!(!held[0].has_news());
    assert_eq!(held[0].attempts, 0);
    // A message during the hold is news again; forgetting the old job keeps the new row.
    store
        .append(text(conv.id, bob, "m3", "three"))
        .await
        .unwrap();
    store.push_forget(&held[0]).await.unwrap();
    let fresh = claim(&*store, t + 1_000_000, &[]).await;
    assert_eq!(
        fresh.len(),
        1,
        "a newer message survives an older job's forget"
    );
    assert!(fresh[0].has_news());
    store.push_forget(&fresh[0]).await.unwrap();
    assert!(claim(&*store, t + 10_000_000, &[]).await.is_empty());

    // Workers claiming at the same moment never get the same row.
    let mut others = Vec::new();
    for i in 0..6 {
        let other = user(&*store, &format!("friend{i}")).await;
        let (c, _) = store.direct(ada, other).await.unwrap();
        store.append(text(c.id, other, "hi", "hi")).await.unwrap();
        others.push(c.id);
    }
    let claims = (0..3).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .claim_pushes(Timestamp(t), Timestamp(t + 60_000), 2, &[])
                .await
                .unwrap()
        })
    });
    let mut claimed: Vec<ConversationId> = Vec::new();
    for c in claims {
        claimed.extend(c.await.unwrap().iter().map(|job| job.conversation_id));
    }
    claimed.sort();
    others.sort();
    assert_eq!(claimed, others, "each row claimed once, none left out");
}

/// An edit or delete of a message the shown notification covers asks for a refresh, in
/// the change's own transaction; of a message it does not cover, or a reaction, does not.
async fn changes_refresh_the_notification_shown(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let phone = device(&*store, ada, 1).await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    let t = Timestamp::now().0 + 10_000;
    let old = store.append(text(conv.id, bob, "m0", "old")).await.unwrap();
    subscribe(&*store, ada, phone).await;
    let shown = store
        .append(text(conv.id, bob, "m1", "shown"))
        .await
        .unwrap();
    let job = claim(&*store, t, &[]).await[0];
    assert_eq!((job.refresh, job.shown_upto), (false, None));
    // Ada read "old" before; the notification shows what came after.
    store
        .push_done(
            &job,
            Timestamp(t),
            Shown::Notification {
                after_seq: old.message.seq,
                upto_seq: shown.message.seq,
            },
        )
        .await
        .unwrap();
    store
        .push_forget(&claim(&*store, t, &[]).await[0])
        .await
        .unwrap();
    assert!(claim(&*store, t, &[]).await.is_empty());

    let edit = |id: &str, target: u64| change(conv.id, bob, id, MessageKind::Edit, "new", target);
    let edited = store.append(edit("e0", old.message.seq)).await.unwrap();
    assert!(!edited.push_queued, "not in the notification");
    let reacted = store
        .append(change(
            conv.id,
            bob,
            "r1",
            MessageKind::React,
            "👍",
            shown.message.seq,
        ))
        .await
        .unwrap();
    assert!(!reacted.push_queued, "reactions leave notifications alone");
    assert!(claim(&*store, t, &[]).await.is_empty());

    let edited = store.append(edit("e1", shown.message.seq)).await.unwrap();
    assert!(edited.push_queued);
    let refresh = claim(&*store, t, &[]).await[0];
    assert!(refresh.has_news() && refresh.refreshes_shown());
    assert_eq!(refresh.shown_upto, Some(shown.message.seq));
    // A delete while that refresh is being pushed asks for another.
    store
        .append(change(
            conv.id,
            bob,
            "d1",
            MessageKind::Delete,
            "",
            shown.message.seq,
        ))
        .await
        .unwrap();
    store
        .push_done(&refresh, Timestamp(t), Shown::Closed)
        .await
        .unwrap();
    let again = claim(&*store, t, &[]).await[0];
    assert!(again.has_news() && again.refresh, "{again:?}");
    assert_eq!(again.shown_upto, None, "closed: nothing shown");
    store
        .push_done(&again, Timestamp(t), Shown::Unchanged)
        .await
        .unwrap();
    let held = claim(&*store, t, &[]).await[0];
    assert!(!held.has_news() && !held.refresh);
}

/// A read that reaches into what the shown notification covers asks for a refresh, in the
/// read's own transaction, and so does a message the user sends (sending reads); the
/// badge is what the members' unread counts sum to.
async fn reading_refreshes_the_notification_shown(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let cyd = user(&*store, "cyd").await;
    let phone = device(&*store, ada, 1).await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    let (other, _) = store.direct(ada, cyd).await.unwrap();
    subscribe(&*store, ada, phone).await;
    let t = Timestamp::now().0 + 10_000;
    let mut seqs = Vec::new();
    for i in 0..3 {
        let m = store
            .append(text(conv.id, bob, &format!("b{i}"), "hi"))
            .await
            .unwrap();
        seqs.push(m.message.seq);
    }
    store.append(text(other.id, cyd, "c0", "yo")).await.unwrap();
    assert_eq!(store.unread_total(ada).await.unwrap(), 4);
    assert_eq!(store.unread_total(bob).await.unwrap(), 0);
    for job in claim(&*store, t, &[]).await {
        let shown = Shown::Notification {
            after_seq: 0,
            upto_seq: job.seq,
        };
        store.push_done(&job, Timestamp(t), shown).await.unwrap();
    }
    for job in claim(&*store, t, &[]).await {
        store.push_forget(&job).await.unwrap();
    }
    assert!(claim(&*store, t, &[]).await.is_empty());

    // Read partway on another device: the notification must follow.
    store.mark_read(conv.id, ada, seqs[0]).await.unwrap();
    assert_eq!(store.unread_total(ada).await.unwrap(), 3);
    let refresh = claim(&*store, t, &[]).await;
    assert_eq!(refresh.len(), 1);
    let job = refresh[0];
    assert_eq!(job.conversation_id, conv.id);
    assert!(job.refreshes_shown() && !job.has_news(), "{job:?}");
    store
        .push_done(&job, Timestamp(t), Shown::Closed)
        .await
        .unwrap();
    store
        .push_forget(&claim(&*store, t, &[]).await[0])
        .await
        .unwrap();
    // Nothing shown any more: reading further asks for nothing.
    store.mark_read(conv.id, ada, seqs[2]).await.unwrap();
    assert!(claim(&*store, t, &[]).await.is_empty());
    // Sending reads: ada's answer to cyd refreshes that conversation's notification.
    store
        .append(text(other.id, ada, "a0", "hey"))
        .await
        .unwrap();
    let refresh = claim(&*store, t, &[]).await;
    assert_eq!(refresh.len(), 1);
    assert_eq!(refresh[0].conversation_id, other.id);
    assert!(refresh[0].refreshes_shown());
    assert_eq!(store.unread_total(ada).await.unwrap(), 0);
}

async fn users(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let taken = store
        .create_user(NewUser {
            username: "ada".into(),
            display_name: "x".into(),
            password_hash: "h".into(),
        })
        .await;
    assert!(
        matches!(taken, Err(StoreError::Refused(Refusal::UsernameTaken))),
        "{taken:?}"
    );
    let record = store.user_by_username("ada").await.unwrap().unwrap();
    assert_eq!(record.user.id, ada);
    assert_eq!(record.password_hash, "h");
    assert!(store.user_by_username("nobody").await.unwrap().is_none());
    let renamed = store.update_display_name(ada, "Ada L.").await.unwrap();
    assert_eq!(renamed.display_name, "Ada L.");
    assert_eq!(
        store.user(ada).await.unwrap().unwrap().display_name,
        "Ada L."
    );
    assert_eq!(store.last_seen(&[ada]).await.unwrap(), vec![(ada, None)]);
    store
        .set_last_seen(&[(ada, Timestamp(5_000))])
        .await
        .unwrap();
    store
        .set_last_seen(&[(ada, Timestamp(4_000))])
        .await
        .unwrap();
    assert_eq!(
        store.last_seen(&[ada, UserId(999)]).await.unwrap(),
        vec![(ada, Some(Timestamp(5_000)))]
    );
}

async fn devices(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    store.append(text(conv.id, bob, "m1", "hi")).await.unwrap();
    let phone = store
        .create_device(NewDevice {
            user_id: ada,
            name: "phone".into(),
            token_hash: vec![1; 32],
        })
        .await
        .unwrap();
    assert_eq!(phone.cursor, 1, "a new device starts at the inbox head");
    let laptop = store
        .create_device(NewDevice {
            user_id: ada,
            name: "laptop".into(),
            token_hash: vec![2; 32],
        })
        .await
        .unwrap();
    assert_eq!(
        store.device_by_token(&[1; 32]).await.unwrap().unwrap().id,
        phone.id
    );
    assert!(store.device_by_token(&[3; 32]).await.unwrap().is_none());
    let ids: Vec<DeviceId> = store
        .devices(ada)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![phone.id, laptop.id]);
    for i in 0..9 {
        store
            .append(text(conv.id, bob, &format!("n{i}"), "more"))
            .await
            .unwrap();
    }
    let moved = store.save_cursors(&[(phone.id, 7)]).await.unwrap();
    assert_eq!(
        moved,
        vec![CursorMove {
            device: phone.id,
            user: ada,
            from: 1,
            to: 7
        }]
    );
    store.save_cursors(&[(phone.id, 3)]).await.unwrap();
    assert_eq!(
        store
            .device_by_token(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .cursor,
        7,
        "cursors never go back"
    );
    store.save_cursors(&[(phone.id, 500)]).await.unwrap();
    let capped = store
        .device_by_token(&[1; 32])
        .await
        .unwrap()
        .unwrap()
        .cursor;
    assert_eq!(
        capped, 10,
        "never past the inbox head, or entries yet to come would be skipped"
    );
    // A cursor no database integer holds, next to an ordinary one: the ordinary one moves.
    let moved = store
        .save_cursors(&[(phone.id, u64::MAX), (laptop.id, 4)])
        .await
        .expect("one out-of-range cursor must not fail the batch");
    assert_eq!(
        moved,
        vec![CursorMove {
            device: laptop.id,
            user: ada,
            from: 1,
            to: 4
        }]
    );
    assert!(
        !store.delete_device(bob, phone.id).await.unwrap(),
        "only the owner removes a device"
    );
    assert!(store.delete_device(ada, phone.id).await.unwrap());
    assert!(
        store.device_by_token(&[1; 32]).await.unwrap().is_none(),
        "a removed device's token is dead"
    );
}

async fn direct_conversations(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (first, created) = store.direct(ada, bob).await.unwrap();
    assert!(created);
    assert_eq!(first.kind, ConversationKind::Direct);
    let (again, created) = store.direct(bob, ada).await.unwrap();
    assert!(!created);
    assert_eq!(
        again.id, first.id,
        "one direct conversation per pair, either way round"
    );
    assert!(matches!(
        store.direct(ada, UserId(12345)).await,
        Err(StoreError::NotFound)
    ));
    let carol = user(&*store, "carol").await;
    store.direct(carol, ada).await.unwrap();
    let mut contacts = store.contacts_of(ada).await.unwrap();
    contacts.sort();
    assert_eq!(
        contacts,
        vec![bob, carol],
        "contacts from either side of a pair"
    );
    assert_eq!(store.contacts_of(bob).await.unwrap(), vec![ada]);
    let of_ada = store
        .conversations_of(
            ada,
            ListPage {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(of_ada.len(), 2);
    assert_eq!(of_ada[0].member.role, Role::Member);
    // Paged: the same list, one at a time, each page after the last one's position.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .conversations_of(ada, ListPage { after, limit: 1 })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        paged.extend(page.iter().map(|m| m.conversation.id));
    }
    let whole: Vec<_> = of_ada.iter().map(|m| m.conversation.id).collect();
    assert_eq!(paged, whole);
}

async fn append_sequences_and_fans_out(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    let first = store.append(text(conv.id, ada, "a1", "one")).await.unwrap();
    let second = store.append(text(conv.id, bob, "b1", "two")).await.unwrap();
    assert_eq!((first.message.seq, second.message.seq), (1, 2));
    assert!(second.message.id > first.message.id, "ids are time-ordered");
    assert!(!first.duplicate);
    let mut recipients = first.recipients.clone();
    recipients.sort();
    assert_eq!(
        recipients,
        vec![(ada, 1), (bob, 1)],
        "one inbox entry per member, sender included"
    );
    assert_eq!(store.inbox_head(ada).await.unwrap(), 2);
    let entries = store.inbox_after(ada, 0, 10).await.unwrap();
    let bodies: Vec<_> = entries
        .iter()
        .map(|e| (e.inbox_seq, e.message.body.as_str()))
        .collect();
    assert_eq!(bodies, vec![(1, "one"), (2, "two")]);
    assert_eq!(store.inbox_after(ada, 1, 10).await.unwrap().len(), 1);
    assert_eq!(store.inbox_after(ada, 0, 1).await.unwrap().len(), 1);
    // Delivered marks count only messages from others: ada sent seq 1, bob seq 2.
    assert_eq!(
        store.conversation_marks(bob, 0, 2).await.unwrap(),
        vec![(conv.id, 1)]
    );
    assert_eq!(
        store.conversation_marks(ada, 0, 2).await.unwrap(),
        vec![(conv.id, 2)]
    );
    assert!(
        store
            .conversation_marks(ada, 0, 1)
            .await
            .unwrap()
            .is_empty(),
        "not ada's own message"
    );
    assert!(
        store
            .conversation_marks(bob, 2, 9)
            .await
            .unwrap()
            .is_empty()
    );
    let mine = store.member(conv.id, ada).await.unwrap().unwrap();
    assert_eq!(
        mine.read_seq, 1,
        "sending moves the sender's read watermark"
    );
}

async fn append_is_idempotent(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    let (other, _) = store.direct(ada, carol).await.unwrap();
    let original = store
        .append(text(conv.id, ada, "same", "hello"))
        .await
        .unwrap();
    let retry = store
        .append(text(conv.id, ada, "same", "hello"))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert!(retry.recipients.is_empty(), "a retry delivers nothing new");
    assert_eq!(retry.message, original.message);
    assert_eq!(store.inbox_head(bob).await.unwrap(), 1);
    let elsewhere = store.append(text(other.id, ada, "same", "hello")).await;
    assert!(
        matches!(
            elsewhere,
            Err(StoreError::Refused(Refusal::ClientMsgIdUsedElsewhere))
        ),
        "{elsewhere:?}"
    );
    // Another sender may use the same client_msg_id.
    assert!(
        !store
            .append(text(conv.id, bob, "same", "hi"))
            .await
            .unwrap()
            .duplicate
    );
}

async fn append_checks_membership(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let eve = user(&*store, "eve").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    assert!(matches!(
        store.append(text(conv.id, eve, "e1", "hi")).await,
        Err(StoreError::Refused(Refusal::NotMember))
    ));
    assert!(matches!(
        store
            .append(text(ConversationId(9999), ada, "x1", "hi"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.inbox_head(bob).await.unwrap(),
        0,
        "a refused write leaves no trace"
    );
}

async fn concurrent_appends_commit_gap_free(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        let sender = if i % 2 == 0 { ada } else { bob };
        tasks.push(tokio::spawn(async move {
            store
                .append(text(conv.id, sender, &format!("c{i}"), "x"))
                .await
                .unwrap()
                .message
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=300).collect::<Vec<u64>>(),
        "every seq once, no gaps"
    );
    let inbox: Vec<u64> = store
        .inbox_after(bob, 0, 500)
        .await
        .unwrap()
        .iter()
        .map(|e| e.inbox_seq)
        .collect();
    assert_eq!(inbox, (1..=300).collect::<Vec<u64>>());
}

/// Sends stored together (a backend may commit them in one batch) are each answered for
/// themselves: refusals and retries in the same moment as good sends change nothing else.
async fn concurrent_appends_answer_each_send(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let eve = user(&*store, "eve").await;
    let (ab, _) = store.direct(ada, bob).await.unwrap();
    let (ae, _) = store.direct(ada, eve).await.unwrap();
    let mut tasks = Vec::new();
    let mut spawn = |new: NewMessage| {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.append(new).await }));
    };
    for i in 0..100 {
        let conversation = if i % 2 == 0 { ab.id } else { ae.id };
        spawn(text(conversation, ada, &format!("a{i}"), "x"));
        // The same send twice at once: stored once.
        spawn(text(ab.id, bob, &format!("b{i}"), "y"));
        spawn(text(ab.id, bob, &format!("b{i}"), "y"));
        // Refused: not a member, no such conversation, over quota.
        spawn(text(ab.id, eve, &format!("e{i}"), "z"));
        spawn(text(ConversationId(9999), ada, &format!("n{i}"), "z"));
        let mut over = text(ae.id, eve, &format!("q{i}"), "too long");
        over.quota_bytes = 3;
        spawn(over);
    }
    // The same client id into two conversations at once: one is stored, the other refused.
    let mut elsewhere = Vec::new();
    for i in 0..20 {
        for conversation in [ab.id, ae.id] {
            let store = store.clone();
            elsewhere.push(tokio::spawn(async move {
                store
                    .append(text(conversation, ada, &format!("both{i}"), "x"))
                    .await
            }));
        }
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let mut twice = Vec::new();
    for t in elsewhere {
        twice.push(t.await.unwrap());
    }
    let mut extra = [0u64; 2];
    for (i, pair) in twice.chunks(2).enumerate() {
        let stored: Vec<usize> = (0..2).filter(|&k| pair[k].is_ok()).collect();
        assert_eq!(stored.len(), 1, "both{i}: {pair:?}");
        assert!(!pair[stored[0]].as_ref().unwrap().duplicate);
        assert!(matches!(
            pair[1 - stored[0]],
            Err(StoreError::Refused(Refusal::ClientMsgIdUsedElsewhere))
        ));
        extra[stored[0]] += 1;
    }
    for (i, chunk) in outcomes.chunks(6).enumerate() {
        let [a, b1, b2, e, n, q] = chunk else {
            unreachable!()
        };
        assert!(!a.as_ref().unwrap().duplicate, "send {i}");
        let (b1, b2) = (b1.as_ref().unwrap(), b2.as_ref().unwrap());
        assert_eq!(b1.message, b2.message, "one message for both sends of b{i}");
        assert!(
            b1.duplicate != b2.duplicate,
            "exactly one of them stored it"
        );
        assert!(matches!(e, Err(StoreError::Refused(Refusal::NotMember))));
        assert!(matches!(n, Err(StoreError::NotFound)));
        assert!(matches!(
            q,
            Err(StoreError::Refused(Refusal::QuotaExceeded))
        ));
    }
    // ab got 50 of ada's and 100 of bob's, ae 50 of ada's, and the 20 "both" went one way
    // or the other: gap-free, each inbox too.
    for (conversation, count) in [(ab.id, 150 + extra[0]), (ae.id, 50 + extra[1])] {
        let seqs: Vec<u64> = store
            .messages(
                conversation,
                SeqWindow {
                    after: 0,
                    before: u64::MAX,
                    limit: 500,
                    newest: false,
                },
                UserId(0),
            )
            .await
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, (1..=count).collect::<Vec<u64>>());
    }
    for (user, count) in [(ada, 220), (bob, 150 + extra[0]), (eve, 50 + extra[1])] {
        let inbox: Vec<u64> = store
            .inbox_after(user, 0, 500)
            .await
            .unwrap()
            .iter()
            .map(|e| e.inbox_seq)
            .collect();
        assert_eq!(inbox, (1..=count).collect::<Vec<u64>>(), "{user:?}");
    }
}

async fn history_windows(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    for i in 1..=10 {
        store
            .append(text(conv.id, ada, &format!("m{i}"), &format!("{i}")))
            .await
            .unwrap();
    }
    let seqs = |msgs: Vec<confab_proto::Message>| msgs.iter().map(|m| m.seq).collect::<Vec<_>>();
    let newest = store
        .messages(
            conv.id,
            SeqWindow {
                after: 0,
                before: u64::MAX,
                limit: 3,
                newest: true,
            },
            UserId(0),
        )
        .await;
    assert_eq!(seqs(newest.unwrap()), vec![8, 9, 10]);
    let before = store
        .messages(
            conv.id,
            SeqWindow {
                after: 0,
                before: 8,
                limit: 3,
                newest: true,
            },
            UserId(0),
        )
        .await;
    assert_eq!(seqs(before.unwrap()), vec![5, 6, 7]);
    let after = store
        .messages(
            conv.id,
            SeqWindow {
                after: 2,
                before: u64::MAX,
                limit: 3,
                newest: false,
            },
            UserId(0),
        )
        .await;
    assert_eq!(seqs(after.unwrap()), vec![3, 4, 5]);
}

async fn groups_and_membership(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let dan = user(&*store, "dan").await;
    let (group, created) = store
        .create_group(NewGroup {
            creator: ada,
            title: "crew".into(),
            groups_per_day: 100,
            members: vec![bob, carol],
        })
        .await
        .unwrap();
    assert_eq!(group.kind, ConversationKind::Group);
    assert_eq!(created.message.kind, MessageKind::System);
    assert_eq!(created.recipients.len(), 3);
    let mut peers = store
        .peers_among(bob, &[ada, carol, dan, bob])
        .await
        .unwrap();
    peers.sort();
    assert_eq!(
        peers,
        vec![ada, bob, carol],
        "dan shares nothing with bob yet"
    );
    let roles: Vec<_> = store
        .members(group.id)
        .await
        .unwrap()
        .iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert!(roles.contains(&(ada, Role::Admin)) && roles.contains(&(bob, Role::Member)));

    assert!(
        matches!(
            store.add_member(group.id, bob, dan).await,
            Err(StoreError::Refused(Refusal::NotAdmin))
        ),
        "only admins add"
    );
    let added = store.add_member(group.id, ada, dan).await.unwrap().unwrap();
    assert_eq!(
        added.recipients.len(),
        4,
        "the new member hears of their own arrival"
    );
    assert!(
        store
            .add_member(group.id, ada, dan)
            .await
            .unwrap()
            .is_none(),
        "adding a member again is a no-op"
    );
    let dan_row = store.member(group.id, dan).await.unwrap().unwrap();
    assert!(
        !dan_row.sees(1) && dan_row.sees(added.message.seq),
        "new members see from their arrival"
    );

    let removed = store.remove_member(group.id, ada, carol).await.unwrap();
    assert!(
        removed.recipients.iter().any(|&(u, _)| u == carol),
        "the removed member gets the removal"
    );
    let after = store
        .append(text(group.id, bob, "b1", "after"))
        .await
        .unwrap();
    assert!(
        !after.recipients.iter().any(|&(u, _)| u == carol),
        "and nothing after it"
    );
    assert_eq!(
        store.visible_ranges(group.id, carol).await.unwrap(),
        vec![(1, removed.message.seq)]
    );
    assert!(
        store
            .visible_ranges(group.id, UserId(4242))
            .await
            .unwrap()
            .is_empty()
    );
    let carol_row = store.member(group.id, carol).await.unwrap().unwrap();
    assert!(carol_row.sees(removed.message.seq) && !carol_row.sees(after.message.seq));
    assert!(matches!(
        store.append(text(group.id, carol, "c1", "hi")).await,
        Err(StoreError::Refused(Refusal::NoLongerMember))
    ));
    assert!(matches!(
        store.remove_member(group.id, bob, dan).await,
        Err(StoreError::Refused(Refusal::NotAdmin))
    ));

    // The last admin leaves: the longest-standing member becomes admin.
    store.remove_member(group.id, ada, ada).await.unwrap();
    let bob_row = store.member(group.id, bob).await.unwrap().unwrap();
    assert_eq!(bob_row.role, Role::Admin);
    store.rename_group(group.id, bob, "new name").await.unwrap();
    assert_eq!(
        store
            .conversation(group.id)
            .await
            .unwrap()
            .unwrap()
            .title
            .as_deref(),
        Some("new name")
    );

    let (direct, _) = store.direct(ada, bob).await.unwrap();
    assert!(matches!(
        store.remove_member(direct.id, ada, ada).await,
        Err(StoreError::Refused(Refusal::CannotLeaveDirect))
    ));
}

async fn group_size_limit(store: Arc<dyn Store>) {
    let admin = user(&*store, "admin").await;
    let mut others = Vec::new();
    for i in 0..100 {
        others.push(user(&*store, &format!("user{i}")).await);
    }
    let too_many = store
        .create_group(NewGroup {
            creator: admin,
            title: "big".into(),
            groups_per_day: 100,
            members: others.clone(),
        })
        .await;
    assert!(
        matches!(too_many, Err(StoreError::Refused(Refusal::GroupFull))),
        "101 members including the creator"
    );
    let (group, _) = store
        .create_group(NewGroup {
            creator: admin,
            title: "big".into(),
            groups_per_day: 100,
            members: others[..99].to_vec(),
        })
        .await
        .unwrap();
    assert!(matches!(
        store.add_member(group.id, admin, others[99]).await,
        Err(StoreError::Refused(Refusal::GroupFull))
    ));
    store
        .remove_member(group.id, admin, others[0])
        .await
        .unwrap();
    assert!(
        store
            .add_member(group.id, admin, others[99])
            .await
            .unwrap()
            .is_some(),
        "room again after a leave"
    );
}

/// A full group's message reaches all 100 inboxes, each at that member's next inbox seq,
/// and membership changes take effect on the very next message.
async fn full_group_fans_out_to_every_inbox(store: Arc<dyn Store>) {
    let admin = user(&*store, "admin").await;
    let mut others = Vec::new();
    for i in 0..99 {
        others.push(user(&*store, &format!("user{i}")).await);
    }
    let lone = user(&*store, "lone").await;
    // Give one member a head start in their inbox, so heads differ between members.
    let (direct, _) = store.direct(others[5], lone).await.unwrap();
    store
        .append(text(direct.id, lone, "d1", "hi"))
        .await
        .unwrap();
    let (group, created) = store
        .create_group(NewGroup {
            creator: admin,
            title: "all".into(),
            groups_per_day: 100,
            members: others.clone(),
        })
        .await
        .unwrap();
    assert_eq!(created.recipients.len(), 100);
    let sent = store
        .append(text(group.id, admin, "g1", "to all"))
        .await
        .unwrap();
    let mut recipients = sent.recipients.clone();
    recipients.sort();
    let mut expected: Vec<_> = std::iter::once(admin)
        .chain(others.iter().copied())
        .map(|u| (u, if u == others[5] { 3 } else { 2 }))
        .collect();
    expected.sort();
    assert_eq!(
        recipients, expected,
        "one entry per member, at their own next seq"
    );
    for &member in [admin, others[0], others[5], others[98]].iter() {
        let head = store.inbox_head(member).await.unwrap();
        let last = store.inbox_after(member, head - 1, 10).await.unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].message.body.as_str(), "to all");
    }

    store
        .remove_member(group.id, admin, others[0])
        .await
        .unwrap();
    assert!(
        matches!(
            store
                .append(text(group.id, others[0], "x1", "still here?"))
                .await,
            Err(StoreError::Refused(Refusal::NoLongerMember))
        ),
        "a removed member cannot send at once"
    );
    let after = store
        .append(text(group.id, others[1], "g2", "fewer"))
        .await
        .unwrap();
    assert_eq!(after.recipients.len(), 99);
    assert!(after.recipients.iter().all(|&(u, _)| u != others[0]));
    store.add_member(group.id, admin, lone).await.unwrap();
    let with_lone = store
        .append(text(group.id, admin, "g3", "welcome"))
        .await
        .unwrap();
    assert_eq!(with_lone.recipients.len(), 100);
    let lone_head = store.inbox_head(lone).await.unwrap();
    assert!(
        with_lone.recipients.contains(&(lone, lone_head)),
        "a new member gets the next message at their inbox head"
    );
}

async fn watermarks_never_go_back(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    for i in 0..5 {
        store
            .append(text(conv.id, ada, &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    assert_eq!(store.mark_read(conv.id, bob, 3).await.unwrap(), Some(3));
    assert_eq!(store.mark_read(conv.id, bob, 2).await.unwrap(), None);
    assert_eq!(
        store.mark_read(conv.id, bob, 99).await.unwrap(),
        Some(5),
        "clamped to the last seq"
    );
    assert_eq!(
        store.mark_delivered(&[(conv.id, bob, 4)]).await.unwrap(),
        vec![(conv.id, bob, 4)]
    );
    assert!(
        store
            .mark_delivered(&[(conv.id, bob, 2)])
            .await
            .unwrap()
            .is_empty()
    );
    let row = store.member(conv.id, bob).await.unwrap().unwrap();
    assert_eq!((row.read_seq, row.delivered_seq), (5, 4));
}

async fn shared_secrets(store: Arc<dyn Store>) {
    // Nodes starting at once each offer their own; all get the same one.
    let offers = (0..4).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .shared_secret("vapid", &format!("key of node {i}"))
                .await
                .unwrap()
        })
    });
    let mut got = Vec::new();
    for offer in offers {
        got.push(offer.await.unwrap());
    }
    assert!(got.iter().all(|k| *k == got[0]), "{got:?}");
    assert!(got[0].starts_with("key of node"));
    assert_eq!(
        store.shared_secret("vapid", "another").await.unwrap(),
        got[0]
    );
    assert_eq!(
        store.shared_secret("other", "its own").await.unwrap(),
        "its own",
        "secrets are kept by name"
    );
}

async fn node_id_leases(store: Arc<dyn Store>) {
    let t = Timestamp(1_000_000);
    let until = Timestamp(t.0 + 30_000);
    // Free ids are taken lowest first, one per holder, even when asked at once.
    let claims = ["a", "b", "c"].map(|holder| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_node_id(holder, None, t, until).await.unwrap() })
    });
    let mut ids = Vec::new();
    for claim in claims {
        ids.push(claim.await.unwrap().expect("a free id"));
    }
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2]);
    // A wanted id held by a live lease is refused; a free one is given.
    assert_eq!(
        store.claim_node_id("d", Some(1), t, until).await.unwrap(),
        None
    );
    assert_eq!(
        store.claim_node_id("d", Some(7), t, until).await.unwrap(),
        Some(7)
    );
    // Renewal keeps it; only the holder renews.
    let later = Timestamp(until.0 + 30_000);
    assert!(!store.renew_node_id(7, "someone else", later).await.unwrap());
    assert!(store.renew_node_id(7, "d", later).await.unwrap());
    // Past the leases of 0, 1 and 2 (not renewed), their ids are free again, and a holder
    // whose id was taken learns it when it tries to renew.
    let after = Timestamp(until.0 + 1);
    let e = store
        .claim_node_id("e", Some(1), after, Timestamp(after.0 + 30_000))
        .await
        .unwrap();
    assert_eq!(e, Some(1));
    let (mut lost, mut kept) = (0, 0);
    for holder in ["a", "b", "c"] {
        if store.renew_node_id(1, holder, later).await.unwrap() {
            kept += 1;
        } else {
            lost += 1;
        }
    }
    assert_eq!((lost, kept), (3, 0), "id 1 is e's now");
    assert_eq!(
        store
            .claim_node_id("f", Some(7), after, later)
            .await
            .unwrap(),
        None,
        "7 was renewed"
    );
    // A clean stop gives the id back at once.
    store.release_node_id(7, "d").await.unwrap();
    assert_eq!(
        store
            .claim_node_id("f", Some(7), after, later)
            .await
            .unwrap(),
        Some(7)
    );
}

/// Registry entries: put and renewed by holder, read back only while fresh, forgotten
/// once old.
async fn node_registry(store: Arc<dyn Store>) {
    let at = |ms: i64| Timestamp(1_000_000 + ms);
    let entry = |holder: &str, node_id: u16, renewed_at: Timestamp| NodeRecord {
        holder: holder.into(),
        node_id,
        url: format!("http://{holder}:8080"),
        region: "eu".into(),
        load: 250,
        draining: false,
        renewed_at,
    };
    store
        .put_node(&entry("a", 1, at(0)), at(-100_000))
        .await
        .unwrap();
    store
        .put_node(&entry("b", 2, at(5_000)), at(-100_000))
        .await
        .unwrap();
    assert_eq!(
        store.nodes(at(-1)).await.unwrap(),
        vec![entry("a", 1, at(0)), entry("b", 2, at(5_000))]
    );
    // Renewal replaces the holder's entry; only fresh ones are read.
    let mut renewed = entry("a", 1, at(10_000));
    renewed.draining = true;
    renewed.load = 900;
    store.put_node(&renewed, at(-100_000)).await.unwrap();
    assert_eq!(
        store.nodes(at(7_000)).await.unwrap(),
        vec![renewed.clone()],
        "b is stale"
    );
    // Old ones are deleted at the next put.
    store.put_node(&renewed, at(6_000)).await.unwrap();
    assert_eq!(store.nodes(at(-100_000)).await.unwrap(), vec![renewed]);
}

/// Presence across processes: a user is online while any live process holds them; only
/// the first up and the last down anywhere are changes; a dead process's users are reaped.
async fn online_across_processes(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let live_after = Timestamp(now.0 - 30_000);
    for (holder, age) in [("a", 0), ("b", 0), ("dead", 60_000)] {
        let node = NodeRecord {
            holder: holder.into(),
            node_id: 1,
            url: String::new(),
            region: String::new(),
            load: 0,
            draining: false,
            renewed_at: Timestamp(now.0 - age),
        };
        store.put_node(&node, Timestamp(0)).await.unwrap();
    }
    let (u1, u2, u3) = (UserId(11), UserId(12), UserId(13));
    let set = |holder: &'static str, up: Vec<UserId>, down: Vec<UserId>| {
        let store = store.clone();
        async move {
            store
                .set_online(holder, &up, &down, live_after)
                .await
                .unwrap()
        }
    };
    assert_eq!(set("a", vec![u1, u2], vec![]).await, (vec![u1, u2], vec![]));
    assert_eq!(
        set("b", vec![u1], vec![]).await,
        (vec![], vec![]),
        "a holds u1"
    );
    assert_eq!(
        set("a", vec![], vec![u1]).await,
        (vec![], vec![]),
        "b holds u1"
    );
    let mut online = store.online_among(&[u1, u2, u3], live_after).await.unwrap();
    online.sort();
    assert_eq!(online, vec![u1, u2]);
    assert_eq!(
        set("b", vec![], vec![u1]).await,
        (vec![], vec![u1]),
        "the last"
    );
    // A dead process's users: not online, and reaped once.
    assert_eq!(set("dead", vec![u2, u3], vec![]).await, (vec![u3], vec![]));
    assert_eq!(
        store.online_among(&[u3], live_after).await.unwrap(),
        vec![],
        "a dead holder holds nobody"
    );
    assert_eq!(
        store.reap_online(live_after).await.unwrap(),
        vec![(u3, Timestamp(now.0 - 60_000))],
        "u2 is still held by a"
    );
    assert_eq!(store.reap_online(live_after).await.unwrap(), vec![]);
    assert_eq!(
        store.online_among(&[u2], live_after).await.unwrap(),
        vec![u2]
    );
}

/// Wrong passwords per username: counted, held one attempt at a time, cleared, forgotten.
async fn login_failures(store: Arc<dyn Store>) {
    let t = |ms: i64| Timestamp(1_000_000 + ms);
    assert_eq!(store.login_failures("ada").await.unwrap(), None);
    for n in 1..=3 {
        assert_eq!(store.login_failed("ada", t(-1_000_000)).await.unwrap(), n);
        store.login_wait("ada", t(0)).await.unwrap();
    }
    assert_eq!(store.login_failures("ada").await.unwrap(), Some((3, t(0))));
    // One attempt at a time: the first takes the hold, the second finds it taken.
    assert!(store.hold_login("ada", t(10), t(100)).await.unwrap());
    assert!(!store.hold_login("ada", t(20), t(110)).await.unwrap());
    assert!(
        store.hold_login("ada", t(100), t(200)).await.unwrap(),
        "the hold ran out"
    );
    assert!(
        !store.hold_login("bob", t(0), t(100)).await.unwrap(),
        "no failures, no hold"
    );
    store.login_succeeded("ada").await.unwrap();
    assert_eq!(store.login_failures("ada").await.unwrap(), None);
    // Failures whose wait ended long ago are forgotten at the next failure of anyone.
    store.login_failed("cyd", t(-1_000_000)).await.unwrap();
    store.login_wait("cyd", t(0)).await.unwrap();
    store.login_failed("dan", t(1)).await.unwrap();
    assert_eq!(store.login_failures("cyd").await.unwrap(), None);
}

/// Defaults until changed; each change touches only its fields; a level comes with its
/// end; archiving records the newest message; one member's settings are theirs alone.
async fn settings_are_each_members_own_and_changes_merge(store: Arc<dyn Store>) {
    use confab_proto::{NotifyLevel, SettingsChange};
    use confab_server::store::SettingsRecord;
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    assert_eq!(
        store.settings(conv.id, ada).await.unwrap(),
        SettingsRecord::default()
    );
    for i in 0..3 {
        store
            .append(text(conv.id, bob, &format!("m{i}"), "hi"))
            .await
            .unwrap();
    }
    let until = Timestamp(Timestamp::now().0 + 3_600_000);
    let muted = store
        .change_settings(
            conv.id,
            ada,
            SettingsChange {
                notify: Some(NotifyLevel::Mentions),
                notify_until: Some(until),
                archived: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let expected = SettingsRecord {
        notify: NotifyLevel::Mentions,
        notify_until: Some(until),
        notify_since: 3,
        archived_upto: Some(3),
        pinned: false,
    };
    assert_eq!(muted, expected);
    // Another device pins: the level and the archive stay.
    let pin = SettingsChange {
        pinned: Some(true),
        ..Default::default()
    };
    let pinned = store.change_settings(conv.id, ada, pin).await.unwrap();
    assert_eq!(
        pinned,
        SettingsRecord {
            pinned: true,
            ..expected
        }
    );
    assert_eq!(store.settings(conv.id, ada).await.unwrap(), pinned);
    // A level without an end replaces the end too; un-archiving forgets the seq.
    let change = SettingsChange {
        notify: Some(NotifyLevel::None),
        archived: Some(false),
        ..Default::default()
    };
    assert_eq!(
        store.change_settings(conv.id, ada, change).await.unwrap(),
        SettingsRecord {
            notify: NotifyLevel::None,
            notify_until: None,
            notify_since: 3,
            archived_upto: None,
            pinned: true,
        }
    );
    assert_eq!(
        store.settings(conv.id, bob).await.unwrap(),
        SettingsRecord::default(),
        "bob's are his own"
    );
}

/// A block either way marks the pair's direct conversation, made before or after, and it
/// refuses every write there (messages and changes); contacts leave each other out; both
/// blocks must go before it takes writes again.
async fn blocks_close_the_direct_conversation_either_way(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let cyd = user(&*store, "cyd").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    let hi = store.append(text(conv.id, bob, "m0", "hi")).await.unwrap();
    let t = Timestamp(1_000);
    assert!(store.block(ada, bob, t).await.unwrap());
    assert!(!store.block(ada, bob, t).await.unwrap(), "again");
    assert!(store.block(ada, cyd, Timestamp(2_000)).await.unwrap());
    assert_eq!(
        store.blocked_by(ada).await.unwrap(),
        [(cyd, Timestamp(2_000)), (bob, t)],
        "newest first"
    );
    assert!(store.has_blocked(ada, bob).await.unwrap());
    assert!(!store.has_blocked(bob, ada).await.unwrap());
    assert_eq!(store.blocked_among(bob, &[ada, cyd]).await.unwrap(), [ada]);
    assert_eq!(store.blocked_among(ada, &[bob]).await.unwrap(), [bob]);
    let refused =
        |r: Result<_, StoreError>| matches!(r, Err(StoreError::Refused(Refusal::Blocked)));
    assert!(refused(store.append(text(conv.id, bob, "m1", "?")).await));
    assert!(refused(store.append(text(conv.id, ada, "m2", "?")).await));
    let react = change(conv.id, bob, "r1", MessageKind::React, "👍", hi.message.seq);
    assert!(refused(store.append(react).await));
    assert!(store.contacts_of(ada).await.unwrap().is_empty());
    // Made after the block: marked too.
    let (later, _) = store.direct(cyd, ada).await.unwrap();
    assert!(refused(store.append(text(later.id, cyd, "c1", "?")).await));

    // Blocked both ways: one unblock is not enough.
    store.block(bob, ada, t).await.unwrap();
    assert!(store.unblock(ada, bob).await.unwrap());
    assert!(!store.unblock(ada, bob).await.unwrap(), "again");
    assert!(refused(store.append(text(conv.id, ada, "m3", "?")).await));
    store.unblock(bob, ada).await.unwrap();
    store
        .append(text(conv.id, ada, "m4", "back"))
        .await
        .unwrap();
    store.append(text(conv.id, bob, "m5", "yes")).await.unwrap();
    assert_eq!(store.contacts_of(ada).await.unwrap(), [bob]);
}

/// Both shared until changed; a change touches its fields only; one user's are theirs.
async fn privacy_defaults_to_sharing_and_changes_merge(store: Arc<dyn Store>) {
    use confab_proto::{Privacy, PrivacyChange};
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let shared = Privacy::default();
    assert!(shared.last_seen && shared.read_receipts);
    assert_eq!(store.privacy(&[ada, bob]).await.unwrap(), [shared, shared]);
    let hidden = store
        .change_privacy(
            ada,
            PrivacyChange {
                read_receipts: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        hidden,
        Privacy {
            last_seen: true,
            read_receipts: false
        }
    );
    let both = store
        .change_privacy(
            ada,
            PrivacyChange {
                last_seen: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.privacy(&[bob, ada, UserId(999_999)]).await.unwrap(),
        [shared, both, shared],
        "in the order asked; unknown ids share"
    );
    assert!(!both.last_seen && !both.read_receipts);
    let nobody = store
        .change_privacy(UserId(999_999), PrivacyChange::default())
        .await;
    assert!(matches!(nobody, Err(StoreError::NotFound)), "{nobody:?}");
}

/// Deleting an account: anonymised, its devices gone, its direct conversations closed for
/// good (unblocking does not reopen them), nowhere to be added; its username free again.
async fn a_deleted_account_is_anonymised_and_its_direct_conversations_closed(
    store: Arc<dyn Store>,
) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let phone = device(&*store, ada, 1).await;
    let laptop = device(&*store, ada, 2).await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    store.append(text(conv.id, ada, "m1", "bye")).await.unwrap();
    store.block(ada, carol, Timestamp::now()).await.unwrap();

    let mut gone = store.delete_account(ada).await.unwrap();
    gone.sort_unstable();
    assert_eq!(gone, [phone, laptop]);
    let shown = store.user(ada).await.unwrap().unwrap();
    assert!(shown.deleted);
    assert_eq!(shown.display_name, "Deleted user");
    assert_eq!(shown.username, format!("~deleted-{}", ada.0));
    assert!(store.user_by_username("ada").await.unwrap().is_none());
    assert!(
        store
            .user_by_username(&shown.username)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.device_by_token(&[1; 32]).await.unwrap().is_none());
    assert!(store.devices(ada).await.unwrap().is_empty());
    assert!(store.blocked_by(ada).await.unwrap().is_empty());
    let hidden = store.privacy(&[ada]).await.unwrap()[0];
    assert!(!hidden.last_seen && !hidden.read_receipts);
    assert!(!store.user(bob).await.unwrap().unwrap().deleted);

    assert_eq!(
        refused(store.append(text(conv.id, bob, "m2", "hello?")).await),
        Refusal::Blocked
    );
    store.unblock(bob, ada).await.unwrap();
    assert_eq!(
        refused(store.append(text(conv.id, bob, "m3", "hello??")).await),
        Refusal::Blocked,
        "closed for good"
    );
    assert!(store.contacts_of(bob).await.unwrap().is_empty());
    assert!(matches!(
        store.direct(carol, ada).await,
        Err(StoreError::NotFound)
    ));
    let group = NewGroup {
        creator: carol,
        title: "g".into(),
        members: vec![ada],
        groups_per_day: 10,
    };
    assert!(matches!(
        store.create_group(group).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_account(ada).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_account(UserId(999_999)).await,
        Err(StoreError::NotFound)
    ));
    let again = user(&*store, "ada").await;
    assert_ne!(again, ada, "the username is free, under a new id");
}

/// A user in more conversations than one index query names (500) still gets the newest
/// matches of all of them, pages that follow on, and the best by relevance, only theirs.
async fn a_user_in_over_a_thousand_conversations_finds_the_newest_and_best(store: Arc<dyn Store>) {
    use confab_server::store::{SearchOrder, SearchRequest, search::parse};
    let hub = user(&*store, "hub").await;
    let stranger = user(&*store, "stranger").await;
    let mut marked = Vec::new();
    for i in 0..1_100 {
        let peer = user(&*store, &format!("peer{i}")).await;
        let (conv, _) = store.direct(hub, peer).await.unwrap();
        // Every 100th conversation has the word, so matches fall in each chunk of 500.
        let body = if i % 100 == 0 {
            format!("comet {i}")
        } else {
            format!("hello {i}")
        };
        store.append(text(conv.id, peer, "m", &body)).await.unwrap();
        if i % 100 == 0 {
            marked.push(body);
        }
    }
    let (theirs, _) = store
        .direct(stranger, user(&*store, "other").await)
        .await
        .unwrap();
    store
        .append(text(
            theirs.id,
            stranger,
            "m",
            "comet comet comet elsewhere",
        ))
        .await
        .unwrap();
    // The best match: the word twice.
    let (best, _) = store.direct(hub, stranger).await.unwrap();
    store
        .append(text(best.id, stranger, "b", "comet comet"))
        .await
        .unwrap();
    while store.index_next(1_000).await.unwrap().more {}
    let ask = |order| SearchRequest {
        user: hub,
        query: parse("comet").unwrap(),
        conversation: None,
        order,
        limit: 5,
    };
    let bodies = |found: &[confab_proto::Message]| -> Vec<String> {
        found.iter().map(|m| m.body.clone()).collect()
    };
    let mut newest: Vec<String> = vec!["comet comet".into()];
    newest.extend(marked.iter().rev().cloned());
    let first = store
        .search(ask(SearchOrder::Newest { before: None }))
        .await
        .unwrap();
    assert_eq!(bodies(&first), newest[..5]);
    let before = first.last().map(|m| m.id);
    let second = store
        .search(ask(SearchOrder::Newest { before }))
        .await
        .unwrap();
    assert_eq!(bodies(&second), newest[5..10]);
    let third = store
        .search(ask(SearchOrder::Newest {
            before: second.last().map(|m| m.id),
        }))
        .await
        .unwrap();
    assert_eq!(
        bodies(&third),
        newest[10..],
        "and nothing of the stranger's own"
    );
    let ranked = store
        .search(ask(SearchOrder::Relevance { offset: 0 }))
        .await
        .unwrap();
    assert_eq!(ranked[0].body, "comet comet");
    let mut all = bodies(&ranked);
    all.extend(bodies(
        &store
            .search(ask(SearchOrder::Relevance { offset: 5 }))
            .await
            .unwrap(),
    ));
    all.extend(bodies(
        &store
            .search(ask(SearchOrder::Relevance { offset: 10 }))
            .await
            .unwrap(),
    ));
    all.sort();
    newest.sort();
    assert_eq!(all, newest, "pages by relevance cover every match once");
}

/// What `user` finds for `q`, newest first.
async fn found(store: &dyn Store, user: UserId, q: &str) -> Vec<String> {
    store
        .search(confab_server::store::SearchRequest {
            user,
            query: confab_server::store::search::parse(q).unwrap(),
            conversation: None,
            order: confab_server::store::SearchOrder::Newest { before: None },
            limit: 10,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect()
}

/// A text message waits for the indexer, which takes the oldest first and says how far
/// behind it was; an edit or delete of a message still waiting updates the index itself,
/// and the indexer never puts back the words it replaced.
async fn the_index_follows_the_queue_and_changes_win(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada").await;
    let bob = user(&*store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    let before = Timestamp::now();
    let mut sent = Vec::new();
    for (i, body) in [
        "lantern one",
        "lantern two",
        "lantern three",
        "lantern four",
    ]
    .into_iter()
    .enumerate()
    {
        let m = store
            .append(text(conv.id, ada, &format!("m{i}"), body))
            .await
            .unwrap();
        sent.push(m.message.seq);
    }
    assert!(
        found(&*store, bob, "lantern").await.is_empty(),
        "queued, not indexed"
    );
    // Changes of messages still queued: an edit is found by its new words at once.
    store
        .append(change(
            conv.id,
            ada,
            "e",
            MessageKind::Edit,
            "lamp two",
            sent[1],
        ))
        .await
        .unwrap();
    store
        .append(change(conv.id, ada, "d", MessageKind::Delete, "", sent[2]))
        .await
        .unwrap();
    assert_eq!(found(&*store, bob, "lamp").await, ["lamp two"]);

    let round = store.index_next(1).await.unwrap();
    assert_eq!(round.messages, 1, "a round takes at most what it is asked");
    assert!(
        round
            .oldest
            .is_some_and(|at| at >= before && at <= Timestamp::now())
    );
    assert_eq!(
        found(&*store, bob, "lantern").await,
        ["lantern one"],
        "oldest first"
    );
    let round = store.index_next(100).await.unwrap();
    assert_eq!(
        round.messages, 1,
        "the edited and deleted ones left the queue"
    );
    assert_eq!(
        found(&*store, bob, "lantern").await,
        ["lantern four", "lantern one"]
    );
    assert_eq!(found(&*store, bob, "lamp").await, ["lamp two"]);
    assert_eq!(
        store.index_next(100).await.unwrap(),
        confab_server::store::Indexed::default(),
        "nothing left"
    );
    // An indexed message edited and deleted afterwards: its own transactions see to it.
    store
        .append(change(
            conv.id,
            ada,
            "e4",
            MessageKind::Edit,
            "torch four",
            sent[3],
        ))
        .await
        .unwrap();
    assert_eq!(found(&*store, bob, "lantern").await, ["lantern one"]);
    assert_eq!(found(&*store, bob, "torch").await, ["torch four"]);
    store
        .append(change(conv.id, ada, "d4", MessageKind::Delete, "", sent[3]))
        .await
        .unwrap();
    assert!(found(&*store, bob, "torch").await.is_empty());
}

/// Before an upgrade test takes search away: three messages from ada to bob; bob's id.
pub async fn history_to_search(store: &dyn Store) -> UserId {
    let ada = user(store, "ada").await;
    let bob = user(store, "bob").await;
    let (conv, _) = store.direct(ada, bob).await.unwrap();
    for (i, body) in ["an old lantern", "nothing here", "the lantern again"]
        .into_iter()
        .enumerate()
    {
        store
            .append(text(conv.id, ada, &format!("m{i}"), body))
            .await
            .unwrap();
    }
    bob
}

/// After the upgrade: bob finds the history [`history_to_search`] wrote.
pub async fn history_is_found(store: &dyn Store, bob: UserId) {
    assert_eq!(
        found(store, bob, "lantern").await,
        ["the lantern again", "an old lantern"]
    );
}
