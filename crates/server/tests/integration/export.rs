//! Exporting an account: one JSON document with everything the user can see, exactly as the
//! history API shows it (membership windows, edits, tombstones, messages deleted for them
//! left out) and nothing else; streamed, one at a time per account.

use crate::harness::{TestServer, TestUser};
use confab_client::{
    AccountExport, Action, Body, ConversationId, ErrorCode, Message, MessagesQuery,
};

fn text(body: &str) -> Body {
    Body::new(body.into()).unwrap()
}

/// Every message `user` may see in `id`, oldest first, paged as a client would.
async fn history(user: &TestUser, id: ConversationId) -> Vec<Message> {
    let mut all = Vec::new();
    loop {
        let page = user
            .client
            .messages(
                id,
                MessagesQuery {
                    after_seq: all.last().map(|m: &Message| m.seq),
                    limit: Some(200),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

#[tokio::test]
async fn an_export_holds_everything_the_user_can_see_and_nothing_else() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;

    // A direct conversation long enough to be read in several pages, with each change.
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    for i in 0..130 {
        let who = if i % 2 == 0 { &ada } else { &bob };
        who.client
            .send_http(chat, None, &format!("line {i}"))
            .await
            .unwrap();
    }
    let typo = ada.client.send_http(chat, None, "helo").await.unwrap();
    let edit = Action::Edit {
        target: typo.message.seq,
        body: text("hello, fixed"),
    };
    ada.client.write_http(chat, None, edit).await.unwrap();
    let regret = bob
        .client
        .send_http(chat, None, "bob's regret")
        .await
        .unwrap();
    let delete = Action::Delete {
        target: regret.message.seq,
    };
    bob.client.write_http(chat, None, delete).await.unwrap();
    let noise = bob
        .client
        .send_http(chat, None, "noise ada hid")
        .await
        .unwrap();
    let hide = Action::DeleteForMe {
        target: noise.message.seq,
    };
    ada.client.write_http(chat, None, hide).await.unwrap();

    // A group ada was in for a while only.
    let group = carol.client.create_group("crew", &[]).await.unwrap().id;
    carol
        .client
        .send_http(group, None, "before ada")
        .await
        .unwrap();
    carol.client.add_member(group, ada.id()).await.unwrap();
    carol
        .client
        .send_http(group, None, "while ada")
        .await
        .unwrap();
    carol.client.remove_member(group, ada.id()).await.unwrap();
    carol
        .client
        .send_http(group, None, "after ada")
        .await
        .unwrap();
    // And one she was never in.
    let elsewhere = bob.client.direct(carol.id()).await.unwrap().id;
    bob.client
        .send_http(elsewhere, None, "not for ada")
        .await
        .unwrap();
    ada.client.block(dave.id()).await.unwrap();

    let export = ada.client.export().await.unwrap();
    assert_eq!(export.format, "confab-export-1");
    assert_eq!(export.user.id, ada.id());
    assert!(export.privacy.last_seen && export.privacy.read_receipts);
    assert_eq!(export.devices.len(), 1);
    assert!(export.devices[0].current);
    assert_eq!(export.blocks.len(), 1);
    assert_eq!(export.blocks[0].user_id, dave.id());
    let ids: Vec<_> = export
        .conversations
        .iter()
        .map(|c| c.conversation.id)
        .collect();
    let listed: Vec<_> = ada
        .client
        .conversations()
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, listed, "hers only, in the order of her list");
    assert!(ids.contains(&chat) && ids.contains(&group) && ids.len() == 2);

    for exported in &export.conversations {
        let id = exported.conversation.id;
        assert_eq!(
            serde_json::to_value(&exported.conversation).unwrap(),
            serde_json::to_value(ada.client.conversation(id).await.unwrap()).unwrap()
        );
        assert_eq!(
            serde_json::to_value(&exported.messages).unwrap(),
            serde_json::to_value(history(&ada, id).await).unwrap(),
            "conversation {id}: as the history API shows it"
        );
    }
    let bodies: Vec<&str> = export
        .conversations
        .iter()
        .flat_map(|c| c.messages.iter().map(|m| m.body.as_str()))
        .collect();
    assert!(bodies.contains(&"line 0") && bodies.contains(&"line 129"));
    assert!(bodies.contains(&"hello, fixed") && !bodies.contains(&"helo"));
    assert!(bodies.contains(&"while ada"));
    for unseen in [
        "bob's regret",
        "noise ada hid",
        "before ada",
        "after ada",
        "not for ada",
    ] {
        assert!(!bodies.contains(&unseen), "{unseen:?} is not ada's to see");
    }

    // The file as it streams is the same document.
    let mut file = Vec::new();
    let written = ada.client.export_to(&mut file).await.unwrap();
    assert_eq!(written, file.len() as u64);
    let streamed: AccountExport = serde_json::from_slice(&file).unwrap();
    assert_eq!(
        serde_json::to_value(&streamed.conversations).unwrap(),
        serde_json::to_value(&export.conversations).unwrap()
    );
}

#[tokio::test]
async fn one_export_per_account_runs_at_a_time() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    // More than the socket buffers hold, so an export nobody reads stays running.
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    let long = "x".repeat(99_999);
    for _ in 0..240 {
        ada.client.send_http(chat, None, &long).await.unwrap();
    }
    let url = format!("{}/v1/me/export", ada.url);
    let http = reqwest::Client::new();
    let started = http
        .get(&url)
        .bearer_auth(&ada.login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    assert_eq!(
        started.headers()["content-disposition"],
        "attachment; filename=\"confab-export.json\""
    );

    let e = ada.client.export().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited));
    // Another account is not held up.
    assert_eq!(bob.client.export().await.unwrap().conversations.len(), 1);

    // Once the reader goes away, the export ends and another may start.
    drop(started);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match ada.client.export().await {
            Ok(export) => {
                assert_eq!(export.conversations[0].messages.len(), 240);
                break;
            }
            Err(e) if e.code() == Some(ErrorCode::RateLimited) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the export never ended"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}
