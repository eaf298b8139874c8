//! `confab copy-store`: a node's embedded store moved into PostgreSQL. After the copy a
//! node on PostgreSQL serves the same accounts, tokens, conversations, history, watermarks,
//! push subscriptions and VAPID key, and numbers what comes next after what was copied.

use crate::harness::{Data, TestServer, test_config};
use crate::pg::TestDatabase;
use crate::push::{Browser, Receiver, pushy, subscribe};
use confab_client::{
    Action, Client, MessageKind, MessagesQuery, NotifyLevel, SettingsChange, Timestamp,
};
use confab_server::store::copy::sqlite_to_postgres;
use serde_json::Value;

async fn vapid_key(server: &TestServer) -> Value {
    reqwest::get(format!("{}/v1/push/vapid-public-key", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_moves_to_postgres_and_clients_carry_on() {
    let data = Data::sqlite();
    let mut config = test_config(data.path());
    pushy(&mut config);
    // The push below stays held, so its outbox row is copied as it was.
    config.push_collapse_ms = 600_000;
    let node = TestServer::on(data, config).await;
    let ada = node.user("ada").await;
    let bob = node.user("bob").await;
    let carol = node.user("carol").await;
    let chat = ada.client.direct(bob.id()).await.unwrap();
    // Text that COPY's format must escape, and some that it must not touch.
    let tricky = "tab\there, newline\nthere, back\\slash, \\N, émoji 👋";
    for i in 0..30 {
        ada.client
            .send_http(chat.id, Some(format!("m{i}")), format!("{i}: {tricky}"))
            .await
            .unwrap();
    }
    // Changes: an edit with a mention, reactions, a delete, a delete for one, a reply.
    let changes = [
        (&ada, MessageKind::Edit, "3: edited for @bob", 3),
        (&bob, MessageKind::React, "👍", 3),
        (&ada, MessageKind::React, "❤️", 3),
        (&ada, MessageKind::Delete, "", 5),
        (&bob, MessageKind::DeleteForMe, "", 7),
    ];
    for (who, kind, body, target) in changes {
        let action = Action::parse(kind, body.into(), Some(target), None).unwrap();
        who.client.write_http(chat.id, None, action).await.unwrap();
    }
    let reply = Action::parse(MessageKind::Text, format!("@bob {tricky}"), None, Some(2)).unwrap();
    ada.client.write_http(chat.id, None, reply).await.unwrap();
    // A notification shown on ada's phone, and an edit it must follow.
    let (receiver, push_url) = Receiver::start().await;
    subscribe(
        &ada,
        &Browser::new().subscription(&format!("{push_url}/push/ada")),
    )
    .await;
    let ask = bob
        .client
        .send_http(chat.id, None, format!("there? {tricky}"))
        .await
        .unwrap();
    receiver.wait("/push/ada", 1).await;
    let edit = Action::parse(
        MessageKind::Edit,
        format!("still there? {tricky}"),
        Some(ask.message.seq),
        None,
    )
    .unwrap();
    bob.client.write_http(chat.id, None, edit).await.unwrap();
    let group = ada
        .client
        .create_group("the group", &[bob.id(), carol.id()])
        .await
        .unwrap();
    carol
        .client
        .send_http(group.id, None, "hello group")
        .await
        .unwrap();
    // Pushed to ada too; its row and what it showed are recorded right after.
    receiver.wait("/push/ada", 2).await;
    carol
        .client
        .remove_member(group.id, carol.id())
        .await
        .unwrap();
    bob.client.read(chat.id, 20).await.unwrap();
    // Bob's settings: muted to mentions for a day, archived, pinned.
    let settings = SettingsChange {
        notify: Some(NotifyLevel::Mentions),
        notify_until: Some(Timestamp(Timestamp::now().0 + 86_400_000)),
        archived: Some(true),
        pinned: Some(true),
    };
    bob.client
        .change_settings(group.id, settings)
        .await
        .unwrap();
    let key = vapid_key(&node).await;
    let before_chat = ada
        .client
        .messages(chat.id, MessagesQuery::after(0).limit(100))
        .await
        .unwrap();
    let before_group = bob
        .client
        .messages(group.id, MessagesQuery::after(0).limit(100))
        .await
        .unwrap();
    let before_list = bob.client.conversations().await.unwrap();
    let before_bobs_chat = bob
        .client
        .messages(chat.id, MessagesQuery::after(0).limit(100))
        .await
        .unwrap();
    assert_eq!(before_bobs_chat.len(), before_chat.len() - 1, "bob hid one");
    let before_sync = bob.client.sync(0, Some(500)).await.unwrap();

    // Not while the node runs: what it writes after the copy would be left behind.
    let db = TestDatabase::new().await;
    let refused = sqlite_to_postgres(node.dir.path(), &db.url())
        .await
        .unwrap_err();
    assert!(refused.contains("another confab process"), "{refused}");

    let data = node.stop().await;
    let copied = sqlite_to_postgres(data.path(), &db.url()).await.unwrap();
    let count = |table: &str| copied.iter().find(|(t, _)| *t == table).unwrap().1;
    assert_eq!(count("users"), 3);
    let logs: u64 = before_list.iter().map(|c| c.last_seq).sum();
    assert_eq!(count("messages"), logs, "messages and changes");
    assert_eq!((count("reactions"), count("hidden")), (2, 1));
    assert_eq!(count("conversation_settings"), 1);
    // Ada's notifications of the chat and the group, both held.
    assert_eq!((count("push_outbox"), count("push_shown")), (2, 2));
    let refresh: Vec<i64> = db
        .client()
        .await
        .query("SELECT conversation_id FROM push_outbox WHERE refresh", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        refresh,
        [chat.id.0],
        "the edit's refresh of ada's notification moved too"
    );
    // Once is all: the target is no longer empty.
    let again = sqlite_to_postgres(data.path(), &db.url())
        .await
        .unwrap_err();
    assert!(again.contains("empty database"), "{again}");

    // A node on PostgreSQL, in a data dir of its own: everything came from the database.
    let fresh = Data::sqlite();
    let mut config = test_config(fresh.path());
    config.store = db.url();
    let moved = TestServer::on(fresh, config).await;
    assert_eq!(
        vapid_key(&moved).await,
        key,
        "browsers keep their subscriptions"
    );
    // The old tokens still work: devices and their token hashes moved.
    let as_before = |user: &crate::harness::TestUser| {
        Client::new(&moved.url)
            .unwrap()
            .with_token(user.login.token.clone())
    };
    let (ada2, bob2, carol2) = (as_before(&ada), as_before(&bob), as_before(&carol));
    let after_chat = ada2
        .messages(chat.id, MessagesQuery::after(0).limit(100))
        .await
        .unwrap();
    assert_eq!(after_chat, before_chat, "history, byte for byte");
    assert!(
        after_chat
            .iter()
            .all(|m| m.seq == 3 || m.seq == 5 || m.body.contains(tricky))
    );
    assert_eq!(
        bob2.messages(chat.id, MessagesQuery::after(0).limit(100))
            .await
            .unwrap(),
        before_bobs_chat,
        "edits, reactions, tombstones and what bob hid"
    );
    assert_eq!(
        bob2.messages(group.id, MessagesQuery::after(0).limit(100))
            .await
            .unwrap(),
        before_group
    );
    assert_eq!(
        bob2.conversations().await.unwrap(),
        before_list,
        "unread and order"
    );
    assert_eq!(
        bob2.sync(0, Some(500)).await.unwrap().entries,
        before_sync.entries
    );
    // Carol left: her window moved too (she sees the group up to when she left).
    let carols = carol2
        .messages(group.id, MessagesQuery::after(0).limit(100))
        .await
        .unwrap();
    assert_eq!(carols.len(), before_group.len());
    // Passwords moved; what comes next is numbered after what was copied.
    let login = Client::new(&moved.url)
        .unwrap()
        .login("ada", "password-ada", None)
        .await
        .unwrap();
    let sent = Client::new(&moved.url)
        .unwrap()
        .with_token(login.token)
        .send_http(chat.id, None, "after the move")
        .await
        .unwrap();
    let chat_last = before_list
        .iter()
        .find(|c| c.id == chat.id)
        .unwrap()
        .last_seq;
    assert_eq!(
        sent.message.seq,
        chat_last + 1,
        "after the last entry, a change"
    );
    let dave = moved.user("dave").await;
    assert!(dave.id() > carol.id(), "new users get new ids");
    let newer = moved
        .anon()
        .login("dave", "password-dave", None)
        .await
        .unwrap();
    assert!(
        newer.device_id > carol.login.device_id,
        "new devices get new ids"
    );
}
