//! Messages that change: edits, deletes (for everyone, for me), reactions, replies and
//! mentions, live across users and devices, caught up by an offline device exactly once,
//! retried once, refused by the rules, and counted (or not) as unread.

use crate::harness::{TestServer, TestUser, messages, next_message, no_message};
use confab_client::{
    Action, Body, Conversation, ConversationId, Emoji, ErrorCode, Message, MessageKind,
    MessagesQuery, Timestamp, UserId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn text(body: &str) -> Action {
    Action::Text {
        body: Body::new(body.into()).unwrap(),
        reply_to: None,
    }
}

fn reply(to: u64, body: &str) -> Action {
    Action::Text {
        body: Body::new(body.into()).unwrap(),
        reply_to: Some(to),
    }
}

fn edit(target: u64, body: &str) -> Action {
    Action::Edit {
        target,
        body: Body::new(body.into()).unwrap(),
    }
}

fn react(target: u64, emoji: &str) -> Action {
    Action::React {
        target,
        emoji: Emoji::new(emoji.into()).unwrap(),
    }
}

fn unreact(target: u64, emoji: &str) -> Action {
    Action::Unreact {
        target,
        emoji: Emoji::new(emoji.into()).unwrap(),
    }
}

async fn write(user: &TestUser, chat: ConversationId, action: Action) -> Message {
    user.client
        .write_http(chat, None, action)
        .await
        .unwrap()
        .message
}

async fn conversation(user: &TestUser, id: ConversationId) -> Conversation {
    user.client.conversation(id).await.unwrap()
}

#[tokio::test]
async fn each_change_reaches_every_device_of_both_users_once() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let ada_laptop = server.login("ada").await;
    let bob = server.user("bob").await;
    let bob_tablet = server.login("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let (ada_ws, mut ada_phone) = ada.connect(0).await;
    let (_l, mut ada_lap) = ada_laptop.connect(0).await;
    let (_b, mut bob_phone) = bob.connect(0).await;
    let (_t, mut bob_tab) = bob_tablet.connect(0).await;
    let mut everyone = [&mut ada_phone, &mut ada_lap, &mut bob_phone, &mut bob_tab];

    // A message with a mention, over the WebSocket.
    let hi = ada_ws
        .write(chat.id, None, text("hi @Bob, lunch?"))
        .await
        .unwrap();
    assert_eq!(hi.mentions, [bob.id()]);
    // A reply, over HTTP.
    let answer = write(&bob, chat.id, reply(hi.seq, "yes!")).await;
    assert_eq!(answer.reply_to, Some(hi.seq));
    // An edit, a reaction, and one taken back.
    let edited = ada_ws
        .write(chat.id, None, edit(hi.seq, "hi @bob, lunch at 1?"))
        .await
        .unwrap();
    assert_eq!(
        (edited.kind, edited.target_seq, edited.body.as_str()),
        (MessageKind::Edit, Some(hi.seq), "hi @bob, lunch at 1?")
    );
    let thumbs = write(&bob, chat.id, react(hi.seq, "👍")).await;
    let heart = write(&ada, chat.id, react(answer.seq, "❤")).await;
    assert_eq!(heart.body, "❤️", "kept in the emoji list's form");
    let taken_back = write(&bob, chat.id, unreact(hi.seq, "👍")).await;
    let expected = [&hi, &answer, &edited, &thumbs, &heart, &taken_back];
    for events in everyone.iter_mut() {
        let got = messages(events, expected.len()).await;
        let ids: Vec<_> = got.iter().map(|(_, m)| m.id).collect();
        assert_eq!(ids, expected.map(|m| m.id), "every entry, in order");
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>(), "gap-free, once");
    }

    // Deleted for me: only ada's devices hear of it, and only her history loses it.
    let hidden = write(&ada, chat.id, Action::DeleteForMe { target: answer.seq }).await;
    for events in [&mut ada_phone, &mut ada_lap] {
        let (_, got) = next_message(events, WAIT).await;
        assert_eq!(got.id, hidden.id);
    }
    for events in [&mut bob_phone, &mut bob_tab] {
        no_message(events, Duration::from_millis(300)).await;
    }
    let seqs = |v: Vec<Message>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
    let newest = MessagesQuery::newest;
    let history = ada.client.messages(chat.id, newest()).await.unwrap();
    assert_eq!(seqs(history), [hi.seq]);
    let history = bob.client.messages(chat.id, newest()).await.unwrap();
    assert_eq!(seqs(history), [hi.seq, answer.seq]);

    // Deleted for everyone: a tombstone for all, the text gone.
    let deleted = write(&ada, chat.id, Action::Delete { target: hi.seq }).await;
    let mut everyone = [&mut ada_phone, &mut ada_lap, &mut bob_phone, &mut bob_tab];
    for events in everyone.iter_mut() {
        let (_, got) = next_message(events, WAIT).await;
        assert_eq!(
            (got.kind, got.target_seq),
            (MessageKind::Delete, Some(hi.seq))
        );
    }
    let tombstone = bob.client.message(chat.id, hi.seq).await.unwrap();
    assert_eq!(tombstone.body, "");
    assert_eq!(tombstone.deleted_at, Some(deleted.created_at));
    assert!(tombstone.mentions.is_empty() && tombstone.reactions.is_empty());
    // The reply still names it: clients show a placeholder for a deleted target.
    let quoted = bob.client.message(chat.id, answer.seq).await.unwrap();
    assert_eq!(quoted.reply_to, Some(hi.seq));
    assert_eq!(quoted.reactions.len(), 1);
    assert_eq!(
        (quoted.reactions[0].emoji.as_str(), quoted.reactions[0].me),
        ("❤️", false)
    );
    // What ada deleted for herself is not found for her, and changes are no messages.
    let missing = ada.client.message(chat.id, answer.seq).await.unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::NotFound));
    let change = bob.client.message(chat.id, edited.seq).await.unwrap_err();
    assert_eq!(change.code(), Some(ErrorCode::NotFound));
}

/// A client's view of a conversation, built from history and then changed entry by entry,
/// as the protocol tells clients to.
#[derive(Debug, Default, PartialEq)]
struct View {
    messages: BTreeMap<u64, Shown>,
}

#[derive(Debug, PartialEq)]
struct Shown {
    body: String,
    edited_at: Option<Timestamp>,
    deleted_at: Option<Timestamp>,
    reactions: BTreeMap<String, BTreeSet<UserId>>,
}

impl View {
    fn from_history(history: &[Message]) -> Self {
        let messages = history
            .iter()
            .map(|m| {
                let reactions = m
                    .reactions
                    .iter()
                    .map(|r| (r.emoji.clone(), r.user_ids.iter().copied().collect()))
                    .collect();
                let shown = Shown {
                    body: m.body.clone(),
                    edited_at: m.edited_at,
                    deleted_at: m.deleted_at,
                    reactions,
                };
                (m.seq, shown)
            })
            .collect();
        Self { messages }
    }

    fn apply(&mut self, entry: &Message) {
        let Some(target) = entry.target_seq else {
            self.messages.insert(
                entry.seq,
                Shown {
                    body: entry.body.clone(),
                    edited_at: entry.edited_at,
                    deleted_at: entry.deleted_at,
                    reactions: BTreeMap::new(),
                },
            );
            return;
        };
        if entry.kind == MessageKind::DeleteForMe {
            self.messages.remove(&target);
            return;
        }
        let Some(shown) = self.messages.get_mut(&target) else {
            return;
        };
        match entry.kind {
            MessageKind::Edit if shown.deleted_at.is_none() => {
                shown.body = entry.body.clone();
                shown.edited_at = Some(entry.created_at);
            }
            MessageKind::Delete => {
                shown.body.clear();
                shown.edited_at = None;
                shown.deleted_at.get_or_insert(entry.created_at);
                shown.reactions.clear();
            }
            MessageKind::React => {
                shown
                    .reactions
                    .entry(entry.body.clone())
                    .or_default()
                    .insert(entry.sender_id);
            }
            MessageKind::Unreact => {
                if let Some(users) = shown.reactions.get_mut(&entry.body) {
                    users.remove(&entry.sender_id);
                    if users.is_empty() {
                        shown.reactions.remove(&entry.body);
                    }
                }
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn an_offline_device_catches_up_on_fifty_changes_once_in_order() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let bob_tablet = server.login("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    for i in 1..=10 {
        write(&ada, chat.id, text(&format!("message {i}"))).await;
    }
    // The tablet saw the ten messages, then went offline.
    let (tablet, mut events) = bob_tablet.connect(0).await;
    let before: Vec<Message> = messages(&mut events, 10)
        .await
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    let cursor = tablet.cursor().unwrap();
    tablet.close().await;
    let mut view = View::from_history(&before);

    // Fifty changes from both users while it is away; bob's phone hides two.
    let emoji = ["👍", "❤️", "😂", "🎉"];
    for i in 0..50u64 {
        let target = 1 + i % 10;
        let action = match i % 10 {
            0 | 5 => edit(target, &format!("message {target}, edited at {i}")),
            1 | 6 => react(target, emoji[(i % 4) as usize]),
            2 => unreact(1 + (i + 9) % 10, emoji[((i + 3) % 4) as usize]),
            3 if i < 30 => Action::Delete { target },
            7 if i < 20 => Action::DeleteForMe { target },
            _ => react(target, emoji[(i % 3) as usize]),
        };
        // Edits and deletes are ada's, of her messages; the rest alternate.
        let adas = matches!(action, Action::Edit { .. } | Action::Delete { .. });
        let who = if adas || i % 2 == 0 { &ada } else { &bob };
        // Edits of a deleted message are refused; everything else is taken.
        match who.client.write_http(chat.id, None, action).await {
            Ok(_) => {}
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::Forbidden), "{e}"),
        }
    }

    let (_tablet, mut events) = bob_tablet.connect(cursor).await;
    let head = bob.client.sync(cursor, Some(1)).await.unwrap().inbox_seq;
    let caught_up = messages(&mut events, (head - cursor) as usize).await;
    let inbox_seqs: Vec<u64> = caught_up.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        inbox_seqs,
        (cursor + 1..=head).collect::<Vec<_>>(),
        "every change once, in order"
    );
    no_message(&mut events, Duration::from_millis(300)).await;
    assert!(caught_up.len() >= 40, "{} changes", caught_up.len());
    for (_, entry) in &caught_up {
        view.apply(entry);
    }
    let history = bob
        .client
        .messages(chat.id, MessagesQuery::newest().limit(200))
        .await
        .unwrap();
    assert_eq!(
        view,
        View::from_history(&history),
        "the same state as history"
    );
}

#[tokio::test]
async fn a_retried_change_applies_once_over_either_transport() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let target = write(&ada, chat.id, text("one")).await.seq;
    let (conn, _events) = ada.connect(0).await;
    let actions = [
        ("e", edit(target, "one!")),
        ("r", react(target, "👍")),
        ("u", unreact(target, "👍")),
        ("h", Action::DeleteForMe { target }),
        ("d", Action::Delete { target }),
    ];
    for (id, action) in actions {
        let first = ada
            .client
            .write_http(chat.id, Some(id.into()), action.clone())
            .await
            .unwrap();
        let again = ada
            .client
            .write_http(chat.id, Some(id.into()), action.clone())
            .await
            .unwrap();
        assert!(
            !first.deduplicated && again.deduplicated,
            "{id}: 201 then 200"
        );
        assert_eq!(first.message, again.message);
        let over_ws = conn.write(chat.id, Some(id.into()), action).await.unwrap();
        assert_eq!(over_ws, first.message, "{id}");
    }
    // One message and five changes: nothing stored twice.
    assert_eq!(bob.client.sync(0, None).await.unwrap().entries.len(), 5);
    assert_eq!(ada.client.sync(0, None).await.unwrap().entries.len(), 6);
}

#[tokio::test]
async fn every_rule_is_refused_with_its_code() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let mine = write(&ada, chat.id, text("mine")).await.seq;
    let code = |r: confab_client::Result<confab_client::Sent>| r.unwrap_err().code();
    let by = |u: &TestUser, a: Action| {
        let client = u.client.clone();
        async move { client.write_http(chat.id, None, a).await }
    };
    use ErrorCode::*;
    assert_eq!(code(by(&bob, edit(mine, "yours")).await), Some(Forbidden));
    assert_eq!(
        code(by(&bob, Action::Delete { target: mine }).await),
        Some(Forbidden),
        "only the sender deletes in a direct conversation"
    );
    assert_eq!(code(by(&ada, edit(99, "none")).await), Some(NotFound));
    assert_eq!(
        code(by(&ada, reply(99, "to nothing")).await),
        Some(NotFound)
    );
    assert_eq!(code(by(&carol, react(mine, "👍")).await), Some(Forbidden));
    let long = "x".repeat(100_000);
    let raw = |body: serde_json::Value| {
        let (client, url) = (reqwest::Client::new(), ada.url.clone());
        let token = ada.login.token.clone();
        async move {
            client
                .post(format!("{url}/v1/conversations/{}/messages", chat.id))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    use serde_json::json;
    for (body, status) in [
        (
            json!({"client_msg_id": "a", "kind": "edit", "target_seq": mine, "body": long}),
            413,
        ),
        (
            json!({"client_msg_id": "b", "kind": "react", "target_seq": mine, "body": "ok"}),
            400,
        ),
        (
            json!({"client_msg_id": "c", "kind": "react", "target_seq": mine, "body": "👍👍"}),
            400,
        ),
        (
            json!({"client_msg_id": "d", "kind": "delete", "target_seq": mine, "body": "why"}),
            400,
        ),
        (
            json!({"client_msg_id": "e", "kind": "edit", "body": "no target"}),
            400,
        ),
        (
            json!({"client_msg_id": "f", "body": "text", "target_seq": mine}),
            400,
        ),
        (
            json!({"client_msg_id": "g", "kind": "system", "body": "{}"}),
            400,
        ),
        (
            json!({"client_msg_id": "h", "kind": "edit", "target_seq": mine, "body": "x", "reply_to": 1}),
            400,
        ),
    ] {
        assert_eq!(raw(body.clone()).await, status, "{body}");
    }
    // Twenty different reactions per user and message, then no more.
    let faces = [
        "😀", "😃", "😄", "😁", "😆", "😅", "🤣", "😂", "🙂", "🙃", "😉", "😊", "😇", "🥰", "😍",
        "🤩", "😘", "😗", "😚", "😙",
    ];
    for face in faces {
        by(&bob, react(mine, face)).await.unwrap();
    }
    assert_eq!(
        code(by(&bob, react(mine, "😋")).await),
        Some(InvalidRequest)
    );

    // Groups: system messages do not change; a member deletes only their own, an admin
    // anyone's; a member added later cannot reach back; one who left cannot act.
    let group = ada.client.create_group("crew", &[bob.id()]).await.unwrap();
    let in_group = |u: &TestUser, a: Action| {
        let client = u.client.clone();
        async move { client.write_http(group.id, None, a).await }
    };
    assert_eq!(code(in_group(&ada, react(1, "👍")).await), Some(Forbidden));
    assert_eq!(
        code(in_group(&ada, Action::Delete { target: 1 }).await),
        Some(Forbidden)
    );
    in_group(&bob, Action::DeleteForMe { target: 1 })
        .await
        .expect("anyone hides a system message from themself");
    let bobs = in_group(&bob, text("bob's")).await.unwrap().message.seq;
    let adas = in_group(&ada, text("ada's")).await.unwrap().message.seq;
    assert_eq!(
        code(in_group(&bob, Action::Delete { target: adas }).await),
        Some(Forbidden)
    );
    in_group(&ada, Action::Delete { target: bobs })
        .await
        .expect("an admin deletes a member's message");
    ada.client.add_member(group.id, carol.id()).await.unwrap();
    assert_eq!(
        code(in_group(&carol, react(adas, "👍")).await),
        Some(NotFound),
        "from before carol joined"
    );
    bob.client.remove_member(group.id, bob.id()).await.unwrap();
    assert_eq!(
        code(in_group(&bob, react(adas, "👍")).await),
        Some(Forbidden)
    );
}

#[tokio::test]
async fn unread_and_mentions_count_messages_not_changes() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let older = ada.client.direct(carol.id()).await.unwrap();
    let chat = ada.client.direct(bob.id()).await.unwrap();
    let old = write(&carol, older.id, text("old news")).await.seq;
    let counts = |c: Conversation| (c.unread, c.unread_mentions);
    let first = write(&ada, chat.id, text("one")).await.seq;
    assert_eq!(counts(conversation(&bob, chat.id).await), (1, 0));
    let second = write(&ada, chat.id, text("two, @bob")).await.seq;
    assert_eq!(counts(conversation(&bob, chat.id).await), (2, 1));
    write(&ada, chat.id, edit(first, "one!")).await;
    write(&ada, chat.id, react(first, "👍")).await;
    assert_eq!(
        counts(conversation(&bob, chat.id).await),
        (2, 1),
        "an edit and a reaction are not unread"
    );
    write(&ada, chat.id, Action::Delete { target: second }).await;
    assert_eq!(
        counts(conversation(&bob, chat.id).await),
        (2, 0),
        "a deleted mention is none"
    );
    let last_seq = conversation(&bob, chat.id).await.last_seq;
    bob.client.read(chat.id, last_seq).await.unwrap();
    write(&ada, chat.id, unreact(first, "👍")).await;
    let now = conversation(&bob, chat.id).await;
    assert_eq!(counts(now.clone()), (0, 0));
    assert_eq!(
        now.last_message.map(|m| (m.seq, m.deleted_at.is_some())),
        Some((second, true)),
        "the newest message, not a change"
    );
    // A reaction does not move a conversation up ada's list.
    let order = |v: Vec<Conversation>| v.iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        order(ada.client.conversations().await.unwrap()),
        [chat.id, older.id]
    );
    write(&ada, older.id, react(old, "🎉")).await;
    assert_eq!(
        order(ada.client.conversations().await.unwrap()),
        [chat.id, older.id]
    );
    // Reacting does not mark anything read for the one who reacts.
    let unread_for_ada = conversation(&ada, older.id).await.unread;
    assert_eq!(unread_for_ada, 1);
}
