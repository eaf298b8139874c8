//! Two nodes on one PostgreSQL database, writing into the same conversations at once from
//! many clients, with retries of the same `client_msg_id` through both: every number stays
//! gap-free, every message reaches each member's inbox once, nothing is stored twice, and
//! no client sees an error. Checked in SQL and through the API. And the parts nodes share
//! through the store: the push outbox (each push made once), the VAPID key, node ids.

use crate::harness::TestServer;
use crate::pg::TestDatabase;
use crate::push::{Browser, Receiver, pushy, subscribe};
use confab_client::{ConversationId, UserId};
use std::collections::BTreeMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_keep_every_number_gap_free() {
    let db = TestDatabase::new().await;
    let a = TestServer::with(|c| {
        c.store = db.url();
        c.node_id = Some(1);
    })
    .await;
    let b = TestServer::with(|c| {
        c.store = db.url();
        c.node_id = Some(2);
    })
    .await;
    const USERS: usize = 6;
    const SENDS: usize = 40;
    let mut users = Vec::new();
    for i in 0..USERS {
        let on_a = a.user(&format!("user{i}")).await;
        let on_b = b.login(&format!("user{i}")).await;
        users.push((on_a, on_b));
    }
    let ids: Vec<UserId> = users.iter().map(|(u, _)| u.id()).collect();
    // Every pair's direct conversation, and two groups of everyone.
    let mut conversations: Vec<ConversationId> = Vec::new();
    for (i, (on_a, _)) in users.iter().enumerate() {
        for &other in &ids[i + 1..] {
            conversations.push(on_a.client.direct(other).await.unwrap().id);
        }
    }
    for (g, (_, on_b)) in users.iter().take(2).enumerate() {
        let group = on_b
            .client
            .create_group(&format!("all {g}"), &ids)
            .await
            .unwrap();
        conversations.push(group.id);
    }
    let conversations = std::sync::Arc::new(conversations);

    // Each user writes into every conversation they are in, alternating nodes, and sends
    // every fifth message a second time through the other node.
    let mut writers = Vec::new();
    for (i, (on_a, on_b)) in users.into_iter().enumerate() {
        let conversations = conversations.clone();
        let me = ids[i];
        writers.push(tokio::spawn(async move {
            let mine: Vec<ConversationId> = {
                let list = on_a.client.conversations().await.unwrap();
                conversations
                    .iter()
                    .copied()
                    .filter(|c| list.iter().any(|l| l.id == *c))
                    .collect()
            };
            let mut sent = 0;
            for k in 0..SENDS {
                let conversation = mine[k % mine.len()];
                let id = format!("m-{me}-{k}");
                let (first, second) = if k % 2 == 0 {
                    (&on_a, &on_b)
                } else {
                    (&on_b, &on_a)
                };
                let stored = first
                    .client
                    .send_http(conversation, Some(id.clone()), format!("{me} says {k}"))
                    .await
                    .unwrap_or_else(|e| panic!("a send failed: {e}"));
                sent += 1;
                if k % 5 == 0 {
                    let again = second
                        .client
                        .send_http(conversation, Some(id), format!("{me} says {k}"))
                        .await
                        .unwrap_or_else(|e| panic!("a retry failed: {e}"));
                    assert!(
                        again.deduplicated,
                        "a retry through the other node stored again"
                    );
                    assert_eq!(again.message.id, stored.message.id);
                }
            }
            sent
        }));
    }
    let mut sent = 0;
    for writer in writers {
        sent += writer.await.unwrap();
    }
    assert_eq!(sent, USERS * SENDS);

    let sql = db.client().await;
    // Each conversation's seqs are exactly 1..=last_seq.
    let gaps: i64 = sql
        .query_one(
            "SELECT count(*) FROM conversations c WHERE c.last_seq !=
               (SELECT count(*) FROM messages x WHERE x.conversation_id = c.id)
             OR c.last_seq != coalesce((SELECT max(seq) FROM messages x WHERE x.conversation_id = c.id), 0)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(gaps, 0, "a conversation with a gap in its seqs");
    // Each inbox is exactly 1..=head.
    let inbox_gaps: i64 = sql
        .query_one(
            "SELECT count(*) FROM (SELECT user_id, count(*) AS n, max(inbox_seq) AS head
                                   FROM inbox GROUP BY user_id) h WHERE n != head",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(inbox_gaps, 0, "an inbox with a gap");
    // Every message is in the inbox of each member, once (no one joined or left meanwhile).
    let wrong: i64 = sql
        .query_one(
            "SELECT count(*) FROM messages x WHERE
               (SELECT count(*) FROM inbox i WHERE i.conversation_id = x.conversation_id AND i.seq = x.seq)
               != (SELECT count(*) FROM members m WHERE m.conversation_id = x.conversation_id)
             OR (SELECT count(DISTINCT user_id) FROM inbox i WHERE i.conversation_id = x.conversation_id AND i.seq = x.seq)
               != (SELECT count(*) FROM members m WHERE m.conversation_id = x.conversation_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        wrong, 0,
        "a message missing from, or twice in, a member's inbox"
    );
    let texts: i64 = sql
        .query_one("SELECT count(*) FROM messages WHERE kind = 'text'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(texts as usize, USERS * SENDS, "every send stored once");

    // Through the API, on either node: each user's sync is 1..=head, in order.
    let reader = a.login("user0").await;
    let mut entries = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = reader.client.sync(after, None).await.unwrap();
        if page.entries.is_empty() {
            break;
        }
        for entry in page.entries {
            assert_eq!(
                entry.inbox_seq,
                after + 1,
                "sync skipped or repeated an entry"
            );
            after = entry.inbox_seq;
            entries.insert(entry.inbox_seq, entry.message.id);
        }
    }
    assert!(!entries.is_empty());
}

/// Offline users subscribed to Web Push, each sent one message through one node or the
/// other while both nodes' push workers run: each gets exactly one push, signed with the
/// one VAPID key both nodes publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_push_each_message_once_with_one_vapid_key() {
    let db = TestDatabase::new().await;
    let (receiver, push_url) = Receiver::start().await;
    let node = |c: &mut confab_server::Config| {
        c.store = db.url();
        pushy(c);
    };
    let a = TestServer::with(node).await;
    let b = TestServer::with(node).await;
    let key = |server: &TestServer| {
        let url = format!("{}/v1/push/vapid-public-key", server.url);
        async move {
            let answer: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            answer["key"].as_str().unwrap().to_owned()
        }
    };
    let published = key(&a).await;
    assert_eq!(key(&b).await, published, "both nodes publish the same key");

    const USERS: usize = 12;
    let sender = a.user("sender").await;
    let sender_on_b = b.login("sender").await;
    let browser = Browser::new();
    for i in 0..USERS {
        // Never connected: offline, so every message is pushed.
        let user = a.user(&format!("offline{i}")).await;
        subscribe(
            &user,
            &browser.subscription(&format!("{push_url}/push/{i}")),
        )
        .await;
        let via = if i % 2 == 0 { &sender } else { &sender_on_b };
        let chat = via.client.direct(user.id()).await.unwrap();
        via.client.send_http(chat.id, None, "hello").await.unwrap();
    }
    let pushes = receiver.wait("/push/", USERS).await;
    // Longer than a hold (push_collapse_ms) and several polls of both workers: a second
    // push of the same row would have come by now.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let pushes = receiver.requests("/push/").len().max(pushes.len());
    assert_eq!(
        pushes, USERS,
        "one push per message, whichever node sent it"
    );
    for i in 0..USERS {
        let got = receiver.requests(&format!("/push/{i}"));
        let got: Vec<_> = got
            .iter()
            .filter(|r| r.path == format!("/push/{i}"))
            .collect();
        assert_eq!(got.len(), 1, "user {i}");
        let authorization = got[0].headers["authorization"].to_str().unwrap();
        assert!(
            authorization.ends_with(&format!(", k={published}")),
            "signed with the shared key: {authorization}"
        );
        assert_eq!(browser.decrypt(&got[0].body)["count"], 1);
    }
}

/// Nodes started without a node id each claim their own; one whose configured id is held
/// by a live node refuses to start, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ids_are_claimed_once_among_live_nodes() {
    let db = TestDatabase::new().await;
    // Its own entry in its discovery answer (which lists every live node).
    let node_id = |server: &TestServer| {
        let (url, me) = (format!("{}/v1/discovery", server.url), server.url.clone());
        async move {
            let answer: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            let servers = answer["servers"].as_array().unwrap().clone();
            let mine = servers.iter().find(|s| s["url"] == me.as_str());
            mine.unwrap_or_else(|| panic!("{me} not in {servers:?}"))["node_id"]
                .as_u64()
                .unwrap()
        }
    };
    let a = TestServer::with(|c| c.store = db.url()).await;
    let b = TestServer::with(|c| c.store = db.url()).await;
    let (id_a, id_b) = (node_id(&a).await, node_id(&b).await);
    assert_ne!(id_a, id_b, "two live nodes never share an id");

    let mut config = crate::harness::test_config(tempfile::tempdir().unwrap().path());
    config.store = db.url();
    config.node_id = Some(u16::try_from(id_a).unwrap());
    let refused = confab_server::App::open(config).await;
    let Err(e) = refused else {
        panic!("a node whose id is held must not start")
    };
    assert!(e.to_string().contains("held by another live node"), "{e}");

    // Stopped cleanly, a node gives its id back at once.
    drop(a.stop().await);
    let c = TestServer::with(|c| {
        c.store = db.url();
        c.node_id = Some(u16::try_from(id_a).unwrap());
    })
    .await;
    assert_eq!(node_id(&c).await, id_a);
    drop(b);
}

/// Two nodes with no bus between them (the in-process bus): an entry committed on the other
/// node never arrives live here, so the next live entry is ahead of its turn. After a
/// moment's hold the session fills the gap from the store: the device still gets every
/// entry once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_never_arrives_live_is_filled_from_the_store() {
    use crate::harness::{messages, no_message};
    let db = TestDatabase::new().await;
    let a = TestServer::with(|c| c.store = db.url()).await;
    let b = TestServer::with(|c| c.store = db.url()).await;
    let ada = a.user("ada").await;
    let ada_on_b = b.login("ada").await;
    let bob = a.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    let (_session, mut events) = bob.connect(0).await;
    // `connect` returns at `welcome`; the session's last read of the store comes just
    // after. Entry 1 must be committed after that read, or it arrives as backlog (seen
    // under load in the full suite).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Entries 1 and 3 are committed on b, 2 and 4 on a: this session hears 2 and 4 live,
    // each ahead of its turn, with a gap before each.
    ada_on_b
        .client
        .send_http(chat, None, "1 on b")
        .await
        .unwrap();
    no_message(&mut events, std::time::Duration::from_millis(300)).await;
    ada.client.send_http(chat, None, "2 on a").await.unwrap();
    ada_on_b
        .client
        .send_http(chat, None, "3 on b")
        .await
        .unwrap();
    ada.client.send_http(chat, None, "4 on a").await.unwrap();
    let got = messages(&mut events, 4).await;
    let got: Vec<(u64, &str)> = got.iter().map(|(s, m)| (*s, m.body.as_str())).collect();
    assert_eq!(
        got,
        vec![(1, "1 on b"), (2, "2 on a"), (3, "3 on b"), (4, "4 on a")]
    );
    assert!(a.metric("confab_inbox_gap_fills_total").await >= 1.0);
}
