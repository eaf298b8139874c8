//! Micro-benchmarks of the hot paths: frame decode and encode, one group-commit batch of
//! sends, and inbox range reads. `cargo bench -p confab-server`; results and the machine
//! they ran on are recorded in docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_proto::{
    Action, Body, ClientFrame, ConversationId, Message, MessageId, MessageKind, ServerFrame,
    Timestamp, UserId,
};
use confab_server::ids::Snowflake;
use confab_server::metrics::Metrics;
use confab_server::store::sqlite::SqliteStore;
use confab_server::store::{NewMessage, NewUser, Store};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn message(body: &str) -> Message {
    Message::new(
        MessageId(118_435_380_327_354_368),
        ConversationId(42),
        1234,
        UserId(7),
        "c-0123456789abcdef".into(),
        MessageKind::Text,
        body.into(),
        Timestamp(1_795_341_600_123),
    )
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frames");
    let send = r#"{"type":"send","req":"r-17","conversation_id":"42","client_msg_id":"c-0123456789abcdef","body":"hello, how are you doing today?"}"#;
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode send", |b| {
        b.iter(|| serde_json::from_str::<ClientFrame>(black_box(send)).unwrap())
    });
    let msg = message("hello, how are you doing today?");
    group.bench_function("encode ack", |b| {
        b.iter(|| {
            serde_json::to_string(&ServerFrame::Ack {
                req: Some("r-17".into()),
                message: black_box(msg.clone()),
            })
            .unwrap()
        })
    });
    // The gateway serialises a message once and splices it into each recipient's frame.
    let json = serde_json::to_string(&msg).unwrap();
    group.bench_function("encode message frame (spliced)", |b| {
        b.iter(|| {
            format!(
                r#"{{"type":"message","inbox_seq":{},"message":{}}}"#,
                black_box(99u64),
                black_box(&json)
            )
        })
    });
    group.finish();
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    users: (UserId, UserId),
    conversation: ConversationId,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(
            dir.path(),
            4,
            1024,
            Arc::new(Snowflake::new(1)),
            Metrics::new().store.clone(),
        )
        .await
        .unwrap(),
    );
    let mut ids = Vec::new();
    for name in ["ada", "bob"] {
        let new = NewUser {
            username: name.into(),
            display_name: name.into(),
            password_hash: "h".into(),
        };
        ids.push(store.create_user(new).await.unwrap().id);
    }
    let (conversation, _) = store.direct(ids[0], ids[1]).await.unwrap();
    Fixture {
        _dir: dir,
        store,
        users: (ids[0], ids[1]),
        conversation: conversation.id,
    }
}

fn store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Declared before the fixture, so the fixture (its store's pool needs a runtime to drop)
    // is dropped while the runtime is still entered.
    let _entered = rt.enter();
    let f = rt.block_on(fixture());
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("store");
    group.sample_size(20);

    // 256 concurrent sends: the writer commits them in one or a few fsynced transactions.
    const BATCH: u64 = 256;
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("group commit of 256 sends", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let start = counter.fetch_add(BATCH, Ordering::Relaxed);
                (start..start + BATCH)
                    .map(|i| NewMessage {
                        conversation_id: f.conversation,
                        sender_id: f.users.0,
                        client_msg_id: format!("b{i}"),
                        action: Action::Text {
                            body: Body::new(
                                "a message of ordinary length, about fifty bytes".into(),
                            )
                            .unwrap(),
                            reply_to: None,
                        },
                        mentions: Vec::new(),
                        quota_bytes: u64::MAX,
                    })
                    .collect::<Vec<_>>()
            },
            |batch| {
                let store = f.store.clone();
                async move {
                    let tasks: Vec<_> = batch
                        .into_iter()
                        .map(|m| {
                            let store = store.clone();
                            tokio::spawn(async move { store.append(m).await.unwrap() })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
            },
            BatchSize::PerIteration,
        )
    });

    // Reads of 200 inbox entries (what one sync page or backlog page costs).
    group.throughput(Throughput::Elements(200));
    group.bench_function("inbox page of 200", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(f.store.inbox_after(f.users.1, 100, 200).await.unwrap()) })
    });
    group.finish();
}

criterion_group!(benches, frames, store);
criterion_main!(benches);
