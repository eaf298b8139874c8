//! The store conformance suite on the embedded SQLite store, plus what only it has:
//! durability across reopening.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store {
    pub mod suite;
}

use confab_server::ids::Snowflake;
use confab_server::metrics::Metrics;
use confab_server::store::Store;
use confab_server::store::sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;

async fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(
            dir,
            2,
            256,
            Arc::new(Snowflake::new(1)),
            Metrics::new().store.clone(),
        )
        .await
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_store_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    store::suite::run_all(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        dirs.lock().unwrap().push(dir);
        async move { open(&path).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_writes_survive_reopening() {
    use confab_proto::{Action, Body};
    use confab_server::store::{NewMessage, NewUser};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let mut ids = Vec::new();
    for name in ["ada", "bob"] {
        let new = NewUser {
            username: name.into(),
            display_name: name.into(),
            password_hash: "h".into(),
        };
        ids.push(store.create_user(new).await.unwrap().id);
    }
    let (conv, _) = store.direct(ids[0], ids[1]).await.unwrap();
    let msg = NewMessage {
        conversation_id: conv.id,
        sender_id: ids[0],
        client_msg_id: "c1".into(),
        action: Action::Text {
            body: Body::new("kept".into()).unwrap(),
            reply_to: None,
        },
        mentions: Vec::new(),
        quota_bytes: u64::MAX,
    };
    store.append(msg).await.unwrap();
    store.close().await;
    drop(store);
    let store = open(dir.path()).await;
    let entries = store.inbox_after(ids[1], 0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].message.body, "kept");
}
