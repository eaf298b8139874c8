//! Two nodes on one PostgreSQL database, writing into the same conversations at once from
//! many clients, with retries of the same `client_msg_id` through both: every number stays
//! gap-free, every message reaches each member's inbox once, nothing is stored twice, and
//! no client sees an error. Checked in SQL and through the API.

use crate::harness::TestServer;
use crate::pg::TestDatabase;
use confab_client::{ConversationId, UserId};
use std::collections::BTreeMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_keep_every_number_gap_free() {
    let db = TestDatabase::new().await;
    let a = TestServer::with(|c| {
        c.store = db.url();
        c.node_id = 1;
    })
    .await;
    let b = TestServer::with(|c| {
        c.store = db.url();
        c.node_id = 2;
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
