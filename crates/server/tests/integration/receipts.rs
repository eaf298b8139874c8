//! Delivered and read receipts.

use crate::harness::{TestServer, messages, wait_for};
use confab_client::{Event, ReceiptKind};
use std::time::Duration;

fn receipt(kind: ReceiptKind, seq: u64) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Receipt { kind: k, seq: s, .. } if *k == kind && *s == seq)
}

/// A receipt of `kind` at `seq` by `by`.
fn receipt_by(kind: ReceiptKind, seq: u64, by: confab_client::UserId) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Receipt { kind: k, seq: s, user_id, .. } if *k == kind && *s == seq && *user_id == by)
}

#[tokio::test]
async fn delivered_and_read_reach_the_sender_and_the_readers_other_devices() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob_phone = server.user("bob").await;
    let bob_laptop = server.login("bob").await;
    let chat = ada.client.direct(bob_phone.id()).await.unwrap();
    let (_a, mut ada_events) = ada.connect(0).await;
    let (bob_conn, mut bob_events) = bob_phone.connect(0).await;
    let (_l, mut laptop_events) = bob_laptop.connect(0).await;

    for i in 1..=3 {
        ada.client
            .send_http(chat.id, None, format!("m{i}"))
            .await
            .unwrap();
    }
    messages(&mut bob_events, 3).await; // the SDK acknowledges what it hands the app

    // One delivered receipt for the three messages, not three.
    let delivered = wait_for(
        &mut ada_events,
        Duration::from_secs(5),
        receipt_by(ReceiptKind::Delivered, 3, bob_phone.id()),
    )
    .await;
    match delivered {
        Some(Event::Receipt {
            user_id,
            conversation_id,
            ..
        }) => {
            assert_eq!((user_id, conversation_id), (bob_phone.id(), chat.id))
        }
        other => panic!("ada saw no delivered receipt: {other:?}"),
    }

    bob_conn.read(chat.id, 3).await.unwrap();
    assert!(
        wait_for(
            &mut ada_events,
            Duration::from_secs(5),
            receipt(ReceiptKind::Read, 3)
        )
        .await
        .is_some(),
        "the sender sees read"
    );
    assert!(
        wait_for(
            &mut laptop_events,
            Duration::from_secs(5),
            receipt(ReceiptKind::Read, 3)
        )
        .await
        .is_some(),
        "the reader's other device hears of it"
    );
    let from_laptop = bob_laptop.client.conversations().await.unwrap();
    assert_eq!(from_laptop[0].unread, 0, "unread cleared on every device");
    let seen = ada.client.conversation(chat.id).await.unwrap();
    let bob_row = seen
        .members
        .iter()
        .find(|m| m.user_id == bob_phone.id())
        .unwrap();
    assert_eq!(
        (bob_row.delivered_seq, bob_row.read_seq),
        (3, 3),
        "ticks survive a client restart"
    );

    // Watermarks never go backwards, and a non-move sends nothing.
    bob_laptop.client.read(chat.id, 1).await.unwrap();
    let back = wait_for(&mut ada_events, Duration::from_millis(500), |e| {
        matches!(
            e,
            Event::Receipt {
                kind: ReceiptKind::Read,
                ..
            }
        )
    })
    .await;
    assert!(back.is_none(), "{back:?}");
    assert_eq!(
        ada.client
            .conversation(chat.id)
            .await
            .unwrap()
            .members
            .iter()
            .find(|m| m.user_id == bob_phone.id())
            .unwrap()
            .read_seq,
        3
    );
    assert!(server.metric("confab_receipts_total").await >= 2.0);
}
