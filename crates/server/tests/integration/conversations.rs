//! Direct conversations, groups, membership and the conversation list.

use crate::harness::TestServer;
use confab_client::{ConversationKind, ErrorCode, MessageKind, MessagesQuery, Role};

#[tokio::test]
async fn one_direct_conversation_per_pair() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let first = ada.client.direct(bob.id()).await.unwrap();
    let again = bob.client.direct(ada.id()).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(first.kind, ConversationKind::Direct);
    assert_eq!(first.members.len(), 2);

    // 201 the first time, 200 after.
    let http = reqwest::Client::new();
    let carol = server.user("carol").await;
    let post = || {
        http.post(format!("{}/v1/conversations/direct", server.url))
            .bearer_auth(&carol.login.token)
            .json(&serde_json::json!({"user_id": ada.id().to_string()}))
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 201);
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!(
        ada.client.direct(ada.id()).await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        ada.client
            .direct(confab_client::UserId(999_999))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotFound)
    );
}

#[tokio::test]
async fn groups_hold_100_members_and_not_101() {
    let server = TestServer::start().await;
    let admin = server.user("admin").await;
    let anon = server.anon();
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(
            anon.signup(&format!("member{i}"), "password-x", None)
                .await
                .unwrap()
                .id,
        );
    }
    let err = admin
        .client
        .create_group("too big", &ids)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GroupFull));
    assert!(matches!(err, confab_client::Error::Api { status: 409, .. }));

    let group = admin.client.create_group("full", &ids[..99]).await.unwrap();
    assert_eq!(group.members.len(), 100);
    assert_eq!(group.kind, ConversationKind::Group);
    assert_eq!(group.title.as_deref(), Some("full"));
    let err = admin
        .client
        .add_member(group.id, ids[99])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GroupFull));
    assert_eq!(
        admin
            .client
            .create_group("", &ids[..1])
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::InvalidRequest)
    );
}

#[tokio::test]
async fn admins_manage_members_and_anyone_leaves() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dan = server.user("dan").await;
    let group = ada
        .client
        .create_group("crew", &[bob.id(), carol.id()])
        .await
        .unwrap();
    assert_eq!(
        group.unread, 0,
        "what a member causes is never unread for them"
    );
    let admin = group
        .members
        .iter()
        .find(|m| m.user_id == ada.id())
        .unwrap();
    assert_eq!(admin.role, Role::Admin);

    // Only admins add, remove or rename.
    assert_eq!(
        bob.client
            .add_member(group.id, dan.id())
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        bob.client
            .remove_member(group.id, carol.id())
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        bob.client
            .rename_group(group.id, "mine")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        ada.client
            .rename_group(group.id, "the crew")
            .await
            .unwrap()
            .title
            .as_deref(),
        Some("the crew")
    );
    let with_dan = ada.client.add_member(group.id, dan.id()).await.unwrap();
    assert_eq!(with_dan.members.len(), 4);

    ada.client
        .send_http(group.id, Some("before".into()), "before the removal")
        .await
        .unwrap();
    ada.client
        .remove_member(group.id, carol.id())
        .await
        .unwrap();
    ada.client
        .send_http(group.id, Some("after".into()), "after the removal")
        .await
        .unwrap();

    // Carol keeps the history up to her removal and nothing after it.
    let seen = carol
        .client
        .messages(group.id, MessagesQuery::newest())
        .await
        .unwrap();
    let bodies: Vec<&str> = seen
        .iter()
        .filter(|m| m.kind == confab_client::MessageKind::Text)
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(bodies, vec!["before the removal"]);
    let last = seen.last().unwrap();
    assert_eq!(last.kind, MessageKind::System);
    assert!(last.body.contains("member_removed"), "{}", last.body);
    assert_eq!(
        carol
            .client
            .send_http(group.id, None, "let me back")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Forbidden)
    );
    let listed = carol.client.conversations().await.unwrap();
    let mine = listed.iter().find(|c| c.id == group.id).unwrap();
    assert!(!mine.active);
    assert_eq!(mine.last_message.as_ref().unwrap().seq, last.seq);

    // Dan sees only from when he was added.
    let dans = dan
        .client
        .messages(group.id, MessagesQuery::newest())
        .await
        .unwrap();
    assert!(dans.first().unwrap().body.contains("member_added"));
    assert!(!dans.iter().any(|m| m.body.contains("group_created")));

    // Anyone leaves; the group lists who is left.
    bob.client.remove_member(group.id, bob.id()).await.unwrap();
    let now = ada.client.conversation(group.id).await.unwrap();
    let ids: Vec<_> = now.members.iter().map(|m| m.user_id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&ada.id()) && ids.contains(&dan.id()));
}

#[tokio::test]
async fn non_members_see_nothing() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    ada.client.send_http(chat.id, None, "secret").await.unwrap();
    let refused = |e: confab_client::Error| {
        matches!(e.code(), Some(ErrorCode::Forbidden | ErrorCode::NotFound))
    };
    assert!(refused(
        eve.client
            .messages(chat.id, MessagesQuery::newest())
            .await
            .unwrap_err()
    ));
    assert!(refused(eve.client.conversation(chat.id).await.unwrap_err()));
    assert!(refused(
        eve.client.send_http(chat.id, None, "hi").await.unwrap_err()
    ));
    assert!(refused(eve.client.read(chat.id, 1).await.unwrap_err()));
    assert!(eve.client.conversations().await.unwrap().is_empty());
    let missing = confab_client::ConversationId(987_654);
    assert_eq!(
        eve.client
            .messages(missing, MessagesQuery::newest())
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotFound)
    );
}

#[tokio::test]
async fn conversation_list_orders_by_activity_and_counts_unread() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let with_bob = ada.client.direct(bob.id()).await.unwrap();
    let with_carol = ada.client.direct(carol.id()).await.unwrap();
    for i in 0..3 {
        bob.client
            .send_http(with_bob.id, None, &format!("bob {i}"))
            .await
            .unwrap();
    }
    carol
        .client
        .send_http(with_carol.id, None, "carol")
        .await
        .unwrap();

    let list = ada.client.conversations().await.unwrap();
    assert_eq!(
        list.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![with_carol.id, with_bob.id]
    );
    assert_eq!(list[1].unread, 3);
    assert_eq!(list[1].last_message.as_ref().unwrap().body, "bob 2");
    assert_eq!(list[0].unread, 1);

    ada.client.read(with_bob.id, 3).await.unwrap();
    ada.client.read(with_bob.id, 1).await.unwrap(); // never backwards
    let list = ada.client.conversations().await.unwrap();
    let bob_chat = list.iter().find(|c| c.id == with_bob.id).unwrap();
    assert_eq!((bob_chat.unread, bob_chat.read_seq), (0, 3));
    // The sender's own messages are never unread for them.
    let bobs = bob.client.conversations().await.unwrap();
    assert_eq!(bobs[0].unread, 0);
    // A reply moves the conversation to the top.
    ada.client
        .send_http(with_bob.id, None, "hi bob")
        .await
        .unwrap();
    assert_eq!(ada.client.conversations().await.unwrap()[0].id, with_bob.id);
}

#[tokio::test]
async fn a_member_who_comes_back_keeps_the_history_of_both_memberships() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let carol = server.user("carol").await;
    let group = ada
        .client
        .create_group("crew", &[carol.id()])
        .await
        .unwrap();
    ada.client
        .send_http(group.id, None, "first stay")
        .await
        .unwrap();
    ada.client
        .remove_member(group.id, carol.id())
        .await
        .unwrap();
    ada.client
        .send_http(group.id, None, "while away")
        .await
        .unwrap();
    ada.client.add_member(group.id, carol.id()).await.unwrap();
    ada.client
        .send_http(group.id, None, "second stay")
        .await
        .unwrap();

    let texts = |page: Vec<confab_client::Message>| {
        page.into_iter()
            .filter(|m| m.kind == MessageKind::Text)
            .map(|m| m.body)
            .collect::<Vec<_>>()
    };
    let newest = carol
        .client
        .messages(group.id, MessagesQuery::newest())
        .await
        .unwrap();
    assert_eq!(
        texts(newest),
        ["first stay", "second stay"],
        "never what was said while away"
    );
    let oldest = carol
        .client
        .messages(group.id, MessagesQuery::after(0).limit(2))
        .await
        .unwrap();
    assert_eq!(oldest.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);
    let seqs: Vec<u64> = carol
        .client
        .messages(group.id, MessagesQuery::before(100))
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert!(
        !seqs.contains(&4),
        "seq 4 was sent while carol was away: {seqs:?}"
    );
}

#[tokio::test]
async fn a_former_member_sees_the_group_as_it_was_when_they_left() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let group = ada
        .client
        .create_group("Plans", &[bob.id(), carol.id()])
        .await
        .unwrap();
    ada.client
        .send_http(group.id, None, "before")
        .await
        .unwrap();
    ada.client.remove_member(group.id, bob.id()).await.unwrap();
    let left = bob.client.conversation(group.id).await.unwrap();
    assert!(!left.active);

    // Everything after the removal: a new title, a new member, new reads.
    ada.client
        .rename_group(group.id, "Surprise for bob")
        .await
        .unwrap();
    ada.client.add_member(group.id, dave.id()).await.unwrap();
    let after = ada.client.send_http(group.id, None, "after").await.unwrap();
    carol
        .client
        .read(group.id, after.message.seq)
        .await
        .unwrap();

    let seen = bob.client.conversation(group.id).await.unwrap();
    let listed = bob.client.conversations().await.unwrap();
    let listed = listed.iter().find(|c| c.id == group.id).unwrap();
    for view in [&seen, listed] {
        assert_eq!(
            view.title.as_deref(),
            Some("Plans"),
            "the title when bob left"
        );
        let mut members: Vec<_> = view.members.iter().map(|m| m.user_id).collect();
        members.sort();
        let mut then = vec![ada.id(), carol.id()];
        then.sort();
        assert_eq!(members, then, "the members when bob left, not dave");
        assert_eq!(view.last_seq, left.last_seq);
        for m in &view.members {
            assert!(
                m.read_seq <= left.last_seq && m.delivered_seq <= left.last_seq,
                "a watermark past what bob may see: {m:?}"
            );
        }
    }

    // Presence: bob shares nothing with carol or dave any more.
    assert!(
        bob.client
            .presence(&[carol.id(), dave.id()])
            .await
            .unwrap()
            .is_empty()
    );
    // Carol, still a member, shares the group with dave.
    assert_eq!(carol.client.presence(&[dave.id()]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_conversation_list_comes_in_pages() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            ada.client
                .create_group(&format!("g{i}"), &[])
                .await
                .unwrap()
                .id,
        );
    }
    made.reverse(); // most recent activity first
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = ada
            .client
            .conversations_page(cursor.as_deref(), Some(3))
            .await
            .unwrap();
        pages += 1;
        assert!(page.conversations.len() <= 3);
        seen.extend(page.conversations.iter().map(|c| c.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!((pages, seen), (3, made.clone()));
    assert_eq!(
        ada.client
            .conversations()
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        made
    );
    for bad in ["?cursor=nonsense", "?limit=0"] {
        let res = reqwest::Client::new()
            .get(format!("{}/v1/conversations{bad}", server.url))
            .bearer_auth(&ada.login.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn group_changes_count_against_the_send_rate_and_group_making_per_day() {
    let server = TestServer::with(|c| {
        c.send_rate_per_sec = 1;
        c.send_burst = 3;
        c.groups_per_day = 2;
    })
    .await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let group = ada.client.create_group("one", &[]).await.unwrap();
    ada.client.rename_group(group.id, "two").await.unwrap();
    ada.client.add_member(group.id, bob.id()).await.unwrap();
    // Three writes to the log in a burst of three: the fourth waits, whatever its kind.
    for refused in [
        ada.client.rename_group(group.id, "three").await.map(|_| ()),
        ada.client.remove_member(group.id, bob.id()).await,
        ada.client.create_group("again", &[]).await.map(|_| ()),
    ] {
        assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::RateLimited));
    }
    // Groups per day: one more is allowed, then none until tomorrow, however slowly asked.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    ada.client.create_group("second", &[]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let third = ada.client.create_group("third", &[]).await.unwrap_err();
    assert_eq!(third.code(), Some(ErrorCode::RateLimited));
    assert!(third.to_string().contains("24 hours"), "{third}");
}

#[tokio::test]
async fn adding_strangers_to_groups_costs_lookups() {
    let server = TestServer::with(|c| c.lookup_rate_per_min = 3).await;
    let mallory = server.user("mallory").await;
    let mut others = Vec::new();
    for i in 0..5 {
        others.push(server.user(&format!("user{i}")).await.id());
    }
    let group = mallory
        .client
        .create_group("probe", &others[..2])
        .await
        .unwrap();
    mallory
        .client
        .add_member(group.id, others[2])
        .await
        .unwrap();
    // Three strangers: the minute's lookups are spent, through groups as through names.
    assert_eq!(
        mallory
            .client
            .add_member(group.id, others[3])
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::RateLimited)
    );
    assert_eq!(
        mallory
            .client
            .create_group("probe 2", &others[3..])
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::RateLimited)
    );
    // People already shared a conversation with cost nothing.
    mallory
        .client
        .create_group("friends", &others[..3])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_left_group_keeps_its_place_in_the_list_whatever_happens_there() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let left = ada.client.create_group("left", &[bob.id()]).await.unwrap();
    ada.client.remove_member(left.id, bob.id()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    ada.client.send_http(chat.id, None, "hi bob").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // Activity in the group after bob left would put it first for a member.
    ada.client
        .send_http(left.id, None, "after bob")
        .await
        .unwrap();
    let order: Vec<_> = bob
        .client
        .conversations()
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        order,
        [chat.id, left.id],
        "the left group stays where bob left it"
    );
}
