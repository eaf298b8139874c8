//! Confab as a cluster, from outside: real `confab serve` processes on one PostgreSQL
//! database and a three-server NATS cluster (started here on free ports, from the same
//! pieces as `scripts/cluster`). Clients speak the raw protocol, so every frame a device
//! gets is counted: exactly once, in order, live across nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use cluster_support::{Cluster, Device};
use std::collections::{BTreeMap, BTreeSet};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_direct_message_reaches_devices_on_other_nodes_live_once_in_order() {
    let cluster = Cluster::start(3).await;
    let ada = cluster.user(0, "ada").await;
    let bob = cluster.user(1, "bob").await;
    let chat = ada.client.direct(bob.id).await.unwrap().id;
    // Bob's second device logs in through node 3.
    let bob_phone = cluster.login(2, "bob").await;
    let mut laptop = Device::connect(&cluster.nodes[1].url, &bob.token, None).await;
    let mut phone = Device::connect(&cluster.nodes[2].url, &bob_phone.token, None).await;
    let mut sender = Device::connect(&cluster.nodes[0].url, &ada.token, None).await;

    const SENDS: usize = 100;
    for i in 0..SENDS {
        sender
            .send_in_order(chat, &format!("m{i}"), &format!("hello {i}"))
            .await;
    }

    for (name, device) in [("laptop", &mut laptop), ("phone", &mut phone)] {
        let got = device.messages(SENDS).await;
        let seqs: Vec<u64> = got.iter().map(|m| m.inbox_seq).collect();
        assert_eq!(
            seqs,
            (1..=SENDS as u64).collect::<Vec<_>>(),
            "{name}: every inbox entry once, in order"
        );
        let ids: Vec<&str> = got.iter().map(|m| m.client_msg_id.as_str()).collect();
        let want: Vec<String> = (0..SENDS).map(|i| format!("m{i}")).collect();
        assert_eq!(ids, want, "{name}: in the order ada sent them");
        device.no_more_messages().await;
    }
    // Live: carried by the bus, not found later in the store.
    for node in &cluster.nodes[1..] {
        let received = node.metric("confab_bus_received_total").await.unwrap();
        assert!(
            received >= SENDS as f64,
            "node {} got only {received} events from the bus",
            node.url
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_spread_over_three_nodes_all_sending_at_once_gets_everything_once_in_order() {
    let cluster = Cluster::start(3).await;
    const MEMBERS: usize = 9;
    const SENDS: usize = 30;
    let mut users = Vec::new();
    for i in 0..MEMBERS {
        users.push(cluster.user(i % 3, &format!("member{i}")).await);
    }
    let ids: Vec<_> = users.iter().map(|u| u.id).collect();
    let group = users[0]
        .client
        .create_group("everyone", &ids[1..])
        .await
        .unwrap()
        .id;
    let mut devices = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let mut device = Device::connect(&cluster.nodes[i % 3].url, &user.token, None).await;
        // The group's creation is the first entry of each inbox.
        device.messages(1).await;
        devices.push(device);
    }
    // Everyone at once.
    let mut senders = Vec::new();
    for (i, mut device) in devices.into_iter().enumerate() {
        senders.push(tokio::spawn(async move {
            for k in 0..SENDS {
                device
                    .send_in_order(group, &format!("u{i}-{k}"), &format!("{i} says {k}"))
                    .await;
            }
            device
        }));
    }
    let mut devices = Vec::new();
    for sender in senders {
        devices.push(sender.await.unwrap());
    }
    for (i, device) in devices.iter_mut().enumerate() {
        let got = device.messages(MEMBERS * SENDS).await;
        let seqs: Vec<u64> = got.iter().map(|m| m.inbox_seq).collect();
        assert_eq!(
            seqs,
            (2..=(1 + MEMBERS * SENDS) as u64).collect::<Vec<_>>(),
            "member {i}: every entry once, in inbox order"
        );
        // Per sender, in the order they sent.
        let mut by_sender: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for m in &got {
            let (who, k) = m.client_msg_id.split_once('-').unwrap();
            by_sender.entry(who).or_default().push(k.parse().unwrap());
        }
        assert_eq!(by_sender.len(), MEMBERS);
        for (who, ks) in by_sender {
            assert_eq!(
                ks,
                (0..SENDS).collect::<Vec<_>>(),
                "member {i} got {who}'s messages out of order or not all"
            );
        }
        // And the group's seq order is the same for everyone.
        let group_seqs: BTreeSet<u64> = got.iter().map(|m| m.seq).collect();
        assert_eq!(group_seqs.len(), MEMBERS * SENDS);
        device.no_more_messages().await;
    }
}
